"""Frozen, validated configuration of a dense network and how to train it.

Every dataclass here is immutable, compares by value, round-trips through
``to_dict``/``from_dict`` (and JSON), and is varied with :func:`replace`.
Validation runs at construction, once, so an invalid configuration never
reaches training. Errors use the Keras form::

    Argument `activation` must be one of ['elu', ...]. Received: activation='selu_'

Example:
    >>> from dnnguide.config import NetworkConfig, replace
    >>> cfg = NetworkConfig(depth=3, width=64)
    >>> replace(cfg, depth=4).depth
    4
    >>> NetworkConfig.from_dict(cfg.to_dict()) == cfg
    True

The implementation, one way down: ``checks`` (choices and validators) <- ``parts`` (the
regularization, optimizer, schedule and early-stopping dataclasses) <- ``network``
(:class:`NetworkConfig`, :func:`nested_overrides`). Import from here.
"""

from dnnguide.config.checks import (
    ACTIVATIONS,
    ARCHITECTURES,
    CALIBRATIONS,
    DROPOUT_KINDS,
    INITIALIZERS,
    MAX_DEPTH,
    MAX_ENSEMBLE,
    MAX_WIDTH,
    NORMALIZATIONS,
    OPTIMIZERS,
    POOLINGS,
    PRECISIONS,
    RELU_FAMILY,
    SCHEDULES,
    TASKS,
    ConfigError,
    check_bool,
    check_choice,
    check_pooling,
    check_range,
)
from dnnguide.config.network import NetworkConfig, nested_overrides
from dnnguide.config.parts import (
    EarlyStoppingConfig,
    OptimizerConfig,
    RegularizationConfig,
    ScheduleConfig,
    replace,
)

__all__ = [
    "ACTIVATIONS", "ARCHITECTURES", "CALIBRATIONS", "DROPOUT_KINDS", "INITIALIZERS", "MAX_DEPTH",
    "MAX_ENSEMBLE", "MAX_WIDTH", "NORMALIZATIONS", "OPTIMIZERS", "POOLINGS", "PRECISIONS",
    "RELU_FAMILY", "SCHEDULES", "TASKS",
    "ConfigError", "EarlyStoppingConfig", "NetworkConfig", "OptimizerConfig",
    "RegularizationConfig", "ScheduleConfig", "check_bool", "check_choice", "check_pooling",
    "check_range", "nested_overrides", "replace",
]
