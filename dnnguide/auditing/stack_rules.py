"""Audit rules on the hidden stack: initialization, self-normalization, depth, batch norm, decay.

Each rule reads a :class:`~dnnguide.auditing.context.Context` and returns the findings of
one guideline about the layers themselves (:data:`dnnguide.auditing.rules.RULES` lists them
all).

Example:
    >>> import keras
    >>> from dnnguide.auditing.graph import ModelView
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="selu"),
    ...                           keras.layers.Dense(1)])
    >>> [(f.rule, f.severity, f.fix) for f in initializer(Context(ModelView(model)))]
    [('initializer', 'error', {'kernel_initializer': 'lecun_normal'})]
"""

from __future__ import annotations

import keras

from dnnguide import guidelines
from dnnguide.auditing.context import Context, _names, reason
from dnnguide.auditing.graph import (
    _DROPOUT, _NORMALIZATION, initializer_family, initializer_name, kernel_initializer,
)
from dnnguide.auditing.report import Finding

HE_FAMILY = ("relu", "relu6", "leaky_relu", "elu", "celu", "swish", "gelu", "mish", "hard_silu",
             "softplus", "squareplus", "sparse_plus")
LECUN_FAMILY = ("selu",)
GLOROT_FAMILY = ("tanh", "sigmoid", "softmax", "hard_sigmoid", "log_softmax", "softsign",
                 "hard_tanh")
SATURATING = ("tanh", "sigmoid", "hard_sigmoid", "softsign", "hard_tanh")
EXPECTED_INIT = {"he": "he_normal", "lecun": "lecun_normal", "glorot": "glorot_uniform"}


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
