"""The practical guidelines as data, and ``recommend()`` which applies them.

Two tables (Géron, *Hands-On Machine Learning*, 3rd ed., tables 11-3 and 11-4):

- the **default DNN**: He initialization; ELU if shallow, Swish if deep; batch norm
  if deep; early stopping (+ weight decay if needed); Nesterov or AdamW;
  performance scheduling or 1cycle;
- the **self-normalizing DNN**: LeCun initialization; SELU; no normalization;
  AlphaDropout if needed; Nesterov; performance scheduling or 1cycle; standardized
  inputs and a plain stack of dense layers (Klambauer et al. 2017);

and three exceptions: a **sparse** model (L1 + pruning, never self-normalizing),
a **low-latency** model (fewer layers, BN folded, ReLU/LeakyReLU, 16/8-bit) and
**risk-sensitive** use (MC dropout, Gal & Ghahramani 2016).

Every field of the returned configuration carries its reason.

Example:
    >>> rec = recommend(depth="deep", risk_sensitive=True)
    >>> rec.config.activation, rec.config.normalization, rec.config.regularization.dropout_kind
    ('swish', 'batch_norm_after', 'mc')
    >>> print(rec.explain())  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from dnnguide import data_rules
from dnnguide.config import (
    EarlyStoppingConfig,
    NetworkConfig,
    OptimizerConfig,
    RegularizationConfig,
    ScheduleConfig,
    TASKS,
    check_choice,
    check_range,
)
from dnnguide.data_rules import DataProfile, choose_width

#: Units per hidden layer when no data is given to size it (:func:`data_rules.choose_width`).
DEFAULT_WIDTH = 100
#: Optimizers whose weight decay is decoupled from the gradient step (Loshchilov & Hutter 2019).
DECOUPLED_DECAY_OPTIMIZERS = ("adamw", "sgd", "momentum", "nesterov")
#: From this many hidden layers on a network counts as "deep".
DEEP_FROM = 10
#: Depth used for "shallow" / "deep" / low-latency when no number is given.
SHALLOW_DEPTH, DEEP_DEPTH, LOW_LATENCY_DEPTH = 5, 20, 3

# Each row: field -> (value, reason). Values that depend on depth are resolved in recommend().
DEFAULT_TABLE: dict[str, tuple[Any, str]] = {
    "kernel_initializer": (
        "he_normal",
        "He initialization keeps the variance of ReLU-family activations (ELU, Swish) "
        "constant across layers, so gradients neither vanish nor explode at the start "
        "(He et al. 2015).",
    ),
    "activation.shallow": (
        "elu",
        "ELU is smooth, has non-zero gradients for negative inputs (no dead units) and "
        "outputs with mean near 0; on a shallow net it needs no normalization.",
    ),
    "activation.deep": (
        "swish",
        "Swish (SiLU) outperforms ReLU/ELU on deep nets (Ramachandran et al. 2017) and "
        "pairs well with batch norm.",
    ),
    "normalization.shallow": (
        "none",
        "A shallow net with He init and ELU trains stably without normalization; batch "
        "norm would only add run-time cost.",
    ),
    "normalization.deep": (
        "batch_norm_after",
        "Batch norm keeps activations standardized through a deep stack, which fights "
        "vanishing/exploding gradients and allows larger learning rates (Ioffe & Szegedy 2015).",
    ),
    "regularization": (
        RegularizationConfig(),
        "Early stopping is the first regularizer; add weight decay only if the model overfits.",
    ),
    "regularization.overfitting": (
        None,  # AdamW's decoupled weight decay; set on the optimizer row
        "The model overfits: decoupled weight decay (AdamW's, or SGD's own) regularizes "
        "without the interference L2 has with adaptive optimizers (Loshchilov & Hutter 2019).",
    ),
    "optimizer": (
        OptimizerConfig(name="adamw", learning_rate=1e-3, weight_decay=0.0),
        "AdamW (or Nesterov): adaptive, converges fast and is forgiving of the learning rate; "
        "its weight decay is decoupled from the gradient step.",
    ),
    "optimizer.deep": (
        OptimizerConfig(name="nesterov", learning_rate=0.01, momentum=0.9),
        "Nesterov momentum SGD, the table's other choice (optimizer='adamw' is the first): on "
        "a deep batch-norm stack it generalized better on small data (mnist1d, 20 layers, "
        "dropout after the last batch norm: 0.74 test accuracy vs 0.67 for AdamW at 1e-3; "
        "digits: 0.94 vs 0.64 before the dropout placement rule).",
    ),
    "dropout_layers.batch_norm": (
        1,
        "With batch norm, dropout goes after the last batch-norm layer only: dropout in front "
        "of a batch-norm layer shifts the variance it normalizes between training and "
        "inference (Li et al. 2019, 'Understanding the Disharmony between Dropout and Batch "
        "Normalization'). mnist1d, 20 layers: test accuracy 0.52 with dropout after every "
        "layer, 0.74 after the last one only.",
    ),
    "schedule": (
        ScheduleConfig(name="performance", factor=0.5, patience=5),
        "Performance scheduling (halve the LR when validation loss plateaus) needs no "
        "knowledge of the training length; 1cycle is the alternative when the budget is known.",
    ),
    "early_stopping": (
        EarlyStoppingConfig(patience=10),
        "Stop when validation loss has not improved for 10 epochs and keep the best weights.",
    ),
}

# What choosing 1cycle implies (it needs a known budget, used to the end).
ONECYCLE_TABLE: dict[str, tuple[Any, str]] = {
    "epochs": (
        30,
        "1cycle's budget: the cycle spans exactly these epochs and is never cut short. Smith "
        "(2018) reaches a constant learning rate's accuracy in a fraction of its epochs.",
    ),
    "early_stopping": (
        EarlyStoppingConfig(enabled=False),
        "No early stopping with 1cycle: a cycle cut before its end never anneals the learning "
        "rate (mnist1d: runs stopped at epochs 23-52 of 100, before the peak).",
    ),
    "max_lr": (
        None,
        "1cycle's peak learning rate: the LR finder's suggestion on this model and data, when "
        "not given (Smith 2018: the largest rate at which the loss still falls fast).",
    ),
}

SELF_NORMALIZING_TABLE: dict[str, tuple[Any, str]] = {
    "kernel_initializer": (
        "lecun_normal",
        "SELU self-normalizes only with LeCun normal initialization (Klambauer et al. 2017).",
    ),
    "activation": (
        "selu",
        "SELU pushes each layer's outputs towards mean 0 and std 1, so a deep plain stack "
        "trains without batch norm.",
    ),
    "normalization": (
        "none",
        "Self-normalization replaces batch norm; adding it would break the SELU fixed point.",
    ),
    "regularization": (
        RegularizationConfig(dropout_kind="alpha"),
        "No L1/L2/max-norm (they break self-normalization); AlphaDropout if regularization "
        "is needed, since it preserves mean and variance.",
    ),
    "optimizer": (
        OptimizerConfig(name="nesterov", learning_rate=0.01, momentum=0.9),
        "Nesterov accelerated gradient: momentum SGD that looks ahead, the table's choice "
        "for self-normalizing nets.",
    ),
    "schedule": (
        ScheduleConfig(name="performance", factor=0.5, patience=5),
        "Performance scheduling (or 1cycle when the training budget is known).",
    ),
    "early_stopping": (
        EarlyStoppingConfig(patience=10),
        "Stop when validation loss has not improved for 10 epochs and keep the best weights.",
    ),
    "standardize_inputs": (
        True,
        "Self-normalization assumes standardized inputs (mean 0, std 1 per feature).",
    ),
}

# Fields both tables leave at their usual value; the reason says why that value is the default.
COMMON_TABLE: dict[str, str] = {
    "width": "The same width in every hidden layer works as well as a pyramid and leaves one "
    "hyperparameter instead of many; prefer more layers to wider ones (Géron ch. 10).",
    "batch_norm_momentum": "Keras' 0.99 (moving statistics averaged over ~100 steps); used only "
    "with batch norm, and shortened by the data-aware rule when an epoch is short.",
    "architecture": "A plain sequential stack of Dense layers, the setting both tables assume.",
    "standardize_inputs": "Gradient descent converges faster on features with mean 0 and std 1; "
    "the statistics come from the training split only.",
    "standardize_target": "Regression targets are standardized for training (training-split "
    "statistics) and mapped back inside the model: raw targets such as diabetes' (mean 152, std "
    "77) make MSE gradients thousands of times larger and diverge SGD-family optimizers, while "
    "predictions and RMSE/MAE stay in the original units.",
    "batch_size": "32: small batches generalize well and are a safe default (Masters & Luschi "
    "2018); larger ones need a warm-up such as 1cycle's.",
    "epochs": "An upper bound only: early stopping ends training when validation loss stops "
    "improving.",
    "pruning_sparsity": "No pruning: only a model that must be sparse is pruned.",
    "fold_batch_norm": "Nothing to fold: only low-latency models fold batch norm for inference.",
    "precision": "Train and export in float32; 16/8-bit export is for low-latency models.",
}

#: The values the exceptions set (their reasons are in :data:`EXCEPTIONS_TABLE`).
EXCEPTION_VALUES: dict[str, dict[str, Any]] = {
    "sparse": {"l1": 1e-5, "pruning_sparsity": 0.8},
    "low_latency": {"kernel_initializer": "he_normal", "activation": "relu",
                    "normalization": "batch_norm_before", "fold_batch_norm": True,
                    "precision": "int8"},
    "risk_sensitive": {"dropout_rate": 0.2},
    # Without data to look at, "the model overfits" adds this much decoupled weight decay.
    "overfitting": {"weight_decay": 0.004},
}

EXCEPTIONS_TABLE: dict[str, dict[str, str]] = {
    "sparse": {
        "l1": "L1 regularization drives many weights to exactly zero.",
        "pruning_sparsity": "Magnitude pruning (TF-MOT) removes the smallest weights during "
        "training to reach the target sparsity.",
        "activation": "Pruning and L1 break self-normalization, so a sparse model never uses "
        "SELU: the default table's activation is kept.",
    },
    "low_latency": {
        "depth": "Fewer layers mean fewer sequential matrix products per prediction.",
        "activation": "ReLU is the cheapest activation to compute (LeakyReLU if units die).",
        "normalization": "Batch norm right after each Dense (before the activation) so it can "
        "be folded into the Dense weights for inference at no cost.",
        "fold_batch_norm": "Folded BN layers cost nothing at inference time.",
        "precision": "Reduce float precision to 16 or 8 bits at export (post-training "
        "quantization) for smaller, faster models.",
    },
    "risk_sensitive": {
        "dropout": "MC dropout: keep dropout on at prediction time and average many "
        "predictions for better accuracy and calibrated uncertainty, with no retraining "
        "(Gal & Ghahramani 2016).",
    },
}


@dataclass(frozen=True)
class Recommendation:
    """A configuration plus the reason for each choice (``reasons[field] -> text``)."""

    config: NetworkConfig
    reasons: dict[str, str] = field(default_factory=dict)
    situation: dict[str, Any] = field(default_factory=dict)

    def table(self):
        """The choices and reasons as a pandas DataFrame (field, value, reason)."""
        import pandas as pd

        rows = [
            {"field": name, "value": _value_of(self.config, name), "reason": reason}
            for name, reason in self.reasons.items()
        ]
        return pd.DataFrame(rows, columns=["field", "value", "reason"])

    def explain(self, width: int = 100) -> str:
        """A printable table: one line per choice, its value, and why."""
        import textwrap

        lines = [f"Recommendation for {self.situation}"]
        indent = " " * 46
        for row in self.table().itertuples(index=False):
            head = f"{row.field:<22} {str(row.value):<22} "
            wrapped = textwrap.wrap(row.reason, width=max(width - len(indent), 30))
            if len(head) > len(indent):  # a long value gets the line to itself
                lines.append(head.rstrip())
                head = indent
            lines.append(head + wrapped[0])
            lines.extend(indent + more for more in wrapped[1:])
        return "\n".join(lines)

    def __str__(self) -> str:  # print(rec) shows the table
        return self.explain()


def _value_of(config: NetworkConfig, name: str):
    """A short display value: a part's name, or its non-default fields (``l1=1e-05``)."""
    obj = config
    for part in name.split("."):
        obj = getattr(obj, part)
    if not dataclasses.is_dataclass(obj):
        return obj
    default = type(obj)()
    changed = [f"{f.name}={getattr(obj, f.name)}" for f in dataclasses.fields(obj)
               if f.name != "name" and getattr(obj, f.name) != getattr(default, f.name)]
    head = [obj.name] if hasattr(obj, "name") else []
    return " ".join(head + changed) or "defaults"


def _resolve_depth(depth) -> int:
    if depth is None or depth == "shallow":
        return SHALLOW_DEPTH
    if depth == "deep":
        return DEEP_DEPTH
    if isinstance(depth, str):
        check_choice("depth", depth, ("shallow", "deep"))
    check_range("depth", depth, 1, integer=True)
    return depth


def recommend(
    depth: int | str | None = None,
    *,
    width: int | None = None,
    sparse: bool = False,
    low_latency: bool = False,
    risk_sensitive: bool = False,
    self_normalizing: bool = False,
    overfitting: bool = False,
    dropout_rate: float | None = None,
    task: str | None = None,
    data=None,
) -> Recommendation:
    """Apply the guideline tables to a situation, and the data-aware rules to the data.

    Args:
        depth: number of hidden layers, or ``"shallow"`` / ``"deep"``.
        width: units per hidden layer (default: from the data's features, else 100).
        sparse: the model must be sparse (L1 + pruning; never self-normalizing).
        low_latency: the model must predict fast (fewer layers, ReLU, BN folded, 8-bit).
        risk_sensitive: uncertainty matters (MC dropout).
        self_normalizing: prefer the self-normalizing table (SELU) where allowed.
        overfitting: the model overfits; add regularization (weight decay or AlphaDropout).
        dropout_rate: the dropout rate used when dropout is called for (default 0.2).
        task: ``"classification"``, ``"binary"`` or ``"regression"`` (default: the data's,
            else classification).
        data: a :class:`dnnguide.data.Dataset` or :class:`dnnguide.data_rules.DataProfile`;
            its rows, features, task and classes size and regularize the network
            (:mod:`dnnguide.data_rules`), each choice with the fact that triggered it.

    Returns:
        A :class:`Recommendation` with the config and a reason per field.

    Example:
        >>> from dnnguide.data_rules import DataProfile
        >>> rec = recommend(data=DataProfile(3600, 40, "classification", 10))
        >>> rec.config.width, rec.config.optimizer.weight_decay, rec.config.regularization.dropout_rate
        (256, 0.01, 0.2)
    """
    profile = DataProfile.of(data) if data is not None else None
    if task is not None:
        check_choice("task", task, TASKS)
        if profile is not None and task != profile.task:
            raise ValueError(f"Argument `task` contradicts the data: the data's task is "
                             f"{profile.task!r}. Received: task={task!r}")
    task = task or (profile.task if profile is not None else "classification")
    if dropout_rate is not None:
        check_range("dropout_rate", dropout_rate, 0.0, 1.0, high_inclusive=False)
    situation = {
        "depth": depth, "sparse": sparse, "low_latency": low_latency,
        "risk_sensitive": risk_sensitive, "self_normalizing": self_normalizing,
        "overfitting": overfitting, "task": task,
    }
    if profile is not None:
        situation["data"] = f"{profile.name}: {profile.n_train} rows x {profile.n_features} features"
    width_given, rate_given = width is not None, dropout_rate is not None
    if dropout_rate is None:
        dropout_rate = EXCEPTION_VALUES["risk_sensitive"]["dropout_rate"]
    if width is None:
        width = choose_width(profile) if profile is not None else DEFAULT_WIDTH
    if low_latency and depth is None:
        depth = LOW_LATENCY_DEPTH
    n_layers = _resolve_depth(depth)
    reasons: dict[str, str] = {}
    use_selu = self_normalizing and not sparse and not low_latency
    if use_selu:
        fields = _self_normalizing_fields(reasons, overfitting or risk_sensitive, dropout_rate)
    else:
        fields = _default_fields(reasons, n_layers, overfitting)
        if self_normalizing:
            why = "sparse" if sparse else "low_latency"
            reasons["activation"] = (
                f"Self-normalizing was asked for, but the {why} exception wins: "
                + (EXCEPTIONS_TABLE["sparse"]["activation"] if sparse
                   else "SELU is slower than ReLU and BN folding replaces self-normalization.")
            )
    fields.update(depth=n_layers, width=width)
    reasons.setdefault("depth", f"{n_layers} hidden layers "
                       f"({'deep' if n_layers >= DEEP_FROM else 'shallow'}: deep from {DEEP_FROM}).")
    if sparse:
        _apply_sparse(fields, reasons)
    if low_latency:
        _apply_low_latency(fields, reasons, depth_given=situation["depth"] is not None)
    if risk_sensitive:
        kind = "mc_alpha" if use_selu else "mc"
        reg = fields["regularization"]
        fields["regularization"] = RegularizationConfig(
            l1=reg.l1, l2=reg.l2, max_norm=reg.max_norm,
            dropout_rate=max(reg.dropout_rate, dropout_rate), dropout_kind=kind,
        )
        earlier = reasons["regularization"] + " " if sparse else ""  # keep the L1 reason
        reasons["regularization"] = earlier + EXCEPTIONS_TABLE["risk_sensitive"]["dropout"]
    if profile is not None:
        _apply_data_rules(fields, reasons, profile, use_selu=use_selu, width_given=width_given,
                          rate=dropout_rate if rate_given else None)
    for key, reason in COMMON_TABLE.items():
        reasons.setdefault(key, reason)
    name = "+".join(k for k in ("sparse", "low_latency", "risk_sensitive") if situation[k])
    fields["name"] = name or ("self_normalizing" if use_selu else "default")
    return Recommendation(place_dropout(NetworkConfig(**fields), reasons), reasons, situation)


def place_dropout(config: NetworkConfig, reasons: dict) -> NetworkConfig:
    """Dropout after the last batch-norm layer only when the net normalizes, else everywhere.

    The one placement rule of the tables (``DEFAULT_TABLE["dropout_layers.batch_norm"]``);
    :func:`dnnguide.presets.recommend_preset` applies it again after overrides, unless the
    override sets ``dropout_layers`` itself.
    """
    reg = config.regularization
    value, why = DEFAULT_TABLE["dropout_layers.batch_norm"]
    wanted = value if config.normalization != "none" and reg.dropout_rate > 0 else None
    if reg.dropout_layers == wanted:
        return config
    if wanted is not None:
        reasons["regularization"] = f"{reasons.get('regularization', '')} {why}".strip()
    return dataclasses.replace(config, regularization=dataclasses.replace(
        reg, dropout_layers=wanted))


def _default_fields(reasons: dict, depth: int, overfitting: bool) -> dict:
    key = "deep" if depth >= DEEP_FROM else "shallow"
    fields = {}
    for name in ("kernel_initializer", "regularization", "optimizer", "schedule", "early_stopping"):
        fields[name], reasons[name] = DEFAULT_TABLE[name]
    for name in ("activation", "normalization"):
        fields[name], reasons[name] = DEFAULT_TABLE[f"{name}.{key}"]
    if key == "deep":
        fields["optimizer"], reasons["optimizer"] = DEFAULT_TABLE["optimizer.deep"]
    if overfitting:
        fields["optimizer"] = dataclasses.replace(
            fields["optimizer"], weight_decay=EXCEPTION_VALUES["overfitting"]["weight_decay"])
        reasons["optimizer"] += " " + DEFAULT_TABLE["regularization.overfitting"][1]
    return fields


def _self_normalizing_fields(reasons: dict, want_dropout: bool, rate: float) -> dict:
    fields = {}
    for name, (value, reason) in SELF_NORMALIZING_TABLE.items():
        fields[name], reasons[name] = value, reason
    if want_dropout:
        fields["regularization"] = RegularizationConfig(dropout_rate=rate, dropout_kind="alpha")
    return fields


def _apply_sparse(fields: dict, reasons: dict) -> None:
    table = EXCEPTIONS_TABLE["sparse"]
    reg = fields["regularization"]
    values = EXCEPTION_VALUES["sparse"]
    fields["regularization"] = dataclasses.replace(reg, l1=values["l1"])
    fields["pruning_sparsity"] = values["pruning_sparsity"]
    reasons["regularization"] = table["l1"]
    reasons["pruning_sparsity"] = table["pruning_sparsity"]


def _apply_low_latency(fields: dict, reasons: dict, depth_given: bool) -> None:
    table = EXCEPTIONS_TABLE["low_latency"]
    if not depth_given:
        reasons["depth"] = table["depth"]
    fields.update(EXCEPTION_VALUES["low_latency"])
    reasons["kernel_initializer"] = DEFAULT_TABLE["kernel_initializer"][1]
    for name in ("activation", "normalization", "fold_batch_norm", "precision"):
        reasons[name] = table[name]


def _apply_data_rules(fields: dict, reasons: dict, profile: DataProfile, *, use_selu: bool,
                      width_given: bool, rate: float | None) -> None:
    """Size and regularize the tables' network for the data (:mod:`dnnguide.data_rules`)."""
    depth, width = fields["depth"], fields["width"]
    if not width_given:
        reasons["width"] = data_rules.reason("width", n_features=profile.n_features, width=width)
    small = data_rules.DATA_TABLE["small_data"][0]
    if profile.n_train < small["rows"]:
        reg, opt = fields["regularization"], fields["optimizer"]
        if use_selu:  # weight penalties, decoupled or not, shift the SELU fixed point
            rate = max(reg.dropout_rate, rate if rate is not None else small["alpha_dropout_rate"])
            kind = reg.dropout_kind if reg.dropout_kind.endswith("alpha") else "alpha"
            what = f"AlphaDropout {rate} (weight penalties would break self-normalization)"
        else:
            rate = max(reg.dropout_rate, rate if rate is not None else small["dropout_rate"])
            kind = reg.dropout_kind
            if opt.name in DECOUPLED_DECAY_OPTIMIZERS:
                opt = dataclasses.replace(opt, weight_decay=max(opt.weight_decay,
                                                                small["weight_decay"]))
                fields["optimizer"] = opt
            what = f"decoupled weight decay {opt.weight_decay:g} and dropout {rate}"
        fields["regularization"] = dataclasses.replace(reg, dropout_rate=rate, dropout_kind=kind)
        why = data_rules.reason("small_data", n_train=profile.n_train, what=what,
                                n_weights=profile.n_weights(depth, width))
        keep = reasons["regularization"] if reg.dropout_kind.startswith("mc") or reg.l1 else ""
        reasons["regularization"] = f"{keep} {why}".strip()
    if profile.task == "regression" and fields["optimizer"].clipnorm is None:
        fields["optimizer"] = dataclasses.replace(
            fields["optimizer"], **data_rules.DATA_TABLE["regression"][0])
        reasons["optimizer"] += " " + data_rules.reason("regression")
    if fields.get("normalization", "none") != "none":
        batch_size = NetworkConfig.batch_size  # the tables' batch size
        momentum = data_rules.choose_batch_norm_momentum(profile, batch_size)
        fields["batch_norm_momentum"] = momentum
        reasons["batch_norm_momentum"] = data_rules.reason(
            "batch_norm_momentum", steps=profile.steps_per_epoch(batch_size),
            batch_size=batch_size, momentum=momentum, horizon=round(1 / (1 - momentum)))
