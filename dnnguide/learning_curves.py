"""Learning curves of a run: loss, metrics and learning rate per epoch, best epoch marked.

Example:
    >>> from dnnguide.learning_curves import plot_learning_curves  # doctest: +SKIP
    >>> plot_learning_curves(result.history, "curves.png")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dnnguide.plotting import pyplot, save_figure


def learning_curves_figure(history, *, epochs: int | None = None,
                           best_epoch: int | None = None):
    """The learning-curves figure: loss, each metric, and the learning rate, per epoch.

    Loss goes on a log scale when it spans more than a decade; the best epoch (lowest
    validation loss, the ``best_epoch`` of ``metrics.json``) is marked on every panel, and so
    is an early stop (training ended before the ``epochs`` budget).

    Args:
        history: a DataFrame, one row per epoch (Keras' history: ``loss``, ``val_loss``,
            metrics, ``learning_rate``); an ``epoch`` column is ignored.
        epochs: the training budget, to tell an early stop from a finished budget.
        best_epoch: the (1-based) epoch to mark as best, as ``metrics.json`` records it
            (early stopping's monitor, from the first epoch it counts); default: the epoch of
            lowest validation loss.

    Returns:
        A matplotlib figure (saved by :func:`plot_learning_curves`).

    Example:
        >>> fig = learning_curves_figure(result.history, epochs=100)  # doctest: +SKIP
    """
    plt = pyplot()
    history = history.drop(columns=["epoch"], errors="ignore").reset_index(drop=True)
    metrics = [c for c in history.columns if c != "learning_rate" and not c.startswith("val_")]
    metrics.sort(key=lambda name: name != "loss")  # loss first
    has_lr = "learning_rate" in history and history["learning_rate"].notna().any()
    panels = len(metrics) + has_lr
    fig, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 3.6), squeeze=False)
    axes = list(axes[0])
    x = np.arange(1, len(history) + 1)
    best = best_epoch
    if best is None and "val_loss" in history and history["val_loss"].notna().any():
        best = int(history["val_loss"].idxmin()) + 1
    stopped = epochs is not None and 0 < len(history) < epochs
    for ax, metric in zip(axes, metrics):
        ax.plot(x, history[metric], label="train")
        if f"val_{metric}" in history:
            ax.plot(x, history[f"val_{metric}"], label="validation")
        values = history[[c for c in (metric, f"val_{metric}") if c in history]].to_numpy(float)
        values = values[np.isfinite(values)]
        if metric == "loss" and len(values) and values.min() > 0 and \
                values.max() / values.min() > 10:
            ax.set_yscale("log")  # spans decades: a linear axis flattens the later epochs
        _mark_epochs(ax, best, len(history) if stopped else None, epochs)
        ax.set(xlabel="epoch", ylabel=metric.replace("_", " "),
               title=f"{metric.replace('_', ' ')} (log scale)" if ax.get_yscale() == "log"
               else metric.replace("_", " "))
        ax.legend(fontsize="small")
    if has_lr:
        ax = axes[-1]
        ax.plot(x, history["learning_rate"], color="tab:green", label="learning rate")
        lr = history["learning_rate"].to_numpy(float)
        lr = lr[np.isfinite(lr) & (lr > 0)]
        if len(lr) and lr.max() / lr.min() > 10:
            ax.set_yscale("log")
        _mark_epochs(ax, best, len(history) if stopped else None, epochs)
        ax.set(xlabel="epoch", ylabel="learning rate", title="learning rate (end of epoch)")
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _mark_epochs(ax, best: int | None, stopped: int | None, epochs: int | None) -> None:
    if best is not None:
        ax.axvline(best, color="grey", linestyle="--", linewidth=1, label=f"best epoch ({best})")
    if stopped is not None:
        ax.axvline(stopped, color="tab:red", linestyle=":", linewidth=1.5,
                   label=f"early stop (epoch {stopped} of {epochs})")


def plot_learning_curves(history, path: Path, *, epochs: int | None = None,
                         best_epoch: int | None = None) -> Path:
    """Save :func:`learning_curves_figure` as a PNG at ``path`` (atomically)."""
    return save_figure(learning_curves_figure(history, epochs=epochs, best_epoch=best_epoch),
                       path)
