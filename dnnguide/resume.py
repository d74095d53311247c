"""Resume a run from its checkpoint: the run it would have been, or a refusal saying why.

``fit(resume=run)`` lands here. An interrupted or crashed run continues from its last
checkpoint (:mod:`dnnguide.checkpoint`) and ends as it would have uninterrupted; a finished run
continues up to a larger ``epochs`` total where that is the run a larger budget would have
given (not after early stopping ended it, not with a 1cycle schedule sized for the old budget).
Anything else passed with ``resume`` (data, overrides, seed, batch size, run_dir) is refused.

Example:
    >>> dnnguide.fit(resume="runs/20261130T120000Z-default", epochs=50)  # doctest: +SKIP
"""

from __future__ import annotations

from datetime import datetime, timezone

import keras

from dnnguide import checkpoint as ckpt
from dnnguide.config import ConfigError, NetworkConfig, check_range
from dnnguide.data import DataError
from dnnguide.presets import build_for_data
from dnnguide.runs import RunExistsError, lock_run, open_run
from dnnguide.training import RunResult, _train


def resume_run(run_path, given: dict, *, epochs, callbacks, verbose, diagnose,
               strategy) -> RunResult:
    """Continue a run from its checkpoint; what ``fit(resume=...)`` does (see its docstring)."""
    if strategy is not None and not getattr(strategy.extended, "should_checkpoint", True):
        raise ConfigError("Resuming under a multi-worker strategy would have every worker write "
                          f"into {run_path}. Resume on one machine (no strategy), or start a new "
                          "multi-worker run.")
    run = open_run(run_path)
    info, config = run.info, run.config
    if config.ensemble > 1:  # member by member
        from dnnguide.ensemble import resume_ensemble

        return resume_ensemble(run, given, epochs=epochs, callbacks=callbacks, verbose=verbose,
                               diagnose=diagnose, strategy=strategy)
    if config.cross_fit > 1:  # member by member
        from dnnguide.cross_fit import resume_cross_fit

        return resume_cross_fit(run, given, epochs=epochs, callbacks=callbacks, verbose=verbose,
                                diagnose=diagnose, strategy=strategy)
    _refuse_changes(run, info, config, given)
    if info.get("transfer"):  # its model came from another model's layers, not from its config
        raise ConfigError(f"Run {run.path} reused layers of another model (init_from/"
                          "freeze_epochs) and cannot be resumed from its config; start it again.")
    if epochs is not None:
        check_range("epochs", epochs, 1, integer=True)
    if not info.get("dataset"):
        raise DataError(f"Run {run.path} trained on in-memory arrays; pass the same data to "
                        "fit() with a new run instead.")
    with lock_run(run.path):
        status = run.info.get("status")
        found = ckpt.read_state(run.path / "checkpoint")
        done = found[1]["epoch"] if found else 0
        budget = info["epochs"] if epochs is None else epochs
        if status == "diverged":
            raise ckpt.CheckpointError(f"Run {run.path} diverged (non-finite loss); its weights "
                                       "cannot be trained further. Start a new run with a lower "
                                       "learning rate.")
        if status == "complete":
            _check_continuation(run, config, found, done, epochs)
        elif found is not None and found[1].get("stopped"):
            budget = done  # early stopping (or the NaN guard) had ended it: only finish the record
        elif epochs is not None and epochs < done:
            raise ckpt.CheckpointError(f"Run {run.path} has {done} checkpointed epochs already. "
                                       f"Received: epochs={epochs}. Pass epochs >= {done}.")
        elif epochs is not None and epochs != info["epochs"] and config.schedule.name == "onecycle":
            raise ckpt.CheckpointError(
                f"Run {run.path}'s 1cycle schedule is sized for {info['epochs']} epochs; another "
                f"budget would be another schedule. Received: epochs={epochs}. Resume without "
                "--epochs, or start a new run.")
        seed = info["seed"]
        data = run.dataset()
        keras.utils.set_random_seed(seed)  # after loading, as fit does
        model = build_for_data(config, data, strategy=strategy)
        restore = None
        if found is not None:
            path, state = found
            restore = (state, ckpt.load_checkpoint(path, model))
        info = {**info, "resumed": [*info.get("resumed", []),
                                    datetime.now(timezone.utc).isoformat(timespec="seconds")]}
        for stale in ("finished", "error", "epochs_saved"):
            info.pop(stale, None)
        return _train(model, config, data, run.path, epochs=budget,
                      batch_size=info["batch_size"], seed=seed, callbacks=list(callbacks),
                      verbose=verbose, diagnose=diagnose, initial_info=info, restore=restore)


def _refuse_changes(run, info: dict, config: NetworkConfig, given: dict) -> None:
    """A resume trains the run's own data, config, seed and batch size: refuse anything else."""
    defaults = dict(config_or_model="default", data="digits", run_dir="runs", name=None,
                    batch_size=None, seed=0, task=None)
    recorded = dict(config_or_model=(config.name, config), data=((info.get("dataset") or {})
                    .get("name"),), run_dir=(str(run.path.parent), run.path.parent),
                    batch_size=(info.get("batch_size"),), seed=(info.get("seed"),),
                    task=(info.get("task"),))
    changed = {key: value for key, value in given.items()
               if key not in defaults or (value is not None and value != defaults[key]
                                          and value not in recorded.get(key, ()))}
    if changed:
        shown = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        raise ConfigError(f"A resume continues run {run.path} with its own data, configuration, "
                          f"seed and batch size; it cannot honour {shown}. Resume with "
                          "`epochs` only, or start a new run with these settings.")


def _check_continuation(run, config: NetworkConfig, found, done: int, epochs) -> None:
    """A finished run continues for more epochs only where that is the run it would have been."""
    if epochs is None or epochs <= done:
        raise RunExistsError(f"Run {run.path} is already complete ({done} epochs); nothing to "
                             "resume. Pass a larger total (`--resume RUN --epochs N`, N > "
                             f"{done}) to continue it, or start a new run (runs are never "
                             "overwritten).")
    if found is None:
        raise ckpt.CheckpointError(f"Run {run.path} has no checkpoint to continue from (it was "
                                   "written by an older dnnguide). Start a new run.")
    if config.schedule.name == "onecycle":
        raise ckpt.CheckpointError(f"Run {run.path}'s 1cycle schedule was sized for {done} "
                                   "epochs and has finished; more epochs would be another "
                                   "schedule. Start a new run with the larger budget.")
    if found[1].get("stopped"):
        raise ckpt.CheckpointError(f"Run {run.path} was ended by early stopping at epoch {done}; "
                                   "more epochs would stop at once. Start a new run, e.g. with "
                                   "a longer early_stopping.patience.")
