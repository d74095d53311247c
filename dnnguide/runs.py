"""Run directories: created without ever overwriting, written atomically, read back as pandas.

Layout of one run (``runs/<UTC timestamp>-<name>/``)::

    config.json      the NetworkConfig (JSON round-trip)
    run.json         seed, dataset spec, task, library versions, device, status, times
    training_log.csv per-epoch log written during training (survives interruption)
    history.csv      the final per-epoch history
    metrics.json     final test/validation metrics
    model.keras      the trained model (``keras.saving.load_model``)
    checkpoint/      the last epoch-end checkpoint (weights, optimizer, callbacks' state),
                     ``latest/`` and the ``previous/`` good one; kept so a run can be resumed
                     or continued for more epochs (``dnnguide train --resume RUN --epochs N``)
    plots/*.png      learning curves and whatever other modules plot
    tensorboard/     TensorBoard logs

Example:
    >>> frame = load("runs/")  # doctest: +SKIP
    >>> frame[["run", "preset", "test_accuracy"]]  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dnnguide.config import NetworkConfig
# Re-exported for code written before dnnguide.plotting existed; new code imports plotting.
from dnnguide.plotting import file_mode, pyplot, save_figure  # noqa: F401


class RunExistsError(FileExistsError):
    """Refusing to overwrite something a user saved."""


class RunLockedError(RunExistsError):
    """Another process is training in this run directory."""


class RunDirError(ValueError):
    """A ``run_dir`` that cannot hold runs (a file, read-only, or inside another run)."""


class CheckpointError(ValueError):
    """No usable checkpoint, or a resume the checkpoint cannot honour."""


class DamagedRunWarning(UserWarning):
    """A run directory whose JSON files cannot be read; it is skipped."""


def atomic_write_bytes(path: Path, content: bytes) -> Path:
    """Write ``content`` to a temporary file beside ``path`` (user's umask) and rename it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def atomic_save_model(model, path: Path) -> None:
    """``model.save`` to a temporary ``.keras`` file, then rename (no half-written model)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def check_run_root(root: str | os.PathLike) -> Path:
    """Refuse a ``run_dir`` root that cannot hold runs, before anything is created.

    A file, a folder that is itself a run (or inside one), or a place this user cannot write
    to raises :class:`RunDirError` naming the path.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise RunDirError(f"Argument `run_dir` must be a folder that holds run directories, but "
                          f"{root} is a file. Received: run_dir={str(root)!r}")
    for folder in (root.absolute(), *root.absolute().parents):
        if (folder / "run.json").is_file() or (folder / "config.json").is_file() and (
                folder / "training_log.csv").exists():
            raise RunDirError(f"Argument `run_dir` is the root under which new runs are created, "
                              f"but {folder} is itself a run directory. Received: "
                              f"run_dir={str(root)!r}. Use its parent, or `--resume {folder}` "
                              "to continue that run.")
    existing = next(p for p in (root.absolute(), *root.absolute().parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise RunDirError(f"Argument `run_dir` must be a folder this user can write to, but "
                          f"{existing} is not writable. Received: run_dir={str(root)!r}")
    return root


def new_run_dir(root: str | os.PathLike, name: str, *, inside_run: bool = False) -> Path:
    """Create ``root/<UTC timestamp>-<name>`` (suffixed ``-2``, ``-3``... if taken).

    ``inside_run=True`` is for artefact folders a run keeps of itself (``<run>/compressed/``):
    everywhere else a ``root`` inside a run directory is refused (:func:`check_run_root`).
    """
    root = Path(root) if inside_run else check_run_root(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # read-only file system, a file on the way, permissions
        raise RunDirError(f"Cannot create the run folder {root}: {exc.strerror or exc}. "
                          f"Received: run_dir={str(root)!r}") from exc
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
        if not file.exists():
            return {}
        try:
            data = json.loads(file.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise RunDirError(f"{file} is damaged (not valid JSON: {exc}).") from exc
        if not isinstance(data, dict):
            raise RunDirError(f"{file} is damaged (a JSON object was expected).")
        return data

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

    @property
    def status(self) -> str:
        """The recorded status, with ``running`` checked: a dead trainer's run reads ``crashed``.

        ``running`` is recorded with the trainer's PID and host; if that process no longer exists
        on this host the run was killed (SIGKILL, power loss) and can be resumed. A run
        recorded on another host is reported as recorded.
        """
        info = self.info
        status = info.get("status", "unknown")
        if status == "running" and info.get("host") == socket.gethostname():
            if not pid_alive(info.get("pid")):
                return "crashed"
        return status

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
        import dnnguide.optimizers  # noqa: F401  (and the scheduled optimizers and schedules)

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


def member_dirs(path: str | os.PathLike) -> list[Path]:
    """The member runs of an ensemble run (``<run>/members/<time>-member_<k>``), by member."""
    found = Path(path).glob("members/*-member_*")
    return sorted(found, key=lambda p: int(p.name.rsplit("_", 1)[1]))


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
        try:
            info, cfg, metrics, status = run.info, run._json("config.json"), run.metrics, run.status
        except RunDirError as exc:  # one damaged run must not hide the others
            warnings.warn(f"Skipping run {run.path.name}: {exc}", DamagedRunWarning, stacklevel=2)
            continue
        rows.append({
            "run": run.path.name,
            "path": str(run.path),
            "status": status,
            "started": info.get("started"),
            "preset": cfg.get("name"),
            "dataset": (info.get("dataset") or {}).get("name"),
            "seed": info.get("seed"),
            "depth": cfg.get("depth"),
            "activation": cfg.get("activation"),
            "normalization": cfg.get("normalization"),
            "optimizer": (cfg.get("optimizer") or {}).get("name"),
            "schedule": (cfg.get("schedule") or {}).get("name"),
            "ensemble": max(cfg.get("ensemble", 1), cfg.get("cross_fit", 1)),
            **metrics,
        })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- liveness and locking
def pid_alive(pid) -> bool:
    """Whether process ``pid`` exists on this host (signal 0 checks without sending anything)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def owner() -> dict[str, Any]:
    """This process, as recorded in ``run.json`` and the lock file."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


@contextlib.contextmanager
def lock_run(path: str | os.PathLike):
    """Hold an exclusive lock on a run directory while a process trains in it.

    A second process is refused with :class:`RunLockedError` naming the first's PID and host.
    The lock is an ``flock`` on ``path/lock``: the kernel releases it when its holder dies,
    even by SIGKILL, so a crashed run never stays locked.
    """
    import fcntl

    file = Path(path) / "lock"
    while True:
        fd = os.open(file, os.O_RDWR | os.O_CREAT, file_mode())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunLockedError(f"Run {path} is in use by {holder}: one process trains in a run "
                                 "at a time. Wait for it to finish or stop it first.") from None
        # The previous holder may have unlinked the file between our open and flock.
        try:
            same = os.stat(file).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        me = owner()
        os.ftruncate(fd, 0)
        os.write(fd, f"PID {me['pid']} on {me['host']}".encode())
        yield file
    finally:
        file.unlink(missing_ok=True)
        os.close(fd)
