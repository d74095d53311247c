"""LR finder: exponential sweep, divergence stop, bitwise restore, suggestion rules, CLI."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from keras import ops

import dnnguide
from dnnguide.cli import main as cli_main
from dnnguide.config import ConfigError, NetworkConfig
from dnnguide.lr_finder import (
    lr_find,
    minimum_suggestion,
    steepest_suggestion,
    valley_suggestion,
)


@pytest.fixture
def trained_model(blobs):
    """A small model with batch norm whose optimizer already holds state."""
    x, y = blobs
    model = dnnguide.build_model("default", input_shape=(8,), n_outputs=3, depth=2, width=16,
                                 normalization="batch_norm_after", optimizer="adam",
                                 schedule="constant")
    model.fit(x[:64], y[:64], batch_size=16, epochs=1, verbose=0)
    return model


def test_sweep_restores_weights_and_optimizer_state_bitwise(trained_model, blobs):
    x, y = blobs
    weights = trained_model.get_weights()  # includes the batch-norm moving statistics
    opt_state = [ops.convert_to_numpy(v) for v in trained_model.optimizer.variables]
    result = lr_find(trained_model, (x, y), num_steps=40, batch_size=16, verbose=0)
    assert len(result.frame) > 10  # it did train during the sweep
    for before, after in zip(weights, trained_model.get_weights()):
        np.testing.assert_array_equal(before, after)
    after_state = [ops.convert_to_numpy(v) for v in trained_model.optimizer.variables]
    assert len(after_state) == len(opt_state)
    for before, after in zip(opt_state, after_state):
        np.testing.assert_array_equal(before, after)
    # The model trains on with its own optimizer afterwards.
    trained_model.fit(x[:32], y[:32], batch_size=16, epochs=1, verbose=0)
    assert int(trained_model.optimizer.iterations) == int(opt_state[0]) + 2


def test_the_sweep_leaves_decoupled_weight_decay_out_and_the_model_keeps_it(blobs):
    # A decay sized for the training LR removes most of each weight every step at the sweep's
    # LRs, which hid divergence and lifted 1cycle's peak 3-4x (breast_cancer, BENCHMARKS.md).
    x, y = blobs
    frames = []
    for decay in (0.0, 0.77):
        config = NetworkConfig(depth=2, width=16, optimizer={"name": "adamw",
                                                             "weight_decay": decay})
        frames.append(lr_find(config, (x, y), num_steps=60, batch_size=16, verbose=0).frame)
    assert len(frames[0]) > 20
    pd_testing = pytest.importorskip("pandas").testing
    pd_testing.assert_frame_equal(frames[0], frames[1])  # bitwise: no decay in either sweep
    model = dnnguide.build_model("default", input_shape=(8,), n_outputs=3, depth=2, width=16,
                                 optimizer="adamw", weight_decay=0.5, schedule="constant")
    optimizer = model.optimizer
    lr_find(model, (x, y), num_steps=30, batch_size=16, verbose=0)
    assert model.optimizer is optimizer and optimizer.weight_decay == 0.5  # training decays


def test_lr_grows_exponentially_and_suggestion_is_inside_the_range(blobs):
    x, y = blobs
    config = NetworkConfig(depth=2, width=16, optimizer={"name": "nesterov"})
    result = lr_find(config, (x, y), start_lr=1e-6, end_lr=10.0, num_steps=60, batch_size=16,
                     verbose=0)
    lrs = result.frame["lr"].to_numpy()
    assert lrs[0] == pytest.approx(1e-6)
    ratios = lrs[1:] / lrs[:-1]
    np.testing.assert_allclose(ratios, (10.0 / 1e-6) ** (1 / 59), rtol=1e-9)
    for value in result.suggestions.values():
        assert lrs.min() <= value <= lrs.max()
    assert result.rule == "valley" and result.suggestion == result.suggestions["valley"]


def test_sweep_stops_once_the_loss_diverges(blobs):
    x, _ = blobs
    y = x @ np.linspace(-1.0, 1.0, 8) + 0.5  # regression: MSE with SGD blows up at large LRs
    config = NetworkConfig(depth=2, width=16, optimizer={"name": "sgd"})
    result = lr_find(config, (x, y), start_lr=1e-4, end_lr=1e4, num_steps=80, batch_size=16,
                     verbose=0)
    smoothed = result.frame["smoothed_loss"].to_numpy()
    assert result.diverged and len(result.frame) < 80
    last = smoothed[-1]
    assert not np.isfinite(last) or last > 4 * np.nanmin(smoothed[:-1])


def test_suggestion_trains_better_than_the_start_of_the_sweep(blobs):
    x, y = blobs
    config = NetworkConfig(depth=2, width=16, optimizer={"name": "nesterov"},
                           schedule={"name": "constant"}, standardize_inputs=False)
    result = lr_find(config, (x[:240], y[:240]), start_lr=1e-6, end_lr=10.0, num_steps=80,
                     batch_size=16, verbose=0)
    losses = {}
    for lr in (result.suggestion, 1e-6):
        keras.utils.set_random_seed(0)
        model = dnnguide.build_model(config, input_shape=(8,), n_outputs=3, learning_rate=lr)
        history = model.fit(x[:240], y[:240], batch_size=16, epochs=2, verbose=0)
        losses[lr] = history.history["loss"][-1]
    assert losses[result.suggestion] < 0.5 * losses[1e-6], losses


def test_steepest_rule_uses_log_lr_not_linear_lr():
    lrs = np.logspace(-7, 1, 161)
    x = np.log10(lrs)
    # Falls fastest at 1e-3 against log10(LR), then diverges past 1e-1.
    loss = 2.0 - np.tanh(2.0 * (x + 3.0)) + np.exp(3.0 * (x + 1.0)) * (x > -1)
    assert steepest_suggestion(lrs, loss) == pytest.approx(1e-3, rel=0.13)
    valley = valley_suggestion(lrs, loss)
    assert 1e-5 < valley < 1e-1  # on the descending stretch, before the minimum
    lowest = lrs[np.argmin(loss)]
    assert minimum_suggestion(lrs, loss) == pytest.approx(lowest / 10)
    # The flawed rule (gradient against linear LR) divides the slope by the LR and so drifts
    # toward the small LRs of the flat start.
    linear_pick = lrs[np.argmin(np.gradient(loss[:140], lrs[:140]))]
    assert linear_pick < 0.5 * steepest_suggestion(lrs, loss)


def test_bad_arguments_are_refused_before_any_training(trained_model, blobs):
    x, y = blobs
    weights = trained_model.get_weights()
    with pytest.raises(ConfigError, match=r"Argument `rule` must be one of \['valley', 'steepest', 'minimum'\]"):
        lr_find(trained_model, (x, y), rule="fastai", verbose=0)
    with pytest.raises(ConfigError, match="end_lr"):
        lr_find(trained_model, (x, y), start_lr=1.0, end_lr=0.1, verbose=0)
    with pytest.raises(ConfigError, match="compiled"):
        lr_find(keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)]), (x, y), verbose=0)
    for before, after in zip(weights, trained_model.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_cli_lr_find_writes_the_curve_plot_and_suggestion(tmp_path, capsys):
    code = cli_main(["lr-find", "--data", "digits", "--steps", "30", "--run-dir", str(tmp_path),
                     "--verbose", "0", "--depth", "2", "--width", "16"])
    assert code == 0
    (run,) = tmp_path.iterdir()
    info = json.loads((run / "lr_find.json").read_text())
    assert 1e-7 <= info["suggestion"] <= 10.0 and info["rule"] == "valley"
    assert (run / "plots" / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    assert "lr,loss" in (run / "lr_find.csv").read_text().splitlines()[0].replace("step,", "")
    out = capsys.readouterr().out
    assert f"--learning-rate {info['suggestion']:.3g}" in out
    # 1cycle's peak, as fit chooses it: the minimum rule lifted towards 5x AdamW's constant
    # 1e-3, up to a third of the LR at the lowest loss (10x the minimum rule); 5x alone when
    # the sweep never diverged.
    minimum = info["suggestions"]["minimum"]
    peak = max(minimum, min(5e-3, 10 * minimum / 3)) if info["diverged"] else 5e-3
    assert f"--max-lr {peak:.3g}" in out


def test_cli_lr_find_sweeps_the_network_train_would_train(tmp_path):
    # The preset sized for the data, as `dnnguide train` sizes it, not the tables' network.
    from dnnguide.data import load_dataset
    from dnnguide.presets import get_preset

    assert cli_main(["lr-find", "--data", "digits", "--steps", "30", "--run-dir", str(tmp_path),
                     "--verbose", "0"]) == 0
    (run,) = tmp_path.iterdir()
    info = json.loads((run / "lr_find.json").read_text())
    sized = get_preset("default", data=load_dataset("digits", seed=0))
    assert (info["depth"], info["width"]) == (sized.depth, sized.width)
    assert (info["depth"], info["width"]) != (get_preset("default").depth,
                                              get_preset("default").width)


def test_a_preset_name_is_swept_as_fit_would_train_it_sized_for_the_data():
    from dnnguide.data_rules import DataProfile, choose_width
    from dnnguide.lr_finder import _prepare

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 40)).astype("float32"), rng.integers(0, 3, 300)
    model, data, config = _prepare("default", (x, y), seed=0)
    assert config.width == choose_width(DataProfile(len(data.x_train), 40)) == 256
    assert config.regularization.dropout_rate == 0.2  # the small-data rule, as in fit
    assert model.get_layer("hidden_1").units == 256
