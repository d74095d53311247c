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
import fnmatch
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from dnnguide.config import (
    ConfigError, EarlyStoppingConfig, NetworkConfig, TASKS, check_choice, check_range,
    nested_overrides,
)
from dnnguide.data_rules import LEARNING_RATE_KEYS, WEIGHT_DECAY_KEYS, decay_at, finder_applies
from dnnguide.guidelines import (
    DECOUPLED_DECAY_OPTIMIZERS, ONECYCLE_TABLE, Recommendation, place_dropout, recommend,
)


@dataclass(frozen=True)
class Preset:
    """A named situation for :func:`recommend`, with a one-line description."""

    name: str
    description: str
    situation: dict[str, Any] = field(default_factory=dict)

    def recommend(self, depth=None, data=None, **extra) -> Recommendation:
        situation = dict(self.situation)
        if depth is not None:
            situation["depth"] = depth
        situation.update(extra)
        return recommend(**situation, data=data)


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
    Preset("risk_sensitive", "An ensemble of 5 default nets with MC dropout, for uncertainty "
           "estimates.",
           {"risk_sensitive": True}),
):
    register_preset(_preset)


def list_presets(pattern: str | None = None) -> list[str]:
    """Names of the registered presets, optionally those matching a shell-style ``pattern``.

    >>> list_presets("s*")
    ['self_normalizing', 'sparse']
    """
    if pattern is None:
        return list(_REGISTRY)
    if not isinstance(pattern, str):
        raise TypeError(f"Argument `pattern` must be a string such as 's*'. "
                        f"Received: pattern={pattern!r}")
    return fnmatch.filter(list(_REGISTRY), pattern)


def describe_preset(name: str) -> str:
    """The one-line description of a preset (its choices and reasons: :func:`recommend_preset`)."""
    return _lookup(name).description


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


def recommend_preset(name: str, data=None, **overrides) -> Recommendation:
    """The recommendation behind a preset (with reasons), for ``data`` if given, overrides applied.

    User overrides always win over the tables and the data-aware rules. Three rules follow an
    override: a weight decay the rules chose is dropped when the chosen optimizer has none
    (Adam, Nadam...), and scaled to a learning rate you give, so it keeps its timescale (Keras
    decays by ``lr x decay`` a step); ``schedule="onecycle"`` gets its budget
    (:func:`onecycle_policy`).
    """
    preset = _lookup(name)
    rec = preset.recommend(depth=overrides.get("depth"), data=data,
                           width=overrides.get("width"))
    reasons = dict(rec.reasons)
    for key in overrides:
        reasons[key] = f"Set by you (override {key}={overrides[key]!r})."
    config = _cross_fit_follows_overrides(rec.config, overrides, reasons)
    config = nested_overrides(config, **_follow_optimizer_override(config, overrides, reasons))
    config = onecycle_policy(config, overrides, reasons)
    if not finder_applies(name, config, overrides):  # the user's LR or optimizer, or 1cycle
        reasons.pop("optimizer.learning_rate", None)
    if not {"dropout_layers", "regularization.dropout_layers", "regularization"} & set(overrides):
        config = place_dropout(config, reasons)  # an override may have added batch norm
    return Recommendation(config, reasons, {"preset": name, **rec.situation})


#: Overrides that ask for something a cross-fit does not train (an ensemble, MC dropout, a
#: compressed net), with the values that do: the data rule's cross-fit steps aside for them.
_CROSS_FIT_CONFLICTS = {"ensemble": 1, "pruning_sparsity": 0.0, "fold_batch_norm": False,
                        "precision": "float32"}
_DROPOUT_RATE_KEYS = frozenset({"dropout_rate", "regularization.dropout_rate"})


def _cross_fit_follows_overrides(config: NetworkConfig, overrides: dict,
                                 reasons: dict) -> NetworkConfig:
    """The cross-fit the data rules chose (``DATA_TABLE["cross_fit.regression"]``) yields to
    the user: a dropout rate you give is the only one tried, ``cross_fit=1`` trains one net,
    and an ensemble, MC dropout or a compressed net is trained as asked, without cross-fitting.
    """
    if config.cross_fit == 1 or "regularization" in overrides:
        return config
    reg = config.regularization
    kind = overrides.get("dropout_kind", overrides.get("regularization.dropout_kind", ""))
    asked = [f"{key}={overrides[key]!r}" for key, fine in _CROSS_FIT_CONFLICTS.items()
             if key in overrides and overrides[key] != fine]
    asked += [f"dropout_kind={kind!r}"] if str(kind).startswith("mc") else []
    if "cross_fit" not in overrides and asked:
        reasons["cross_fit"] = (f"One net, not cross-fitted: you asked for {', '.join(asked)}, "
                                "which a cross-fit does not train.")
        return replace(config, cross_fit=1, regularization=replace(reg, dropout_choices=()))
    given_rate = _DROPOUT_RATE_KEYS & set(overrides)
    if reg.dropout_choices and "dropout_choices" not in overrides and (
            given_rate or overrides.get("cross_fit") == 1):
        return replace(config, regularization=replace(reg, dropout_choices=()))
    return config


def _follow_optimizer_override(config: NetworkConfig, overrides: dict, reasons: dict) -> dict:
    name = overrides.get("optimizer", overrides.get("optimizer.name"))
    if (isinstance(name, str) and name not in DECOUPLED_DECAY_OPTIMIZERS
            and config.optimizer.weight_decay > 0
            and not WEIGHT_DECAY_KEYS & set(overrides)):
        reasons["optimizer.weight_decay"] = (
            f"0: {name!r} has no decoupled weight decay, so the recommended "
            f"{config.optimizer.weight_decay:g} was dropped (use 'adamw' to keep it).")
        return {**overrides, "optimizer.weight_decay": 0.0}
    return _decay_follows_the_learning_rate(config, overrides, reasons)


def _decay_follows_the_learning_rate(config: NetworkConfig, overrides: dict,
                                     reasons: dict) -> dict:
    """A recommended decay, scaled to a learning rate you give (same ``lr x decay``)."""
    given = [overrides[k] for k in LEARNING_RATE_KEYS if k in overrides]
    opt = config.optimizer
    if (not given or not isinstance(given[0], (int, float)) or given[0] <= 0
            or not opt.weight_decay or WEIGHT_DECAY_KEYS & set(overrides)):
        return overrides
    decay = decay_at(opt.weight_decay, opt.learning_rate, given[0])
    reasons["optimizer.weight_decay"] = (
        f"{decay:g}: the recommended {opt.weight_decay:g} at lr {opt.learning_rate:g}, scaled to "
        f"your learning rate {given[0]:g}. Keras decays each weight by lr x decay a step, so "
        "the decay keeps the timescale it was chosen for (give weight_decay to set it).")
    return {**overrides, "optimizer.weight_decay": decay}


def onecycle_policy(config: NetworkConfig, overrides: dict, reasons: dict) -> NetworkConfig:
    """1cycle needs its whole budget: no early stopping, and the table's epochs unless set.

    A cycle cut by early stopping never anneals (runs ended before the LR peak on mnist1d).
    """
    if config.schedule.name != "onecycle":
        return config
    changes = {}
    stopping = {f.name for f in fields(EarlyStoppingConfig)}  # a bare field name is an override
    if not any(k == "early_stopping" or k.startswith("early_stopping.") or k in stopping
               for k in overrides):
        changes["early_stopping"] = ONECYCLE_TABLE["early_stopping"][0]
        reasons["early_stopping"] = ONECYCLE_TABLE["early_stopping"][1]
    if "epochs" not in overrides:
        changes["epochs"] = ONECYCLE_TABLE["epochs"][0]
        reasons["epochs"] = ONECYCLE_TABLE["epochs"][1]
    reasons.setdefault("schedule.max_lr", ONECYCLE_TABLE["max_lr"][1])
    return nested_overrides(config, **changes) if changes else config


def get_preset(name: str, data=None, **overrides) -> NetworkConfig:
    """The configuration of a preset (sized for ``data`` if given), with overrides applied.

    >>> get_preset("default", depth=20).activation
    'swish'
    """
    return recommend_preset(name, data=data, **overrides).config


def resolve_config(preset_or_config, data=None, **overrides) -> NetworkConfig:
    """A preset name (sized for ``data``) or a NetworkConfig (or its dict), overrides applied."""
    if isinstance(preset_or_config, NetworkConfig):
        return nested_overrides(preset_or_config, **overrides)
    if isinstance(preset_or_config, dict):
        return nested_overrides(NetworkConfig.from_dict(preset_or_config), **overrides)
    return get_preset(preset_or_config, data=data, **overrides)


# --------------------------------------------------------------------------- building
def _dropout_layer(config: NetworkConfig, index: int):
    import keras  # here, not at the top: `dnnguide presets` must not load TensorFlow

    from dnnguide.layers import MCAlphaDropout, MCDropout

    reg = config.regularization
    layer_cls = {
        "standard": keras.layers.Dropout,
        "alpha": keras.layers.AlphaDropout,
        "mc": MCDropout,
        "mc_alpha": MCAlphaDropout,
    }[reg.dropout_kind]
    return layer_cls(reg.dropout_rate, name=f"dropout_{index}")


def _hidden_block(x, config: NetworkConfig, index: int, units: int):
    import keras

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
        x = keras.layers.BatchNormalization(momentum=config.batch_norm_momentum,
                                            name=f"batch_norm_{index}")(x)
        x = keras.layers.Activation(config.activation, name=f"activation_{index}")(x)
    elif config.normalization == "batch_norm_after":
        x = keras.layers.BatchNormalization(momentum=config.batch_norm_momentum,
                                            name=f"batch_norm_{index}")(x)
    if reg.dropout_rate > 0 and index > config.depth - (reg.dropout_layers or config.depth):
        x = _dropout_layer(config, index)(x)  # the top `dropout_layers` hidden layers only
    return x


def build_for_data(config: NetworkConfig, data, *, strategy=None) -> keras.Model:
    """:func:`build_model` for a :class:`dnnguide.data.Dataset`, as a run trains it: its input
    shape, outputs and task; the input standardization adapted on the training rows unless the
    loader standardized them; the training targets' scale; under ``strategy``'s scope if given.
    """
    import contextlib

    from dnnguide.targets import stats_for

    adapt = data.x_train if (config.standardize_inputs and not data.standardized) else None
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        return build_model(config, data.input_shape, data.n_outputs, data.task,
                           adapt_data=adapt, target_stats=stats_for(data))


def _head(task: str, n_outputs: int):
    import keras

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


def _standardize_layer(adapt_data):
    """A ``Normalization`` layer holding the training rows' statistics, as the loader takes them.

    Its mean and variance are :func:`dnnguide.data.standardization`'s mean and scale squared
    (set directly: Keras' own ``adapt`` would be a second pass over the rows), so raw arrays
    given to ``fit`` reach the network exactly as :func:`dnnguide.load_dataset` would have
    scaled them: a sparse or heavy-tailed feature reaches at most 5, and a constant one is
    centred, unscaled. Keras alone divides by ``max(std, 1e-7)``: a feature constant in
    the training rows (a blank pixel, a category absent from the split) turned a test row
    holding any other value into a 1e7-sized input (scikit-learn's raw digits given as
    arrays, seed 2: the default preset's test NLL 0.197, against 0.128 centred).
    """
    import keras

    from dnnguide.data import standardization

    flat = np.reshape(np.asarray(adapt_data, "float32"), (len(adapt_data), -1))
    mean, scale = standardization(flat)
    norm = keras.layers.Normalization(name="standardize")
    norm.build(flat.shape)
    norm.adapt_mean.assign(mean)
    norm.adapt_variance.assign(np.square(scale, dtype="float32"))
    norm.finalize_state()
    return norm


def build_model(
    preset_or_config="default",
    input_shape=None,
    n_outputs: int = 10,
    task: str = "classification",
    *,
    adapt_data=None,
    target_stats=None,
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
        target_stats: ``(mean, std)`` of the regression targets (training split). When given
            and the config standardizes targets, the model ends with
            :class:`dnnguide.targets.TargetScale` and trains with
            :class:`dnnguide.targets.StandardizedMSE`: it learns standardized targets but
            predicts (and reports RMSE/MAE) in the original units.
        compile: compile with the optimizer and schedule of the config.
        **overrides: config fields (``depth=20``, ``activation="relu"``, ``learning_rate=1e-3``).

    Returns:
        A Keras functional model; its config is attached as ``model.dnnguide_config``. An
        ensemble config (``ensemble=5``) builds one of its members (``ensemble=1`` there):
        :func:`dnnguide.fit` trains the members and pools them (:mod:`dnnguide.ensemble`).
    """
    import keras

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
        x = _standardize_layer(adapt_data)(x)
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
    # float32 output (and loss) even under a mixed_float16 policy: softmax/MSE in float16
    # overflow or lose precision (Keras mixed-precision guide).
    outputs = keras.layers.Dense(n_outputs, activation=activation, name="output",
                                 dtype="float32")(x)
    if task == "regression" and target_stats is not None and config.standardize_target:
        from dnnguide.targets import StandardizedMSE, TargetScale

        mean, std = target_stats
        outputs = TargetScale(mean, std, name="target_scale", dtype="float32")(outputs)
        loss = StandardizedMSE(std)
    model = keras.Model(inputs, outputs, name=config.name.replace("+", "_"))
    # One net, also of an ensemble or cross-fit config: fit trains its members and pools them.
    model.dnnguide_config = replace(config, ensemble=1, cross_fit=1, regularization=replace(
        config.regularization, dropout_choices=()))
    model.dnnguide_task = task
    if compile:
        from dnnguide.optimizers import optimizer_from_config

        model.compile(optimizer=optimizer_from_config(config), loss=loss, metrics=metrics)
    from dnnguide.auditing import audit

    audit(model).check()  # static (< 1 ms): an error finding here is a dnnguide bug
    return model
