"""Train a configuration with the callbacks it implies, and keep every result in a run directory.

Example:
    >>> import dnnguide
    >>> result = dnnguide.fit("default", "digits", epochs=5, run_dir="runs")  # doctest: +SKIP
    >>> result.metrics["test_accuracy"]  # doctest: +SKIP
    0.96
"""

from __future__ import annotations

import contextlib
import platform
import shutil
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dnnguide import checkpoint as ckpt
from dnnguide import data_rules
from dnnguide.config import ConfigError, NetworkConfig, check_range
from dnnguide.data import Dataset, as_dataset, validate_dataset
from dnnguide.fit_results import (
    calibrate_run, final_metrics, history_frame, mark_status, weights_epoch,
)
from dnnguide.fit_setup import (  # noqa: F401 - InputScaleWarning, make_callbacks: public here
    InputScaleWarning, audit_before_training, check_callbacks_before_sweep,
    check_callbacks_for, check_input_scale,
    check_model_outputs, decay_over_the_cycle, finder_learning_rate, make_callbacks,
    onecycle_max_lr,
)
from dnnguide.learning_curves import learning_curves_figure, plot_learning_curves  # noqa: F401
from dnnguide.presets import build_for_data, resolve_config
from dnnguide.runs import (
    atomic_save_model, atomic_write_json, atomic_write_text, check_run_root, lock_run, new_run_dir,
    owner,
)


class RunInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C; the run is marked ``interrupted`` and can be resumed."""

    def __init__(self, run_dir: Path, epochs_saved: int):
        self.run_dir, self.epochs_saved = Path(run_dir), epochs_saved
        super().__init__(f"interrupted after {epochs_saved} checkpointed epochs; resume with: "
                         f"dnnguide train --resume {self.run_dir}")


@contextlib.contextmanager
def recording_failures(path: Path | None, info: dict, epochs_saved):
    """Mark the run at ``path`` if the body raises: ``interrupted`` on Ctrl-C (re-raised as
    :class:`RunInterrupted` with ``epochs_saved()``, the epochs a resume keeps), else ``failed``
    with the error. Without a run directory exceptions pass through untouched."""
    try:
        yield
    except KeyboardInterrupt:
        if path is None:
            raise
        saved = epochs_saved()
        mark_status(path, info, "interrupted", epochs_saved=saved)
        raise RunInterrupted(path, saved) from None
    except BaseException as exc:
        if path is not None:
            mark_status(path, info, "failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise


def run_info(data: Dataset, seed: int) -> dict[str, Any]:
    """What ``run.json`` records of a new run before training: seed, data, start, versions."""
    return {
        "seed": seed, "task": data.task, "n_outputs": data.n_outputs,
        "dataset": data.spec or None, "data_summary": data.summary(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": environment_info(),
    }


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


#: Kept for compatibility: the checkpoint policy lives in :mod:`dnnguide.checkpoint`.
CHECKPOINT_EVERY_S = ckpt.CHECKPOINT_EVERY_S


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
    data = as_dataset(data, seed, task)
    validate_dataset(data)
    # Seeded after loading: generating a dataset by name (mnist1d) draws from the global
    # generators, which made fit(p, "mnist1d", seed=0) and fit(p, load_dataset("mnist1d",
    # seed=0), seed=0) start from different weights.
    keras.utils.set_random_seed(seed)
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
        check_model_outputs(model, data)
        epochs = epochs if epochs is not None else (config.epochs if config else 10)
        batch_size = batch_size if batch_size is not None else (config.batch_size if config else 32)
    else:
        budget = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size)) if v is not None}
        # The preset is sized and regularized for this data (dnnguide.data_rules); the
        # budget counts as an override (1cycle keeps an epochs value the user gave).
        config = resolve_config(config_or_model, data=data, **overrides, **budget)
        epochs, batch_size = config.epochs, config.batch_size
        if config.cross_fit > 1:  # one net a fold, each resolved for its rows (dnnguide.cross_fit)
            from dnnguide.cross_fit import fit_cross_fit

            return fit_cross_fit(config_or_model, config, data, {**overrides, **budget},
                                 run_dir=run_dir, name=name, seed=seed, callbacks=callbacks,
                                 verbose=verbose, diagnose=diagnose, strategy=strategy)
        if config.schedule.name == "onecycle":
            from dnnguide.schedules import training_steps

            # Multi-worker training takes batch_size per replica each step (a global batch).
            multi = strategy is not None and "MultiWorker" in type(strategy).__name__
            per_step = batch_size * (strategy.num_replicas_in_sync if multi else 1)
            steps = training_steps(len(data.x_train), per_step, epochs)
            config = replace(config, schedule=replace(config.schedule, total_steps=steps))
        check_input_scale(config, data)
        from dnnguide.compress.finalize import check_requirements  # before any training

        check_requirements(config)
        onecycle_sweep = config.schedule.name == "onecycle" and config.schedule.max_lr is None
        lr_sweep = data_rules.finder_applies(config_or_model, config, overrides)
        if callbacks and (onecycle_sweep or lr_sweep):  # a sweep trains: refuse them first
            check_callbacks_before_sweep(config, data, callbacks, seed)
        decay_given = bool(data_rules.WEIGHT_DECAY_KEYS & set(overrides))  # used as is then
        if onecycle_sweep:
            config = onecycle_max_lr(config, data, seed)
        elif lr_sweep:
            config = finder_learning_rate(config, data, seed, move_decay=not decay_given)
        if isinstance(config_or_model, str) and not decay_given:
            config = decay_over_the_cycle(config)  # the rule's decay, sized at the constant LR
        if config.ensemble > 1:  # members trained one by one, pooled (dnnguide.ensemble)
            from dnnguide.ensemble import fit_ensemble

            return fit_ensemble(config, data, run_dir=run_dir, name=name, seed=seed,
                                callbacks=callbacks, verbose=verbose, diagnose=diagnose,
                                strategy=strategy)
        model = build_for_data(config, data, strategy=strategy)
    if config is not None and config.nets > 1:  # a built model is one net, trained as one
        raise ConfigError(f"ensemble={config.ensemble} and cross_fit={config.cross_fit} train "
                          "several nets from a preset or config; a built model or reused layers "
                          "(init_from) train as one net. Pass the preset or NetworkConfig, or use "
                          "ensemble=1 and cross_fit=1.")
    scratch = None
    if run_dir and strategy is not None and not getattr(strategy.extended, "should_checkpoint", True):
        # Multi-worker training: only the chief keeps the run; the others write to a temporary
        # folder (every worker takes part in saving, but no two may write one file) and delete
        # it once trained, as the TensorFlow multi-worker guide does.
        import tempfile

        run_dir = scratch = tempfile.mkdtemp(prefix="dnnguide-worker-")
    check_callbacks_for(model, config, data, callbacks)  # refused before the run folder exists
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
    try:
        with lock_run(path):
            result = train(path)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if scratch is not None:
        result.run_dir = None  # a non-chief worker keeps nothing on disk
    return result


def _train(model, config, data: Dataset, path: Path | None, *, epochs, batch_size, seed,
           callbacks, verbose, diagnose, initial_info=None, restore=None,
           transfer=None) -> RunResult:
    """Train and record; the caller holds the run's lock (:func:`dnnguide.runs.lock_run`)."""
    probe = (data.x_train[:256], data.y_train[:256]) if diagnose else None
    all_callbacks = make_callbacks(config, path, has_val=len(data.x_val) > 0,
                                   diagnose_probe=probe,
                                   validation=(data.x_val, data.y_val)) + callbacks
    check_callbacks_for(model, config, data, callbacks)
    audit_before_training(model, config, all_callbacks)
    info = dict(initial_info or run_info(data, seed))
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
    def epochs_saved() -> int:
        return max(0 if checkpoint.last_epoch is None else checkpoint.last_epoch + 1,
                   initial_epoch)

    with recording_failures(path, info, epochs_saved):
        with ckpt.GracefulInterrupt(checkpoint) if checkpoint else contextlib.nullcontext():
            return _fit_and_record(model, config, data, path, info, epochs=epochs,
                                   batch_size=batch_size, seed=seed, callbacks=all_callbacks,
                                   verbose=verbose, initial_epoch=initial_epoch,
                                   checkpoint=checkpoint, transfer=transfer)


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
    history = history_frame(keras_history, path)
    stop = config.early_stopping if config is not None else None
    monitor = stop.monitor if stop is not None else "val_loss"
    start = stop.start_from_epoch if stop is not None and stop.enabled else 0
    metrics = final_metrics(model, data, history, batch_size, evaluate=evaluate,
                            monitor=monitor, start=start)
    metrics["train_time_s"] = round(train_time, 3)
    metrics["weights_epoch"] = weights_epoch(callbacks, history)
    diverged = not np.isfinite(metrics.get("test_loss", 0.0)) or (
        "loss" in history and not np.isfinite(history["loss"].iloc[-1]))
    if not diverged:  # fitted on the validation split only
        model = calibrate_run(model, config, data, metrics, path)
    if path is not None and config is not None:
        from dnnguide.compress.finalize import finalize_run  # {} unless pruning/folding/8-bit

        metrics.update(finalize_run(model, config, data, path))  # calibrated artefacts too
    if path is not None:
        atomic_write_text(path / "history.csv", history.to_csv(index=False))
        atomic_write_json(path / "metrics.json", metrics)
        atomic_save_model(model, path / "model.keras")
        plot_learning_curves(history.drop(columns=["epoch"], errors="ignore"),
                             path / "plots" / "learning_curves.png", epochs=epochs,
                             best_epoch=metrics.get("best_epoch"))
        if config is not None and config.schedule.name == "onecycle":  # what the run followed
            from dnnguide.schedules import plot_schedule

            plot_schedule(config.schedule, config.optimizer.learning_rate,
                          config.schedule.total_steps, path / "plots" / "onecycle_schedule.png")
        extra = {"error": "training diverged (non-finite loss)"} if diverged else {}
        mark_status(path, info, "diverged" if diverged else "complete", **extra)
    return RunResult(model, history, metrics, path, config, data)
