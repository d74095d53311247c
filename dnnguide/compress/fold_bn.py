"""Fold BatchNormalization into the preceding Dense layer, for fast Keras inference.

In inference mode a batch-norm layer is an affine map per unit, ``y = s * (x - mu) + beta``
with ``s = gamma / sqrt(var + eps)``. When it directly follows a Dense layer with no
activation (``normalization="batch_norm_before"``, what the low-latency preset uses), the two
compose into one Dense layer::

    W' = W * s        b' = (b - mu) * s + beta

so the folded model has no BN layer, one matmul less per block to schedule, and predicts the
same (to float rounding, < 1e-4). The TFLite converter does this on its own; this is the Keras
model's equivalent. A BN layer after an activation cannot be folded into the previous Dense and
is refused by name.

Example:
    >>> import dnnguide
    >>> from dnnguide.compress import fold_batch_norm
    >>> model = dnnguide.build_model("low_latency", input_shape=(64,), n_outputs=10)
    >>> folded = fold_batch_norm(model)
    >>> any("BatchNormalization" in type(layer).__name__ for layer in folded.layers)
    False
"""

from __future__ import annotations

import keras
import numpy as np

from dnnguide.compress.bridge import ConversionError, copy_attributes, walk


def _producer(layer):
    history = getattr(layer.input, "_keras_history", None)
    return history[0] if history else None


def foldable_pairs(model: keras.Model) -> dict[str, str]:
    """``{dense name: batch-norm name}`` for every BN layer of ``model``, which must be foldable.

    Raises:
        ConversionError: naming a BN layer that does not directly follow a linear Dense layer
            used by nothing else.
    """
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        dense = _producer(layer)
        reason = None
        if not isinstance(dense, keras.layers.Dense):
            reason = f"its input comes from {type(dense).__name__}, not a Dense layer"
        elif keras.activations.serialize(dense.activation) != "linear":
            reason = (f"Dense {dense.name!r} applies {keras.activations.serialize(dense.activation)!r} "
                      "before it (use normalization='batch_norm_before', as the low_latency preset does)")
        elif len(dense._outbound_nodes) != 1:
            reason = f"Dense {dense.name!r} also feeds other layers"
        elif layer.axis not in (-1, len(layer.input.shape) - 1, [-1]):
            reason = f"it normalizes axis {layer.axis}, not the Dense units"
        if reason:
            raise ConversionError(f"Cannot fold batch-norm layer {layer.name!r}: {reason}.")
        pairs[dense.name] = layer.name
    return pairs


def folded_weights(dense, bn) -> tuple[np.ndarray, np.ndarray]:
    """The kernel and bias of ``dense`` with the inference-mode ``bn`` after it folded in."""
    def value(variable, default):
        return default if variable is None else np.asarray(keras.ops.convert_to_numpy(variable),
                                                           "float64")

    kernel = value(dense.kernel, None)
    units = kernel.shape[-1]
    bias = value(dense.bias if dense.use_bias else None, np.zeros(units))
    gamma = value(bn.gamma, np.ones(units))
    beta = value(bn.beta, np.zeros(units))
    mean, var = value(bn.moving_mean, None), value(bn.moving_variance, None)
    scale = gamma / np.sqrt(var + bn.epsilon)
    # float64 arithmetic, then float32: the fold itself adds no rounding beyond the cast.
    return (kernel * scale).astype("float32"), ((bias - mean) * scale + beta).astype("float32")


def fold_batch_norm(model: keras.Model) -> keras.Model:
    """A copy of ``model`` with every BatchNormalization folded into the Dense layer before it.

    ``model`` is not modified; the copy keeps the other layers, names and compile settings.

    Raises:
        ConversionError: naming a BN layer that cannot be folded.
        ValueError: if ``model`` has no BatchNormalization layer.
    """
    pairs = foldable_pairs(model)
    if not pairs:
        raise ValueError(f"Argument `model` has no BatchNormalization layer to fold. Received: "
                         f"model {model.name!r} with layers {[l.name for l in model.layers]}")
    folded_bn = set(pairs.values())

    def make_layer(layer):
        if layer.name in folded_bn:
            return None  # its output is the folded Dense's output
        config = layer.get_config()
        if layer.name in pairs:
            config["use_bias"] = True
        return type(layer).from_config(config)

    def make_input(tensor):
        return keras.Input(shape=tuple(tensor.shape[1:]), dtype=tensor.dtype, name=tensor.name)

    inputs, outputs, new_layers = walk(model, make_layer, make_input)
    folded = keras.Model(inputs[0] if len(inputs) == 1 else inputs,
                         outputs[0] if len(outputs) == 1 else outputs, name=model.name)
    for name, new in new_layers.items():
        old = model.get_layer(name)
        if name in pairs:
            new.set_weights(list(folded_weights(old, model.get_layer(pairs[name]))))
        elif old.weights:
            new.set_weights(old.get_weights())
        if hasattr(new, "finalize_state"):  # adapted Normalization: refresh mean/variance
            new.finalize_state()
    copy_attributes(model, folded)
    return folded
