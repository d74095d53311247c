"""Tests of dnnguide.distribute: the strategy picker and distributed runs on loopback.

The multi-process tests start real processes (TensorFlow in each) and are marked slow.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dnnguide import distribute
from dnnguide.config import ConfigError

from subprocesses import child_env as _env, run_python as _python  # noqa: E402


def _tiny_csv(path: Path, rows: int = 200) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 6))
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(6)])
    frame["label"] = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 0.5)
    frame.to_csv(path, index=False)
    return path


def test_auto_is_the_default_strategy_on_this_cpu_machine():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU") or os.environ.get("TF_CONFIG"):
        pytest.skip("this machine has GPUs or a TF_CONFIG cluster")
    strat = distribute.strategy("auto")
    assert strat is tf.distribute.get_strategy()
    assert distribute.detect() == "default"
    assert distribute.scale_batch_size(32, strat) == 32
    assert distribute.is_chief(strat)


def test_bad_requests_fail_with_the_valid_choices(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match=r"one of \['auto', .*Received: strategy='mirror'"):
        distribute.strategy("mirror")
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        distribute.strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1"]}')
    with pytest.raises(ConfigError, match="not valid JSON"):
        distribute.detect()
    with pytest.raises(ConfigError, match="GPU .* or a TPU"):
        distribute.enable_mixed_precision(device="cpu")


def test_multi_worker_is_picked_from_tf_config(monkeypatch):
    cluster = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
               "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    assert distribute.detect() == "multi_worker"
    monkeypatch.setenv("TF_CONFIG", json.dumps({**cluster, "cluster": {"worker": ["a:1"]}}))
    assert distribute.detect() != "multi_worker"  # a one-task cluster is no cluster


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_trains_with_mirrored_variables(tmp_path):
    # Logical devices must be configured before TensorFlow initializes: a fresh process.
    out = _python("""
        import sys
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        two = [tf.config.LogicalDeviceConfiguration()] * 2
        tf.config.set_logical_device_configuration(cpu, two)
        import numpy as np
        import dnnguide
        from dnnguide import distribute
        strat = distribute.strategy("auto", devices=tf.config.list_logical_devices("CPU"))
        rng = np.random.default_rng(0)
        centers = rng.normal(0, 3, size=(3, 8)); y = rng.integers(0, 3, 300)
        x = (centers[y] + rng.normal(size=(300, 8))).astype("float32")
        result = dnnguide.fit("default", (x, y), run_dir=None, strategy=strat, depth=1, width=16,
                              epochs=5, learning_rate=1e-2, verbose=0)
        kernel = result.model.get_layer("hidden_1").kernel.value
        print(type(strat).__name__, strat.num_replicas_in_sync,
              distribute.scale_batch_size(16, strat), type(kernel).__name__,
              result.metrics["test_accuracy"])
        # The tuner gets the strategy too: 1cycle's steps count global (2 x 16) batches.
        from dnnguide.tuning import SearchSpace, tune
        space = SearchSpace.default().narrow(preset="default", depth=1, width=16, batch_size=16,
                                             schedule="onecycle", learning_rate=1e-2)
        tuned = tune((x, y), space=space, algorithm="random", max_trials=1, epochs=2,
                     directory=sys.argv[1], strategy=strat, verbose=0)
        kernel = tuned.best_model.get_layer("hidden_1").kernel.value
        print(tuned.best_config.schedule.total_steps, type(kernel).__name__)
    """, str(tmp_path))
    lines = out.splitlines()
    name, replicas, batch, variable, accuracy = lines[-2].split()
    assert (name, replicas, batch, variable) == ("MirroredStrategy", "2", "32", "MirroredVariable")
    assert float(accuracy) > 0.8
    steps, variable = lines[-1].split()
    assert int(steps) == 2 * math.ceil(216 / 32) and variable == "MirroredVariable"  # 20% test, 10% val


@pytest.mark.slow
def test_distributed_tuning_one_chief_two_workers_on_loopback(tmp_path):
    csv = _tiny_csv(tmp_path / "tiny.csv")
    port = distribute.free_port()
    common = [sys.executable, "-m", "dnnguide.cli", "tune", "--data", str(csv), "--target",
              "label", "--algorithm", "random", "--max-epochs", "2", "--max-trials", "4",
              "--directory", str(tmp_path / "tuning"), "--presets", "default", "--depth", "1,2,3",
              "--width", "8,16", "--verbose", "0", "--oracle-port", str(port)]
    chief = subprocess.Popen(common + ["--role", "chief"], env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    workers = [subprocess.Popen(common + ["--role", "worker", "--tuner-id", f"worker{i}"],
                                env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for i in range(2)]
    try:
        outputs = [w.communicate(timeout=300) for w in workers]
        chief_out, chief_err = chief.communicate(timeout=120)
    finally:
        for proc in [chief, *workers]:
            if proc.poll() is None:
                proc.kill()
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
        assert "finished" in out
    assert chief.returncode == 0, chief_err[-3000:]
    from dnnguide.tuning import trials_frame

    frame = trials_frame(tmp_path / "tuning" / "search")
    assert sorted(frame["trial_id"]) == ["0", "1", "2", "3"]  # each trial once
    assert (frame["status"] == "COMPLETED").all()
    assert set(frame["worker_pid"]) <= {w.pid for w in workers}  # run by the workers only
    assert chief_out.count("COMPLETED") == 4  # the chief printed the table of all trials


@pytest.mark.slow
def test_tune_with_worker_processes_keeps_trials_out_of_this_process(blobs, tmp_path):
    from dnnguide.tuning import SearchSpace, tune

    space = SearchSpace.default().narrow(preset="default", depth=[1, 2], width=16,
                                         learning_rate=1e-2, optimizer="adamw", batch_size=32)
    result = tune(blobs, space=space, algorithm="grid", max_trials=2, epochs=2,
                  directory=tmp_path, workers=1, verbose=0)
    frame = result.trials
    assert sorted(frame["trial_id"]) == ["0", "1"] and (frame["status"] == "COMPLETED").all()
    (pid,) = set(frame["worker_pid"])
    assert pid != os.getpid()  # trained in the worker process (arrays passed through data.npz)
    best = frame.loc[frame["score"].idxmax()]
    from dnnguide.data import from_arrays  # the best model comes from the worker's checkpoint

    val = from_arrays(*blobs, seed=0)
    acc = result.best_model.evaluate(val.x_val, val.y_val, verbose=0, return_dict=True)["accuracy"]
    assert acc == pytest.approx(best["score"], abs=1e-6)
