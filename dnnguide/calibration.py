"""Calibration metrics and plots for class probabilities (from any model, MC dropout or not).

Top-1 expected calibration error with equal-width bins (15 by default, as in torchmetrics and
Uncertainty Baselines), negative log-likelihood, Brier score, accuracy, the rejection curve
(accuracy when the most uncertain fraction is set aside), and their plots: reliability diagram,
uncertainty histogram (correct vs wrong), rejection curves. Plots are PNGs written atomically
and never over an existing file unless asked.

Example:
    >>> import numpy as np
    >>> y = np.array([0, 1, 1, 0])
    >>> probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    >>> round(accuracy(y, probs), 2)
    0.75

References:
    Guo et al. (2017), "On Calibration of Modern Neural Networks", ICML (ECE, reliability diagrams).
    Naeini et al. (2015), "Obtaining Well Calibrated Probabilities Using Bayesian Binning", AAAI.
"""

from __future__ import annotations

import numpy as np

from dnnguide.config import check_range
from dnnguide.plotting import pyplot, save_figure

_EPS = 1e-12


def predictive_entropy(probs) -> np.ndarray:
    """Entropy (nats) of class probabilities, one value per row; a binary column is expanded."""
    p = _class_probabilities(probs)
    return -np.sum(p * np.log(np.clip(p, _EPS, 1.0)), axis=1)


# --------------------------------------------------------------------------- metrics
def _class_probabilities(probs) -> np.ndarray:
    p = np.asarray(probs, "float64")
    if p.ndim == 1 or (p.ndim == 2 and p.shape[1] == 1):  # binary: P(class 1)
        p = p.reshape(-1)
        return np.stack([1.0 - p, p], axis=1)
    if p.ndim != 2:
        raise ValueError(f"Argument `probs` must have shape (n, classes) or (n,). "
                         f"Received: probs of shape {p.shape}")
    return p


def _labels(y_true, probs) -> tuple[np.ndarray, np.ndarray]:
    p = _class_probabilities(probs)
    y = np.asarray(y_true).reshape(-1)
    if len(y) != len(p):
        raise ValueError(f"Arguments `y_true` and `probs` must have the same length. "
                         f"Received: {len(y)} labels and {len(p)} rows of probabilities")
    if len(y) == 0 or np.any(y != np.round(y)) or y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"Argument `y_true` must hold integer labels in [0, {p.shape[1] - 1}]. "
                         f"Received: values in [{y.min() if len(y) else None}, "
                         f"{y.max() if len(y) else None}]")
    return y.astype("int64"), p


def calibration_bins(y_true, probs, n_bins: int = 15):
    """Top-1 confidence vs accuracy in ``n_bins`` equal-width bins, as a pandas DataFrame.

    Bins are ``(lower, upper]`` over [0, 1] (a confidence of exactly 0 goes to the first),
    as in torchmetrics. Columns: ``lower``, ``upper``, ``count``, ``confidence`` (mean top-1
    probability), ``accuracy``, ``gap`` (``|accuracy - confidence|``; NaN for empty bins).
    """
    check_range("n_bins", n_bins, 1, integer=True)
    import pandas as pd

    y, p = _labels(y_true, probs)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype("float64")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(index, confidence, n_bins) / count
        acc = np.bincount(index, correct, n_bins) / count
    return pd.DataFrame({"lower": edges[:-1], "upper": edges[1:], "count": count,
                         "confidence": conf, "accuracy": acc, "gap": np.abs(acc - conf)})


def expected_calibration_error(y_true, probs, n_bins: int = 15) -> float:
    """Top-1 expected calibration error: ``sum_b |B_b|/n * |accuracy(B_b) - confidence(B_b)|``.

    15 equal-width bins by default, as in torchmetrics and Uncertainty Baselines. Hand-written
    (a few NumPy lines) because torchmetrics needs PyTorch and TensorFlow Probability's
    version is TF-only and takes logits.

    Example:
        >>> y = np.array([0, 1, 1, 1])
        >>> probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
        >>> round(expected_calibration_error(y, probs), 3)  # bins: 0.9 vs 0.5, 0.6 vs 1.0
        0.4
    """
    bins = calibration_bins(y_true, probs, n_bins)
    used = bins["count"] > 0
    return float((bins["count"][used] * bins["gap"][used]).sum() / bins["count"].sum())


def negative_log_likelihood(y_true, probs) -> float:
    """Mean negative log-likelihood (cross-entropy) of the true labels, in nats."""
    from sklearn.metrics import log_loss

    y, p = _labels(y_true, probs)
    # float32 softmax rows sum to 1 only within ~1e-7, beyond scikit-learn's float64 tolerance
    return float(log_loss(y, p / p.sum(axis=1, keepdims=True), labels=np.arange(p.shape[1])))


def brier_score(y_true, probs) -> float:
    """Multi-class Brier score: mean over examples of ``sum_k (p_k - onehot_k)^2``, in [0, 2].

    Written out because scikit-learn's multi-class ``brier_score_loss`` needs >= 1.7 and
    halves the binary case; this is the Uncertainty Baselines convention for every task.
    """
    y, p = _labels(y_true, probs)
    onehot = np.eye(p.shape[1])[y]
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def accuracy(y_true, probs) -> float:
    """Top-1 accuracy."""
    y, p = _labels(y_true, probs)
    return float(np.mean(p.argmax(axis=1) == y))


def classification_metrics(y_true, probs, n_bins: int = 15) -> dict[str, float]:
    """``accuracy``, ``nll``, ``ece`` and ``brier`` of class probabilities."""
    return {"accuracy": accuracy(y_true, probs), "nll": negative_log_likelihood(y_true, probs),
            "ece": expected_calibration_error(y_true, probs, n_bins),
            "brier": brier_score(y_true, probs)}


def rejection_curve(y_true, probs, uncertainty=None, fractions=None):
    """Accuracy on what is left when the most uncertain fraction of examples is set aside.

    Args:
        y_true: integer labels.
        probs: class probabilities.
        uncertainty: one value per example (higher: less sure); default: predictive entropy.
        fractions: fractions to reject, in [0, 1); default 0, 0.05, ..., 0.95.

    Returns:
        A pandas DataFrame with ``rejected_fraction``, ``kept`` and ``accuracy``. A useful
        uncertainty makes the accuracy rise as more is rejected.
    """
    import pandas as pd

    y, p = _labels(y_true, probs)
    u = predictive_entropy(p) if uncertainty is None else np.asarray(uncertainty, "float64")
    if u.shape != (len(y),):
        raise ValueError(f"Argument `uncertainty` must have one value per example, shape "
                         f"({len(y)},). Received: shape {u.shape}")
    fractions = np.arange(0.0, 0.951, 0.05) if fractions is None else np.asarray(fractions)
    for f in np.ravel(fractions):
        check_range("fraction", float(f), 0.0, 1.0, high_inclusive=False)
    correct = (p.argmax(axis=1) == y)[np.argsort(u, kind="stable")]  # most certain first
    kept = np.maximum(1, len(y) - np.round(fractions * len(y)).astype(int))
    hits = np.cumsum(correct)[kept - 1]
    return pd.DataFrame({"rejected_fraction": fractions, "kept": kept, "accuracy": hits / kept})


# --------------------------------------------------------------------------- plots
def _as_named(probs, label="model") -> dict:
    return dict(probs) if isinstance(probs, dict) else {label: probs}


def reliability_diagram(y_true, probs, path, *, n_bins: int = 15, overwrite: bool = False):
    """Accuracy against confidence per bin (one panel per entry of a ``{name: probs}`` dict).

    Bars on the diagonal mean calibrated; bars below it, overconfident. Returns ``path``.
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
        ece = expected_calibration_error(y_true, p, n_bins)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top-1)", ylabel="accuracy",
               title=f"{name}: ECE {ece:.3f}")
        ax.legend(loc="upper left")
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
