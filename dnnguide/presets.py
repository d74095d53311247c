"""Named presets over the guidelines, and ``build_model`` which turns one into a compiled model.

A preset is a named *situation* (see :func:`dnnguide.guidelines.recommend`); its
configuration depends on the depth asked for (the default DNN uses ELU without
batch norm when shallow, Swish with batch norm when deep). User overrides win
and are validated like everything else.

Example:
    >>> import dnnguide
    >>> model = dnnguide.build_model("default", input_shape=(64,), n_outputs=10, depth=3)
    >>> [layer.name for layer in model.layers][-1]
    'output'
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from dnnguide.config import ConfigError, NetworkConfig, TASKS, check_choice, nested_overrides
from dnnguide.config import check_range
from dnnguide.guidelines import Recommendation, recommend
from dnnguide.layers import MCAlphaDropout, MCDropout


@dataclass(frozen=True)
class Preset:
    """A named situation for :func:`recommend`, with a one-line description."""

    name: str
    description: str
    situation: dict[str, Any] = field(default_factory=dict)

    def recommend(self, depth=None, **extra) -> Recommendation:
        situation = dict(self.situation)
        if depth is not None:
            situation["depth"] = depth
        situation.update(extra)
        return recommend(**situation)


_REGISTRY: dict[str, Preset] = {}


def register_preset(preset: Preset) -> Preset:
    """Add a preset; registering an existing name is an error (nothing is overwritten)."""
    if preset.name in _REGISTRY:
        raise ValueError(f"A preset named {preset.name!r} is already registered.")
    _REGISTRY[preset.name] = preset
    return preset


for _preset in (
    Preset("default", "He init; ELU + AdamW if shallow, Swish + batch norm + Nesterov if deep; "
           "performance scheduling; early stopping."),
    Preset("self_normalizing", "LeCun normal + SELU, no normalization, AlphaDropout if "
           "needed, Nesterov SGD, standardized inputs.", {"self_normalizing": True}),
    Preset("sparse", "The default net with L1 and a pruning target (never SELU).",
           {"sparse": True}),
    Preset("low_latency", "3 ReLU layers, batch norm placed for folding, int8 export.",
           {"low_latency": True}),
    Preset("risk_sensitive", "The default net with MC dropout for uncertainty estimates.",
           {"risk_sensitive": True}),
):
    register_preset(_preset)


def list_presets() -> list[str]:
    """Names of the registered presets."""
    return list(_REGISTRY)


def _lookup(name: str) -> Preset:
    if not isinstance(name, str):
        raise TypeError(f"Argument `preset` must be a preset name or a NetworkConfig. "
                        f"Received: preset={name!r}")
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"Argument `preset` must be one of {list_presets()}. Received: preset={name!r}.{hint}"
        )
    return _REGISTRY[name]


def recommend_preset(name: str, **overrides) -> Recommendation:
    """The recommendation behind a preset (with reasons), overrides applied."""
    preset = _lookup(name)
    rec = preset.recommend(depth=overrides.get("depth"))
    config = nested_overrides(rec.config, **overrides)
    reasons = dict(rec.reasons)
    for key in overrides:
        reasons[key] = f"Set by you (override {key}={overrides[key]!r})."
    return Recommendation(config, reasons, {"preset": name, **rec.situation})


def get_preset(name: str, **overrides) -> NetworkConfig:
    """The configuration of a preset, with overrides (flat or dotted names) applied.

    >>> get_preset("default", depth=20).activation
    'swish'
    """
    return recommend_preset(name, **overrides).config


def resolve_config(preset_or_config, **overrides) -> NetworkConfig:
    """A preset name or a NetworkConfig (or its dict), with overrides applied."""
    if isinstance(preset_or_config, NetworkConfig):
        return nested_overrides(preset_or_config, **overrides)
    if isinstance(preset_or_config, dict):
        return nested_overrides(NetworkConfig.from_dict(preset_or_config), **overrides)
    return get_preset(preset_or_config, **overrides)


# --------------------------------------------------------------------------- building
def _dropout_layer(config: NetworkConfig, index: int):
    reg = config.regularization
    layer_cls = {
        "standard": keras.layers.Dropout,
        "alpha": keras.layers.AlphaDropout,
        "mc": MCDropout,
        "mc_alpha": MCAlphaDropout,
    }[reg.dropout_kind]
    return layer_cls(reg.dropout_rate, name=f"dropout_{index}")


def _hidden_block(x, config: NetworkConfig, index: int, units: int):
    reg = config.regularization
    regularizer = keras.regularizers.L1L2(l1=reg.l1, l2=reg.l2) if (reg.l1 or reg.l2) else None
    constraint = keras.constraints.MaxNorm(reg.max_norm) if reg.max_norm else None
    bn_before = config.normalization == "batch_norm_before"
    x = keras.layers.Dense(
        units,
        activation=None if bn_before else config.activation,
        kernel_initializer=config.kernel_initializer,
        kernel_regularizer=regularizer,
        kernel_constraint=constraint,
        name=f"hidden_{index}",
    )(x)
    if bn_before:
        x = keras.layers.BatchNormalization(name=f"batch_norm_{index}")(x)
        x = keras.layers.Activation(config.activation, name=f"activation_{index}")(x)
    elif config.normalization == "batch_norm_after":
        x = keras.layers.BatchNormalization(name=f"batch_norm_{index}")(x)
    if reg.dropout_rate > 0:
        x = _dropout_layer(config, index)(x)
    return x


def _head(task: str, n_outputs: int):
    check_choice("task", task, TASKS)
    check_range("n_outputs", n_outputs, 1, integer=True)
    if task == "binary":
        if n_outputs != 1:
            raise ConfigError("A binary task has one sigmoid output. "
                              f"Received: n_outputs={n_outputs}. Use n_outputs=1.")
        return "sigmoid", "binary_crossentropy", ["accuracy"]
    if task == "classification":
        if n_outputs < 2:
            raise ConfigError("A classification task needs n_outputs >= 2 classes. Received: "
                              f"n_outputs={n_outputs}. For two classes with one output use "
                              "task='binary'.")
        return "softmax", "sparse_categorical_crossentropy", ["accuracy"]
    return None, "mse", [keras.metrics.RootMeanSquaredError(name="rmse"), "mae"]


def build_model(
    preset_or_config="default",
    input_shape=None,
    n_outputs: int = 10,
    task: str = "classification",
    *,
    adapt_data=None,
    compile: bool = True,
    **overrides,
) -> keras.Model:
    """Build (and compile) the dense network a preset or config describes.

    Args:
        preset_or_config: a preset name (see :func:`list_presets`) or a NetworkConfig.
        input_shape: shape of one example, e.g. ``(64,)``; images are flattened.
        n_outputs: number of classes (classification), 1 (binary), or targets (regression).
        task: ``"classification"``, ``"binary"`` or ``"regression"``; sets the output
            activation, loss and metrics.
        adapt_data: training features; when given and the config standardizes its
            inputs, a ``Normalization`` layer adapted on them is the first layer.
        compile: compile with the optimizer and schedule of the config.
        **overrides: config fields (``depth=20``, ``activation="relu"``, ``learning_rate=1e-3``).

    Returns:
        A Keras functional model; its config is attached as ``model.dnnguide_config``.
    """
    config = resolve_config(preset_or_config, **overrides)
    activation, loss, metrics = _head(task, n_outputs)
    if input_shape is None:
        if adapt_data is None:
            raise ConfigError("Argument `input_shape` is required (e.g. input_shape=(64,)). "
                              "Received: input_shape=None")
        input_shape = np.shape(adapt_data)[1:]
    input_shape = tuple(int(d) for d in np.atleast_1d(input_shape))
    inputs = keras.Input(shape=input_shape, name="features")
    x = inputs
    if len(input_shape) > 1:
        x = keras.layers.Flatten(name="flatten")(x)
    if adapt_data is not None and config.standardize_inputs:
        norm = keras.layers.Normalization(name="standardize")
        norm.adapt(np.reshape(np.asarray(adapt_data, "float32"), (len(adapt_data), -1)))
        x = norm(x)
    widths = config.widths
    x = _hidden_block(x, config, 1, widths[0])
    index = 2
    while index <= config.depth:
        if config.architecture == "residual" and index + 1 <= config.depth:
            skip = x
            x = _hidden_block(x, config, index, widths[index - 1])
            x = _hidden_block(x, config, index + 1, widths[index])
            x = keras.layers.Add(name=f"residual_{index}_{index + 1}")([skip, x])
            index += 2
        else:
            x = _hidden_block(x, config, index, widths[index - 1])
            index += 1
    outputs = keras.layers.Dense(n_outputs, activation=activation, name="output")(x)
    model = keras.Model(inputs, outputs, name=config.name.replace("+", "_"))
    model.dnnguide_config = config
    model.dnnguide_task = task
    if compile:
        from dnnguide.optimizers import optimizer_from_config

        model.compile(optimizer=optimizer_from_config(config), loss=loss, metrics=metrics)
    return model
