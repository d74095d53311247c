"""Tests of dnnguide.tuning: spaces as data, searches, failed trials, resume, 1cycle budgets."""

from __future__ import annotations

import math
from types import SimpleNamespace

import keras
import keras_tuner
import numpy as np
import pandas as pd
import pytest

from dnnguide.config import ConfigError, NetworkConfig
from dnnguide.tuning import (
    Choice, Fixed, Float, Int, PresetHyperModel, SearchSpace, TuningError, trials_frame, tune,
)


def small_space(**changes) -> SearchSpace:
    """One preset, a tiny network and a learning rate that trains blobs in a few epochs."""
    base = dict(preset="default", depth=[1, 2], width=16, activation="elu", dropout_rate=0.0,
                optimizer="adamw", learning_rate=1e-2, schedule="performance", batch_size=32)
    base.update(changes)
    return SearchSpace.default().narrow(**base)


def test_space_is_data_with_preset_defaults_and_validates_names():
    from dnnguide.presets import get_preset

    space = SearchSpace.default()
    cfg = get_preset("default")  # the defaults come from the preset, not from constants here
    assert space.params["depth"].default == cfg.depth
    assert space.params["learning_rate"].default == cfg.optimizer.learning_rate
    assert space.params["learning_rate"].log
    assert space.params["activation"].presets == ("default",)
    assert "selu" not in space.params["activation"].values
    assert SearchSpace.from_dict(space.to_dict()) == space
    with pytest.raises(ConfigError, match="Received: search space name='dpeth'"):
        SearchSpace({"dpeth": Int(1, 3)})
    with pytest.raises(ConfigError, match="Use extend"):
        space.narrow(l2=0.1)
    with pytest.raises(ConfigError, match="already exist"):
        space.extend(depth=3)
    with pytest.raises(ConfigError, match="must be one of"):
        space.narrow(preset="no_such_preset")
    with pytest.raises(ConfigError, match="default"):
        Choice([1, 2], default=3)
    with pytest.raises(ConfigError, match="Received: presets='defualt'. Did you mean 'default'"):
        SearchSpace.default(presets=("defualt",))
    selu_only = SearchSpace.default(presets=("self_normalizing",))
    assert selu_only.params["activation"] == Fixed("selu")
    extended = space.extend(**{"l2": Float(1e-6, 1e-3, log=True), "early_stopping.patience": 3})
    assert extended.params["early_stopping.patience"] == Fixed(3)


def test_bad_arguments_fail_before_anything_runs(blobs, tmp_path):
    with pytest.raises(ConfigError, match="algorithm"):
        tune(blobs, algorithm="hyperbands", directory=tmp_path / "t")
    with pytest.raises(ConfigError, match="max_trials"):
        tune(blobs, max_trials=0, directory=tmp_path / "t")
    # What cannot reach worker processes is refused, not dropped (the old main dropped it).
    with pytest.raises(ConfigError, match="`callbacks` cannot be sent to worker processes"):
        tune(blobs, workers=1, callbacks=[keras.callbacks.History()], directory=tmp_path / "t")
    with pytest.raises(ConfigError, match="`strategy` must be a kind"):
        tune(blobs, workers=1, strategy=object(), directory=tmp_path / "t")
    with pytest.raises(ConfigError, match="objective"):
        tune(blobs, objective="val_rmse", directory=tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_workers_receive_strategy_mixed_precision_and_executions(tmp_path, monkeypatch):
    import json

    from dnnguide.tuning import worker

    commands = []

    class Finished:  # a process that has already exited cleanly
        returncode = 0

        def __init__(self, command, **_):
            commands.append(command)

        def poll(self):
            return 0

        def wait(self):
            return 0

    monkeypatch.setattr(worker.subprocess, "Popen", Finished)
    worker.run_tuning_processes(tmp_path, 1, max_trials=2, strategy="default",
                                mixed_precision=True, executions_per_trial=2, verbose=0)
    chief, one = commands
    assert one[one.index("--strategy") + 1] == "default" and "--mixed-precision" in one
    assert one[one.index("--executions-per-trial") + 1] == "2"
    received = {}
    monkeypatch.setattr(worker, "tune", lambda data, **kwargs: received.update(kwargs))
    (tmp_path / worker.SETTINGS_FILE).write_text(json.dumps({
        "data": {"spec": {"name": "digits", "seed": 0}}, "space": small_space().to_dict(),
        "algorithm": "random", "epochs": 1, "objective": "val_accuracy", "factor": 3,
        "seed": 0}))
    monkeypatch.setattr("dnnguide.data.from_spec", lambda spec: spec)
    worker._main([str(tmp_path)] + one[one.index("--max-trials"):])
    assert (received["strategy"], received["mixed_precision"]) == ("default", True)
    assert received["executions_per_trial"] == 2 and received["max_trials"] == 2


def test_trials_plot_has_integer_ticks_a_named_objective_and_a_panel_per_hyperparameter(
        tmp_path, monkeypatch):
    import pandas as pd

    from dnnguide.tuning import results

    frame = pd.DataFrame({
        "trial_id": ["0", "1", "2", "3"], "status": ["COMPLETED"] * 3 + ["INVALID"],
        "score": [0.5, 0.7, 0.6, None], "depth": [1, 2, 3, 2],
        "learning_rate": [1e-4, 1e-3, 1e-1, 1e-2], "optimizer": ["adamw", "nadam", "adamw", "sgd"],
        "width": [16, 16, 16, 16], "epochs": [2, 2, 2, None],
        "val_accuracy": [0.5, 0.7, 0.6, None], "val_loss": [1.2, 0.9, 1.0, None]})
    figures = []
    real = results.save_figure
    monkeypatch.setattr(results, "save_figure", lambda fig, path: figures.append(fig) or
                        real(fig, path))
    path = results.plot_trials(frame, tmp_path / "trials.png", objective="val_accuracy")
    assert path.stat().st_size > 1000
    (fig,) = figures
    main, *panels = fig.axes
    assert main.get_ylabel().startswith("val_accuracy")
    fig.canvas.draw()
    ticks = [t for t in main.get_xticks() if main.get_xlim()[0] <= t <= main.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    # width never varies, so no panel for it; metrics (val_*) are not hyperparameters; the
    # others each get one against the score.
    assert [ax.get_xlabel() for ax in panels] == ["depth", "learning_rate", "optimizer"]
    assert list(panels[0].get_lines()[0].get_xdata()) == [1.0, 2.0, 3.0]  # depth as a number
    assert panels[1].get_xscale() == "log"
    assert [t.get_text() for t in panels[2].get_xticklabels()] == ["adamw", "nadam", "sgd"]


def test_two_trial_search_returns_table_best_config_and_best_model(blobs, tmp_path, capsys):
    result = tune(blobs, space=small_space(), algorithm="grid", max_trials=2, epochs=3,
                  directory=tmp_path, verbose=0)
    frame = result.trials
    assert list(frame["trial_id"]) == ["0", "1"]
    assert set(frame["status"]) == {"COMPLETED"}
    assert sorted(frame["depth"]) == [1, 2]
    assert frame["score"].equals(frame["val_accuracy"])
    assert frame["epochs"].between(1, 3).all() and (frame["time_s"] > 0).all()
    assert frame["error"].isna().all()
    best = frame.loc[frame["score"].idxmax()]
    assert best["score"] > 0.8
    assert isinstance(result.best_config, NetworkConfig)
    assert result.best_config.depth == best["depth"]
    assert result.best_hyperparameters["depth"] == best["depth"]
    # The best model carries the best epoch's weights: it scores what the table says.
    x, y = blobs
    from dnnguide.data import from_arrays

    val = from_arrays(x, y, seed=0)
    acc = result.best_model.evaluate(val.x_val, val.y_val, verbose=0, return_dict=True)["accuracy"]
    assert acc == pytest.approx(best["score"], abs=1e-6)
    # The same table is read back from disk (dnnguide tune --report).
    on_disk = trials_frame(result.directory)
    assert list(on_disk["score"]) == list(frame["score"])
    from dnnguide.cli import main

    assert main(["tune", "--report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "COMPLETED" in out and (result.directory / "trials.png").stat().st_size > 1000


def test_forbidden_combination_is_skipped_as_invalid_and_not_counted(blobs, tmp_path, capsys):
    space = small_space(depth=1, activation=["selu", "elu"])  # SELU breaks the default preset
    # max_failures=1: on the old main the SELU trial alone stopped the search.
    result = tune(blobs, space=space, algorithm="grid", max_trials=2, epochs=2,
                  directory=tmp_path, max_failures=1, verbose=0)
    frame = result.trials.set_index("activation")
    assert frame.loc["elu", "status"] == "COMPLETED"
    assert frame.loc["selu", "status"] == "INVALID"
    assert frame.loc["selu", "error"].startswith("invalid combination: ")
    assert "LeCun" in frame.loc["selu", "error"]
    assert result.best_config.activation == "elu"
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    from keras_tuner.src import config  # canary: the flag search() switches off must exist

    assert config.DEBUG is True


class Crash(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise RuntimeError("boom from a user callback")


def test_a_crash_counts_and_its_traceback_goes_to_the_trials_log(blobs, tmp_path, capsys):
    with pytest.raises(TuningError, match="after 1 consecutive failed trials") as info:
        tune(blobs, space=small_space(depth=1), algorithm="random", max_trials=3, epochs=1,
             directory=tmp_path, callbacks=[Crash()], max_failures=1, verbose=0)
    assert "boom from a user callback" in str(info.value)
    assert "Traceback" not in str(info.value)
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err  # verbose=0 prints no traceback
    (log,) = (tmp_path / "search").glob("trial_*/error.log")
    assert "Traceback" in log.read_text() and "boom from a user callback" in log.read_text()
    frame = trials_frame(tmp_path / "search")
    assert list(frame["status"]) == ["FAILED"]
    assert str(log) in frame["error"][0] and "\n" not in frame["error"][0]


def test_objective_direction_is_keras_tuners(blobs):
    from dnnguide.tuning.results import objective_direction

    # The old suffix rule maximized val_mse (and any name not ending in loss/error/rmse/mae).
    assert objective_direction("val_mse") == "min"
    assert objective_direction("val_mean_absolute_error") == "min"
    assert objective_direction("val_accuracy") == "max"
    with pytest.raises(ConfigError, match="Received: objective='val_rmse'"):
        objective_direction("val_rmse")
    model = PresetHyperModel(small_space(), (8,), 1, "regression", n_train=300, epochs=3,
                             objective="val_mse")
    summary = model._summary({"loss": [3.0, 2.0, 1.0], "val_mse": [5.0, 1.0, 9.0]}, 1.0)
    assert summary["val_mse"] == 1.0 and summary["loss"] == 2.0  # the best epoch is the lowest


def test_invalid_fixed_value_is_refused_before_anything_is_created(tmp_path, capsys):
    from dnnguide.cli import main

    with pytest.raises(ConfigError, match="learning_rate='abc' is refused by every preset"):
        SearchSpace.default().narrow(learning_rate="abc")
    directory = tmp_path / "tuning"
    rc = main(["tune", "--data", "digits", "--directory", str(directory), "--verbose", "0",
               "--learning-rate", "abc"])
    assert rc == 2 and "learning_rate='abc'" in capsys.readouterr().err
    assert not directory.exists()
    # A value some preset takes stays: its combination is judged per trial.
    assert SearchSpace.default().narrow(activation=["elu", "selu"])


def test_space_is_keras_tuner_hyperparameters_with_conditions():
    space = SearchSpace.default().extend(weight_decay=Float(1e-5, 1e-2, log=True))
    hp = space.hyperparameters()
    assert isinstance(hp, keras_tuner.HyperParameters)
    restored = keras_tuner.HyperParameters.from_config(hp.get_config())
    assert [h.name for h in restored.space] == [h.name for h in hp.space]
    (decay,) = [h for h in hp.space if h.name == "weight_decay"]
    ((parent, allowed),) = [(c.name, c.values) for c in decay.conditions]
    assert parent == "optimizer" and "nadam" not in allowed and "adamw" in allowed
    trial = keras_tuner.HyperParameters()
    trial.values.update(preset="self_normalizing", optimizer="nadam")
    values = space.declare(trial)
    assert "weight_decay" not in values  # nadam takes none: no FAILED trial for it
    trial = keras_tuner.HyperParameters()
    trial.values.update(preset="default", optimizer="adamw", activation="swish")
    values = space.declare(trial)
    assert values["activation"] == "swish" and "weight_decay" in values
    # keras-tuner's oracle fills a trial's values itself: a self-normalizing one has no
    # activation; the table records the one its config uses.
    oracle = keras_tuner.oracles.RandomSearchOracle(hyperparameters=hp, max_trials=20, seed=3)
    oracle._set_project_dir("/nonexistent", "p")  # never written: no trial is ended
    trials = {str(i): oracle.create_trial(f"t{i}") for i in range(8)}
    frame = trials_frame(SimpleNamespace(trials=trials)).set_index("trial_id")
    assert set(frame["preset"]) == {"default", "self_normalizing"}
    for _, row in frame.iterrows():
        if row["preset"] == "self_normalizing":
            assert row["activation"] == "selu"
        else:
            assert row["activation"] in ("elu", "swish")
        assert (row["optimizer"] == "nadam") == pd.isna(row["weight_decay"])


def test_a_killed_searchs_running_trial_reads_interrupted(tmp_path):
    import subprocess
    import sys

    from dnnguide.tuning.results import RUNNING_DIR, mark_running

    # What a SIGKILL leaves: a trial saved as RUNNING, and the search's process gone.
    project = tmp_path / "search"
    (project / "trial_0").mkdir(parents=True)
    trial = keras_tuner.engine.trial.Trial(small_space().hyperparameters(), trial_id="0",
                                           status="RUNNING")
    trial.save(str(project / "trial_0" / "trial.json"))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a process id that no longer runs: the search was killed
    running = mark_running(project)
    running.rename(running.with_name(f"{running.name.rpartition('-')[0]}-{dead.pid}"))
    assert list(trials_frame(project)["status"]) == ["INTERRUPTED"]
    live = mark_running(project)  # this process: the search is live
    assert list(trials_frame(project)["status"]) == ["RUNNING"]
    live.unlink()
    assert len(list((project / RUNNING_DIR).iterdir())) == 1


def test_search_where_every_trial_failed_raises(blobs, tmp_path):
    with pytest.raises(TuningError, match="No trial .* completed(.|\n)*LeCun"):
        tune(blobs, space=small_space(depth=1, activation="selu"), algorithm="random",
             max_trials=1, epochs=1, directory=tmp_path, verbose=0)


def test_resume_continues_and_refuses_a_different_search(blobs, tmp_path):
    kwargs = dict(space=small_space(depth=[1, 2, 3]), algorithm="random", epochs=1,
                  directory=tmp_path, verbose=0)
    first = tune(blobs, max_trials=2, **kwargs).trials
    second = tune(blobs, max_trials=3, **kwargs).trials
    assert list(second["trial_id"]) == ["0", "1", "2"]
    # The first two trials were not run again: same values, same recorded time.
    for column in ("depth", "score", "time_s"):
        assert list(second[column][:2]) == list(first[column])
    third = tune(blobs, max_trials=3, **kwargs).trials  # finished: nothing restarts
    assert list(third["time_s"]) == list(second["time_s"])
    with pytest.raises(TuningError, match="different settings \\(algorithm\\)"):
        tune(blobs, max_trials=3, **{**kwargs, "algorithm": "grid"})
    fresh = tune(blobs, max_trials=1, overwrite=True, **{**kwargs, "algorithm": "grid"}).trials
    assert len(fresh) == 1


def test_early_stopping_inside_trials_and_callbacks_are_deep_copied(blobs, tmp_path):
    class CountEpochs(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = 0

        def on_epoch_end(self, epoch, logs=None):
            self.epochs += 1

    counter = CountEpochs()
    # 30 validation rows allow at most 31 distinct accuracies, so accuracy cannot strictly
    # improve 40 epochs running: with patience 0 the trial must stop early.
    space = small_space(depth=1).extend(**{"early_stopping.monitor": "val_accuracy",
                                           "early_stopping.patience": 0})
    result = tune(blobs, space=space, algorithm="random", max_trials=1, epochs=40,
                  directory=tmp_path, callbacks=[counter], verbose=0)
    assert result.trials["epochs"][0] < 40
    assert counter.epochs == 0  # keras-tuner trained with a deep copy


def test_onecycle_is_keyed_to_the_trials_own_epochs(blobs):
    x, y = blobs
    space = small_space(depth=1, schedule="onecycle", batch_size=32)
    model = PresetHyperModel(space, (8,), 3, "classification", n_train=300, epochs=9)
    hp = keras_tuner.HyperParameters()
    space.declare(hp)
    # A Hyperband continuation from epoch 3 to 9 trains 6 epochs with a fresh optimizer.
    hp.values.update({"tuner/epochs": 9, "tuner/initial_epoch": 3})
    built = model.build(hp)
    schedule = built.optimizer._learning_rate
    steps = 6 * math.ceil(300 / 32)
    assert built.dnnguide_config.schedule.total_steps == steps
    lr = np.asarray(keras.ops.convert_to_numpy(schedule(np.arange(steps))))
    assert lr[0] == pytest.approx(1e-2 / 25, rel=1e-3)  # the warm-up starts at step 0 again
    assert lr.max() == pytest.approx(1e-2, rel=2e-2)  # and peaks inside this trial's budget
    assert 0.4 * steps <= lr.argmax() <= 0.5 * steps
    assert lr[-1] < lr[0]
    fresh = keras_tuner.HyperParameters()
    space.declare(fresh)
    assert model.config_for(fresh.values).schedule.total_steps == 9 * math.ceil(300 / 32)


def test_recipe_quick_hyperband_over_both_presets(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    import pandas as pd

    path = Path(__file__).resolve().parents[1] / "recipes" / "tune.py"
    spec = importlib.util.spec_from_file_location("recipe_tune", path)
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    metrics = recipe.main(["--quick", "--run-dir", str(tmp_path)])
    assert metrics["trials"] == 4 and metrics["completed"] == 4
    assert metrics["test_accuracy"] > 0.13  # 10 classes: chance is 0.10
    (out,) = tmp_path.iterdir()
    frame = pd.read_csv(out / "trials.csv")
    assert set(frame["preset"]) <= {"default", "self_normalizing"}
    # Hyperband ran a continuation, which trained only its own epochs.
    assert frame["continues_trial"].notna().any()
    assert (frame["epochs"] <= frame["budget_epochs"] - frame["initial_epoch"]).all()
    best = NetworkConfig.from_dict(json.loads((out / "best_config.json").read_text()))
    assert best.depth == metrics["best_hyperparameters"]["depth"]
    assert (out / "plots" / "trials.png").stat().st_size > 1000


def test_oracle_env_names_the_roles_keras_tuner_reads():
    from dnnguide.tuning.worker import oracle_env

    with pytest.raises(ConfigError, match="tuner id"):
        oracle_env("worker", tuner_id="chief-2")
    chief = oracle_env("chief", port=9000)
    assert chief == {"KERASTUNER_TUNER_ID": "chief", "KERASTUNER_ORACLE_IP": "127.0.0.1",
                     "KERASTUNER_ORACLE_PORT": "9000"}


def test_cli_choices_are_the_librarys():
    from dnnguide.commands import tune as command
    from dnnguide.distribute import STRATEGIES
    from dnnguide.tuning import ALGORITHMS

    assert command.ALGORITHMS == ALGORITHMS and command.STRATEGIES is STRATEGIES
