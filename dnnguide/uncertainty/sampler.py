"""The compiled MC dropout sampler and the bookkeeping around its calls.

:class:`_Sampler` runs a model on ``n`` tiled copies of a batch in one compiled call, with
dropout on (:func:`dnnguide.layers.mc_sampling`) and every other layer in inference mode,
and reduces the samples to their statistics in the graph; :func:`_merge` combines the
statistics of successive calls exactly. Used by :class:`dnnguide.MCDropoutPredictor`.

Example:
    >>> a = {"mean": np.array([1.0]), "m2": np.array([0.0])}
    >>> b = {"mean": np.array([3.0]), "m2": np.array([0.0])}
    >>> merged = _merge(_merge(None, a, 1), b, 1)  # the samples 1 and 3
    >>> float(merged["mean"][0]), float(merged["m2"][0] / merged["count"])  # mean, variance
    (2.0, 1.0)
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from dnnguide.calibration import _EPS
from dnnguide.layers import _all_layers, mc_sampling


class _Sampler(keras.Model):
    """One compiled call: the model on ``n`` tiled copies of a batch, reduced to statistics.

    Takes ``(x, seed)``: the seed (two integers) sets every MC layer's random-generator
    state inside the graph, so the masks depend on the seed input only, and one trace
    serves every seed and every chunk (stateless in effect; no Python loop over samples).
    With ``split`` (:func:`_split_at_first_dropout`), the layers before the first dropout
    run once per input and their output is tiled, not the input.
    """

    def __init__(self, model, n, task, return_samples, split=None):
        super().__init__(name="mc_sampler")
        self.inner, self.n, self.task, self.return_samples = model, n, task, return_samples
        self.prefix, self.suffix = split if split is not None else (None, model)

    def call(self, inputs):
        x, seed = inputs
        for i, layer in enumerate(_mc_layers(self.inner)):
            state = layer.seed_generator.state
            offset = ops.convert_to_tensor(np.array([0, i]), dtype=state.dtype)
            state.assign(ops.cast(seed, state.dtype) + offset)
        batch = ops.shape(x)[0]
        # traced with dropout on (BN etc. in inference mode), on n sample-major tiles
        with mc_sampling(samples=self.n):
            if self.prefix is not None:  # deterministic: the same for every sample
                x = self.prefix(x, training=False)
            tiled = ops.tile(x, (self.n,) + (1,) * (len(x.shape) - 1))  # sample-major rows
            y = self.suffix(tiled, training=False)
        # float32 statistics even under a mixed-precision policy (log of a float16 1e-12 is -inf)
        y = ops.cast(ops.reshape(y, (self.n, batch) + tuple(y.shape[1:])), "float32")
        mean = ops.mean(y, axis=0)
        out = {"mean": mean, "m2": ops.sum(ops.square(y - mean), axis=0)}
        if self.task != "regression":
            p = ops.concatenate([1.0 - y, y], axis=-1) if self.task == "binary" else y
            entropy = -ops.sum(p * ops.log(ops.clip(p, _EPS, 1.0)), axis=-1)
            out["mean_entropy"] = ops.mean(entropy, axis=0)
            # for the geometric pooling: the mean log-probability (binary: log-odds)
            log_p = ops.log(ops.clip(y, _EPS, 1.0))
            if self.task == "binary":
                log_p = log_p - ops.log(ops.clip(1.0 - y, _EPS, 1.0))
            out["mean_log"] = ops.mean(log_p, axis=0)
        if self.return_samples:
            out["samples"] = y
        return out


def _split_at_first_dropout(model):
    """``(prefix, suffix)``: ``model`` cut at the input of its first MC dropout layer, or None.

    The layers before any dropout give every sample of an input the same output, so the
    sampler runs them once per input and tiles their output (on a 2x100 net with 40 inputs,
    a quarter of the multiply-adds saved). Both parts share ``model``'s layers (Keras adds
    a node to each layer of the suffix, as for any model built on an intermediate tensor;
    ``model`` itself, its weights and config are unchanged). None, and the input is tiled,
    where no such cut exists: no graph (a subclassed model), dropout right after the input,
    a path to the output that bypasses the cut (Keras refuses the suffix), or a dropout
    layer on the prefix side (its mask would be shared by the samples).
    """
    layers = _mc_layers(model)
    inputs = list(getattr(model, "inputs", None) or [])
    outputs = list(getattr(model, "outputs", None) or [])
    if not layers or len(inputs) != 1 or len(outputs) != 1:
        return None
    try:
        cut = layers[0].input
        if not isinstance(cut, keras.KerasTensor) or cut is inputs[0]:
            return None
        prefix = keras.Model(inputs[0], cut, name=f"{model.name}_before_dropout")
        if _mc_layers(prefix):
            return None
        suffix = keras.Model(cut, outputs[0], name=f"{model.name}_from_dropout")
    except (AttributeError, ValueError):  # never called, or the graph does not split there
        return None
    return prefix, suffix


def _samples_per_call(model, n_samples, batch_size, max_rows) -> int:
    for layer in _mc_layers(model):
        shape = getattr(layer, "noise_shape", None)
        if shape is not None and len(shape) and shape[0] == 1:
            # One mask shared by the whole batch would be shared by all tiled samples too.
            return 1
    return max(1, min(n_samples, max_rows // (batch_size or 1)))


def _mc_layers(model):
    """The layers that draw at random under MC sampling: MC dropout, and an ensemble's router
    (which member each sample comes from; the pool draws it in ensembles saved before routing)."""
    from dnnguide.layers import EnsemblePool, EnsembleRouter, MCAlphaDropout, MCDropout

    return [layer for layer in _all_layers(model)
            if isinstance(layer, (MCDropout, MCAlphaDropout, EnsemblePool, EnsembleRouter))]


def _merge(stats, part, n):
    """Chan et al.'s pairwise update of (count, mean, M2): exact, no sum-of-squares cancellation."""
    part = {"count": n, "mean": part["mean"], "m2": part["m2"],
            "mean_entropy": part.get("mean_entropy"), "mean_log": part.get("mean_log")}
    if stats is None:
        return part
    total = stats["count"] + n
    delta = part["mean"] - stats["mean"]
    merged = {
        "count": total,
        "mean": stats["mean"] + delta * n / total,
        "m2": stats["m2"] + part["m2"] + delta ** 2 * stats["count"] * n / total,
        "mean_entropy": None, "mean_log": None,
    }
    for key in ("mean_entropy", "mean_log"):  # plain means, weighted by their sample counts
        if part[key] is not None:
            merged[key] = (stats[key] * stats["count"] + part[key] * n) / total
    return merged


def _check_probabilities(mean, task) -> None:
    low, high = float(mean.min()), float(mean.max())
    sums = mean.sum(axis=-1)
    if low < -1e-6 or high > 1 + 1e-6 or (task == "classification"
                                          and not np.allclose(sums, 1.0, atol=1e-3)):
        raise ValueError(
            f"A {task} model must output probabilities (softmax, or sigmoid for binary), since "
            f"MC dropout averages probabilities, not logits. Received outputs in [{low:.3g}, "
            f"{high:.3g}] (row sums {sums.min():.3g}..{sums.max():.3g}). Add the activation to "
            "the output layer, or pass task='regression' to average raw outputs.")


class _progress:
    def __init__(self, total, verbose):
        from tqdm.auto import tqdm

        # "auto": a bar only for runs long enough to want one (tqdm's delay hides it until then).
        self.bar = tqdm(total=total, desc="MC dropout", unit="call", disable=verbose == 0,
                        delay=0 if verbose == 1 else 2.0, leave=False)

    def __enter__(self):
        return self.bar

    def __exit__(self, *exc):
        self.bar.close()
        return False
