"""See why a deep net trains badly: per-layer gradient, weight and activation statistics.

Deep nets fail in a few specific ways, and the guidelines exist because of them:
gradients **vanish** toward the input (sigmoid + naive init), **explode** (a huge
learning rate without clipping), ReLU units **die**, bounded activations **saturate**,
a SELU net stops **self-normalizing**. This module measures each of these on a fixed
probe batch (one forward and one backward pass) and says in plain words what it sees
and which guideline fixes it:

- :func:`check_model`: a one-shot health check before training;
- :class:`DiagnosticsCallback`: the same record every ``interval`` steps during
  training, saved as ``diagnostics.csv`` (+ plots) in the run directory;
- :func:`find_pathologies`: the rules, applied to any such table (the CLI
  ``dnnguide diagnose RUN_DIR`` uses them on a saved run);
- plots of gradient norms over depth (log scale) and over time, activation histograms.

Backend note: Keras 3 has no backend-agnostic way to take gradients, so the backward
pass is the one TensorFlow-only piece (``tf.GradientTape``, imported lazily, marked
``TF-only`` below). The forward pass uses ``Model.stateless_call``, which leaves every
variable untouched (batch-norm moving statistics, dropout seeds); gradient norms are
taken with ``keras.ops`` and activation statistics with NumPy on the host.

Example:
    >>> import dnnguide
    >>> from dnnguide.diagnostics import check_model
    >>> data = dnnguide.load_dataset("digits")
    >>> model = dnnguide.build_model("default", (64,), 10, depth=20, activation="sigmoid",
    ...                              kernel_initializer="glorot_uniform", normalization="none")
    >>> report = check_model(model, data.x_train[:256], data.y_train[:256])  # doctest: +SKIP
    >>> report.kinds  # doctest: +SKIP
    ['vanishing']
    >>> print(report)  # per-layer table + findings in plain words  # doctest: +SKIP

References:
    Glorot & Bengio 2010 (vanishing gradients, Glorot init); He et al. 2015 (He init);
    Ioffe & Szegedy 2015 (batch norm); Pascanu et al. 2013 (exploding gradients, clipping);
    Klambauer et al. 2017 (SELU).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from dnnguide.config import ConfigError, check_range
from dnnguide.guidelines import DEFAULT_TABLE, SELF_NORMALIZING_TABLE, recommend
from dnnguide.runs import atomic_write_text, pyplot, save_figure

DIAGNOSTICS_CSV = "diagnostics.csv"
#: The callback's first records run eagerly; later ones use a traced graph.
EAGER_RECORDS = 8
#: Units of these activations are dead when they output <= 0 for the whole probe batch.
DEAD_CAPABLE = ("relu", "relu6", "leaky_relu")
#: Bounded activations and their bounds.
SATURATING = {"sigmoid": (0.0, 1.0), "hard_sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}
COLUMNS = ["step", "epoch", "index", "layer", "activation", "units", "loss", "grad_norm",
           "weight_norm", "update_ratio", "act_mean", "act_std", "dead_fraction",
           "saturated_fraction"]


class DiagnosticsWarning(UserWarning):
    """A training pathology seen by the diagnostics (vanishing, exploding, dead, ...)."""


@dataclass(frozen=True)
class Thresholds:
    """When a statistic counts as a pathology.

    ``vanishing_ratio``/``exploding_ratio``: first-layer over last-layer gradient norm.
    ``max_update_ratio``: one step's ``||dW|| / ||W||`` (healthy is around 1e-3).
    ``max_growth``: total gradient norm over its first record. ``dead_fraction`` and
    ``saturated_fraction``: share of a layer's units; a unit is saturated when it is
    within ``saturation_margin`` of a bound for ``saturated_rows`` of the probe rows.
    ``selu_mean``/``selu_std``: a SELU layer's allowed |mean| and std interval.
    """

    vanishing_ratio: float = 1e-3
    exploding_ratio: float = 1e3
    max_update_ratio: float = 0.5
    max_growth: float = 1e3
    dead_fraction: float = 0.5
    saturated_fraction: float = 0.5
    saturation_margin: float = 0.02
    saturated_rows: float = 0.9
    selu_mean: float = 0.5
    selu_std: tuple[float, float] = (1 / 3, 3.0)

    def __post_init__(self):
        for name in ("vanishing_ratio", "exploding_ratio", "max_update_ratio", "max_growth",
                     "selu_mean"):
            check_range(name, getattr(self, name), 0.0, low_inclusive=False)
        for name in ("dead_fraction", "saturated_fraction", "saturated_rows"):
            check_range(name, getattr(self, name), 0.0, 1.0, low_inclusive=False)
        check_range("saturation_margin", self.saturation_margin, 0.0, 0.5, low_inclusive=False)
        low, high = self.selu_std
        check_range("selu_std[0]", low, 0.0, low_inclusive=False)
        check_range("selu_std[1]", high, low, low_inclusive=False)


@dataclass(frozen=True)
class Finding:
    """One pathology: what, where, when, why it matters and the guideline that fixes it.

    ``fix`` holds config overrides that apply the advice, e.g. ``{"clipnorm": 1.0}``
    (usable as ``dnnguide.fit(..., **finding.fix)``).
    """

    kind: str
    message: str
    recommendation: str
    layers: tuple[str, ...] = ()
    step: int = 0
    fix: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.message}; {self.recommendation}"


@dataclass
class DiagnosticsReport:
    """What :func:`check_model` returns: one row per layer, the findings, the activations."""

    frame: Any  # pandas DataFrame with COLUMNS
    findings: list[Finding]
    activations: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def kinds(self) -> list[str]:
        return [f.kind for f in self.findings]

    @property
    def ok(self) -> bool:
        return not self.findings

    def __str__(self) -> str:
        shown = ["index", "layer", "activation", "grad_norm", "weight_norm", "update_ratio",
                 "act_mean", "act_std", "dead_fraction", "saturated_fraction"]
        lines = [self.frame[shown].to_string(index=False, float_format="{:.3g}".format), ""]
        lines += [f"- {f}" for f in self.findings] or ["No pathology found."]
        return "\n".join(lines)

    def plot(self, directory, *, prefix: str = "") -> list[Path]:
        """Write gradient-norm and activation-histogram PNGs into ``directory``."""
        return save_plots(self.frame, directory, self.activations, prefix=prefix)


# --------------------------------------------------------------------------- probing
def _activation_name(layer) -> str | None:
    if isinstance(layer, keras.layers.ReLU):
        return "relu6" if layer.max_value == 6 else "relu"
    if isinstance(layer, keras.layers.LeakyReLU):
        return "leaky_relu"
    if isinstance(layer, keras.layers.ELU):
        return "elu"
    name = getattr(getattr(layer, "activation", None), "__name__", None)
    return None if name in (None, "linear") else name


def _blocks(model) -> list[tuple[Any, Any, str | None]]:
    """(kernel layer, layer whose output is the block's activation, activation name) in order.

    A block starts at a layer with a kernel (Dense, Conv); its activation is the kernel
    layer's own, or the first activation layer after it (``Dense -> BN -> Activation``).
    """
    blocks: list[list] = []
    for layer in model.layers:
        if getattr(layer, "kernel", None) is not None and layer.trainable:
            act = _activation_name(layer)
            blocks.append([layer, layer, act])
        elif blocks and blocks[-1][2] is None and _activation_name(layer):
            blocks[-1][1:] = [layer, _activation_name(layer)]
    if not blocks:
        raise ConfigError("Diagnostics need a model with trainable kernel layers (Dense, Conv). "
                          f"Received: model {model.name!r} with layers "
                          f"{[layer.name for layer in model.layers]}")
    return [tuple(block) for block in blocks]


def _resolve_loss(model, loss):
    loss = loss if loss is not None else getattr(model, "loss", None)
    if loss is None or isinstance(loss, (dict, list, tuple)):
        raise ConfigError("Diagnostics need one loss for a single-output model: compile the "
                          f"model or pass loss=... Received: loss={loss!r}")
    return keras.losses.get(loss)


def _check_batch(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    if len(x) == 0 or len(x) != len(y):
        raise ConfigError("Arguments `x_batch` and `y_batch` must be non-empty and of the same "
                          f"length. Received: len(x_batch)={len(x)}, len(y_batch)={len(y)}")
    if not np.all(np.isfinite(x.astype("float64"))):
        raise ConfigError("Argument `x_batch` must be finite. Received: x_batch with NaN or inf")
    return x, y


class _Probe:
    """One forward + backward pass on a fixed batch, returning per-layer statistics."""

    def __init__(self, model, x, y, *, loss=None, thresholds: Thresholds | None = None):
        self.model = model
        self.thresholds = thresholds or Thresholds()
        x, y = _check_batch(x, y)
        self.blocks = _blocks(model)
        self.loss_fn = _resolve_loss(model, loss)
        try:
            outputs = [act_layer.output for _, act_layer, _ in self.blocks] + [model.outputs[0]]
            self.probe_model = keras.Model(model.inputs, outputs, name=f"{model.name}_probe")
        except (AttributeError, ValueError, TypeError) as exc:
            raise TypeError("Diagnostics need a functional or Sequential Keras model whose "
                            f"layer outputs can be reached. Received: {type(model).__name__} "
                            f"({exc})") from exc
        self.x = ops.convert_to_tensor(x, dtype=model.inputs[0].dtype)
        self.y = ops.convert_to_tensor(y)
        by_id = {id(v): i for i, v in enumerate(self.probe_model.trainable_variables)}
        self.kernel_index = [by_id[id(layer.kernel)] for layer, _, _ in self.blocks]
        self.kernels = [layer.kernel for layer, _, _ in self.blocks]
        self._fn = None
        self._eager_calls = 0

    def _backward(self, x):
        """Loss, gradients w.r.t. every trainable variable, and each block's activations.

        TF-only: Keras 3 has no backend-agnostic gradient API, so this one function uses
        ``tf.GradientTape`` (imported lazily). ``stateless_call`` runs the model in training
        mode (batch statistics, dropout on) on copies of the variables' values and its new
        state is discarded, so batch-norm moving statistics and dropout seeds stay untouched.
        """
        import tensorflow as tf

        tv = [v.value for v in self.probe_model.trainable_variables]
        ntv = [v.value for v in self.probe_model.non_trainable_variables]
        with tf.GradientTape() as tape:
            tape.watch(tv)
            outputs, _, losses = self.probe_model.stateless_call(
                tv, ntv, x, training=True, return_losses=True)
            *acts, y_pred = outputs
            loss = ops.mean(self.loss_fn(self.y, y_pred))
            if losses:  # weight penalties are part of what the optimizer follows
                loss = loss + ops.sum(ops.stack(losses))
        grads = [g if g is not None else ops.zeros_like(t)
                 for g, t in zip(tape.gradient(loss, tv), tv)]
        return loss, grads, acts

    def _summarize(self, loss, grads, acts):
        norms = ops.stack([ops.sqrt(ops.sum(ops.square(grads[i]))) for i in self.kernel_index])
        return loss, norms, acts

    def _stats(self, acts) -> np.ndarray:
        """Per block: mean, std, dead fraction, saturated fraction (NaN where not defined).

        NumPy on the host: a few milliseconds, where the same dozens of small ops run
        eagerly cost more than the backward pass itself.
        """
        t, nan = self.thresholds, float("nan")
        rows = []
        for position, (act, (_, _, name)) in enumerate(zip(acts, self.blocks)):
            a = np.asarray(ops.convert_to_numpy(act), "float32").reshape(len(act), -1)
            dead = sat = nan
            is_output = position == len(self.blocks) - 1  # a confident output is no pathology
            if name in DEAD_CAPABLE and not is_output:
                dead = np.mean(np.all(a <= 0, axis=0))
            if name in SATURATING and not is_output:
                low, high = SATURATING[name]
                margin = t.saturation_margin * (high - low)
                near = (a <= low + margin) | (a >= high - margin)
                sat = np.mean(np.mean(near, axis=0) >= t.saturated_rows)
            if name == "selu":  # a unit far from the fixed point: |mean| > 1 or std off by 3x
                m, sd = a.mean(axis=0), a.std(axis=0)
                sat = np.mean((np.abs(m) > 1) | (sd < 1 / 3) | (sd > 3))
            rows.append([a.mean(), a.std(), dead, sat])
        return np.array(rows, "float64")

    def measure(self, compiled: bool | None = None):
        """([loss, per-layer gradient norms, per-layer stats] as NumPy, gradients, activations).

        ``compiled=False`` runs the pass eagerly and also returns every gradient (a one-shot
        check needs them for its update estimate). ``compiled=True`` traces it once with
        ``tf.function`` (afterwards a record costs a few training steps). ``None`` (the
        callback) runs the first :data:`EAGER_RECORDS` records eagerly and compiles only
        when training goes on: tracing costs about as much as ten eager passes, so short
        runs never pay for it and long runs pay at most twice the optimum (ski rental).
        """
        if keras.backend.backend() != "tensorflow":
            raise NotImplementedError(
                "Per-layer gradients are implemented for the TensorFlow backend only. "
                f"Received: KERAS_BACKEND={keras.backend.backend()!r}")
        if compiled is None:
            self._eager_calls += 1
            compiled = self._eager_calls > EAGER_RECORDS
        if not compiled:
            loss, grads, acts = self._backward(self.x)
            loss, norms, acts = self._summarize(loss, grads, acts)
        else:
            if self._fn is None:
                import tensorflow as tf  # TF-only, as in _backward

                self._fn = tf.function(lambda x: self._summarize(*self._backward(x)))
            loss, norms, acts = self._fn(self.x)
            grads = None
        summary = [ops.convert_to_numpy(loss), ops.convert_to_numpy(norms), self._stats(acts)]
        return summary, grads, acts

    def rows(self, summary, step: int = 0, epoch: int = 0, update_ratios=None) -> list[dict]:
        """One record: a dict per block with :data:`COLUMNS`."""
        loss, norms, stats = summary
        weight_norms = [float(np.linalg.norm(ops.convert_to_numpy(k))) for k in self.kernels]
        nan = float("nan")
        return [dict(zip(COLUMNS, [
            step, epoch, i + 1, layer.name, name or "linear", int(layer.kernel.shape[-1]),
            float(loss), float(norms[i]), weight_norms[i],
            nan if update_ratios is None else float(update_ratios[i]),
            *(float(v) for v in stats[i])])) for i, (layer, _, name) in enumerate(self.blocks)]

    def activations(self, acts=None) -> dict[str, np.ndarray]:
        """Each block's activations on the probe batch (training-mode forward, nothing updated)."""
        if acts is None:
            tv = [v.value for v in self.probe_model.trainable_variables]
            ntv = [v.value for v in self.probe_model.non_trainable_variables]
            *acts, _ = self.probe_model.stateless_call(tv, ntv, self.x, training=True)[0]
        return {layer.name: ops.convert_to_numpy(a).reshape(len(a), -1)
                for (layer, _, _), a in zip(self.blocks, acts)}


# --------------------------------------------------------------------------- rules
def _hidden_depth(n_blocks: int) -> int:
    return max(n_blocks - 1, 1)


def _layers_where(rows, mask) -> tuple[str, ...]:
    return tuple(rows.loc[mask, "layer"])


def _step_findings(rows, t: Thresholds, first_total: float | None) -> list[Finding]:
    """The findings of one record (the rows of one step), in order of importance."""
    rows = rows.sort_values("index")
    step = int(rows["step"].iloc[0])
    depth = _hidden_depth(len(rows))
    deep = recommend(depth).config
    found: list[Finding] = []
    grads = rows["grad_norm"].to_numpy()
    finite = np.all(np.isfinite(rows[["loss", "grad_norm", "weight_norm"]].to_numpy()))
    clip = ("clip gradients (clipnorm=1.0 keeps their direction), lower the learning rate "
            "(the LR finder picks one) or add batch norm")
    if not finite:
        found.append(Finding("exploding", "loss, gradients or weights are NaN/inf: exploding "
                             "gradients (training diverged)", clip, tuple(rows["layer"]), step,
                             {"clipnorm": 1.0}))
        return found
    first, last = grads[0], grads[-1]
    ratio = first / last if last > 0 else float("inf")
    if ratio < t.vanishing_ratio:
        found.append(Finding(
            "vanishing", f"gradient norm at layer 1 ({rows['layer'].iloc[0]}) is {ratio:.1g} x "
            f"that of the last layer: vanishing gradients, the first layers barely learn",
            f"consider He init + ReLU-family or batch norm (the guidelines for a {depth}-layer "
            f"net: {deep.kernel_initializer} + {deep.activation}, normalization="
            f"{deep.normalization!r}). {DEFAULT_TABLE['kernel_initializer'][1]}",
            (rows["layer"].iloc[0],), step,
            {"kernel_initializer": deep.kernel_initializer, "activation": deep.activation,
             "normalization": deep.normalization}))
    elif ratio > t.exploding_ratio:
        found.append(Finding(
            "exploding", f"gradient norm at layer 1 is {ratio:.1g} x that of the last layer: "
            "gradients explode toward the input", clip, (rows["layer"].iloc[0],), step,
            {"clipnorm": 1.0}))
    updates = rows["update_ratio"].to_numpy()
    total = float(np.sqrt(np.sum(grads ** 2)))
    growth = total / first_total if first_total else 1.0
    if "exploding" not in [f.kind for f in found]:
        if np.nanmax(np.r_[updates, 0.0]) > t.max_update_ratio:
            worst = int(np.nanargmax(updates))
            found.append(Finding(
                "exploding", f"one step changed the weights of layer {worst + 1} "
                f"({rows['layer'].iloc[worst]}) by {updates[worst]:.2g} x their norm (healthy: "
                f"~1e-3): the learning rate is far too large, gradients explode",
                clip, _layers_where(rows, updates > t.max_update_ratio), step, {"clipnorm": 1.0}))
        elif growth > t.max_growth:
            found.append(Finding(
                "exploding", f"total gradient norm grew {growth:.2g} x since the first record: "
                "exploding gradients", clip, tuple(rows["layer"]), step, {"clipnorm": 1.0}))
    dead = rows["dead_fraction"].to_numpy()
    if np.any(dead >= t.dead_fraction):
        names = _layers_where(rows, dead >= t.dead_fraction)
        first_dead = int(np.argmax(dead >= t.dead_fraction))
        act = rows["activation"].iloc[first_dead]
        fix = "elu" if act == "leaky_relu" else "leaky_relu"
        found.append(Finding(
            "dead", f"{dead[first_dead]:.0%} of the {act} units of layer {first_dead + 1} "
            f"({names[0]}) output 0 for every probe example (dead units; {len(names)} layer(s) "
            "affected)", f"use LeakyReLU or ELU, He init and a lower learning rate. "
            f"{DEFAULT_TABLE['activation.shallow'][1]}", names, step, {"activation": fix}))
    sat = rows["saturated_fraction"].to_numpy()
    bounded = rows["activation"].isin(list(SATURATING)).to_numpy()
    if np.any(bounded & (sat >= t.saturated_fraction)):
        names = _layers_where(rows, bounded & (sat >= t.saturated_fraction))
        found.append(Finding(
            "saturated", f"{len(names)} layer(s) with {rows.loc[bounded, 'activation'].iloc[0]} "
            f"units stuck near their bounds (first: {names[0]}): saturated units pass almost "
            "no gradient", f"use {deep.kernel_initializer} init with {deep.activation} "
            f"instead of a bounded activation. {DEFAULT_TABLE['kernel_initializer'][1]}",
            names, step, {"kernel_initializer": deep.kernel_initializer,
                          "activation": deep.activation}))
    selu = (rows["activation"] == "selu").to_numpy()
    low, high = t.selu_std
    off = selu & ((rows["act_mean"].abs() > t.selu_mean) | (rows["act_std"] < low)
                  | (rows["act_std"] > high)).to_numpy()
    if np.any(off):
        names = _layers_where(rows, off)
        i = int(np.argmax(off))
        found.append(Finding(
            "not_self_normalizing", f"SELU layer {names[0]} has mean {rows['act_mean'].iloc[i]:.2f}"
            f" and std {rows['act_std'].iloc[i]:.2f} (self-normalizing keeps them near 0 and 1)",
            f"{SELF_NORMALIZING_TABLE['kernel_initializer'][1]} "
            f"{SELF_NORMALIZING_TABLE['standardize_inputs'][1]} "
            f"{SELF_NORMALIZING_TABLE['normalization'][1]}", names, step,
            {"kernel_initializer": "lecun_normal", "standardize_inputs": True,
             "normalization": "none"}))
    return found


def find_pathologies(frame, thresholds: Thresholds | None = None) -> list[Finding]:
    """Apply the rules to a diagnostics table; one finding per kind, at its first step.

    Args:
        frame: a DataFrame with :data:`COLUMNS` (from :func:`check_model`, the callback or
            ``diagnostics.csv``).
        thresholds: when a statistic counts as a pathology (default :class:`Thresholds`).
    """
    t = thresholds or Thresholds()
    found: dict[str, Finding] = {}
    first_total = None
    for _, rows in frame.groupby("step", sort=True):
        if first_total is None:
            first_total = float(np.sqrt(np.sum(rows["grad_norm"].to_numpy() ** 2)))
        for finding in _step_findings(rows, t, first_total):
            found.setdefault(finding.kind, finding)
    return list(found.values())


def _frame(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=COLUMNS)


def gradient_ratio(frame, step: int | None = None) -> float:
    """First-layer over last-layer gradient norm at ``step`` (default: the first record)."""
    step = frame["step"].min() if step is None else step
    rows = frame[frame["step"] == step].sort_values("index")
    if rows.empty:
        raise ConfigError(f"Argument `step` must be one of the recorded steps "
                          f"{sorted(frame['step'].unique())[:10]}. Received: step={step!r}")
    last = rows["grad_norm"].iloc[-1]
    return float(rows["grad_norm"].iloc[0] / last) if last > 0 else float("inf")


# --------------------------------------------------------------------------- one-shot check
def _first_step_update_ratios(model, probe: _Probe, grads) -> np.ndarray | None:
    """||dW|| / ||W|| of one step of a *fresh copy* of the model's optimizer.

    The copy has its own slots and step counter, so the model's optimizer state is not
    touched; the weights are restored bitwise afterwards. ``None`` for an uncompiled model.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    variables = probe.probe_model.trainable_variables
    saved = [ops.convert_to_numpy(v) for v in variables]
    before = [ops.convert_to_numpy(k) for k in probe.kernels]
    try:
        clone.apply_gradients(zip(grads, variables))
        after = [ops.convert_to_numpy(k) for k in probe.kernels]
    finally:
        for variable, value in zip(variables, saved):
            variable.assign(value)
    return np.array([np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12)
                     for a, b in zip(after, before)])


def check_model(model, x_batch, y_batch, *, loss=None,
                thresholds: Thresholds | None = None) -> DiagnosticsReport:
    """One-shot health check before training: one forward and one backward pass.

    Measures, per kernel layer, the gradient norm, weight norm, the update/weight ratio
    one step of (a fresh copy of) the model's optimizer would make, activation mean/std
    and the fractions of dead and saturated units; then applies :func:`find_pathologies`.
    Nothing about the model changes (weights, batch-norm statistics, optimizer state).

    Args:
        model: a functional or Sequential Keras model (compiled, or pass ``loss``).
        x_batch, y_batch: a probe batch (a few hundred training rows).
        loss: the loss to differentiate (default: the model's compiled loss).
        thresholds: when a statistic counts as a pathology.

    Returns:
        A :class:`DiagnosticsReport` (``.frame``, ``.findings``, ``.kinds``, ``.plot(dir)``).

    Example:
        >>> report = check_model(model, x_train[:256], y_train[:256])  # doctest: +SKIP
        >>> for finding in report.findings:  # doctest: +SKIP
        ...     print(finding.kind, finding.fix)
        vanishing {'kernel_initializer': 'he_normal', 'activation': 'swish', ...}
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"Argument `model` must be a keras.Model. Received: model of type "
                        f"{type(model).__name__}")
    probe = _Probe(model, x_batch, y_batch, loss=loss, thresholds=thresholds)
    summary, grads, acts = probe.measure(compiled=False)
    ratios = _first_step_update_ratios(model, probe, grads)
    frame = _frame(probe.rows(summary, update_ratios=ratios))
    return DiagnosticsReport(frame, find_pathologies(frame, probe.thresholds),
                             probe.activations(acts))


# --------------------------------------------------------------------------- callback
#: Record every this many training steps by default (one probe pass costs a few steps).
DEFAULT_INTERVAL = 100
#: By default at most this share of training time goes to diagnostics.
DEFAULT_MAX_OVERHEAD = 0.05


class DiagnosticsCallback(keras.callbacks.Callback):
    """Record per-layer diagnostics every ``interval`` steps; warn once per pathology.

    Each record is one forward + backward pass on the probe batch (traced with
    ``tf.function`` once training goes on, see :meth:`_Probe.measure`) plus the
    update/weight ratio of the training step it follows. The table is written
    (atomically) to ``output_dir/diagnostics.csv`` after every epoch, and the plots to
    ``output_dir/plots/`` at the end of training. A resumed run appends to its table.

    Args:
        x_probe, y_probe: a fixed probe batch (e.g. 256 training rows).
        output_dir: run directory to save into (``None``: keep in memory, ``.frame``).
        interval: record every this many steps (and at the first and the last step).
        max_overhead: cap on the share of training time spent on diagnostics (default
            5%): a due record waits until the time spent so far is within the cap, so the
            slowdown stays bounded on any model and machine. ``None``: record strictly
            every ``interval`` steps. The final record and the plots come on top.
        loss: the loss to differentiate (default: the model's compiled loss).
        thresholds: when a statistic counts as a pathology.
        warn: emit a :class:`DiagnosticsWarning` the first time each pathology appears.
        plots: write the PNGs at the end of training.

    Example:
        >>> cb = DiagnosticsCallback(x_train[:256], y_train[:256], output_dir=run_dir)
        >>> model.fit(x_train, y_train, callbacks=[cb])  # doctest: +SKIP
        >>> cb.frame.groupby("layer")["grad_norm"].mean()  # doctest: +SKIP
    """

    def __init__(self, x_probe, y_probe, output_dir=None, *, interval: int = DEFAULT_INTERVAL,
                 max_overhead: float | None = DEFAULT_MAX_OVERHEAD, loss=None,
                 thresholds: Thresholds | None = None, warn: bool = True, plots: bool = True):
        super().__init__()
        check_range("interval", interval, 1, integer=True)
        if max_overhead is not None:
            check_range("max_overhead", max_overhead, 0.0, 1.0, low_inclusive=False)
        if thresholds is not None and not isinstance(thresholds, Thresholds):
            raise TypeError(f"Argument `thresholds` must be a Thresholds. "
                            f"Received: thresholds={thresholds!r}")
        self.x_probe, self.y_probe = _check_batch(x_probe, y_probe)
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.interval, self.max_overhead = interval, max_overhead
        self.loss, self.warn, self.plots = loss, warn, plots
        self.thresholds = thresholds or Thresholds()
        self.findings: list[Finding] = []
        self.rows: list[dict] = []
        self._probe = self._snapshot = self._first_total = None
        self._count = self._epoch = self._saved_rows = 0
        self._pending, self._spent, self._start = True, 0.0, time.perf_counter()

    @property
    def frame(self):
        """Every record so far as a DataFrame (:data:`COLUMNS`)."""
        return _frame(self.rows)

    def on_train_begin(self, logs=None):
        self._start, self._spent, self._pending = time.perf_counter(), 0.0, True
        if self._probe is None or self._probe.model is not self.model:  # keep a traced probe
            self._probe = _Probe(self.model, self.x_probe, self.y_probe, loss=self.loss,
                                 thresholds=self.thresholds)
        saved = self.output_dir / DIAGNOSTICS_CSV if self.output_dir is not None else None
        if saved is not None and saved.exists() and not self.rows:
            # A resumed run (BackupAndRestore) keeps the records of its earlier attempt.
            earlier = load_diagnostics(self.output_dir)
            self.rows = earlier.to_dict("records")
            self._saved_rows = len(self.rows)
            first = earlier[earlier["step"] == earlier["step"].min()]
            self._first_total = float(np.sqrt(np.sum(first["grad_norm"] ** 2)))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _within_budget(self) -> bool:
        if self.max_overhead is None or not self.rows:
            return True
        return self._spent <= self.max_overhead * (time.perf_counter() - self._start)

    def on_train_batch_begin(self, batch, logs=None):
        if self._count % self.interval == 0:
            self._pending = True
        if self._pending and self._within_budget():
            start = time.perf_counter()
            self._snapshot = [ops.convert_to_numpy(k) for k in self._probe.kernels]
            self._pending = False
            self._spent += time.perf_counter() - start

    def on_train_batch_end(self, batch, logs=None):
        self._count += 1
        if self._snapshot is None:
            return
        start = time.perf_counter()
        after = [ops.convert_to_numpy(k) for k in self._probe.kernels]
        ratios = [np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12)
                  for a, b in zip(after, self._snapshot)]
        self._snapshot = None
        self._spent += time.perf_counter() - start
        self._record(ratios)

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self._record(None)  # diverged between two records: catch it now
        self._save()  # an interrupted run keeps what it recorded

    def on_train_end(self, logs=None):
        if self._probe is None:
            return
        self._record(None)  # the final state, whatever the interval
        self._save()
        if self.output_dir is not None and self.plots:
            save_plots(self.frame, self.output_dir / "plots", self._probe.activations())

    def _save(self) -> None:
        if self.output_dir is None or len(self.rows) == self._saved_rows:
            return
        start = time.perf_counter()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.output_dir / DIAGNOSTICS_CSV, self.frame.to_csv(index=False))
        self._saved_rows = len(self.rows)
        self._spent += time.perf_counter() - start

    def _record(self, update_ratios) -> None:
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        if self.rows and self.rows[-1]["step"] == step and update_ratios is None:
            return  # already recorded at this step
        start = time.perf_counter()
        rows = self._probe.rows(self._probe.measure()[0], step, self._epoch, update_ratios)
        self.rows.extend(rows)
        if self._first_total is None:
            self._first_total = float(np.sqrt(sum(r["grad_norm"] ** 2 for r in rows)))
        seen = {f.kind for f in self.findings}
        for finding in _step_findings(_frame(rows), self.thresholds, self._first_total):
            if finding.kind in seen:
                continue
            seen.add(finding.kind)
            self.findings.append(finding)
            if self.warn:
                warnings.warn(f"step {step}: {finding}", DiagnosticsWarning, stacklevel=2)
        self._spent += time.perf_counter() - start


# --------------------------------------------------------------------------- plots
def plot_gradient_norms(frames, path, *, title: str | None = None) -> Path:
    """Per-layer gradient norm over depth (log scale), one panel per frame, side by side.

    Args:
        frames: a diagnostics DataFrame, or ``{label: DataFrame}`` to compare setups.
        path: the PNG to write. Each record is one line, colored from early (dark) to late.
    """
    plt = pyplot()
    frames = frames if isinstance(frames, dict) else {"": frames}
    fig, axes = plt.subplots(1, len(frames), figsize=(4.2 * len(frames), 3.6), sharey=True,
                             squeeze=False)
    for ax, (label, frame) in zip(axes[0], frames.items()):
        steps = sorted(frame["step"].unique())
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(steps)))
        for color, step in zip(colors, steps):
            rows = frame[frame["step"] == step].sort_values("index")
            ax.plot(rows["index"], rows["grad_norm"].clip(lower=1e-30), marker=".",
                    color=color, label=f"step {step}" if step in (steps[0], steps[-1]) else None)
        ax.set_yscale("log")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("layer (input -> output)")
        ax.set_title(f"{label}\nfirst/last = {gradient_ratio(frame):.2g}".strip())
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("gradient norm")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_gradient_norms_over_time(frame, path) -> Path:
    """Each layer's gradient norm over training steps (log scale), colored by depth."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    n = int(frame["index"].max())
    for index, rows in frame.groupby("index"):
        ax.plot(rows["step"], rows["grad_norm"].clip(lower=1e-30),
                color=plt.cm.viridis(0.9 * (index - 1) / max(n - 1, 1)), lw=1)
    sm = plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(1, n))
    fig.colorbar(sm, ax=ax, label="layer")
    ax.set(yscale="log", xlabel="training step", ylabel="gradient norm")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_activation_histograms(activations: dict[str, np.ndarray], path, bins: int = 50) -> Path:
    """Histograms of each layer's activations on the probe batch, stacked input (top) to output.

    One axes with one filled outline per layer (a ridgeline plot): matplotlib's ``hist``
    on dozens of small axes takes seconds, and the shared x axis makes layers comparable.
    """
    plt = pyplot()
    finite = {name: np.asarray(v, "float64").ravel() for name, v in activations.items()}
    finite = {name: v[np.isfinite(v)] for name, v in finite.items()}
    pooled = np.concatenate([v for v in finite.values() if v.size] or [np.zeros(1)])
    low, high = np.percentile(pooled, [0.5, 99.5])
    edges = np.linspace(low, high if high > low else low + 1, bins + 1)
    fig, ax = plt.subplots(figsize=(6.5, 0.32 * len(finite) + 1.2))
    for offset, (name, values) in enumerate(reversed(list(finite.items()))):
        counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), edges)
        height = 0.9 * counts / max(counts.max(), 1)
        ax.stairs(height + offset, edges, baseline=offset, fill=True, alpha=0.8,
                  color=plt.cm.viridis(0.9 * offset / max(len(finite) - 1, 1)))
    ax.set_yticks(np.arange(len(finite)) + 0.3, list(reversed(list(finite))), fontsize=7)
    ax.set(xlabel="activation value (clipped to the 0.5-99.5 percentiles)",
           title="activations on the probe batch")
    fig.tight_layout()
    return save_figure(fig, path)


def save_plots(frame, directory, activations: dict | None = None, *,
               prefix: str = "") -> list[Path]:
    """Write the diagnostics plots of a table (and of activations, if given) into ``directory``.

    Files: ``{prefix}gradient_norms_depth.png``, ``{prefix}gradient_norms_time.png`` (when
    there is more than one record) and ``{prefix}activation_histograms.png``.
    """
    directory = Path(directory)
    paths = [plot_gradient_norms(frame, directory / f"{prefix}gradient_norms_depth.png")]
    if frame["step"].nunique() > 1:
        paths.append(plot_gradient_norms_over_time(
            frame, directory / f"{prefix}gradient_norms_time.png"))
    if activations:
        paths.append(plot_activation_histograms(
            activations, directory / f"{prefix}activation_histograms.png"))
    return paths


def load_diagnostics(run_dir):
    """The diagnostics table a run recorded (``run_dir/diagnostics.csv``)."""
    import pandas as pd

    path = Path(run_dir) / DIAGNOSTICS_CSV
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: train with `--diagnose` "
                                "(fit(diagnose=True)) to record diagnostics.")
    return pd.read_csv(path)
