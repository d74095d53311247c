"""The one matplotlib helper: pyplot on the Agg backend, and PNGs written atomically.

Every module that plots (learning curves, schedules, LR finder, calibration, diagnostics,
tuning) draws with :func:`pyplot` and writes with :func:`save_figure`, so no run directory
ever holds a half-written PNG and no plot opens a window on a headless machine.

Example:
    >>> from dnnguide.plotting import pyplot, save_figure
    >>> plt = pyplot()
    >>> fig, ax = plt.subplots()
    >>> _ = ax.plot([1, 2, 3])
    >>> save_figure(fig, "plot.png")  # doctest: +SKIP
    PosixPath('plot.png')
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def file_mode() -> int:
    """0666 minus the user's umask: what ``open()`` would give (``mkstemp`` gives 0600)."""
    mask = os.umask(0)  # reading the umask means setting it; put it back at once
    os.umask(mask)
    return 0o666 & ~mask


def pyplot():
    """``matplotlib.pyplot``; on the non-interactive Agg backend unless the user chose one.

    Runs write PNGs and show nothing. A backend already in use (pyplot imported, as Jupyter's
    inline backend does) or asked for in ``MPLBACKEND`` is left alone, so the user's own plots
    keep showing after dnnguide has drawn one.
    """
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, *, overwrite: bool = True) -> Path:
    """Save ``fig`` as a PNG under a temporary name, rename it into place, and close it.

    A half-written PNG never carries the final name. With ``overwrite=False`` an existing file
    is refused (``FileExistsError``) instead of replaced.
    """
    path = Path(path)
    try:
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True or another path "
                                  "(plots are never replaced silently).")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
        os.fchmod(fd, file_mode())
        os.close(fd)
        try:
            fig.savefig(tmp, dpi=100)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    finally:
        pyplot().close(fig)
    return path
