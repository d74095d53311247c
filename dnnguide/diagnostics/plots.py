"""Plots of a diagnostics table: gradient norms over depth and over time, activation histograms.

Example:
    >>> save_plots(load_diagnostics("runs/x"), "runs/x/plots")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dnnguide.diagnostics.rules import Thresholds, gradient_ratio
from dnnguide.plotting import pyplot, save_figure


#: At most this many records are drawn per panel (evenly spaced, first and last kept), so
#: the legend can name every line.
MAX_LINES = 10


def _shown_steps(steps: list) -> list:
    if len(steps) <= MAX_LINES:
        return steps
    picks = np.unique(np.linspace(0, len(steps) - 1, MAX_LINES).round().astype(int))
    return [steps[i] for i in picks]


def plot_gradient_norms(frames, path, *, title: str | None = None,
                        thresholds: Thresholds | None = None) -> Path:
    """Per-layer gradient norm over depth (log scale), one panel per frame, side by side.

    Each drawn record is one line named in the legend (``step N``), colored from early
    (dark) to late; at most :data:`MAX_LINES` records per panel. The panel title gives the
    ratio of the first to the last layer's gradient norm and what it means under
    ``thresholds`` (below ``vanishing_ratio``: vanishing; above ``exploding_ratio``: exploding).

    Args:
        frames: a diagnostics DataFrame, or ``{label: DataFrame}`` to compare setups.
        path: the PNG to write.
        title: a title over all panels.
        thresholds: the :class:`Thresholds` the title explains (default ``Thresholds()``).
    """
    t = thresholds or Thresholds()
    plt = pyplot()
    frames = frames if isinstance(frames, dict) else {"": frames}
    fig, axes = plt.subplots(1, len(frames), figsize=(4.6 * len(frames), 4.0), sharey=True,
                             squeeze=False)
    for ax, (label, frame) in zip(axes[0], frames.items()):
        steps = _shown_steps(sorted(frame["step"].unique()))
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(steps)))
        for color, step in zip(colors, steps):
            rows = frame[frame["step"] == step].sort_values("index")
            ax.plot(rows["index"], rows["grad_norm"].clip(lower=1e-30), marker=".",
                    color=color, label=f"step {step}")
        ax.set_yscale("log")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("layer (input -> output)")
        ratio = gradient_ratio(frame)
        verdict = ("vanishing" if ratio < t.vanishing_ratio else
                   "exploding" if ratio > t.exploding_ratio else "healthy")
        ax.set_title(f"{label}\nlayer 1 / last layer gradient norm = {ratio:.2g} ({verdict})\n"
                     f"< {t.vanishing_ratio:g}: vanishing, > {t.exploding_ratio:g}: exploding"
                     .strip(), fontsize=8)
        ax.legend(fontsize=7, title="record", title_fontsize=7)
    axes[0][0].set_ylabel("gradient norm")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_gradient_norms_over_time(frame, path) -> Path:
    """Each layer's gradient norm over training steps (log scale), colored by depth."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    n = int(frame["index"].max())
    for index, rows in frame.groupby("index"):
        ax.plot(rows["step"], rows["grad_norm"].clip(lower=1e-30),
                color=plt.cm.viridis(0.9 * (index - 1) / max(n - 1, 1)), lw=1)
    sm = plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(1, n))
    fig.colorbar(sm, ax=ax, label="layer")
    ax.set(yscale="log", xlabel="training step", ylabel="gradient norm")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_activation_histograms(activations: dict[str, np.ndarray], path, bins: int = 50) -> Path:
    """Histograms of each layer's activations on the probe batch, stacked input (top) to output.

    One axes with one filled outline per layer (a ridgeline plot): matplotlib's ``hist``
    on dozens of small axes takes seconds, and the shared x axis makes layers comparable.
    """
    plt = pyplot()
    finite = {name: np.asarray(v, "float64").ravel() for name, v in activations.items()}
    finite = {name: v[np.isfinite(v)] for name, v in finite.items()}
    pooled = np.concatenate([v for v in finite.values() if v.size] or [np.zeros(1)])
    low, high = np.percentile(pooled, [0.5, 99.5])
    edges = np.linspace(low, high if high > low else low + 1, bins + 1)
    fig, ax = plt.subplots(figsize=(6.5, 0.32 * len(finite) + 1.2))
    for offset, (name, values) in enumerate(reversed(list(finite.items()))):
        counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), edges)
        height = 0.9 * counts / max(counts.max(), 1)
        ax.stairs(height + offset, edges, baseline=offset, fill=True, alpha=0.8,
                  color=plt.cm.viridis(0.9 * offset / max(len(finite) - 1, 1)))
    ax.set_yticks(np.arange(len(finite)) + 0.3, list(reversed(list(finite))), fontsize=7)
    ax.set(xlabel="activation value (clipped to the 0.5-99.5 percentiles)",
           title="activations on the probe batch")
    fig.tight_layout()
    return save_figure(fig, path)


def save_plots(frame, directory, activations: dict | None = None, *, prefix: str = "",
               thresholds: Thresholds | None = None) -> list[Path]:
    """Write the diagnostics plots of a table (and of activations, if given) into ``directory``.

    Files: ``{prefix}gradient_norms_depth.png``, ``{prefix}gradient_norms_time.png`` (when
    there is more than one record) and ``{prefix}activation_histograms.png``.
    """
    directory = Path(directory)
    paths = [plot_gradient_norms(frame, directory / f"{prefix}gradient_norms_depth.png",
                                 thresholds=thresholds)]
    if frame["step"].nunique() > 1:
        paths.append(plot_gradient_norms_over_time(
            frame, directory / f"{prefix}gradient_norms_time.png"))
    if activations:
        paths.append(plot_activation_histograms(
            activations, directory / f"{prefix}activation_histograms.png"))
    return paths
