"""What a finished run records: its history, test metrics, calibration and status.

Test metrics come from ``evaluate`` on the test split; the best epoch and its validation
metrics from the history. :func:`calibrate_run` then fits the calibration on the validation
split: a temperature for a classifier, scored plain and calibrated; an MC dropout model
(:func:`calibrate_mc`) is scored plain, MC, calibrated and calibrated MC side by side.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np

from dnnguide.data import Dataset
from dnnguide.runs import atomic_write_json


def mark_status(path: Path, info: dict, status: str, **extra) -> None:
    finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    atomic_write_json(path / "run.json", {**info, "status": status, "finished": finished, **extra})


def weights_epoch(callbacks, history) -> int:
    """The (1-based) epoch whose weights the model holds: early stopping's best, or the last."""
    for callback in callbacks:
        if (isinstance(callback, keras.callbacks.EarlyStopping) and callback.restore_best_weights
                and callback.best_weights is not None):
            return int(callback.best_epoch) + 1
    return int(history["epoch"].iloc[-1]) + 1 if "epoch" in history and len(history) else 0


def history_frame(keras_history, path: Path | None):
    import pandas as pd

    log = path / "training_log.csv" if path is not None else None
    if log is not None and log.exists():
        # Includes the epochs from before a resume; epochs trained again after the last
        # checkpoint appear twice, and the later row is the one the model went on from.
        frame = pd.read_csv(log).drop_duplicates("epoch", keep="last")
        return frame.reset_index(drop=True)
    frame = pd.DataFrame(keras_history.history)
    frame.insert(0, "epoch", range(len(frame)))
    return frame


def final_metrics(model, data: Dataset, history, batch_size, evaluate=None,
                  monitor: str = "val_loss", start: int = 0) -> dict[str, float]:
    """Test metrics, and the best epoch by ``monitor`` (early stopping's; else ``val_loss``).

    ``start``: early stopping's ``start_from_epoch``; the best epoch is the best it counted, the
    one whose weights it restores (all epochs when the run ended before it counted any).
    """
    test = (evaluate or model.evaluate)(data.x_test, data.y_test,
                                        batch_size=max(batch_size, 256), verbose=0,
                                        return_dict=True)
    metrics = {f"test_{k}": float(v) for k, v in test.items()}
    metrics["epochs_trained"] = int(len(history))
    monitor = monitor if monitor in history else "val_loss"
    finite_val = history[monitor].dropna() if monitor in history else ()
    if len(finite_val) and (finite_val.index >= start).any():
        finite_val = finite_val[finite_val.index >= start]
    if len(finite_val):  # a diverged run may have no finite validation loss at all
        best = int(finite_val.idxmin())
        metrics["best_epoch"] = best + 1
        for column in history.columns:
            if column.startswith("val_"):
                metrics[f"best_{column}"] = float(history[column].iloc[best])
    add_r2(metrics, data)
    if not np.isfinite(metrics.get("test_loss", 0.0)):
        warnings.warn("Training diverged (non-finite test loss): lower the learning rate or "
                      "clip gradients (clipnorm=1.0).", RuntimeWarning, stacklevel=3)
    return metrics


def add_r2(metrics: dict, data: Dataset) -> None:
    """``test_r2`` (and ``best_val_r2``) from a regression run's RMSE: the share of the split's
    target variance the model explains, 1 - MSE / variance (scikit-learn's ``r2_score``; with
    several outputs its ``"variance_weighted"`` form, total squared error over total variance).

    RMSE alone does not say whether 58 is good on diabetes (target std 77: R² ~0.4); R² does,
    in any units. Nothing is added for classes, or where the split's target is constant.
    """
    if data.task != "regression":
        return
    for key, y in (("test", data.y_test), ("best_val", data.y_val)):
        rmse = metrics.get(f"{key}_rmse")
        if rmse is None or len(y) < 2:  # no such split (a run without validation rows)
            continue
        variance = float(np.asarray(y, dtype=float).reshape(len(y), -1).var(axis=0).mean())
        if variance > 0:
            metrics[f"{key}_r2"] = float(1.0 - rmse ** 2 / variance)


#: MC samples a run fits its calibration with and scores: mc_predict's default, so the run's
#: metrics describe what ``mc_predict(model, x)`` returns. At 50 the pooled prediction's test
#: accuracy moved by up to 0.5 points between sample seeds (digits, mnist1d).
RUN_MC_SAMPLES = 100


#: Level of the likelihood-ratio test a run's plain temperature must pass to differ from 1.
TEMPERATURE_SIGNIFICANCE = 0.05


def calibrate_run(model, config, data: Dataset, metrics: dict, path: Path | None):
    """The trained model calibrated as ``config.calibration`` says, and its metrics.

    ``"temperature"`` (the tables' choice): an MC dropout model gets :func:`calibrate_mc`; any
    other classifier one temperature fitted on the validation split (Guo et al. 2017), which
    changes no prediction's class, and kept at 1 unless a likelihood-ratio test at
    :data:`TEMPERATURE_SIGNIFICANCE` supports it. ``metrics`` gains the plain (``test_nll``,
    ``test_ece``, ``test_brier``) and calibrated (``test_cal_*``) scores and the
    ``temperature``; with a run directory, ``plots/reliability.png`` shows both. A regression
    model without MC dropout, a run without a validation split and ``"none"`` return the model
    unchanged.
    """
    from dnnguide.layers import has_dropout

    if (config is not None and config.calibration == "none") or len(data.x_val) == 0:
        return model
    if has_dropout(model, kinds=("mc",)):
        return calibrate_mc(model, data, metrics, path)
    if data.task == "regression":
        return model
    from dnnguide.calibration_plots import reliability_diagram
    from dnnguide.uncertainty import calibrate, calibration_layer
    from dnnguide.uncertainty_report import fresh_path

    calibrated = calibrate(model, data.x_val, data.y_val, task=data.task, mc=False,
                           significance=TEMPERATURE_SIGNIFICANCE)
    x, y = data.x_test, data.y_test
    probs = {"": model.predict(x, batch_size=256, verbose=0),
             "cal_": calibrated.predict(x, batch_size=256, verbose=0)}
    _record_scores(metrics, y, {k: (p, None) for k, p in probs.items()}, data.task)
    metrics["temperature"] = calibration_layer(calibrated).temperature
    if path is not None:
        reliability_diagram(y, {"plain": probs[""], "calibrated": probs["cal_"]},
                            fresh_path(path / "plots" / "reliability.png"))
    return calibrated


def _record_scores(metrics: dict, y, predictions: dict, task: str) -> None:
    """``test_<prefix><score>`` of each ``prefix -> (prediction, noise variance)``; a score
    ``evaluate`` already wrote (``test_accuracy``) is kept."""
    from dnnguide.uncertainty_report import prediction_metrics

    for prefix, prediction in predictions.items():
        scores = prediction_metrics(y, prediction, task)
        metrics.update({f"test_{prefix}{k}": v for k, v in scores.items()
                        if f"test_{prefix}{k}" not in metrics})


def calibrate_mc(model, data: Dataset, metrics: dict, path: Path | None,
                 n_samples: int = RUN_MC_SAMPLES):
    """For an MC dropout model: the model calibrated on the validation split, and its metrics.

    ``evaluate`` (``test_accuracy``, ``test_loss``) scores the deterministic prediction; this
    adds, side by side, the plain (``test_nll``...), MC mean of ``n_samples`` (``test_mc_*``,
    Gal & Ghahramani 2016), calibrated (``test_cal_*``) and calibrated MC (``test_cal_mc_*``)
    metrics: temperature scaling (and the MC pooling) for classes, the noise variance for
    regression (RMSE, Gaussian NLL, interval coverage). The temperatures or noise variances
    are fitted on the validation split only and saved with the returned model. With a run
    directory, the reliability diagram, rejection curve and shift check go to ``plots/``.
    """
    from dnnguide.layers import has_dropout

    if not has_dropout(model, kinds=("mc",)) or len(data.x_val) == 0:
        return model
    from dnnguide.uncertainty import calibrate, calibration_layer, mc_predict
    from dnnguide.uncertainty_report import save_run_plots

    calibrated = calibrate(model, data.x_val, data.y_val, n_samples=n_samples, seed=0,
                           task=data.task)
    layer = calibration_layer(calibrated)
    x, y = data.x_test, data.y_test
    predictions = {
        "": (model.predict(x, batch_size=256, verbose=0), None),
        # pooled as the calibrated samples are: the two columns differ by the temperature only
        "mc_": mc_predict(model, x, n_samples, task=data.task, seed=0, verbose=0,
                          pooling=layer.mc_pooling),
        "cal_": (calibrated.predict(x, batch_size=256, verbose=0), layer.noise_variance),
        "cal_mc_": mc_predict(calibrated, x, n_samples, task=data.task, seed=0, verbose=0),
    }
    _record_scores(metrics, y, predictions, data.task)
    if data.task == "regression":
        metrics["noise_std"] = float(np.sqrt(np.mean(layer.noise_variance)))
        metrics["mc_noise_std"] = float(np.sqrt(np.mean(layer.mc_noise_variance)))
    else:
        metrics["temperature"] = layer.temperature
        metrics["mc_temperature"] = layer.mc_temperature
        metrics["mc_pooling"] = layer.mc_pooling
    if path is not None:
        save_run_plots(y, predictions, data.task, path / "plots", model=calibrated,
                       x_shift=x, n_samples=n_samples)
    return calibrated
