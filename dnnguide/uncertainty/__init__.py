"""Monte Carlo dropout prediction that leaves the model untouched, and calibration metrics.

:func:`mc_predict` switches on *dropout only*: it traces the model inside
:func:`dnnguide.layers.mc_sampling`, where its MC dropout layers sample (a model with standard
``Dropout``/``AlphaDropout`` is converted in a copy, :func:`dnnguide.layers.to_mc_dropout`),
with every other layer in inference mode. Calling the model with ``training=True`` instead
would also put BatchNormalization in training mode and overwrite its moving statistics.
The samples are batched: each compiled call runs the model once on ``n`` tiled copies of a
chunk of inputs (each row gets its own dropout mask, drawn in the graph from a seed input),
which removes the per-call overhead of the naive ``[model(x, training=True) for _ in
range(100)]`` loop (the layers before the first dropout, the same for every sample, run
once per input and their output is what is tiled); ``max_rows`` bounds the rows of one call,
so large inputs are processed in chunks. The sampler is traced once per model and kept with it.

Metrics (top-1 expected calibration error with equal-width bins, NLL, Brier score,
accuracy, rejection curve; Gaussian NLL and interval coverage for regression) work on any
predictions; :func:`shift_check` asks whether the uncertainty rises on shifted inputs; the
plots are matplotlib PNGs.

The implementation, one way down: ``prediction`` (:class:`MCPrediction`, :func:`infer_task`)
<- ``sampler`` (the compiled sampler) <- ``mc_dropout`` (:class:`MCDropoutPredictor`,
:func:`mc_predict`) <- ``calibrated`` (:func:`calibrate`, :func:`uncalibrated`). The metrics
and plots are :mod:`dnnguide.calibration`'s, re-exported here. Import from here.

Example:
    >>> import dnnguide
    >>> import numpy as np
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

from dnnguide.calibration import (
    accuracy,
    brier_score,
    calibration_bins,
    calibration_consistency,
    classification_metrics,
    expected_calibration_error,
    fit_noise_variance,
    fit_temperature,
    gaussian_interval,
    negative_log_likelihood,
    predictive_entropy,
    rejection_curve,
    temper,
)
from dnnguide.calibration_plots import (
    plot_rejection_curves, reliability_diagram, uncertainty_histogram,
)
from dnnguide.uncertainty.calibrated import calibrate, uncalibrated
from dnnguide.uncertainty.mc_dropout import MCDropoutPredictor, mc_predict
from dnnguide.uncertainty.prediction import (
    POOLINGS, MCPrediction, NoDropoutWarning, calibration_layer, infer_task,
)

__all__ = [
    "MCDropoutPredictor", "MCPrediction", "NoDropoutWarning", "accuracy", "brier_score",
    "calibrate", "calibration_bins", "calibration_consistency", "calibration_layer",
    "classification_metrics", "expected_calibration_error", "fit_noise_variance",
    "fit_temperature", "gaussian_interval",
    "infer_task", "mc_predict", "negative_log_likelihood", "plot_rejection_curves",
    "predictive_entropy", "rejection_curve", "reliability_diagram", "temper", "uncalibrated",
    "uncertainty_histogram",
]
