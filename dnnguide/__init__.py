"""dnnguide: the practical guidelines for training deep dense networks, as code.

Name a situation, get a configuration with a reason for every choice, build it in
one call, train it with the right callbacks and keep every result::

    import dnnguide
    print(dnnguide.recommend(depth="deep", risk_sensitive=True))
    result = dnnguide.fit("default", "digits", epochs=20)
    dnnguide.runs.load("runs/")

This module only re-exports; the implementation lives in the modules named below.
TensorFlow-only pieces (compression, distribution) are imported lazily by their modules.
"""

import os

# TensorFlow's C++ start-up chatter (CUDA probing, CPU flags) buries the first lines a user reads;
# only a default: a value the user set wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dnnguide import diagnostics, runs, transfer, uncertainty  # noqa: E402
from dnnguide.config import (
    ConfigError,
    EarlyStoppingConfig,
    NetworkConfig,
    OptimizerConfig,
    RegularizationConfig,
    ScheduleConfig,
    replace,
)
from dnnguide.data import Dataset, DataError, load_dataset
from dnnguide.diagnostics import (
    DiagnosticsCallback,
    DiagnosticsReport,
    check_model,
    find_pathologies,
)
from dnnguide.guidelines import Recommendation, recommend
from dnnguide.layers import MCAlphaDropout, MCDropout, to_mc_dropout, to_standard_dropout
from dnnguide.lr_finder import LRFinderResult, lr_find
from dnnguide.optimizers import make_optimizer, optimizer_from_config
from dnnguide.presets import build_model, get_preset, list_presets
from dnnguide.pretrain import pretrain_autoencoder, pretrain_auxiliary
from dnnguide.schedules import (
    ExponentialSchedule,
    OneCycleMomentum,
    OneCycleSchedule,
    PiecewiseConstantSchedule,
    PowerSchedule,
    make_schedule,
    plot_schedule,
    training_steps,
)
from dnnguide.training import RunResult, fit
from dnnguide.transfer import fine_tune, reuse_layers
from dnnguide.uncertainty import (
    MCDropoutPredictor,
    MCPrediction,
    brier_score,
    compare_mc_dropout,
    expected_calibration_error,
    mc_predict,
    negative_log_likelihood,
    rejection_curve,
    reliability_diagram,
)

__version__ = "0.1.0"

# Imported on first use: keras-tuner and tf.distribute are slow to import and not always needed.
_LAZY = {
    "tuning": "dnnguide.tuning", "distribute": "dnnguide.distribute",
    "tune": "dnnguide.tuning", "TuneResult": "dnnguide.tuning", "TuningError": "dnnguide.tuning",
    "SearchSpace": "dnnguide.tuning", "Choice": "dnnguide.tuning", "Int": "dnnguide.tuning",
    "Float": "dnnguide.tuning", "Fixed": "dnnguide.tuning", "trials_frame": "dnnguide.tuning",
}


def __getattr__(name):
    import importlib

    if name not in _LAZY:
        raise AttributeError(f"module 'dnnguide' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    value = module if module.__name__ == f"dnnguide.{name}" else getattr(module, name)
    globals()[name] = value
    return value


__all__ = [
    "ConfigError",
    "DataError",
    "Dataset",
    "EarlyStoppingConfig",
    "MCAlphaDropout",
    "MCDropout",
    "NetworkConfig",
    "OptimizerConfig",
    "Recommendation",
    "RegularizationConfig",
    "RunResult",
    "ScheduleConfig",
    "build_model",
    "fit",
    "get_preset",
    "list_presets",
    "load_dataset",
    "make_optimizer",
    "recommend",
    "replace",
    "runs",
    # optimizers, schedules, LR finder
    "ExponentialSchedule",
    "LRFinderResult",
    "OneCycleMomentum",
    "OneCycleSchedule",
    "PiecewiseConstantSchedule",
    "PowerSchedule",
    "lr_find",
    "make_schedule",
    "optimizer_from_config",
    "plot_schedule",
    "training_steps",
    # diagnostics
    "DiagnosticsCallback",
    "DiagnosticsReport",
    "check_model",
    "diagnostics",
    "find_pathologies",
    # tuning and distribution (imported on first use)
    "Choice",
    "Fixed",
    "Float",
    "Int",
    "SearchSpace",
    "TuneResult",
    "TuningError",
    "distribute",
    "trials_frame",
    "tune",
    "tuning",
    # uncertainty (MC dropout)
    "MCDropoutPredictor",
    "MCPrediction",
    "brier_score",
    "compare_mc_dropout",
    "expected_calibration_error",
    "mc_predict",
    "negative_log_likelihood",
    "rejection_curve",
    "reliability_diagram",
    "to_mc_dropout",
    "to_standard_dropout",
    "uncertainty",
    # transfer learning and pretraining
    "fine_tune",
    "pretrain_autoencoder",
    "pretrain_auxiliary",
    "reuse_layers",
    "transfer",
]
