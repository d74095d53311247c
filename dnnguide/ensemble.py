"""Deep ensembles: several nets trained from different seeds on one split, pooled into one model.

``fit(preset, data, ensemble=5)`` (the risk-sensitive preset's choice) trains every member as
a run of its own under ``<run>/members/``: the same split and configuration, its own seed
(``seed + 1000 k``), so its own initialization, dropout masks and batch order. The members'
predictions are pooled by :class:`dnnguide.layers.EnsemblePool` (the normalized geometric mean
of their probabilities, or the mean of a regression's outputs) inside one Keras model, which is
then calibrated on the validation split like any run's model and saved as the run's
``model.keras``: ``predict``, ``mc_predict``, ``dnnguide predict`` and ``dnnguide uncertainty``
use it as they use one net. Under MC sampling each sample of a row is one member's (with its
own dropout mask; every member gives each row its share of the samples): draws from the
ensemble's predictive mixture, whose spread holds the members' disagreement. The learning rate
the data rules find is found once and shared.

An interrupted ensemble resumes member by member (``fit(resume=run)``): finished members are
loaded, an interrupted one continues from its checkpoint, missing ones are trained, so the
resumed ensemble is the one an uninterrupted run gives.

Example:
    >>> result = dnnguide.fit("default", "digits", ensemble=3)  # doctest: +SKIP
    >>> [p.name[-8:] for p in sorted((result.run_dir / "members").iterdir())]  # doctest: +SKIP
    ['member_0', 'member_1', 'member_2']

References:
    Lakshminarayanan, Pritzel & Blundell (2017), "Simple and Scalable Predictive Uncertainty
    Estimation using Deep Ensembles", NeurIPS.
    Ovadia et al. (2019), "Can You Trust Your Model's Uncertainty? Evaluating Predictive
    Uncertainty Under Dataset Shift", NeurIPS.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np

from dnnguide.config import ConfigError, NetworkConfig
from dnnguide.data import DataError, Dataset
from dnnguide.fit_results import add_r2, calibrate_run, mark_status
from dnnguide.layers import EnsemblePool, EnsembleRouter, EnsembleSelect
from dnnguide.presets import build_for_data
from dnnguide.runs import (
    RunExistsError, atomic_save_model, atomic_write_json, atomic_write_text, lock_run,
    member_dirs, new_run_dir, open_run, owner,
)
from dnnguide.training import RunResult, _train, recording_failures, run_info

#: Member ``k`` trains with seed ``seed + MEMBER_SEED_STRIDE * k``: far apart, so the members of
#: runs with neighbouring seeds (0, 1, 2...) never share one.
MEMBER_SEED_STRIDE = 1000


def member_seed(seed: int, k: int) -> int:
    """The seed member ``k`` of an ensemble run with ``seed`` trains with."""
    return seed + MEMBER_SEED_STRIDE * k


def member_config(config: NetworkConfig) -> NetworkConfig:
    """What each member trains: one net, uncalibrated (the pooled model is calibrated)."""
    return replace(config, ensemble=1, calibration="none", name=f"{config.name}_member")


def pool_models(members, task: str, *, name: str = "ensemble") -> keras.Model:
    """One model whose output pools the ``members``' outputs (:class:`EnsemblePool`).

    The members enter as uncompiled copies named ``member_0``, ``member_1``...; the models
    given are not changed. An :class:`EnsembleRouter` draws each row's member under MC
    sampling and an :class:`EnsembleSelect` before each member passes it only those rows;
    outside MC sampling every member sees every row.
    """
    if len(members) < 1:
        raise ValueError("Argument `members` must hold at least one model. Received: []")
    shape = tuple(members[0].inputs[0].shape[1:])
    for member in members[1:]:
        if tuple(member.inputs[0].shape[1:]) != shape:
            raise ValueError(f"Every member must take inputs of one shape. Received: {shape} "
                             f"and {tuple(member.inputs[0].shape[1:])}")
    inputs = keras.Input(shape=shape, name="features")
    pick = EnsembleRouter(len(members), name="ensemble_router")(inputs)
    outputs = []
    for k, member in enumerate(members):
        copy = _uncompiled_copy(member)
        copy.name = f"member_{k}"
        outputs.append(copy(EnsembleSelect(k, name=f"select_{k}")([inputs, pick])))
    pooled = EnsemblePool(task, routed=True, name="ensemble_pool")([*outputs, pick])
    return keras.Model(inputs, pooled, name=name)


def _uncompiled_copy(model: keras.Model) -> keras.Model:
    """``model``'s graph and state without its optimizer (a nested compiled model would save
    its optimizer, which the pooled model never trains).

    State is copied layer by layer as Keras saves and loads it, not with ``set_weights``: an
    adapted ``Normalization`` layer recomputes its mean and variance from its variables only on
    loading (``finalize_state``); after ``set_weights`` it standardized with the unadapted ones.
    """
    copy = keras.models.clone_model(model)
    for source, target in zip(model.layers, copy.layers, strict=True):
        store: dict = {}
        source.save_own_variables(store)
        target.load_own_variables(store)
    return copy


def fit_ensemble(config: NetworkConfig, data: Dataset, *, run_dir, name, seed, callbacks,
                 verbose, diagnose, strategy) -> RunResult:
    """Train ``config.ensemble`` members and record the pooled model; what ``fit`` does for an
    ensemble config (its arguments as there, the config resolved for the data)."""
    if strategy is not None and "MultiWorker" in type(strategy).__name__:
        raise ConfigError(f"An ensemble of {config.ensemble} trains its members one after "
                          "another on this machine; a multi-worker strategy would have every "
                          "worker write each member. Train it without a multi-worker strategy, "
                          "or train members as separate runs.")
    if callbacks:  # refused before the run folder exists, as fit does
        from dnnguide.fit_setup import check_callbacks_for

        check_callbacks_for(build_for_data(member_config(config), data, strategy=strategy),
                            config, data,
                            callbacks)
    common = dict(seed=seed, callbacks=list(callbacks), verbose=verbose, diagnose=diagnose,
                  strategy=strategy)
    if not run_dir:
        return _train_and_pool(config, data, None, None, **common)
    path = new_run_dir(run_dir, name or config.name)
    info = {**run_info(data, seed), "epochs": config.epochs, "batch_size": config.batch_size,
            "ensemble": config.ensemble, **owner()}
    with lock_run(path):
        atomic_write_json(path / "config.json", config.to_dict())
        atomic_write_json(path / "run.json", {**info, "status": "running"})
        return _train_and_pool(config, data, path, info, **common)


def resume_ensemble(run, given: dict, *, epochs, callbacks, verbose, diagnose,
                    strategy) -> RunResult:
    """Finish an interrupted ensemble run; what ``fit(resume=...)`` does for one."""
    data, info = reopen_pooled_run(run, given, epochs, f"an ensemble of {run.config.ensemble}")
    with lock_run(run.path):
        atomic_write_json(run.path / "run.json", {**info, "status": "running"})
        return _train_and_pool(run.config, data, run.path, info, seed=info["seed"],
                               callbacks=list(callbacks), verbose=verbose, diagnose=diagnose,
                               strategy=strategy)


def reopen_pooled_run(run, given: dict, epochs, what: str) -> tuple[Dataset, dict]:
    """What resuming a run of pooled members (``what``: "an ensemble of 5") checks and reloads:
    the run's own data, config and seed (anything else given is refused), its members' own
    budget, an unfinished run, a dataset loadable by name. Returns the data and the run's
    info marked resumed, to be written as ``running`` under the run's lock."""
    from dnnguide.resume import _refuse_changes

    info, config = run.info, run.config
    _refuse_changes(run, info, config, given)
    if epochs is not None:
        raise ConfigError(f"Run {run.path} is {what}; it resumes with its members' own budget "
                          f"({info.get('epochs')} epochs). Received: epochs={epochs}. Resume "
                          "without epochs, or start a new run.")
    if run.status == "complete":
        raise RunExistsError(f"Run {run.path} is already complete; nothing to resume. Start a "
                             "new run (runs are never overwritten).")
    if not info.get("dataset"):
        raise DataError(f"Run {run.path} trained on in-memory arrays; pass the same data to "
                        "fit() with a new run instead.")
    info = {**info, "resumed": [*info.get("resumed", []),
                                datetime.now(timezone.utc).isoformat(timespec="seconds")]}
    for stale in ("finished", "error", "epochs_saved"):
        info.pop(stale, None)
    return run.dataset(), info


def _train_and_pool(config, data, path: Path | None, info, *, seed, callbacks, verbose,
                    diagnose, strategy) -> RunResult:
    start = time.perf_counter()
    with recording_failures(path, info, lambda: _epochs_saved(path)):
        members = [_member(config, data, path, k, seed=seed, callbacks=callbacks,
                           verbose=verbose, diagnose=diagnose, strategy=strategy)
                   for k in range(config.ensemble)]
    return _record(config, data, path, info, members, time.perf_counter() - start)


def _epochs_saved(path: Path) -> int:
    """Epochs kept over all members: finished members' and the checkpointed ones of the rest."""
    total = 0
    for folder in member_dirs(path):
        member = open_run(folder)
        done = member.status in ("complete", "diverged")
        total += int(member.metrics.get("epochs_trained", 0) if done
                     else member.info.get("epochs_saved", 0))
    return total


def _member(config, data, path, k, *, seed, callbacks, verbose, diagnose, strategy) -> RunResult:
    """Member ``k``: loaded if finished, resumed if interrupted, else trained."""
    one = member_config(config)
    found = [p for p in member_dirs(path) if p.name.endswith(f"-member_{k}")] if path else []
    if found:
        member = open_run(found[-1])
        if member.status in ("complete", "diverged"):
            return RunResult(member.model(), member.history(), member.metrics, member.path,
                             member.config, data)
        from dnnguide.resume import resume_run

        return resume_run(member.path, {}, epochs=None, callbacks=callbacks, verbose=verbose,
                          diagnose=diagnose, strategy=strategy)
    keras.utils.set_random_seed(member_seed(seed, k))  # as fit seeds a run, before building
    model = build_for_data(one, data, strategy=strategy)
    train = dict(epochs=one.epochs, batch_size=one.batch_size, seed=member_seed(seed, k),
                 callbacks=list(callbacks), verbose=verbose, diagnose=diagnose)
    if path is None:
        return _train(model, one, data, None, **train)
    member_path = new_run_dir(path / "members", f"member_{k}", inside_run=True)
    with lock_run(member_path):
        return _train(model, one, data, member_path, **train)


def _record(config, data, path, info, members, elapsed, *, extra=None) -> RunResult:
    """Pool the members, score and calibrate the pooled model, and write the run's files
    (``extra``: metrics to record beside the pooled model's, such as a cross-fit's)."""
    from dnnguide.optimizers import optimizer_from_config
    from dnnguide.presets import _head

    pooled = pool_models([m.model for m in members], data.task,
                         name=config.name.replace("+", "_"))
    _, loss, metric_names = _head(data.task, data.n_outputs)
    loss = getattr(members[0].model, "loss", None) or loss  # a regression's StandardizedMSE
    pooled.compile(optimizer=optimizer_from_config(member_config(config)), loss=loss,
                   metrics=metric_names)
    pooled.dnnguide_config, pooled.dnnguide_task = config, data.task
    test = pooled.evaluate(data.x_test, data.y_test, batch_size=max(config.batch_size, 256),
                           verbose=0, return_dict=True)
    metrics = {f"test_{k}": float(v) for k, v in test.items()}
    add_r2(metrics, data)
    metrics["ensemble"] = len(members)
    metrics["epochs_trained"] = int(sum(m.metrics.get("epochs_trained", 0) for m in members))
    metrics["train_time_s"] = round(elapsed, 3)
    metrics["member_best_epochs"] = [m.metrics.get("best_epoch") for m in members]
    for key in sorted(test):  # how much pooling added over one net
        values = [m.metrics.get(f"test_{key}", np.nan) for m in members]
        metrics[f"member_mean_test_{key}"] = float(np.mean(values))
    metrics.update(extra or {})
    diverged = not np.isfinite(metrics["test_loss"])
    if not diverged:  # fitted on the validation split only
        pooled = calibrate_run(pooled, config, data, metrics, path)
    history = _history(members)
    if path is not None:
        atomic_write_text(path / "history.csv", history.to_csv(index=False))
        atomic_write_json(path / "metrics.json", metrics)
        atomic_save_model(pooled, path / "model.keras")
        _plot_members(history, path / "plots" / "learning_curves.png")
        extra = {"error": "a member diverged (non-finite loss)"} if diverged else {}
        mark_status(path, info, "diverged" if diverged else "complete", **extra)
    return RunResult(pooled, history, metrics, path, config, data)


def _history(members):
    import pandas as pd

    frames = []
    for k, member in enumerate(members):
        frame = member.history.copy()
        frame.insert(0, "member", k)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _plot_members(history, path: Path) -> Path:
    """Each member's training and validation loss against the epoch."""
    from dnnguide.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, frame in history.groupby("member"):
        line, = ax.plot(frame["epoch"] + 1, frame["loss"], lw=1, label=f"member {k} train")
        if "val_loss" in frame:
            ax.plot(frame["epoch"] + 1, frame["val_loss"], lw=1, ls="--", color=line.get_color(),
                    label=f"member {k} validation")
    ax.set(xlabel="epoch", ylabel="loss", title="Ensemble members' learning curves")
    ax.legend(fontsize="small", ncol=2)
    return save_figure(fig, path)
