"""Cross-fitting: one net per fold of train + validation, each early-stopped on the fold it
does not see, pooled into one model; with dropout chosen by the out-of-fold predictions.

``fit(preset, data)`` lands here when the config says ``cross_fit`` > 1, which the data rules
choose for regression on fewer than 1,000 training rows (``DATA_TABLE["cross_fit.regression"]``).
The training and validation splits are joined and cut into ``cross_fit`` folds (scikit-learn's
``KFold``, shuffled with the run's seed); member ``k`` trains on every fold but ``k`` and is
early-stopped on fold ``k``, exactly as ``fit`` trains one net (the preset resolved for its
rows, the LR finder swept on them), with seed ``seed + 1000 k``. So every row trains four
nets and judges one: early stopping and the choice below see every row of train + validation,
not one split of a few dozen rows. The test split is never touched.

With ``regularization.dropout_choices`` (the rule's ``(0.0, 0.2)``) the folds are trained once
for each rate; the rate whose members' out-of-fold predictions explain more of the target (R²,
variance-weighted over outputs) is kept, and its members' mean is the run's model. Every member
is kept under ``<run>/members/`` (``member_{i}``: rate ``i // cross_fit``, fold ``i %
cross_fit``), the out-of-fold scores in ``metrics.json`` (``oof_r2_dropout_0.2``...) and the
chosen rate as ``dropout_rate``. The pooled model is saved and used as an ensemble's is
(:func:`dnnguide.ensemble.pool_models`).

An interrupted cross-fit resumes member by member (``fit(resume=run)``): finished members are
loaded, the others trained again from their seeds, so the resumed run is the one an
uninterrupted run gives.

Example:
    >>> result = dnnguide.fit("default", "diabetes")  # doctest: +SKIP
    >>> result.metrics["dropout_rate"], result.metrics["oof_r2_dropout_0.2"]  # doctest: +SKIP
    (0.2, 0.52)
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from dnnguide.config import ConfigError, NetworkConfig
from dnnguide.data import DataError, Dataset
from dnnguide.ensemble import _record, member_seed, reopen_pooled_run
from dnnguide.runs import (
    atomic_save_model, atomic_write_json, atomic_write_text, lock_run,
    member_dirs, new_run_dir, open_run, owner,
)
from dnnguide.training import RunResult, recording_failures, run_info

#: Overrides a member is trained with on top of the user's: one net of one dropout rate.
_MEMBER_KEYS = ("cross_fit", "dropout_choices", "dropout_rate", "regularization.dropout_rate",
                "regularization.dropout_choices")


def check_cross_fit(config: NetworkConfig, data: Dataset, strategy=None) -> None:
    """Refuse what a cross-fit cannot train, before anything is trained or written."""
    if data.task != "regression":
        raise ConfigError(f"Argument `cross_fit={config.cross_fit}` is for regression targets "
                          f"(measured there); a classifier's temperature would have no "
                          f"validation split left to be fitted on. Received: task={data.task!r}. "
                          "Use cross_fit=1, or ensemble=5 for a pooled classifier.")
    rows = len(data.x_train) + len(data.x_val)
    if rows < 2 * config.cross_fit:
        raise DataError(f"cross_fit={config.cross_fit} needs at least {2 * config.cross_fit} rows "
                        f"of train + validation (two a fold). Received: {rows} rows. Use "
                        "cross_fit=1.")
    if strategy is not None and "MultiWorker" in type(strategy).__name__:
        raise ConfigError(f"A cross-fit trains its {config.cross_fit} folds one after another on "
                          "this machine; a multi-worker strategy would have every worker write "
                          "each member. Train it without a multi-worker strategy, or use "
                          "cross_fit=1.")


def folds(data: Dataset, k: int, seed: int) -> list[tuple[Dataset, np.ndarray]]:
    """Train + validation cut into ``k`` shuffled folds: ``(dataset, rows)`` for each, the
    dataset training on all but fold ``i`` and validating on fold ``i`` (``rows`` of train +
    validation, in that order); the test split is unchanged. Its ``spec`` is empty: a fold
    cannot be loaded again by name."""
    from sklearn.model_selection import KFold

    x = np.concatenate([data.x_train, data.x_val])
    y = np.concatenate([data.y_train, data.y_val])
    cuts = KFold(k, shuffle=True, random_state=seed).split(x)
    return [(replace(data, x_train=x[train], y_train=y[train], x_val=x[val], y_val=y[val],
                     spec={}, notes=[*data.notes, f"fold {i} of {k} of train + validation"]),
             val) for i, (train, val) in enumerate(cuts)]


def out_of_fold_r2(y, oof) -> float:
    """R² of the out-of-fold predictions: 1 - total squared error / total variance over the
    outputs (scikit-learn's ``r2_score(..., multioutput="variance_weighted")``)."""
    y = np.asarray(y, dtype=float).reshape(len(y), -1)
    oof = np.asarray(oof, dtype=float).reshape(len(y), -1)
    total = float(((y - y.mean(axis=0)) ** 2).sum())
    return float(1.0 - ((oof - y) ** 2).sum() / total) if total > 0 else float("nan")


def fit_cross_fit(config_or_model, config: NetworkConfig, data: Dataset, overrides: dict, *,
                  run_dir, name, seed, callbacks, verbose, diagnose, strategy) -> RunResult:
    """Train the members and record the pooled model; what ``fit`` does for ``cross_fit`` > 1
    (``config`` is the one resolved for ``data``; the members resolve ``config_or_model`` with
    ``overrides`` for their own folds, as ``fit`` would)."""
    check_cross_fit(config, data, strategy)
    source = {"preset": config_or_model if isinstance(config_or_model, str) else None,
              "overrides": {k: v for k, v in overrides.items() if k not in _MEMBER_KEYS}}
    if source["preset"] is None:
        source["preset_config"] = config.to_dict()  # members train it for their folds
    common = dict(seed=seed, callbacks=list(callbacks), verbose=verbose, diagnose=diagnose,
                  strategy=strategy)
    if not run_dir:
        return _train_and_pool(config, data, None, None, source, **common)
    try:
        json.dumps(source)
    except TypeError as error:
        raise ConfigError(f"A cross-fit run records its overrides to resume from them; "
                          f"{error}. Pass overrides as plain values (numbers, strings), or "
                          "run_dir=None.") from None
    path = new_run_dir(run_dir, name or config.name)
    info = {**run_info(data, seed), "epochs": config.epochs, "batch_size": config.batch_size,
            "cross_fit": config.cross_fit, "cross_fit_source": source, **owner()}
    with lock_run(path):
        atomic_write_json(path / "config.json", config.to_dict())
        atomic_write_json(path / "run.json", {**info, "status": "running"})
        return _train_and_pool(config, data, path, info, source, **common)


def resume_cross_fit(run, given: dict, *, epochs, callbacks, verbose, diagnose,
                     strategy) -> RunResult:
    """Finish an interrupted cross-fit run; what ``fit(resume=...)`` does for one."""
    data, info = reopen_pooled_run(run, given, epochs,
                                   f"a cross-fit of {run.config.cross_fit} folds")
    with lock_run(run.path):
        atomic_write_json(run.path / "run.json", {**info, "status": "running"})
        return _train_and_pool(run.config, data, run.path, info, info["cross_fit_source"],
                               seed=info["seed"], callbacks=list(callbacks), verbose=verbose,
                               diagnose=diagnose, strategy=strategy)


def _train_and_pool(config, data, path: Path | None, info, source, *, seed, callbacks, verbose,
                    diagnose, strategy) -> RunResult:
    reg = config.regularization
    rates = reg.dropout_choices or (reg.dropout_rate,)
    splits = folds(data, config.cross_fit, seed)
    y = np.concatenate([data.y_train, data.y_val])
    start = time.perf_counter()
    trained, scores = {}, {}
    with recording_failures(path, info, lambda: _epochs_saved(path)):
        for c, rate in enumerate(rates):
            members, oof = [], None
            for k, (fold, rows) in enumerate(splits):
                if verbose not in (0, "0"):
                    print(f"cross-fit: dropout {rate:g}, fold {k + 1} of {len(splits)}",
                          flush=True)
                member = _member(source, fold, path, c * len(splits) + k, k, rate,
                                 seed=member_seed(seed, k), callbacks=callbacks, verbose=verbose,
                                 diagnose=diagnose, strategy=strategy)
                out = member.model.predict(fold.x_val, batch_size=1024, verbose=0)
                oof = np.zeros((len(y),) + out.shape[1:], out.dtype) if oof is None else oof
                oof[rows] = out
                members.append(member)
            trained[rate] = members
            residual = oof.reshape(len(y), -1) - y.reshape(len(y), -1)
            scores[rate] = out_of_fold_r2(y, oof), float(np.sqrt(np.mean(residual ** 2)))
    chosen = max(rates, key=lambda rate: (scores[rate][0], -rates.index(rate)))
    extra = {"cross_fit": config.cross_fit, "dropout_rate": chosen,
             "epochs_trained": int(sum(m.metrics.get("epochs_trained", 0)
                                       for ms in trained.values() for m in ms))}
    for rate, (r2, rmse) in scores.items():
        extra[f"oof_r2_dropout_{rate:g}"] = r2
        extra[f"oof_rmse_dropout_{rate:g}"] = rmse
    kept = replace(config, regularization=replace(reg, dropout_rate=chosen))
    return _record(kept, data, path, info, trained[chosen], time.perf_counter() - start,
                   extra=extra)


def _epochs_saved(path: Path | None) -> int:
    if path is None:
        return 0
    members = [open_run(p) for p in member_dirs(path)]
    return int(sum(m.metrics.get("epochs_trained", 0) for m in members
                   if m.status == "complete"))


def _member(source, fold: Dataset, path, i: int, k: int, rate: float, *, seed, callbacks,
            verbose, diagnose, strategy) -> RunResult:
    """Member ``i``: loaded if a finished one is on disk, else trained as ``fit`` trains one net
    on ``fold`` (and saved under ``<run>/members/`` when the run has a folder)."""
    from dnnguide.training import fit

    found = [p for p in member_dirs(path) if p.name.endswith(f"-member_{i}")] if path else []
    for folder in reversed(found):
        member = open_run(folder)
        if member.status == "complete":
            return RunResult(member.model(), member.history(), member.metrics, member.path,
                             member.config, fold)
    preset = source["preset"] or NetworkConfig.from_dict(source["preset_config"])
    result = fit(preset, fold, run_dir=None, seed=seed, callbacks=list(callbacks),
                 verbose=verbose, diagnose=diagnose, strategy=strategy,
                 **{**source["overrides"], "cross_fit": 1, "dropout_choices": (),
                    "dropout_rate": rate})
    if path is None:
        return result
    folder = new_run_dir(path / "members", f"member_{i}", inside_run=True)
    with lock_run(folder):
        atomic_write_json(folder / "config.json", result.config.to_dict())
        atomic_write_text(folder / "history.csv", result.history.to_csv(index=False))
        atomic_write_json(folder / "metrics.json", result.metrics)
        atomic_save_model(result.model, folder / "model.keras")
        finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
        atomic_write_json(folder / "run.json", {
            **run_info(fold, seed), "member": i, "fold": k, "dropout_rate": rate, "status": "complete",
            "finished": finished, **owner()})
    return replace(result, run_dir=folder)
