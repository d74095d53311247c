"""Temperature scaling, regression noise variance and intervals (dnnguide/calibration.py)."""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import pytest
from scipy.stats import norm

import dnnguide
from dnnguide.calibration import (
    calibration_consistency, expected_calibration_error, fit_noise_variance,
    fit_temperature, gaussian_nll, interval_coverage,
    negative_log_likelihood, regression_metrics, temper,
)
from dnnguide.data import Dataset
from dnnguide.layers import Calibration, MCDropout
from dnnguide.uncertainty import calibrate, calibration_layer, mc_predict, uncalibrated


@pytest.fixture(scope="module")
def overfit():
    """An MC-dropout classifier trained to overconfidence on a noisy problem, and its data."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(900, 10)).astype("float32")
    y = ((x[:, 0] + x[:, 1] + rng.normal(0, 1.0, 900)) > 0).astype("int64") + (x[:, 2] > 1)
    model = dnnguide.build_model("risk_sensitive", (10,), 3, depth=2, width=64,
                                 dropout_rate=0.1, learning_rate=1e-2)
    model.fit(x[:300], y[:300], epochs=40, batch_size=32, verbose=0)
    return model, (x[:300], y[:300]), (x[300:600], y[300:600]), (x[600:], y[600:])


def test_temperature_one_reproduces_the_uncalibrated_probabilities_exactly(overfit):
    model, _, (x_val, _), _ = overfit
    inputs = model.inputs
    identity = keras.Model(inputs, Calibration("classification")(model.outputs[0]))
    np.testing.assert_array_equal(identity.predict(x_val, verbose=0),
                                  model.predict(x_val, verbose=0))
    np.testing.assert_array_equal(mc_predict(identity, x_val, 20, seed=3).mean,
                                  mc_predict(model, x_val, 20, seed=3).mean)
    np.testing.assert_array_equal(temper(model.predict(x_val, verbose=0), 1.0),
                                  model.predict(x_val, verbose=0))


def test_fitted_temperatures_lower_the_validation_nll(overfit):
    model, _, (x_val, y_val), _ = overfit
    calibrated = calibrate(model, x_val, y_val, n_samples=30, seed=0)
    layer = calibration_layer(calibrated)
    assert layer.temperature > 1.2  # overconfident: the fit flattens
    before = negative_log_likelihood(y_val, model.predict(x_val, verbose=0))
    after = negative_log_likelihood(y_val, calibrated.predict(x_val, verbose=0))
    assert after < before - 0.05
    mc_before = negative_log_likelihood(y_val, mc_predict(model, x_val, 30, seed=0).mean)
    mc_after = negative_log_likelihood(y_val, mc_predict(calibrated, x_val, 30, seed=0).mean)
    assert mc_after < mc_before
    # the MC temperature is applied to the mean of the very same samples
    np.testing.assert_allclose(mc_predict(calibrated, x_val, 30, seed=0).mean,
                               temper(mc_predict(model, x_val, 30, seed=0,
                                                 pooling=layer.mc_pooling).mean,
                                      layer.mc_temperature), rtol=1e-5, atol=1e-7)
    # refitting a calibrated model replaces its calibration, it does not stack a second one
    again = calibrate(calibrated, x_val, y_val, n_samples=30, seed=0)
    assert sum(isinstance(lay, Calibration) for lay in again.layers) == 1
    assert calibration_layer(again).temperature == pytest.approx(layer.temperature)


def _geometric(samples):
    log_p = np.log(np.clip(samples.astype("float64"), 1e-12, 1.0)).mean(axis=0)
    p = np.exp(log_p - log_p.max(axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)


def test_geometric_pooling_is_the_normalized_geometric_mean_of_the_samples(overfit):
    model, _, (x_val, _), _ = overfit
    arith = mc_predict(model, x_val, 40, seed=5, return_samples=True, max_rows=2000)
    geo = mc_predict(model, x_val, 40, seed=5, pooling="geometric", max_rows=2000)
    assert (arith.pooling, geo.pooling) == ("mean", "geometric")
    np.testing.assert_allclose(geo.mean, _geometric(arith.samples), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(geo.mean.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(geo.std, arith.std)  # spread and BALD: about the samples
    np.testing.assert_array_equal(geo.mutual_information, arith.mutual_information)
    assert not np.allclose(geo.mean, arith.mean, atol=1e-3)  # a different rule, not a copy
    # binary: the sigmoid of the mean log-odds
    binary = dnnguide.build_model("risk_sensitive", (10,), 1, depth=2, width=16, task="binary")
    samples = mc_predict(binary, x_val[:50], 30, seed=2, return_samples=True).samples
    p = np.clip(samples.astype("float64"), 1e-12, 1 - 1e-12)
    expected = 1 / (1 + np.exp(-(np.log(p) - np.log1p(-p)).mean(axis=0)))
    np.testing.assert_allclose(mc_predict(binary, x_val[:50], 30, seed=2,
                                          pooling="geometric").mean, expected, rtol=1e-4)


def test_calibrate_pools_geometrically_unless_told_and_saves_the_pooling(overfit, tmp_path):
    model, _, (x_val, y_val), (x_test, _) = overfit
    calibrated = calibrate(model, x_val, y_val, n_samples=30, seed=0)
    layer = calibration_layer(calibrated)
    assert layer.mc_pooling == "geometric"  # the rule, not a choice on validation
    geo = mc_predict(model, x_val, 30, seed=0, pooling="geometric").mean
    assert layer.mc_temperature == pytest.approx(fit_temperature(y_val, geo), rel=1e-6)
    as_mean = calibration_layer(calibrate(model, x_val, y_val, n_samples=30, seed=0,
                                          pooling="mean"))
    assert as_mean.mc_pooling == "mean"
    mean = mc_predict(model, x_val, 30, seed=0, pooling="mean").mean
    assert as_mean.mc_temperature == pytest.approx(fit_temperature(y_val, mean), rel=1e-6)
    assert as_mean.mc_temperature != pytest.approx(layer.mc_temperature, rel=1e-3)
    # mc_predict uses the fitted pooling by default; an explicit other one still wins
    default = mc_predict(calibrated, x_test, 20, seed=1)
    assert default.pooling == "geometric"
    with pytest.warns(UserWarning, match="returned uncalibrated"):  # T is the other one's
        explicit = mc_predict(calibrated, x_test, 20, seed=1, pooling="mean")
    assert explicit.pooling == "mean"
    np.testing.assert_allclose(explicit.mean, mc_predict(model, x_test, 20, seed=1,
                                                         pooling="mean").mean, rtol=1e-6)
    calibrated.save(tmp_path / "pooled.keras")
    loaded = keras.saving.load_model(tmp_path / "pooled.keras")
    assert calibration_layer(loaded).mc_pooling == "geometric"
    np.testing.assert_array_equal(mc_predict(loaded, x_test, 20, seed=1).mean, default.mean)
    with pytest.raises(ValueError, match="`pooling`.*'mean', 'geometric'.*Received.*'median'"):
        calibrate(model, x_val, y_val, n_samples=5, pooling="median")


def test_pooling_is_validated_before_sampling(overfit):
    model, _, (x_val, _), _ = overfit
    with pytest.raises(ValueError, match="`pooling`.*'mean', 'geometric'.*Received.*'median'"):
        mc_predict(model, x_val, 10, pooling="median")
    regressor = dnnguide.build_model("risk_sensitive", (10,), 1, depth=2, width=8,
                                     task="regression")
    with pytest.raises(ValueError, match="`pooling`.*'mean'.*Received.*'geometric'"):
        mc_predict(regressor, x_val, 10, pooling="geometric")
    with pytest.raises(ValueError, match="`mc_pooling`"):
        Calibration("regression", mc_pooling="geometric")


def test_fit_temperature_keeps_one_when_nothing_improves():
    y = np.array([0, 1, 1, 0])
    calibrated = np.array([[0.5, 0.5]] * 4)
    assert fit_temperature(y, calibrated) == 1.0
    assert fit_temperature(y, np.array([[0.9, 0.1], [0.1, 0.9], [0.1, 0.9], [0.9, 0.1]])) < 1


def test_calibrated_model_reloads_and_predicts_identically(overfit, tmp_path):
    model, _, (x_val, y_val), (x_test, _) = overfit
    calibrated = calibrate(model, x_val, y_val, n_samples=20, seed=0)
    calibrated.save(tmp_path / "calibrated.keras")
    loaded = keras.saving.load_model(tmp_path / "calibrated.keras")
    assert calibration_layer(loaded).get_config() == calibration_layer(calibrated).get_config()
    np.testing.assert_array_equal(loaded.predict(x_test, verbose=0),
                                  calibrated.predict(x_test, verbose=0))
    np.testing.assert_array_equal(mc_predict(loaded, x_test, 20, seed=1).mean,
                                  mc_predict(calibrated, x_test, 20, seed=1).mean)
    assert not np.array_equal(loaded.predict(x_test, verbose=0), model.predict(x_test, verbose=0))
    np.testing.assert_array_equal(uncalibrated(loaded).predict(x_test, verbose=0),
                                  model.predict(x_test, verbose=0))


def _linear_problem(n, sigma, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    w = np.array([[1.0], [-2.0], [0.5], [3.0]], "float32")
    return x, (x @ w + rng.normal(0, sigma, (n, 1))).astype("float32"), w


def test_coverage_on_a_problem_with_known_noise():
    # The true mean function with MC dropout on its input: the intervals must cover as
    # promised once the noise variance (0.5**2) is fitted on validation data.
    x_val, y_val, w = _linear_problem(2000, 0.5, seed=1)
    x_test, y_test, _ = _linear_problem(5000, 0.5, seed=2)
    model = keras.Sequential([keras.Input((4,)), MCDropout(0.005, seed=0),
                              keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(w))])
    calibrated = calibrate(model, x_val, y_val, n_samples=50, seed=0, task="regression")
    layer = calibration_layer(calibrated)
    assert layer.noise_variance[0] == pytest.approx(0.25, rel=0.08)
    assert 0 < layer.mc_noise_variance[0] < layer.noise_variance[0]  # the spread explains some
    pred = mc_predict(calibrated, x_test, n_samples=50, seed=0)
    assert pred.noise_variance is not None and np.all(pred.predictive_std > pred.std)
    for level in (0.5, 0.9, 0.95):
        assert interval_coverage(y_test, pred.mean, pred.predictive_std, level) == \
            pytest.approx(level, abs=0.025)
    low, high = pred.interval(0.9)
    assert np.mean((y_test >= low) & (y_test <= high)) == pytest.approx(0.9, abs=0.025)
    # without the noise term the MC spread alone covers far too little
    assert interval_coverage(y_test, pred.mean, pred.std, 0.9) < 0.5
    plain = calibrated.predict(x_test, verbose=0)
    std = np.sqrt(layer.noise_variance[0])
    assert interval_coverage(y_test, plain, std, 0.9) == pytest.approx(0.9, abs=0.025)


def test_gaussian_nll_and_coverage_match_hand_computations():
    y = np.array([0.0, 1.0, -2.0])
    mean, std = np.array([0.5, 1.0, 0.0]), np.array([1.0, 2.0, 0.5])
    assert gaussian_nll(y, mean, std) == pytest.approx(-norm.logpdf(y, mean, std).mean())
    assert interval_coverage(y, mean, std, 0.9) == pytest.approx(2 / 3)  # -2 is 4 std out
    metrics = regression_metrics(y, mean, std)
    assert set(metrics) == {"rmse", "mae", "nll", "coverage_50", "coverage_90", "coverage_95"}
    assert metrics["rmse"] == pytest.approx(np.sqrt((0.25 + 0 + 4) / 3))
    # the constant variance that maximizes the likelihood is the mean squared error
    assert fit_noise_variance(y, mean)[0] == pytest.approx(np.mean((y - mean) ** 2))
    with pytest.raises(ValueError, match="Argument `level`"):
        interval_coverage(y, mean, std, 1.0)


def test_calibrate_refuses_bad_inputs(overfit):
    model, _, (x_val, y_val), _ = overfit
    with pytest.raises(TypeError, match="Argument `model_or_predictor`.*Received"):
        calibrate("model", x_val, y_val)
    with pytest.raises(ValueError, match="Arguments `x_val` and `y_val`.*Received: 0"):
        calibrate(model, x_val[:0], y_val[:0])


def test_a_run_calibrates_on_validation_only_and_saves_the_calibration(tmp_path):
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 1.5, size=(3, 8))
    y = rng.integers(0, 3, size=700)
    x = (centers[y] + rng.normal(0, 1, size=(700, 8))).astype("float32")
    data = Dataset("blobs", "classification", 3, x[:400], y[:400], x[400:550], y[400:550],
                   x[550:], y[550:], standardized=True)
    run = dnnguide.fit("risk_sensitive", data, run_dir=tmp_path, epochs=3, depth=2, width=16,
                       verbose=0)
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    for prefix in ("", "mc_", "cal_", "cal_mc_"):
        assert {f"test_{prefix}{k}" for k in ("accuracy", "nll", "ece", "brier")} <= set(metrics)
    assert metrics["test_cal_nll"] <= metrics["test_nll"] + 0.05  # fitted on val, not test
    loaded = dnnguide.runs.open_run(run.run_dir).model()
    # issue 15: test_accuracy is the deterministic prediction's, not one random dropout pass
    plain = uncalibrated(loaded).predict(x[550:], verbose=0)
    assert metrics["test_accuracy"] == pytest.approx(np.mean(plain.argmax(1) == y[550:]), abs=1e-6)
    assert metrics["test_cal_accuracy"] == pytest.approx(metrics["test_accuracy"])  # same ranking
    layer = calibration_layer(loaded)
    assert layer.temperature == metrics["temperature"]
    assert layer.mc_temperature == metrics["mc_temperature"]
    np.testing.assert_array_equal(loaded.predict(x[550:], verbose=0),
                                  run.model.predict(x[550:], verbose=0))
    assert {"reliability.png", "rejection.png", "shift.png"} <= {
        p.name for p in (run.run_dir / "plots").iterdir()}
    # The test split never reaches the calibration: replace it with noise, same temperatures.
    from dnnguide.fit_results import calibrate_mc

    shuffled = dataclasses.replace(
        data, x_test=rng.normal(size=x[550:].shape).astype("float32"),
        y_test=rng.permutation(y[550:]))
    model = uncalibrated(run.model)
    a = calibration_layer(calibrate_mc(model, data, {}, None)).get_config()
    b = calibration_layer(calibrate_mc(model, shuffled, {}, None)).get_config()
    assert a == b


def _confidences(rng, n, classes=3):
    """Class probabilities whose top-1 confidences spread over (1/classes, 1)."""
    return rng.dirichlet(np.ones(classes) * 0.3, n)


def test_consistency_accepts_labels_drawn_from_the_probabilities_at_its_level():
    # Calibrated by construction: each label is drawn from the row's own probabilities. The
    # p-value must then be (close to) uniform, so about 5% of test sets fall under 0.05.
    rng = np.random.default_rng(0)
    p_values, gaps = [], []
    for _ in range(200):
        probs = _confidences(rng, 150)
        y = np.array([rng.choice(3, p=row) for row in probs])
        out = calibration_consistency(y, probs, draws=400, seed=int(rng.integers(1 << 30)))
        p_values.append(out["p_value"])
        gaps.append(out["ece"] - out["ece_calibrated"])
    assert 0.01 <= np.mean(np.array(p_values) < 0.05) <= 0.10
    assert abs(np.mean(gaps)) < 0.005  # the floor is the ECE's mean under calibration


def test_consistency_rejects_an_overconfident_model_and_its_floor_falls_with_rows():
    rng = np.random.default_rng(1)
    probs = _confidences(rng, 2000)
    y = np.array([rng.choice(3, p=row) for row in temper(probs, 2.0)])  # truth is softer
    out = calibration_consistency(y, probs, draws=500)
    assert out["p_value"] < 0.01
    assert out["ece"] > out["ece_calibrated_95"] > out["ece_calibrated"]
    assert out["ece"] == pytest.approx(expected_calibration_error(y, probs))
    # the floor of a calibrated model shrinks as 1/sqrt(rows): 100x the rows, ~10x lower
    small = calibration_consistency(y[:100], probs[:100], draws=500)["ece_calibrated"]
    large = calibration_consistency(np.tile(y, 5), np.tile(probs, (5, 1)),
                                    draws=500)["ece_calibrated"]
    assert 5 < small / large < 20


def test_consistency_is_reproducible_and_refuses_bad_arguments():
    rng = np.random.default_rng(2)
    probs = _confidences(rng, 50)
    y = probs.argmax(axis=1)
    assert calibration_consistency(y, probs, seed=3) == calibration_consistency(y, probs, seed=3)
    with pytest.raises(ValueError, match="draws"):
        calibration_consistency(y, probs, draws=0)
    with pytest.raises(ValueError, match="n_bins"):
        calibration_consistency(y, probs, n_bins=0)


def _noisy_blobs(seed=0):
    """Overlapping 3-class blobs with 20% of the labels flipped: a net trained on them for long
    becomes overconfident."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1.0, size=(3, 8))
    y = rng.integers(0, 3, size=900)
    x = (centers[y] + rng.normal(0, 1, size=(900, 8))).astype("float32")
    flip = rng.random(900) < 0.2
    y = np.where(flip, rng.integers(0, 3, size=900), y)
    return Dataset("noisy_blobs", "classification", 3, x[:400], y[:400], x[400:650], y[400:650],
                   x[650:], y[650:], standardized=True)


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    data = _noisy_blobs()
    run = dnnguide.fit("default", data, run_dir=tmp_path_factory.mktemp("runs"), epochs=60,
                       depth=3, width=128, dropout_rate=0.0, weight_decay=0.0,
                       early_stopping={"enabled": False}, verbose=0)
    return run, data


def test_a_plain_run_ends_in_a_temperature_fitted_on_the_validation_split(plain_run):
    run, data = plain_run
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    layer = calibration_layer(run.model)
    assert layer.temperature == metrics["temperature"] > 1.2  # overconfident: flattened
    network = uncalibrated(run.model)
    raw_val = network.predict(data.x_val, verbose=0)
    cal_val = run.model.predict(data.x_val, verbose=0)
    assert negative_log_likelihood(data.y_val, cal_val) < negative_log_likelihood(
        data.y_val, raw_val) - 0.05
    # one temperature changes no predicted class: the same accuracy, a lower test NLL here
    raw_test = network.predict(data.x_test, verbose=0)
    cal_test = run.model.predict(data.x_test, verbose=0)
    np.testing.assert_array_equal(cal_test.argmax(1), raw_test.argmax(1))
    assert metrics["test_cal_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert metrics["test_cal_nll"] < metrics["test_nll"]
    assert metrics["test_nll"] == pytest.approx(negative_log_likelihood(data.y_test, raw_test))
    loaded = dnnguide.runs.open_run(run.run_dir).model()
    np.testing.assert_array_equal(loaded.predict(data.x_test, verbose=0), cal_test)
    assert (run.run_dir / "plots" / "reliability.png").stat().st_size > 10_000


def test_a_plain_run_never_calibrates_on_the_test_split(plain_run):
    from dnnguide.fit_results import calibrate_run

    run, data = plain_run
    rng = np.random.default_rng(1)
    noise = dataclasses.replace(data, x_test=rng.normal(size=data.x_test.shape).astype("float32"),
                                y_test=rng.permutation(data.y_test))
    network = uncalibrated(run.model)
    temperature = calibration_layer(calibrate_run(network, None, noise, {}, None)).temperature
    assert temperature == calibration_layer(run.model).temperature


def test_calibration_none_keeps_the_network_and_regression_is_not_tempered(tmp_path):
    data = _noisy_blobs(1)
    run = dnnguide.fit("default", data, run_dir=None, epochs=2, depth=1, width=8,
                       calibration="none", verbose=0)
    assert not isinstance(run.model.layers[-1], Calibration)
    assert "temperature" not in run.metrics and "test_cal_nll" not in run.metrics
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.normal(0, 0.1, 300)).astype("float32")
    regression = dnnguide.fit("default", (x, y), run_dir=None, epochs=2, depth=1, width=8,
                              verbose=0, cross_fit=1)
    assert not isinstance(regression.model.layers[-1], Calibration)
    with pytest.raises(dnnguide.ConfigError, match="calibration.*'temperature', 'none'"):
        dnnguide.get_preset("default", calibration="platt")


def test_significance_keeps_a_calibrated_prediction_at_temperature_one():
    rng = np.random.default_rng(0)
    n = 200
    logits = rng.normal(0, 2, size=(n, 3))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in probs])  # calibrated by construction
    assert fit_temperature(y, probs) != 1.0  # a small split's noise moves the free fit
    assert fit_temperature(y, probs, significance=0.05) == 1.0
    sharp = temper(probs, 0.4)  # the same labels under overconfident probabilities
    fitted = fit_temperature(y, sharp, significance=0.05)
    assert fitted == fit_temperature(y, sharp) and 2.0 < fitted < 3.2
    with pytest.raises(dnnguide.ConfigError, match="significance.*Received"):
        fit_temperature(y, probs, significance=1.5)
