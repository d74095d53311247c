"""Monte Carlo dropout prediction that leaves the model untouched: :func:`mc_predict`.

:class:`MCDropoutPredictor` holds a model's sampler (``dnnguide.uncertainty.sampler``),
traced once, and splits the inputs and the samples into calls of at most ``max_rows`` rows;
:func:`mc_predict` is the one-shot call, with a predictor kept with the model.

Example:
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
    ...                           keras.layers.Dropout(0.5), keras.layers.Dense(1)])
    >>> pred = mc_predict(model, np.ones((3, 4), "float32"), n_samples=20, seed=0)
    >>> pred.mean.shape, pred.std.shape, pred.task
    ((3, 1), (3, 1), 'regression')

References:
    Gal & Ghahramani (2016), "Dropout as a Bayesian Approximation", ICML.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np

from dnnguide.calibration import predictive_entropy, temper
from dnnguide.config import TASKS, check_choice, check_pooling, check_range
from dnnguide.layers import copy_weights, has_dropout, to_mc_dropout
from dnnguide.uncertainty.prediction import (
    MCPrediction, NoDropoutWarning, calibration_layer, infer_task,
)
from dnnguide.uncertainty.sampler import (
    _check_probabilities, _mc_layers, _merge, _progress, _Sampler, _samples_per_call,
    _split_at_first_dropout,
)


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
        self._split = _split_at_first_dropout(self._mc)
        self._samplers: dict[tuple[int, bool], _Sampler] = {}
        self._calls = 0

    def predict(self, x, n_samples: int = 100, batch_size: int | None = None, *,
                return_samples: bool = False, seed: int | None = None,
                verbose="auto", pooling: str | None = None) -> MCPrediction:
        """MC dropout prediction of ``x``; arguments as in :func:`mc_predict`.

        ``seed=None`` continues the predictor's stream: reproducible from the predictor's
        own seed, else drawn from the global seed (``keras.utils.set_random_seed``).
        """
        check_range("n_samples", n_samples, 1, integer=True)
        pooling = self._pooling(pooling)
        results, sample_parts = self._sample(x, n_samples, batch_size, return_samples, seed,
                                             verbose)
        return self._prediction(results, sample_parts, n_samples, pooling)

    def _sample(self, x, n_samples, batch_size, return_samples, seed, verbose):
        """Run the sampler over ``x``: per chunk of inputs, the merged statistics of the
        samples (and the samples themselves if asked), before any pooling or calibration."""
        if batch_size is not None:
            check_range("batch_size", batch_size, 1, integer=True)
        if seed is not None:
            check_range("seed", seed, 0, integer=True)
        check_choice("verbose", verbose, ("auto", 0, 1))
        x = self._check_x(x)
        if not _mc_layers(self._mc):  # no MC dropout, no ensemble to draw members from
            warnings.warn("The model has no dropout layers, so every MC sample equals the plain "
                          "prediction (std 0). Train it with dropout (e.g. the 'risk_sensitive' "
                          "preset) for MC dropout.", NoDropoutWarning, stacklevel=3)
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
        return results, sample_parts

    def _pooling(self, pooling: str | None) -> str:
        """The pooling asked for; ``None``: the calibrated model's fitted one, else the mean."""
        if pooling is None:
            calibration = calibration_layer(self.model)
            return calibration.mc_pooling if calibration is not None else "mean"
        return check_pooling("pooling", pooling, self.task)

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
            self._samplers[key] = _Sampler(self._mc, n, self.task, return_samples,
                                           self._split)
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

    def _prediction(self, results, sample_parts, n_samples, pooling) -> MCPrediction:
        mean = np.concatenate([r["mean"] for r in results])
        std = np.sqrt(np.concatenate([r["m2"] for r in results]) / n_samples)
        pred = MCPrediction(mean.astype("float32"), std.astype("float32"), self.task, n_samples,
                            pooling=pooling)
        calibration = calibration_layer(self.model)
        if self.task == "regression" and calibration is not None:
            if calibration.mc_noise_variance is not None:
                pred.noise_variance = np.asarray(calibration.mc_noise_variance, "float32")
        if self.task != "regression":
            mean_entropy = np.concatenate([r["mean_entropy"] for r in results])
            # the model's share of the uncertainty, from the samples as they are
            pred.mutual_information = np.clip(predictive_entropy(mean) - mean_entropy, 0, None)
            if pooling == "geometric":
                mean = _geometric(np.concatenate([r["mean_log"] for r in results]), self.task)
                pred.mean = mean.astype("float32")
            if calibration is not None and calibration.mc_temperature != 1.0:
                if pooling == calibration.mc_pooling:
                    pred.mean = temper(mean, calibration.mc_temperature).astype("float32")
                else:  # the temperature belongs to the other pooling: not applied
                    warnings.warn(
                        f"The MC temperature was fitted for {calibration.mc_pooling!r} pooling; "
                        f"the {pooling!r} pooling is returned uncalibrated. Omit `pooling` for "
                        "the calibrated prediction.", UserWarning, stacklevel=3)
            pred.entropy = predictive_entropy(pred.mean)
        if sample_parts:
            pred.samples = np.concatenate(sample_parts, axis=1)
        return pred


def _geometric(mean_log: np.ndarray, task: str) -> np.ndarray:
    """The normalized geometric mean of the samples from their mean log-probability
    (binary: their mean log-odds), in float64."""
    z = np.asarray(mean_log, "float64")
    if task == "binary":
        return 1.0 / (1.0 + np.exp(-z))
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


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
    pooling: str | None = None,
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
        pooling: classification: how ``mean`` pools the samples' probabilities, ``"mean"``
            or ``"geometric"`` (:data:`~dnnguide.uncertainty.POOLINGS`); default: the one
            :func:`dnnguide.calibrate` fitted on validation for a calibrated model, else
            ``"mean"``. Regression: ``"mean"`` only.

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
                             seed=seed, verbose=verbose, pooling=pooling)


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
