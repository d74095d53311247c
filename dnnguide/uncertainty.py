"""Monte Carlo dropout prediction that leaves the model untouched, and calibration metrics.

:func:`mc_predict` switches on *dropout only*: it runs a copy of the model whose
``Dropout``/``AlphaDropout`` layers are always-on MC layers (:func:`dnnguide.layers.to_mc_dropout`)
with every other layer in inference mode. Calling the model with ``training=True`` instead
would also put BatchNormalization in training mode and overwrite its moving statistics.
The samples are batched: each compiled call runs the model once on ``n`` tiled copies of a
chunk of inputs (each row gets its own dropout mask), which removes the per-call overhead
of the naive ``[model(x, training=True) for _ in range(100)]`` loop; ``max_rows`` bounds the
rows of one call, so large inputs are processed in chunks.

Metrics (top-1 expected calibration error with equal-width bins, NLL, Brier score,
accuracy, rejection curve) work on any class probabilities; the plots are matplotlib PNGs.

Example:
    >>> import dnnguide
    >>> model = dnnguide.build_model("risk_sensitive", (8,), 3, depth=2, width=16)
    >>> x = np.random.default_rng(0).normal(size=(20, 8)).astype("float32")
    >>> pred = mc_predict(model, x, n_samples=10, seed=0)
    >>> pred.mean.shape, pred.entropy.shape
    ((20, 3), (20,))

References:
    Gal & Ghahramani (2016), "Dropout as a Bayesian Approximation", ICML.
    Guo et al. (2017), "On Calibration of Modern Neural Networks", ICML (ECE, reliability diagrams).
    Naeini et al. (2015), "Obtaining Well Calibrated Probabilities Using Bayesian Binning", AAAI.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from dnnguide.config import TASKS, check_choice, check_range
from dnnguide.calibration import (  # noqa: F401  (re-exported: the metrics users reach for here)
    _EPS,
    accuracy,
    brier_score,
    calibration_bins,
    classification_metrics,
    expected_calibration_error,
    negative_log_likelihood,
    plot_rejection_curves,
    predictive_entropy,
    rejection_curve,
    reliability_diagram,
    uncertainty_histogram,
)
from dnnguide.layers import copy_weights, has_dropout, to_mc_dropout, to_standard_dropout



class NoDropoutWarning(UserWarning):
    """MC dropout was asked of a model without dropout: every sample is the same."""


@dataclass
class MCPrediction:
    """What :func:`mc_predict` returns.

    Attributes:
        mean: mean prediction over the samples (class probabilities for classification).
        std: standard deviation over the samples, per output (per class for classification).
        task: ``"classification"``, ``"binary"`` or ``"regression"``.
        n_samples: number of MC samples.
        entropy: predictive entropy of ``mean`` in nats (classification/binary), else None.
        mutual_information: entropy minus the mean entropy of the samples (the model's
            epistemic share, "BALD"), classification/binary only.
        samples: all samples, shape ``(n_samples, len(x), ...)``, if asked for.
    """

    mean: np.ndarray
    std: np.ndarray
    task: str
    n_samples: int
    entropy: np.ndarray | None = None
    mutual_information: np.ndarray | None = None
    samples: np.ndarray | None = None

    @property
    def uncertainty(self) -> np.ndarray:
        """One number per example: predictive entropy, or the mean std for regression."""
        if self.entropy is not None:
            return self.entropy
        return self.std.reshape(len(self.std), -1).mean(axis=1)


# --------------------------------------------------------------------------- sampling
class _Sampler(keras.Model):
    """One compiled call: the model on ``n`` tiled copies of a batch, reduced to statistics."""

    def __init__(self, model, n, task, return_samples):
        super().__init__(name="mc_sampler")
        self.inner, self.n, self.task, self.return_samples = model, n, task, return_samples

    def call(self, x):
        batch = ops.shape(x)[0]
        tiled = ops.tile(x, (self.n,) + (1,) * (len(x.shape) - 1))  # sample-major rows
        y = self.inner(tiled, training=False)  # BN etc. in inference mode; MC layers sample
        # float32 statistics even under a mixed-precision policy (log of a float16 1e-12 is -inf)
        y = ops.cast(ops.reshape(y, (self.n, batch) + tuple(y.shape[1:])), "float32")
        mean = ops.mean(y, axis=0)
        out = {"mean": mean, "m2": ops.sum(ops.square(y - mean), axis=0)}
        if self.task != "regression":
            p = ops.concatenate([1.0 - y, y], axis=-1) if self.task == "binary" else y
            entropy = -ops.sum(p * ops.log(ops.clip(p, _EPS, 1.0)), axis=-1)
            out["mean_entropy"] = ops.mean(entropy, axis=0)
        if self.return_samples:
            out["samples"] = y
        return out


def infer_task(model: keras.Model) -> str:
    """``classification`` (softmax output), ``binary`` (one sigmoid unit) or ``regression``."""
    task = getattr(model, "dnnguide_task", None)
    if task in TASKS:
        return task
    activation = getattr(getattr(model.layers[-1], "activation", None), "__name__", "")
    if activation == "softmax":
        return "classification"
    outputs = getattr(model, "outputs", None) or []
    if activation == "sigmoid" and outputs and outputs[0].shape[-1] == 1:
        return "binary"
    return "regression"


class MCDropoutPredictor:
    """Reusable MC dropout sampler for one model: compiles once, predicts many times.

    Holds the MC copy of ``model`` (if it needed converting) and the compiled sampling
    calls, so repeated predictions skip the conversion and the tracing that a one-shot
    :func:`mc_predict` pays. A copy is refreshed from ``model``'s weights before every
    prediction, so training ``model`` further is never silently ignored.

    Args:
        model: a Keras model with one input and one output (Sequential or functional if
            it has standard dropout layers to convert).
        task: ``classification``/``binary``/``regression``; inferred from the output layer.
        max_rows: memory bound, rows of one compiled call (inputs times samples per call);
            small enough to stay in cache (4096 was fastest on CPU for a 100-wide net).
        seed: seed for the dropout masks (reproducible results); None draws from the
            global seed (``keras.utils.set_random_seed``).

    Example:
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
        ...                           keras.layers.Dropout(0.5), keras.layers.Dense(1)])
        >>> predictor = MCDropoutPredictor(model, seed=0)
        >>> predictor.predict(np.ones((3, 4), "float32"), n_samples=50).std.shape
        (3, 1)
    """

    def __init__(self, model: keras.Model, *, task: str | None = None, max_rows: int = 4096,
                 seed: int | None = None):
        check_range("max_rows", max_rows, 1, integer=True)
        task = infer_task(model) if task is None else task
        check_choice("task", task, TASKS)
        self._inputs = list(getattr(model, "inputs", None) or [])  # a subclassed model has none
        outputs = list(getattr(model, "outputs", None) or [])
        if len(self._inputs) > 1 or len(outputs) > 1:
            raise ValueError("Argument `model` must have one input and one output. Received: "
                             f"model with {len(self._inputs)} inputs and {len(outputs)} outputs")
        self.model, self.task, self.max_rows = model, task, max_rows
        self._mc = model
        if seed is not None or has_dropout(model, ("standard",)):
            self._mc = to_mc_dropout(model, seed=seed)
        if not has_dropout(self._mc, ("mc",)):
            warnings.warn("The model has no dropout layers, so every MC sample equals the plain "
                          "prediction (std 0). Train it with dropout (e.g. the 'risk_sensitive' "
                          "preset) for MC dropout.", NoDropoutWarning, stacklevel=2)
        self._samplers: dict[tuple[int, bool], _Sampler] = {}

    def predict(self, x, n_samples: int = 100, batch_size: int | None = None, *,
                return_samples: bool = False, verbose="auto") -> MCPrediction:
        """MC dropout prediction of ``x``; arguments as in :func:`mc_predict`."""
        check_range("n_samples", n_samples, 1, integer=True)
        if batch_size is not None:
            check_range("batch_size", batch_size, 1, integer=True)
        check_choice("verbose", verbose, ("auto", 0, 1))
        x = self._check_x(x)
        if self._mc is not self.model:
            copy_weights(self.model, self._mc)
        per_call = _samples_per_call(self._mc, n_samples, batch_size, self.max_rows)
        if batch_size is None:
            batch_size = max(1, self.max_rows // per_call)
        batch_size = min(batch_size, len(x))
        sample_chunks = [per_call] * (n_samples // per_call)
        if n_samples % per_call:
            sample_chunks.append(n_samples % per_call)
        results, sample_parts = [], []
        starts = range(0, len(x), batch_size)
        with _progress(len(starts) * len(sample_chunks), verbose) as bar:
            for start in starts:
                chunk = x[start:start + batch_size]
                real = len(chunk)
                if real < batch_size:  # pad the last chunk: one compiled shape, no retracing
                    chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch_size - real, 0)])
                stats, samples = None, []
                for n in sample_chunks:
                    out = self._sampler(n, return_samples).predict_on_batch(chunk)
                    part = {k: np.asarray(v, "float64")[:, :real] if k == "samples"
                            else np.asarray(v, "float64")[:real] for k, v in out.items()}
                    if self.task != "regression" and stats is None:
                        _check_probabilities(part["mean"], self.task)
                    stats = _merge(stats, part, n)
                    if return_samples:
                        samples.append(part["samples"].astype("float32"))
                    bar.update(1)
                results.append(stats)
                if return_samples:
                    sample_parts.append(np.concatenate(samples, axis=0))
        return self._prediction(results, sample_parts, n_samples)

    def _sampler(self, n, return_samples) -> _Sampler:
        key = (n, return_samples)
        if key not in self._samplers:
            self._samplers[key] = _Sampler(self._mc, n, self.task, return_samples)
        return self._samplers[key]

    def _check_x(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=self._inputs[0].dtype if self._inputs else "float32")
        expected = tuple(self._inputs[0].shape[1:]) if self._inputs else tuple(x.shape[1:])
        if (x.ndim != len(expected) + 1 or len(x) == 0
                or any(e is not None and e != d for e, d in zip(expected, x.shape[1:]))):
            shape = ", ".join(str(d) for d in expected)
            raise ValueError(f"Argument `x` must be a non-empty array of shape (n, {shape}). "
                             f"Received: x of shape {x.shape}")
        return x

    def _prediction(self, results, sample_parts, n_samples) -> MCPrediction:
        mean = np.concatenate([r["mean"] for r in results])
        std = np.sqrt(np.concatenate([r["m2"] for r in results]) / n_samples)
        pred = MCPrediction(mean.astype("float32"), std.astype("float32"), self.task, n_samples)
        if self.task != "regression":
            pred.entropy = predictive_entropy(mean)
            mean_entropy = np.concatenate([r["mean_entropy"] for r in results])
            pred.mutual_information = np.clip(pred.entropy - mean_entropy, 0.0, None)
        if sample_parts:
            pred.samples = np.concatenate(sample_parts, axis=1)
        return pred


def mc_predict(
    model: keras.Model,
    x,
    n_samples: int = 100,
    batch_size: int | None = None,
    *,
    return_samples: bool = False,
    task: str | None = None,
    max_rows: int = 4096,
    seed: int | None = None,
    verbose="auto",
) -> MCPrediction:
    """Monte Carlo dropout prediction with dropout switched on, and nothing else.

    ``model`` is not modified: its standard dropout layers are replaced in a copy
    (:func:`~dnnguide.layers.to_mc_dropout`); a model that already has MC layers (the
    ``risk_sensitive`` preset) is used as is. BatchNormalization runs on its moving
    statistics, and every weight stays bitwise unchanged (only the dropout layers'
    random-generator states advance, which are not weights). For many calls on one
    model, :class:`MCDropoutPredictor` compiles once.

    Args:
        model: a Keras model with one input and one output (Sequential or functional if
            it has standard dropout layers to convert).
        x: inputs, an array of shape ``(n, ...)``.
        n_samples: number of stochastic forward passes (>= 1).
        batch_size: inputs per compiled call; default: as many as fit ``max_rows`` rows.
        return_samples: also return every sample (``n_samples`` times the output's memory).
        task: ``classification``/``binary``/``regression``; inferred from the output layer.
        max_rows: memory bound, rows of one compiled call (``batch_size`` times samples per call).
        seed: seed for the dropout masks (reproducible results); None draws from the
            global seed (``keras.utils.set_random_seed``).
        verbose: ``"auto"`` shows a tqdm bar only if sampling takes over 2 s; 1 always; 0 never.

    Returns:
        An :class:`MCPrediction` (mean, std, entropy, mutual information, samples).

    Example:
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
        ...                           keras.layers.Dropout(0.5), keras.layers.Dense(1)])
        >>> pred = mc_predict(model, np.ones((3, 4), "float32"), n_samples=50, seed=1)
        >>> pred.mean.shape, pred.std.shape, pred.task
        ((3, 1), (3, 1), 'regression')
    """
    check_range("n_samples", n_samples, 1, integer=True)  # before any conversion
    predictor = MCDropoutPredictor(model, task=task, max_rows=max_rows, seed=seed)
    return predictor.predict(x, n_samples, batch_size, return_samples=return_samples,
                             verbose=verbose)


def _samples_per_call(model, n_samples, batch_size, max_rows) -> int:
    for layer in _mc_layers(model):
        shape = getattr(layer, "noise_shape", None)
        if shape is not None and len(shape) and shape[0] == 1:
            # One mask shared by the whole batch would be shared by all tiled samples too.
            return 1
    return max(1, min(n_samples, max_rows // (batch_size or 1)))


def _mc_layers(model):
    from dnnguide.layers import MCAlphaDropout, MCDropout, _all_layers

    return [layer for layer in _all_layers(model) if isinstance(layer, (MCDropout, MCAlphaDropout))]


def _merge(stats, part, n):
    """Chan et al.'s pairwise update of (count, mean, M2): exact, no sum-of-squares cancellation."""
    part = {"count": n, "mean": part["mean"], "m2": part["m2"],
            "mean_entropy": part.get("mean_entropy")}
    if stats is None:
        return part
    total = stats["count"] + n
    delta = part["mean"] - stats["mean"]
    merged = {
        "count": total,
        "mean": stats["mean"] + delta * n / total,
        "m2": stats["m2"] + part["m2"] + delta ** 2 * stats["count"] * n / total,
        "mean_entropy": None,
    }
    if part["mean_entropy"] is not None:
        merged["mean_entropy"] = (stats["mean_entropy"] * stats["count"]
                                  + part["mean_entropy"] * n) / total
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


# --------------------------------------------------------------------------- plain vs MC
@dataclass
class Comparison:
    """Plain vs MC dropout on one labelled set (what :func:`compare_mc_dropout` returns)."""

    table: object  # pandas DataFrame, index ["plain", "mc"]
    y_true: np.ndarray
    plain: np.ndarray  # plain (dropout off) predictions
    mc: MCPrediction

    def save_plots(self, folder, prefix: str = "uncertainty", n_bins: int = 15) -> list:
        """Reliability diagram, uncertainty histogram, rejection curve (classification only).

        Files get fresh names (``-2``, ``-3``... if taken); nothing is overwritten.
        """
        from pathlib import Path

        if self.mc.task == "regression":
            return []
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        probs = {"plain": self.plain, f"MC dropout ({self.mc.n_samples})": self.mc.mean}
        curves = {name: rejection_curve(self.y_true, p) for name, p in probs.items()}
        def name(kind):
            return fresh_path(folder / f"{prefix}_{kind}.png")

        return [
            reliability_diagram(self.y_true, probs, name("reliability"), n_bins=n_bins),
            uncertainty_histogram(self.y_true, probs, name("histogram")),
            plot_rejection_curves(curves, name("rejection")),
        ]


def fresh_path(path):
    """``path``, or ``<stem>-2<suffix>``, ``-3``... if taken (so nothing is overwritten)."""
    from pathlib import Path

    path = Path(path)
    stem, suffix, attempt = path.stem, path.suffix, 1
    while path.exists():
        attempt += 1
        path = path.with_name(f"{stem}-{attempt}{suffix}")
    return path


def compare_mc_dropout(model, x, y, *, n_samples: int = 100, n_bins: int = 15,
                       task: str | None = None, batch_size: int | None = None,
                       seed: int | None = None, verbose="auto") -> Comparison:
    """Plain prediction (dropout off) vs MC dropout: metrics and time, as a pandas table.

    Classification/binary columns: ``accuracy``, ``nll``, ``ece``, ``brier``, ``time_s``;
    regression: ``rmse``, ``mae``, ``mean_std``, ``time_s``. ``model`` may have standard or
    MC dropout layers (its plain twin is :func:`~dnnguide.layers.to_standard_dropout`).
    Times include each path's one-off compilation.
    """
    import pandas as pd

    check_range("n_bins", n_bins, 1, integer=True)
    task = infer_task(model) if task is None else task
    check_choice("task", task, TASKS)
    plain_model = to_standard_dropout(model) if has_dropout(model, ("mc",)) else model
    start = time.perf_counter()
    plain = plain_model.predict(np.asarray(x), batch_size=batch_size or 256, verbose=0)
    plain_time = time.perf_counter() - start
    start = time.perf_counter()
    mc = mc_predict(model, x, n_samples, batch_size, task=task, seed=seed, verbose=verbose)
    mc_time = time.perf_counter() - start
    rows = {}
    for name, pred, seconds in (("plain", plain, plain_time), ("mc", mc.mean, mc_time)):
        if task == "regression":
            err = np.asarray(pred, "float64").reshape(len(pred), -1) - \
                np.asarray(y, "float64").reshape(len(pred), -1)
            rows[name] = {"rmse": float(np.sqrt(np.mean(err ** 2))),
                          "mae": float(np.mean(np.abs(err))),
                          "mean_std": float(mc.std.mean()) if name == "mc" else 0.0}
        else:
            rows[name] = classification_metrics(y, pred, n_bins)
        rows[name]["time_s"] = seconds
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "prediction"
    return Comparison(table, np.asarray(y), np.asarray(plain), mc)
