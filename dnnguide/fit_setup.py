"""What a run needs before its first step, and the checks that refuse a bad run early.

The callbacks a configuration implies (:func:`make_callbacks`), and checks that fail before
the run folder exists rather than mid-epoch: monitored metrics the model does not compute,
labels out of the model's range, SELU on unscaled inputs, guideline violations (the audit),
1cycle's peak learning rate from the LR finder when none was given, and the data-aware
learning rate of a preset (the finder's valley when it is at least 2x below the table's).
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np

from dnnguide.config import NetworkConfig, check_choice
from dnnguide.data import Dataset, DataError
from dnnguide.schedules import onecycle_mean_lr


class InputScaleWarning(UserWarning):
    """Inputs far from standardized where the model relies on it (SELU)."""


def check_input_scale(config: NetworkConfig, data: Dataset) -> None:
    if not config.self_normalizing or data.standardized or config.standardize_inputs:
        return
    x = np.reshape(data.x_train, (len(data.x_train), -1))
    mean, std = float(np.abs(x.mean(0)).max()), x.std(0)
    std = std[std > 0]
    if mean > 0.5 or (std.size and (std.min() < 0.5 or std.max() > 2.0)):
        warnings.warn(
            "SELU self-normalization assumes standardized inputs, but the training features "
            f"are far from it (max |mean| {mean:.2f}, std in [{std.min():.2f}, {std.max():.2f}]). "
            "Set standardize_inputs=True or standardize the data.", InputScaleWarning, stacklevel=3)


def make_callbacks(config: NetworkConfig | None, run_dir: Path | None, *, has_val: bool = True,
                   diagnose_probe=None, validation=None) -> list[keras.callbacks.Callback]:
    """The callbacks a configuration implies (early stopping, schedule, NaN guard, logging).

    ``validation``: ``(x_val, y_val)``, for early stopping on the MC prediction's validation
    loss (``monitor="val_mc_loss"``, the risk-sensitive rule). Without a validation split
    that monitor falls back to the training loss, as ``val_loss`` does; without the arrays
    (a caller that feeds validation data as a dataset) or without MC dropout in the config,
    to ``val_loss``.
    """
    from dnnguide.schedules import schedule_callbacks
    from dnnguide.uncertainty.monitor import MC_VAL_LOSS, MCValidationLoss

    callbacks: list[keras.callbacks.Callback] = [keras.callbacks.TerminateOnNaN()]
    if config is not None:
        es = config.early_stopping
        if es.enabled:
            monitor = es.monitor
            if monitor == MC_VAL_LOSS and not (has_val and validation is not None
                                               and config.uses_mc_dropout):
                monitor = "val_loss"  # without dropout, the MC prediction is the plain one
            if not has_val:
                monitor = monitor.removeprefix("val_")
            if monitor == MC_VAL_LOSS:
                callbacks.append(MCValidationLoss(*validation))  # logs it before it is read
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor=monitor, patience=es.patience, mode="min" if monitor == MC_VAL_LOSS
                else "auto", restore_best_weights=es.restore_best_weights,
                start_from_epoch=es.start_from_epoch, verbose=0))
        callbacks.extend(schedule_callbacks(config.schedule))
    if run_dir is not None:  # the checkpoint callback is added last by the runner
        callbacks += [
            keras.callbacks.CSVLogger(str(run_dir / "training_log.csv"), append=True),
            # Scalars only: tracing the graph for TensorBoard cost ~20% of a short fit.
            keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), histogram_freq=0,
                                        write_graph=False),
        ]
    if diagnose_probe is not None:
        from dnnguide.diagnostics import DiagnosticsCallback

        x_probe, y_probe = diagnose_probe
        callbacks.append(DiagnosticsCallback(x_probe, y_probe, output_dir=run_dir))
    return callbacks


def monitorable(model, has_val: bool) -> tuple[str, ...] | None:
    """Names a callback can monitor (``loss``, the compiled metrics, their ``val_`` forms).

    ``None`` when the compiled metrics cannot be named from the compile config (several
    outputs, metric objects without a name): the check is then left to Keras.
    """
    if len(model.outputs) != 1:
        return None
    from dnnguide.layers import has_dropout
    from dnnguide.uncertainty.monitor import MC_VAL_LOSS

    names = ["loss"]
    for metric in (model.get_compile_config() or {}).get("metrics") or []:
        if isinstance(metric, dict):
            metric = (metric.get("config") or {}).get("name")
        if not isinstance(metric, str):
            return None
        names.append(metric)
    mc = [MC_VAL_LOSS] if has_val and has_dropout(model, kinds=("mc",)) else []
    return tuple(names + [f"val_{n}" for n in names] + mc if has_val else names)


def check_callbacks_for(model, config, data: Dataset, callbacks) -> None:
    """Refuse callbacks that would fail mid-run: unknown monitored metrics, LR conflicts."""
    from dnnguide.schedules import check_callbacks

    has_val = len(data.x_val) > 0
    implied = make_callbacks(config, None, has_val=has_val) + list(callbacks)
    check_callbacks(model.optimizer, implied)
    valid = monitorable(model, has_val)
    watchers = (keras.callbacks.EarlyStopping, keras.callbacks.ReduceLROnPlateau,
                keras.callbacks.ModelCheckpoint)
    for callback in implied:
        if valid is not None and isinstance(callback, watchers):
            check_choice("monitor", callback.monitor, valid)


def check_callbacks_before_sweep(config: NetworkConfig, data: Dataset, callbacks,
                                 seed: int) -> None:
    """:func:`check_callbacks_for` before an LR sweep, which trains for an epoch first.

    The check reads a compiled model (its optimizer and metric names), so it runs on a
    throwaway build of ``config`` (the table's LR standing in for 1cycle's peak, which the
    sweep has yet to find); the generators are seeded again, so the run's own model starts
    from the weights it would have had without this build.
    """
    from dnnguide.presets import build_model
    from dnnguide.targets import stats_for

    if config.schedule.name == "onecycle" and config.schedule.max_lr is None:
        config = replace(config, schedule=replace(config.schedule,
                                                  max_lr=config.optimizer.learning_rate))
    model = build_model(config, data.input_shape, data.n_outputs, data.task,
                        target_stats=stats_for(data))
    check_callbacks_for(model, config, data, callbacks)
    keras.utils.set_random_seed(seed)


def _sweep(config: NetworkConfig, data: Dataset, seed: int, rule: str):
    """The LR finder's result (``rule`` suggestion) on this config and data, for a run about
    to start.

    The sweep trains a copy of the network for one epoch (at least 200 steps, the schedule
    replaced by the sweep's own) and is undone; the global generators are seeded again after
    it, so training starts as it would without the sweep.
    """
    from dnnguide.lr_finder import lr_find

    found = lr_find(config, data, rule=rule, seed=seed, verbose=0)
    keras.utils.set_random_seed(seed)
    return found


def onecycle_max_lr(config: NetworkConfig, data: Dataset, seed: int) -> NetworkConfig:
    """1cycle's peak LR from the LR finder on this config and data (``minimum`` rule), lifted
    towards ``ONECYCLE_TABLE["max_lr_floor"]`` times the config's constant learning rate
    (:func:`dnnguide.lr_finder.onecycle_peak`); that floor alone when the sweep's loss never
    turned up (it bounds nothing then).

    The finder's ``valley`` rule is too cautious for a peak (mnist1d: 1cycle lost to a
    constant LR with it); a tenth of the LR at the loss minimum is Smith's advice.
    """
    max_lr = _sweep(config, data, seed, "minimum").onecycle_peak(config.optimizer.learning_rate)
    return replace(config, schedule=replace(config.schedule, max_lr=max_lr))


def finder_learning_rate(config: NetworkConfig, data: Dataset, seed: int, *,
                         move_decay: bool = True) -> NetworkConfig:
    """The table's LR, or the LR finder's valley on this network and data when that is at
    least ``factor`` (2) times lower (``DATA_TABLE["learning_rate"]``: one sweep's valley varies
    2-4x between seeds, so a smaller gap is noise). ``move_decay``: the weight decay moves with
    the LR (:func:`dnnguide.data_rules.decay_at`), as it would with that LR given; False when
    the decay was given.
    """
    from dnnguide.data_rules import DATA_TABLE, decay_at

    rule = DATA_TABLE["learning_rate"][0]
    found = float(_sweep(config, data, seed, rule["rule"]).suggestion)
    if not found * rule["factor"] <= config.optimizer.learning_rate:
        return config
    valley = float(f"{found:.2g}")  # two digits: the sweep is not finer than that
    opt = config.optimizer
    decay = decay_at(opt.weight_decay, opt.learning_rate, valley) if move_decay else (
        opt.weight_decay)
    return replace(config, optimizer=replace(opt, learning_rate=valley, weight_decay=decay))


def decay_over_the_cycle(config: NetworkConfig) -> NetworkConfig:
    """The small-data rule's weight decay, kept at its timescale under 1cycle.

    The rule sizes the decay at the constant learning rate (``DATA_TABLE["weight_decay"]``),
    and Keras scales the decay by the LR of each step; 1cycle's LR averages about half its peak,
    which the sweep lifts towards 5x the constant LR, so the same decay would forget 2-3x faster
    (mnist1d: test NLL 0.661 -> 0.680 over 5 seeds). The decay is divided by the cycle's mean LR
    over the constant one; a 1cycle run with no peak yet, or no decay, is returned as is.
    """
    from dnnguide.data_rules import decay_at

    schedule, opt = config.schedule, config.optimizer
    if schedule.name != "onecycle" or schedule.max_lr is None or not opt.weight_decay:
        return config
    mean_lr = onecycle_mean_lr(schedule.max_lr, schedule.pct_start, schedule.div_factor,
                               schedule.final_div_factor)
    return replace(config, optimizer=replace(
        opt, weight_decay=decay_at(opt.weight_decay, opt.learning_rate, mean_lr)))


def check_model_outputs(model: keras.Model, data: Dataset) -> None:
    """A built model's output size must fit the labels (Keras would fail mid-epoch, or not at all)."""
    n_model = int(model.output_shape[-1])
    if data.task == "regression":
        if n_model != data.n_outputs:
            raise DataError(f"The model has {n_model} outputs but the regression targets have "
                            f"{data.n_outputs} columns.")
        return
    if data.task == "classification" and n_model == 1:
        raise DataError("The model has one output, which cannot score several classes: use "
                        "task='binary' data or a model with one output per class.")
    high = n_model - 1 if data.task == "classification" else 1
    for split in ("train", "val", "test"):
        labels = getattr(data, f"y_{split}")
        if len(labels) and int(np.max(labels)) > high:
            raise DataError(f"Labels of the {split} split must be in [0, {high}] for a model with "
                            f"{n_model} outputs. Received labels up to {int(np.max(labels))}.")


def audit_before_training(model, config, callbacks) -> None:
    """Audit the model and callbacks (static, milliseconds): a dnnguide model with an error
    finding is a dnnguide bug (AuditError); a user's model gets a warning with the findings."""
    from dnnguide.auditing import AuditWarning, audit

    report = audit(model, callbacks=callbacks, config=config)
    if config is not None:
        report.check()
    elif not report.ok:
        warnings.warn(f"The model breaks guidelines that make training fail or silently "
                      f"wrong:\n{report}", AuditWarning, stacklevel=4)
