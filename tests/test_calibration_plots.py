"""Plots of calibration (dnnguide/calibration_plots.py): what the reliability diagram draws."""

from __future__ import annotations

import numpy as np
from matplotlib.collections import LineCollection

from dnnguide import calibration_plots
from dnnguide.calibration import calibration_bins, calibration_consistency


def _confidences(rng, n, classes=3):
    """Class probabilities whose top-1 confidences spread over (1/classes, 1)."""
    return rng.dirichlet(np.ones(classes) * 0.3, n)


def test_reliability_diagram_shows_per_bin_counts(tmp_path, monkeypatch):
    # issue 15: the diagram must say how many examples each bar stands on
    captured = []
    monkeypatch.setattr(calibration_plots, "save_figure",
                        lambda fig, path, overwrite=False: captured.append(fig) or path)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3) * 0.5, 200)
    y = rng.integers(0, 3, 200)
    calibration_plots.reliability_diagram(y, probs, tmp_path / "rel.png", n_bins=10)
    texts = [t.get_text() for t in captured[0].axes[0].texts]
    bins = calibration_bins(y, probs, 10)
    assert texts == [str(c) for c in bins["count"] if c > 0]
    assert sum(int(t) for t in texts) == 200


def test_reliability_diagram_draws_consistency_bars_around_each_bins_confidence(
        tmp_path, monkeypatch):
    captured = []
    monkeypatch.setattr(calibration_plots, "save_figure",
                        lambda fig, path, overwrite=False: captured.append(fig) or path)
    rng = np.random.default_rng(0)
    probs = _confidences(rng, 300)
    y = np.array([rng.choice(3, p=row) for row in probs])
    calibration_plots.reliability_diagram(y, probs, tmp_path / "rel.png", n_bins=10)
    ax = captured[0].axes[0]
    bins = calibration_bins(y, probs, 10)
    used = bins[bins["count"] > 0]
    (bars,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    segments = bars.get_segments()
    assert len(segments) == len(used)
    for (low, high), row in zip(((s[0][1], s[1][1]) for s in segments), used.itertuples()):
        assert low <= row.confidence <= high  # a calibrated bin's accuracy centres on it
    widths = np.array([s[1][1] - s[0][1] for s in segments])
    counts = used["count"].to_numpy()
    assert widths[counts.argmax()] < widths[counts.argmin()]  # more rows, a tighter bar
    out = calibration_consistency(y, probs, n_bins=10)
    assert f"a calibrated model's {out['ece_calibrated']:.3f}" in ax.get_title()
