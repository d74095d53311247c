"""Exact, atomic checkpoints of a run: a resumed run ends where an uninterrupted one would.

A checkpoint is taken at an epoch end and holds everything the next epoch depends on:

- the weights and the optimizer's state (its step counter, moments and current learning rate,
  so a schedule or a ``ReduceLROnPlateau`` reduction continues where it was);
- the dropout layers' random-generator state (Keras keeps it out of ``save_weights``);
- the state of the stateful callbacks: ``EarlyStopping`` (best value, wait counter, best
  epoch and best weights) and ``ReduceLROnPlateau`` (best value, wait and cooldown counters),
  and any callback with ``get_state()``/``set_state(state)`` methods.

The training order of epoch ``k`` is a pure function of ``(seed, k)`` (:func:`epoch_batches`),
so it does not depend on whether the process restarted. Checkpoints are written to a fresh
folder and renamed into place; the previous good one is kept beside the latest, so a failure
while writing (disk full, SIGKILL) leaves a checkpoint to resume from.

What a resume can lose: the epoch in progress, and the finished epochs since the last
checkpoint. One is taken after the first epoch, after the last one, and otherwise whenever
``min(CHECKPOINT_EVERY_S, SAVE_COST_RATIO x the last checkpoint's write time)`` has passed, so
writing them costs at most about 5% of the training time and an interruption loses at most
30 s of finished epochs (an epoch longer than that is checkpointed at its end). Ctrl-C
(SIGINT) finishes the epoch in progress and checkpoints it; a second Ctrl-C stops at once.

Example:
    >>> result = dnnguide.fit("default", "digits", epochs=20)  # doctest: +SKIP
    >>> # killed at epoch 12; later, in a new process:
    >>> result = dnnguide.fit(resume=result.run_dir)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dnnguide.runs import CheckpointError  # noqa: F401  (raised by the resume checks)

#: Longest stretch of finished epochs an interruption can lose (see the module docstring).
CHECKPOINT_EVERY_S = 30.0
#: Checkpoints are spaced at least this many times their own write time apart (<~5% overhead).
SAVE_COST_RATIO = 20.0

#: Attributes that make up the state of Keras's stateful callbacks (Keras 3.15; a canary test
#: checks that ``on_train_begin`` still resets exactly these).
CALLBACK_STATE = {
    keras.callbacks.EarlyStopping: ("wait", "stopped_epoch", "best", "best_epoch"),
    keras.callbacks.ReduceLROnPlateau: ("wait", "cooldown_counter", "best"),
}


# --------------------------------------------------------------------------- data order
def epoch_batches(x, y, batch_size: int, seed: int, initial_epoch: int, epochs: int):
    """Batches of epochs ``initial_epoch .. epochs-1``, each shuffled by a pure function of its epoch.

    Keras shuffles arrays with the global random state, so epoch ``k`` of a resumed process
    would see the order of epoch 0. Here epoch ``k``'s order is ``stateless_shuffle`` keyed by
    ``(seed, k)``. Returns ``(dataset, steps_per_epoch)`` for ``model.fit(..., steps_per_epoch=)``.
    """
    import tensorflow as tf

    n = len(x)
    x_all, y_all = tf.constant(x), tf.constant(y)

    def one_epoch(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    batches = (tf.data.Dataset.range(initial_epoch, epochs).flat_map(one_epoch)
               .map(lambda idx: (tf.gather(x_all, idx), tf.gather(y_all, idx)),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               .prefetch(tf.data.AUTOTUNE))
    return batches, math.ceil(n / batch_size)


# --------------------------------------------------------------------------- state capture
def _stateful(callbacks) -> dict[str, keras.callbacks.Callback]:
    """Stateful callbacks by a stable key: class name and rank among callbacks of that class."""
    keyed, seen = {}, {}
    for callback in callbacks:
        known = any(isinstance(callback, cls) for cls in CALLBACK_STATE)
        if known or (hasattr(callback, "get_state") and hasattr(callback, "set_state")):
            name = type(callback).__name__
            seen[name] = seen.get(name, 0) + 1
            keyed[f"{name}_{seen[name]}"] = callback
    return keyed


def _attrs(callback) -> tuple[str, ...]:
    return next((names for cls, names in CALLBACK_STATE.items() if isinstance(callback, cls)), ())


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "numpy"):  # a Keras/TF scalar
        return np.asarray(value).item()
    return value


def _seed_variables(model) -> list:
    # Dropout masks come from SeedGenerator states, which save_weights leaves out.
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def capture_state(model, callbacks, epoch: int) -> tuple[dict, dict[str, np.ndarray]]:
    """The JSON state and the extra arrays of a checkpoint taken after ``epoch`` (0-based)."""
    state: dict[str, Any] = {"epoch": epoch + 1, "callbacks": {}, "time": time.time()}
    arrays: dict[str, np.ndarray] = {}
    for key, callback in _stateful(callbacks).items():
        if hasattr(callback, "get_state"):
            state["callbacks"][key] = callback.get_state()
            continue
        state["callbacks"][key] = {name: _plain(getattr(callback, name, None))
                                   for name in _attrs(callback)}
        best = getattr(callback, "best_weights", None)
        if best is not None:
            state["callbacks"][key]["best_weights"] = len(best)
            arrays.update({f"{key}/{i}": np.asarray(w) for i, w in enumerate(best)})
    for i, variable in enumerate(_seed_variables(model)):
        arrays[f"seed/{i}"] = np.asarray(variable.numpy())
    return state, arrays


def restore_callbacks(callbacks, state: dict, arrays: dict[str, np.ndarray]) -> None:
    """Put the saved state back into the callbacks (after their ``on_train_begin`` reset it)."""
    for key, callback in _stateful(callbacks).items():
        saved = state.get("callbacks", {}).get(key)
        if saved is None:
            continue
        if hasattr(callback, "set_state"):
            callback.set_state(saved)
            continue
        saved = dict(saved)
        n_best = saved.pop("best_weights", None)
        for name, value in saved.items():
            setattr(callback, name, value)
        if n_best is not None:
            callback.best_weights = [arrays[f"{key}/{i}"] for i in range(n_best)]


# --------------------------------------------------------------------------- files
def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(folder: Path, model, state: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``folder/latest`` atomically, keeping the former latest as ``folder/previous``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".incoming-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        model.save_weights(tmp / "state.weights.h5")
        np.savez(tmp / "arrays.npz", **arrays)
        (tmp / "state.json").write_text(json.dumps(state, default=_plain) + "\n")
        for name in ("state.weights.h5", "arrays.npz", "state.json"):
            _fsync(tmp / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    latest, previous = folder / "latest", folder / "previous"
    if latest.exists():
        shutil.rmtree(previous, ignore_errors=True)
        os.replace(latest, previous)
    os.replace(tmp, latest)
    return latest


def read_state(folder: Path) -> tuple[Path, dict] | None:
    """The newest checkpoint whose files are all there and readable: ``(path, state)``."""
    for name in ("latest", "previous"):
        path = Path(folder) / name
        try:
            state = json.loads((path / "state.json").read_text())
            import h5py

            with h5py.File(path / "state.weights.h5", "r"):
                pass
            with np.load(path / "arrays.npz"):
                pass
        except FileNotFoundError:
            continue
        except Exception as exc:  # truncated or corrupt: fall back to the previous one
            warnings.warn(f"Checkpoint {path} is damaged ({exc}); using the previous one.",
                          RuntimeWarning, stacklevel=2)
            continue
        return path, state
    return None


def load_checkpoint(path: Path, model) -> dict[str, np.ndarray]:
    """Load weights, optimizer and random-generator state from ``path`` into ``model``."""
    optimizer = model.optimizer
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    model.load_weights(path / "state.weights.h5")
    with np.load(path / "arrays.npz") as f:
        arrays = {k: f[k] for k in f.files}
    for i, variable in enumerate(_seed_variables(model)):
        if f"seed/{i}" in arrays:
            variable.assign(arrays[f"seed/{i}"])
    return arrays


# --------------------------------------------------------------------------- callback
class RunCheckpoint(keras.callbacks.Callback):
    """Checkpoint at epoch ends (see the module docstring for when), restore at train begin.

    Put it last in the callback list: its ``on_train_begin`` then runs after the stateful
    callbacks reset themselves, and its ``on_epoch_end`` sees their updated state and
    whether one of them stopped training.
    """

    def __init__(self, folder, callbacks, *, epochs: int, restore: tuple[dict, dict] | None = None,
                 every_s: float | None = None):
        super().__init__()
        self.folder = Path(folder)
        self.watched = list(callbacks)
        self.epochs = epochs
        self.restore = restore
        self.every_s = CHECKPOINT_EVERY_S if every_s is None else float(every_s)
        self.last_epoch: int | None = None  # the last checkpointed epoch (0-based)
        self.stop_requested = False
        self._last_save = time.monotonic()
        self._save_cost = 0.0

    def on_train_begin(self, logs=None):
        self._last_save = time.monotonic()
        if self.restore is not None:
            restore_callbacks(self.watched, *self.restore)

    def _due(self, epoch: int) -> bool:
        if self.last_epoch is None or epoch + 1 >= self.epochs or self.model.stop_training:
            return True
        wait = min(self.every_s, SAVE_COST_RATIO * self._save_cost)
        return time.monotonic() - self._last_save >= wait

    def on_epoch_end(self, epoch, logs=None):
        if self.stop_requested:
            self.model.stop_training = True
        if self._due(epoch) or self.stop_requested:
            start = time.monotonic()
            state, arrays = capture_state(self.model, self.watched, epoch)
            # Ended by early stopping or the NaN guard (not by Ctrl-C): a resume only finishes.
            state["stopped"] = bool(self.model.stop_training and not self.stop_requested)
            write_checkpoint(self.folder, self.model, state, arrays)
            self._last_save = time.monotonic()
            self._save_cost = self._last_save - start
            self.last_epoch = epoch


class GracefulInterrupt:
    """First Ctrl-C: finish the epoch, checkpoint it and stop; a second one stops at once.

    Installed only in the main thread (where Python delivers signals), and only while a run
    directory records the training.
    """

    def __init__(self, checkpoint: RunCheckpoint):
        self.checkpoint = checkpoint
        self.previous = None

    def _handle(self, signum, frame):
        if self.checkpoint.stop_requested:
            raise KeyboardInterrupt
        self.checkpoint.stop_requested = True
        print("dnnguide: Ctrl-C: finishing this epoch to checkpoint it (Ctrl-C again to stop "
              "now, losing it)", file=sys.stderr, flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False
