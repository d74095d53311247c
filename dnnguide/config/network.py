"""The whole network configuration: :class:`NetworkConfig` and flat overrides of it.

:class:`NetworkConfig` holds the architecture and the training setup with its parts
(``dnnguide.config.parts``), and enforces the combinations the guidelines forbid (SELU's
self-normalizing conditions, AdamW with L2, a residual stack of mixed widths) when it is
built. :func:`nested_overrides` routes flat names (``dropout_rate=0.1``) to the part that
owns them.

Example:
    >>> cfg = nested_overrides(NetworkConfig(), depth=20, dropout_rate=0.1, optimizer="adamw")
    >>> cfg.depth, cfg.regularization.dropout_rate, cfg.optimizer.name
    (20, 0.1, 'adamw')
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from dnnguide.config.checks import (
    ACTIVATIONS, ARCHITECTURES, CALIBRATIONS, INITIALIZERS, MAX_DEPTH, MAX_ENSEMBLE, MAX_WIDTH,
    NORMALIZATIONS, PRECISIONS,
    ConfigError, _forbid, check_bool, check_choice, check_range,
)
from dnnguide.config.parts import (
    EarlyStoppingConfig, OptimizerConfig, RegularizationConfig, ScheduleConfig, _Serializable,
)


@dataclass(frozen=True)
class NetworkConfig(_Serializable):
    """A dense network and how to train it.

    ``width`` is one int for every hidden layer or a tuple of ``depth`` ints.
    A ``selu`` network is self-normalizing and must meet Klambauer et al. (2017)'s
    conditions: LeCun normal init, no normalization layers, no L1/L2/max-norm,
    AlphaDropout (``alpha``/``mc_alpha``), a sequential stack, standardized inputs.
    ``ensemble`` > 1 trains that many such nets from different seeds and pools them
    (:mod:`dnnguide.ensemble`). ``cross_fit`` > 1 trains one net on each of that many folds of
    train + validation, each early-stopped on its own fold, and pools them; with
    ``regularization.dropout_choices`` it trains the folds once per dropout rate and keeps the
    rate whose out-of-fold predictions score best (:mod:`dnnguide.cross_fit`). Regression only.
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
    calibration: str = "temperature"
    ensemble: int = 1
    cross_fit: int = 1

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
        check_choice("calibration", self.calibration, CALIBRATIONS)
        check_range("ensemble", self.ensemble, 1, MAX_ENSEMBLE, integer=True)
        check_range("cross_fit", self.cross_fit, 1, MAX_ENSEMBLE, integer=True)
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
            self.nets > 1 and (self.pruning_sparsity > 0 or self.fold_batch_norm
                               or self.precision != "float32"),
            f"An ensemble of {self.nets} nets cannot be compressed: pruning, batch-norm "
            "folding and 16/8-bit export each make one small net, and an ensemble is several. "
            f"Received: ensemble={self.ensemble}, cross_fit={self.cross_fit}, "
            f"pruning_sparsity={self.pruning_sparsity}, fold_batch_norm={self.fold_batch_norm}, "
            f"precision={self.precision!r}. Use ensemble=1 and cross_fit=1 for a compressed "
            "model.",
        )
        self._check_cross_fit()
        _forbid(
            self.fold_batch_norm and self.normalization == "none",
            "Argument `fold_batch_norm=True` needs batch-norm layers to fold. "
            f"Received: normalization={self.normalization!r}",
        )

    @property
    def nets(self) -> int:
        """How many nets the trained model pools: ``ensemble`` or ``cross_fit`` (never both)."""
        return max(self.ensemble, self.cross_fit)

    def _check_cross_fit(self) -> None:
        choices = self.regularization.dropout_choices
        _forbid(
            bool(choices) and self.cross_fit < 2,
            "Argument `dropout_choices` is chosen between by a cross-fit's out-of-fold "
            f"predictions, which needs cross_fit >= 2. Received: dropout_choices={list(choices)}, "
            f"cross_fit={self.cross_fit}. Set cross_fit=5, or give one dropout_rate instead.",
        )
        _forbid(
            self.cross_fit > 1 and self.ensemble > 1,
            f"Argument `cross_fit={self.cross_fit}` already pools one net per fold; an ensemble "
            f"of {self.ensemble} on top would train {self.cross_fit * self.ensemble}. Received: "
            f"ensemble={self.ensemble}, cross_fit={self.cross_fit}. Use one of them.",
        )
        _forbid(
            self.cross_fit > 1 and self.regularization.dropout_kind.startswith("mc"),
            f"Argument `cross_fit={self.cross_fit}` trains on the validation split, which MC "
            "dropout's calibration is fitted on. Received: dropout_kind="
            f"{self.regularization.dropout_kind!r}. Use cross_fit=1 (risk_sensitive trains an "
            "ensemble instead).",
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
