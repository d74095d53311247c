"""Per-feature standardization statistics, shared by the loader and the model's own layer.

Each feature is centred on its training mean and divided by its training standard deviation,
except where that would put a training value more than :data:`MAX_Z` of those units from the
mean: a sparse or heavy-tailed feature (an edge pixel inked in a handful of images, a count that
is almost always 0). Such a feature is divided by its largest training deviation over
``MAX_Z`` instead, so no training value lies beyond ``MAX_Z`` and the feature keeps its order
and its zeros. Constant features keep a scale of 1 (centred, unscaled).

Why: standardized, digits' rarely-inked pixels reach 20-36 standard deviations (test rows up
to 54), so one input dominates every first-layer unit on the few rows that have it, and the
network extrapolates from those rows into confident mistakes. Capping their reach at 5 took
the default preset on digits from 0.970 to 0.978 test accuracy and NLL 0.144 to 0.093 (20
seeds, paired: +0.78 +- 0.20 points, -0.051 +- 0.010; BENCHMARKS.md). A Gaussian feature
never reaches 5 until ~100k rows (the expected maximum of n draws is about sqrt(2 ln n)), so
mnist1d's and diabetes' features keep their plain standard deviation.

Example:
    >>> x = np.zeros((100, 2), "float32"); x[:, 0] = np.arange(100); x[0, 1] = 1.0
    >>> mean, scale = standardization(x)
    >>> float(np.abs((x - mean) / scale).max(axis=0)[1])  # plain: 9.95 standard deviations
    5.0
"""

from __future__ import annotations

import numpy as np

#: The furthest, in scale units, a training value may lie from its feature's mean.
MAX_Z = 5.0


def standardization(x_train) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature ``(mean, scale)`` of the training rows (2-D, rows first), float32.

    ``scale`` is the standard deviation, or the largest absolute deviation from the mean over
    :data:`MAX_Z` where that is larger (sparse or heavy-tailed features), or 1 for constant
    features.
    """
    x = np.asarray(x_train, "float32")  # float32 sums, as the loader always took them
    mean = x.mean(axis=0)
    reach = np.abs(x - mean).max(axis=0)
    scale = np.maximum(x.std(axis=0), reach / np.float32(MAX_Z))
    scale[reach == 0] = 1.0  # constant features (digits' blank pixels) stay 0
    return mean, scale
