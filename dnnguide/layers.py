"""Always-on dropout layers for Monte Carlo dropout (Gal & Ghahramani 2016).

A functional model's ``predict()`` calls every layer with ``training=False``, which
overrides a call-site ``Dropout(...)(x, training=True)``. These layers ignore the
``training`` flag instead, so dropout stays on in ``predict``, ``evaluate`` and
``__call__`` while every other layer (BatchNormalization included) keeps running
in inference mode and its statistics stay untouched.

Example:
    >>> import numpy as np
    >>> layer = MCDropout(0.5, seed=0)
    >>> x = np.ones((1, 1000), "float32")
    >>> bool((np.asarray(layer(x)) == 0).any())
    True
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="dnnguide")
class MCDropout(keras.layers.Dropout):
    """``keras.layers.Dropout`` that is active at inference too."""

    def call(self, inputs, training=None):
        return super().call(inputs, training=True)


@keras.saving.register_keras_serializable(package="dnnguide")
class MCAlphaDropout(keras.layers.AlphaDropout):
    """``keras.layers.AlphaDropout`` (keeps SELU's mean and variance), active at inference too."""

    def call(self, inputs, training=None):
        return super().call(inputs, training=True)
