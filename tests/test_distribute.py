"""Tests of dnnguide.distribute: the strategy picker and distributed runs on loopback.

The multi-process tests start real processes (TensorFlow in each) and are marked slow.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dnnguide import distribute
from dnnguide.config import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KERASTUNER_", "TF_CONFIG"))}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO), **extra)
    return env


def _python(code: str, *args: str, timeout: int = 300) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=_env(),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


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
    with pytest.raises(ConfigError, match="tuner id"):
        distribute.oracle_env("worker", tuner_id="chief-2")
    chief = distribute.oracle_env("chief", port=9000)
    assert chief == {"KERASTUNER_TUNER_ID": "chief", "KERASTUNER_ORACLE_IP": "127.0.0.1",
                     "KERASTUNER_ORACLE_PORT": "9000"}


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


def test_multi_worker_loop_matches_fit_and_drives_callbacks(tmp_path):
    # Without TF_CONFIG, MultiWorkerMirroredStrategy is a one-worker cluster. A fresh process,
    # because collective ops must be configured before TensorFlow does anything else.
    out = _python("""
        import json, sys
        import tensorflow as tf
        strat = tf.distribute.MultiWorkerMirroredStrategy()
        import keras, numpy as np
        from dnnguide import distribute
        from dnnguide.data import load_dataset
        from dnnguide.presets import build_model, resolve_config
        data = load_dataset("digits", seed=0)
        config = resolve_config("default", depth=2, width=16, optimizer="adam", l2=1e-3)
        keras.utils.set_random_seed(0)
        with strat.scope():
            model = build_model(config, data.input_shape, data.n_outputs, data.task)
        plain = build_model(config, data.input_shape, data.n_outputs, data.task)
        plain.set_weights(model.get_weights())
        x, y = data.x_train[:64], data.y_train[:64]
        report = {"is_mw": distribute.is_multi_worker(model),
                  "plain_is_mw": distribute.is_multi_worker(plain)}
        # One step on one full batch: the same update as Keras' fit (L2 losses included).
        distribute.fit_multi_worker(model, x, y, epochs=1, batch_size=64, verbose=0)
        plain.fit(x, y, epochs=1, batch_size=64, shuffle=False, verbose=0)
        report["max_diff"] = max(float(np.abs(a - b).max())
                                 for a, b in zip(model.get_weights(), plain.get_weights()))
        test_mw = distribute.evaluate_multi_worker(model, data.x_test, data.y_test, batch_size=50)
        test_plain = plain.evaluate(data.x_test, data.y_test, verbose=0, return_dict=True)
        report["eval"] = [test_mw, test_plain]
        # Training to a lower loss, with callbacks driven as fit drives them.
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=10.0, patience=1)
        log = keras.callbacks.CSVLogger(sys.argv[1])
        history = distribute.fit_multi_worker(
            model, data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
            epochs=5, batch_size=32, callbacks=[stop, log], verbose=0)
        report["history"] = history.history
        print(json.dumps(report))
    """, str(tmp_path / "log.csv"))
    report = json.loads(out.splitlines()[-1])
    assert report["is_mw"] and not report["plain_is_mw"]
    assert report["max_diff"] < 1e-5
    test_mw, test_plain = report["eval"]
    assert test_mw["loss"] == pytest.approx(test_plain["loss"], rel=1e-4)
    assert test_mw["accuracy"] == pytest.approx(test_plain["accuracy"], abs=1e-6)
    history = report["history"]
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history["loss"]) == 2  # early stopping: no epoch improves val_loss by 10
    assert history["loss"][1] < history["loss"][0] and history["val_accuracy"][1] > 0.3
    logged = pd.read_csv(tmp_path / "log.csv")
    assert list(logged["epoch"]) == [0, 1]
    assert logged["val_loss"].tolist() == pytest.approx(history["val_loss"])


@pytest.mark.slow
def test_train_under_tf_config_two_workers_end_with_the_same_weights(tmp_path):
    # Keras' own fit fails here (keras#20585); fit() switches to distribute.fit_multi_worker.
    ports = [distribute.free_port(), distribute.free_port()]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                     "task": {"type": "worker", "index": index}}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "dnnguide.cli", "train", "--strategy", "multi_worker",
             "--data", "digits", "--epochs", "3", "--depth", "2", "--width", "16",
             "--run-dir", str(tmp_path / "runs"), "--verbose", "0"],
            env=_env(TF_CONFIG=json.dumps(tf_config)), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    try:
        outputs = [p.communicate(timeout=300) for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-2000:]
    digests = [line for out, _ in outputs for line in out.splitlines() if "weights sha256" in line]
    assert len(digests) == 2 and digests[0] == digests[1]  # bitwise the same weights
    (run,) = (tmp_path / "runs").iterdir()  # only the chief keeps a run
    history = pd.read_csv(run / "history.csv")
    assert len(history) == 3 and history["loss"].is_monotonic_decreasing
    assert history["val_loss"].iloc[-1] < history["val_loss"].iloc[0]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.5  # chance is 0.1


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
