"""What a search leaves: :class:`TuneResult`, and every trial as a pandas DataFrame and a plot.

keras-tuner keeps no table of all trials: :func:`trials_frame` reads ``oracle.trials`` (or
the ``trial_*/trial.json`` files of a project directory).

Example:
    >>> frame = trials_frame("tuning/search")  # doctest: +SKIP
    >>> frame[["trial_id", "status", "score"]]  # doctest: +SKIP
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import keras_tuner
import numpy as np
from keras_tuner.engine.metrics_tracking import infer_metric_direction

from dnnguide.config import ConfigError, NetworkConfig
from dnnguide.plotting import pyplot, save_figure
from dnnguide.tuning.space import SearchSpace, _config_value, config_from_values

#: Folder of a project holding one file per process searching in it (``host-pid``).
RUNNING_DIR = "dnnguide_running"
#: Statuses keras-tuner has no word for: a skipped combination and a killed trial.
INVALID, INTERRUPTED = "INVALID", "INTERRUPTED"
INVALID_PREFIX = "invalid combination: "


class TuningError(RuntimeError):
    """A search that cannot run, cannot continue, or where every trial failed."""


def objective_direction(objective: str) -> str:
    """``"min"`` or ``"max"``: keras-tuner's own inference from the metric's name.

    >>> objective_direction("val_mse"), objective_direction("val_accuracy")
    ('min', 'max')
    """
    direction = infer_metric_direction(objective) if isinstance(objective, str) else None
    if direction is None:
        raise ConfigError(
            "Argument `objective` must be a logged metric whose direction keras-tuner can "
            "infer (e.g. 'val_loss', 'val_accuracy', 'val_mse', "
            f"'val_root_mean_squared_error'). Received: objective={objective!r}")
    return direction


@dataclass
class TuneResult:
    """What :func:`tune` returns; ``.frame`` (= ``.trials``) is the trials table."""

    best_config: NetworkConfig | None
    best_model: keras.Model | None
    trials: Any  # pandas DataFrame, one row per trial
    best_hyperparameters: dict[str, Any]
    directory: Path
    tuner: Any = None
    objective: str = "val_loss"

    @property
    def frame(self):
        """Every trial as a pandas DataFrame (see :func:`trials_frame`)."""
        return self.trials

    def plot(self, path: str | os.PathLike) -> Path:
        """The trials plot (:func:`plot_trials`) written to ``path``."""
        return plot_trials(self.trials, path, objective=self.objective)


def mark_running(project_dir: Path) -> Path:
    """Record this process as searching in ``project_dir``; delete the file when done."""
    folder = Path(project_dir) / RUNNING_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{socket.gethostname()}-{os.getpid()}"
    path.touch()
    return path


def _search_is_live(project_dir: Path) -> bool:
    """Whether a process still searches in ``project_dir`` (another host's counts as live)."""
    host = socket.gethostname()
    for path in (Path(project_dir) / RUNNING_DIR).glob("*-*"):
        name, _, pid = path.name.rpartition("-")
        if name != host or not pid.isdigit():
            return True
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            return True
        return True
    return False


def _error_line(message: str | None) -> str | None:
    """The exception line of a keras-tuner failure traceback (``ConfigError: ...``)."""
    if not message:
        return None
    lines = [line for line in message.strip().splitlines() if line.strip()]
    unindented = [line for line in lines if not line.startswith(" ")]
    return (unindented or lines)[-1]


def _load_trials(project_dir: Path) -> dict:
    """Trials from their ``trial_*/trial.json`` files (works for any algorithm and role)."""
    trials = {}
    for path in sorted(Path(project_dir).glob("trial_*/trial.json")):
        trial = keras_tuner.engine.trial.Trial.load(str(path))
        trials[trial.trial_id] = trial
    return trials


_TAIL = ("budget_epochs", "initial_epoch", "continues_trial", "epochs", "time_s", "worker_pid",
         "error")


def _fill_from_config(row: dict) -> None:
    """Fill the search names a trial did not declare with its config's own values.

    A parameter limited to some presets (``activation`` to ``default``) is inactive in the
    others' trials; their config still has a value (``'selu'`` for ``self_normalizing``).
    """
    names = [k for k in row if k not in ("trial_id", "status", "score", *_TAIL)
             and not k.startswith("val_")]
    try:
        config = config_from_values({k: row[k] for k in names})
    except (ValueError, TypeError):  # an invalid trial: nothing to read
        return
    for name in SearchSpace.default().params:
        if name not in row:
            value = _config_value(config, name)
            if isinstance(value, (bool, int, float, str)):
                row[name] = value


def trials_frame(source):
    """All trials as a pandas DataFrame: hyperparameters, status, score, epochs, time, error.

    Args:
        source: a keras-tuner tuner or oracle, or a project directory (``directory/project``).

    Columns: ``trial_id``, ``status`` (COMPLETED, FAILED (a crash), INVALID (a combination the
    config refuses, skipped), RUNNING, INTERRUPTED (its search was killed)), ``score`` (the
    objective at the trial's best epoch), one column per hyperparameter, ``budget_epochs``
    and ``initial_epoch`` (Hyperband), ``epochs`` (run by this trial), ``time_s``, the
    validation metrics, and ``error`` (the exception of a failed trial).
    """
    import pandas as pd

    if isinstance(source, (str, os.PathLike)):
        project_dir = Path(source)
        trials = _load_trials(project_dir)
    else:
        oracle = getattr(source, "oracle", source)
        trials = dict(oracle.trials)
        project_dir = getattr(source, "project_dir", None)
    rows = []
    # Numeric order: ids are zero-padded to len(str(max_trials)), which a resume can change.
    def order(item):
        return (0, int(item[0]), "") if item[0].isdigit() else (1, 0, item[0])

    live = None
    for trial_id, trial in sorted(trials.items(), key=order):
        status = trial.status
        if status == "STOPPED" and (trial.message or "").startswith(INVALID_PREFIX):
            status = INVALID  # see search._TrialLog: keras-tuner would count it as a failure
        elif status == "RUNNING" and project_dir is not None:
            live = _search_is_live(project_dir) if live is None else live
            status = "RUNNING" if live else INTERRUPTED
        row = {"trial_id": trial_id, "status": status, "score": trial.score}
        for name, value in trial.hyperparameters.values.items():
            key = {"tuner/epochs": "budget_epochs", "tuner/initial_epoch": "initial_epoch",
                   "tuner/trial_id": "continues_trial"}.get(name)
            if key is not None:
                row[key] = value
            elif not name.startswith("tuner/"):
                row[name] = value
        for name in trial.metrics.metrics:
            value = trial.metrics.get_last_value(name)
            if name in ("epochs", "time_s") or name.startswith("val_"):
                row[name] = value
            elif name == "worker_pid":
                row[name] = int(value)
        row["error"] = _error_line(trial.message) if trial.status != "COMPLETED" else None
        rows.append(row)
    for row in rows:
        _fill_from_config(row)
    frame = pd.DataFrame(rows)
    # Workers send hyperparameters through gRPC in another order: fix the column order.
    known = ["trial_id", "status", "score", *SearchSpace.default().params]
    rest = [c for c in frame.columns if c not in known and c not in _TAIL]
    frame = frame[[c for c in known if c in frame] + rest + [c for c in _TAIL if c in frame]]
    if frame.empty:
        return pd.DataFrame(columns=["trial_id", "status", "score", "epochs", "time_s", "error"])
    if "epochs" in frame:
        frame["epochs"] = frame["epochs"].astype("Int64")
    return frame


def plot_trials(frame, path: str | os.PathLike, objective: str = "val_loss") -> Path:
    """Objective of each completed trial by trial number (with the best so far), and one panel
    per searched hyperparameter against the objective (matplotlib PNG)."""
    import pandas as pd
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()

    done = frame[frame["status"] == "COMPLETED"]
    params = [c for c in frame.columns if c not in ("trial_id", "status", "score", *_TAIL)
              and not c.startswith("val_")  # metrics, not searched hyperparameters
              and frame[c].nunique(dropna=True) > 1]
    ncols = 3
    nrows = 1 + -(-len(params) // ncols)
    fig = plt.figure(figsize=(9, 3.2 * nrows))
    grid = fig.add_gridspec(nrows, ncols)
    ax = fig.add_subplot(grid[0, :])
    number = done["trial_id"].astype(int) if done["trial_id"].str.isdigit().all() \
        else np.arange(len(done))
    if not done.empty:
        scores = done["score"].astype(float)
        best = scores.cummin() if objective_direction(objective) == "min" else scores.cummax()
        ax.plot(number, scores, "o", label="trial")
        ax.step(number, best, where="post", label="best so far")
        ax.legend()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="trial", ylabel=f"{objective} (best epoch)",
           title=f"{len(done)}/{len(frame)} trials completed")
    for k, name in enumerate(params):
        sub = fig.add_subplot(grid[1 + k // ncols, k % ncols], sharey=ax)
        values = done[name]
        column = frame[name]
        numeric = (pd.api.types.is_numeric_dtype(column)
                   and not pd.api.types.is_bool_dtype(column))
        if numeric:
            sub.plot(values.astype(float), done["score"].astype(float), "o")
            positive = values.astype(float) > 0
            if positive.all() and values.max() / values.min() >= 100:
                sub.set_xscale("log")
        else:
            labels = sorted(frame[name].dropna().astype(str).unique())
            sub.plot([labels.index(str(v)) for v in values], done["score"].astype(float), "o")
            sub.set_xticks(range(len(labels)), labels, fontsize=7)
        sub.set_xlabel(name)
        if k % ncols == 0:
            sub.set_ylabel(objective)
    fig.tight_layout()
    return save_figure(fig, path)


def _failures(frame) -> str:
    failed = frame[frame["status"] != "COMPLETED"]
    return "\n".join(f"  trial {r.trial_id}: {r.error}" for r in failed.itertuples())
