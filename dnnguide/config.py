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
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

ACTIVATIONS = (
    "relu", "leaky_relu", "elu", "selu", "swish", "gelu", "mish", "tanh", "sigmoid", "softplus",
)
RELU_FAMILY = ("relu", "leaky_relu")
INITIALIZERS = (
    "he_normal", "he_uniform", "lecun_normal", "lecun_uniform", "glorot_normal", "glorot_uniform",
)
NORMALIZATIONS = ("none", "batch_norm_before", "batch_norm_after")
DROPOUT_KINDS = ("standard", "alpha", "mc", "mc_alpha")
ARCHITECTURES = ("sequential", "residual")
OPTIMIZERS = (
    "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamax", "nadam", "adamw",
)
SCHEDULES = ("constant", "power", "exponential", "piecewise", "performance", "onecycle")
PRECISIONS = ("float32", "float16", "int8")
TASKS = ("classification", "binary", "regression")


class ConfigError(ValueError):
    """An invalid or guideline-breaking configuration."""


# --------------------------------------------------------------------------- checks
def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices`` (with a close-match hint)."""
    if value in choices:
        return
    hint = ""
    if isinstance(value, str):
        close = difflib.get_close_matches(value, choices, n=1)
        if close:
            hint = f" Did you mean {close[0]!r}?"
    raise ConfigError(
        f"Argument `{name}` must be one of {list(choices)}. Received: {name}={value!r}.{hint}"
    )


def check_range(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    integer: bool = False,
) -> None:
    """Raise ConfigError unless ``value`` is a finite number inside the given interval.

    The one numeric validator: Python and NumPy numbers (``np.int64``, ``np.float32``) are
    accepted alike, booleans are not numbers here, and NaN or infinity is refused everywhere
    (NaN compares false with every bound, so an interval check alone would let it through).

    Example:
        >>> check_range("learning_rate", float("nan"), 0.0)
        Traceback (most recent call last):
        ...
        dnnguide.config.ConfigError: Argument `learning_rate` must be a finite number. Received: learning_rate=nan
    """
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, numbers.Integral if integer else numbers.Real)
    if isinstance(value, bool) or not ok_type:
        raise ConfigError(f"Argument `{name}` must be {kind}. Received: {name}={value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"Argument `{name}` must be a finite number. Received: {name}={value!r}")
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ConfigError(
            f"Argument `{name}` must be in {left}{lo}, {hi}{right}. Received: {name}={value!r}"
        )


def check_bool(name: str, value: Any) -> None:
    """Raise ConfigError unless ``value`` is a real boolean (the string "no" is not False)."""
    if not isinstance(value, bool):
        raise ConfigError(f"Argument `{name}` must be True or False. Received: {name}={value!r}")


#: Caps on the network's size: beyond them a dense stack takes minutes to build with no output
#: and far more memory than the guidelines' deep nets (tens to ~100 layers, a few hundred units).
MAX_DEPTH = 1000
MAX_WIDTH = 16384


def _forbid(condition: bool, message: str) -> None:
    if condition:
        raise ConfigError(message)


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
    """

    l1: float = 0.0
    l2: float = 0.0
    dropout_rate: float = 0.0
    dropout_kind: str = "standard"
    max_norm: float | None = None
    dropout_layers: int | None = None

    def __post_init__(self):
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

    def __post_init__(self):
        check_range("patience", self.patience, 0, integer=True)
        check_bool("enabled", self.enabled)
        check_bool("restore_best_weights", self.restore_best_weights)


# --------------------------------------------------------------------------- network
@dataclass(frozen=True)
class NetworkConfig(_Serializable):
    """A dense network and how to train it.

    ``width`` is one int for every hidden layer or a tuple of ``depth`` ints.
    A ``selu`` network is self-normalizing and must meet Klambauer et al. (2017)'s
    conditions: LeCun normal init, no normalization layers, no L1/L2/max-norm,
    AlphaDropout (``alpha``/``mc_alpha``), a sequential stack, standardized inputs.
    """

    name: str = "custom"
    depth: int = 5
    width: int | tuple[int, ...] = 100
    kernel_initializer: str = "he_normal"
    activation: str = "elu"
    normalization: str = "none"
    batch_norm_momentum: float = 0.99
    architecture: str = "sequential"
    standardize_inputs: bool = True
    standardize_target: bool = True
    regularization: RegularizationConfig = field(default_factory=RegularizationConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    batch_size: int = 32
    epochs: int = 100
    pruning_sparsity: float = 0.0
    fold_batch_norm: bool = False
    precision: str = "float32"

    _NESTED = {
        "regularization": RegularizationConfig,
        "optimizer": OptimizerConfig,
        "schedule": ScheduleConfig,
        "early_stopping": EarlyStoppingConfig,
    }

    def __post_init__(self):
        for key, cls in self._NESTED.items():
            value = getattr(self, key)
            if isinstance(value, dict):  # accept plain dicts, e.g. from JSON or kwargs
                object.__setattr__(self, key, cls.from_dict(value))
            elif not isinstance(value, cls):
                raise ConfigError(
                    f"Argument `{key}` must be a {cls.__name__} or a dict. Received: {key}={value!r}"
                )
        if isinstance(self.width, list):
            object.__setattr__(self, "width", tuple(self.width))
        check_range("depth", self.depth, 1, integer=True)
        _forbid(self.depth > MAX_DEPTH,
                f"Argument `depth` must be at most {MAX_DEPTH} hidden layers: deeper dense stacks "
                f"take minutes to build and do not train better. Received: depth={self.depth}")
        self._check_width()
        check_bool("standardize_inputs", self.standardize_inputs)
        check_bool("fold_batch_norm", self.fold_batch_norm)
        check_choice("kernel_initializer", self.kernel_initializer, INITIALIZERS)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("normalization", self.normalization, NORMALIZATIONS)
        check_range("batch_norm_momentum", self.batch_norm_momentum, 0.0, 1.0,
                    high_inclusive=False)
        check_choice("architecture", self.architecture, ARCHITECTURES)
        check_range("batch_size", self.batch_size, 1, integer=True)
        check_range("epochs", self.epochs, 1, integer=True)
        check_range("pruning_sparsity", self.pruning_sparsity, 0.0, 1.0, high_inclusive=False)
        check_choice("precision", self.precision, PRECISIONS)
        if self.architecture == "residual":
            _forbid(
                len(set(self.widths)) != 1,
                "A residual architecture adds each block's input to its output, so every hidden "
                f"layer needs the same width. Received: width={self.width!r}",
            )
        self._check_guidelines()
        if self.self_normalizing:
            self._check_self_normalizing()

    def _check_width(self) -> None:
        if isinstance(self.width, tuple):
            _forbid(
                len(self.width) != self.depth,
                f"Argument `width` must be one int or {self.depth} ints (one per hidden layer, "
                f"depth={self.depth}). Received: width={list(self.width)}",
            )
            for w in self.width:
                check_range("width", w, 1, integer=True)
        else:
            check_range("width", self.width, 1, integer=True)
        _forbid(max(self.widths) > MAX_WIDTH,
                f"Argument `width` must be at most {MAX_WIDTH} units per layer: two such layers "
                f"are joined by 268 million weights. Received: width={self.width!r}")

    def _check_guidelines(self) -> None:
        reg, opt = self.regularization, self.optimizer
        _forbid(
            opt.name == "adamw" and reg.l2 > 0,
            f"AdamW with L2 kernel regularization (l2={reg.l2}) decays the weights twice. "
            "Use AdamW's decoupled `weight_decay` instead and set l2=0.",
        )
        _forbid(
            self.fold_batch_norm and self.normalization == "none",
            "Argument `fold_batch_norm=True` needs batch-norm layers to fold. "
            f"Received: normalization={self.normalization!r}",
        )

    def _check_self_normalizing(self) -> None:
        reg = self.regularization
        fix = " Self-normalization (SELU) needs"
        _forbid(
            self.normalization != "none",
            f"SELU self-normalization cannot be combined with batch norm. Received: "
            f"normalization={self.normalization!r}.{fix} normalization='none'; for batch norm "
            "use activation='swish' or 'elu' instead.",
        )
        _forbid(
            self.kernel_initializer not in ("lecun_normal", "lecun_uniform"),
            f"SELU self-normalization needs LeCun initialization. Received: "
            f"kernel_initializer={self.kernel_initializer!r}. Use kernel_initializer='lecun_normal'.",
        )
        _forbid(
            reg.l1 > 0 or reg.l2 > 0 or reg.max_norm is not None,
            f"SELU self-normalization cannot be combined with L1/L2 or max-norm regularization "
            f"(they shift the weight statistics it relies on). Received: l1={reg.l1}, "
            f"l2={reg.l2}, max_norm={reg.max_norm}. Use AlphaDropout "
            "(dropout_kind='alpha') for regularization, or a non-SELU activation.",
        )
        _forbid(
            reg.dropout_rate > 0 and reg.dropout_kind not in ("alpha", "mc_alpha"),
            f"SELU self-normalization cannot use dropout_kind={reg.dropout_kind!r}: standard "
            "dropout breaks the mean/variance it preserves. Use dropout_kind='alpha' "
            "(or 'mc_alpha' for MC dropout).",
        )
        _forbid(
            self.architecture != "sequential",
            f"SELU self-normalization only holds for a sequential stack of dense layers. "
            f"Received: architecture={self.architecture!r}. Use architecture='sequential'.",
        )
        _forbid(
            self.pruning_sparsity > 0,
            f"Pruning (pruning_sparsity={self.pruning_sparsity}) breaks self-normalization. "
            "For a sparse model use the 'sparse' preset (ELU/ReLU family, L1, pruning).",
        )

    # ----------------------------------------------------------------- derived
    @property
    def widths(self) -> tuple[int, ...]:
        """One width per hidden layer."""
        if isinstance(self.width, tuple):
            return self.width
        return (self.width,) * self.depth

    @property
    def self_normalizing(self) -> bool:
        """SELU networks are meant to self-normalize; their conditions are enforced."""
        return self.activation == "selu"

    @property
    def uses_mc_dropout(self) -> bool:
        reg = self.regularization
        return reg.dropout_rate > 0 and reg.dropout_kind in ("mc", "mc_alpha")


def nested_overrides(config: NetworkConfig, **overrides) -> NetworkConfig:
    """Apply flat overrides to a config, routing nested field names to their part.

    ``nested_overrides(cfg, depth=20, dropout_rate=0.1, learning_rate=3e-3)`` sets
    ``depth`` on the network, ``dropout_rate`` on its regularization and
    ``learning_rate`` on its optimizer. Dotted names (``"optimizer.name"``) and the
    short aliases ``optimizer="adamw"``/``schedule="onecycle"`` work too. An unknown
    name raises ConfigError listing the valid ones: nothing is dropped silently.
    """
    top = {f.name for f in dataclasses.fields(NetworkConfig)}
    parts = {key: {f.name for f in dataclasses.fields(cls)}
             for key, cls in NetworkConfig._NESTED.items()}
    direct: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {key: {} for key in parts}
    for key, value in overrides.items():
        if "." in key:
            part, sub = key.split(".", 1)
            check_choice("part", part, tuple(parts))
            check_choice(f"{part} field", sub, tuple(sorted(parts[part])))
            nested[part][sub] = value
        elif key in ("optimizer", "schedule") and isinstance(value, str):
            nested[key]["name"] = value
        elif key in top:
            direct[key] = value
        else:
            owners = [part for part, names in parts.items() if key in names]
            if len(owners) != 1:
                valid = sorted(top | set().union(*parts.values()))
                check_choice("override", key, tuple(valid))
                raise ConfigError(  # ambiguous (e.g. `patience`): ask for a dotted name
                    f"Override `{key}` exists in {owners}; use a dotted name such as "
                    f"'{owners[0]}.{key}'."
                )
            nested[owners[0]][key] = value
    for part, changes in nested.items():
        if changes:
            base = direct.pop(part, getattr(config, part))
            if isinstance(base, dict):
                base = NetworkConfig._NESTED[part].from_dict(base)
            direct[part] = dataclasses.replace(base, **changes)
    return dataclasses.replace(config, **direct) if direct else config
