"""Train a configuration with the callbacks it implies, and keep every result in a run directory.

Example:
    >>> import dnnguide
    >>> result = dnnguide.fit("default", "digits", epochs=5, run_dir="runs")  # doctest: +SKIP
    >>> result.metrics["test_accuracy"]  # doctest: +SKIP
    0.96
"""

from __future__ import annotations

import math
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

from dnnguide.config import ConfigError, NetworkConfig, nested_overrides
from dnnguide.data import Dataset, DataError, from_arrays, load_dataset, validate_dataset
from dnnguide.presets import build_model, resolve_config
from dnnguide.runs import (
    RunExistsError, atomic_save_model, atomic_write_json, atomic_write_text, new_run_dir, open_run,
    pyplot, save_figure,
)


class InputScaleWarning(UserWarning):
    """Inputs far from standardized where the model relies on it (SELU)."""


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


def as_dataset(data, seed: int, task: str | None) -> Dataset:
    """A Dataset from a name, a Dataset, ``(x, y)`` or ``(x, y, x_val, y_val)`` (what fit accepts)."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, Path)):
        return load_dataset(str(data), seed=seed)
    if isinstance(data, (tuple, list)) and len(data) in (2, 4):
        x, y, *val = data
        x_val, y_val = val if val else (None, None)
        return from_arrays(x, y, x_val=x_val, y_val=y_val, task=task, seed=seed)
    raise TypeError("Argument `data` must be a dataset name, a dnnguide Dataset, (x, y) or "
                    f"(x, y, x_val, y_val). Received: data of type {type(data).__name__}")


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


#: Seconds between resumable checkpoints. Saving weights and optimizer state after every epoch
#: cost a quarter of a short fit's time; an interrupted run loses at most this much work.
CHECKPOINT_EVERY_S = 30.0


class PeriodicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` that checkpoints after the first epoch, then once ``min_interval`` s passed.

    Keeps the previous checkpoint too (``double_checkpoint``), so a crash while writing one
    leaves the other to resume from. ``min_interval=0`` checkpoints after every epoch.
    """

    def __init__(self, backup_dir, min_interval: float = CHECKPOINT_EVERY_S, **kwargs):
        super().__init__(backup_dir, double_checkpoint=True, **kwargs)
        self.min_interval = float(min_interval)
        self._last_save = -math.inf

    def _save_model(self):
        super()._save_model()
        self._last_save = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        self._last_batch_seen = 0
        if time.monotonic() - self._last_save >= self.min_interval:
            self._save_model()


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
    if run_dir is not None:
        callbacks += [
            PeriodicBackupAndRestore(str(run_dir / "backup"), min_interval=CHECKPOINT_EVERY_S),
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


def plot_learning_curves(history, path: Path) -> Path:
    """Loss and the first metric, train vs validation, per epoch (PNG)."""
    plt = pyplot()
    metrics = [c for c in history.columns if c not in ("epoch", "learning_rate")
               and not c.startswith("val_")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        ax.plot(history.index + 1, history[metric], label="train")
        if f"val_{metric}" in history:
            ax.plot(history.index + 1, history[f"val_{metric}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


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
        resume: an interrupted run directory to continue from its last checkpoint.
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
        return _resume(resume, callbacks=callbacks, verbose=verbose, diagnose=diagnose,
                       strategy=strategy)
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
        epochs = epochs or (config.epochs if config else 10)
        batch_size = batch_size or (config.batch_size if config else 32)
    else:
        config = resolve_config(config_or_model, **overrides)
        changes = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size)) if v}
        config = nested_overrides(config, **changes)
        epochs, batch_size = config.epochs, config.batch_size
        if config.schedule.name == "onecycle":
            from dnnguide.schedules import training_steps

            # Multi-worker training takes batch_size per replica each step (a global batch).
            multi = strategy is not None and "MultiWorker" in type(strategy).__name__
            per_step = batch_size * (strategy.num_replicas_in_sync if multi else 1)
            steps = training_steps(len(data.x_train), per_step, epochs)
            config = replace(config, schedule=replace(config.schedule, total_steps=steps))
        _check_input_scale(config, data)
        _warn_export_fields(config)
        adapt = data.x_train if (config.standardize_inputs and not data.standardized) else None
        scope = strategy.scope() if strategy is not None else _null_scope()
        with scope:
            model = build_model(config, data.input_shape, data.n_outputs, data.task,
                                adapt_data=adapt)
    if run_dir and strategy is not None and not getattr(strategy.extended, "should_checkpoint", True):
        # Multi-worker training: only the chief keeps the run; the others write to a temporary
        # folder, as the TensorFlow multi-worker guide recommends (no two writers per file).
        import tempfile

        run_dir = tempfile.mkdtemp(prefix="dnnguide-worker-")
    transfer = None
    if init_from is not None or freeze_epochs:
        from dnnguide.transfer import check_fine_tune

        transfer = {"init_from": None if isinstance(init_from, keras.Model) else init_from,
                    "reuse_layers": reuse_layers, "freeze_epochs": freeze_epochs,
                    "unfreeze": unfreeze, "lr_factor": lr_factor}
        if freeze_epochs:  # refused before anything is written
            check_fine_tune(model, freeze_epochs, epochs, unfreeze, lr_factor)
    path = new_run_dir(run_dir, name or (config.name if config else model.name)) if run_dir else None
    return _train(model, config, data, path, epochs=epochs, batch_size=batch_size, seed=seed,
                  callbacks=list(callbacks), verbose=verbose, diagnose=diagnose,
                  transfer=transfer)


class ExportOnlyWarning(UserWarning):
    """Config fields that training records but only the compression step applies."""


def _warn_export_fields(config: NetworkConfig) -> None:
    pending = []
    if config.pruning_sparsity > 0:
        pending.append(f"pruning_sparsity={config.pruning_sparsity} (magnitude pruning)")
    if config.fold_batch_norm:
        pending.append("fold_batch_norm=True")
    if config.precision != "float32":
        pending.append(f"precision={config.precision!r}")
    if pending:
        warnings.warn(
            f"{', '.join(pending)}: recorded in the run's config, but applied at export by the "
            "compression step (dnnguide.compress, TFMOT/TFLite), not by fit(); this run trains "
            "the float32 network with its L1/batch-norm settings.", ExportOnlyWarning, stacklevel=3)


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
           callbacks, verbose, diagnose, initial_info=None, transfer=None) -> RunResult:
    from dnnguide.schedules import check_callbacks

    probe = (data.x_train[:256], data.y_train[:256]) if diagnose else None
    all_callbacks = make_callbacks(config, path, has_val=len(data.x_val) > 0,
                                   diagnose_probe=probe) + callbacks
    check_callbacks(model.optimizer, all_callbacks)  # refuse before any training starts
    info = initial_info or {
        "seed": seed, "task": data.task, "n_outputs": data.n_outputs,
        "dataset": data.spec or None, "data_summary": data.summary(),
        "epochs": epochs, "batch_size": batch_size,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": environment_info(),
    }
    if transfer:
        info["transfer"] = {k: str(v) if isinstance(v, Path) else v for k, v in transfer.items()}
    if path is not None:
        if config is not None:
            atomic_write_json(path / "config.json", config.to_dict())
        atomic_write_json(path / "run.json", {**info, "status": "running"})
    start = time.perf_counter()
    from dnnguide import distribute

    fit_fn, evaluate = model.fit, model.evaluate
    if distribute.is_multi_worker(model):  # Keras' fit fails there (keras#20585)
        fit_fn = partial(distribute.fit_multi_worker, model, seed=seed)
        evaluate = partial(distribute.evaluate_multi_worker, model)
    if transfer and transfer["freeze_epochs"]:  # head first, then the unfrozen layers
        from dnnguide.transfer import fit_two_phases

        fit_fn = partial(fit_two_phases, model, head_epochs=transfer["freeze_epochs"],
                         unfreeze_layers=transfer["unfreeze"], lr_factor=transfer["lr_factor"])
    keras_history = fit_fn(
        data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
        epochs=epochs, batch_size=batch_size, callbacks=all_callbacks, verbose=verbose)
    train_time = time.perf_counter() - start
    history = _history_frame(keras_history, path)
    metrics = _final_metrics(model, data, history, batch_size, evaluate=evaluate)
    metrics["train_time_s"] = round(train_time, 3)
    if path is not None:
        atomic_write_text(path / "history.csv", history.to_csv(index=False))
        atomic_write_json(path / "metrics.json", metrics)
        atomic_save_model(model, path / "model.keras")
        plot_learning_curves(history.drop(columns=["epoch"], errors="ignore"),
                             path / "plots" / "learning_curves.png")
        finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
        atomic_write_json(path / "run.json", {**info, "status": "complete", "finished": finished})
    return RunResult(model, history, metrics, path, config, data)


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
    metrics.update(_mc_metrics(model, data))
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


def _mc_metrics(model, data: Dataset, n_samples: int = 50) -> dict[str, float]:
    """For an MC dropout model, test metrics of the averaged prediction (what users will use).

    ``evaluate`` scores one random dropout mask; the MC mean over ``n_samples`` masks is the
    prediction the risk-sensitive guideline is about (Gal & Ghahramani 2016).
    """
    from dnnguide.layers import has_dropout

    if data.task == "regression" or not has_dropout(model, kinds=("mc",)):
        return {}
    from dnnguide.uncertainty import classification_metrics, mc_predict

    prediction = mc_predict(model, data.x_test, n_samples=n_samples, seed=0, verbose=0)
    scores = classification_metrics(data.y_test, prediction.mean)
    return {f"test_mc_{name}": float(value) for name, value in scores.items()}


def _resume(run_path, *, callbacks, verbose, diagnose, strategy) -> RunResult:
    if strategy is not None and not getattr(strategy.extended, "should_checkpoint", True):
        raise ConfigError("Resuming under a multi-worker strategy would have every worker write "
                          f"into {run_path}. Resume on one machine (no strategy), or start a new "
                          "multi-worker run.")
    run = open_run(run_path)
    if run.complete:
        raise RunExistsError(f"Run {run.path} is already complete; nothing to resume. Start a "
                             "new run instead (runs are never overwritten).")
    info, config = run.info, run.config
    if info.get("transfer"):  # its model came from another model's layers, not from its config
        raise ConfigError(f"Run {run.path} reused layers of another model (init_from/"
                          "freeze_epochs) and cannot be resumed from its config; start it again.")
    if not info.get("dataset"):
        raise DataError(f"Run {run.path} trained on in-memory arrays; pass the same data to "
                        "fit() with a new run instead.")
    seed = info["seed"]
    keras.utils.set_random_seed(seed)
    data = run.dataset()
    adapt = data.x_train if (config.standardize_inputs and not data.standardized) else None
    scope = strategy.scope() if strategy is not None else _null_scope()
    with scope:
        model = build_model(config, data.input_shape, data.n_outputs, data.task, adapt_data=adapt)
    # BackupAndRestore in run/backup restores weights, optimizer state and the epoch counter.
    return _train(model, config, data, run.path, epochs=info["epochs"],
                  batch_size=info["batch_size"], seed=seed, callbacks=list(callbacks),
                  verbose=verbose, diagnose=diagnose, initial_info=info)
