"""The probe: one forward and one backward pass on a fixed batch, per-layer statistics.

Backend note: Keras 3 has no backend-agnostic way to take gradients, so the backward pass is the
one TensorFlow-only piece (``tf.GradientTape``, imported lazily, marked ``TF-only`` below). The
forward pass uses ``Model.stateless_call``, which leaves every variable untouched (batch-norm
moving statistics, dropout seeds); gradient norms are taken with ``keras.ops`` and activation
statistics with NumPy on the host.

Example:
    >>> report = check_model(model, x_train[:256], y_train[:256])  # doctest: +SKIP
    >>> report.kinds  # doctest: +SKIP
    ['vanishing']
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from dnnguide.config import ConfigError
from dnnguide.diagnostics.plots import plot_gradient_norms, save_plots
from dnnguide.diagnostics.rules import (
    COLUMNS, DEAD_CAPABLE, SATURATING, Finding, Thresholds, _frame, find_pathologies,
)

#: Tracing the probe costs about this many eager passes: a run that will take more records
#: than this traces at once, a run of unknown length records this many eagerly first.
EAGER_RECORDS = 8


@dataclass
class DiagnosticsReport:
    """What :func:`check_model` returns: one row per layer, the findings, the activations."""

    frame: Any  # pandas DataFrame with COLUMNS
    findings: list[Finding]
    activations: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    thresholds: Thresholds = field(default_factory=Thresholds, repr=False)

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

    def plot(self, path) -> Path:
        """Write the per-layer gradient-norm plot to ``path`` (a PNG) and return it."""
        return plot_gradient_norms(self.frame, path, thresholds=self.thresholds)

    def save_plots(self, directory, *, prefix: str = "") -> list[Path]:
        """Write gradient-norm and activation-histogram PNGs into ``directory``."""
        return save_plots(self.frame, directory, self.activations, prefix=prefix,
                          thresholds=self.thresholds)


def _activation_name(layer) -> str | None:
    if isinstance(layer, keras.layers.ReLU):
        return "relu6" if layer.max_value == 6 else "relu"
    if isinstance(layer, keras.layers.LeakyReLU):
        return "leaky_relu"
    if isinstance(layer, keras.layers.ELU):
        return "elu"
    name = getattr(getattr(layer, "activation", None), "__name__", None)
    return None if name in (None, "linear") else name


def _initializer_name(layer) -> str:
    """The kernel initializer's name in snake case (``"lecun_normal"``), or ``""``."""
    init = getattr(layer, "kernel_initializer", None)
    if init is None:
        return ""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(init).__name__).lower()


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
        self.eager_records = EAGER_RECORDS  # the callback sets it from the run's length

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
            if name == "selu":  # a unit far from the self-normalizing fixed point (0, 1)
                m, sd = a.mean(axis=0), a.std(axis=0)
                low, high = t.selu_unit_std
                sat = np.mean((np.abs(m) > t.selu_unit_mean) | (sd < low) | (sd > high))
            rows.append([a.mean(), a.std(), dead, sat])
        return np.array(rows, "float64")

    def measure(self, compiled: bool | None = None):
        """([loss, per-layer gradient norms, per-layer stats] as NumPy, gradients, activations).

        ``compiled=False`` runs the pass eagerly and also returns every gradient (a one-shot
        check needs them for its update estimate). ``compiled=True`` traces it once with
        ``tf.function`` (afterwards a record costs a few training steps). ``None`` (the
        callback) runs the first ``eager_records`` records eagerly and compiles after:
        tracing costs about as much as ten eager passes. The callback knows how many
        records a run will take (epochs x steps / interval) and traces at once when that is
        more than :data:`EAGER_RECORDS`, never when it is fewer; for a run of unknown length
        it records :data:`EAGER_RECORDS` eagerly first, so short runs never pay for tracing
        and long ones pay at most twice the optimum (ski rental).
        """
        if keras.backend.backend() != "tensorflow":
            raise NotImplementedError(
                "Per-layer gradients are implemented for the TensorFlow backend only. "
                f"Received: KERAS_BACKEND={keras.backend.backend()!r}")
        if compiled is None:
            self._eager_calls += 1
            compiled = self._eager_calls > self.eager_records
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
            *(float(v) for v in stats[i]), _initializer_name(layer)]))
            for i, (layer, _, name) in enumerate(self.blocks)]

    def activations(self, acts=None) -> dict[str, np.ndarray]:
        """Each block's activations on the probe batch (training-mode forward, nothing updated)."""
        if acts is None:
            tv = [v.value for v in self.probe_model.trainable_variables]
            ntv = [v.value for v in self.probe_model.non_trainable_variables]
            *acts, _ = self.probe_model.stateless_call(tv, ntv, self.x, training=True)[0]
        return {layer.name: ops.convert_to_numpy(a).reshape(len(a), -1)
                for (layer, _, _), a in zip(self.blocks, acts)}


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
                             probe.activations(acts), probe.thresholds)
