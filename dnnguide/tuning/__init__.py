"""Hyperparameter search over the presets with keras-tuner: spaces as data, trials as a table.

- :mod:`~dnnguide.tuning.space`: :class:`SearchSpace` and its parameters (:func:`Choice`,
  :func:`Int`, :func:`Float`, :func:`Fixed`), defaults taken from the presets;
- :mod:`~dnnguide.tuning.hypermodel`: :class:`PresetHyperModel` builds each trial with
  :func:`dnnguide.presets.build_model`, so every guideline check applies;
- :mod:`~dnnguide.tuning.search`: :func:`tune` runs any keras-tuner algorithm;
- :mod:`~dnnguide.tuning.results`: :class:`TuneResult` and :func:`trials_frame`, every trial as
  a pandas DataFrame (keras-tuner keeps no such table);
- :mod:`~dnnguide.tuning.worker`: trials in fresh worker processes (keras-tuner's chief/worker mode).

Example:
    >>> from dnnguide.tuning import SearchSpace, Float
    >>> space = SearchSpace.default().narrow(preset="default", depth=[2, 3])
    >>> # decoupled decay shrinks a weight by lr x decay a step: at lr 1e-3, 1e-2 and below
    >>> # take thousands of epochs to act on small data (dnnguide.data_rules)
    >>> space = space.extend(weight_decay=Float(1e-2, 1.0, log=True, default=0.1))
    >>> result = tune("mnist1d", space=space, max_trials=4, epochs=5)  # doctest: +SKIP
    >>> result.trials[["trial_id", "status", "score"]]  # doctest: +SKIP
"""

from dnnguide.tuning.hypermodel import InvalidTrialError, PresetHyperModel
from dnnguide.tuning.results import TuneResult, TuningError, plot_trials, trials_frame
from dnnguide.tuning.search import ALGORITHMS, SETTINGS_FILE, tune
from dnnguide.tuning.space import (
    Choice, Fixed, Float, Int, Param, SearchSpace, config_from_values, preset_activations,
    weight_decay_optimizers,
)

__all__ = [
    "ALGORITHMS",
    "SETTINGS_FILE",
    "Choice",
    "Fixed",
    "Float",
    "Int",
    "InvalidTrialError",
    "Param",
    "PresetHyperModel",
    "SearchSpace",
    "TuneResult",
    "TuningError",
    "config_from_values",
    "plot_trials",
    "trials_frame",
    "preset_activations",
    "tune",
    "weight_decay_optimizers",
]
