"""Plots of calibration: reliability diagram, uncertainty histogram, rejection and coverage curves.

Each takes the arrays :mod:`dnnguide.calibration` scores (or a ``{name: array}`` dict, one
panel or line each) and writes a PNG atomically, never over an existing file unless asked
(:func:`dnnguide.plotting.save_figure`). Every classification run draws
``plots/reliability.png`` with :func:`reliability_diagram`.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> y = np.array([0, 1, 1, 0])
    >>> probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     reliability_diagram(y, probs, pathlib.Path(folder) / "reliability.png").exists()
    True

References:
    Guo et al. (2017), "On Calibration of Modern Neural Networks", ICML (reliability diagrams).
    Bröcker & Smith (2007), "Increasing the Reliability of Reliability Diagrams", Weather and
    Forecasting (consistency bars).
"""

from __future__ import annotations

import numpy as np

from dnnguide.calibration import (
    _calibrated_bin_gaps,
    _class_probabilities,
    _consistency,
    _ece_of,
    _labels,
    calibration_bins,
    gaussian_nll,
    interval_coverage,
    predictive_entropy,
)
from dnnguide.plotting import pyplot, save_figure


def _as_named(probs, label="model") -> dict:
    return dict(probs) if isinstance(probs, dict) else {label: probs}


def reliability_diagram(y_true, probs, path, *, n_bins: int = 15, overwrite: bool = False):
    """Accuracy against confidence per bin (one panel per entry of a ``{name: probs}`` dict).

    Bars on the diagonal mean calibrated; bars below it, overconfident. The number of
    examples of each bin is written above its bar, and a black bar spans the accuracies a
    calibrated model would show in 90% of test sets with this bin's confidences (consistency
    bars, Bröcker & Smith 2007): an accuracy outside it is off by more than the bin's few
    rows explain. The title gives the ECE with :func:`calibration_consistency`'s floor and
    p-value. Returns ``path``.
    """
    named = _as_named(probs)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(named), figsize=(4.2 * len(named), 4), squeeze=False)
    for ax, (name, p) in zip(axes[0], named.items()):
        bins = calibration_bins(y_true, p, n_bins)
        width = 1.0 / n_bins
        ax.bar(bins["lower"], bins["accuracy"].fillna(0), width=width, align="edge",
               edgecolor="black", label="accuracy")
        # hatched, unfilled: the gap stays readable where it overlaps the accuracy bar
        ax.bar(bins["lower"], (bins["confidence"] - bins["accuracy"]).fillna(0),
               bottom=bins["accuracy"].fillna(0), width=width, align="edge", fill=False,
               hatch="//", edgecolor="tab:red", label="gap to confidence")
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
        gaps = _calibrated_bin_gaps(_class_probabilities(p).max(axis=1), n_bins, 2000, 0)
        filled = bins[bins["count"] > 0]
        used = filled.index.to_numpy()
        low, high = (filled["confidence"].to_numpy()
                     + np.quantile(gaps[:, used], q, axis=0) / filled["count"].to_numpy()
                     for q in (0.05, 0.95))
        ax.errorbar(filled["lower"].to_numpy() + width / 2, (low + high) / 2,
                    yerr=(high - low) / 2, fmt="none", ecolor="black", elinewidth=1.5,
                    capsize=2, label="90% of a calibrated model")
        for row in filled.itertuples():
            # how many examples each bar stands on: a bar of 3 examples says little
            top = max(row.accuracy, row.confidence)
            ax.text(row.lower + width / 2, min(top + 0.02, 0.97), str(row.count),
                    ha="center", va="bottom", fontsize=7, rotation=90 if n_bins > 20 else 0)
        score = _consistency(_ece_of(bins), gaps, int(bins["count"].sum()))
        p_value = score["p_value"]
        ax.set(xlim=(0, 1), ylim=(0, 1.05), xlabel="confidence (top-1)", ylabel="accuracy",
               title=f"{name}: ECE {score['ece']:.3f}\na calibrated model's "
                     f"{score['ece_calibrated']:.3f}, "
                     + ("p<0.001" if p_value < 0.001 else f"p={p_value:.3f}"))
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, overwrite=overwrite)


def uncertainty_histogram(y_true, probs, path, *, uncertainty=None, bins: int = 30,
                          overwrite: bool = False):
    """Histogram of the uncertainty (default: predictive entropy) for correct vs wrong predictions.

    ``probs`` (and ``uncertainty``) may be ``{name: array}`` dicts for one panel each.
    """
    named = _as_named(probs)
    named_u = _as_named(uncertainty) if uncertainty is not None else {}
    plt = pyplot()
    fig, axes = plt.subplots(1, len(named), figsize=(4.2 * len(named), 3.5), squeeze=False)
    for ax, (name, p) in zip(axes[0], named.items()):
        y, cp = _labels(y_true, p)
        u = np.asarray(named_u.get(name, predictive_entropy(cp)), "float64")
        correct = cp.argmax(axis=1) == y
        edges = np.linspace(u.min(), max(u.max(), u.min() + 1e-9), bins + 1)
        ax.hist(u[correct], edges, alpha=0.6, density=True, label=f"correct ({correct.sum()})")
        ax.hist(u[~correct], edges, alpha=0.6, density=True, label=f"wrong ({(~correct).sum()})")
        ax.set(xlabel="uncertainty (predictive entropy)" if name not in named_u else "uncertainty",
               ylabel="density", title=name)
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, path, overwrite=overwrite)


def plot_rejection_curves(curves, path, *, overwrite: bool = False):
    """Plot ``{name: rejection_curve(...)}`` frames (accuracy vs rejected fraction)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for name, frame in _as_named(curves).items():
        ax.plot(frame["rejected_fraction"], frame["accuracy"], marker=".", label=name)
    ax.set(xlabel="fraction rejected (most uncertain first)", ylabel="accuracy of the rest",
           title="Rejection curve")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path, overwrite=overwrite)


def plot_coverage(y_true, intervals: dict, path, *, overwrite: bool = False):
    """Regression calibration plot: observed vs expected coverage of central intervals.

    ``intervals``: ``{name: (mean, std)}`` Gaussian predictions. On the diagonal the
    intervals hold what they promise; below it they are too narrow (overconfident).
    """
    levels = np.linspace(0.05, 0.95, 19)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for name, (mean, std) in intervals.items():
        observed = [interval_coverage(y_true, mean, std, level) for level in levels]
        nll = gaussian_nll(y_true, mean, std)
        ax.plot(levels, observed, marker=".", label=f"{name} (NLL {nll:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="expected coverage (interval level)",
           ylabel="observed coverage (test targets inside)", title="Interval calibration")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, overwrite=overwrite)
