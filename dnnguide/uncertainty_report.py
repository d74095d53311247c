"""Plain vs MC dropout vs calibrated predictions side by side, and a run's uncertainty report.

:func:`compare_mc_dropout` scores the plain, MC, calibrated and calibrated MC predictions of
a model on one labelled set (the table ``dnnguide uncertainty RUN_DIR`` prints);
:func:`prediction_metrics` scores one of them; :func:`shift_check` asks whether the
uncertainty rises on shifted inputs; :func:`save_run_plots` writes what a run of an MC
dropout model keeps in ``plots/`` (reliability diagram with per-bin counts, rejection
curves, shift check; interval coverage for regression).

Example:
    >>> import dnnguide
    >>> model = dnnguide.build_model("risk_sensitive", (8,), 3, depth=2, width=16)
    >>> x = np.random.default_rng(0).normal(size=(40, 8)).astype("float32")
    >>> y = np.arange(40) % 3
    >>> list(compare_mc_dropout(model, x, y, n_samples=5, seed=0).table.index)
    ['plain', 'mc']
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from dnnguide.calibration import (
    accuracy,
    classification_metrics,
    predictive_entropy,
    rejection_curve,
)
from dnnguide.calibration_plots import (
    plot_rejection_curves, reliability_diagram, uncertainty_histogram,
)
from dnnguide.config import TASKS, check_choice, check_range
from dnnguide.uncertainty import (
    MCPrediction, calibration_layer, infer_task, mc_predict, uncalibrated,
)


# --------------------------------------------------------------------------- plain vs MC
@dataclass
class Comparison:
    """Plain vs MC dropout (vs calibrated) on one labelled set, from :func:`compare_mc_dropout`."""

    table: object  # pandas DataFrame, index plain, mc (+ calibrated, calibrated_mc)
    y_true: np.ndarray
    plain: np.ndarray  # plain (dropout off) predictions
    mc: MCPrediction
    calibrated: np.ndarray | None = None  # plain prediction of the calibrated model
    calibrated_mc: MCPrediction | None = None

    def save_plots(self, folder, prefix: str = "uncertainty", n_bins: int = 15) -> list:
        """Reliability diagram, uncertainty histogram, rejection curve (classification);
        interval coverage (regression, calibrated models).

        Files get fresh names (``-2``, ``-3``... if taken); nothing is overwritten.
        """
        from pathlib import Path

        from dnnguide.calibration_plots import plot_coverage

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)

        def name(kind):
            return fresh_path(folder / f"{prefix}_{kind}.png")

        if self.mc.task == "regression":
            if self.calibrated_mc is None:
                return []
            pred = self.calibrated_mc
            return [plot_coverage(self.y_true, {"calibrated MC": (pred.mean, pred.predictive_std)},
                                  name("coverage"))]
        probs = {"plain": self.plain, f"MC dropout ({self.mc.n_samples})": self.mc.mean}
        if self.calibrated_mc is not None:
            probs["calibrated MC"] = self.calibrated_mc.mean
        curves = {label: rejection_curve(self.y_true, p) for label, p in probs.items()}
        return [
            reliability_diagram(self.y_true, probs, name("reliability"), n_bins=n_bins),
            uncertainty_histogram(self.y_true, probs, name("histogram")),
            plot_rejection_curves(curves, name("rejection")),
        ]


def fresh_path(path):
    """``path``, or ``<stem>-2<suffix>``, ``-3``... if taken (so nothing is overwritten)."""
    from pathlib import Path

    path = Path(path)
    stem, suffix, attempt = path.stem, path.suffix, 1
    while path.exists():
        attempt += 1
        path = path.with_name(f"{stem}-{attempt}{suffix}")
    return path


def compare_mc_dropout(model, x, y, *, n_samples: int = 100, n_bins: int = 15,
                       task: str | None = None, batch_size: int | None = None,
                       seed: int | None = None, verbose="auto") -> Comparison:
    """Plain prediction (dropout off) vs MC dropout (vs calibrated): metrics and time.

    Rows ``plain`` and ``mc``; a calibrated model (:func:`dnnguide.calibrate`) adds
    ``calibrated`` and ``calibrated_mc`` (``plain``/``mc`` are then its uncalibrated part).
    Classification/binary columns: ``accuracy``, ``nll``, ``ece``, ``brier``, ``time_s``;
    regression: ``rmse``, ``mae``, ``mean_std`` (+ ``nll``, ``coverage_50/90/95`` where
    a noise variance is known), ``time_s``. Times include each path's one-off compilation.
    Both MC rows use the same dropout masks, pooled as the calibration says (geometric by
    default, :func:`dnnguide.calibrate`; an uncalibrated model: the mean), so they differ by
    the temperature only.
    """
    import pandas as pd

    check_range("n_bins", n_bins, 1, integer=True)
    task = infer_task(model) if task is None else task
    check_choice("task", task, TASKS)
    if seed is None:  # one seed for both MC rows: they differ by the calibration only
        seed = int(np.random.randint(0, 2**31 - 1))
    base = uncalibrated(model)
    variants = {"plain": base, "mc": base}
    if base is not model:
        variants.update(calibrated=model, calibrated_mc=model)
    calibration = calibration_layer(model)
    pooling = calibration.mc_pooling if calibration is not None else None
    x = np.asarray(x)
    rows, predictions = {}, {}
    for name, variant in variants.items():
        start = time.perf_counter()
        if name.endswith("mc"):
            pred = mc_predict(variant, x, n_samples, batch_size, task=task, seed=seed,
                              verbose=verbose, pooling=pooling)
        else:
            layer = calibration_layer(variant)
            pred = (variant.predict(x, batch_size=batch_size or 256, verbose=0),
                    None if layer is None else layer.noise_variance)
        seconds = time.perf_counter() - start
        rows[name] = prediction_metrics(y, pred, task, n_bins)
        if task == "regression":  # plain: the calibrated noise std, if any
            rows[name]["mean_std"] = (float(pred.predictive_std.mean())
                                      if isinstance(pred, MCPrediction) else
                                      float(np.sqrt(np.mean(pred[1]))) if pred[1] else 0.0)
        rows[name]["time_s"] = seconds
        predictions[name] = pred
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "prediction"
    calibrated = predictions.get("calibrated")
    return Comparison(table, np.asarray(y), np.asarray(predictions["plain"][0]),
                      predictions["mc"], None if calibrated is None else calibrated[0],
                      predictions.get("calibrated_mc"))


# --------------------------------------------------------------------------- run report
def prediction_metrics(y_true, prediction, task: str, n_bins: int = 15) -> dict[str, float]:
    """Metrics of an :class:`MCPrediction`, or of a plain ``(outputs, noise_variance)`` pair.

    Classification/binary: ``accuracy``, ``nll``, ``ece``, ``brier``. Regression: ``rmse``,
    ``mae``, and with a predictive std (a noise variance, MC spread) Gaussian ``nll`` and
    ``coverage_50/90/95`` of the central intervals.
    """
    from dnnguide.calibration import regression_metrics

    if isinstance(prediction, MCPrediction):
        mean, std = prediction.mean, prediction.predictive_std
    else:
        mean, noise_variance = prediction
        std = None if noise_variance is None else np.broadcast_to(
            np.sqrt(np.asarray(noise_variance, "float64")), np.shape(mean))
    if task == "regression":
        return regression_metrics(y_true, mean, std)
    return classification_metrics(y_true, mean, n_bins)


def shift_check(model, x, y=None, noise_levels=(0.0, 0.5, 1.0, 2.0), *, n_samples: int = 50,
                seed: int = 0):
    """Does the uncertainty rise on shifted inputs? Gaussian noise of growing scale.

    Adds noise of ``level`` times each feature's standard deviation (over ``x``) and
    reports the mean predictive entropy of the plain and the MC prediction (and their
    accuracy if ``y`` is given). A useful uncertainty rises with the shift.

    Returns:
        A pandas DataFrame, one row per noise level.

    Example:
        >>> model = dnnguide.build_model("risk_sensitive", (8,), 3, depth=2, width=16)  # doctest: +SKIP
        >>> shift_check(model, x)["mc_entropy"].is_monotonic_increasing  # doctest: +SKIP
        True
    """
    import pandas as pd

    task = infer_task(model)
    if task == "regression":
        raise ValueError("Argument `model` must be a classifier: the shift check compares "
                         f"predictive entropies. Received: a model with task={task!r}")
    x = np.asarray(x, "float32")
    scale = x.std(axis=0, keepdims=True)
    rng = np.random.default_rng(seed)
    rows = []
    for level in noise_levels:
        check_range("noise level", float(level), 0.0)
        shifted = (x + level * scale * rng.standard_normal(x.shape)).astype("float32")
        plain = model.predict(shifted, batch_size=256, verbose=0)
        mc = mc_predict(model, shifted, n_samples, task=task, seed=seed, verbose=0)
        row = {"noise": float(level), "plain_entropy": float(predictive_entropy(plain).mean()),
               "mc_entropy": float(mc.entropy.mean())}
        if y is not None:
            row.update(plain_accuracy=accuracy(y, plain), mc_accuracy=accuracy(y, mc.mean))
        rows.append(row)
    return pd.DataFrame(rows)


def plot_shift(frame, path, *, overwrite: bool = False):
    """Plot a :func:`shift_check` frame: entropy (and accuracy) against the noise level."""
    from dnnguide.runs import pyplot, save_figure

    plt = pyplot()
    panels = 2 if "mc_accuracy" in frame else 1
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 3.6), squeeze=False)
    for ax, kind, label in zip(axes[0], ("entropy", "accuracy"),
                               ("mean predictive entropy (nats)", "accuracy")):
        for name in ("plain", "mc"):
            ax.plot(frame["noise"], frame[f"{name}_{kind}"], marker="o",
                    label="MC dropout" if name == "mc" else "plain")
        ax.set(xlabel="input noise (x feature std)", ylabel=label, title=f"Shift: {kind}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, path, overwrite=overwrite)


def save_run_plots(y_true, predictions: dict, task: str, folder, *, model=None, x_shift=None,
                   n_samples: int = 50) -> list:
    """The uncertainty plots of a run (what :func:`dnnguide.fit` saves for MC dropout models).

    ``predictions``: ``{"": plain, "mc_": MC, "cal_": calibrated, "cal_mc_": calibrated MC}``
    as in :func:`prediction_metrics`. Classification: reliability diagram (with per-bin
    counts), rejection curves, and the shift check of ``model`` on ``x_shift``; regression:
    expected vs observed interval coverage.
    """
    from pathlib import Path

    from dnnguide.calibration_plots import plot_coverage

    folder = Path(folder)
    names = {"": "plain", "mc_": f"MC dropout ({n_samples})", "cal_": "calibrated",
             "cal_mc_": "calibrated MC"}
    paths = []
    if task == "regression":
        intervals = {}
        for key, prediction in predictions.items():
            if isinstance(prediction, MCPrediction) and prediction.noise_variance is not None:
                intervals[names[key]] = (prediction.mean, prediction.predictive_std)
            elif not isinstance(prediction, MCPrediction) and prediction[1] is not None:
                std = np.sqrt(np.asarray(prediction[1], "float64"))
                intervals[names[key]] = (prediction[0], np.broadcast_to(std, prediction[0].shape))
        paths.append(plot_coverage(y_true, intervals, fresh_path(folder / "coverage.png")))
        return paths
    probs = {names[k]: (p.mean if isinstance(p, MCPrediction) else p[0])
             for k, p in predictions.items() if k != "cal_"}
    paths.append(reliability_diagram(y_true, probs, fresh_path(folder / "reliability.png")))
    curves = {name: rejection_curve(y_true, p) for name, p in probs.items()}
    paths.append(plot_rejection_curves(curves, fresh_path(folder / "rejection.png")))
    if model is not None and x_shift is not None:
        frame = shift_check(model, x_shift, y_true, n_samples=n_samples)
        paths.append(plot_shift(frame, fresh_path(folder / "shift.png")))
    return paths
