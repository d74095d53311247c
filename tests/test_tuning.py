"""Tests of dnnguide.tuning: spaces as data, searches, failed trials, resume, 1cycle budgets."""

from __future__ import annotations

import math

import keras
import keras_tuner
import numpy as np
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
    assert not (tmp_path / "t").exists()


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


def test_forbidden_combination_is_a_failed_trial_with_its_reason(blobs, tmp_path):
    space = small_space(depth=1, activation=["elu", "selu"])  # SELU breaks the default preset
    result = tune(blobs, space=space, algorithm="grid", max_trials=2, epochs=2,
                  directory=tmp_path, verbose=0)
    frame = result.trials.set_index("activation")
    assert frame.loc["elu", "status"] == "COMPLETED"
    assert frame.loc["selu", "status"] == "FAILED"
    assert "ConfigError" in frame.loc["selu", "error"]
    assert "LeCun" in frame.loc["selu", "error"]
    assert result.best_config.activation == "elu"


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
