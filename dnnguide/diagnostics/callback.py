"""The callback: per-layer diagnostics every ``interval`` steps during training, saved as CSV.

Example:
    >>> cb = DiagnosticsCallback(x_train[:256], y_train[:256], output_dir=run_dir)  # doctest: +SKIP
    >>> model.fit(x_train, y_train, callbacks=[cb])  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

import keras
import numpy as np
from keras import ops

from dnnguide.config import check_range
from dnnguide.diagnostics.plots import plot_gradient_norms, save_plots
from dnnguide.diagnostics.probe import EAGER_RECORDS, _check_batch, _Probe
from dnnguide.diagnostics.rules import (
    DiagnosticsWarning, Finding, Thresholds, _frame, _step_findings,
)
from dnnguide.runs import atomic_write_text

DIAGNOSTICS_CSV = "diagnostics.csv"
#: Record every this many training steps by default (one probe pass costs a few steps).
DEFAULT_INTERVAL = 100
#: By default at most this share of training time goes to diagnostics.
DEFAULT_MAX_OVERHEAD = 0.05


class DiagnosticsCallback(keras.callbacks.Callback):
    """Record per-layer diagnostics every ``interval`` steps; warn once per pathology.

    Each record is one forward + backward pass on the probe batch (traced with
    ``tf.function`` once training goes on, see :meth:`_Probe.measure`) plus the
    update/weight ratio of the training step it follows. The table is written
    (atomically) to ``output_dir/diagnostics.csv`` after every epoch, and the plots to
    ``output_dir/plots/`` at the end of training. A resumed run appends to its table.

    Args:
        x_probe, y_probe: a fixed probe batch (e.g. 256 training rows).
        output_dir: run directory to save into (``None``: keep in memory, ``.frame``).
        interval: record every this many steps (and at the first and the last step).
        max_overhead: cap on the share of training time spent on diagnostics (default
            5%): a due record waits until the time spent so far is within the cap, so the
            slowdown stays bounded on any model and machine. ``None``: record strictly
            every ``interval`` steps. The final record and the plots come on top.
        loss: the loss to differentiate (default: the model's compiled loss).
        thresholds: when a statistic counts as a pathology.
        warn: emit a :class:`DiagnosticsWarning` the first time each pathology appears.
        plots: write the PNGs at the end of training.

    Example:
        >>> import numpy as np, dnnguide
        >>> x = np.random.default_rng(0).normal(size=(256, 8)).astype("float32")
        >>> y = (x[:, 0] > 0).astype("int64")
        >>> model = dnnguide.build_model("default", (8,), 2, depth=3, width=16)
        >>> cb = DiagnosticsCallback(x[:64], y[:64], interval=4, plots=False)
        >>> _ = model.fit(x, y, epochs=1, callbacks=[cb], verbose=0)
        >>> bool(cb.frame.groupby("layer")["grad_norm"].mean().gt(0).all())  # a row per layer
        True
    """

    def __init__(self, x_probe, y_probe, output_dir=None, *, interval: int = DEFAULT_INTERVAL,
                 max_overhead: float | None = DEFAULT_MAX_OVERHEAD, loss=None,
                 thresholds: Thresholds | None = None, warn: bool = True, plots: bool = True):
        super().__init__()
        check_range("interval", interval, 1, integer=True)
        if max_overhead is not None:
            check_range("max_overhead", max_overhead, 0.0, 1.0, low_inclusive=False)
        if thresholds is not None and not isinstance(thresholds, Thresholds):
            raise TypeError(f"Argument `thresholds` must be a Thresholds. "
                            f"Received: thresholds={thresholds!r}")
        self.x_probe, self.y_probe = _check_batch(x_probe, y_probe)
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.interval, self.max_overhead = interval, max_overhead
        self.loss, self.warn, self.plots = loss, warn, plots
        self.thresholds = thresholds or Thresholds()
        self.findings: list[Finding] = []
        self.rows: list[dict] = []
        self._probe = self._snapshot = self._first_total = None
        self._count = self._epoch = self._saved_rows = 0
        self._pending, self._spent, self._start = True, 0.0, time.perf_counter()

    @property
    def frame(self):
        """Every record so far as a DataFrame (:data:`COLUMNS`)."""
        return _frame(self.rows)

    def plot(self, path) -> Path:
        """Write the per-layer gradient-norm plot of the records so far to ``path``."""
        return plot_gradient_norms(self.frame, path, thresholds=self.thresholds)

    def on_train_begin(self, logs=None):
        self._start, self._spent, self._pending = time.perf_counter(), 0.0, True
        if self._probe is None or self._probe.model is not self.model:  # keep a traced probe
            self._probe = _Probe(self.model, self.x_probe, self.y_probe, loss=self.loss,
                                 thresholds=self.thresholds)
        self._probe.eager_records = _eager_records(self.params, self.interval)
        saved = self.output_dir / DIAGNOSTICS_CSV if self.output_dir is not None else None
        if saved is not None and saved.exists() and not self.rows:
            # A resumed run (BackupAndRestore) keeps the records of its earlier attempt.
            earlier = load_diagnostics(self.output_dir)
            self.rows = earlier.to_dict("records")
            self._saved_rows = len(self.rows)
            first = earlier[earlier["step"] == earlier["step"].min()]
            self._first_total = float(np.sqrt(np.sum(first["grad_norm"] ** 2)))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _within_budget(self) -> bool:
        if self.max_overhead is None or not self.rows:
            return True
        return self._spent <= self.max_overhead * (time.perf_counter() - self._start)

    def on_train_batch_begin(self, batch, logs=None):
        if self._count % self.interval == 0:
            self._pending = True
        if self._pending and self._within_budget():
            start = time.perf_counter()
            self._snapshot = [ops.convert_to_numpy(k) for k in self._probe.kernels]
            self._pending = False
            self._spent += time.perf_counter() - start

    def on_train_batch_end(self, batch, logs=None):
        self._count += 1
        if self._snapshot is None:
            return
        start = time.perf_counter()
        after = [ops.convert_to_numpy(k) for k in self._probe.kernels]
        ratios = [np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12)
                  for a, b in zip(after, self._snapshot)]
        self._snapshot = None
        self._spent += time.perf_counter() - start
        self._record(ratios)

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self._record(None)  # diverged between two records: catch it now
        self._save()  # an interrupted run keeps what it recorded

    def on_train_end(self, logs=None):
        if self._probe is None:
            return
        self._record(None)  # the final state, whatever the interval
        self._save()
        if self.output_dir is not None and self.plots:
            save_plots(self.frame, self.output_dir / "plots", self._probe.activations(),
                       thresholds=self.thresholds)

    def _save(self) -> None:
        if self.output_dir is None or len(self.rows) == self._saved_rows:
            return
        start = time.perf_counter()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.output_dir / DIAGNOSTICS_CSV, self.frame.to_csv(index=False))
        self._saved_rows = len(self.rows)
        self._spent += time.perf_counter() - start

    def _record(self, update_ratios) -> None:
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        if self.rows and self.rows[-1]["step"] == step and update_ratios is None:
            return  # already recorded at this step
        start = time.perf_counter()
        rows = self._probe.rows(self._probe.measure()[0], step, self._epoch, update_ratios)
        self.rows.extend(rows)
        if self._first_total is None:
            self._first_total = float(np.sqrt(sum(r["grad_norm"] ** 2 for r in rows)))
        seen = {f.kind for f in self.findings}
        for finding in _step_findings(_frame(rows), self.thresholds, self._first_total):
            if finding.kind in seen:
                continue
            seen.add(finding.kind)
            self.findings.append(finding)
            if self.warn:
                warnings.warn(f"step {step}: {finding}", DiagnosticsWarning, stacklevel=2)
        self._spent += time.perf_counter() - start


def _eager_records(params: dict | None, interval: int) -> int:
    """How many records to run eagerly before tracing the probe, from the run's planned length.

    A record is due every ``interval`` steps plus one at the end. A run that plans more
    records than :data:`EAGER_RECORDS` (about the cost of tracing, in eager passes) traces
    at once; one that plans fewer never traces (early stopping only shortens a run). A run
    of unknown length (no ``steps`` in the Keras params) keeps the ski-rental default.
    """
    epochs, steps = (params or {}).get("epochs"), (params or {}).get("steps")
    if not epochs or not steps:
        return EAGER_RECORDS
    planned = epochs * steps // interval + 2  # the first, every interval, the last
    return 0 if planned > EAGER_RECORDS else planned


def load_diagnostics(run_dir):
    """The diagnostics table a run recorded (``run_dir/diagnostics.csv``)."""
    import pandas as pd

    path = Path(run_dir) / DIAGNOSTICS_CSV
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: train with `--diagnose` "
                                "(fit(diagnose=True)) to record diagnostics.")
    return pd.read_csv(path)
