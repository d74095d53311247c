"""Audit rules on how the model is used: training setup, data scaling, output head and loss.

Each rule reads a :class:`~dnnguide.auditing.context.Context` and returns the findings of
one guideline about the callbacks and schedule, the inputs and regression target, the output
activation against the compiled loss, or planned MC dropout
(:data:`dnnguide.auditing.rules.RULES` lists them all).

Example:
    >>> loss_kind("sparse_categorical_crossentropy")
    ('categorical', False)
    >>> loss_kind(keras.losses.BinaryCrossentropy(from_logits=True))
    ('binary', True)
"""

from __future__ import annotations

import keras
import numpy as np

from dnnguide import guidelines
from dnnguide.auditing.context import Context, _names, reason
from dnnguide.auditing.graph import _DROPOUT, _NORMALIZATION, kernel_initializer
from dnnguide.auditing.report import Finding

#: Inputs (or a regression target) count as standardized within these bounds; the same as the
#: SELU input check of ``dnnguide.training``.
MAX_ABS_MEAN, STD_RANGE = 0.5, (0.5, 2.0)


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
def _far(mean, std, reach=None) -> bool:
    """Whether features (or targets) are far from standardized.

    With ``reach`` (each feature's largest deviation from its mean), a feature whose std is
    low because its reach was scaled to :data:`~dnnguide.data.MAX_Z` counts as standardized:
    it is a sparse or heavy-tailed one as :func:`dnnguide.load_dataset` scales it.
    """
    from dnnguide.data import MAX_Z

    keep = std > 0  # constant features carry nothing to scale
    if reach is not None:
        keep &= ~((std < STD_RANGE[0]) & (np.abs(reach - MAX_Z) <= 1e-3 * MAX_Z))
    std = std[keep]
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
    reach = np.abs(x - x.mean(0)).max(0) * np.abs(scale)
    mean, std, reach = (np.broadcast_to(a, x.shape[1:]) for a in (mean, std, reach))
    if not _far(mean, std, reach):
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
