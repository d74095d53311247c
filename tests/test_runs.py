"""Run directories: file modes, damaged files, run-dir checks, liveness, locking, loading models."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import dnnguide
from dnnguide.runs import (
    DamagedRunWarning, RunDirError, RunLockedError, atomic_write_json, atomic_write_text,
    check_run_root, load, lock_run, new_run_dir, pyplot, save_figure,
)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_files_are_written_with_the_users_umask(tmp_path, umask_022):
    atomic_write_text(tmp_path / "a.txt", "x")
    fig = pyplot().figure()
    save_figure(fig, tmp_path / "plot.png")
    for name in ("a.txt", "plot.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name  # mkstemp gave 0600
    os.umask(0o077)
    atomic_write_text(tmp_path / "private.txt", "x")
    assert (tmp_path / "private.txt").stat().st_mode & 0o777 == 0o600


def fake_run(root, name, status="complete", **info):
    path = root / name
    path.mkdir(parents=True)
    atomic_write_json(path / "config.json", dnnguide.NetworkConfig(name=name).to_dict())
    atomic_write_json(path / "run.json", {"status": status, "seed": 0, **info})
    atomic_write_json(path / "metrics.json", {"test_accuracy": 0.5})
    return path


@pytest.mark.parametrize("damaged", ["run.json", "metrics.json", "config.json"])
def test_a_damaged_run_is_skipped_with_a_warning_naming_the_file(tmp_path, damaged, capsys):
    fake_run(tmp_path, "good")
    bad = fake_run(tmp_path, "bad")
    (bad / damaged).write_text('{"status": "comp')  # truncated mid-write
    with pytest.warns(DamagedRunWarning, match=f"bad/{damaged} is damaged"):
        frame = load(tmp_path)
    assert frame["run"].tolist() == ["good"]
    from dnnguide.cli import main

    assert main(["runs", "--root", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "good" in out and "bad" not in out
    assert f"warning: Skipping run bad: {bad / damaged} is damaged" in err


def test_running_is_shown_only_for_a_live_trainer(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    fake_run(tmp_path, "a-live", "running", pid=os.getpid(), host=host)
    fake_run(tmp_path, "b-dead", "running", pid=dead.pid, host=host)
    fake_run(tmp_path, "c-elsewhere", "running", pid=dead.pid, host=host + "-other")
    fake_run(tmp_path, "d-interrupted", "interrupted", pid=dead.pid, host=host)
    assert load(tmp_path)["status"].tolist() == ["running", "crashed", "running", "interrupted"]


def test_a_run_records_its_trainer(tmp_path):
    run = dnnguide.fit("default", "digits", run_dir=tmp_path, epochs=1, verbose=0, depth=1,
                       width=8).run_dir
    info = json.loads((run / "run.json").read_text())
    assert (info["pid"], info["host"]) == (os.getpid(), socket.gethostname())


def test_lock_refuses_a_second_holder_naming_the_first(tmp_path):
    with lock_run(tmp_path):
        assert (tmp_path / "lock").read_text() == f"PID {os.getpid()} on {socket.gethostname()}"
        with pytest.raises(RunLockedError, match=f"in use by PID {os.getpid()} on"):
            with lock_run(tmp_path):
                pass
    assert not (tmp_path / "lock").exists()
    with lock_run(tmp_path):  # free again
        pass


def test_run_dir_that_is_a_file_or_inside_a_run_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        check_run_root(tmp_path / "file")
    run = fake_run(tmp_path, "a-run")
    for inside in (run, run / "plots" / "more"):
        with pytest.raises(RunDirError, match="is itself a run directory"):
            check_run_root(inside)
    assert check_run_root(tmp_path / "new" / "root") == tmp_path / "new" / "root"
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_read_only_run_dir_is_refused_before_anything_is_created(tmp_path, monkeypatch):
    # Tests may run as root, for whom permission bits do not apply: fake what the OS answers.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(RunDirError, match="not writable"):
        check_run_root(tmp_path / "runs")
    monkeypatch.undo()

    def read_only_fs(self, *args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(type(tmp_path), "mkdir", read_only_fs)
    with pytest.raises(RunDirError, match="Read-only file system"):
        new_run_dir(tmp_path / "runs", "x")


LOAD = textwrap.dedent("""
    import sys, numpy as np, keras
    try:
        keras.saving.load_model(sys.argv[1])
    except Exception as exc:
        assert "dnnguide" not in sys.modules
        print("without import dnnguide:", type(exc).__name__, str(exc).replace("\\n", " "))
    import dnnguide
    model = keras.saving.load_model(sys.argv[1])
    print("with import dnnguide:", type(model.optimizer).__name__,
          model.predict(np.ones((4, 8), "float32"), verbose=0).shape)
""")


def test_saved_mc_dropout_and_scheduled_optimizer_models_load_after_import_dnnguide(tmp_path):
    x = np.random.default_rng(0).normal(size=(60, 8)).astype("float32")
    y = np.arange(60) % 3
    # risk_sensitive: MC dropout layers; onecycle: a scheduled optimizer and LR schedule.
    result = dnnguide.fit("risk_sensitive", (x, y), run_dir=tmp_path, epochs=1, verbose=0,
                          depth=1, width=8, schedule="onecycle", optimizer="nadam")
    done = subprocess.run([sys.executable, "-c", LOAD, str(result.run_dir / "model.keras")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    failed, loaded = done.stdout.splitlines()[-2:]
    assert failed.startswith("without import dnnguide: TypeError")
    assert "'dnnguide>" in failed  # the error names the package to import
    assert loaded == "with import dnnguide: ScheduledNadam (4, 3)"


@pytest.mark.parametrize("chosen", [None, "svg"])
def test_plotting_keeps_a_backend_the_user_chose(chosen):
    """Agg on a fresh process; a backend already in use (Jupyter's inline) is left alone."""
    import os
    import subprocess
    import sys

    code = ("import matplotlib\n"
            + (f"matplotlib.use({chosen!r}); import matplotlib.pyplot\n" if chosen else "")
            + "from dnnguide.plotting import pyplot\npyplot()\nprint(matplotlib.get_backend())")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.split()[-1]
    assert out.lower() == (chosen or "agg")
