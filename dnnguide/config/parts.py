"""The parts of a network configuration: regularization, optimizer, schedule, early stopping.

Each part is a frozen dataclass, validated at construction, that round-trips through
``to_dict``/``from_dict`` and JSON (:class:`_Serializable`, shared with
:class:`~dnnguide.config.NetworkConfig`) and is varied with :func:`replace`.

Example:
    >>> ScheduleConfig.from_json(ScheduleConfig("piecewise", boundaries=(100,),
    ...                                         values=(0.1, 0.01)).to_json()).values
    (0.1, 0.01)
    >>> replace(OptimizerConfig(), name="adamw", weight_decay=1e-2).weight_decay
    0.01
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from dnnguide.config.checks import (
    DROPOUT_KINDS, OPTIMIZERS, SCHEDULES, ConfigError, _forbid, check_bool, check_choice,
    check_range,
)


# --------------------------------------------------------------------------- base
class _Serializable:
    """``to_dict``/``from_dict``/JSON for frozen dataclasses with nested configs."""

    _NESTED: dict[str, type] = {}

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, _Serializable):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__}.from_dict expects a dict. Received: {data!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"Unknown {cls.__name__} fields {unknown}. Valid fields: {sorted(names)}"
            )
        kwargs = {}
        for key, value in data.items():
            nested = cls._NESTED.get(key)
            if nested is not None and isinstance(value, dict):
                value = nested.from_dict(value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[key] = value
        return cls(**kwargs)

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))


def replace(config, **changes):
    """``dataclasses.replace`` that re-runs validation (frozen configs stay valid)."""
    return dataclasses.replace(config, **changes)


# --------------------------------------------------------------------------- parts
@dataclass(frozen=True)
class RegularizationConfig(_Serializable):
    """Weight penalties, dropout and max-norm.

    ``dropout_kind``: ``standard`` (Dropout), ``alpha`` (AlphaDropout, for SELU),
    ``mc`` / ``mc_alpha`` (always-on dropout for Monte Carlo prediction).
    ``dropout_layers``: how many of the top hidden layers get dropout (``None``: all).
    ``dropout_choices``: rates a cross-fit (``NetworkConfig.cross_fit``) trains and chooses
    between by their out-of-fold predictions; the chosen one replaces ``dropout_rate``.
    """

    l1: float = 0.0
    l2: float = 0.0
    dropout_rate: float = 0.0
    dropout_kind: str = "standard"
    max_norm: float | None = None
    dropout_layers: int | None = None
    dropout_choices: tuple[float, ...] = ()

    def __post_init__(self):
        if isinstance(self.dropout_choices, (list, tuple)):  # JSON gives a list
            object.__setattr__(self, "dropout_choices", tuple(self.dropout_choices))
        else:
            raise ConfigError("Argument `dropout_choices` must be a list of dropout rates, such "
                              f"as [0.0, 0.2]. Received: dropout_choices={self.dropout_choices!r}")
        for rate in self.dropout_choices:
            check_range("dropout_choices", rate, 0.0, 1.0, high_inclusive=False)
        check_range("l1", self.l1, 0.0)
        check_range("l2", self.l2, 0.0)
        check_range("dropout_rate", self.dropout_rate, 0.0, 1.0, high_inclusive=False)
        check_choice("dropout_kind", self.dropout_kind, DROPOUT_KINDS)
        if self.max_norm is not None:
            check_range("max_norm", self.max_norm, 0.0, low_inclusive=False)
        if self.dropout_layers is not None:
            check_range("dropout_layers", self.dropout_layers, 1, integer=True)


@dataclass(frozen=True)
class OptimizerConfig(_Serializable):
    """One row of the optimizer table plus gradient clipping.

    ``momentum`` is used by ``momentum`` and ``nesterov``; ``beta_1``/``beta_2`` by
    the Adam family; ``weight_decay`` is decoupled (AdamW, or SGD's own).
    """

    name: str = "nesterov"
    learning_rate: float = 0.01
    momentum: float = 0.9
    beta_1: float = 0.9
    beta_2: float = 0.999
    weight_decay: float = 0.0
    clipnorm: float | None = None
    clipvalue: float | None = None

    def __post_init__(self):
        check_choice("optimizer", self.name, OPTIMIZERS)
        check_range("learning_rate", self.learning_rate, 0.0, low_inclusive=False)
        check_range("momentum", self.momentum, 0.0, 1.0, high_inclusive=False)
        check_range("beta_1", self.beta_1, 0.0, 1.0, high_inclusive=False)
        check_range("beta_2", self.beta_2, 0.0, 1.0, high_inclusive=False)
        check_range("weight_decay", self.weight_decay, 0.0)
        for name in ("clipnorm", "clipvalue"):
            value = getattr(self, name)
            if value is not None:
                check_range(name, value, 0.0, low_inclusive=False)
        _forbid(
            self.clipnorm is not None and self.clipvalue is not None,
            "Arguments `clipnorm` and `clipvalue` are exclusive: clip by norm (keeps the "
            f"gradient's direction, preferred) or by value. Received: clipnorm={self.clipnorm}, "
            f"clipvalue={self.clipvalue}",
        )
        _forbid(
            self.weight_decay > 0 and self.name not in ("adamw", "sgd", "momentum", "nesterov"),
            f"Argument `weight_decay` is decoupled weight decay, supported by 'adamw' and the "
            f"SGD family. Received: optimizer={self.name!r}, weight_decay={self.weight_decay}. "
            "Use optimizer='adamw' (not L2 on Adam: it does not regularize adaptive optimizers "
            "the same way, Loshchilov & Hutter 2019).",
        )


@dataclass(frozen=True)
class ScheduleConfig(_Serializable):
    """A learning-rate schedule.

    - ``power``: ``lr0 / (1 + step / decay_steps) ** power``
    - ``exponential``: ``lr0 * 0.1 ** (step / decay_steps)``
    - ``piecewise``: ``values[i]`` until ``boundaries[i]`` (``len(values) == len(boundaries) + 1``)
    - ``performance``: multiply the LR by ``factor`` after ``patience`` epochs without improvement
    - ``onecycle``: Smith 2018; ``max_lr`` (default: the optimizer's learning rate),
      ``pct_start`` of the steps rising from ``max_lr / div_factor``, then falling, then annealing
      to ``max_lr / final_div_factor``; momentum cycles inversely between
      ``max_momentum`` and ``min_momentum``. ``total_steps`` is filled in by the runner.
    """

    name: str = "constant"
    decay_steps: int = 10_000
    power: float = 1.0
    boundaries: tuple[int, ...] = ()
    values: tuple[float, ...] = ()
    factor: float = 0.5
    patience: int = 5
    min_lr: float = 1e-6
    max_lr: float | None = None
    pct_start: float = 0.45
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    max_momentum: float = 0.95
    min_momentum: float = 0.85
    total_steps: int | None = None

    def __post_init__(self):
        check_choice("schedule", self.name, SCHEDULES)
        check_range("decay_steps", self.decay_steps, 1, integer=True)
        check_range("power", self.power, 0.0, low_inclusive=False)
        check_range("factor", self.factor, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
        check_range("patience", self.patience, 0, integer=True)
        check_range("min_lr", self.min_lr, 0.0)
        # 1cycle's rise and fall each take pct_start of the steps: both must fit in the budget.
        check_range("pct_start", self.pct_start, 0.0, 0.5, low_inclusive=False)
        check_range("div_factor", self.div_factor, 1.0)
        check_range("final_div_factor", self.final_div_factor, 1.0)
        check_range("max_momentum", self.max_momentum, 0.0, 1.0, high_inclusive=False)
        check_range("min_momentum", self.min_momentum, 0.0, self.max_momentum)
        if self.max_lr is not None:
            check_range("max_lr", self.max_lr, 0.0, low_inclusive=False)
        if self.total_steps is not None:
            check_range("total_steps", self.total_steps, 1, integer=True)
        if self.name == "piecewise":
            _forbid(
                len(self.values) != len(self.boundaries) + 1 or not self.boundaries,
                "A piecewise schedule needs `boundaries` (increasing steps) and one more "
                f"`values` than boundaries. Received: boundaries={list(self.boundaries)}, "
                f"values={list(self.values)}",
            )
            _forbid(
                list(self.boundaries) != sorted(set(self.boundaries)),
                "Argument `boundaries` must be strictly increasing. "
                f"Received: boundaries={list(self.boundaries)}",
            )

    @property
    def is_callback(self) -> bool:
        """Performance scheduling acts between epochs (a callback), not inside the optimizer."""
        return self.name == "performance"


@dataclass(frozen=True)
class EarlyStoppingConfig(_Serializable):
    """Stop when the monitored metric stops improving and keep the best weights."""

    enabled: bool = True
    monitor: str = "val_loss"
    patience: int = 10
    restore_best_weights: bool = True
    #: Epochs trained before the monitor counts: no stop, and no best weights, before it.
    start_from_epoch: int = 0

    def __post_init__(self):
        check_range("patience", self.patience, 0, integer=True)
        check_range("start_from_epoch", self.start_from_epoch, 0, integer=True)
        check_bool("enabled", self.enabled)
        check_bool("restore_best_weights", self.restore_best_weights)
