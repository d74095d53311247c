"""See why a deep net trains badly: per-layer gradient, weight and activation statistics.

Deep nets fail in a few specific ways, and the guidelines exist because of them:
gradients **vanish** toward the input (sigmoid + naive init), **explode** (a huge
learning rate without clipping), ReLU units **die**, bounded activations **saturate**,
a SELU net stops **self-normalizing**. This module measures each of these on a fixed
probe batch (one forward and one backward pass) and says in plain words what it sees
and which guideline fixes it:

- :func:`check_model`: a one-shot health check before training;
- :class:`DiagnosticsCallback`: the same record every ``interval`` steps during
  training, saved as ``diagnostics.csv`` (+ plots) in the run directory;
- :func:`find_pathologies`: the rules, applied to any such table (the CLI
  ``dnnguide diagnose RUN_DIR`` uses them on a saved run);
- plots of gradient norms over depth (log scale) and over time, activation histograms.

Modules: :mod:`~dnnguide.diagnostics.probe` (the measurement, :func:`check_model`),
:mod:`~dnnguide.diagnostics.rules` (:class:`Thresholds`, :func:`find_pathologies`),
:mod:`~dnnguide.diagnostics.callback` (:class:`DiagnosticsCallback`) and
:mod:`~dnnguide.diagnostics.plots`. Only the backward pass is TensorFlow-only.

Example:
    >>> import dnnguide
    >>> from dnnguide.diagnostics import check_model
    >>> data = dnnguide.load_dataset("digits")
    >>> model = dnnguide.build_model("default", (64,), 10, depth=20, activation="sigmoid",
    ...                              kernel_initializer="glorot_uniform", normalization="none")
    >>> report = check_model(model, data.x_train[:256], data.y_train[:256])  # doctest: +SKIP
    >>> report.kinds  # doctest: +SKIP
    ['vanishing']
    >>> print(report)  # per-layer table + findings in plain words  # doctest: +SKIP

References:
    Glorot & Bengio 2010 (vanishing gradients, Glorot init); He et al. 2015 (He init);
    Ioffe & Szegedy 2015 (batch norm); Pascanu et al. 2013 (exploding gradients, clipping);
    Klambauer et al. 2017 (SELU).
"""

from dnnguide.diagnostics.callback import (
    DEFAULT_INTERVAL, DEFAULT_MAX_OVERHEAD, DIAGNOSTICS_CSV, DiagnosticsCallback, load_diagnostics,
)
from dnnguide.diagnostics.plots import (
    plot_activation_histograms, plot_gradient_norms, plot_gradient_norms_over_time, save_plots,
)
from dnnguide.diagnostics.probe import EAGER_RECORDS, DiagnosticsReport, check_model
from dnnguide.diagnostics.rules import (
    COLUMNS, DEAD_CAPABLE, SATURATING, DiagnosticsWarning, Finding, Thresholds, find_pathologies,
    gradient_ratio,
)

__all__ = [
    "COLUMNS",
    "DEAD_CAPABLE",
    "DEFAULT_INTERVAL",
    "DEFAULT_MAX_OVERHEAD",
    "DIAGNOSTICS_CSV",
    "EAGER_RECORDS",
    "SATURATING",
    "DiagnosticsCallback",
    "DiagnosticsReport",
    "DiagnosticsWarning",
    "Finding",
    "Thresholds",
    "check_model",
    "find_pathologies",
    "gradient_ratio",
    "load_diagnostics",
    "plot_activation_histograms",
    "plot_gradient_norms",
    "plot_gradient_norms_over_time",
    "save_plots",
]
