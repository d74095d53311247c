"""Regression targets: standardized for training inside the model, original units outside."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from sklearn.metrics import r2_score

import dnnguide
from dnnguide.fit_results import add_r2
from dnnguide.targets import StandardizedMSE, TargetScale, target_statistics


@pytest.fixture
def prices():
    """y = 1000 + 300 * (a linear mix of 6 features) + noise: far from standardized."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 6)).astype("float32")
    y = 1000 + 300 * (x @ rng.normal(size=6) / np.sqrt(6)) + rng.normal(0, 30, 600)
    return x, y.astype("float32")


def test_target_scale_and_standardized_mse_are_the_standardized_problem():
    layer = TargetScale(mean=[10.0, -2.0], std=[4.0, 0.5])
    z = np.array([[0.0, 0.0], [1.0, -2.0]], "float32")
    np.testing.assert_allclose(np.asarray(layer(z)), [[10, -2], [14, -3]])
    y_true = np.array([[14.0, -3.0]], "float32")
    # ((14 - 10) / 4) ** 2 and ((-3 + 2) / 0.5) ** 2, averaged
    assert float(StandardizedMSE([4.0, 0.5])(y_true, [[10.0, -2.0]])) == pytest.approx(2.5)
    assert target_statistics([[1.0], [1.0]])[1] == [1.0]  # a constant column is not divided by 0
    with pytest.raises(ValueError, match="Received: std="):
        TargetScale(mean=[0.0], std=[0.0])


def test_regression_predictions_and_metrics_come_back_in_original_units(prices, tmp_path):
    x, y = prices
    result = dnnguide.fit("default", (x, y), task="regression", run_dir=tmp_path, epochs=15,
                          seed=0, verbose=0, cross_fit=1)  # one net: its TargetScale
    model = result.model
    assert isinstance(model.layers[-1], TargetScale)
    assert model.layers[-1].mean[0] == pytest.approx(float(result.data.y_train.mean()), rel=1e-5)
    prediction = model.predict(result.data.x_test, verbose=0).ravel()
    rmse = float(np.sqrt(np.mean((prediction - result.data.y_test) ** 2)))
    # original units (the test targets' mean is 1046), not standardized ones (about 0)
    assert abs(prediction.mean() - result.data.y_test.mean()) < 0.2 * y.std()
    assert rmse < 0.5 * y.std()  # it learned the target
    assert result.metrics["test_rmse"] == pytest.approx(rmse, rel=1e-3)  # metrics in units too
    assert result.metrics["test_loss"] < 1.0  # the loss stays on the standardized scale
    # R², scikit-learn's, of what the model predicts; the validation split's at the best epoch
    assert result.metrics["test_r2"] == pytest.approx(r2_score(result.data.y_test, prediction),
                                                      abs=1e-3)
    assert 0.5 < result.metrics["best_val_r2"] <= 1.0
    reloaded = keras.saving.load_model(result.run_dir / "model.keras")
    np.testing.assert_array_equal(reloaded.predict(result.data.x_test, verbose=0).ravel(),
                                  prediction)


def test_r2_of_several_outputs_is_scikit_learns_variance_weighted_and_classes_get_none():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(50, 2)) * [1.0, 10.0]
    prediction = y + rng.normal(size=(50, 2))
    rmse = float(np.sqrt(np.mean((prediction - y) ** 2)))
    data = dnnguide.Dataset("toy", "regression", 2, y[:, :1], y, y, y, y, y)
    metrics = {"test_rmse": rmse, "best_val_rmse": rmse}
    add_r2(metrics, data)
    expected = r2_score(y, prediction, multioutput="variance_weighted")
    assert metrics["test_r2"] == pytest.approx(expected) == metrics["best_val_r2"]
    no_validation = dnnguide.Dataset("toy", "regression", 2, y, y, y[:0], y[:0], y, y)
    metrics = {"test_rmse": rmse}
    add_r2(metrics, no_validation)
    assert "best_val_r2" not in metrics and metrics["test_r2"] == pytest.approx(expected)
    classes = dnnguide.Dataset("toy", "classification", 2, y, y[:, 0] > 0, y, y[:, 0] > 0, y,
                               y[:, 0] > 0)
    metrics = {"test_rmse": rmse}
    add_r2(metrics, classes)
    assert "test_r2" not in metrics


def test_standardize_target_false_trains_on_raw_targets(prices):
    x, y = prices
    model = dnnguide.build_model("default", (6,), 1, "regression", standardize_target=False,
                                 target_stats=target_statistics(y))
    assert not any(isinstance(layer, TargetScale) for layer in model.layers)
    assert model.loss == "mse"


@pytest.mark.parametrize("preset", ["default", "self_normalizing"])
def test_no_preset_diverges_on_diabetes(preset):
    # Raw diabetes targets (mean 152, std 77) made the self-normalizing preset's Nesterov
    # diverge at batch 2 on every seed.
    result = dnnguide.fit(preset, "diabetes", run_dir=None, epochs=4, seed=0, verbose=0)
    assert np.isfinite(result.metrics["test_rmse"])
    assert result.metrics["test_rmse"] < 100  # the target's std is 77
