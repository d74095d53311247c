"""The audit's rules: each reads a :class:`Context` and returns the findings of one guideline.

The reasons come from the tables :func:`dnnguide.recommend` applies (``dnnguide.guidelines``),
looked up by key in :data:`REASON_KEYS`; the few facts those tables do not state yet are in
:data:`LOCAL_REASONS`. Fixes are config overrides (for ``build_model``) plus the same change
in plain Keras code.

Example:
    >>> reason("init.lecun") == guidelines.SELF_NORMALIZING_TABLE["kernel_initializer"][1]
    True
    >>> sorted(RULES)[:3]
    ['adamw_with_l2', 'bn_not_foldable', 'deep_saturating_stack']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from dnnguide import guidelines
from dnnguide.auditing.graph import (
    _DROPOUT, _NORMALIZATION, ModelView, initializer_family, initializer_name, kernel_initializer,
)
from dnnguide.auditing.report import Finding

HE_FAMILY = ("relu", "relu6", "leaky_relu", "elu", "celu", "swish", "gelu", "mish", "hard_silu",
             "softplus", "squareplus", "sparse_plus")
LECUN_FAMILY = ("selu",)
GLOROT_FAMILY = ("tanh", "sigmoid", "softmax", "hard_sigmoid", "log_softmax", "softsign",
                 "hard_tanh")
SATURATING = ("tanh", "sigmoid", "hard_sigmoid", "softsign", "hard_tanh")
EXPECTED_INIT = {"he": "he_normal", "lecun": "lecun_normal", "glorot": "glorot_uniform"}
#: Inputs (or a regression target) count as standardized within these bounds; the same as the
#: SELU input check of ``dnnguide.training``.
MAX_ABS_MEAN, STD_RANGE = 0.5, (0.5, 2.0)

# Where each reason lives in dnnguide.guidelines: (table, key[, sub-key]).
REASON_KEYS: dict[str, tuple[str, ...]] = {
    "init.he": ("DEFAULT_TABLE", "kernel_initializer"),
    "init.lecun": ("SELF_NORMALIZING_TABLE", "kernel_initializer"),
    "selu.normalization": ("SELF_NORMALIZING_TABLE", "normalization"),
    "selu.regularization": ("SELF_NORMALIZING_TABLE", "regularization"),
    "selu.architecture": ("COMMON_TABLE", "architecture"),
    "selu.inputs": ("SELF_NORMALIZING_TABLE", "standardize_inputs"),
    "deep.normalization": ("DEFAULT_TABLE", "normalization.deep"),
    "low_latency.normalization": ("EXCEPTIONS_TABLE", "low_latency", "normalization"),
    "weight_decay": ("DEFAULT_TABLE", "regularization.overfitting"),
    "schedule": ("DEFAULT_TABLE", "schedule"),
    "early_stopping": ("DEFAULT_TABLE", "early_stopping"),
    "inputs": ("COMMON_TABLE", "standardize_inputs"),
    "mc_dropout": ("EXCEPTIONS_TABLE", "risk_sensitive", "dropout"),
}

#: Reasons the guideline tables have no row for (yet): candidates to move into dnnguide.guidelines.
LOCAL_REASONS: dict[str, str] = {
    "init.glorot": "Glorot initialization keeps the variance of tanh, sigmoid and softmax layers "
    "(near-linear around 0) the same forward and backward (Glorot & Bengio 2010).",
    "init.fixed": "A fixed-std random initializer ignores the fan-in, so activations shrink or "
    "grow layer after layer; the guideline initializers scale with it.",
    "plateau": "Keras' ReduceLROnPlateau cannot change a learning rate that is already a schedule "
    "and raises a TypeError the first time it tries, possibly hours into training.",
    "target": "A regression target far from mean 0 and std 1 starts the network's outputs (near "
    "0) far from it and scales the loss and gradients with the target: standardize it with the "
    "training statistics and de-standardize the predictions inside the model.",
    "output_loss": "The output activation and the loss must describe the same probability model: "
    "softmax with (sparse) categorical cross-entropy, sigmoid with binary cross-entropy, raw "
    "logits only with from_logits=True; anything else trains on a wrong or constant loss.",
    "output_dropout": "Dropout on the output perturbs the predictions themselves (random zeros, "
    "rescaled values) instead of regularizing hidden units.",
}


def reason(key: str) -> str:
    """The guideline text for ``key`` (from the tables, else :data:`LOCAL_REASONS`)."""
    if key in LOCAL_REASONS:
        return LOCAL_REASONS[key]
    table_name, *path = REASON_KEYS[key]
    entry: Any = getattr(guidelines, table_name)
    for part in path:
        entry = entry[part]
    return entry[1] if isinstance(entry, tuple) else entry


@dataclass
class Context:
    """What the rules read; built by :func:`dnnguide.audit`."""

    view: ModelView
    config: Any = None  # the dnnguide NetworkConfig, if any
    optimizer: Any = None
    callbacks: list | None = None  # None: unknown, the callback rules are skipped
    heads: list | None = None  # (output kernel layer, activation, trail, units, loss) per output
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    task: str | None = None
    low_latency: bool = False
    mc_dropout: bool = False

    @property
    def output_kernels(self) -> set[int]:
        return {id(head[0]) for head in self.heads or () if head[0] is not None}

    def hidden_kernels(self) -> list:
        return [k for k in self.view.kernel_layers if id(k) not in self.output_kernels]

    @property
    def selu(self) -> list:
        return [k for k in self.hidden_kernels() if self.view.activation(k) == "selu"]


def _names(layers) -> tuple[str, ...]:
    return tuple(layer.name for layer in layers)


# --------------------------------------------------------------------------- initialization
def initializer(ctx: Context) -> list[Finding]:
    groups: dict[tuple[str, str, str], list] = {}
    for layer in ctx.view.kernel_layers:
        act = ctx.view.activation(layer)
        expected = ("he" if act in HE_FAMILY else "lecun" if act in LECUN_FAMILY
                    else "glorot" if act in GLOROT_FAMILY else None)
        init = kernel_initializer(layer)
        family = initializer_family(init)
        if expected is None or family in (expected, "other"):
            continue
        groups.setdefault((expected, act, initializer_name(init)), []).append(layer)
    findings = []
    for (expected, act, current), layers in groups.items():
        wanted = EXPECTED_INIT[expected]
        why = reason(f"init.{expected}")
        if current.split("(")[0] in ("RandomNormal", "RandomUniform", "TruncatedNormal"):
            why = reason("init.fixed") + " " + why
        findings.append(Finding(
            "initializer", "error" if expected == "lecun" else "warning", _names(layers),
            f"{act} layers initialized with {current}. {why}", {"kernel_initializer": wanted},
            f"{type(layers[0]).__name__}(..., kernel_initializer={wanted!r}) for these layers"))
    return findings


# --------------------------------------------------------------------------- self-normalization
def selu_conditions(ctx: Context) -> list[Finding]:
    if not ctx.selu:
        return []
    view, findings = ctx.view, []
    norms = view.of_type(_NORMALIZATION)
    if norms:
        findings.append(Finding(
            "selu_batch_norm", "error", _names(norms), reason("selu.normalization"),
            {"normalization": "none"}, "remove the normalization layers from the SELU stack"))
    penalized = [k for k in ctx.selu if _penalties(k)]
    if penalized:
        kinds = sorted({p for k in penalized for p in _penalties(k)})
        findings.append(Finding(
            "selu_weight_penalty", "error", _names(penalized),
            f"SELU layers with {', '.join(kinds)}. {reason('selu.regularization')}",
            {"l1": 0.0, "l2": 0.0, "max_norm": None},
            "drop kernel_regularizer/bias_regularizer/kernel_constraint; regularize with "
            "keras.layers.AlphaDropout"))
    plain = [d for d in view.of_type(_DROPOUT) if not isinstance(d, keras.layers.AlphaDropout)]
    if plain:
        mc = any(type(d).__name__.startswith("MC") for d in plain)
        findings.append(Finding(
            "selu_standard_dropout", "error", _names(plain), reason("selu.regularization"),
            {"dropout_kind": "mc_alpha" if mc else "alpha"},
            "keras.layers.AlphaDropout(rate) (dnnguide.MCAlphaDropout for MC dropout)"))
    merges = view.is_branching()
    if merges:
        findings.append(Finding(
            "selu_not_sequential", "error", _names(merges),
            f"SELU self-normalization holds for a plain stack only. "
            f"{reason('selu.architecture')}", {"architecture": "sequential"},
            "remove the skip connections / merges, or use activation='swish' with batch norm"))
    return findings


def _penalties(layer) -> list[str]:
    found = []
    for attribute in ("kernel_regularizer", "bias_regularizer"):
        reg = getattr(layer, attribute, None)
        for kind in ("l1", "l2"):
            if reg is not None and float(getattr(reg, kind, 0.0) or 0.0) > 0:
                found.append(kind.upper())
    if getattr(layer, "kernel_constraint", None) is not None:
        found.append(type(layer.kernel_constraint).__name__)
    return found


# --------------------------------------------------------------------------- depth, BN, decay
def deep_saturating_stack(ctx: Context) -> list[Finding]:
    saturating = [k for k in ctx.hidden_kernels() if ctx.view.activation(k) in SATURATING]
    if len(saturating) < guidelines.DEEP_FROM or ctx.view.of_type(_NORMALIZATION):
        return []
    return [Finding(
        "deep_saturating_stack", "warning", _names(saturating),
        f"{len(saturating)} sigmoid/tanh layers (deep from {guidelines.DEEP_FROM}) and no "
        f"normalization: their gradients vanish. {reason('deep.normalization')}",
        {"activation": "swish", "kernel_initializer": "he_normal",
         "normalization": "batch_norm_after"},
        "activation='swish', kernel_initializer='he_normal' and a BatchNormalization after each "
        "hidden layer")]


def bn_not_foldable(ctx: Context) -> list[Finding]:
    if not ctx.low_latency:
        return []
    view, stuck = ctx.view, []
    for bn in view.of_type(keras.layers.BatchNormalization):
        preds = view.predecessors(bn)
        source = preds[0] if len(preds) == 1 else None
        foldable = (source is not None and kernel_initializer(source) is not None
                    and getattr(source, "activation", None) in (None, keras.activations.linear)
                    and view.successors(source) == [bn])
        if not foldable:
            stuck.append(bn)
    if not stuck:
        return []
    return [Finding(
        "bn_not_foldable", "warning", _names(stuck),
        "Low latency was asked for, but these batch-norm layers do not directly follow a Dense/"
        f"Conv without activation, so they cannot be folded. {reason('low_latency.normalization')}",
        {"normalization": "batch_norm_before"},
        "Dense(units, activation=None) -> BatchNormalization() -> Activation(...)")]


def adamw_with_l2(ctx: Context) -> list[Finding]:
    inner = getattr(ctx.optimizer, "inner_optimizer", ctx.optimizer)
    if not isinstance(inner, keras.optimizers.AdamW):
        return []
    with_l2 = [k for k in ctx.view.kernel_layers if "L2" in _penalties(k)]
    if not with_l2:
        return []
    decay = guidelines.recommend(overfitting=True).config.optimizer.weight_decay
    return [Finding(
        "adamw_with_l2", "error", _names(with_l2),
        f"AdamW with L2 regularizers decays the weights twice. {reason('weight_decay')}",
        {"l2": 0.0, "weight_decay": decay},
        f"drop the L2 kernel_regularizer; AdamW(weight_decay={decay})")]


# --------------------------------------------------------------------------- training setup
def _lr_is_schedule(optimizer) -> bool:
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # mixed precision wraps it
    return callable(getattr(inner, "_learning_rate", None))  # public property evaluates it


def schedule_with_plateau(ctx: Context) -> list[Finding]:
    if ctx.callbacks is None or not _lr_is_schedule(ctx.optimizer):
        return []
    plateau = [c for c in ctx.callbacks if isinstance(c, keras.callbacks.ReduceLROnPlateau)]
    if not plateau:
        return []
    schedule = type(getattr(ctx.optimizer, "inner_optimizer", ctx.optimizer)._learning_rate)
    return [Finding(
        "schedule_with_plateau", "error", (),
        f"The learning rate is a {schedule.__name__} and ReduceLROnPlateau is among the "
        f"callbacks. {reason('plateau')} {reason('schedule')}",
        {"schedule": "performance"},
        "keep one: a constant learning rate with ReduceLROnPlateau, or the schedule alone")]


def no_stopping_no_schedule(ctx: Context) -> list[Finding]:
    if ctx.callbacks is None or _lr_is_schedule(ctx.optimizer):
        return []
    kinds = (keras.callbacks.EarlyStopping, keras.callbacks.ReduceLROnPlateau)
    if any(isinstance(c, kinds) for c in ctx.callbacks):
        return []
    stop, schedule = guidelines.DEFAULT_TABLE["early_stopping"][0], \
        guidelines.DEFAULT_TABLE["schedule"][0]
    return [Finding(
        "no_stopping_no_schedule", "warning", (),
        f"Neither early stopping nor a learning-rate schedule. {reason('early_stopping')} "
        f"{reason('schedule')}",
        {"early_stopping.enabled": True, "early_stopping.patience": stop.patience,
         "schedule": schedule.name},
        f"callbacks=[EarlyStopping(patience={stop.patience}, restore_best_weights=True), "
        f"ReduceLROnPlateau(factor={schedule.factor}, patience={schedule.patience})]")]


# --------------------------------------------------------------------------- data
def _far(mean, std) -> bool:
    std = std[std > 0]  # constant features carry nothing to scale
    return bool(np.abs(mean).max() > MAX_ABS_MEAN
                or (std.size and (std.min() < STD_RANGE[0] or std.max() > STD_RANGE[1])))


_CATEGORICAL_INPUTS = (keras.layers.Embedding, keras.layers.CategoryEncoding, keras.layers.Hashing,
                       keras.layers.IntegerLookup, keras.layers.StringLookup,
                       keras.layers.Discretization)


def inputs_not_standardized(ctx: Context) -> list[Finding]:
    view = ctx.view
    roots = [layer for layer in view.layers if not view.predecessors(layer)]
    if ctx.x is None or len(roots) != 1:
        return []
    x = ctx.x.reshape(len(ctx.x), -1).astype("float64")
    scale, offset, current = 1.0, 0.0, roots[0]
    while current is not None:
        if isinstance(current, (keras.layers.Normalization,) + _NORMALIZATION):
            return []  # the model standardizes its own inputs
        if isinstance(current, _CATEGORICAL_INPUTS):
            return []  # token ids / category codes are looked up, not scaled
        if isinstance(current, keras.layers.Rescaling):
            s, o = np.asarray(current.scale, "float64"), np.asarray(current.offset, "float64")
            scale, offset = scale * s, offset * s + o
        elif kernel_initializer(current) is not None:
            break
        succ = view.successors(current)
        current = succ[0] if len(succ) == 1 else None
    mean, std = x.mean(0) * scale + offset, x.std(0) * np.abs(scale)
    mean, std = np.broadcast_to(mean, x.shape[1:]), np.broadcast_to(std, x.shape[1:])
    if not _far(mean, std):
        return []
    selu = f" {reason('selu.inputs')}" if ctx.selu else ""
    kept = std[std > 0]
    return [Finding(
        "inputs_not_standardized", "warning", (),
        f"Input features are far from standardized (max |mean| {np.abs(mean).max():.3g}, std in "
        f"[{kept.min() if kept.size else 0:.3g}, {kept.max() if kept.size else 0:.3g}]) and the "
        f"model has no Normalization layer. {reason('inputs')}{selu}",
        {"standardize_inputs": True},
        "norm = keras.layers.Normalization(); norm.adapt(x_train); put norm first in the model")]


# dnnguide's own TargetScale (dnnguide.targets) ends every regression preset.
_RESCALING_NAMES = ("rescal", "destandard", "unstandard", "denormal", "targetscale")


def target_not_standardized(ctx: Context) -> list[Finding]:
    if ctx.y is None or ctx.task != "regression" or not ctx.heads:
        return []
    trail = ctx.heads[0][2]
    if any(any(n in type(t).__name__.lower() for n in _RESCALING_NAMES)
           or getattr(t, "invert", False) for t in trail):
        return []  # the model de-standardizes: it was trained on a standardized target
    y = np.asarray(ctx.y, "float64").reshape(len(ctx.y), -1)
    if not _far(y.mean(0), y.std(0)):
        return []
    return [Finding(
        "target_not_standardized", "warning", _names([ctx.heads[0][0]]),
        f"The regression target has mean {y.mean():.3g} and std {y.std():.3g}, and the model "
        f"has no final rescaling layer. {reason('target')}", {},
        "train on (y - mean) / std and end the model with "
        "keras.layers.Rescaling(scale=std, offset=mean)")]


# --------------------------------------------------------------------------- output
_BINARY = ("binary_crossentropy", "binary_focal_crossentropy")
_CATEGORICAL = ("categorical_crossentropy", "sparse_categorical_crossentropy",
                "categorical_focal_crossentropy")


def loss_kind(loss) -> tuple[str | None, bool]:
    """(``'binary'``/``'categorical'``/None, from_logits) of a compiled loss."""
    if loss is None:
        return None, False
    if isinstance(loss, str):
        try:
            loss = keras.losses.get(loss)
        except ValueError:
            return None, False
    fn = getattr(loss, "fn", loss)
    name = getattr(fn, "__name__", type(fn).__name__)
    name = {"BinaryCrossentropy": "binary_crossentropy"}.get(name, name)
    kind = "binary" if name in _BINARY else "categorical" if name in _CATEGORICAL else None
    return kind, bool(getattr(loss, "from_logits", False))


def output_loss(ctx: Context) -> list[Finding]:
    findings = []
    for kernel, act, _trail, units, loss in ctx.heads or ():
        kind, logits = loss_kind(loss)
        if kernel is None:
            continue
        problem = fix = None
        if act == "softmax" and units == 1:
            problem = "softmax over one unit always outputs 1"
            fix = "Dense(1, activation='sigmoid') with binary_crossentropy"
        elif kind == "binary" and act == "softmax":
            problem = "softmax output with binary cross-entropy"
            fix = ("Dense(1, activation='sigmoid') for two classes, or keep softmax with "
                   "sparse_categorical_crossentropy")
        elif kind == "categorical" and (act == "sigmoid" and units > 1 or units == 1):
            problem = f"{act} output with {units} unit(s) and a categorical cross-entropy"
            fix = ("Dense(n_classes, activation='softmax') with sparse_categorical_crossentropy "
                   "(or sigmoid + binary_crossentropy for multi-label)")
        elif kind and act == "linear" and not logits:
            problem = "linear outputs (logits) with a cross-entropy that expects probabilities"
            fix = ("pass the loss with from_logits=True, e.g. "
                   "keras.losses.SparseCategoricalCrossentropy(from_logits=True)")
        elif kind and logits and act in ("softmax", "sigmoid"):
            problem = f"{act} output with from_logits=True squashes twice"
            fix = "from_logits=False, or drop the output activation"
        if problem:
            findings.append(Finding("output_loss", "error", _names([kernel]),
                                    f"{problem}. {reason('output_loss')}", {}, fix))
    return findings


def dropout_on_output(ctx: Context) -> list[Finding]:
    dropped = [t for head in ctx.heads or () for t in head[2] if isinstance(t, _DROPOUT)]
    if not dropped:
        return []
    return [Finding("dropout_on_output", "error", _names(dropped), reason("output_dropout"), {},
                    "move the dropout before the output layer (after the last hidden layer)")]


def mc_dropout_without_dropout(ctx: Context) -> list[Finding]:
    has = any(isinstance(d, (keras.layers.Dropout, keras.layers.AlphaDropout))
              for d in ctx.view.layers)
    if not ctx.mc_dropout or has:
        return []
    rate = guidelines.recommend(risk_sensitive=True).config.regularization.dropout_rate
    kind = "mc_alpha" if ctx.selu else "mc"
    return [Finding(
        "mc_dropout_without_dropout", "error", (),
        "MC dropout was asked for, but the model has no dropout layer: every MC sample is the "
        f"same prediction and the uncertainty is 0. {reason('mc_dropout')}",
        {"dropout_rate": rate, "dropout_kind": kind},
        f"add dnnguide.{'MCAlphaDropout' if ctx.selu else 'MCDropout'}({rate}) after each hidden "
        "layer")]


#: Every rule, in the order the report lists findings of the same severity.
RULES = {
    "output_loss": output_loss,
    "dropout_on_output": dropout_on_output,
    "mc_dropout_without_dropout": mc_dropout_without_dropout,
    "initializer": initializer,
    "selu_conditions": selu_conditions,
    "adamw_with_l2": adamw_with_l2,
    "schedule_with_plateau": schedule_with_plateau,
    "deep_saturating_stack": deep_saturating_stack,
    "bn_not_foldable": bn_not_foldable,
    "no_stopping_no_schedule": no_stopping_no_schedule,
    "inputs_not_standardized": inputs_not_standardized,
    "target_not_standardized": target_not_standardized,
}
