"""Pretraining the hidden stack without the labels you have: an autoencoder, or an auxiliary task.

The guidelines: with much unlabelled data, train an autoencoder on it and reuse its encoder;
with much labelled data for a related task, train on that task and reuse the network's body.
Both functions build the hidden stack a dnnguide configuration describes (so the reused layers
are the network the guidelines recommend) and return it ready for
:func:`dnnguide.transfer.reuse_layers` with ``n_layers="all"``.

Example:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(256, 16)).astype("float32")
    >>> encoder = pretrain_autoencoder("default", x, depth=2, width=8, epochs=2)
    >>> encoder.output_shape
    (None, 8)
    >>> # model = dnnguide.reuse_layers(encoder, "all", n_outputs=2, task="classification")

References:
    Hinton & Salakhutdinov (2006), "Reducing the dimensionality of data with neural networks";
    Erhan et al. (2010), "Why does unsupervised pre-training help deep learning?", JMLR.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import keras
import numpy as np
from keras import ops

from dnnguide.config import ConfigError, check_range
from dnnguide.transfer import reused_body


@dataclass
class Pretraining:
    """How a pretrained body was obtained: attached to it as ``body.pretraining``."""

    model: keras.Model  # the autoencoder, or the auxiliary task's full network
    history: Any  # pandas DataFrame, one row per epoch
    metrics: dict[str, float]
    run_dir: Any = None


class TiedDense(keras.layers.Layer):
    """A decoder layer whose kernel is the transpose of an encoder ``Dense`` layer's.

    Tying halves the autoencoder's weights and acts as a regularizer (Vincent et al. 2010). The
    encoder layer is held through a function so Keras does not track its kernel twice (which
    would apply its gradient twice). Used only while pretraining; the encoder is what is kept.
    """

    def __init__(self, dense: keras.layers.Dense, activation=None, **kwargs):
        super().__init__(**kwargs)
        self._tied_kernel = lambda: dense.kernel
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        units = self._tied_kernel().shape[0]
        self.bias = self.add_weight(shape=(units,), initializer="zeros", name="bias")

    def call(self, inputs):
        return self.activation(ops.matmul(inputs, ops.transpose(self._tied_kernel())) + self.bias)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self._tied_kernel().shape[0])


def _config(config, epochs, batch_size, n_rows, **overrides):
    from dnnguide.config import nested_overrides
    from dnnguide.presets import resolve_config

    config = resolve_config(config, **overrides)
    changes = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size)) if v}
    config = nested_overrides(config, **changes)
    if config.schedule.name == "onecycle":
        from dnnguide.schedules import training_steps

        steps = training_steps(n_rows, config.batch_size, config.epochs)
        config = replace(config, schedule=replace(config.schedule, total_steps=steps))
    return config


def build_autoencoder(config, input_shape, *, tied: bool = False, adapt_data=None):
    """``(encoder, autoencoder)``: the config's hidden stack and its mirror image as decoder.

    The decoder mirrors the encoder's widths back to the input size (linear output): with
    ``tied=True`` each decoder layer uses the transpose of the matching encoder kernel.
    """
    from dnnguide.presets import build_model

    network = build_model(config, input_shape, n_outputs=2, task="classification",
                          adapt_data=adapt_data, compile=False)
    encoder = reused_body(network, None)
    encoder.name = "encoder"
    dense = [network.get_layer(f"hidden_{i}") for i in range(1, config.depth + 1)]
    x = encoder.outputs[0]
    sizes = [layer.kernel.shape[0] for layer in dense]  # input size of each encoder layer
    for index in range(config.depth, 0, -1):
        activation = config.activation if index > 1 else None  # the last layer is linear
        name = f"decoder_{index}"
        if tied:
            x = TiedDense(dense[index - 1], activation=activation, name=name)(x)
        else:
            x = keras.layers.Dense(sizes[index - 1], activation=activation,
                                   kernel_initializer=config.kernel_initializer, name=name)(x)
    return encoder, keras.Model(encoder.inputs, x, name="autoencoder")


def _reconstruction_target(encoder: keras.Model, x: np.ndarray) -> np.ndarray:
    """The input as the encoder's first Dense layer sees it (flattened, standardized)."""
    first = next(layer for layer in encoder.layers if isinstance(layer, keras.layers.Dense))
    seen = keras.Model(encoder.inputs[0], first.input)
    # An eager call: predict() would trace a new function for every throwaway model.
    return np.asarray(ops.convert_to_numpy(seen(np.asarray(x, "float32"), training=False)))


def pretrain_autoencoder(config="default", unlabelled_x=None, *, tied: bool = False,
                         epochs: int | None = None, batch_size: int | None = None,
                         val_fraction: float = 0.1, seed: int = 0, verbose=0,
                         **overrides) -> keras.Model:
    """Train a symmetric autoencoder on unlabelled inputs and return its encoder.

    Args:
        config: a preset name or NetworkConfig: the hidden stack, optimizer, schedule and
            early stopping (monitoring the reconstruction loss on a held-out ``val_fraction``).
        unlabelled_x: the inputs, one row per example (images are flattened by the model).
        tied: decoder kernels are the transposed encoder kernels (:class:`TiedDense`).
        epochs, batch_size: override the config's budget.
        seed: seeds the initialization and the held-out split.
        **overrides: config fields (``depth=3``, ``width=64``...).

    Returns:
        The encoder (inputs -> last hidden layer), trained; ``encoder.pretraining`` holds the
        autoencoder, its history and ``val_mse``, the held-out reconstruction error.
    """
    import pandas as pd

    from dnnguide.optimizers import optimizer_from_config
    from dnnguide.training import make_callbacks

    x = np.asarray(unlabelled_x, "float32") if unlabelled_x is not None else None
    if x is None or x.ndim < 2 or len(x) < 10:
        raise ConfigError("Argument `unlabelled_x` must be an array of at least 10 rows. "
                          f"Received: unlabelled_x of shape {None if x is None else x.shape}")
    check_range("val_fraction", val_fraction, 0.0, 1.0, high_inclusive=False)
    keras.utils.set_random_seed(seed)
    config = _config(config, epochs, batch_size, len(x), **overrides)
    adapt = x if config.standardize_inputs else None
    encoder, autoencoder = build_autoencoder(config, x.shape[1:], tied=tied, adapt_data=adapt)
    target = _reconstruction_target(encoder, x)
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = int(round(len(x) * val_fraction))
    val, train = order[:n_val], order[n_val:]
    autoencoder.compile(optimizer=optimizer_from_config(config), loss="mse")
    validation = (x[val], target[val]) if n_val else None
    history = autoencoder.fit(x[train], target[train], validation_data=validation,
                              epochs=config.epochs, batch_size=config.batch_size,
                              callbacks=make_callbacks(config, None, has_val=bool(n_val)),
                              verbose=verbose)
    frame = pd.DataFrame(history.history)
    frame.insert(0, "epoch", range(len(frame)))
    metrics = {"epochs_trained": len(frame)}
    if n_val:
        reconstruction = autoencoder.predict(x[val], batch_size=1024, verbose=0)
        metrics["val_mse"] = float(np.mean((reconstruction - target[val]) ** 2))
        # The baseline every autoencoder must beat: predicting each feature's training mean.
        metrics["val_mse_mean_predictor"] = float(
            np.mean((target[train].mean(0) - target[val]) ** 2))
    encoder.pretraining = Pretraining(autoencoder, frame, metrics)
    return encoder


def pretrain_auxiliary(config="default", aux_data=None, *, run_dir=None, seed: int = 0,
                       verbose=0, **fit_kwargs) -> keras.Model:
    """Train on an auxiliary labelled task and return the network's body (all but its head).

    Args:
        config: a preset name or NetworkConfig for the auxiliary network.
        aux_data: what :func:`dnnguide.fit` accepts: a dataset name, a Dataset, ``(x, y)``...
        run_dir: where :func:`dnnguide.fit` keeps the auxiliary run (None: nothing on disk).
        **fit_kwargs: passed to :func:`dnnguide.fit` (``epochs``, ``task``, config overrides).

    Returns:
        The body (inputs -> last hidden layer); ``body.pretraining`` holds the full auxiliary
        network, its history, test metrics and run directory.
    """
    from dnnguide.training import fit

    if aux_data is None:
        raise ConfigError("Argument `aux_data` must be a dataset name, a Dataset or (x, y). "
                          "Received: aux_data=None")
    result = fit(config, aux_data, run_dir=run_dir, seed=seed, verbose=verbose, **fit_kwargs)
    body = reused_body(result.model, None)
    body.pretraining = Pretraining(result.model, result.history, result.metrics, result.run_dir)
    return body
