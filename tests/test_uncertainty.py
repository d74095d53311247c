"""MC dropout prediction, calibration metrics, plots and the `dnnguide uncertainty` command."""

from __future__ import annotations

import json

import importlib.util
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

import dnnguide
from dnnguide.config import ConfigError
from dnnguide.uncertainty import (
    NoDropoutWarning, brier_score, calibration_bins,
    expected_calibration_error, mc_predict, negative_log_likelihood, predictive_entropy,
    rejection_curve, reliability_diagram, uncertainty_histogram,
)
from dnnguide.uncertainty_report import compare_mc_dropout

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bn_dropout_model():
    """Trained, with BatchNormalization (moving stats far from 0/1) and standard dropout.

    Shared by the module's tests (training is the slow part); none of them may change it.
    """
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, size=(3, 8))
    y = rng.integers(0, 3, size=300)
    x = (centers[y] + rng.normal(0, 1, size=(300, 8))).astype("float32")
    model = dnnguide.build_model("default", (8,), 3, depth=2, width=16, dropout_rate=0.3,
                                 normalization="batch_norm_after", standardize_inputs=False,
                                 dropout_layers=2)  # dropout before a BN layer too
    model.fit(x * 4 + 2, y, epochs=2, batch_size=32, verbose=0)
    return model, x * 4 + 2, y.astype("int64")


def _snapshot(model):
    return [(w.path, np.array(w.numpy(), copy=True)) for w in model.weights]


def _unchanged(model, snapshot) -> bool:
    now = _snapshot(model)
    return len(now) == len(snapshot) and all(
        pa == pb and np.array_equal(a, b) for (pa, a), (pb, b) in zip(now, snapshot))


# --------------------------------------------------------------------------- mc_predict
def test_mc_predict_leaves_every_weight_and_bn_stat_bitwise_unchanged(bn_dropout_model, blobs):
    model, x, _ = bn_dropout_model
    before = _snapshot(model)
    assert any("moving_mean" in path for path, _ in before)
    pred = mc_predict(model, x, n_samples=20, seed=0)
    assert _unchanged(model, before)
    assert pred.std.max() > 0  # dropout really was on
    # the same holds for a model that already has MC layers (risk_sensitive preset + BN)
    mc_model = dnnguide.build_model("risk_sensitive", (8,), 3, depth=2, width=16,
                                    normalization="batch_norm_after")
    mc_model.fit(*blobs, epochs=1, verbose=0)
    before = _snapshot(mc_model)
    mc_predict(mc_model, x, n_samples=20)
    assert _unchanged(mc_model, before)


def test_training_true_changes_bn_stats_control(bn_dropout_model):
    # The pattern mc_predict avoids: proves the check above can fail.
    model, x, _ = bn_dropout_model
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    before = _snapshot(copy)
    copy(x, training=True)
    assert not _unchanged(copy, before)


def test_mc_mean_of_a_dropout_free_model_equals_the_plain_prediction(blobs):
    x, _ = blobs
    model = dnnguide.build_model("default", (8,), 3, depth=2, width=16,
                                 normalization="batch_norm_after")
    with pytest.warns(NoDropoutWarning, match="no dropout layers"):
        pred = mc_predict(model, x, n_samples=7)
    np.testing.assert_allclose(pred.mean, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert np.all(pred.std < 1e-6) and np.all(pred.mutual_information < 1e-5)


def test_mc_statistics_match_the_samples_whatever_the_chunking(bn_dropout_model):
    model, x, _ = bn_dropout_model
    # max_rows=16 with batch_size=5: 3 samples per call, 7 sample chunks per input chunk
    for kwargs in ({}, {"max_rows": 16, "batch_size": 5}):
        pred = mc_predict(model, x[:23], n_samples=20, return_samples=True, seed=1, **kwargs)
        s = pred.samples.astype("float64")
        assert s.shape == (20, 23, 3)
        assert len({tuple(np.round(s[i, 0], 6)) for i in range(20)}) > 10  # distinct samples
        np.testing.assert_allclose(pred.mean, s.mean(0), atol=1e-6)
        np.testing.assert_allclose(pred.std, s.std(0), atol=1e-6)
        np.testing.assert_allclose(pred.entropy, predictive_entropy(s.mean(0)), atol=1e-5)
        sample_entropy = np.mean([predictive_entropy(si) for si in s], axis=0)
        np.testing.assert_allclose(pred.mutual_information,
                                   np.clip(pred.entropy - sample_entropy, 0, None), atol=1e-5)


def test_mc_moments_match_the_analytic_dropout_distribution():
    # y = x * mask / (1 - p) with p = 0.5: samples are 0 or 2x, so mean x and std |x|.
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dropout(0.5),
                              keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")])
    x = np.array([[1.0], [-2.0], [3.0]], "float32")
    pred = mc_predict(model, x, n_samples=4000, seed=0)
    assert pred.task == "regression" and pred.entropy is None
    np.testing.assert_allclose(pred.mean[:, 0], x[:, 0], rtol=0.06)
    np.testing.assert_allclose(pred.std[:, 0], np.abs(x[:, 0]), rtol=0.06)


def test_mc_predict_is_seeded_and_agrees_with_the_naive_loop(bn_dropout_model):
    model, x, _ = bn_dropout_model
    a = mc_predict(model, x[:50], n_samples=30, seed=3)
    b = mc_predict(model, x[:50], n_samples=30, seed=3)
    np.testing.assert_array_equal(a.mean, b.mean)
    # same distribution as one forward pass per sample (tiling gives every row its own mask)
    mc = dnnguide.layers.to_mc_dropout(model)
    with dnnguide.layers.mc_sampling():
        naive = np.stack([mc(x[:50]) for _ in range(300)])
    big = mc_predict(model, x[:50], n_samples=400, seed=4)
    # sampling noise alone gives ~0.012 here; no dropout (std 0) or BN in training mode: > 0.1
    assert np.abs(big.mean - naive.mean(0)).mean() < 0.025
    assert np.abs(big.std - naive.std(0)).mean() < 0.025



def test_layers_before_the_first_dropout_run_once_per_input(bn_dropout_model):
    # The sampler tiles the output of the layers before any dropout, not the input: the same
    # samples (same seed, same masks) as tiling the input, without repeating that work per sample.
    model, x, _ = bn_dropout_model
    predictor = dnnguide.uncertainty.MCDropoutPredictor(model, seed=0)
    prefix, suffix = predictor._split
    assert [layer.name for layer in prefix.layers[1:]] == ["hidden_1", "batch_norm_1"]
    assert type(suffix.layers[1]).__name__ == "MCDropout"
    tiling_the_input = dnnguide.uncertainty.MCDropoutPredictor(model, seed=0)
    tiling_the_input._split = None
    a = predictor.predict(x[:30], n_samples=20, return_samples=True)
    b = tiling_the_input.predict(x[:30], n_samples=20, return_samples=True)
    assert a.samples.std(0).max() > 0.01
    np.testing.assert_allclose(a.samples, b.samples, rtol=1e-5, atol=1e-6)


def test_the_input_is_tiled_where_the_graph_does_not_split(blobs):
    from dnnguide.uncertainty.sampler import _split_at_first_dropout

    x, _ = blobs
    dropout_first = keras.Sequential([keras.Input((8,)), dnnguide.MCDropout(0.5),
                                      keras.layers.Dense(3, activation="softmax")])
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(8)(inputs)
    sampled = keras.layers.Dense(3)(dnnguide.MCDropout(0.5)(hidden))
    bypass = keras.layers.Dense(3)(inputs)  # a path to the output that skips the cut
    skip = keras.Model(inputs, keras.layers.Softmax()(keras.layers.Add()([sampled, bypass])))
    for model in (dropout_first, skip):
        assert _split_at_first_dropout(model) is None
        assert mc_predict(model, x[:10], n_samples=10, seed=0).std.max() > 0
    residual = dnnguide.build_model("risk_sensitive", (8,), 3, depth=3, width=8,
                                    architecture="residual")
    assert _split_at_first_dropout(residual) is not None

def test_binary_model_gets_entropy_from_both_classes(blobs):
    x, y = blobs
    model = dnnguide.build_model("risk_sensitive", (8,), 1, task="binary", depth=2, width=8)
    pred = mc_predict(model, x[:40], n_samples=10)
    assert pred.task == "binary" and pred.mean.shape == (40, 1)
    p = pred.mean[:, 0].astype("float64")
    expected = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    np.testing.assert_allclose(pred.entropy, expected, rtol=1e-4)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_samples": 0}, r"Argument `n_samples` must be in \[1, inf\]. Received: n_samples=0"),
    ({"n_samples": 2.5}, r"`n_samples` must be an integer"),
    ({"batch_size": 0}, r"Argument `batch_size`"),
    ({"max_rows": -1}, r"Argument `max_rows`"),
    ({"task": "regresion"}, r"Argument `task` must be one of .*Did you mean 'regression'"),
])
def test_bad_arguments_are_refused(bn_dropout_model, kwargs, match):
    model, x, _ = bn_dropout_model
    with pytest.raises(ConfigError, match=match):
        mc_predict(model, x, **kwargs)


def test_wrong_input_shape_and_logits_are_refused(bn_dropout_model):
    model, x, _ = bn_dropout_model
    with pytest.raises(ValueError, match=r"shape \(n, 8\). Received: x of shape \(300, 5\)"):
        mc_predict(model, x[:, :5], n_samples=2)
    logits = keras.Sequential([keras.Input((8,)), keras.layers.Dropout(0.2),
                               keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="must output probabilities"):
        mc_predict(logits, x, n_samples=2, task="classification")


# --------------------------------------------------------------------------- metrics
def test_ece_of_a_perfectly_calibrated_case_is_zero():
    # in each bin, the share of correct predictions equals the confidence exactly
    probs, labels = [], []
    for confidence in (0.55, 0.65, 0.75, 0.85, 0.95):
        n_correct = round(confidence * 100)
        probs += [[1 - confidence, confidence]] * 100
        labels += [1] * n_correct + [0] * (100 - n_correct)
    assert expected_calibration_error(labels, probs) < 1e-12
    assert expected_calibration_error(labels, probs, n_bins=5) < 1e-12


def test_ece_of_a_miscalibrated_case_matches_a_hand_computation():
    y = np.array([0, 1, 2, 2, 0])
    probs = np.array([[0.9, 0.05, 0.05],   # correct, conf 0.9
                      [0.9, 0.05, 0.05],   # wrong,   conf 0.9
                      [0.2, 0.2, 0.6],     # correct, conf 0.6
                      [0.6, 0.2, 0.2],     # wrong,   conf 0.6
                      [0.34, 0.33, 0.33]])  # correct, conf 0.34
    # 15 bins: {0.9}: acc 1/2 -> gap 0.4 (x2); {0.6}: acc 1/2 -> 0.1 (x2); {0.34}: 0.66 (x1)
    expected = (2 * 0.4 + 2 * 0.1 + 0.66) / 5
    assert expected_calibration_error(y, probs) == pytest.approx(expected, abs=1e-12)
    # 2 bins: (0, .5] holds 0.34 (gap .66); (.5, 1] holds 4 with conf .75, acc .5 (gap .25)
    assert expected_calibration_error(y, probs, n_bins=2) == pytest.approx(
        (0.66 + 4 * 0.25) / 5, abs=1e-12)
    bins = calibration_bins(y, probs)
    assert bins["count"].sum() == 5 and bins["count"].iloc[13] == 2  # 0.9 in (0.8667, 0.9333]
    with pytest.raises(ConfigError, match="Argument `n_bins`"):
        expected_calibration_error(y, probs, n_bins=0)


def test_nll_and_brier_match_hand_computations_and_sklearn():
    from sklearn.metrics import brier_score_loss

    y = np.array([0, 2, 1])
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.25, 0.5, 0.25]])
    assert negative_log_likelihood(y, probs) == pytest.approx(
        -(np.log(0.7) + np.log(0.6) + np.log(0.5)) / 3)
    hand = ((0.3**2 + 0.2**2 + 0.1**2) + (0.1**2 + 0.3**2 + 0.4**2)
            + (0.25**2 + 0.5**2 + 0.25**2)) / 3
    assert brier_score(y, probs) == pytest.approx(hand)
    assert brier_score(y, probs) == pytest.approx(
        brier_score_loss(y, probs, labels=[0, 1, 2], scale_by_half=False))
    with pytest.raises(ValueError, match=r"labels in \[0, 2\]"):
        brier_score([0, 3, 1], probs)


def test_rejection_curve_rises_when_uncertainty_ranks_the_errors():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    probs = np.tile([[0.8, 0.2]], (10, 1))  # all predict 0: 4 right, 6 wrong
    uncertainty = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])  # the wrong ones are the uncertain
    curve = rejection_curve(y, probs, uncertainty, fractions=[0.0, 0.3, 0.6])
    np.testing.assert_allclose(curve["accuracy"], [0.4, 4 / 7, 1.0])
    np.testing.assert_array_equal(curve["kept"], [10, 7, 4])


def test_plots_are_pngs_and_never_overwrite(tmp_path, blobs):
    _, y = blobs
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=len(y))
    sharper = probs ** 2 / (probs ** 2).sum(1, keepdims=True)
    path = reliability_diagram(y, {"a": probs, "b": sharper}, tmp_path / "rel.png")
    assert path.read_bytes()[:8] == PNG
    with pytest.raises(FileExistsError, match="rel.png exists"):
        reliability_diagram(y, probs, tmp_path / "rel.png")
    hist = uncertainty_histogram(y, probs, tmp_path / "hist.png")
    assert hist.read_bytes()[:8] == PNG


# --------------------------------------------------------------------------- comparison, CLI
def test_compare_mc_dropout_regression_columns(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype("float32")
    y = x @ rng.normal(size=5).astype("float32")
    model = dnnguide.build_model("risk_sensitive", (5,), 1, task="regression", depth=2, width=8)
    comparison = compare_mc_dropout(model, x, y, n_samples=20, seed=0)
    table = comparison.table
    # the preset's model is MC: "plain" must be its deterministic (dropout off) twin
    plain = dnnguide.layers.to_standard_dropout(model).predict(x, verbose=0)[:, 0]
    np.testing.assert_allclose(model.predict(x, verbose=0)[:, 0], plain, rtol=1e-6)
    assert table.loc["plain", "rmse"] == pytest.approx(np.sqrt(np.mean((plain - y) ** 2)),
                                                       rel=1e-5)
    assert table.loc["plain", "mean_std"] == 0 and table.loc["mc", "mean_std"] > 0
    assert comparison.save_plots(tmp_path) == []  # calibration plots are for classifiers


def test_compare_mc_dropout_table(bn_dropout_model, tmp_path):
    model, x, y = bn_dropout_model
    comparison = compare_mc_dropout(model, x, y, n_samples=10, seed=0)
    table = comparison.table
    assert list(table.index) == ["plain", "mc"]
    assert {"accuracy", "nll", "ece", "brier", "time_s"} <= set(table.columns)
    assert table.loc["plain", "accuracy"] == pytest.approx(
        np.mean(model.predict(x, verbose=0).argmax(1) == y))
    paths = comparison.save_plots(tmp_path)
    again = comparison.save_plots(tmp_path)
    assert all(p.read_bytes()[:8] == PNG for p in paths + again)
    assert len({*paths, *again}) == 6  # second set got fresh names


def test_cli_uncertainty_on_a_tiny_run(tmp_path, capsys):
    from dnnguide.cli import main

    result = dnnguide.fit("risk_sensitive", "digits", run_dir=tmp_path, epochs=2, depth=2,
                          width=16, verbose=0)
    run_dir = result.run_dir
    assert main(["uncertainty", str(run_dir), "--samples", "10", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "plain" in out and "calibrated_mc" in out and "ece" in out
    pooling = json.loads((run_dir / "metrics.json").read_text())["mc_pooling"]
    assert f"calibrated MC: {pooling} of the samples at temperature" in out
    plots = sorted(p.name for p in (run_dir / "plots").glob("uncertainty_*.png"))
    assert plots == ["uncertainty_histogram.png", "uncertainty_rejection.png",
                     "uncertainty_reliability.png"]
    first = (run_dir / "plots" / "uncertainty_reliability.png").read_bytes()
    # with its defaults the command reproduces the run's own MC scores, masks included
    capsys.readouterr()
    assert main(["uncertainty", str(run_dir), "--no-plots"]) == 0
    written = capsys.readouterr().out.split("table: ")[1].split("\n")[0]
    table = pd.read_csv(written, index_col=0)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for row, prefix in (("mc", "test_mc_"), ("calibrated_mc", "test_cal_mc_")):
        for score in ("accuracy", "nll", "ece"):
            assert table.loc[row, score] == pytest.approx(metrics[prefix + score], rel=1e-6)
    assert main(["uncertainty", str(run_dir), "--samples", "10"]) == 0
    assert (run_dir / "plots" / "uncertainty_reliability.png").read_bytes() == first
    assert (run_dir / "plots" / "uncertainty_reliability-2.png").exists()
    assert main(["uncertainty", str(tmp_path / "nope")]) == 2
    assert "not a dnnguide run directory" in capsys.readouterr().err
    assert main(["uncertainty", str(run_dir), "--samples", "0"]) == 2


# --------------------------------------------------------------------------- early stopping on MC
def test_mc_validation_loss_logs_the_pooled_nll_and_leaves_training_untouched(blobs):
    from keras import ops

    from dnnguide.uncertainty.monitor import MCValidationLoss
    from dnnguide.uncertainty.sampler import _mc_layers

    x, y = blobs
    model = dnnguide.build_model("risk_sensitive", (8,), 3, depth=2, width=16)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    layers = _mc_layers(model)
    states = [ops.convert_to_numpy(layer.seed_generator.state.value) for layer in layers]
    snapshot = _snapshot(model)
    monitor = MCValidationLoss(x[:100], y[:100], n_samples=20, seed=3)
    monitor.set_model(model)
    logs = {"val_loss": 1.0}
    monitor.on_epoch_end(0, logs)
    # the dropout streams training draws from are where they were: same masks as without it
    for layer, state in zip(layers, states):
        np.testing.assert_array_equal(ops.convert_to_numpy(layer.seed_generator.state.value),
                                      state)
    assert _unchanged(model, snapshot)
    pooled = mc_predict(model, x[:100], 20, seed=3, pooling="geometric", verbose=0).mean
    assert logs["val_mc_loss"] == pytest.approx(negative_log_likelihood(y[:100], pooled),
                                                rel=1e-6)
    with pytest.raises(ValueError, match="`x_val` and `y_val`.*Received: 0"):
        MCValidationLoss(x[:0], y[:0])


def test_risk_sensitive_runs_stop_on_the_mc_validation_loss(blobs):
    result = dnnguide.fit("risk_sensitive", blobs, run_dir=None, epochs=6, verbose=0,
                          depth=2, width=16, ensemble=1)  # one net's history
    assert result.config.early_stopping.monitor == "val_mc_loss"
    assert "val_mc_loss" in dnnguide.recommend(risk_sensitive=True).reasons["early_stopping"]
    curve = result.history["val_mc_loss"]
    assert len(curve) == 6 and np.all(np.isfinite(curve))
    assert result.metrics["best_epoch"] == int(np.argmin(curve)) + 1
    assert result.metrics["weights_epoch"] == result.metrics["best_epoch"]
    # without dropout the MC prediction is the plain one: early stopping watches val_loss
    plain = dnnguide.fit("risk_sensitive", blobs, run_dir=None, epochs=2, verbose=0,
                         depth=2, width=16, dropout_rate=0.0, ensemble=1)
    assert "val_mc_loss" not in plain.history


@pytest.mark.slow
def test_recipe_quick(tmp_path):
    spec = importlib.util.spec_from_file_location("mc_dropout_recipe",
                                                  ROOT / "recipes" / "mc_dropout.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    table = recipe.main(["--quick", "--run-dir", str(tmp_path)])
    assert list(table.index) == ["plain", "mc", "calibrated", "calibrated_mc"]
    run = next(tmp_path.iterdir())
    assert (run / "uncertainty.csv").exists()
    assert len(list((run / "plots").glob("uncertainty_*.png"))) == 3


def test_predictor_follows_later_changes_to_the_model(bn_dropout_model):
    model, x, _ = bn_dropout_model
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    predictor = dnnguide.uncertainty.MCDropoutPredictor(copy, seed=0)
    before = predictor.predict(x[:20], n_samples=5)
    assert np.abs(before.mean - 1 / 3).max() > 0.05
    output = copy.get_layer("output")
    output.kernel.assign(np.zeros(output.kernel.shape, "float32"))
    output.bias.assign(np.zeros(output.bias.shape, "float32"))
    after = predictor.predict(x[:20], n_samples=5)  # the copy inside was refreshed
    np.testing.assert_allclose(after.mean, 1 / 3, atol=1e-6)


def test_shift_check_entropy_rises_with_input_noise(bn_dropout_model, tmp_path):
    from dnnguide.uncertainty_report import plot_shift, shift_check

    model, x, y = bn_dropout_model
    frame = shift_check(model, x, y, noise_levels=(0.0, 1.0, 4.0), n_samples=10)
    assert list(frame["noise"]) == [0.0, 1.0, 4.0]
    assert frame["mc_entropy"].iloc[-1] > frame["mc_entropy"].iloc[0]
    # (here the plain prediction grows MORE confident far from the data: what the check shows)
    assert frame["plain_accuracy"].iloc[-1] < frame["plain_accuracy"].iloc[0]
    assert plot_shift(frame, tmp_path / "shift.png").read_bytes()[:8] == PNG
    regression = dnnguide.build_model("default", (8,), 1, task="regression", depth=1, width=4)
    with pytest.raises(ValueError, match="must be a classifier"):
        shift_check(regression, x)
