"""Monte Carlo dropout prediction that leaves the model untouched, and calibration metrics.

:func:`mc_predict` switches on *dropout only*: it traces the model inside
:func:`dnnguide.layers.mc_sampling`, where its MC dropout layers sample (a model with standard
``Dropout``/``AlphaDropout`` is converted in a copy, :func:`dnnguide.layers.to_mc_dropout`),
with every other layer in inference mode. Calling the model with ``training=True`` instead
would also put BatchNormalization in training mode and overwrite its moving statistics.
The samples are batched: each compiled call runs the model once on ``n`` tiled copies of a
chunk of inputs (each row gets its own dropout mask, drawn in the graph from a seed input),
which removes the per-call overhead of the naive ``[model(x, training=True) for _ in
range(100)]`` loop; ``max_rows`` bounds the rows of one call, so large inputs are processed
in chunks. The sampler is traced once per model and kept with it.

Metrics (top-1 expected calibration error with equal-width bins, NLL, Brier score,
accuracy, rejection curve; Gaussian NLL and interval coverage for regression) work on any
predictions; :func:`shift_check` asks whether the uncertainty rises on shifted inputs; the
plots are matplotlib PNGs.

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
    fit_noise_variance,
    fit_temperature,
    gaussian_interval,
    negative_log_likelihood,
    plot_rejection_curves,
    predictive_entropy,
    temper,
    rejection_curve,
    reliability_diagram,
    uncertainty_histogram,
)
from dnnguide.layers import (
    Calibration, _all_layers, copy_weights, has_dropout, mc_sampling, to_mc_dropout,
)



class NoDropoutWarning(UserWarning):
    """MC dropout was asked of a model without dropout: every sample is the same."""


@dataclass
class MCPrediction:
    """What :func:`mc_predict` returns.

    Attributes:
        mean: mean prediction over the samples (class probabilities for classification;
            for a calibrated model, at its MC temperature).
        std: standard deviation over the samples, per output (per class for classification).
        task: ``"classification"``, ``"binary"`` or ``"regression"``.
        n_samples: number of MC samples.
        entropy: predictive entropy of ``mean`` in nats (classification/binary), else None.
        mutual_information: entropy minus the mean entropy of the samples (the model's
            epistemic share, "BALD"), classification/binary only.
        samples: all samples, shape ``(n_samples, len(x), ...)``, if asked for.
        noise_variance: regression, calibrated model: per-output noise variance fitted on
            validation data (:func:`dnnguide.calibrate`), which :attr:`predictive_std` adds.
    """

    mean: np.ndarray
    std: np.ndarray
    task: str
    n_samples: int
    entropy: np.ndarray | None = None
    mutual_information: np.ndarray | None = None
    samples: np.ndarray | None = None
    noise_variance: np.ndarray | None = None

    @property
    def uncertainty(self) -> np.ndarray:
        """One number per example: predictive entropy, or the mean predictive std for regression."""
        if self.entropy is not None:
            return self.entropy
        return self.predictive_std.reshape(len(self.std), -1).mean(axis=1)

    @property
    def predictive_std(self) -> np.ndarray:
        """Regression: ``sqrt(std**2 + noise_variance)``, the spread of a new target (the
        model's share, across samples, plus the noise's); without calibration, ``std``."""
        if self.noise_variance is None:
            return self.std
        return np.sqrt(np.square(self.std, dtype="float64") + self.noise_variance).astype("float32")

    def interval(self, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Regression: the central Gaussian interval ``mean -/+ z * predictive_std`` of ``level``.

        Example:
            >>> pred = MCPrediction(np.zeros((1, 1)), np.ones((1, 1)), "regression", 10)
            >>> [round(float(v[0, 0]), 3) for v in pred.interval(0.95)]
            [-1.96, 1.96]
        """
        if self.task != "regression":
            raise ValueError("Intervals are for regression; a classifier's uncertainty is its "
                             f"probabilities. Received: task={self.task!r}")
        return gaussian_interval(self.mean, self.predictive_std, level)


# --------------------------------------------------------------------------- sampling
class _Sampler(keras.Model):
    """One compiled call: the model on ``n`` tiled copies of a batch, reduced to statistics.

    Takes ``(x, seed)``: the seed (two integers) sets every MC layer's random-generator
    state inside the graph, so the masks depend on the seed input only, and one trace
    serves every seed and every chunk (stateless in effect; no Python loop over samples).
    """

    def __init__(self, model, n, task, return_samples):
        super().__init__(name="mc_sampler")
        self.inner, self.n, self.task, self.return_samples = model, n, task, return_samples

    def call(self, inputs):
        x, seed = inputs
        for i, layer in enumerate(_mc_layers(self.inner)):
            state = layer.seed_generator.state
            offset = ops.convert_to_tensor(np.array([0, i]), dtype=state.dtype)
            state.assign(ops.cast(seed, state.dtype) + offset)
        batch = ops.shape(x)[0]
        tiled = ops.tile(x, (self.n,) + (1,) * (len(x.shape) - 1))  # sample-major rows
        with mc_sampling():  # traced with dropout on; BN etc. stay in inference mode
            y = self.inner(tiled, training=False)
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
    task = getattr(model, "dnnguide_task", None)  # set by build_model, lost by load_model
    if task in TASKS:
        return task
    calibration = calibration_layer(model)
    if calibration is not None:
        return calibration.task
    activation = getattr(getattr(model.layers[-1], "activation", None), "__name__", "")
    if activation == "softmax":
        return "classification"
    outputs = getattr(model, "outputs", None) or []
    if activation == "sigmoid" and outputs and outputs[0].shape[-1] == 1:
        return "binary"
    return "regression"


class MCDropoutPredictor:
    """Reusable MC dropout sampler for one model: compiles once, predicts many times.

    Holds the MC copy of ``model`` (if it had standard dropout to convert) and the compiled
    sampling calls, so repeated predictions skip the conversion and the tracing
    (:func:`mc_predict` keeps one such predictor with the model). A copy is refreshed from
    ``model``'s weights before every prediction, so training ``model`` further is never
    silently ignored. With ``seed``, successive predictions are a reproducible sequence.

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
        if seed is not None:
            check_range("seed", seed, 0, integer=True)
        task = infer_task(model) if task is None else task
        check_choice("task", task, TASKS)
        self._inputs = list(getattr(model, "inputs", None) or [])  # a subclassed model has none
        outputs = list(getattr(model, "outputs", None) or [])
        if len(self._inputs) > 1 or len(outputs) > 1:
            raise ValueError("Argument `model` must have one input and one output. Received: "
                             f"model with {len(self._inputs)} inputs and {len(outputs)} outputs")
        self.model, self.task, self.max_rows, self.seed = model, task, max_rows, seed
        # Only standard dropout needs a copy (its layers cannot be switched on); MC layers
        # are switched on by the sampler's own trace, so the model itself is used as is.
        self._mc = to_mc_dropout(model) if has_dropout(model, ("standard",)) else model
        self._samplers: dict[tuple[int, bool], _Sampler] = {}
        self._calls = 0

    def predict(self, x, n_samples: int = 100, batch_size: int | None = None, *,
                return_samples: bool = False, seed: int | None = None,
                verbose="auto") -> MCPrediction:
        """MC dropout prediction of ``x``; arguments as in :func:`mc_predict`.

        ``seed=None`` continues the predictor's stream: reproducible from the predictor's
        own seed, else drawn from the global seed (``keras.utils.set_random_seed``).
        """
        check_range("n_samples", n_samples, 1, integer=True)
        if batch_size is not None:
            check_range("batch_size", batch_size, 1, integer=True)
        if seed is not None:
            check_range("seed", seed, 0, integer=True)
        check_choice("verbose", verbose, ("auto", 0, 1))
        x = self._check_x(x)
        if not has_dropout(self._mc, ("mc",)):
            warnings.warn("The model has no dropout layers, so every MC sample equals the plain "
                          "prediction (std 0). Train it with dropout (e.g. the 'risk_sensitive' "
                          "preset) for MC dropout.", NoDropoutWarning, stacklevel=2)
        if self._mc is not self.model:
            copy_weights(self.model, self._mc)
        base = self._base_seed(seed)
        n_layers = max(1, len(_mc_layers(self._mc)))
        per_call = _samples_per_call(self._mc, n_samples, batch_size, self.max_rows)
        if batch_size is None:
            batch_size = max(1, self.max_rows // per_call)
        batch_size = min(batch_size, len(x))
        sample_chunks = [per_call] * (n_samples // per_call)
        if n_samples % per_call:
            sample_chunks.append(n_samples % per_call)
        results, sample_parts, call = [], [], 0
        starts = range(0, len(x), batch_size)
        with _progress(len(starts) * len(sample_chunks), verbose) as bar:
            for start in starts:
                chunk = x[start:start + batch_size]
                real = len(chunk)
                if real < batch_size:  # pad the last chunk: one compiled shape, no retracing
                    chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch_size - real, 0)])
                stats, samples = None, []
                for n in sample_chunks:
                    # every call and layer its own stream: state [base, call * layers + i]
                    seeds = np.array([base, call * n_layers], "int64")
                    call += 1
                    out = self._sampler(n, return_samples).predict_on_batch((chunk, seeds))
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

    def _base_seed(self, seed) -> int:
        if seed is None and self.seed is not None:
            seed, self._calls = (self.seed, self._calls), self._calls + 1
        elif seed is None:  # the global NumPy state, which keras.utils.set_random_seed seeds
            seed = int(np.random.randint(0, 2**31 - 1))
        words = np.random.SeedSequence(np.atleast_1d(seed).tolist()).generate_state(1)
        return int(words[0] >> 1)  # the backends cast seeds to int32 range

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
        calibration = calibration_layer(self.model)
        if self.task == "regression" and calibration is not None:
            if calibration.mc_noise_variance is not None:
                pred.noise_variance = np.asarray(calibration.mc_noise_variance, "float32")
        if self.task != "regression":
            mean_entropy = np.concatenate([r["mean_entropy"] for r in results])
            # the model's share of the uncertainty, from the samples as they are
            pred.mutual_information = np.clip(predictive_entropy(mean) - mean_entropy, 0, None)
            if calibration is not None and calibration.mc_temperature != 1.0:
                pred.mean = temper(mean, calibration.mc_temperature).astype("float32")
            pred.entropy = predictive_entropy(pred.mean)
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
    random-generator states are set, which are not weights). The sampler is compiled
    once per model (kept with it, as ``model.predict`` keeps its function); a calibrated
    model (:func:`dnnguide.calibrate`) gives calibrated samples, and for regression a
    ``noise_variance`` (see :attr:`MCPrediction.predictive_std`).

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
    predictor = _cached_predictor(model, task, max_rows)
    return predictor.predict(x, n_samples, batch_size, return_samples=return_samples,
                             seed=seed, verbose=verbose)


def _cached_predictor(model, task, max_rows) -> MCDropoutPredictor:
    """The model's own predictor, traced once, as ``model.predict`` keeps its compiled function."""
    check_range("max_rows", max_rows, 1, integer=True)
    task = infer_task(model) if task is None else task
    check_choice("task", task, TASKS)
    cache = model.__dict__.get("_dnnguide_mc_predictors")
    if cache is None:
        cache = {}
        # object.__setattr__: Keras would track the predictor's sampler as a sublayer.
        object.__setattr__(model, "_dnnguide_mc_predictors", cache)
    if (task, max_rows) not in cache:
        cache[(task, max_rows)] = MCDropoutPredictor(model, task=task, max_rows=max_rows)
    return cache[(task, max_rows)]


def calibration_layer(model) -> Calibration | None:
    """The :class:`~dnnguide.layers.Calibration` layer a calibrated model ends with, if any."""
    layers = list(_all_layers(model))
    return layers[-1] if layers and isinstance(layers[-1], Calibration) else None


def _samples_per_call(model, n_samples, batch_size, max_rows) -> int:
    for layer in _mc_layers(model):
        shape = getattr(layer, "noise_shape", None)
        if shape is not None and len(shape) and shape[0] == 1:
            # One mask shared by the whole batch would be shared by all tiled samples too.
            return 1
    return max(1, min(n_samples, max_rows // (batch_size or 1)))


def _mc_layers(model):
    from dnnguide.layers import MCAlphaDropout, MCDropout

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


# --------------------------------------------------------------------------- calibrate
def calibrate(model_or_predictor, x_val, y_val, *, n_samples: int = 50, seed: int = 0,
              task: str | None = None):
    """Fit temperature scaling (or a regression's noise variance) on a validation split.

    Plain prediction gets its own temperature; a model with dropout also gets one for the
    mean of its MC dropout samples, fitted on ``n_samples`` samples of ``x_val``. For regression, the noise variance is fitted instead: constant
    for plain prediction, and added to the spread of the samples for MC dropout (what
    :attr:`dnnguide.MCPrediction.predictive_std` reports), in the model's output units.

    Args:
        model_or_predictor: a Keras model with one input and one output, or an
            :class:`~dnnguide.MCDropoutPredictor`. A model that is already calibrated is
            refitted from its uncalibrated part.
        x_val, y_val: validation data (never the test split: it would no longer test).
        n_samples: MC dropout samples used for fitting.
        seed: seed of those samples.
        task: ``classification``/``binary``/``regression``; inferred from the model.

    Returns:
        A Keras model ending in a :class:`~dnnguide.layers.Calibration` layer (the model's
        layers are shared, not copied), which saves and loads with its fitted values; for a
        predictor, a predictor of that model.

    Example:
        >>> import dnnguide  # doctest: +SKIP
        >>> result = dnnguide.fit("risk_sensitive", "digits", run_dir=None)  # doctest: +SKIP
        >>> data = result.data  # doctest: +SKIP
        >>> model = calibrate(result.model, data.x_val, data.y_val)  # doctest: +SKIP
        >>> dnnguide.mc_predict(model, data.x_test).mean  # calibrated  # doctest: +SKIP

    References:
        Guo et al. (2017), "On Calibration of Modern Neural Networks", ICML.
        Kendall & Gal (2017), "What Uncertainties Do We Need in Bayesian Deep Learning?"
    """
    check_range("n_samples", n_samples, 1, integer=True)
    predictor = model_or_predictor if isinstance(model_or_predictor, MCDropoutPredictor) else None
    model = predictor.model if predictor is not None else model_or_predictor
    if not isinstance(model, keras.Model) or not getattr(model, "outputs", None):
        raise TypeError("Argument `model_or_predictor` must be a built Sequential/functional "
                        "keras.Model or an MCDropoutPredictor. "
                        f"Received: model_or_predictor of type {type(model_or_predictor).__name__}")
    task = (predictor.task if predictor else infer_task(model)) if task is None else task
    check_choice("task", task, TASKS)
    base = uncalibrated(model)
    x_val = np.asarray(x_val, "float32")
    if len(x_val) == 0 or np.size(y_val) == 0:
        raise ValueError("Arguments `x_val` and `y_val` must hold validation examples to fit "
                         f"the calibration on. Received: {len(x_val)} examples")
    plain = base.predict(x_val, batch_size=256, verbose=0)
    sampled = has_dropout(base)
    if sampled:
        mc = mc_predict(base, x_val, n_samples, task=task, seed=seed, verbose=0)
    if task == "regression":
        layer = Calibration(task, noise_variance=fit_noise_variance(y_val, plain),
                            mc_noise_variance=(fit_noise_variance(y_val, mc.mean, mc.std)
                                               if sampled else None), name="calibration")
    else:
        layer = Calibration(task, temperature=fit_temperature(y_val, plain),
                            mc_temperature=fit_temperature(y_val, mc.mean) if sampled else 1.0,
                            name="calibration")
    calibrated = _with_attributes(keras.Model(_single(base.inputs), layer(base.outputs[0]),
                                              name=base.name), base)
    if getattr(base, "compiled", False):
        try:  # evaluate() should work on it as on the model; a fresh optimizer state
            calibrated.compile_from_config(base.get_compile_config())
        except Exception as exc:  # noqa: BLE001 - still complete for predict()
            import warnings

            warnings.warn(f"The calibrated model could not be compiled like the original "
                          f"({exc!r}); compile it yourself before evaluate().", stacklevel=2)
    if predictor is not None:
        return MCDropoutPredictor(calibrated, task=task, max_rows=predictor.max_rows,
                                  seed=predictor.seed)
    return calibrated


def uncalibrated(model):
    """``model`` without its final :class:`~dnnguide.layers.Calibration` layer (shared layers)."""
    if model.layers and isinstance(model.layers[-1], Calibration):
        return _with_attributes(keras.Model(_single(model.inputs), model.layers[-1].input,
                                            name=model.name), model)
    return model


def _single(inputs):
    # A one-element list would make Keras warn on every plain-array predict().
    return inputs[0] if len(inputs) == 1 else inputs


def _with_attributes(new, model):
    """Keep what build_model attached (config, task)."""
    for attribute in ("dnnguide_config", "dnnguide_task"):
        if hasattr(model, attribute):
            setattr(new, attribute, getattr(model, attribute))
    return new
