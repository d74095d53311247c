"""What MC dropout returns (:class:`MCPrediction`), and what it reads off a model.

:class:`MCPrediction` holds the mean, spread, entropy and mutual information of the samples
(and a regression's interval); :func:`infer_task` reads the task from the output layer;
:func:`calibration_layer` finds the :class:`~dnnguide.layers.Calibration` layer a calibrated
model ends with.

Example:
    >>> pred = MCPrediction(np.zeros((2, 1)), np.full((2, 1), 0.5), "regression", 10,
    ...                     noise_variance=np.array([0.75]))
    >>> pred.predictive_std[:, 0], pred.uncertainty
    (array([1., 1.], dtype=float32), array([1., 1.], dtype=float32))
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from dnnguide.calibration import gaussian_interval
from dnnguide.config import POOLINGS, TASKS  # noqa: F401 - POOLINGS: public via uncertainty
from dnnguide.layers import Calibration, _all_layers


class NoDropoutWarning(UserWarning):
    """MC dropout was asked of a model without dropout: every sample is the same."""


@dataclass
class MCPrediction:
    """What :func:`mc_predict` returns.

    Attributes:
        mean: the samples pooled into one prediction (class probabilities for
            classification, pooled as ``pooling`` says; for a calibrated model, at its MC
            temperature).
        std: standard deviation over the samples, per output (per class for classification).
        task: ``"classification"``, ``"binary"`` or ``"regression"``.
        n_samples: number of MC samples.
        entropy: predictive entropy of ``mean`` in nats (classification/binary), else None.
        mutual_information: entropy minus the mean entropy of the samples (the model's
            epistemic share, "BALD"), classification/binary only.
        samples: all samples, shape ``(n_samples, len(x), ...)``, if asked for.
        noise_variance: regression, calibrated model: per-output noise variance fitted on
            validation data (:func:`dnnguide.calibrate`), which :attr:`predictive_std` adds.
        pooling: how ``mean`` pools the samples (:data:`POOLINGS`); ``std`` and
            ``mutual_information`` are always about the arithmetic mean.
    """

    mean: np.ndarray
    std: np.ndarray
    task: str
    n_samples: int
    entropy: np.ndarray | None = None
    mutual_information: np.ndarray | None = None
    samples: np.ndarray | None = None
    noise_variance: np.ndarray | None = None
    pooling: str = "mean"

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


def calibration_layer(model) -> Calibration | None:
    """The :class:`~dnnguide.layers.Calibration` layer a calibrated model ends with, if any."""
    layers = list(_all_layers(model))
    return layers[-1] if layers and isinstance(layers[-1], Calibration) else None
