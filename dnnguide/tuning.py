"""Hyperparameter search over the presets with keras-tuner: spaces as data, trials as a table.

The search space is data (:class:`SearchSpace`, a mapping of names to :class:`Param`), with
defaults taken from the presets. Every name is a preset name (``preset``) or a config field
that :func:`dnnguide.presets.get_preset` accepts as an override, so each trial's model is built
by :func:`dnnguide.presets.build_model` and every guideline check applies: a forbidden
combination shows up as a failed trial with its reason, never as a silently odd model.
:func:`tune` runs any keras-tuner algorithm on it and returns the best config, the best model
and a pandas DataFrame of all trials (keras-tuner keeps no such table: it is read from
``oracle.trials``).

Example:
    >>> from dnnguide.tuning import SearchSpace, Float
    >>> space = SearchSpace.default().narrow(preset="default", depth=[2, 3])
    >>> space = space.extend(weight_decay=Float(1e-5, 1e-2, log=True, default=1e-4))
    >>> sorted(space.params)[:3]
    ['activation', 'batch_size', 'depth']
    >>> result = tune("mnist1d", space=space, max_trials=4, epochs=5)  # doctest: +SKIP
    >>> result.trials[["trial_id", "status", "score"]]  # doctest: +SKIP

References:
    Li et al. 2018, "Hyperband: A Novel Bandit-Based Approach to Hyperparameter Optimization";
    O'Malley et al. 2019, KerasTuner (https://keras.io/keras_tuner/).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import keras_tuner
import numpy as np

from dnnguide.config import ConfigError, NetworkConfig, check_choice, check_range
from dnnguide.presets import build_model, get_preset, list_presets

ALGORITHMS = ("hyperband", "bayesian", "random", "grid")
#: Activations each tunable preset allows (SELU only self-normalizes with its own setup).
PRESET_ACTIVATIONS = {
    "default": ("elu", "swish", "relu", "gelu"),
    "self_normalizing": ("selu",),
}
SETTINGS_FILE = "dnnguide_search.json"
PARAM_KINDS = ("choice", "int", "float", "fixed")


class TuningError(RuntimeError):
    """A search that cannot run, cannot continue, or where every trial failed."""


# --------------------------------------------------------------------------- space as data
@dataclass(frozen=True)
class Param:
    """One searchable value: a choice, an int or float range, or a fixed value.

    ``presets`` makes the parameter conditional: it is searched only in trials of those
    presets (keras-tuner conditional scope on ``preset``). Use the helpers :func:`Choice`,
    :func:`Int`, :func:`Float` and :func:`Fixed` to create one.
    """

    kind: str
    values: tuple = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    default: Any = None
    presets: tuple[str, ...] | None = None

    def __post_init__(self):
        check_choice("kind", self.kind, PARAM_KINDS)
        if self.kind == "choice":
            if not self.values:
                raise ConfigError("Argument `values` must list at least one value. "
                                  "Received: values=()")
            if self.default is not None and self.default not in self.values:
                raise ConfigError(f"Argument `default` must be one of {list(self.values)}. "
                                  f"Received: default={self.default!r}")
        if self.kind in ("int", "float"):
            check_range("low", self.low, integer=self.kind == "int")
            integer = self.kind == "int"
            check_range("high", self.high, self.low, low_inclusive=False, integer=integer)
            if self.log:
                check_range("low", self.low, 0.0, low_inclusive=False)
            if self.default is not None:
                check_range("default", self.default, self.low, self.high)
        if self.presets is not None:
            for name in self.presets:
                check_choice("presets", name, tuple(list_presets()))

    def declare(self, hp: keras_tuner.HyperParameters, name: str):
        """Register this parameter on ``hp`` and return the trial's value."""
        sampling = "log" if self.log else "linear"
        if self.kind == "fixed":
            return hp.Fixed(name, self.default)
        if self.kind == "choice":
            return hp.Choice(name, list(self.values), default=self.default)
        if self.kind == "int":
            return hp.Int(name, int(self.low), int(self.high), step=self.step,
                          sampling=sampling, default=self.default)
        return hp.Float(name, float(self.low), float(self.high), step=self.step,
                        sampling=sampling, default=self.default)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["values"] = list(self.values)
        out["presets"] = None if self.presets is None else list(self.presets)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Param:
        data = dict(data)
        data["values"] = tuple(data.get("values", ()))
        if data.get("presets") is not None:
            data["presets"] = tuple(data["presets"])
        return cls(**data)


def Choice(values, default=None, presets=None) -> Param:  # noqa: N802 (keras-tuner's naming)
    """One of ``values`` (default: the first)."""
    values = tuple(values)
    return Param("choice", values, default=values[0] if default is None and values else default,
                 presets=None if presets is None else tuple(presets))


def Int(low, high, step=None, log=False, default=None, presets=None) -> Param:  # noqa: N802
    """An integer in ``[low, high]`` (every ``step``; log-uniform with ``log=True``)."""
    return Param("int", low=low, high=high, step=step, log=log, default=default,
                 presets=None if presets is None else tuple(presets))


def Float(low, high, step=None, log=False, default=None, presets=None) -> Param:  # noqa: N802
    """A float in ``[low, high]`` (log-uniform with ``log=True``, e.g. learning rates)."""
    return Param("float", low=float(low), high=float(high), step=step, log=log,
                 default=default, presets=None if presets is None else tuple(presets))


def Fixed(value, presets=None) -> Param:  # noqa: N802
    """Always ``value`` (recorded in the trials table, not searched)."""
    return Param("fixed", default=value, presets=None if presets is None else tuple(presets))


def _valid_names() -> tuple[str, ...]:
    """``preset`` plus every name ``nested_overrides`` accepts (flat unique, dotted, aliases)."""
    top = {f.name for f in dataclasses.fields(NetworkConfig)} - set(NetworkConfig._NESTED)
    counts: dict[str, int] = {}
    dotted = set()
    for part, cls in NetworkConfig._NESTED.items():
        for f in dataclasses.fields(cls):
            counts[f.name] = counts.get(f.name, 0) + 1
            dotted.add(f"{part}.{f.name}")
    flat = {name for name, n in counts.items() if n == 1 and name != "name"}
    return tuple(sorted(top | flat | dotted | {"preset", "optimizer", "schedule"}))


def _as_param(value, like: Param | None = None) -> Param:
    """A Param as is; a list/tuple becomes a Choice, a scalar a Fixed (with ``like``'s presets)."""
    if isinstance(value, Param):
        return value
    presets = like.presets if like is not None else None
    if isinstance(value, (list, tuple)):
        return Choice(value, presets=presets)
    return Fixed(value, presets=presets)


class SearchSpace:
    """A search space over the presets, as data: ``{name: Param}``.

    Narrow or extend it without subclassing anything::

        space = SearchSpace.default().narrow(depth=Int(2, 4), optimizer=["adamw", "nadam"])
        space = space.extend(l2=Float(1e-6, 1e-3, log=True))

    Raises:
        ConfigError: a name that is neither ``preset`` nor a config field (valid names listed).
    """

    def __init__(self, params: dict[str, Any]):
        valid = _valid_names()
        converted = {}
        for name, value in params.items():
            check_choice("search space name", name, valid)
            converted[name] = _as_param(value)
        converted.setdefault("preset", Fixed("default"))
        preset = converted["preset"]
        for name in preset.values if preset.kind == "choice" else (preset.default,):
            check_choice("preset", name, tuple(list_presets()))
        self._params = converted

    @property
    def params(self) -> dict[str, Param]:
        return dict(self._params)

    @classmethod
    def default(cls, presets=("default", "self_normalizing")) -> SearchSpace:
        """The guidelines' space; each default is the ``default`` preset's own value."""
        presets = tuple(presets)
        if not presets:
            raise ConfigError("Argument `presets` must name at least one preset. Received: ()")
        for name in presets:
            check_choice("presets", name, tuple(PRESET_ACTIVATIONS))
        base = get_preset("default")
        allowed = [a for p in presets for a in PRESET_ACTIVATIONS[p]]
        widths = sorted({32, 64, 128, 256, base.widths[0]})
        return cls({
            "preset": Choice(presets),
            "depth": Int(1, 10, default=base.depth),
            "width": Choice(widths, default=base.widths[0]),
            "activation": Choice(PRESET_ACTIVATIONS["default"], default=base.activation,
                                 presets=("default",)) if "default" in presets
            else Fixed(allowed[0]),
            "dropout_rate": Float(0.0, 0.5, step=0.1, default=base.regularization.dropout_rate),
            "optimizer": Choice(("adamw", "nadam", "nesterov"), default=base.optimizer.name),
            "learning_rate": Float(1e-4, 1e-1, log=True, default=base.optimizer.learning_rate),
            "schedule": Choice(("performance", "onecycle"), default=base.schedule.name),
            "batch_size": Choice((32, 64, 128), default=base.batch_size),
        })

    def narrow(self, **changes) -> SearchSpace:
        """Replace existing parameters (a list -> Choice, a scalar -> Fixed, or a Param)."""
        unknown = sorted(set(changes) - set(self._params))
        if unknown:
            raise ConfigError(f"narrow() changes existing parameters {sorted(self._params)}. "
                              f"Received: {unknown}. Use extend() to add new ones.")
        params = self.params
        params.update({k: _as_param(v, params[k]) for k, v in changes.items()})
        return SearchSpace(params)

    def extend(self, **new) -> SearchSpace:
        """Add parameters: any config field (``l2=Float(...)``, ``early_stopping.patience=3``)."""
        taken = sorted(set(new) & set(self._params))
        if taken:
            raise ConfigError(f"extend() adds new parameters; {taken} already exist. Use narrow().")
        return SearchSpace({**self._params, **new})

    def declare(self, hp: keras_tuner.HyperParameters) -> dict[str, Any]:
        """Register every parameter on ``hp``; return the values active in this trial."""
        preset = self._params["preset"].declare(hp, "preset")
        values = {"preset": preset}
        for name, param in self._params.items():
            if name == "preset":
                continue
            if param.presets is None:
                values[name] = param.declare(hp, name)
                continue
            with hp.conditional_scope("preset", list(param.presets)):
                value = param.declare(hp, name)
            if preset in param.presets:
                values[name] = value
        return values

    def to_dict(self) -> dict:
        return {name: param.to_dict() for name, param in self._params.items()}

    @classmethod
    def from_dict(cls, data: dict) -> SearchSpace:
        return cls({name: Param.from_dict(p) for name, p in data.items()})

    def __eq__(self, other):
        return isinstance(other, SearchSpace) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return f"SearchSpace({self._params!r})"


def config_from_values(values: dict[str, Any]) -> NetworkConfig:
    """The validated NetworkConfig for one trial's values (``tuner/*`` bookkeeping ignored).

    >>> config_from_values({"preset": "self_normalizing", "depth": 3}).activation
    'selu'
    """
    overrides = {k: v for k, v in values.items() if not k.startswith("tuner/") and k != "preset"}
    return get_preset(values.get("preset", "default"), **overrides)


# --------------------------------------------------------------------------- hypermodel
class PresetHyperModel(keras_tuner.HyperModel):
    """Builds each trial's model with :func:`build_model` and fits it with the config's callbacks.

    Args:
        space: the :class:`SearchSpace`.
        input_shape, n_outputs, task: what :func:`build_model` needs.
        n_train: training rows (1cycle's ``total_steps`` is derived from it).
        epochs: epochs per trial when the algorithm does not set a budget (Hyperband does).
        adapt_data: training features for the input ``Normalization`` layer (unstandardized data).
        replicas: replicas of the distribution strategy; the batch size is scaled by it.
        objective: the validation metric the trial's best epoch is chosen by.
    """

    def __init__(self, space: SearchSpace, input_shape, n_outputs: int, task: str, *,
                 n_train: int, epochs: int, adapt_data=None, replicas: int = 1,
                 objective: str = "val_loss"):
        super().__init__(name="dnnguide_presets", tunable=True)
        self.space = space
        self.input_shape, self.n_outputs, self.task = tuple(input_shape), n_outputs, task
        self.n_train, self.epochs, self.replicas = n_train, epochs, replicas
        self.adapt_data = adapt_data
        self.objective = objective
        self.declaring = False  # True while keras-tuner explores the space (no model needed)

    def config_for(self, values: dict[str, Any]) -> NetworkConfig:
        """The trial's config; 1cycle is keyed to this trial's own epochs.

        Hyperband's continuation trials resume at ``tuner/initial_epoch`` with a fresh
        optimizer whose step counter is 0, so 1cycle's total steps cover only the epochs
        this trial trains (``tuner/epochs - tuner/initial_epoch``), never the whole budget.
        """
        config = config_from_values(values)
        if config.schedule.name == "onecycle":
            budget = values.get("tuner/epochs", self.epochs) - values.get("tuner/initial_epoch", 0)
            steps_per_epoch = math.ceil(self.n_train / (config.batch_size * self.replicas))
            schedule = dataclasses.replace(config.schedule,
                                           total_steps=max(1, steps_per_epoch * budget))
            config = dataclasses.replace(config, schedule=schedule)
        return config

    def build(self, hp):
        values = self.space.declare(hp)
        if self.declaring:
            return None
        values.update({k: v for k, v in hp.values.items() if k.startswith("tuner/")})
        config = self.config_for(values)
        adapt = self.adapt_data if config.standardize_inputs else None
        return build_model(config, self.input_shape, self.n_outputs, self.task, adapt_data=adapt)

    def fit(self, hp, model, *args, callbacks=(), **kwargs):
        from dnnguide.schedules import check_callbacks
        from dnnguide.training import make_callbacks

        config = model.dnnguide_config
        # keras-tuner deep-copies the user's callbacks per trial; ours are fresh per trial too.
        callbacks = list(callbacks) + make_callbacks(config, None, has_val=True)
        check_callbacks(model.optimizer, callbacks)
        start = time.perf_counter()
        history = model.fit(*args, batch_size=config.batch_size * self.replicas,
                            callbacks=callbacks, **kwargs)
        return self._summary(history.history, time.perf_counter() - start)

    def _summary(self, history: dict, seconds: float) -> dict[str, float]:
        """Metrics at the best epoch plus epochs run and time: keras-tuner records them all."""
        if self.objective not in history:
            raise TuningError(f"Objective {self.objective!r} was not logged; logged metrics: "
                              f"{sorted(history)}")
        scores = np.asarray(history[self.objective], dtype="float64")
        if not np.all(np.isfinite(scores)) or not np.all(np.isfinite(history["loss"])):
            raise FloatingPointError(
                f"Training diverged (non-finite loss or {self.objective}) after "
                f"{len(scores)} epochs: lower the learning rate or clip gradients.")
        best = int(np.argmin(scores) if _direction(self.objective) == "min" else np.argmax(scores))
        out = {name: float(values[best]) for name, values in history.items()
               if len(values) == len(scores)}
        out.update(epochs=float(len(scores)), time_s=float(seconds), worker_pid=float(os.getpid()))
        return out


def _direction(objective: str) -> str:
    return "min" if objective.endswith(("loss", "error", "rmse", "mae")) else "max"


# --------------------------------------------------------------------------- results
@dataclass
class TuneResult:
    """What :func:`tune` returns."""

    best_config: NetworkConfig | None
    best_model: keras.Model | None
    trials: Any  # pandas DataFrame, one row per trial
    best_hyperparameters: dict[str, Any]
    directory: Path
    tuner: Any = None


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


def trials_frame(source):
    """All trials as a pandas DataFrame: hyperparameters, status, score, epochs, time, error.

    Args:
        source: a keras-tuner tuner or oracle, or a project directory (``directory/project``).

    Columns: ``trial_id``, ``status`` (COMPLETED / FAILED / RUNNING ...), ``score`` (the
    objective at the trial's best epoch), one column per hyperparameter, ``budget_epochs``
    and ``initial_epoch`` (Hyperband), ``epochs`` (run by this trial), ``time_s``, the
    validation metrics, and ``error`` (the exception of a failed trial).
    """
    import pandas as pd

    if isinstance(source, (str, os.PathLike)):
        trials = _load_trials(Path(source))
    else:
        oracle = getattr(source, "oracle", source)
        trials = dict(oracle.trials)
    rows = []
    # Numeric order: ids are zero-padded to len(str(max_trials)), which a resume can change.
    def order(item):
        return (0, int(item[0]), "") if item[0].isdigit() else (1, 0, item[0])

    for trial_id, trial in sorted(trials.items(), key=order):
        row = {"trial_id": trial_id, "status": trial.status, "score": trial.score}
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
    """Score of each completed trial in order, with the best so far (matplotlib PNG)."""
    from dnnguide.runs import pyplot, save_figure

    plt = pyplot()
    done = frame[frame["status"] == "COMPLETED"].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if not done.empty:
        scores = done["score"].astype(float)
        best = scores.cummin() if _direction(objective) == "min" else scores.cummax()
        ax.plot(done.index + 1, scores, "o", label="trial")
        ax.plot(done.index + 1, best, "-", label="best so far")
        ax.legend()
    ax.set(xlabel="completed trial", ylabel="score",
           title=f"{len(done)}/{len(frame)} trials completed")
    fig.tight_layout()
    return save_figure(fig, path)



# --------------------------------------------------------------------------- search
def _role() -> str | None:
    """``"chief"``/``"worker"`` under keras-tuner's distributed mode, else ``None``."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return None
    return "chief" if "chief" in os.environ.get("KERASTUNER_TUNER_ID", "") else "worker"


def _data_reference(data, project_dir: Path) -> dict:
    """How a worker process loads the same data: a dataset spec, or arrays saved with the search."""
    if data.spec:
        return {"spec": data.spec}
    import hashlib

    digest = hashlib.sha1()
    for array in (data.x_train, data.y_train, data.x_val, data.y_val):
        digest.update(np.ascontiguousarray(array).tobytes())
    path = project_dir / "data.npz"
    if not path.exists():
        np.savez(path, x_train=data.x_train, y_train=data.y_train, x_val=data.x_val,
                 y_val=data.y_val, x_test=data.x_test, y_test=data.y_test)
    return {"npz": path.name, "sha1": digest.hexdigest(), "task": data.task,
            "n_outputs": data.n_outputs}


def _check_settings(project_dir: Path, settings: dict) -> None:
    """Refuse to continue a different search in the same place (nothing is overwritten silently)."""
    from dnnguide.runs import atomic_write_json

    path = project_dir / SETTINGS_FILE
    if path.exists():
        old = json.loads(path.read_text())
        differ = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if differ:
            raise TuningError(
                f"{project_dir} holds a search with different settings ({', '.join(differ)}). "
                "Rerun with the same settings to continue it, pass overwrite=True (--overwrite) "
                "to delete it, or use another directory/project name.")
        return
    atomic_write_json(path, settings)


def _make_tuner(algorithm, hypermodel, objective, *, max_trials, epochs, factor, seed,
                max_failures, project_dir: Path, strategy, executions_per_trial):
    common = dict(
        hypermodel=hypermodel, seed=seed, max_consecutive_failed_trials=max_failures,
        directory=str(project_dir.parent), project_name=project_dir.name, overwrite=False,
        objective=keras_tuner.Objective(objective, _direction(objective)),
        distribution_strategy=strategy, executions_per_trial=executions_per_trial)
    hypermodel.declaring = True  # keras-tuner builds once per condition to map the space
    try:
        if algorithm == "hyperband":
            tuner = keras_tuner.Hyperband(max_epochs=epochs, factor=factor, **common)
            tuner.oracle.max_trials = max_trials  # Hyperband has no cap of its own
        else:
            cls = {"random": keras_tuner.RandomSearch, "grid": keras_tuner.GridSearch,
                   "bayesian": keras_tuner.BayesianOptimization}[algorithm]
            tuner = cls(max_trials=max_trials, **common)
    finally:
        hypermodel.declaring = False
    return tuner


def tune(
    data="mnist1d",
    *,
    space: SearchSpace | None = None,
    algorithm: str = "hyperband",
    max_trials: int = 20,
    epochs: int = 30,
    directory: str | os.PathLike = "tuning",
    project_name: str = "search",
    overwrite: bool = False,
    objective: str | None = None,
    factor: int = 3,
    seed: int = 0,
    strategy=None,
    mixed_precision: bool = False,
    callbacks=(),
    workers: int = 0,
    oracle_ip: str = "127.0.0.1",
    oracle_port: int | None = None,
    max_failures: int = 3,
    executions_per_trial: int = 1,
    verbose=1,
) -> TuneResult:
    """Search the preset space with keras-tuner and return the best config, model and all trials.

    Args:
        data: a dataset name (``"mnist1d"``), a :class:`dnnguide.data.Dataset`, ``(x, y)`` or
            ``(x, y, x_val, y_val)``.
        space: a :class:`SearchSpace` (default: :meth:`SearchSpace.default`).
        algorithm: ``"hyperband"``, ``"bayesian"``, ``"random"`` or ``"grid"``.
        max_trials: most trials to run (in total, counting those of a resumed search).
        epochs: epochs per trial (Hyperband: the largest budget of a trial).
        directory, project_name: where keras-tuner keeps the search; rerunning with the same
            settings continues it; different settings raise; ``overwrite=True`` deletes it first.
        objective: validation metric to optimize (default ``val_accuracy`` for
            classification, else ``val_loss``).
        factor: Hyperband's reduction factor.
        seed: seeds Keras and the oracle.
        strategy: ``None``, a ``tf.distribute`` strategy, or a kind for
            :func:`dnnguide.distribute.strategy` (``"auto"``); batch sizes are scaled by its
            replicas.
        mixed_precision: use ``mixed_float16`` (GPU) / ``mixed_bfloat16`` (TPU).
        callbacks: extra Keras callbacks (keras-tuner deep-copies them for every trial).
        workers: run the trials in this many fresh worker processes (plus a chief process
            holding the oracle on ``oracle_ip``), so memory does not grow in this process.
        max_failures: consecutive failed trials after which the search stops.
        verbose: Keras/keras-tuner progress (1 progress bars, 2 a line per epoch, 0 silent).

    Returns:
        A :class:`TuneResult`; ``result.trials`` is a DataFrame of every trial.

    Raises:
        ConfigError: bad arguments, before anything runs.
        TuningError: a different search already lives in the directory, or every trial failed.
    """
    from dnnguide.training import as_dataset

    check_choice("algorithm", algorithm, ALGORITHMS)
    check_range("max_trials", max_trials, 1, integer=True)
    check_range("epochs", epochs, 1, integer=True)
    check_range("factor", factor, 2, integer=True)
    check_range("workers", workers, 0, integer=True)
    check_range("max_failures", max_failures, 1, integer=True)
    space = SearchSpace.default() if space is None else space
    if not isinstance(space, SearchSpace):
        raise TypeError(f"Argument `space` must be a SearchSpace. Received: space={space!r}")
    keras.utils.set_random_seed(seed)
    data = as_dataset(data, seed, None)
    objective = objective or ("val_accuracy" if data.task != "regression" else "val_loss")
    role = _role()
    project_dir = Path(directory) / project_name
    # A worker never deletes the chief's state.
    if overwrite and role != "worker" and project_dir.exists():
        import shutil

        shutil.rmtree(project_dir)
    project_dir.mkdir(parents=True, exist_ok=True)
    settings = {"algorithm": algorithm, "objective": objective, "space": space.to_dict(),
                "data": _data_reference(data, project_dir), "epochs": epochs, "factor": factor,
                "seed": seed}
    _check_settings(project_dir, settings)
    done = len(_load_trials(project_dir))
    if done and verbose:
        print(f"Resuming the search in {project_dir}: {done} trial(s) already recorded.")

    replicas, strat = 1, None
    if strategy is not None:
        from dnnguide import distribute

        strat = distribute.strategy(strategy) if isinstance(strategy, str) else strategy
        replicas = strat.num_replicas_in_sync
    if mixed_precision:
        from dnnguide import distribute

        distribute.enable_mixed_precision()
    adapt = None if data.standardized else data.x_train
    hypermodel = PresetHyperModel(space, data.input_shape, data.n_outputs, data.task,
                                  n_train=len(data.x_train), epochs=epochs, adapt_data=adapt,
                                  replicas=replicas, objective=objective)
    if workers and role is None:
        from dnnguide.distribute import run_tuning_processes

        run_tuning_processes(project_dir, workers, max_trials=max_trials,
                             max_failures=max_failures, oracle_ip=oracle_ip,
                             oracle_port=oracle_port, verbose=verbose)
    tuner = _make_tuner(algorithm, hypermodel, objective, max_trials=max_trials, epochs=epochs,
                        factor=factor, seed=seed, max_failures=max_failures,
                        project_dir=project_dir, strategy=strat,
                        executions_per_trial=executions_per_trial)
    if workers and role is None:
        tuner.oracle.reload()  # the chief process saved the oracle; read its trials
    else:
        try:
            tuner.search(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                         epochs=epochs, callbacks=list(callbacks), verbose=verbose)
        except RuntimeError as exc:
            if "consecutive failures" not in str(exc):
                raise
            raise TuningError(f"The search stopped after {max_failures} consecutive failed "
                              f"trials:\n{_failures(trials_frame(tuner))}") from exc
    if role == "worker":  # the chief holds the results
        return TuneResult(None, None, trials_frame(project_dir), {}, project_dir, tuner)
    return _result(tuner, hypermodel, project_dir)


def _failures(frame) -> str:
    failed = frame[frame["status"] != "COMPLETED"]
    return "\n".join(f"  trial {r.trial_id}: {r.error}" for r in failed.itertuples())


def _result(tuner, hypermodel: PresetHyperModel, project_dir: Path) -> TuneResult:
    frame = trials_frame(tuner)
    if frame.empty or not (frame["status"] == "COMPLETED").any():
        raise TuningError(f"No trial of the search in {project_dir} completed "
                          f"({len(frame)} trial(s)); keras-tuner would still name a 'best' "
                          f"set, so we refuse. Errors:\n{_failures(frame)}")
    best = tuner.oracle.get_best_trials(1)[0]
    values = dict(best.hyperparameters.values)
    try:
        with warnings.catch_warnings():  # checkpoints hold no optimizer slots; Keras says so
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model = tuner.get_best_models(1)[0]
    except (OSError, ValueError, FileNotFoundError) as exc:  # checkpoints on another machine
        print(f"Best model not loaded ({exc}); rebuild it from result.best_config.",
              file=sys.stderr)
        model = None
    clean = {k: v for k, v in values.items() if not k.startswith("tuner/")}
    return TuneResult(hypermodel.config_for(values), model, frame, clean, project_dir, tuner)


def _main(argv=None) -> int:
    """Entry point of a chief/worker process started by :func:`tune` with ``workers=N``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dnnguide.tuning")
    parser.add_argument("project_dir")
    parser.add_argument("--max-trials", type=int, required=True)
    parser.add_argument("--max-failures", type=int, default=3)
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args(argv)
    project_dir = Path(args.project_dir)
    settings = json.loads((project_dir / SETTINGS_FILE).read_text())
    ref = settings["data"]
    if "spec" in ref:
        from dnnguide.data import from_spec

        data = from_spec(ref["spec"])
    else:
        from dnnguide.data import Dataset

        with np.load(project_dir / ref["npz"]) as f:
            arrays = {k: f[k] for k in f.files}
        data = Dataset("arrays", ref["task"], ref["n_outputs"], **arrays)
    tune(data, space=SearchSpace.from_dict(settings["space"]), algorithm=settings["algorithm"],
         max_trials=args.max_trials, epochs=settings["epochs"], directory=project_dir.parent,
         project_name=project_dir.name, objective=settings["objective"],
         factor=settings["factor"], seed=settings["seed"], max_failures=args.max_failures,
         verbose=args.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
