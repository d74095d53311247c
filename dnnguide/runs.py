"""Run directories: created without ever overwriting, written atomically, read back as pandas.

Layout of one run (``runs/<UTC timestamp>-<name>/``)::

    config.json      the NetworkConfig (JSON round-trip)
    run.json         seed, dataset spec, task, library versions, device, status, times
    training_log.csv per-epoch log written during training (survives interruption)
    history.csv      the final per-epoch history
    metrics.json     final test/validation metrics
    model.keras      the trained model (``keras.saving.load_model``)
    backup/          BackupAndRestore checkpoint while the run is incomplete
    plots/*.png      learning curves and whatever other modules plot
    tensorboard/     TensorBoard logs

Example:
    >>> frame = load("runs/")  # doctest: +SKIP
    >>> frame[["run", "preset", "test_accuracy"]]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dnnguide.config import NetworkConfig
# Re-exported for code written before dnnguide.plotting existed; new code imports plotting.
from dnnguide.plotting import pyplot, save_figure  # noqa: F401


class RunExistsError(FileExistsError):
    """Refusing to overwrite something a user saved."""


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def atomic_save_model(model, path: Path) -> None:
    """``model.save`` to a temporary ``.keras`` file, then rename (no half-written model)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def new_run_dir(root: str | os.PathLike, name: str) -> Path:
    """Create ``root/<UTC timestamp>-<name>`` (suffixed ``-2``, ``-3``... if taken)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    for attempt in range(1, 1000):
        path = root / (f"{stamp}-{safe}" + (f"-{attempt}" if attempt > 1 else ""))
        try:
            path.mkdir()  # exist_ok=False: two runs never share a folder
            (path / "plots").mkdir()
            return path
        except FileExistsError:
            continue
    raise RunExistsError(f"Could not create a fresh run directory under {root}")


@dataclass
class Run:
    """A run directory on disk."""

    path: Path

    def _json(self, name: str) -> dict:
        file = self.path / name
        return json.loads(file.read_text()) if file.exists() else {}

    @property
    def config(self) -> NetworkConfig:
        return NetworkConfig.from_dict(self._json("config.json"))

    @property
    def info(self) -> dict:
        return self._json("run.json")

    @property
    def metrics(self) -> dict:
        return self._json("metrics.json")

    @property
    def plots_dir(self) -> Path:
        path = self.path / "plots"
        path.mkdir(exist_ok=True)
        return path

    @property
    def complete(self) -> bool:
        return self.info.get("status") == "complete"

    def history(self):
        import pandas as pd

        for name in ("history.csv", "training_log.csv"):
            if (self.path / name).exists():
                return pd.read_csv(self.path / name)
        return pd.DataFrame()

    def model(self):
        """The trained model, reloaded with ``keras.saving.load_model``."""
        import keras

        import dnnguide.layers  # noqa: F401  (registers the MC layers for deserialization)

        file = self.path / "model.keras"
        if not file.exists():
            raise FileNotFoundError(f"{file} does not exist: the run did not finish "
                                    f"(status={self.info.get('status')!r}). Resume it with "
                                    f"`dnnguide train --resume {self.path}`.")
        return keras.saving.load_model(file)

    def dataset(self):
        """The same Dataset (same split and scaling) the run trained on."""
        from dnnguide.data import from_spec

        spec = self.info.get("dataset")
        if not spec:
            raise ValueError(f"Run {self.path} was trained on in-memory arrays; "
                             "its dataset cannot be loaded again from the run directory.")
        return from_spec(spec)


def open_run(path: str | os.PathLike) -> Run:
    """Open an existing run directory (``config.json`` must be there)."""
    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is not a dnnguide run directory (no config.json).")
    return Run(path)


def load(root: str | os.PathLike = "runs"):
    """All runs under ``root`` as one pandas DataFrame (one row per run).

    Columns: ``run``, ``path``, ``status``, ``started``, ``preset``, ``dataset``, ``seed``,
    the main config fields, and every metric in ``metrics.json``.
    """
    import pandas as pd

    rows = []
    for config_file in sorted(Path(root).glob("*/config.json")):
        run = Run(config_file.parent)
        info, cfg = run.info, run._json("config.json")
        rows.append({
            "run": run.path.name,
            "path": str(run.path),
            "status": info.get("status", "unknown"),
            "started": info.get("started"),
            "preset": cfg.get("name"),
            "dataset": (info.get("dataset") or {}).get("name"),
            "seed": info.get("seed"),
            "depth": cfg.get("depth"),
            "activation": cfg.get("activation"),
            "normalization": cfg.get("normalization"),
            "optimizer": (cfg.get("optimizer") or {}).get("name"),
            "schedule": (cfg.get("schedule") or {}).get("name"),
            **run.metrics,
        })
    return pd.DataFrame(rows)
