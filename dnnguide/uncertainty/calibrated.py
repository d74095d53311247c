"""Calibrated models: :func:`calibrate` ends a model in a fitted Calibration layer.

:func:`calibrate` fits temperature scaling (or a regression's noise variance) on a
validation split, for plain prediction and for the pooled MC dropout samples (by default
their normalized geometric mean), and returns the model with a
:class:`~dnnguide.layers.Calibration` layer on top (its layers shared, not copied);
:func:`uncalibrated` takes that layer off again.

Example:
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, "softmax")])
    >>> uncalibrated(model) is model  # nothing to take off
    True
"""

from __future__ import annotations

import keras
import numpy as np

from dnnguide.calibration import fit_noise_variance, fit_temperature
from dnnguide.config import TASKS, check_choice, check_pooling, check_range
from dnnguide.layers import Calibration, has_dropout
from dnnguide.uncertainty.mc_dropout import MCDropoutPredictor, mc_predict
from dnnguide.uncertainty.prediction import infer_task


def calibrate(model_or_predictor, x_val, y_val, *, n_samples: int = 50, seed: int = 0,
              task: str | None = None, mc: bool | None = None,
              significance: float | None = None, pooling: str | None = None):
    """Fit temperature scaling (or a regression's noise variance) on a validation split.

    Plain prediction gets its own temperature; a model with dropout also gets one for its
    pooled MC dropout samples, fitted on ``n_samples`` samples of ``x_val``;
    :func:`dnnguide.mc_predict` then pools the samples that way and applies it. The pooling
    is the normalized geometric mean of the samples unless ``pooling`` says otherwise: the
    ensemble rule dropout training approximates (Srivastava et al. 2014, sec. 7; exact for
    one softmax layer, Baldi & Sadowski 2013), so it keeps the confidence of the network's
    own prediction, where the arithmetic mean of the samples is underconfident on an
    accurate net (risk_sensitive on digits, 20 seeds: test ECE 0.0252 against 0.0140,
    uncalibrated). Choosing the pooling by validation NLL, as dnnguide did before, followed
    the few errors of a small validation split (BENCHMARKS.md, "MC dropout: the geometric
    pooling, and what MC dropout cannot add").
    For regression, the noise variance is fitted instead: constant
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
        mc: fit the MC dropout calibration too (``None``: when the model has dropout layers);
            ``False`` fits plain prediction only, as a run of a model without MC dropout does.
        significance: plain prediction's temperature stays 1 unless a likelihood-ratio test
            at this level supports it (:func:`dnnguide.calibration.fit_temperature`); a run
            of a model without MC dropout uses 0.05. (The MC temperature is not tested: the
            same test lowered NLL on breast_cancer's 46 validation rows but raised it on
            synth_cls and anes96, BENCHMARKS.md.)
        pooling: classification: how the MC samples are pooled
            (:data:`~dnnguide.uncertainty.POOLINGS`), ``"geometric"`` (default) or
            ``"mean"`` (the Bayesian model average of Gal & Ghahramani 2016). Regression
            pools by the mean only.

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
    if pooling is None:
        pooling = "mean" if task == "regression" else "geometric"
    check_pooling("pooling", pooling, task)
    base = uncalibrated(model)
    x_val = np.asarray(x_val, "float32")
    if len(x_val) == 0 or np.size(y_val) == 0:
        raise ValueError("Arguments `x_val` and `y_val` must hold validation examples to fit "
                         f"the calibration on. Received: {len(x_val)} examples")
    plain = base.predict(x_val, batch_size=256, verbose=0)
    sampled = (mc is None or bool(mc)) and has_dropout(base)
    if task == "regression":
        mc_noise_variance = None
        if sampled:
            mc = mc_predict(base, x_val, n_samples, task=task, seed=seed, verbose=0)
            mc_noise_variance = fit_noise_variance(y_val, mc.mean, mc.std)
        layer = Calibration(task, noise_variance=fit_noise_variance(y_val, plain),
                            mc_noise_variance=mc_noise_variance, name="calibration")
    else:
        mc_temperature = 1.0
        if sampled:
            pooled = mc_predict(base, x_val, n_samples, task=task, seed=seed, verbose=0,
                                pooling=pooling).mean
            mc_temperature = fit_temperature(y_val, pooled)
        layer = Calibration(task, temperature=fit_temperature(y_val, plain,
                                                              significance=significance),
                            mc_temperature=mc_temperature,
                            mc_pooling=pooling if sampled else "mean", name="calibration")
    calibrated = attach(base, layer)
    if predictor is not None:
        return MCDropoutPredictor(calibrated, task=task, max_rows=predictor.max_rows,
                                  seed=predictor.seed)
    return calibrated


def attach(network, layer, like=None):
    """``network`` ending in ``layer``, named, compiled and annotated like ``like``.

    ``like`` defaults to ``network``. The compile config is copied (a fresh optimizer state) so
    that ``evaluate()`` works on the result as on the original; the dnnguide attributes that
    ``build_model`` attached (config, task) are kept. Shared by :func:`calibrate` and
    compression, which puts a run's temperature back on a rebuilt network.
    """
    like = network if like is None else like
    model = _with_attributes(keras.Model(_single(network.inputs), layer(network.outputs[0]),
                                         name=like.name), like)
    if getattr(like, "compiled", False):
        try:
            model.compile_from_config(like.get_compile_config())
        except Exception as exc:  # noqa: BLE001 - still complete for predict()
            import warnings

            warnings.warn(f"The calibrated model could not be compiled like the original "
                          f"({exc!r}); compile it yourself before evaluate().", stacklevel=3)
    return model


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
