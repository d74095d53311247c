"""Exact resume: a killed, interrupted or failed run, resumed, is the run you would have had."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
import warnings

import keras
import numpy as np
import pandas as pd
import pytest

import dnnguide
from dnnguide import checkpoint as ckpt
from dnnguide.runs import CheckpointError, RunExistsError, RunLockedError, load, open_run

# Dropout (random masks), performance scheduling (ReduceLROnPlateau's LR) and early stopping
# that really stops: every piece of state a resume has to carry over.
STATEFUL = dict(depth=2, width=16, epochs=20, seed=3, dropout_rate=0.2, schedule="performance",
                learning_rate=0.05, **{"schedule.patience": 1, "early_stopping.patience": 3})


class Interrupt(keras.callbacks.Callback):
    """Raise KeyboardInterrupt at the end of ``epoch`` (a crash in the middle of a run)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt("simulated crash")


def only_run(root):
    (path,) = [p for p in root.iterdir() if p.is_dir()]
    return path


def assert_same_weights(a, b):
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    keras.utils.set_random_seed(1234)
    return dnnguide.fit("default", "digits", run_dir=tmp_path_factory.mktemp("a"), verbose=0,
                        **STATEFUL)


@pytest.fixture
def every_epoch(monkeypatch):
    monkeypatch.setattr(ckpt, "CHECKPOINT_EVERY_S", 0.0)


def test_resume_reproduces_the_uninterrupted_run(uninterrupted, tmp_path, every_epoch):
    a = uninterrupted
    assert 13 < len(a.history) < STATEFUL["epochs"]  # early stopping ended it, after LR cuts
    assert a.history["learning_rate"].nunique() >= 3
    # Crash at epoch 12, after early stopping began counting (digits: it ignores 10 epochs), so
    # its best value, wait and best weights must all come back.
    assert a.config.early_stopping.start_from_epoch == 10
    with pytest.raises(KeyboardInterrupt):
        dnnguide.fit("default", "digits", run_dir=tmp_path, verbose=0,
                     callbacks=[Interrupt(11)], **STATEFUL)
    run = only_run(tmp_path)
    assert open_run(run).info["status"] == "interrupted"
    keras.utils.set_random_seed(99)  # the process's random state must not matter
    b = dnnguide.fit(resume=run, verbose=0)
    assert_same_weights(a.model, b.model)
    pd.testing.assert_frame_equal(a.history, b.history)
    for key in ("test_loss", "test_accuracy", "epochs_trained", "best_epoch", "weights_epoch"):
        assert b.metrics[key] == a.metrics[key]
    # metrics.json describes the saved model: the best epoch's weights early stopping restored.
    saved = keras.saving.load_model(run / "model.keras")
    assert_same_weights(saved, a.model)
    assert json.loads((run / "metrics.json").read_text())["weights_epoch"] == a.metrics["best_epoch"]


def test_finished_run_continues_for_more_epochs_as_if_trained_at_once(tmp_path):
    common = dict(depth=2, width=16, seed=4, verbose=0, **{"early_stopping.enabled": False})
    once = dnnguide.fit("default", "digits", run_dir=tmp_path / "once", epochs=5, **common)
    first = dnnguide.fit("default", "digits", run_dir=tmp_path / "twice", epochs=3, **common)
    with pytest.raises(RunExistsError, match="already complete"):
        dnnguide.fit(resume=first.run_dir)
    more = dnnguide.fit(resume=first.run_dir, epochs=5, verbose=0)
    assert list(more.history["epoch"]) == [0, 1, 2, 3, 4]
    assert_same_weights(once.model, more.model)
    info = open_run(first.run_dir).info
    assert info["status"] == "complete" and info["epochs"] == 5 and len(info["resumed"]) == 1


def test_resume_refuses_what_it_cannot_honour(tmp_path):
    run = dnnguide.fit("default", "digits", run_dir=tmp_path, epochs=2, verbose=0, seed=2,
                       depth=2, width=8, schedule="onecycle").run_dir
    for wrong in (dict(depth=3), dict(data="mnist1d"), dict(seed=5), dict(batch_size=64),
                  dict(run_dir=tmp_path / "elsewhere"), dict(config_or_model="sparse")):
        with pytest.raises(dnnguide.ConfigError, match="cannot honour"):
            dnnguide.fit(resume=run, epochs=4, **wrong)
    with pytest.raises(CheckpointError, match="1cycle schedule was sized for 2 epochs"):
        dnnguide.fit(resume=run, epochs=4, seed=2)  # its own seed is fine; 1cycle is not
    with pytest.raises(dnnguide.ConfigError, match="epochs"):
        dnnguide.fit(resume=run, epochs=0)
    assert open_run(run).info["status"] == "complete"  # nothing was touched


def test_resume_refuses_a_run_early_stopping_ended(uninterrupted):
    assert len(uninterrupted.history) < STATEFUL["epochs"]
    with pytest.raises(CheckpointError, match="early stopping"):
        dnnguide.fit(resume=uninterrupted.run_dir, epochs=30)


def test_sigint_checkpoints_marks_interrupted_and_exits_130(tmp_path):
    command = [sys.executable, "-m", "dnnguide.cli", "train", "--data", "digits", "--epochs",
               "500", "--depth", "2", "--width", "16", "--verbose", "0", "--run-dir",
               str(tmp_path), "--early-stopping.enabled", "no"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = _wait_for_epochs(tmp_path, 2, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    run = only_run(tmp_path)
    (line,) = [ln for ln in err.splitlines() if "--resume" in ln]
    assert line == (f"dnnguide train: interrupted after {open_run(run).info['epochs_saved']} "
                    f"checkpointed epochs; resume with: dnnguide train --resume {run}")
    info = open_run(run).info
    state = json.loads((run / "checkpoint" / "latest" / "state.json").read_text())
    # The epoch in progress was finished and checkpointed: nothing trained is lost.
    assert info["status"] == "interrupted" and info["epochs_saved"] == state["epoch"]
    assert state["epoch"] == len(pd.read_csv(log)) >= 2
    assert not (run / "lock").exists()
    done = dnnguide.fit(resume=run, epochs=state["epoch"] + 1, verbose=0)
    assert len(done.history) == state["epoch"] + 1 and open_run(run).complete


def _wait_for_epochs(root, n, proc, timeout=180):
    """Poll the run's per-epoch log until it has ``n`` rows; return its path."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        for log in root.glob("*/training_log.csv"):
            if log.stat().st_size and len(pd.read_csv(log)) >= n:
                return log
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("training did not reach the epoch in time")


@pytest.mark.slow
def test_sigkill_at_a_random_epoch_then_resume_reproduces_the_run(tmp_path):
    """Fault injection: kill -9 during training, resume in a new process, compare bitwise."""
    flags = ["--data", "digits", "--epochs", "12", "--depth", "2", "--width", "16", "--seed",
             "3", "--verbose", "0", "--dropout-rate", "0.2", "--schedule", "performance",
             "--schedule.patience", "1", "--learning-rate", "0.05"]
    train = [sys.executable, "-m", "dnnguide.cli", "train", *flags]
    whole = subprocess.run([*train, "--run-dir", str(tmp_path / "whole")], capture_output=True,
                           text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    reference = only_run(tmp_path / "whole")
    kill_at = random.Random().randint(1, len(pd.read_csv(reference / "history.csv")) - 1)
    proc = subprocess.Popen([*train, "--run-dir", str(tmp_path / "killed")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_epochs(tmp_path / "killed", kill_at, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    run = only_run(tmp_path / "killed")
    assert load(tmp_path / "killed")["status"].tolist() == ["crashed"]  # not "running"
    resumed = subprocess.run([sys.executable, "-m", "dnnguide.cli", "train", "--resume",
                              str(run), "--verbose", "0"], capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, (kill_at, resumed.stderr)
    assert_same_weights(keras.saving.load_model(reference / "model.keras"),
                        keras.saving.load_model(run / "model.keras"))
    a, b = (json.loads((p / "metrics.json").read_text()) for p in (reference, run))
    a.pop("train_time_s"), b.pop("train_time_s")
    assert a == b, kill_at
    pd.testing.assert_frame_equal(pd.read_csv(reference / "history.csv"),
                                  pd.read_csv(run / "history.csv"))


def test_failure_after_the_run_directory_exists_marks_it_failed(tmp_path):
    class Broken(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise RuntimeError("user callback broke")

    with pytest.raises(RuntimeError, match="user callback broke"):
        dnnguide.fit("default", "digits", run_dir=tmp_path, epochs=3, verbose=0, depth=2,
                     width=8, callbacks=[Broken()])
    info = open_run(only_run(tmp_path)).info
    assert info["status"] == "failed" and info["error"] == "RuntimeError: user callback broke"
    assert load(tmp_path)["status"].tolist() == ["failed"]


def test_a_diverged_run_is_recorded_as_diverged_and_not_resumable(tmp_path):
    with pytest.warns(RuntimeWarning, match="diverged"):
        result = dnnguide.fit("default", "digits", run_dir=tmp_path, epochs=5, verbose=0,
                              depth=2, width=8, optimizer="sgd", learning_rate=1e6,
                              standardize_inputs=False)
    info = open_run(result.run_dir).info
    assert info["status"] == "diverged" and "non-finite" in info["error"]
    with pytest.raises(CheckpointError, match="diverged"):
        dnnguide.fit(resume=result.run_dir, epochs=10)


HOLD_LOCK = """
import fcntl, os, socket, sys, time
fd = os.open(os.path.join(sys.argv[1], "lock"), os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, f"PID {os.getpid()} on {socket.gethostname()}".encode())
print("locked", flush=True)
time.sleep(60)
"""


def test_checkpoints_and_locks_survive_failures(tmp_path, every_epoch, monkeypatch):
    with pytest.raises(KeyboardInterrupt):
        dnnguide.fit("default", "digits", run_dir=tmp_path, epochs=5, verbose=0, depth=2,
                     width=8, callbacks=[Interrupt(3)])
    run = only_run(tmp_path)
    folder = run / "checkpoint"
    assert json.loads((folder / "previous" / "state.json").read_text())["epoch"] == 2
    # Disk full while writing a checkpoint: the latest and previous good ones stay.
    model = dnnguide.build_model("default", (64,), 10, depth=2, width=8)
    model.optimizer.build(model.trainable_variables)
    with monkeypatch.context() as patch:
        patch.setattr(np, "savez", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space")))
        with pytest.raises(OSError, match="No space"):
            ckpt.write_checkpoint(folder, model, {"epoch": 99}, {})
    assert sorted(p.name for p in folder.iterdir()) == ["latest", "previous"]
    assert ckpt.read_state(folder)[1]["epoch"] == 3
    # Another process trains in the run (holds its lock): refused, naming it, nothing touched.
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"in use by PID {holder.pid} on "):
            dnnguide.fit(resume=run, verbose=0)
        assert open_run(run).info["status"] == "interrupted"
    finally:
        holder.kill()
        holder.wait()
    # A truncated latest checkpoint (killed mid-write): resume from the previous one.
    weights = folder / "latest" / "state.weights.h5"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.warns(RuntimeWarning, match="damaged"):
        result = dnnguide.fit(resume=run, verbose=0)  # the dead holder's lock is free again
    log = pd.read_csv(run / "training_log.csv")
    assert list(log["epoch"]) == [0, 1, 2, 3, 2, 3, 4]  # from the previous one: 2 and 3 again
    assert list(result.history["epoch"]) == [0, 1, 2, 3, 4]
    assert open_run(run).complete and not (run / "lock").exists()


def test_long_epochs_are_checkpointed_at_every_end(tmp_path, monkeypatch):
    # The old throttle (one checkpoint per 30 s) made a crash after 16 short epochs restart at
    # epoch 2. Now an epoch longer than the wait (here 0.2 s) is always checkpointed.
    monkeypatch.setattr(ckpt, "CHECKPOINT_EVERY_S", 0.2)

    class Slow(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            time.sleep(0.25)

    with pytest.raises(KeyboardInterrupt):
        dnnguide.fit("default", "digits", run_dir=tmp_path, epochs=6, verbose=0, depth=2,
                     width=8, callbacks=[Slow(), Interrupt(4)])
    state = json.loads((only_run(tmp_path) / "checkpoint" / "latest" / "state.json").read_text())
    assert state["epoch"] == 4  # epochs 0-3 all saved; 4 was in progress


def test_checkpoint_spacing_follows_its_write_cost():
    callback = ckpt.RunCheckpoint("unused", [], epochs=100, every_s=30.0)
    callback.set_model(keras.Sequential())
    callback.model.stop_training = False
    assert callback._due(0)  # the first epoch is always checkpointed
    callback.last_epoch, callback._save_cost = 0, 0.025
    callback._last_save = time.monotonic() - 0.6
    assert callback._due(5)  # 20 x 0.025 s passed: cheap checkpoints are taken often
    callback._last_save = time.monotonic() - 0.3
    assert not callback._due(5)
    assert callback._due(99)  # the last epoch is always checkpointed
    callback._save_cost = 10.0
    callback._last_save = time.monotonic() - 29.0
    assert not callback._due(5)  # ... but never waits more than 30 s
    callback._last_save = time.monotonic() - 31.0
    assert callback._due(5)


def test_keras_callback_state_attributes_are_still_the_ones_we_save():
    """Canary: Keras' on_train_begin resets exactly the attributes the checkpoint carries."""
    for cls, names in ckpt.CALLBACK_STATE.items():
        callback = cls()
        callback.set_model(keras.Sequential())
        for name in names:
            setattr(callback, name, "sentinel")
        callback.on_train_begin()
        reset = [n for n in names if getattr(callback, n) != "sentinel"]
        assert reset == list(names), cls.__name__
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            public = {k for k in vars(callback) if not k.startswith("_")}
        assert set(names) <= public
