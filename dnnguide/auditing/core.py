"""``audit()``: check a Keras model and its training setup against the guidelines, statically.

Example:
    >>> import keras
    >>> model = keras.Sequential([
    ...     keras.Input((8,)),
    ...     keras.layers.Dense(32, activation="relu", kernel_initializer="lecun_normal"),
    ...     keras.layers.Dense(3, activation="softmax")])
    >>> model.compile("adam", "binary_crossentropy")
    >>> report = audit(model)
    >>> report.ok, report.rules
    (False, ['output_loss', 'initializer'])
"""

from __future__ import annotations

import keras
import numpy as np

from dnnguide.auditing.graph import ModelView
from dnnguide.auditing.report import AuditReport, Finding
from dnnguide.auditing.rules import RULES, Context
from dnnguide.config import TASKS, NetworkConfig, check_choice

_REGRESSION_LOSSES = ("mean_squared_error", "mean_absolute_error", "huber", "log_cosh",
                      "mean_squared_logarithmic_error", "mean_absolute_percentage_error")


def audit(model, data=None, optimizer=None, callbacks=None, *, config: NetworkConfig | None = None,
          task: str | None = None, low_latency: bool | None = None,
          mc_dropout: bool | None = None, max_rows: int = 2048) -> AuditReport:
    """Check ``model`` (and how it will be trained) against the guidelines ``recommend()`` applies.

    Static and cheap: the model is never called, the data sample only summarized. Rules: see
    :data:`dnnguide.auditing.rules.RULES` and the README's "Audit" section.

    Args:
        model: a Keras 3 model: functional, Sequential, or subclassed (its layers are then taken
            in assignment order, and an ``info`` finding says so).
        data: optional sample to check standardization: features ``x``, ``(x, y)`` or a
            :class:`dnnguide.Dataset` (its training split). At most ``max_rows`` rows are read.
        optimizer: the optimizer (default: the compiled one).
        callbacks: the callbacks you will pass to ``fit``; ``None`` = unknown (the early
            stopping / schedule rules are skipped), except for a dnnguide model, whose config
            says which callbacks ``dnnguide.fit`` adds.
        config: the model's dnnguide config (default: ``model.dnnguide_config``, set by
            ``build_model``); enables ``fixed_config()``.
        task: ``classification``/``binary``/``regression`` (default: from the config, the data
            or the loss).
        low_latency: BN must be foldable (default: the config's ``fold_batch_norm``).
        mc_dropout: MC dropout is planned (default: the config's dropout kind).
        max_rows: rows of ``data`` read, evenly spaced.

    Returns:
        An :class:`AuditReport`.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"Argument `model` must be a keras.Model. Received: model of type "
                        f"{type(model).__name__}")
    config = config if config is not None else getattr(model, "dnnguide_config", None)
    if config is not None and not isinstance(config, NetworkConfig):
        raise TypeError(f"Argument `config` must be a NetworkConfig. Received: config={config!r}")
    if task is not None:
        check_choice("task", task, TASKS)
    x, y, data_task = _sample(data, max_rows)
    optimizer = optimizer if optimizer is not None else getattr(model, "optimizer", None)
    view = ModelView(model)
    losses = _losses(model, view)
    heads = []
    for exit_layer, loss in zip(view.output_layers, losses):
        kernel, act, trail = view.output_head(exit_layer)
        units = getattr(kernel, "units", None) or getattr(kernel, "filters", None)
        heads.append((kernel, act, trail, units, loss))
    if task is None:
        task = getattr(model, "dnnguide_task", None) or data_task or _task_from_loss(losses)
    ctx = Context(
        view, config, optimizer, _planned_callbacks(callbacks, config), heads, x, y, task,
        low_latency=bool(config.fold_batch_norm if low_latency is None and config else low_latency),
        mc_dropout=bool(config.uses_mc_dropout if mc_dropout is None and config else mc_dropout))
    findings = [finding for rule in RULES.values() for finding in rule(ctx)]
    if view.assumed_order:
        findings.append(Finding(
            "layer_order_assumed", "info", (),
            "Subclassed model: its call graph is not inspectable, so its layers were read as a "
            "plain stack in the order they were assigned; graph rules rest on that assumption.",
            {}, "build the model with the functional API to have it checked exactly"))
    return AuditReport(model.name, findings, config)


def _sample(data, max_rows: int):
    """(x, y, task) of at most ``max_rows`` evenly spaced rows, or Nones."""
    from dnnguide.data import Dataset

    if data is None:
        return None, None, None
    task = None
    if isinstance(data, Dataset):
        x, y, task = data.x_train, data.y_train, data.task
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
    else:
        x, y = data, None
    x = np.asarray(x.to_numpy() if hasattr(x, "to_numpy") else x)
    if x.ndim < 2 or not np.issubdtype(x.dtype, np.number):
        raise TypeError("Argument `data` must be numeric features x (n_rows, ...), (x, y) or a "
                        f"dnnguide Dataset. Received: x of shape {x.shape}, dtype {x.dtype}")
    rows = np.unique(np.linspace(0, len(x) - 1, min(len(x), max_rows)).astype(int))
    if y is not None:
        y = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)[rows]
    return x[rows], y, task


def _losses(model, view: ModelView) -> list:
    """The compiled loss of each output (None where unknown)."""
    loss = getattr(model, "loss", None)
    n = len(view.output_layers)
    if isinstance(loss, (list, tuple)):
        return list(loss) + [None] * (n - len(loss))
    if isinstance(loss, dict):
        return [loss.get(layer.name) for layer in view.output_layers]
    return [loss] * n


def _task_from_loss(losses) -> str | None:
    from dnnguide.auditing.rules import loss_kind

    kind, _ = loss_kind(losses[0]) if losses else (None, False)
    if kind == "categorical":
        return "classification"
    if kind == "binary":
        return "binary"
    loss = losses[0] if losses else None
    if isinstance(loss, str):
        try:
            loss = keras.losses.get(loss)
        except ValueError:
            return None
    fn = getattr(loss, "fn", loss)
    return "regression" if getattr(fn, "__name__", "") in _REGRESSION_LOSSES else None


def _planned_callbacks(callbacks, config):
    """The callbacks fit will get: those given, else what dnnguide.fit adds for ``config``."""
    if callbacks is not None:
        return list(callbacks)
    if config is None:
        return None
    from dnnguide.schedules import schedule_callbacks

    stop = [keras.callbacks.EarlyStopping()] if config.early_stopping.enabled else []
    return stop + schedule_callbacks(config.schedule)
