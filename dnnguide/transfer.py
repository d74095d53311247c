"""Transfer learning: reuse the lower layers of a trained network, then fine-tune them.

The guideline: when labelled data are scarce, start from the lower layers of a network trained
on a similar task. :func:`reuse_layers` copies a source model (its layers are never shared, so the
source stays bitwise unchanged), drops its head or its top layers, puts a new head on top and
freezes the reused layers. :func:`fine_tune` trains in two phases: the new head alone, then the
reused layers too, with the learning rate lowered by ``lr_factor`` (default 10x lower) so that
the large gradients of a still-random head do not wreck the reused features. Both phases are one
run (one run directory, one history).

BatchNormalization layers in the reused part stay in inference mode, frozen and after
unfreezing, as the Keras fine-tuning guide advises: their moving statistics were estimated on
the source data and re-estimating them from a few small batches would shift every feature the
layers above rely on. In Keras 3 a BatchNormalization layer with ``trainable=False`` runs in
inference mode, so those layers simply stay frozen.

Example:
    >>> import dnnguide
    >>> source = dnnguide.build_model("default", input_shape=(64,), n_outputs=8, depth=3)
    >>> model = reuse_layers(source, n_outputs=1, task="binary")
    >>> [layer.name for layer in model.layers if layer.trainable]
    ['output']
    >>> # result = fine_tune(model, (x, y), head_epochs=10, epochs=60)  # one run, two phases

A ``keras.applications`` model works the same way; nothing is downloaded, build it with
``weights=None`` or from a weights file on disk::

    base = keras.applications.MobileNetV2(input_shape=(96, 96, 3), include_top=False,
                                          pooling="avg", weights="/data/mobilenet_v2.weights.h5")
    model = reuse_layers(base, n_layers="all", n_outputs=5)

References:
    Yosinski et al. (2014), "How transferable are features in deep neural networks?", NeurIPS.
    Keras guide "Transfer learning & fine-tuning" (BatchNormalization stays in inference mode).
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
from keras import ops

from dnnguide.config import ConfigError, check_range, nested_overrides, replace

#: Phase 2 learning rate = ``DEFAULT_LR_FACTOR`` x the phase-1 learning rate. Ten times lower is
#: the usual fine-tuning step (Keras guide, Géron ch. 11): the reused features are already good,
#: and full-size updates driven by the freshly trained head would distort them.
DEFAULT_LR_FACTOR = 0.1

# Layers that hold statistics or preprocessing rather than features: never counted as "a layer"
# when cutting, never unfrozen (BatchNormalization stays in inference mode).
_STATS_LAYERS = (keras.layers.BatchNormalization, keras.layers.Normalization,
                 keras.layers.LayerNormalization, keras.layers.GroupNormalization)


# --------------------------------------------------------------------------- loading and cutting
def load_source(source) -> keras.Model:
    """A Keras model from a model, a dnnguide run directory or a ``.keras`` file (safe mode)."""
    if isinstance(source, keras.Model):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if (path / "config.json").exists():
            from dnnguide.runs import open_run

            return open_run(path).model()
        if path.suffix == ".keras" and path.is_file():
            import dnnguide.layers  # noqa: F401  (registers dnnguide's layers)

            return keras.saving.load_model(path)
    raise TypeError("Argument `source` must be a Keras model, a dnnguide run directory or a "
                    f".keras file. Received: source={source!r}")


def _is_feature_layer(layer) -> bool:
    """A layer with weights of its own that computes features (Dense, Conv, a nested model...)."""
    return bool(layer.weights) and not isinstance(layer, _STATS_LAYERS)


def _check_graph_model(model) -> None:
    # A subclassed model has no layer graph to cut (and no `outputs`); Sequential and functional
    # models have one once they are built.
    try:
        outputs = model.outputs if isinstance(model, keras.Model) else None
    except AttributeError:
        outputs = None
    if not outputs:
        raise TypeError("Argument `source` must be a built functional or Sequential Keras model "
                        "(a subclassed model has no layer graph to cut). Received: source of "
                        f"type {type(model).__name__}")


def cut_index(model: keras.Model, n_layers=None) -> int:
    """Index in ``model.layers`` of the last layer to reuse.

    ``n_layers`` counts feature layers (layers with weights, normalization excluded) from the
    input: ``2`` keeps the first two with the batch norm, activation and dropout that follow them.
    ``None`` keeps everything below the last feature layer (drops the head), ``"all"`` keeps every
    layer (the source is a feature extractor), a layer name keeps everything up to that layer.
    """
    layers = model.layers
    features = [i for i, layer in enumerate(layers) if _is_feature_layer(layer)]
    if n_layers == "all":
        return len(layers) - 1
    if isinstance(n_layers, str):
        names = [layer.name for layer in layers]
        if n_layers not in names:
            raise ConfigError(f"Argument `n_layers` must be an int, None, 'all' or one of the "
                              f"source's layer names {names}. Received: n_layers={n_layers!r}")
        return names.index(n_layers)
    if n_layers is None:
        if len(features) < 2:
            raise ConfigError(f"The source has {len(features)} layer(s) with weights, so dropping "
                              "its head would leave nothing to reuse. Pass n_layers='all' to "
                              "reuse the whole model as a feature extractor.")
        n_layers = len(features) - 1
    check_range("n_layers", n_layers, 1, len(features), integer=True)
    if n_layers == len(features):
        return len(layers) - 1
    return features[n_layers] - 1


def reused_body(model: keras.Model, n_layers=None) -> keras.Model:
    """The functional model from ``model``'s inputs to its cut (shares ``model``'s layers)."""
    _check_graph_model(model)
    index = cut_index(model, n_layers)
    return keras.Model(model.inputs, model.layers[index].output, name=f"{model.name}_body")


def copy_model(model: keras.Model) -> keras.Model:
    """A copy with new layers and the same weights: training it never touches ``model``."""
    _check_graph_model(model)
    import dnnguide.layers  # noqa: F401  (dnnguide's dropout layers clone from their config)

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    for original, copied in zip(_walk(model), _walk(clone)):
        copied.trainable = original.trainable
        # An adapted Normalization layer computes from constants it derives from its weights
        # in finalize_state(); set_weights alone leaves them at their initial 0 / 1.
        if isinstance(copied, keras.layers.Normalization):
            copied.finalize_state()
    return clone


# --------------------------------------------------------------------------- reuse
def reuse_layers(source, n_layers=None, n_outputs: int = 1, task: str = "binary", *,
                 freeze: bool = True, config="default", compile: bool = True) -> keras.Model:
    """A new model: a copy of ``source``'s lower layers (frozen) with a new head.

    Args:
        source: a Keras functional/Sequential model, a dnnguide run directory or a ``.keras``
            file. It is copied, never modified. A ``keras.applications`` model works too: build
            it with ``weights=None`` or a local weights file (nothing is downloaded here).
        n_layers: how much to reuse (see :func:`cut_index`): ``None`` drops the head only, an
            int keeps that many feature layers from the input, ``"all"`` keeps everything (an
            encoder or body from :mod:`dnnguide.pretrain`), a layer name cuts after that layer.
        n_outputs: outputs of the new head (classes; 1 for binary or one regression target).
        task: ``"classification"``, ``"binary"`` or ``"regression"`` (head activation and loss).
        freeze: freeze the reused layers (train the new head first, see :func:`fine_tune`).
        config: a preset name or NetworkConfig whose optimizer, schedule and training settings
            the new model uses (attached as ``model.dnnguide_config``).
        compile: compile with that optimizer and the task's loss and metrics.

    Returns:
        A functional model ``inputs -> reused layers -> [Flatten] -> output``.
    """
    from dnnguide.presets import _head, resolve_config

    activation, loss, metrics = _head(task, n_outputs)
    config = resolve_config(config)
    body = reused_body(copy_model(load_source(source)), n_layers)
    x = body.outputs[0]
    if len(x.shape) > 2:  # a convolutional feature map: the dense head needs a vector
        x = keras.layers.Flatten(name="head_flatten")(x)
    names = {layer.name for layer in body.layers}
    head = "output" if "output" not in names else "new_output"
    outputs = keras.layers.Dense(n_outputs, activation=activation, name=head)(x)
    model = keras.Model(body.inputs, outputs, name=f"{body.name.removesuffix('_body')}_reused")
    for layer in model.layers[:-1]:
        if freeze or isinstance(layer, _STATS_LAYERS):
            layer.trainable = False
    model.dnnguide_config = config
    model.dnnguide_task = task
    if compile:
        from dnnguide.optimizers import optimizer_from_config

        model.compile(optimizer=optimizer_from_config(config), loss=loss, metrics=metrics)
    return model


def unfreeze(model: keras.Model, layers="all") -> list[str]:
    """Make frozen feature layers trainable again; batch norm stays frozen (inference mode).

    Args:
        model: a model whose reused layers are frozen (e.g. from :func:`reuse_layers`).
        layers: ``"all"``, or the number of frozen feature layers to unfreeze from the top.

    Returns:
        The names of the layers unfrozen. The model must be compiled again before training
        (:func:`fine_tune` does it).
    """
    frozen = [layer for layer in model.layers if not layer.trainable and _is_feature_layer(layer)]
    if not frozen:
        raise ConfigError(f"Model {model.name!r} has no frozen layers to unfreeze. Build it with "
                          "reuse_layers(..., freeze=True).")
    if layers != "all":
        check_range("unfreeze", layers, 1, len(frozen), integer=True)
        frozen = frozen[-layers:]
    stats = [layer for layer in _walk(model) if isinstance(layer, _STATS_LAYERS)
             and not layer.trainable]
    for layer in frozen:
        layer.trainable = True
    for layer in stats:  # unfreezing a nested model would switch its batch norm to training mode
        layer.trainable = False
    return [layer.name for layer in frozen]


def _walk(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _walk(layer)


#: NetworkConfig parts that describe the layers: with ``init_from`` the source defines them.
_ARCHITECTURE = ("depth", "width", "kernel_initializer", "activation", "normalization",
                 "architecture", "standardize_inputs", "regularization")


def model_from(init_from, config_or_model, data, *, reuse=None, freeze=True, epochs=None,
               batch_size=None, **overrides):
    """The model and config of a run starting from another model's layers (``fit(init_from=)``).

    With a run directory, that run's config is the base (it describes the reused layers);
    otherwise ``config_or_model`` (a preset or config) gives the training settings.
    ``overrides`` may change training settings (learning rate, epochs...) but not the layers.
    """
    from dnnguide.data import DataError
    from dnnguide.presets import resolve_config
    from dnnguide.runs import member_dirs, open_run

    if isinstance(config_or_model, keras.Model):
        raise ConfigError("Pass either a built model or `init_from`, not both. Received: a "
                          f"model {config_or_model.name!r} and init_from={init_from!r}")
    is_run = (isinstance(init_from, (str, os.PathLike))
              and (Path(init_from) / "config.json").exists())
    if is_run:
        if config_or_model not in (None, "default"):
            raise ConfigError(f"With init_from={str(init_from)!r} (a run) the configuration is "
                              "that run's; change training settings with overrides "
                              f"(learning_rate=...). Received: preset={config_or_model!r}")
        base = open_run(init_from).config
        if base.nets > 1:
            members = [str(p) for p in member_dirs(init_from)]
            raise ConfigError(f"Run {str(init_from)!r} is an ensemble of {base.nets} nets; "
                              "layers are reused from one net. Pass one of its members: "
                              f"{members}")
    else:
        base = resolve_config(config_or_model or "default")
    changes = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size)) if v}
    config = nested_overrides(base, **overrides, **changes)
    changed = [f for f in _ARCHITECTURE if getattr(config, f) != getattr(base, f)]
    if changed:
        raise ConfigError(f"Overrides {sorted(overrides)} change the reused layers ({changed}); "
                          f"with init_from those come from the source. Received: {overrides}")
    if config.schedule.name == "onecycle":
        from dnnguide.schedules import training_steps

        steps = training_steps(len(data.x_train), config.batch_size, config.epochs)
        config = replace(config, schedule=replace(config.schedule, total_steps=steps))
    source = load_source(init_from)
    expected = tuple(source.inputs[0].shape[1:])
    if expected != tuple(data.input_shape):
        raise DataError(f"The source model takes inputs of shape {expected}, the data has "
                        f"{tuple(data.input_shape)}: layers can only be reused on the same "
                        "features.")
    model = reuse_layers(source, reuse, n_outputs=data.n_outputs, task=data.task, freeze=freeze,
                         config=config)
    return model, config


# --------------------------------------------------------------------------- two phases
def check_fine_tune(model: keras.Model, head_epochs, epochs, unfreeze="all",
                    lr_factor=DEFAULT_LR_FACTOR) -> None:
    """Refuse fine-tuning arguments before anything is trained or written."""
    check_range("head_epochs", head_epochs, 1, integer=True)
    check_range("epochs", epochs, head_epochs + 1, integer=True)
    check_range("lr_factor", lr_factor, 0.0, 1.0, low_inclusive=False)
    if unfreeze != "all":
        check_range("unfreeze", unfreeze, 1, integer=True)
    if not any(not layer.trainable and _is_feature_layer(layer) for layer in model.layers):
        raise ConfigError(f"Model {model.name!r} has no frozen layers: phase 1 would train "
                          "everything. Build it with reuse_layers(..., freeze=True).")
    if getattr(model, "optimizer", None) is None:
        raise ConfigError(f"Model {model.name!r} is not compiled; fine-tuning recompiles it "
                          "with its own optimizer at a lower learning rate.")
    if isinstance(model.optimizer.get_config().get("learning_rate"), dict):
        raise ConfigError(
            "Fine-tuning lowers a constant learning rate by `lr_factor` after the head phase; a "
            "learning-rate schedule would restart from its first step. Received an optimizer "
            f"with a {model.optimizer.get_config()['learning_rate'].get('class_name')} schedule. "
            "Use schedule='constant' or 'performance' (ReduceLROnPlateau) for transfer runs.")


def recompile(model: keras.Model, learning_rate: float) -> None:
    """Compile again (needed after (un)freezing) with a fresh optimizer of the same kind."""
    optimizer = model.optimizer
    fresh = type(optimizer).from_config({**optimizer.get_config(),
                                         "learning_rate": float(learning_rate)})
    compile_args = keras.saving.deserialize_keras_object(model.get_compile_config())
    compile_args["optimizer"] = fresh
    model.compile(**compile_args)


def fit_two_phases(model: keras.Model, x, y, *, head_epochs: int, epochs: int,
                   unfreeze_layers="all", lr_factor: float = DEFAULT_LR_FACTOR, callbacks=(),
                   **fit_kwargs) -> keras.callbacks.History:
    """``model.fit`` in two phases (head, then unfrozen layers at ``lr_factor`` x the LR).

    Same arguments as ``model.fit``; ``epochs`` counts both phases. The epochs of phase 2
    continue the numbering of phase 1 and the returned History holds both phases, so
    callbacks (CSV log, TensorBoard) see one run.
    """
    check_fine_tune(model, head_epochs, epochs, unfreeze_layers, lr_factor)
    callbacks = list(callbacks)
    head = model.fit(x, y, epochs=head_epochs, callbacks=callbacks, **fit_kwargs)
    losses = head.history.get("loss", [])
    if losses and not np.isfinite(losses[-1]):
        return head  # diverged: fit() reports it, fine-tuning from NaN weights is pointless
    learning_rate = float(ops.convert_to_numpy(model.optimizer.learning_rate)) * lr_factor
    unfreeze(model, unfreeze_layers)
    recompile(model, learning_rate)
    tuned = model.fit(x, y, epochs=epochs, initial_epoch=len(head.epoch), callbacks=callbacks,
                      **fit_kwargs)
    return _merge(head, tuned)


def _merge(first, second) -> keras.callbacks.History:
    merged = keras.callbacks.History()
    merged.set_model(second.model)
    merged.epoch = list(first.epoch) + list(second.epoch)
    merged.params = second.params
    keys = list(dict.fromkeys([*first.history, *second.history]))
    for key in keys:  # a metric logged in one phase only is NaN in the other
        merged.history[key] = (first.history.get(key, [np.nan] * len(first.epoch))
                               + second.history.get(key, [np.nan] * len(second.epoch)))
    return merged


def fine_tune(model: keras.Model, data, *, head_epochs: int = 10, epochs: int | None = None,
              unfreeze="all", lr_factor: float = DEFAULT_LR_FACTOR, **fit_kwargs):
    """Train a reused model in two phases and record both in one run.

    Phase 1 trains the new head with the reused layers frozen for ``head_epochs`` epochs.
    Phase 2 unfreezes them (all, or the top ``unfreeze`` feature layers; batch norm stays in
    inference mode), recompiles with ``lr_factor`` x the learning rate (default 10x lower, see
    :data:`DEFAULT_LR_FACTOR`) and trains until ``epochs`` (both phases counted; early stopping
    applies in each phase).

    Args:
        model: a compiled model with frozen layers, e.g. from :func:`reuse_layers`.
        data: what :func:`dnnguide.fit` accepts (a name, a Dataset, ``(x, y)``...).
        head_epochs, epochs, unfreeze, lr_factor: the schedule above.
        **fit_kwargs: passed to :func:`dnnguide.fit` (``run_dir``, ``seed``, ``batch_size``...).

    Returns:
        The :class:`dnnguide.RunResult` (one history; ``run.json`` records the phases).
    """
    from dnnguide.training import fit

    # Array data would have its task inferred (0/1 labels look like two classes).
    fit_kwargs.setdefault("task", getattr(model, "dnnguide_task", None))
    return fit(model, data, epochs=epochs, freeze_epochs=head_epochs, unfreeze=unfreeze,
               lr_factor=lr_factor, **fit_kwargs)
