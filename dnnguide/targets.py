"""Regression targets standardized inside the model, so users only ever see their own units.

Training on raw targets (diabetes: mean 152, std 77) gives a mean-squared-error gradient
thousands of times larger than on standardized ones, and with SGD-family optimizers (the
self-normalizing table's Nesterov) the first steps diverge. Standardizing the targets outside
the model would leave every prediction, metric and saved model in standardized units that a user
must remember to convert back.

Instead a dnnguide regression model ends with :class:`TargetScale` (``z * std + mean``), a fixed
layer with the training split's statistics, and is trained with :class:`StandardizedMSE`
(``mean(((y - y_pred) / std) ** 2)``). The network's last Dense layer therefore learns the
standardized target exactly as if the data had been standardized (same gradients), while
``predict``, the RMSE/MAE metrics and the saved ``model.keras`` are in the original units.

Example:
    >>> import numpy as np
    >>> layer = TargetScale(mean=[150.0], std=[75.0])
    >>> float(layer(np.zeros((1, 1), "float32"))[0, 0])
    150.0
"""

from __future__ import annotations

import numpy as np
import keras
from keras import ops

_register = keras.saving.register_keras_serializable(package="dnnguide")


def target_statistics(y) -> tuple[list[float], list[float]]:
    """Per-column mean and std of regression targets (std 0 becomes 1: a constant column)."""
    y = np.asarray(y, "float64")
    y = y.reshape(len(y), -1)
    mean, std = y.mean(axis=0), y.std(axis=0)
    std[~(std > 0)] = 1.0
    return mean.tolist(), std.tolist()


def _vector(name: str, values) -> list[float]:
    out = np.atleast_1d(np.asarray(values, "float64")).ravel()
    if out.size == 0 or not np.all(np.isfinite(out)):
        raise ValueError(f"Argument `{name}` must be finite numbers (one per target column). "
                         f"Received: {name}={values!r}")
    return out.tolist()


@_register
class TargetScale(keras.layers.Layer):
    """Map a standardized prediction back to target units: ``outputs = z * std + mean``.

    Args:
        mean: the training targets' mean, a float or one per target column.
        std: their standard deviation (> 0), same shape as ``mean``.
    """

    def __init__(self, mean, std, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.mean = _vector("mean", mean)
        self.std = _vector("std", std)
        if len(self.mean) != len(self.std):
            raise ValueError("Arguments `mean` and `std` must have one value per target column. "
                             f"Received: mean={self.mean}, std={self.std}")
        if min(self.std) <= 0:
            raise ValueError(f"Argument `std` must be > 0. Received: std={self.std}")

    def call(self, inputs):
        dtype = inputs.dtype
        return inputs * ops.cast(self.std, dtype) + ops.cast(self.mean, dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}


@_register
class StandardizedMSE(keras.losses.Loss):
    """Mean squared error in standardized units: ``mean(((y_true - y_pred) / std) ** 2)``.

    With :class:`TargetScale` at the end of the model this is exactly the MSE of training on
    standardized targets, so the learning rates of the guideline tables keep their meaning.
    """

    def __init__(self, std, name: str = "standardized_mse", reduction="sum_over_batch_size",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.std = _vector("std", std)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(ops.reshape(y_true, ops.shape(y_pred)), y_pred.dtype)
        scaled = (y_true - y_pred) / ops.cast(self.std, y_pred.dtype)
        return ops.mean(ops.square(scaled), axis=-1)

    def get_config(self):
        return {"std": self.std, "name": self.name, "reduction": self.reduction}
