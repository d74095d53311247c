"""The tf_keras bridge: a Keras 3 model rebuilt in tf_keras (Keras 2) for TF-MOT, and back.

TF-MOT 0.8 prunes and quantization-aware-trains only tf_keras models and will not support
Keras 3 (tensorflow/model-optimization#1119). :func:`to_tf_keras` rebuilds the layer graph of
a dnnguide model layer by layer in tf_keras, with the weights copied, so the two predict the
same (max abs difference < 1e-5); :func:`from_tf_keras` copies a tf_keras model's weights back
into a fresh copy of the Keras 3 model. The user's model is never modified.

Two traps handled here (DESIGN.md): importing TF-MOT sets ``TF_USE_LEGACY_KERAS=1`` for the
whole process and resolves ``tf.keras`` on the spot, so :func:`import_tfmot` resolves
``tf.keras`` to Keras 3 first and restores the variable afterwards; and TF-MOT's wrappers wrap
the layer objects they are given, so they only ever see the tf_keras copy.

A layer with no entry in :data:`CONVERTERS` is refused with an error naming it; add a
converter with :func:`register_converter`.

Example:
    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])
    >>> legacy = to_tf_keras(model)  # doctest: +SKIP
    >>> float(np.abs(legacy.predict(np.ones((1, 4))) - model.predict(np.ones((1, 4)))).max())  # doctest: +SKIP
    0.0
"""

from __future__ import annotations

import os
from typing import Callable

import keras
import numpy as np

#: Installed by ``pip install "dnnguide[compress]"``.
EXTRA_HINT = 'pip install "dnnguide[compress]"'


class ConversionError(ValueError):
    """A layer or model the tf_keras bridge cannot rebuild."""


def import_tfmot():
    """``tensorflow_model_optimization``, imported without turning ``tf.keras`` into Keras 2.

    TF-MOT's import sets ``TF_USE_LEGACY_KERAS=1`` and reads ``tf.keras`` (which TensorFlow
    resolves once, lazily). Resolving ``tf.keras`` to Keras 3 before, and restoring the
    variable after, keeps the rest of the process (and its subprocesses) on Keras 3, while
    TF-MOT itself uses ``tf_keras``.
    """
    import tensorflow as tf

    tf.keras.version()  # resolve TensorFlow's lazy tf.keras to Keras 3 before TF-MOT looks
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    try:
        import tensorflow_model_optimization as tfmot
    except ImportError as exc:
        raise ImportError(f"Pruning and quantization-aware training need TF-MOT and tf-keras: "
                          f"{EXTRA_HINT}") from exc
    finally:
        if before is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = before
    return tfmot


def import_tf_keras():
    try:
        import tf_keras
    except ImportError as exc:
        raise ImportError(f"The tf_keras bridge needs tf-keras: {EXTRA_HINT}") from exc
    return tf_keras


# --------------------------------------------------------------------------- converters
def _activation(layer) -> str:
    name = keras.activations.serialize(layer.activation)
    # Keras 3 calls swish "silu"; tf_keras knows both, but TF-MOT's quantization recognizes
    # activations by function name and only knows "swish".
    return "swish" if name == "silu" else name


def _regularizer(tfk, regularizer, what: str, layer):
    if regularizer is None:
        return None
    if isinstance(regularizer, (keras.regularizers.L1L2, keras.regularizers.L1,
                                keras.regularizers.L2)):
        config = regularizer.get_config()
        return tfk.regularizers.L1L2(l1=config.get("l1", 0.0), l2=config.get("l2", 0.0))
    raise ConversionError(f"Layer {layer.name!r} has a {what} {type(regularizer).__name__} the "
                          "tf_keras bridge cannot convert (L1/L2/L1L2 only).")


def _constraint(tfk, constraint, layer):
    if constraint is None:
        return None
    if isinstance(constraint, keras.constraints.MaxNorm):
        return tfk.constraints.MaxNorm(constraint.max_value, axis=constraint.axis)
    raise ConversionError(f"Layer {layer.name!r} has a kernel constraint "
                          f"{type(constraint).__name__} the tf_keras bridge cannot convert "
                          "(MaxNorm only).")


def _dense(tfk, layer):
    # Weight-free settings only: the weights are copied afterwards. Regularizers and
    # constraints matter because TF-MOT fine-tunes the copy.
    return tfk.layers.Dense(
        layer.units, activation=_activation(layer), use_bias=layer.use_bias, name=layer.name,
        kernel_regularizer=_regularizer(tfk, layer.kernel_regularizer, "kernel regularizer", layer),
        bias_regularizer=_regularizer(tfk, layer.bias_regularizer, "bias regularizer", layer),
        kernel_constraint=_constraint(tfk, layer.kernel_constraint, layer))


def _batch_norm(tfk, layer):
    return tfk.layers.BatchNormalization(
        axis=layer.axis, momentum=layer.momentum, epsilon=layer.epsilon, center=layer.center,
        scale=layer.scale, name=layer.name)


def _normalization(tfk, layer):
    # The adapted statistics become constructor arguments (tf_keras keeps them as constants).
    mean = np.asarray(keras.ops.convert_to_numpy(layer.mean))
    variance = np.asarray(keras.ops.convert_to_numpy(layer.variance))
    if layer.invert:
        raise ConversionError(f"Layer {layer.name!r} is an inverted Normalization, which the "
                              "tf_keras bridge does not convert.")
    return tfk.layers.Normalization(axis=layer.axis, mean=mean, variance=variance,
                                    name=layer.name)


def _target_scale(tfk, layer):
    # dnnguide.targets.TargetScale (``z * std + mean``) is a Rescaling with per-column values.
    return tfk.layers.Rescaling(scale=list(layer.std), offset=list(layer.mean), name=layer.name)


def _mc_dropout(_tfk, layer):
    raise ConversionError(
        f"Layer {layer.name!r} ({type(layer).__name__}) keeps dropout on at inference; a "
        "compressed model must predict deterministically. Convert the model with "
        "dnnguide.to_standard_dropout(model) first.")


def _simple(name: str, *fields: str):
    def convert(tfk, layer):
        kwargs = {field: getattr(layer, field) for field in fields}
        return getattr(tfk.layers, name)(name=layer.name, **kwargs)
    return convert


#: Keras 3 (or dnnguide) class name -> ``converter(tf_keras_module, layer) -> tf_keras layer``.
#: Keyed by name so dnnguide layers need not be imported here; extend with register_converter.
CONVERTERS: dict[str, Callable] = {
    "Dense": _dense,
    "BatchNormalization": _batch_norm,
    "Normalization": _normalization,
    "Activation": lambda tfk, layer: tfk.layers.Activation(_activation(layer), name=layer.name),
    "Dropout": _simple("Dropout", "rate", "seed"),
    "AlphaDropout": _simple("AlphaDropout", "rate", "seed"),
    "GaussianNoise": _simple("GaussianNoise", "stddev", "seed"),
    "Flatten": lambda tfk, layer: tfk.layers.Flatten(name=layer.name),
    "Add": lambda tfk, layer: tfk.layers.Add(name=layer.name),
    "Rescaling": _simple("Rescaling", "scale", "offset"),
    "TargetScale": _target_scale,
    "MCDropout": _mc_dropout,
    "MCAlphaDropout": _mc_dropout,
}


# Converters that pass the layer's state as constructor arguments (no weights to copy).
_WEIGHTS_AS_ARGUMENTS = {"Normalization"}


def name_of(layer) -> str:
    return type(layer).__name__


def register_converter(class_name: str, converter: Callable) -> None:
    """Teach the bridge a layer: ``converter(tf_keras, layer)`` returns the tf_keras layer.

    Its weights are copied with ``get_weights``/``set_weights``, so the new layer must hold
    the same weights in the same order. An existing entry is never replaced.
    """
    if class_name in CONVERTERS:
        raise ValueError(f"A converter for {class_name!r} is already registered.")
    CONVERTERS[class_name] = converter


def _converter(layer) -> Callable:
    name = type(layer).__name__
    module = type(layer).__module__
    if name in CONVERTERS and module.startswith(("keras.", "dnnguide.")):
        return CONVERTERS[name]
    raise ConversionError(
        f"The tf_keras bridge cannot convert layer {layer.name!r} of type {name} (from "
        f"{module}). Convertible layers: {sorted(CONVERTERS)}; add one with "
        "dnnguide.compress.bridge.register_converter.")


# --------------------------------------------------------------------------- graph walking
def walk(model: keras.Model, make_layer: Callable, make_input: Callable):
    """Rebuild ``model``'s layer graph: ``make_layer(layer)`` gives each new layer (or None to
    pass its input through), ``make_input(keras_tensor)`` each new input tensor.

    Returns ``(new_inputs, new_outputs, {old layer name: new layer})``. Shared layers and nested
    models are refused: dnnguide models have neither, and they would need a per-call mapping.
    """
    from keras.src.models.functional import Functional

    if not isinstance(model, (keras.Sequential, Functional)) or not model.built:
        raise ConversionError("Argument `model` must be a built Sequential or functional "
                              "keras.Model (a subclassed model has no layer graph to rebuild). "
                              f"Received: model of type {type(model).__name__}")
    tensors = {id(t): make_input(t) for t in model.inputs}
    new_layers = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model) or len(layer._inbound_nodes) != 1:
            raise ConversionError(f"Layer {layer.name!r} is a nested model or is called more "
                                  "than once; only plain layer graphs can be rebuilt.")
        node_inputs = layer.input
        args = ([tensors[id(t)] for t in node_inputs] if isinstance(node_inputs, (list, tuple))
                else tensors[id(node_inputs)])
        new = make_layer(layer)
        tensors[id(layer.output)] = args if new is None else new(args)
        if new is not None:
            new_layers[layer.name] = new
    outputs = [tensors[id(t)] for t in model.outputs]
    inputs = [tensors[id(t)] for t in model.inputs]
    return inputs, outputs, new_layers


def to_tf_keras(model: keras.Model):
    """An equivalent tf_keras model with ``model``'s weights (``model`` is not modified).

    Raises:
        ConversionError: naming the first layer the bridge cannot convert.
    """
    tfk = import_tf_keras()
    for layer in model.layers:  # refuse before building anything
        if not isinstance(layer, keras.layers.InputLayer):
            _converter(layer)

    def make_input(tensor):
        return tfk.Input(shape=tuple(tensor.shape[1:]), dtype=tensor.dtype,
                         name=getattr(tensor, "name", None))

    inputs, outputs, new_layers = walk(model, lambda layer: _converter(layer)(tfk, layer),
                                       make_input)
    legacy = tfk.Model(inputs[0] if len(inputs) == 1 else inputs,
                       outputs[0] if len(outputs) == 1 else outputs, name=model.name)
    for name, new in new_layers.items():
        weights = model.get_layer(name).get_weights()
        if weights and not (name_of(new) in _WEIGHTS_AS_ARGUMENTS and not new.weights):
            new.set_weights(weights)
    return legacy


def from_tf_keras(legacy, like: keras.Model) -> keras.Model:
    """A copy of the Keras 3 model ``like`` holding the weights of the tf_keras model ``legacy``.

    Layers are matched by name (TF-MOT's ``strip_pruning`` restores the original names). The
    copy is compiled like ``like`` and keeps dnnguide's attributes (config, task).
    """
    from dnnguide.layers import copy_weights

    clone = keras.models.clone_model(like)
    copy_weights(like, clone)  # Normalization statistics and anything the bridge leaves alone
    legacy_layers = {layer.name: layer for layer in legacy.layers}
    for layer in clone.layers:
        source = legacy_layers.get(layer.name)
        if source is None or not layer.weights or name_of(layer) in _WEIGHTS_AS_ARGUMENTS:
            continue  # copied above by copy_weights
        layer.set_weights(source.get_weights())
    copy_attributes(like, clone)
    return clone


def copy_attributes(source: keras.Model, target: keras.Model) -> None:
    """Compile ``target`` like ``source`` and keep what build_model attached."""
    for name in ("dnnguide_config", "dnnguide_task"):
        if hasattr(source, name):
            setattr(target, name, getattr(source, name))
    if getattr(source, "compiled", False):
        target.compile_from_config(source.get_compile_config())
