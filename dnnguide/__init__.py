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

from dnnguide._startup import install_keras_hook  # noqa: E402

# At the first `import keras` (by dnnguide or by you): TensorFlow's start-up lines are filtered
# from stderr and dnnguide's Keras classes registered, so `keras.saving.load_model` reads runs.
install_keras_hook()

from dnnguide import runs  # noqa: E402  (light: no Keras)
from dnnguide.config import (  # noqa: E402
    ConfigError,
    EarlyStoppingConfig,
    NetworkConfig,
    OptimizerConfig,
    RegularizationConfig,
    ScheduleConfig,
    replace,
)
from dnnguide.data import Dataset, DataError, load_dataset  # noqa: E402
from dnnguide.data_rules import DataProfile  # noqa: E402
from dnnguide.guidelines import Recommendation, recommend  # noqa: E402
from dnnguide.runs import (  # noqa: E402
    CheckpointError, RunDirError, RunExistsError, RunLockedError,
)

__version__ = "0.1.0"

# Everything that needs Keras (so TensorFlow, ~5-20 s to import) is imported on first use:
# `import dnnguide`, `dnnguide --help`, `presets`, `recommend` and `runs` never load it.
_LAZY_MODULES = {
    "dnnguide.diagnostics": ["diagnostics", "DiagnosticsCallback", "DiagnosticsReport",
                             "DiagnosticsWarning", "check_model", "find_pathologies"],
    "dnnguide.layers": ["Calibration", "MCAlphaDropout", "MCDropout", "to_mc_dropout",
                        "to_standard_dropout"],
    "dnnguide.lr_finder": ["LRFinderResult", "lr_find", "onecycle_peak"],
    "dnnguide.optimizers": ["make_optimizer", "optimizer_from_config"],
    "dnnguide.presets": ["build_model", "describe_preset", "get_preset", "list_presets"],
    "dnnguide.schedules": ["ExponentialSchedule", "OneCycleMomentum", "OneCycleSchedule",
                           "PiecewiseConstantSchedule", "PowerSchedule", "make_schedule",
                           "plot_schedule", "training_steps"],
    "dnnguide.training": ["RunResult", "fit", "InputScaleWarning", "RunInterrupted"],
    "dnnguide.predict": ["Predictor", "load_run"],
    "dnnguide.uncertainty_report": ["compare_mc_dropout"],
    "dnnguide.uncertainty": ["uncertainty", "MCDropoutPredictor", "MCPrediction", "brier_score",
                             "calibrate", "expected_calibration_error", "mc_predict",
                             "negative_log_likelihood", "rejection_curve",
                             "reliability_diagram", "NoDropoutWarning"],
    # keras-tuner and tf.distribute are slow to import and not always needed.
    "dnnguide.tuning": ["tuning", "tune", "TuneResult", "TuningError", "SearchSpace", "Choice",
                        "Int", "Float", "Fixed", "trials_frame", "InvalidTrialError"],
    "dnnguide.distribute": ["distribute"],
    # TF-only; TF-MOT itself loads only when pruning or QAT runs
    "dnnguide.compress": ["compress"],
    "dnnguide.auditing": ["audit", "AuditReport"],
    "dnnguide.transfer": ["transfer", "reuse_layers", "fine_tune"],
    "dnnguide.pretrain": ["pretrain_autoencoder", "pretrain_auxiliary"],
}
_LAZY = {name: module for module, names in _LAZY_MODULES.items() for name in names}


def __getattr__(name):
    import importlib

    if name not in _LAZY:
        raise AttributeError(f"module 'dnnguide' has no attribute {name!r}")
    from dnnguide._startup import import_keras

    import_keras()  # first, so TensorFlow's start-up chatter is filtered
    module = importlib.import_module(_LAZY[name])
    value = module if module.__name__ == f"dnnguide.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ConfigError",
    "DataError",
    "DataProfile",
    "Dataset",
    "EarlyStoppingConfig",
    "MCAlphaDropout",
    "MCDropout",
    "NetworkConfig",
    "Predictor",
    "OptimizerConfig",
    "Recommendation",
    "RegularizationConfig",
    "RunResult",
    "ScheduleConfig",
    "build_model",
    "describe_preset",
    "fit",
    "get_preset",
    "list_presets",
    "load_dataset",
    "load_run",
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
    "onecycle_peak",
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
    # uncertainty (MC dropout, calibration)
    "Calibration",
    "MCDropoutPredictor",
    "MCPrediction",
    "brier_score",
    "calibrate",
    "compare_mc_dropout",
    "expected_calibration_error",
    "mc_predict",
    "negative_log_likelihood",
    "rejection_curve",
    "reliability_diagram",
    "to_mc_dropout",
    "to_standard_dropout",
    "uncertainty",
    # compression (pruning, quantization, BN folding, export; imported on first use)
    "compress",
    # warning and error classes (ConfigError, DataError, TuningError are listed above)
    "DiagnosticsWarning",
    "InputScaleWarning",
    "InvalidTrialError",
    "NoDropoutWarning",
    "RunExistsError",
    "RunLockedError",
    "RunDirError",
    "CheckpointError",
    "RunInterrupted",
    # audit (static guideline check of any Keras model)
    "AuditReport",
    "audit",
    # transfer learning and pretraining
    "fine_tune",
    "pretrain_autoencoder",
    "pretrain_auxiliary",
    "reuse_layers",
    "transfer",
]
