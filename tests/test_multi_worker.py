"""Tests of dnnguide.multi_worker: the custom loop that stands in for Keras's fit (keras#20585).

The canary at the end runs Keras's own ``fit`` on a two-worker cluster and passes only while
Keras still fails there: the day it fails, Keras is fixed and the workaround can go.
"""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest

from dnnguide import distribute
from dnnguide.multi_worker import _per_example_loss

from subprocesses import child_env as _env, run_python as _python  # noqa: E402


@pytest.mark.parametrize("name, cls", [("mse", "MeanSquaredError"), ("mae", "MeanAbsoluteError"),
                                       ("binary_crossentropy", "BinaryCrossentropy"),
                                       ("sparse_categorical_crossentropy",
                                        "SparseCategoricalCrossentropy")])
def test_per_example_loss_of_a_loss_name_or_function(name, cls):
    # "mse" resolves to a function; the old main raised TypeError for multi-worker regression.
    loss = _per_example_loss(name)
    assert type(loss).__name__ == cls and loss.reduction is None
    assert type(_per_example_loss(keras.losses.get(name))).__name__ == cls


def test_per_example_loss_keeps_one_value_per_example():
    loss = _per_example_loss("mse")
    y_true = np.array([[1.0], [2.0], [0.0]], "float32")
    y_pred = np.zeros((3, 1), "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss(y_true, y_pred)), [1.0, 4.0, 0.0])
    with pytest.raises(TypeError, match="Received: loss="):
        _per_example_loss(lambda y, p: y - p)


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
        # Regression: the compiled "mse" is a function, which the loop once refused (TypeError).
        reg = resolve_config("default", depth=1, width=8, optimizer="adam")
        with strat.scope():
            regressor = build_model(reg, data.input_shape, 1, "regression")
        target = data.x_train[:256, :1] * 2.0 + 1.0
        reg_history = distribute.fit_multi_worker(regressor, data.x_train[:256], target,
                                                  epochs=3, batch_size=32, verbose=0)
        report["regression_loss"] = reg_history.history["loss"]
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
    assert report["regression_loss"][-1] < report["regression_loss"][0]
    logged = pd.read_csv(tmp_path / "log.csv")
    assert list(logged["epoch"]) == [0, 1]
    assert logged["val_loss"].tolist() == pytest.approx(history["val_loss"])


def _two_workers(args: list[str], **env) -> list[tuple[int, str, str]]:
    """Run ``python <args>`` as the two workers of a loopback cluster: (returncode, out, err)."""
    ports = [distribute.free_port(), distribute.free_port()]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                     "task": {"type": "worker", "index": index}}
        procs.append(subprocess.Popen(
            [sys.executable, *args], env=_env(TF_CONFIG=json.dumps(tf_config), **env),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outputs = [p.communicate(timeout=300) for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return [(proc.returncode, out, err) for proc, (out, err) in zip(procs, outputs)]


@pytest.mark.slow
def test_train_under_tf_config_two_workers_end_with_the_same_weights(tmp_path):
    (tmp_path / "tmp").mkdir()
    # Keras' own fit fails here (keras#20585); fit() switches to distribute.fit_multi_worker.
    outputs = _two_workers(
        ["-m", "dnnguide.cli", "train", "--strategy", "multi_worker",
         "--data", "digits", "--epochs", "3", "--depth", "2", "--width", "16",
         "--dropout-rate", "0",  # the small-data rule's dropout would slow 3 epochs
         "--run-dir", str(tmp_path / "runs"), "--verbose", "0"],
        TMPDIR=str(scratch := tmp_path / "tmp"))
    for returncode, _, err in outputs:
        assert returncode == 0, err[-2000:]
    digests = [line for _, out, _ in outputs for line in out.splitlines() if "weights sha256" in line]
    assert len(digests) == 2 and digests[0] == digests[1]  # bitwise the same weights
    (run,) = (tmp_path / "runs").iterdir()  # only the chief keeps a run
    assert not list(scratch.glob("dnnguide-worker-*"))  # the other's scratch run is deleted
    history = pd.read_csv(run / "history.csv")
    assert len(history) == 3 and history["loss"].is_monotonic_decreasing
    assert history["val_loss"].iloc[-1] < history["val_loss"].iloc[0]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.5  # chance is 0.1


_KERAS_FIT = """
import json, os, sys
import numpy as np
import tensorflow as tf
strat = tf.distribute.MultiWorkerMirroredStrategy()
import keras
x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
y = x[:, :1]
with strat.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
try:
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    print("FIT_OK")
except Exception as exc:
    print("FIT_FAILED", type(exc).__name__)
"""


@pytest.mark.slow
def test_canary_keras_fit_still_fails_on_two_workers():
    """keras-team/keras#20585: when this test fails, Keras's fit works on a multi-worker
    cluster; drop dnnguide.multi_worker and the switch to it in dnnguide.training."""
    results = [out.strip().splitlines()[-1] if out.strip() else err[-500:]
               for _, out, err in _two_workers(["-c", _KERAS_FIT])]
    assert all(r.startswith("FIT_FAILED") for r in results), (
        f"Keras's own fit now works on a two-worker cluster ({results}): keras#20585 is fixed, "
        "remove the dnnguide.multi_worker workaround.")
