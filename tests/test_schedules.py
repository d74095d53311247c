"""Schedules: exact values at chosen steps, round trips inside saved models, and refusals."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

import dnnguide
from dnnguide.config import ConfigError, NetworkConfig, ScheduleConfig
from dnnguide.schedules import (
    ExponentialSchedule,
    OneCycleMomentum,
    OneCycleSchedule,
    PiecewiseConstantSchedule,
    PowerSchedule,
    check_callbacks,
    exponential_decay,
    make_momentum_schedule,
    make_schedule,
    onecycle_lr,
    onecycle_mean_lr,
    onecycle_momentum,
    piecewise_constant,
    plot_schedule,
    power_decay,
    schedule_callbacks,
    training_steps,
)


def values(fn, steps):
    return ops.convert_to_numpy(fn(np.asarray(steps, "float32")))


# --------------------------------------------------------------------------- exact values
def test_power_decay_exact_values():
    got = values(lambda s: power_decay(s, 0.2, decay_steps=10, power=2.0), [0, 10, 30])
    np.testing.assert_allclose(got, [0.2, 0.2 / 4, 0.2 / 16], rtol=1e-6)


def test_exponential_decay_drops_tenfold_every_decay_steps():
    got = values(lambda s: exponential_decay(s, 0.5, decay_steps=100), [0, 50, 100, 200])
    np.testing.assert_allclose(got, [0.5, 0.5 * 10 ** -0.5, 0.05, 0.005], rtol=1e-5)


def test_piecewise_constant_switches_at_each_boundary():
    got = values(lambda s: piecewise_constant(s, [10, 20], [1.0, 0.5, 0.1]), [0, 9, 10, 19, 20, 99])
    np.testing.assert_allclose(got, [1.0, 1.0, 0.5, 0.5, 0.1, 0.1], rtol=1e-7)


def test_onecycle_lr_three_phases():
    # 101 steps, pct_start 0.25: knots at 0, 25, 50 and 100.
    lr = lambda s: onecycle_lr(s, 101, 1.0, pct_start=0.25, div_factor=20.0,
                               final_div_factor=1000.0)
    got = values(lr, [0, 12.5, 25, 37.5, 50, 75, 100, 500])
    start, final = 1.0 / 20, 1.0 / 1000
    expected = [start, (start + 1) / 2, 1.0, (start + 1) / 2, start, (start + final) / 2, final,
                final]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize("pct_start", [0.1, 0.25, 0.45])
def test_onecycle_mean_lr_is_the_schedules_mean_over_its_steps(pct_start):
    # what the weight-decay rule divides by under 1cycle (fit_setup.decay_over_the_cycle)
    steps = np.arange(100_001)
    sampled = values(lambda s: onecycle_lr(s, len(steps), 3e-3, pct_start, 25.0, 1e4), steps)
    assert onecycle_mean_lr(3e-3, pct_start, 25.0, 1e4) == pytest.approx(sampled.mean(), rel=1e-4)
    # rise and fall average (start + peak) / 2 each, the anneal (start + end) / 2
    assert onecycle_mean_lr(1.0, 0.5, 10.0, 1e4) == pytest.approx(0.55)


def test_onecycle_momentum_moves_inversely_to_lr():
    mom = lambda s: onecycle_momentum(s, 101, 0.25, 0.95, 0.85)
    np.testing.assert_allclose(values(mom, [0, 12.5, 25, 50, 75, 100, 300]),
                               [0.95, 0.90, 0.85, 0.95, 0.95, 0.95, 0.95], rtol=1e-6)
    steps = np.arange(101, dtype="float32")
    lr = values(lambda s: onecycle_lr(s, 101, 1.0, 0.25), steps)
    m = values(mom, steps)
    rising = steps[1:] <= 50
    # While the LR rises the momentum falls and vice versa.
    assert np.all(np.sign(np.diff(lr))[rising[:len(steps) - 1]] == -np.sign(np.diff(m))[rising[:100]])


def test_keras_wrappers_equal_the_pure_functions():
    steps = np.arange(0, 300, 7, dtype="float32")
    pairs = [
        (PowerSchedule(0.1, 50, 0.5), lambda s: power_decay(s, 0.1, 50, 0.5)),
        (ExponentialSchedule(0.1, 50), lambda s: exponential_decay(s, 0.1, 50)),
        (PiecewiseConstantSchedule([30, 90], [0.1, 0.01, 0.001]),
         lambda s: piecewise_constant(s, [30, 90], [0.1, 0.01, 0.001])),
        (OneCycleSchedule(0.3, 280, 0.3), lambda s: onecycle_lr(s, 280, 0.3, 0.3)),
        (OneCycleMomentum(280, 0.3), lambda s: onecycle_momentum(s, 280, 0.3)),
    ]
    for schedule, fn in pairs:
        np.testing.assert_allclose(values(schedule, steps), values(fn, steps), rtol=1e-6)
    # Keras computes the exponential schedule itself (no copy of its math here).
    assert isinstance(pairs[1][0], keras.optimizers.schedules.ExponentialDecay)


def test_make_schedule_maps_every_config():
    assert make_schedule(ScheduleConfig("constant"), 0.01) == 0.01
    assert make_schedule(ScheduleConfig("performance"), 0.01) == 0.01
    assert float(make_schedule(ScheduleConfig("power", decay_steps=10), 0.1)(10)) == \
        pytest.approx(0.05)
    assert float(make_schedule(ScheduleConfig("exponential", decay_steps=10), 0.1)(10)) == \
        pytest.approx(0.01)
    piece = make_schedule(ScheduleConfig("piecewise", boundaries=(5,), values=(0.1, 0.02)), 1.0)
    assert float(piece(5)) == pytest.approx(0.02)
    one = make_schedule(ScheduleConfig("onecycle", total_steps=11, pct_start=0.5), 0.4)
    assert float(one(5)) == pytest.approx(0.4)  # max_lr defaults to the optimizer's LR
    one = make_schedule(ScheduleConfig("onecycle", total_steps=11, max_lr=2.0), 0.4)
    assert float(one(0)) == pytest.approx(2.0 / 25)


# --------------------------------------------------------------------------- refusals
def test_onecycle_without_total_steps_is_refused_with_a_fix():
    with pytest.raises(ConfigError, match="total_steps"):
        make_schedule(ScheduleConfig("onecycle"), 0.1)
    with pytest.raises(ConfigError, match="Argument `pct_start` must be in"):
        OneCycleSchedule(0.1, 100, pct_start=0.6)
    with pytest.raises(ConfigError, match="Received: decay_steps=0"):
        PowerSchedule(0.1, 0)


def test_performance_with_a_schedule_refused_directly():
    opt = keras.optimizers.SGD(OneCycleSchedule(0.1, 100))
    with pytest.raises(ConfigError, match="ReduceLROnPlateau"):
        check_callbacks(opt, [keras.callbacks.ReduceLROnPlateau()])
    check_callbacks(keras.optimizers.SGD(0.1), [keras.callbacks.ReduceLROnPlateau()])  # fine
    check_callbacks(opt, [keras.callbacks.EarlyStopping()])  # fine


def test_onecycle_with_user_reduce_on_plateau_refused_before_training(blobs):
    x, y = blobs
    started = []
    spy = keras.callbacks.LambdaCallback(on_train_begin=lambda logs: started.append(True))
    with pytest.raises(ConfigError, match="ReduceLROnPlateau"):
        dnnguide.fit("default", (x, y), run_dir=None, schedule="onecycle", depth=2, epochs=2,
                     callbacks=[keras.callbacks.ReduceLROnPlateau(), spy], verbose=0)
    assert started == []


def test_performance_schedule_is_a_callback_with_the_guideline_defaults():
    (callback,) = schedule_callbacks(ScheduleConfig("performance"))
    assert isinstance(callback, keras.callbacks.ReduceLROnPlateau)
    assert (callback.factor, callback.patience, callback.min_lr) == (0.5, 5, 1e-6)
    (logger,) = schedule_callbacks(ScheduleConfig("onecycle", total_steps=10))
    assert not isinstance(logger, keras.callbacks.ReduceLROnPlateau)


def test_fit_history_records_the_scheduled_learning_rate(blobs):
    x, y = blobs
    result = dnnguide.fit("default", (x, y), run_dir=None, depth=1, width=8, epochs=3,
                          batch_size=30, schedule="exponential", decay_steps=8,
                          learning_rate=0.01, verbose=0)
    # 216 training rows (60 test, 24 validation held out) / 30 = 8 steps per epoch: the LR
    # drops tenfold per epoch.
    np.testing.assert_allclose(result.history["learning_rate"], [1e-3, 1e-4, 1e-5], rtol=1e-5)


def test_training_steps_counts_a_hyperband_continuation_budget():
    assert training_steps(100, 32, epochs=3) == 12
    assert training_steps(100, 32, epochs=10, initial_epoch=7) == 12
    with pytest.raises(ConfigError, match="initial_epoch"):
        training_steps(100, 32, epochs=3, initial_epoch=3)


# --------------------------------------------------------------------------- saved models
SCHEDULES = {
    "power": {"name": "power", "decay_steps": 7, "power": 0.5},
    "exponential": {"name": "exponential", "decay_steps": 9},
    "piecewise": {"name": "piecewise", "boundaries": [4, 8], "values": [0.01, 0.005, 0.001]},
    "onecycle": {"name": "onecycle", "total_steps": 30, "pct_start": 0.3},
}


@pytest.mark.parametrize("schedule, optimizer", [
    ("power", "nesterov"), ("exponential", "adam"), ("piecewise", "rmsprop"),
    ("onecycle", "momentum"), ("onecycle", "adamw"), ("onecycle", "nadam"),
])
def test_schedule_round_trips_inside_a_saved_model(tmp_path, blobs, schedule, optimizer):
    x, y = blobs
    config = NetworkConfig(depth=2, width=8, standardize_inputs=False,
                           optimizer={"name": optimizer, "learning_rate": 0.01},
                           schedule=SCHEDULES[schedule])
    model = dnnguide.build_model(config, input_shape=(8,), n_outputs=3)
    model.fit(x[:64], y[:64], batch_size=16, epochs=1, verbose=0)  # 4 steps: mid-schedule
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    opt, opt2 = model.optimizer, loaded.optimizer
    assert type(opt2) is type(opt)
    assert type(opt2._learning_rate) is type(opt._learning_rate)
    assert opt2._learning_rate.get_config() == opt._learning_rate.get_config()
    assert int(opt2.iterations) == 4
    assert float(opt2.learning_rate) == float(opt.learning_rate)
    if schedule == "onecycle":
        assert opt2.momentum_schedule.get_config() == opt.momentum_schedule.get_config()
    # Same state, same next step: the reloaded model trains on exactly as the original.
    model.train_on_batch(x[64:80], y[64:80])
    loaded.train_on_batch(x[64:80], y[64:80])
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_performance_reduced_lr_survives_save(tmp_path, blobs):
    x, y = blobs
    model = dnnguide.build_model("default", input_shape=(8,), n_outputs=3, depth=2)
    model.fit(x[:32], y[:32], epochs=1, verbose=0)
    model.optimizer.learning_rate = 2.5e-4  # what ReduceLROnPlateau does after a plateau
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert float(loaded.optimizer.learning_rate) == pytest.approx(2.5e-4)


# --------------------------------------------------------------------------- plot
def test_plot_schedule_writes_a_png_with_momentum(tmp_path):
    path = tmp_path / "onecycle.png"
    fig = plot_schedule(ScheduleConfig("onecycle"), 0.1, total_steps=200, path=path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes) == 2  # LR and the momentum twin axis
    assert make_momentum_schedule(ScheduleConfig("power")) is None
