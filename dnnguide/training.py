"""Train a configuration with the callbacks it implies, and keep every result in a run directory.

Example:
    >>> import dnnguide
    >>> result = dnnguide.fit("default", "digits", epochs=5, run_dir="runs")  # doctest: +SKIP
    >>> result.metrics["test_accuracy"]  # doctest: +SKIP
    0.96
"""

from __future__ import annotations

import platform
import time
import warnings
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dnnguide import checkpoint as ckpt
from dnnguide.config import ConfigError, NetworkConfig, check_choice, check_range
from dnnguide.data import Dataset, DataError, as_dataset, validate_dataset
from dnnguide.presets import build_model, resolve_config
from dnnguide.targets import stats_for
from dnnguide.plotting import pyplot, save_figure
from dnnguide.runs import (
    atomic_save_model, atomic_write_json, atomic_write_text, check_run_root, lock_run, new_run_dir,
    owner,
)


class InputScaleWarning(UserWarning):
    """Inputs far from standardized where the model relies on it (SELU)."""


class RunInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C; the run is marked ``interrupted`` and can be resumed."""

    def __init__(self, run_dir: Path, epochs_saved: int):
        self.run_dir, self.epochs_saved = Path(run_dir), epochs_saved
        super().__init__(f"interrupted after {epochs_saved} checkpointed epochs; resume with: "
                         f"dnnguide train --resume {self.run_dir}")


@dataclass
class RunResult:
    """What :func:`fit` returns."""

    model: keras.Model
    history: Any  # pandas DataFrame, one row per epoch
    metrics: dict[str, float]
    run_dir: Path | None
    config: NetworkConfig | None
    data: Dataset


def environment_info() -> dict[str, Any]:
    """Library versions and the device, so a run can be reproduced from its folder."""
    import sklearn

    import dnnguide

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "numpy": np.__version__,
        "scikit_learn": sklearn.__version__,
        "dnnguide": getattr(dnnguide, "__version__", "unknown"),
    }
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        gpus = tf.config.list_physical_devices("GPU")
        info["device"] = f"{len(gpus)} GPU(s)" if gpus else f"CPU ({platform.machine()})"
    return info


def _check_input_scale(config: NetworkConfig, data: Dataset) -> None:
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


#: Kept for compatibility: the checkpoint policy lives in :mod:`dnnguide.checkpoint`.
CHECKPOINT_EVERY_S = ckpt.CHECKPOINT_EVERY_S


def make_callbacks(config: NetworkConfig | None, run_dir: Path | None, *, has_val: bool = True,
                   diagnose_probe=None) -> list[keras.callbacks.Callback]:
    """The callbacks a configuration implies (early stopping, schedule, NaN guard, logging)."""
    from dnnguide.schedules import schedule_callbacks

    callbacks: list[keras.callbacks.Callback] = [keras.callbacks.TerminateOnNaN()]
    if config is not None:
        es = config.early_stopping
        if es.enabled:
            monitor = es.monitor if has_val else es.monitor.removeprefix("val_")
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor=monitor, patience=es.patience,
                restore_best_weights=es.restore_best_weights, verbose=0))
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


def learning_curves_figure(history, *, epochs: int | None = None):
    """The learning-curves figure: loss, each metric, and the learning rate, per epoch.

    Loss goes on a log scale when it spans more than a decade; the best epoch (lowest
    validation loss, the ``best_epoch`` of ``metrics.json``) is marked on every panel, and so
    is an early stop (training ended before the ``epochs`` budget).

    Args:
        history: a DataFrame, one row per epoch (Keras' history: ``loss``, ``val_loss``,
            metrics, ``learning_rate``); an ``epoch`` column is ignored.
        epochs: the training budget, to tell an early stop from a finished budget.

    Returns:
        A matplotlib figure (saved by :func:`plot_learning_curves`).

    Example:
        >>> fig = learning_curves_figure(result.history, epochs=100)  # doctest: +SKIP
    """
    plt = pyplot()
    history = history.drop(columns=["epoch"], errors="ignore").reset_index(drop=True)
    metrics = [c for c in history.columns if c != "learning_rate" and not c.startswith("val_")]
    metrics.sort(key=lambda name: name != "loss")  # loss first
    has_lr = "learning_rate" in history and history["learning_rate"].notna().any()
    panels = len(metrics) + has_lr
    fig, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 3.6), squeeze=False)
    axes = list(axes[0])
    x = np.arange(1, len(history) + 1)
    best = None
    if "val_loss" in history and history["val_loss"].notna().any():
        best = int(history["val_loss"].idxmin()) + 1
    stopped = epochs is not None and 0 < len(history) < epochs
    for ax, metric in zip(axes, metrics):
        ax.plot(x, history[metric], label="train")
        if f"val_{metric}" in history:
            ax.plot(x, history[f"val_{metric}"], label="validation")
        values = history[[c for c in (metric, f"val_{metric}") if c in history]].to_numpy(float)
        values = values[np.isfinite(values)]
        if metric == "loss" and len(values) and values.min() > 0 and \
                values.max() / values.min() > 10:
            ax.set_yscale("log")  # spans decades: a linear axis flattens the later epochs
        _mark_epochs(ax, best, len(history) if stopped else None, epochs)
        ax.set(xlabel="epoch", ylabel=metric.replace("_", " "),
               title=f"{metric.replace('_', ' ')} (log scale)" if ax.get_yscale() == "log"
               else metric.replace("_", " "))
        ax.legend(fontsize="small")
    if has_lr:
        ax = axes[-1]
        ax.plot(x, history["learning_rate"], color="tab:green", label="learning rate")
        lr = history["learning_rate"].to_numpy(float)
        lr = lr[np.isfinite(lr) & (lr > 0)]
        if len(lr) and lr.max() / lr.min() > 10:
            ax.set_yscale("log")
        _mark_epochs(ax, best, len(history) if stopped else None, epochs)
        ax.set(xlabel="epoch", ylabel="learning rate", title="learning rate (end of epoch)")
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _mark_epochs(ax, best: int | None, stopped: int | None, epochs: int | None) -> None:
    if best is not None:
        ax.axvline(best, color="grey", linestyle="--", linewidth=1, label=f"best epoch ({best})")
    if stopped is not None:
        ax.axvline(stopped, color="tab:red", linestyle=":", linewidth=1.5,
                   label=f"early stop (epoch {stopped} of {epochs})")


def plot_learning_curves(history, path: Path, *, epochs: int | None = None) -> Path:
    """Save :func:`learning_curves_figure` as a PNG at ``path`` (atomically)."""
    return save_figure(learning_curves_figure(history, epochs=epochs), path)


def fit(
    config_or_model="default",
    data="digits",
    *,
    run_dir: str | Path | None = "runs",
    name: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    callbacks=(),
    seed: int = 0,
    task: str | None = None,
    verbose="auto",
    diagnose: bool = False,
    strategy=None,
    resume: str | Path | None = None,
    init_from=None,
    reuse_layers=None,
    freeze_epochs: int | None = None,
    unfreeze="all",
    lr_factor: float = 0.1,
    **overrides,
) -> RunResult:
    """Train a preset, config or compiled model on a dataset and record the run.

    Args:
        config_or_model: a preset name, a NetworkConfig, or a compiled Keras model.
        data: a dataset name (``"digits"``, ``"mnist1d"``...), a Dataset, ``(x, y)`` or
            ``(x, y, x_val, y_val)``.
        run_dir: root folder of run directories (a fresh ``<timestamp>-<name>`` folder is
            created in it); ``None`` keeps nothing on disk.
        epochs, batch_size: override the config's training budget.
        callbacks: extra Keras callbacks (checked against the schedule before training).
        seed: seeds Python, NumPy and Keras; recorded in the run.
        task: ``classification``/``binary``/``regression`` for array data (else inferred).
        diagnose: record per-layer gradient/activation diagnostics (``dnnguide.diagnostics``).
        strategy: a ``tf.distribute`` strategy to build and train under.
        resume: a run directory to continue from its last checkpoint (:mod:`dnnguide.checkpoint`):
            an interrupted or crashed run finishes as it would have uninterrupted; a finished
            one continues up to ``epochs`` (the new total). The run's own data, config, seed
            and batch size are used; passing different ones is refused.
        **overrides: config fields (``depth=20``, ``learning_rate=3e-3`` ...).
        init_from: a run directory, ``.keras`` file or model whose lower layers start this
            model (``dnnguide.transfer.reuse_layers``); with a run directory its config is the
            base one and ``**overrides`` may change training settings, not the architecture.
        reuse_layers: how many of its feature layers to reuse (None: all but its head).
        freeze_epochs: epochs training the new head with the reused layers frozen, after which
            they are unfrozen (``unfreeze``: "all" or the top k) and trained at ``lr_factor`` x
            the learning rate (``dnnguide.transfer.fine_tune``); with ``init_from``, None keeps
            them frozen for the whole run and 0 never freezes them.
        **overrides: config fields (``depth=20``, ``learning_rate=3e-3`` ...).
    """
    if resume is not None:
        transfer_args = {k: v for k, v in (("init_from", init_from), ("reuse_layers",
                         reuse_layers), ("freeze_epochs", freeze_epochs)) if v is not None}
        given = dict(config_or_model=config_or_model, data=data, run_dir=run_dir, name=name,
                     batch_size=batch_size, seed=seed, task=task, **transfer_args, **overrides)
        from dnnguide.resume import resume_run

        return resume_run(resume, given, epochs=epochs, callbacks=callbacks, verbose=verbose,
                          diagnose=diagnose, strategy=strategy)
    for key, value in (("epochs", epochs), ("batch_size", batch_size)):
        if value is not None:
            check_range(key, value, 1, integer=True)
    if run_dir:
        check_run_root(run_dir)
    if reuse_layers is not None and init_from is None:
        raise ConfigError("Argument `reuse_layers` needs `init_from` (the model to reuse layers "
                          f"from). Received: reuse_layers={reuse_layers!r}, init_from=None")
    if strategy is not None and (init_from is not None or freeze_epochs):
        raise ConfigError("Transfer runs (init_from, freeze_epochs) build their model outside a "
                          f"tf.distribute scope; train them without a strategy. Received: "
                          f"strategy={type(strategy).__name__}")
    keras.utils.set_random_seed(seed)
    data = as_dataset(data, seed, task)
    validate_dataset(data)
    if init_from is not None:
        from dnnguide.transfer import model_from

        model, config = model_from(init_from, config_or_model, data, reuse=reuse_layers,
                                   freeze=freeze_epochs != 0, epochs=epochs,
                                   batch_size=batch_size, **overrides)
        epochs, batch_size = config.epochs, config.batch_size
    elif isinstance(config_or_model, keras.Model):
        if overrides:
            raise ConfigError(f"Overrides {sorted(overrides)} apply to presets and configs, not "
                              "to an already built model.")
        model, config = config_or_model, getattr(config_or_model, "dnnguide_config", None)
        _check_model_outputs(model, data)
        epochs = epochs if epochs is not None else (config.epochs if config else 10)
        batch_size = batch_size if batch_size is not None else (config.batch_size if config else 32)
    else:
        budget = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size)) if v is not None}
        # The preset is sized and regularized for this data (dnnguide.data_rules); the
        # budget counts as an override (1cycle keeps an epochs value the user gave).
        config = resolve_config(config_or_model, data=data, **overrides, **budget)
        epochs, batch_size = config.epochs, config.batch_size
        if config.schedule.name == "onecycle":
            from dnnguide.schedules import training_steps

            if config.schedule.max_lr is None:
                config = _onecycle_max_lr(config, data, seed)

            # Multi-worker training takes batch_size per replica each step (a global batch).
            multi = strategy is not None and "MultiWorker" in type(strategy).__name__
            per_step = batch_size * (strategy.num_replicas_in_sync if multi else 1)
            steps = training_steps(len(data.x_train), per_step, epochs)
            config = replace(config, schedule=replace(config.schedule, total_steps=steps))
        _check_input_scale(config, data)
        from dnnguide.compress.finalize import check_requirements  # before any training

        check_requirements(config)
        adapt = data.x_train if (config.standardize_inputs and not data.standardized) else None
        scope = strategy.scope() if strategy is not None else _null_scope()
        with scope:
            model = build_model(config, data.input_shape, data.n_outputs, data.task,
                                adapt_data=adapt, target_stats=stats_for(data))
    if run_dir and strategy is not None and not getattr(strategy.extended, "should_checkpoint", True):
        # Multi-worker training: only the chief keeps the run; the others write to a temporary
        # folder, as the TensorFlow multi-worker guide recommends (no two writers per file).
        import tempfile

        run_dir = tempfile.mkdtemp(prefix="dnnguide-worker-")
    _check_callbacks(model, config, data, callbacks)  # refused before the run folder exists
    transfer = None
    if init_from is not None or freeze_epochs:
        from dnnguide.transfer import check_fine_tune

        transfer = {"init_from": None if isinstance(init_from, keras.Model) else init_from,
                    "reuse_layers": reuse_layers, "freeze_epochs": freeze_epochs,
                    "unfreeze": unfreeze, "lr_factor": lr_factor}
        if freeze_epochs:  # refused before anything is written
            check_fine_tune(model, freeze_epochs, epochs, unfreeze, lr_factor)
    train = partial(_train, model, config, data, epochs=epochs, batch_size=batch_size, seed=seed,
                    callbacks=list(callbacks), verbose=verbose, diagnose=diagnose,
                    transfer=transfer)
    if not run_dir:
        return train(None)
    path = new_run_dir(run_dir, name or (config.name if config else model.name))
    with lock_run(path):
        return train(path)


def _monitorable(model, has_val: bool) -> tuple[str, ...] | None:
    """Names a callback can monitor (``loss``, the compiled metrics, their ``val_`` forms).

    ``None`` when the compiled metrics cannot be named from the compile config (several
    outputs, metric objects without a name): the check is then left to Keras.
    """
    if len(model.outputs) != 1:
        return None
    names = ["loss"]
    for metric in (model.get_compile_config() or {}).get("metrics") or []:
        if isinstance(metric, dict):
            metric = (metric.get("config") or {}).get("name")
        if not isinstance(metric, str):
            return None
        names.append(metric)
    return tuple(names + [f"val_{n}" for n in names] if has_val else names)


def _check_callbacks(model, config, data: Dataset, callbacks) -> None:
    """Refuse callbacks that would fail mid-run: unknown monitored metrics, LR conflicts."""
    from dnnguide.schedules import check_callbacks

    has_val = len(data.x_val) > 0
    implied = make_callbacks(config, None, has_val=has_val) + list(callbacks)
    check_callbacks(model.optimizer, implied)
    valid = _monitorable(model, has_val)
    watchers = (keras.callbacks.EarlyStopping, keras.callbacks.ReduceLROnPlateau,
                keras.callbacks.ModelCheckpoint)
    for callback in implied:
        if valid is not None and isinstance(callback, watchers):
            check_choice("monitor", callback.monitor, valid)


def _onecycle_max_lr(config: NetworkConfig, data: Dataset, seed: int) -> NetworkConfig:
    """1cycle's peak LR from the LR finder on this config and data (``minimum`` rule).

    The finder's ``valley`` rule is too cautious for a peak (mnist1d: 1cycle lost to a
    constant LR with it); a tenth of the LR at the loss minimum is Smith's advice.
    """
    from dnnguide.lr_finder import lr_find

    found = lr_find(replace(config, schedule=replace(config.schedule, name="constant")), data,
                    rule="minimum", seed=seed, verbose=0)
    keras.utils.set_random_seed(seed)  # the sweep drew numbers; training starts as without it
    return replace(config, schedule=replace(config.schedule, max_lr=float(found.suggestion)))


def _check_model_outputs(model: keras.Model, data: Dataset) -> None:
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


class _null_scope:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _train(model, config, data: Dataset, path: Path | None, *, epochs, batch_size, seed,
           callbacks, verbose, diagnose, initial_info=None, restore=None,
           transfer=None) -> RunResult:
    """Train and record; the caller holds the run's lock (:func:`dnnguide.runs.lock_run`)."""
    probe = (data.x_train[:256], data.y_train[:256]) if diagnose else None
    all_callbacks = make_callbacks(config, path, has_val=len(data.x_val) > 0,
                                   diagnose_probe=probe) + callbacks
    _check_callbacks(model, config, data, callbacks)
    _audit_before_training(model, config, all_callbacks)
    info = dict(initial_info or {
        "seed": seed, "task": data.task, "n_outputs": data.n_outputs,
        "dataset": data.spec or None, "data_summary": data.summary(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": environment_info(),
    })
    if transfer:  # recorded so the run says where its layers came from
        info["transfer"] = {k: str(v) if isinstance(v, Path) else v for k, v in transfer.items()}
    info.update(epochs=epochs, batch_size=batch_size, **owner())
    checkpoint, initial_epoch = None, 0
    if path is not None:
        if restore is not None:
            initial_epoch = restore[0]["epoch"]
        checkpoint = ckpt.RunCheckpoint(path / "checkpoint", all_callbacks, epochs=epochs,
                                        restore=restore)
        all_callbacks.append(checkpoint)  # last: sees the other callbacks' updated state
        if config is not None:
            atomic_write_json(path / "config.json", config.to_dict())
        atomic_write_json(path / "run.json", {**info, "status": "running"})
    try:
        with ckpt.GracefulInterrupt(checkpoint) if checkpoint else _null_scope():
            return _fit_and_record(model, config, data, path, info, epochs=epochs,
                                   batch_size=batch_size, seed=seed, callbacks=all_callbacks,
                                   verbose=verbose, initial_epoch=initial_epoch,
                                   checkpoint=checkpoint, transfer=transfer)
    except KeyboardInterrupt:
        if path is None:
            raise
        saved = 0 if checkpoint.last_epoch is None else checkpoint.last_epoch + 1
        saved = max(saved, initial_epoch)
        _mark(path, info, "interrupted", epochs_saved=saved)
        raise RunInterrupted(path, saved) from None
    except BaseException as exc:
        if path is not None:
            _mark(path, info, "failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise


def _mark(path: Path, info: dict, status: str, **extra) -> None:
    finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    atomic_write_json(path / "run.json", {**info, "status": status, "finished": finished, **extra})


def _fit_and_record(model, config, data: Dataset, path, info, *, epochs, batch_size, seed,
                    callbacks, verbose, initial_epoch, checkpoint, transfer=None) -> RunResult:
    start = time.perf_counter()
    from dnnguide import distribute

    if distribute.is_multi_worker(model):  # Keras' fit fails there (keras#20585)
        evaluate = partial(distribute.evaluate_multi_worker, model)
        keras_history = distribute.fit_multi_worker(
            model, data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
            epochs=epochs, batch_size=batch_size, callbacks=callbacks, verbose=verbose, seed=seed)
    elif transfer and transfer["freeze_epochs"]:  # head first, then the unfrozen layers
        from dnnguide.transfer import fit_two_phases

        evaluate = model.evaluate
        keras_history = fit_two_phases(
            model, data.x_train, data.y_train, head_epochs=transfer["freeze_epochs"],
            unfreeze_layers=transfer["unfreeze"], lr_factor=transfer["lr_factor"],
            validation_data=(data.x_val, data.y_val), epochs=epochs, batch_size=batch_size,
            callbacks=callbacks, verbose=verbose)
    else:
        evaluate = model.evaluate
        # Epoch k's order depends on (seed, k) only, so a resumed run sees the same batches.
        # (A resume with nothing left to train still needs a non-empty dataset to build.)
        batches, steps = ckpt.epoch_batches(data.x_train, data.y_train, batch_size, seed,
                                            min(initial_epoch, epochs - 1), epochs)
        keras_history = model.fit(
            batches, steps_per_epoch=steps, shuffle=False, validation_data=(data.x_val, data.y_val),
            validation_batch_size=batch_size, epochs=epochs, initial_epoch=initial_epoch,
            callbacks=callbacks, verbose=verbose)
    if checkpoint is not None and checkpoint.stop_requested:
        raise KeyboardInterrupt  # the epoch in progress was finished and checkpointed
    train_time = time.perf_counter() - start
    history = _history_frame(keras_history, path)
    metrics = _final_metrics(model, data, history, batch_size, evaluate=evaluate)
    model = _calibrate_mc(model, data, metrics, path)  # MC dropout: fitted on the validation split
    metrics["train_time_s"] = round(train_time, 3)
    metrics["weights_epoch"] = _weights_epoch(callbacks, history)
    diverged = not np.isfinite(metrics.get("test_loss", 0.0)) or (
        "loss" in history and not np.isfinite(history["loss"].iloc[-1]))
    if path is not None and config is not None:
        from dnnguide.compress.finalize import finalize_run  # {} unless pruning/folding/8-bit

        metrics.update(finalize_run(model, config, data, path))
    if path is not None:
        atomic_write_text(path / "history.csv", history.to_csv(index=False))
        atomic_write_json(path / "metrics.json", metrics)
        atomic_save_model(model, path / "model.keras")
        plot_learning_curves(history.drop(columns=["epoch"], errors="ignore"),
                             path / "plots" / "learning_curves.png", epochs=epochs)
        if config is not None and config.schedule.name == "onecycle":  # what the run followed
            from dnnguide.schedules import plot_schedule

            plot_schedule(config.schedule, config.optimizer.learning_rate,
                          config.schedule.total_steps, path / "plots" / "onecycle_schedule.png")
        extra = {"error": "training diverged (non-finite loss)"} if diverged else {}
        _mark(path, info, "diverged" if diverged else "complete", **extra)
    return RunResult(model, history, metrics, path, config, data)


def _audit_before_training(model, config, callbacks) -> None:
    """Audit the model and callbacks (static, milliseconds): a dnnguide model with an error
    finding is a dnnguide bug (AuditError); a user's model gets a warning with the findings."""
    from dnnguide.auditing import AuditWarning, audit

    report = audit(model, callbacks=callbacks, config=config)
    if config is not None:
        report.check()
    elif not report.ok:
        warnings.warn(f"The model breaks guidelines that make training fail or silently "
                      f"wrong:\n{report}", AuditWarning, stacklevel=4)


def _weights_epoch(callbacks, history) -> int:
    """The (1-based) epoch whose weights the model holds: early stopping's best, or the last."""
    for callback in callbacks:
        if (isinstance(callback, keras.callbacks.EarlyStopping) and callback.restore_best_weights
                and callback.best_weights is not None):
            return int(callback.best_epoch) + 1
    return int(history["epoch"].iloc[-1]) + 1 if "epoch" in history and len(history) else 0


def _history_frame(keras_history, path: Path | None):
    import pandas as pd

    log = path / "training_log.csv" if path is not None else None
    if log is not None and log.exists():
        # Includes the epochs from before a resume; epochs trained again after the last
        # checkpoint appear twice, and the later row is the one the model went on from.
        frame = pd.read_csv(log).drop_duplicates("epoch", keep="last")
        return frame.reset_index(drop=True)
    frame = pd.DataFrame(keras_history.history)
    frame.insert(0, "epoch", range(len(frame)))
    return frame


def _final_metrics(model, data: Dataset, history, batch_size, evaluate=None) -> dict[str, float]:
    test = (evaluate or model.evaluate)(data.x_test, data.y_test,
                                        batch_size=max(batch_size, 256), verbose=0,
                                        return_dict=True)
    metrics = {f"test_{k}": float(v) for k, v in test.items()}
    metrics["epochs_trained"] = int(len(history))
    finite_val = history["val_loss"].dropna() if "val_loss" in history else ()
    if len(finite_val):  # a diverged run may have no finite validation loss at all
        best = int(finite_val.idxmin())
        metrics["best_epoch"] = best + 1
        for column in history.columns:
            if column.startswith("val_"):
                metrics[f"best_{column}"] = float(history[column].iloc[best])
    if not np.isfinite(metrics.get("test_loss", 0.0)):
        warnings.warn("Training diverged (non-finite test loss): lower the learning rate or "
                      "clip gradients (clipnorm=1.0).", RuntimeWarning, stacklevel=3)
    return metrics


def _calibrate_mc(model, data: Dataset, metrics: dict, path: Path | None, n_samples: int = 50):
    """For an MC dropout model: the model calibrated on the validation split, and its metrics.

    ``evaluate`` (``test_accuracy``, ``test_loss``) scores the deterministic prediction; this
    adds, side by side, the plain (``test_nll``...), MC mean of ``n_samples`` (``test_mc_*``,
    Gal & Ghahramani 2016), calibrated (``test_cal_*``) and calibrated MC (``test_cal_mc_*``)
    metrics: temperature scaling for classes, the noise variance for regression (RMSE,
    Gaussian NLL, interval coverage). The temperatures or noise variances are fitted on the
    validation split only and saved with the returned model. With a run directory, the
    reliability diagram, rejection curve and shift check go to ``plots/``.
    """
    from dnnguide.layers import has_dropout

    if not has_dropout(model, kinds=("mc",)) or len(data.x_val) == 0:
        return model
    from dnnguide.uncertainty import calibrate, calibration_layer, mc_predict
    from dnnguide.uncertainty_report import prediction_metrics, save_run_plots

    calibrated = calibrate(model, data.x_val, data.y_val, n_samples=n_samples, seed=0,
                           task=data.task)
    layer = calibration_layer(calibrated)
    x, y = data.x_test, data.y_test
    predictions = {
        "": (model.predict(x, batch_size=256, verbose=0), None),
        "mc_": mc_predict(model, x, n_samples, task=data.task, seed=0, verbose=0),
        "cal_": (calibrated.predict(x, batch_size=256, verbose=0), layer.noise_variance),
        "cal_mc_": mc_predict(calibrated, x, n_samples, task=data.task, seed=0, verbose=0),
    }
    for prefix, prediction in predictions.items():
        scores = prediction_metrics(y, prediction, data.task)
        metrics.update({f"test_{prefix}{k}": v for k, v in scores.items()
                        if f"test_{prefix}{k}" not in metrics})
    if data.task == "regression":
        metrics["noise_std"] = float(np.sqrt(np.mean(layer.noise_variance)))
        metrics["mc_noise_std"] = float(np.sqrt(np.mean(layer.mc_noise_variance)))
    else:
        metrics["temperature"] = layer.temperature
        metrics["mc_temperature"] = layer.mc_temperature
    if path is not None:
        save_run_plots(y, predictions, data.task, path / "plots", model=calibrated,
                       x_shift=x, n_samples=n_samples)
    return calibrated
