"""What every compression step shares: the data, the task, the score of a prediction, sizes."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import keras
import numpy as np

from dnnguide.config import check_choice
from dnnguide.data import Dataset

TASKS = ("classification", "binary", "regression")


def resolve_data(data, model: keras.Model, seed: int = 0) -> Dataset:
    """A Dataset from what ``fit`` accepts, with the model's task when it has one."""
    from dnnguide.data import as_dataset

    return as_dataset(data, seed, getattr(model, "dnnguide_task", None))


def split_calibration(model: keras.Model):
    """``(network, calibration)``: a calibrated model's network and its Calibration layer.

    ``(model, None)`` when ``model`` does not end in a :class:`dnnguide.layers.Calibration`
    (what :func:`dnnguide.fit` adds). Compression retrains and rebuilds the network only: the
    temperature rescales its outputs and goes back on top with :func:`with_calibration`.
    """
    from dnnguide.uncertainty.calibrated import uncalibrated

    network = uncalibrated(model)  # the one test of "ends in a Calibration layer"
    return network, (None if network is model else model.layers[-1])


def with_calibration(network: keras.Model, calibration, like: keras.Model) -> keras.Model:
    """``network`` ending in a copy of ``calibration`` (or ``network`` itself if None),
    compiled like ``like`` and keeping its dnnguide attributes."""
    if calibration is None:
        return network
    from dnnguide.uncertainty.calibrated import attach

    return attach(network, type(calibration).from_config(calibration.get_config()), like)


def model_task(model: keras.Model, data: Dataset) -> str:
    task = getattr(model, "dnnguide_task", None) or data.task
    check_choice("task", task, TASKS)
    return task


def score(task: str, y_true, y_pred) -> dict[str, float]:
    """``accuracy`` for classification, ``rmse`` and ``mae`` (the data's units) for regression."""
    y_pred = np.asarray(y_pred, "float64")
    y_true = np.asarray(y_true)
    if task == "classification":
        return {"accuracy": float(np.mean(np.argmax(y_pred, -1) == y_true.reshape(-1)))}
    if task == "binary":
        return {"accuracy": float(np.mean((y_pred.reshape(-1) > 0.5) == y_true.reshape(-1)))}
    error = y_pred.reshape(len(y_pred), -1) - y_true.reshape(len(y_true), -1)
    return {"rmse": float(np.sqrt(np.mean(error ** 2))), "mae": float(np.mean(np.abs(error)))}


def training_loss(task: str, data: Dataset):
    """The loss TF-MOT fine-tunes with (tf_keras side): the model's own loss for the task.

    Regression: MSE divided by the training targets' variance, so the gradients match those of
    a model trained on standardized targets (what dnnguide's StandardizedMSE does).
    """
    if task == "classification":
        return "sparse_categorical_crossentropy"
    if task == "binary":
        return "binary_crossentropy"
    import tensorflow as tf

    y = np.asarray(data.y_train, "float32").reshape(len(data.y_train), -1)
    variance = tf.constant(np.maximum(y.var(axis=0), 1e-12), "float32")

    def standardized_mse(y_true, y_pred):
        y_true = tf.reshape(tf.cast(y_true, "float32"), tf.shape(y_pred))
        return tf.reduce_mean(tf.square(y_true - y_pred) / variance, axis=-1)

    return standardized_mse


def gzip_size(content: bytes) -> int:
    """Bytes after gzip (level 9): what a sparse or quantized model costs to ship."""
    return len(gzip.compress(content, compresslevel=9, mtime=0))


def keras_bytes(model: keras.Model) -> bytes:
    """The ``.keras`` file of ``model`` without optimizer state (what serving needs), as bytes."""
    from dnnguide.layers import copy_weights

    bare = keras.models.clone_model(model)  # uncompiled: a compiled model also saves Adam's slots
    copy_weights(model, bare)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        bare.save(path)
        return path.read_bytes()


def write_new_bytes(path: Path, content: bytes) -> Path:
    """Write ``content`` to ``path`` under a temporary name, then rename; never overwrite."""
    from dnnguide.runs import RunExistsError, atomic_write_bytes

    path = Path(path)
    if path.exists():
        raise RunExistsError(f"{path} exists; compression artefacts never overwrite.")
    return atomic_write_bytes(path, content)


def dense_layers(model: keras.Model) -> list:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]


def sparsity(model: keras.Model) -> dict[str, float]:
    """Fraction of exactly-zero weights in each Dense kernel, and ``"total"`` over all of them.

    Example:
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="d",
        ...                            kernel_initializer="zeros")])
        >>> sparsity(model)
        {'d': 1.0, 'total': 1.0}
    """
    fractions, zeros, total = {}, 0, 0
    for layer in dense_layers(model):
        kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel))
        fractions[layer.name] = float(np.mean(kernel == 0))
        zeros += int(np.sum(kernel == 0))
        total += kernel.size
    fractions["total"] = zeros / total if total else 0.0
    return fractions
