"""The validation loss of the MC dropout prediction, logged every epoch for early stopping.

A risk-sensitive model is used through its MC prediction, so early stopping should watch
(and keep the weights of) the epoch where *that* prediction is best on the validation split,
not where the deterministic pass is: :class:`MCValidationLoss` logs ``val_mc_loss`` for
``EarlyStopping(monitor="val_mc_loss")``. Sampling draws from the dropout layers'
random-generator states, so those are saved before and restored after: training sees the
same dropout masks as without the callback.

Example:
    >>> monitor = MCValidationLoss(x_val, y_val)  # doctest: +SKIP
    >>> model.fit(x, y, callbacks=[monitor, keras.callbacks.EarlyStopping(
    ...     "val_mc_loss", mode="min", restore_best_weights=True)])  # doctest: +SKIP
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from dnnguide.calibration import negative_log_likelihood
from dnnguide.config import check_range
from dnnguide.uncertainty.mc_dropout import mc_predict
from dnnguide.uncertainty.prediction import infer_task
from dnnguide.uncertainty.sampler import _mc_layers

#: The metric name the callback logs.
MC_VAL_LOSS = "val_mc_loss"


class MCValidationLoss(keras.callbacks.Callback):
    """Log the loss of the MC dropout prediction on the validation split as ``val_mc_loss``.

    Classification: the NLL of the samples' normalized geometric mean (the pooling
    :func:`dnnguide.calibrate` kept in most runs; see :data:`dnnguide.uncertainty.POOLINGS`);
    regression: the mean squared error of their mean. The same ``seed`` every epoch, so the
    numbers differ only by the weights. Put it before the callbacks that read the metric.

    Args:
        x_val, y_val: the validation split.
        n_samples: MC samples per epoch.
        seed: seed of the dropout masks.
    """

    def __init__(self, x_val, y_val, *, n_samples: int = 50, seed: int = 0):
        super().__init__()
        check_range("n_samples", n_samples, 1, integer=True)
        self.x_val, self.y_val = np.asarray(x_val), np.asarray(y_val)
        if len(self.x_val) == 0 or len(self.x_val) != len(self.y_val):
            raise ValueError("Arguments `x_val` and `y_val` must be non-empty and of the same "
                             f"length. Received: {len(self.x_val)} and {len(self.y_val)} rows")
        self.n_samples, self.seed = n_samples, seed

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        layers = _mc_layers(self.model)
        states = [ops.convert_to_numpy(layer.seed_generator.state.value) for layer in layers]
        try:
            task = infer_task(self.model)
            pooling = "mean" if task == "regression" else "geometric"
            pred = mc_predict(self.model, self.x_val, self.n_samples, task=task, seed=self.seed,
                              pooling=pooling, verbose=0)
        finally:  # training draws its masks from these states: as if nothing happened
            for layer, state in zip(layers, states):
                layer.seed_generator.state.assign(state)
        if pred.task == "regression":
            err = pred.mean.reshape(len(self.y_val), -1) - self.y_val.reshape(len(self.y_val), -1)
            logs[MC_VAL_LOSS] = float(np.mean(np.square(err, dtype="float64")))
        else:
            logs[MC_VAL_LOSS] = negative_log_likelihood(self.y_val, pred.mean)
