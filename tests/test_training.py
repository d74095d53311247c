"""The runner: callbacks the config implies, the run directory, resuming, refusing bad input."""

from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest

import dnnguide
from dnnguide.data import DataError
from dnnguide.runs import new_run_dir
from dnnguide.training import InputScaleWarning

SMALL = dict(depth=2, width=16)


def test_run_directory_holds_everything(blobs, tmp_path):
    x, y = blobs
    result = dnnguide.fit("default", (x, y), run_dir=tmp_path, epochs=3, seed=7, verbose=0,
                          **SMALL)
    run = result.run_dir
    assert run.parent == tmp_path and run.name.endswith("-default")
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "run.json", "history.csv", "metrics.json", "model.keras", "plots",
            "tensorboard"} <= names
    assert (run / "checkpoint" / "latest" / "state.json").exists()  # kept: more epochs later
    assert "lock" not in names  # released once training ended
    assert not [n for n in names if n.endswith(".tmp") or n.startswith(".")]
    assert (run / "plots" / "learning_curves.png").stat().st_size > 5000
    assert any((run / "tensorboard").rglob("events.out.tfevents.*"))
    info = json.loads((run / "run.json").read_text())
    assert info["seed"] == 7 and info["status"] == "complete"
    assert {"keras", "tensorflow", "numpy", "device", "python"} <= set(info["environment"])
    assert dnnguide.NetworkConfig.from_dict(json.loads((run / "config.json").read_text())) == (
        result.config)
    history = pd.read_csv(run / "history.csv")
    assert len(history) == 3 and {"loss", "val_loss", "val_accuracy"} <= set(history.columns)
    reloaded = keras.saving.load_model(run / "model.keras")
    np.testing.assert_allclose(reloaded.predict(x[:20], verbose=0),
                               result.model.predict(x[:20], verbose=0), atol=1e-6)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] == pytest.approx(result.metrics["test_accuracy"])


def test_runs_are_never_overwritten(tmp_path):
    first, second = new_run_dir(tmp_path, "same"), new_run_dir(tmp_path, "same")
    assert first != second and first.exists() and second.exists()


def test_arrays_get_a_real_test_split_recorded_in_the_run(blobs, tmp_path):
    x, y = blobs
    result = dnnguide.fit("default", (x, y), run_dir=tmp_path, epochs=1, verbose=0, **SMALL)
    data = result.data
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (216, 24, 60)
    # The test rows are neither validation rows (early stopping watched those) nor training rows.
    rows = lambda a: {r.tobytes() for r in a}
    assert not rows(data.x_test) & rows(data.x_val) and not rows(data.x_test) & rows(data.x_train)
    assert "val_loss" in result.history
    notes = json.loads((result.run_dir / "run.json").read_text())["data_summary"]["notes"]
    assert any("test split: 60 rows" in n for n in notes)
    assert any("task inferred as 'classification'" in n for n in notes)


def test_early_stopping_restores_the_best_weights(blobs):
    x, _ = blobs
    y = np.random.default_rng(0).integers(0, 3, len(x))  # noise: validation loss soon rises
    result = dnnguide.fit("default", (x, y), run_dir=None, epochs=60, verbose=0, depth=2,
                          width=64, learning_rate=0.01, calibration="none",
                          **{"early_stopping.patience": 2})
    history = result.history
    assert len(history) < 60
    # The best epoch from the first one early stopping counts (the small-data rule: epoch 11).
    counted = history["val_loss"].iloc[result.config.early_stopping.start_from_epoch:]
    val = result.model.evaluate(result.data.x_val, result.data.y_val, verbose=0)
    assert val[0] == pytest.approx(counted.min(), rel=1e-4)
    assert val[0] < history["val_loss"].iloc[-1]


def test_divergence_is_stopped_and_reported(blobs):
    x, y = blobs
    with pytest.warns(RuntimeWarning, match="diverged"):
        result = dnnguide.fit("default", (x * 1e3, y), run_dir=None, epochs=20, verbose=0,
                              optimizer="sgd", learning_rate=1e6, standardize_inputs=False,
                              **SMALL)
    assert len(result.history) < 20  # TerminateOnNaN ended it


def test_same_seed_same_weights(blobs):
    x, y = blobs
    a = dnnguide.fit("default", (x, y), run_dir=None, epochs=2, seed=3, verbose=0, **SMALL)
    b = dnnguide.fit("default", (x, y), run_dir=None, epochs=2, seed=3, verbose=0, **SMALL)
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_runs_load_returns_a_table(blobs, tmp_path):
    x, y = blobs
    for preset in ("default", "self_normalizing"):
        dnnguide.fit(preset, (x, y), run_dir=tmp_path, epochs=1, verbose=0, **SMALL)
    frame = dnnguide.runs.load(tmp_path)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 2
    assert set(frame["preset"]) == {"default", "self_normalizing"}
    assert frame["test_accuracy"].between(0, 1).all() and (frame["status"] == "complete").all()


def test_model_outputs_must_fit_the_labels(blobs):
    x, y = blobs
    model = dnnguide.build_model("default", (8,), 2, **SMALL)  # 2 classes, labels go to 2
    with pytest.raises(DataError, match=r"must be in \[0, 1\] for a model with 2 outputs"):
        dnnguide.fit(model, (x, y), run_dir=None, epochs=1)


def test_overrides_on_a_built_model_are_refused(blobs):
    model = dnnguide.build_model("default", (8,), 3, **SMALL)
    with pytest.raises(dnnguide.ConfigError, match=r"\['depth'\]"):
        dnnguide.fit(model, blobs, run_dir=None, depth=3)


def test_unstandardized_inputs_warn_for_selu(blobs):
    x, y = blobs
    with pytest.warns(InputScaleWarning, match="standardized inputs"):
        dnnguide.fit("self_normalizing", (x * 10 + 5, y), run_dir=None, epochs=1, verbose=0,
                     standardize_inputs=False, **SMALL)


def test_mc_dropout_runs_report_the_averaged_prediction(blobs):
    result = dnnguide.fit("risk_sensitive", blobs, run_dir=None, epochs=3, verbose=0, ensemble=1,
                          **SMALL)
    metrics = result.metrics
    assert {"test_mc_accuracy", "test_mc_nll", "test_mc_ece", "test_mc_brier"} <= set(metrics)
    assert 0.5 < metrics["test_mc_accuracy"] <= 1.0  # an easy problem: the MC mean gets it
    plain = dnnguide.fit("default", blobs, run_dir=None, epochs=1, verbose=0, **SMALL)
    assert not any(k.startswith("test_mc_") for k in plain.metrics)


# --------------------------------------------------------------------------- plots (issue 15.5)
def _history(n, loss_start, val_best):
    loss = loss_start * 0.5 ** np.arange(n)
    val = np.abs(np.arange(n) - (val_best - 1)) * 0.01 + loss.min()
    return pd.DataFrame({"epoch": range(n), "loss": loss, "accuracy": np.linspace(0.5, 1, n),
                         "val_loss": val, "val_accuracy": np.linspace(0.4, 0.9, n),
                         "learning_rate": 1e-3 * 0.1 ** (np.arange(n) // 4)})


def _labels(ax):
    return [line.get_label() for line in ax.get_lines()]


def test_learning_curves_mark_best_epoch_early_stop_and_lr():
    from dnnguide.training import learning_curves_figure

    fig = learning_curves_figure(_history(10, 4.0, val_best=4), epochs=30)
    loss_ax, acc_ax, lr_ax = fig.axes
    assert loss_ax.get_yscale() == "log"  # 4.0 down to 0.008: three decades
    assert (loss_ax.get_xlabel(), loss_ax.get_ylabel()) == ("epoch", "loss")
    assert (acc_ax.get_ylabel(), acc_ax.get_yscale()) == ("accuracy", "linear")
    for ax in (loss_ax, acc_ax, lr_ax):
        assert "best epoch (4)" in _labels(ax)
        assert "early stop (epoch 10 of 30)" in _labels(ax)
    assert (lr_ax.get_ylabel(), lr_ax.get_yscale()) == ("learning rate", "log")
    np.testing.assert_allclose(lr_ax.get_lines()[0].get_ydata()[[0, 4, 8]], [1e-3, 1e-4, 1e-5])


def test_learning_curves_without_early_stop_stay_linear():
    from dnnguide.training import learning_curves_figure

    history = _history(6, 1.0, val_best=6)
    history["loss"] = np.linspace(1.0, 0.5, 6)  # within a decade
    history["val_loss"] = np.linspace(0.9, 0.6, 6)
    history["learning_rate"] = 1e-3
    fig = learning_curves_figure(history, epochs=6)
    loss_ax, _, lr_ax = fig.axes
    assert loss_ax.get_yscale() == "linear" and lr_ax.get_yscale() == "linear"
    assert "best epoch (6)" in _labels(loss_ax)
    assert not [label for label in _labels(loss_ax) if label.startswith("early stop")]


def test_learning_curves_mark_the_best_epoch_the_run_recorded():
    # Early stopping that ignores 10 epochs restores the best counted epoch, not epoch 4.
    from dnnguide.training import learning_curves_figure

    fig = learning_curves_figure(_history(14, 4.0, val_best=4), epochs=30, best_epoch=12)
    for ax in fig.axes:
        assert "best epoch (12)" in _labels(ax) and "best epoch (4)" not in _labels(ax)


def test_onecycle_run_saves_its_schedule_plot(blobs, tmp_path):
    import matplotlib.image

    from dnnguide.schedules import plot_schedule

    x, y = blobs
    result = dnnguide.fit("default", (x, y), run_dir=tmp_path / "runs", epochs=2, verbose=0,
                          schedule="onecycle", **SMALL)
    saved = result.run_dir / "plots" / "onecycle_schedule.png"
    schedule = result.config.schedule
    assert schedule.total_steps == 2 * int(np.ceil(len(result.data.x_train) / 32))
    # The plot is the schedule this run followed (its steps and peak), pixel for pixel.
    plot_schedule(schedule, result.config.optimizer.learning_rate, schedule.total_steps,
                  tmp_path / "expected.png")
    np.testing.assert_array_equal(matplotlib.image.imread(saved),
                                  matplotlib.image.imread(tmp_path / "expected.png"))
    plain = dnnguide.fit("default", (x, y), run_dir=tmp_path / "runs", epochs=1, verbose=0,
                         **SMALL)
    assert not (plain.run_dir / "plots" / "onecycle_schedule.png").exists()


@pytest.mark.parametrize("optimizer, lr, minimum, diverged, peak", [
    ("adamw", 1e-3, 1.6e-3, True, 5e-3),     # mnist1d's sweep: the floor lifts the peak to 5x
    ("adamw", 1e-3, 2e-2, True, 2e-2),       # a small set's sweep: the finder's value stands
    ("adamw", 1e-3, 1.2e-3, True, 4e-3),     # the floor stops at a third of the lowest loss's LR
    ("nesterov", 1e-2, 1.5e-3, True, 5e-3),  # SELU + Nesterov on mnist1d: 5x (0.05) diverged
    ("nesterov", 1e-2, 0.63, False, 5e-2),   # a sweep that never turned up bounds nothing
])
def test_onecycle_peak_is_the_finder_minimum_lifted_towards_5x_the_constant_lr(
        blobs, monkeypatch, optimizer, lr, minimum, diverged, peak):
    import dnnguide.fit_setup as fit_setup
    from dnnguide.lr_finder import LRFinderResult

    rules = []

    def sweep(config, data, seed, rule):
        rules.append(rule)
        return LRFinderResult(None, minimum, rule, {rule: minimum}, diverged, 1e-7, 10.0)

    monkeypatch.setattr(fit_setup, "_sweep", sweep)
    result = dnnguide.fit("default", blobs, run_dir=None, epochs=1, verbose=0,
                          schedule="onecycle", optimizer=optimizer, learning_rate=lr, **SMALL)
    assert rules == ["minimum"]
    assert result.config.schedule.max_lr == pytest.approx(peak)
    assert result.config.optimizer.learning_rate == lr
    # A peak the user gives is used as given: no sweep, no floor.
    given = dnnguide.fit("default", blobs, run_dir=None, epochs=1, verbose=0, schedule="onecycle",
                         max_lr=1e-4, **SMALL)
    assert given.config.schedule.max_lr == 1e-4 and rules == ["minimum"]


def test_a_dataset_by_name_or_as_an_object_trains_the_same_weights():
    # Generating mnist1d draws from the global generators; fit seeds after loading, so both
    # spellings of the same data and seed start from, and end at, the same weights.
    by_name = dnnguide.fit("default", "mnist1d", run_dir=None, seed=3, epochs=1, verbose=0,
                           **SMALL)
    data = dnnguide.load_dataset("mnist1d", seed=3)
    by_object = dnnguide.fit("default", data, run_dir=None, seed=3, epochs=1, verbose=0,
                             **SMALL)
    for a, b in zip(by_name.model.get_weights(), by_object.model.get_weights()):
        np.testing.assert_array_equal(a, b)
