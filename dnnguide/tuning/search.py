"""Run a search: :func:`tune` runs any keras-tuner algorithm over a :class:`SearchSpace`.

It returns the best config, the best model and a pandas DataFrame of all trials.

Example:
    >>> result = tune("mnist1d", space=SearchSpace.default(), max_trials=4, epochs=5)  # doctest: +SKIP
    >>> result.trials[["trial_id", "status", "score"]]  # doctest: +SKIP

References:
    Li et al. 2018, "Hyperband: A Novel Bandit-Based Approach to Hyperparameter Optimization";
    O'Malley et al. 2019, KerasTuner (https://keras.io/keras_tuner/).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import keras
import keras_tuner
import numpy as np

from dnnguide.config import ConfigError, check_choice, check_range
from dnnguide.tuning.hypermodel import InvalidTrialError, PresetHyperModel
from dnnguide.tuning.results import (
    INVALID_PREFIX, TuneResult, TuningError, _error_line, _failures, _load_trials, mark_running,
    objective_direction, trials_frame,
)
from dnnguide.tuning.space import SearchSpace

ALGORITHMS = ("hyperband", "bayesian", "random", "grid")
SETTINGS_FILE = "dnnguide_search.json"


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


class _TrialLog:
    """Mixin for keras-tuner's tuners: what a trial that did not complete leaves behind.

    Its traceback goes to ``trial_<id>/error.log`` (the table and the terminal get one line).
    A trial whose combination the config refuses (:class:`InvalidTrialError`) ends as
    ``STOPPED``, shown as ``INVALID``: keras-tuner counts every ``FAILED``/``INVALID`` trial
    toward ``max_consecutive_failed_trials``, and a predicted refusal is no crash.
    """

    def on_trial_end(self, trial):
        if trial.message and trial.status != "COMPLETED":
            log = Path(self.get_trial_dir(trial.trial_id)) / "error.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(trial.message)
            line = _error_line(trial.message)
            if InvalidTrialError.__name__ in line and INVALID_PREFIX in line:
                trial.status = "STOPPED"
                trial.message = line[line.index(INVALID_PREFIX):]
            else:
                trial.message = f"{line} (traceback: {log})"
        try:
            super().on_trial_end(trial)
        except RuntimeError:
            # Too many consecutive failures: keras-tuner raises before saving the trial, which
            # would stay RUNNING on disk; save the oracle's record of it (FAILED).
            ended = self.oracle.get_trial(trial.trial_id)
            ended.save(str(Path(self.get_trial_dir(trial.trial_id)) / "trial.json"))
            raise


    def search(self, *args, **kwargs):
        # keras-tuner prints every failed trial's traceback while its DEBUG flag is on (the
        # default in 1.4); they are in the trials' error.log files instead. The flag is the one
        # private keras-tuner name used here: tests/test_tuning.py fails if it moves.
        from keras_tuner.src import config as keras_tuner_config

        debug, keras_tuner_config.DEBUG = keras_tuner_config.DEBUG, False
        try:
            return super().search(*args, **kwargs)
        finally:
            keras_tuner_config.DEBUG = debug


class _Hyperband(_TrialLog, keras_tuner.Hyperband):
    pass


class _RandomSearch(_TrialLog, keras_tuner.RandomSearch):
    pass


class _GridSearch(_TrialLog, keras_tuner.GridSearch):
    pass


class _BayesianOptimization(_TrialLog, keras_tuner.BayesianOptimization):
    pass


def _make_tuner(algorithm, hypermodel, objective, *, max_trials, epochs, factor, seed,
                max_failures, project_dir: Path, strategy, executions_per_trial):
    common = dict(
        hypermodel=hypermodel, seed=seed, max_consecutive_failed_trials=max_failures,
        directory=str(project_dir.parent), project_name=project_dir.name, overwrite=False,
        objective=keras_tuner.Objective(objective, objective_direction(objective)),
        distribution_strategy=strategy, executions_per_trial=executions_per_trial)
    hypermodel.declaring = True  # keras-tuner builds once per condition to map the space
    try:
        if algorithm == "hyperband":
            tuner = _Hyperband(max_epochs=epochs, factor=factor, **common)
            tuner.oracle.max_trials = max_trials  # Hyperband has no cap of its own
        else:
            cls = {"random": _RandomSearch, "grid": _GridSearch,
                   "bayesian": _BayesianOptimization}[algorithm]
            tuner = cls(max_trials=max_trials, **common)
    finally:
        hypermodel.declaring = False
    return tuner


def _check_worker_arguments(workers, strategy, callbacks) -> None:
    """Refuse what cannot reach worker processes (nothing is dropped silently)."""
    if not workers:
        return
    if callbacks:
        raise ConfigError("Argument `callbacks` cannot be sent to worker processes (they are "
                          "Python objects of this process); pass workers=0 to use them. "
                          f"Received: callbacks={list(callbacks)!r}, workers={workers}")
    if strategy is not None and not isinstance(strategy, str):
        raise ConfigError("With workers, argument `strategy` must be a kind each worker creates "
                          "itself ('auto', 'default', 'mirrored', 'tpu'), not a strategy "
                          f"object of this process. Received: strategy={strategy!r}")


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
            ``strategy`` (a kind), ``mixed_precision`` and ``executions_per_trial`` are
            passed on to them; ``callbacks`` and strategy objects cannot be, and are refused.
        max_failures: consecutive crashed trials after which the search stops; a trial whose
            combination the config refuses (SELU with batch norm) is skipped as ``INVALID``
            and does not count. A failed trial's traceback is in ``trial_<id>/error.log``.
        executions_per_trial: models trained (and averaged) per trial.
        verbose: Keras/keras-tuner progress (1 progress bars, 2 a line per epoch, 0 silent).

    Returns:
        A :class:`TuneResult`; ``result.trials`` is a DataFrame of every trial.

    Raises:
        ConfigError: bad arguments, before anything runs.
        TuningError: a different search already lives in the directory, or every trial failed.
    """
    from dnnguide.data import as_dataset

    check_choice("algorithm", algorithm, ALGORITHMS)
    check_range("max_trials", max_trials, 1, integer=True)
    check_range("epochs", epochs, 1, integer=True)
    check_range("factor", factor, 2, integer=True)
    check_range("workers", workers, 0, integer=True)
    check_range("max_failures", max_failures, 1, integer=True)
    check_range("executions_per_trial", executions_per_trial, 1, integer=True)
    space = SearchSpace.default() if space is None else space
    if not isinstance(space, SearchSpace):
        raise TypeError(f"Argument `space` must be a SearchSpace. Received: space={space!r}")
    role = _role()
    _check_worker_arguments(workers if role is None else 0, strategy, callbacks)
    data = as_dataset(data, seed, None)
    keras.utils.set_random_seed(seed)  # after loading, as fit does
    objective = objective or ("val_accuracy" if data.task != "regression" else "val_loss")
    objective_direction(objective)  # an objective keras-tuner cannot rank fails here

    replicas, strat = 1, None
    if strategy is not None and not (workers and role is None):  # workers make their own
        from dnnguide import distribute

        strat = distribute.strategy(strategy) if isinstance(strategy, str) else strategy
        replicas = strat.num_replicas_in_sync
    if mixed_precision:
        from dnnguide import distribute

        distribute.enable_mixed_precision()
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

    adapt = None if data.standardized else data.x_train
    hypermodel = PresetHyperModel(space, data.input_shape, data.n_outputs, data.task,
                                  n_train=len(data.x_train), epochs=epochs, adapt_data=adapt,
                                  replicas=replicas, objective=objective)
    running = mark_running(project_dir)  # --report tells a live search from a killed one
    try:
        if workers and role is None:
            from dnnguide.tuning.worker import run_tuning_processes

            run_tuning_processes(project_dir, workers, max_trials=max_trials,
                                 max_failures=max_failures, oracle_ip=oracle_ip,
                                 oracle_port=oracle_port, verbose=verbose, strategy=strategy,
                                 mixed_precision=mixed_precision,
                                 executions_per_trial=executions_per_trial)
        tuner = _make_tuner(algorithm, hypermodel, objective, max_trials=max_trials,
                            epochs=epochs, factor=factor, seed=seed, max_failures=max_failures,
                            project_dir=project_dir, strategy=strat,
                            executions_per_trial=executions_per_trial)
        if workers and role is None:
            tuner.oracle.reload()  # the chief process saved the oracle; read its trials
        else:
            try:
                tuner.search(data.x_train, data.y_train,
                             validation_data=(data.x_val, data.y_val), epochs=epochs,
                             callbacks=list(callbacks), verbose=verbose)
            except RuntimeError as exc:
                if "consecutive failures" not in str(exc):
                    raise
                raise TuningError(f"The search stopped after {max_failures} consecutive failed "
                                  f"trials:\n{_failures(trials_frame(tuner))}") from None
    finally:
        running.unlink(missing_ok=True)
    if role == "worker":  # the chief holds the results
        return TuneResult(None, None, trials_frame(project_dir), {}, project_dir, tuner,
                          objective)
    return _result(tuner, hypermodel, project_dir)


def _result(tuner, hypermodel: PresetHyperModel, project_dir: Path) -> TuneResult:
    frame = trials_frame(tuner)
    if frame.empty or not (frame["status"] == "COMPLETED").any():
        raise TuningError(f"No trial of the search in {project_dir} completed "
                          f"({len(frame)} trial(s)); keras-tuner would still name a 'best' "
                          f"set, so we refuse. Errors:\n{_failures(frame)}")
    best = tuner.oracle.get_best_trials(1)[0]
    values = hypermodel.values_of(best.hyperparameters.copy())
    try:
        with warnings.catch_warnings():  # checkpoints hold no optimizer slots; Keras says so
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model = tuner.get_best_models(1)[0]
    except (OSError, ValueError, FileNotFoundError) as exc:  # checkpoints on another machine
        print(f"Best model not loaded ({exc}); rebuild it from result.best_config.",
              file=sys.stderr)
        model = None
    clean = {k: v for k, v in values.items() if not k.startswith("tuner/")}
    return TuneResult(hypermodel.config_for(values), model, frame, clean, project_dir, tuner,
                      hypermodel.objective)
