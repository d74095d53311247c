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
        "Nesterov momentum SGD, the table's other choice: with batch norm in a deep stack, "
        "AdamW's per-weight steps left training-mode and inference-mode statistics far apart "
        "on small data (digits, 20 layers: test accuracy 0.64 with AdamW vs 0.94 with Nesterov).",
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
    "architecture": "A plain sequential stack of Dense layers, the setting both tables assume.",
    "standardize_inputs": "Gradient descent converges faster on features with mean 0 and std 1; "
    "the statistics come from the training split only.",
    "batch_size": "32: small batches generalize well and are a safe default (Masters & Luschi "
    "2018); larger ones need a warm-up such as 1cycle's.",
    "epochs": "An upper bound only: early stopping ends training when validation loss stops "
    "improving.",
    "pruning_sparsity": "No pruning: only a model that must be sparse is pruned.",
    "fold_batch_norm": "Nothing to fold: only low-latency models fold batch norm for inference.",
    "precision": "Train and export in float32; 16/8-bit export is for low-latency models.",
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
    width: int = 100,
    sparse: bool = False,
    low_latency: bool = False,
    risk_sensitive: bool = False,
    self_normalizing: bool = False,
    overfitting: bool = False,
    dropout_rate: float = 0.2,
    task: str = "classification",
) -> Recommendation:
    """Apply the guideline tables to a situation.

    Args:
        depth: number of hidden layers, or ``"shallow"`` / ``"deep"``.
        width: units per hidden layer.
        sparse: the model must be sparse (L1 + pruning; never self-normalizing).
        low_latency: the model must predict fast (fewer layers, ReLU, BN folded, 8-bit).
        risk_sensitive: uncertainty matters (MC dropout).
        self_normalizing: prefer the self-normalizing table (SELU) where allowed.
        overfitting: the model overfits; add regularization (weight decay or AlphaDropout).
        dropout_rate: the dropout rate used when dropout is called for.
        task: ``"classification"``, ``"binary"`` or ``"regression"`` (recorded in the situation).

    Returns:
        A :class:`Recommendation` with the config and a reason per field.
    """
    check_choice("task", task, TASKS)
    situation = {
        "depth": depth, "sparse": sparse, "low_latency": low_latency,
        "risk_sensitive": risk_sensitive, "self_normalizing": self_normalizing,
        "overfitting": overfitting, "task": task,
    }
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
    for key, reason in COMMON_TABLE.items():
        reasons.setdefault(key, reason)
    name = "+".join(k for k in ("sparse", "low_latency", "risk_sensitive") if situation[k])
    fields["name"] = name or ("self_normalizing" if use_selu else "default")
    return Recommendation(NetworkConfig(**fields), reasons, situation)


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
        fields["optimizer"] = dataclasses.replace(fields["optimizer"], weight_decay=0.004)
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
    fields["regularization"] = RegularizationConfig(
        l1=1e-5, l2=reg.l2, dropout_rate=reg.dropout_rate, dropout_kind=reg.dropout_kind,
        max_norm=reg.max_norm,
    )
    fields["pruning_sparsity"] = 0.8
    reasons["regularization"] = table["l1"]
    reasons["pruning_sparsity"] = table["pruning_sparsity"]


def _apply_low_latency(fields: dict, reasons: dict, depth_given: bool) -> None:
    table = EXCEPTIONS_TABLE["low_latency"]
    if not depth_given:
        reasons["depth"] = table["depth"]
    fields.update(
        kernel_initializer="he_normal", activation="relu",
        normalization="batch_norm_before", fold_batch_norm=True, precision="int8",
    )
    reasons["kernel_initializer"] = DEFAULT_TABLE["kernel_initializer"][1]
    for name in ("activation", "normalization", "fold_batch_norm", "precision"):
        reasons[name] = table[name]
