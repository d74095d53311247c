"""Use the hardware there is: pick a ``tf.distribute`` strategy, and spread tuning over processes.

- :func:`strategy` picks TPUStrategy when a TPU is found, MirroredStrategy with more than one
  GPU (or over the devices you name), MultiWorkerMirroredStrategy when ``TF_CONFIG`` describes
  a cluster, and the default strategy on one GPU or the CPU.
- :func:`enable_mixed_precision` picks ``mixed_float16`` on GPU, ``mixed_bfloat16`` on TPU.
- :func:`scale_batch_size` multiplies a per-replica batch size by the replicas in sync.
- :func:`fit_multi_worker` / :func:`evaluate_multi_worker` train and evaluate a model built under
  a MultiWorkerMirroredStrategy with a custom loop, since Keras 3's ``fit`` fails there
  (keras-team/keras#20585); :func:`dnnguide.fit` switches to them by itself.
- :func:`run_tuning_processes` runs keras-tuner's own chief/worker mode on this machine
  (``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT``); see
  ``docs/distributed_tuning.md`` for several machines.

TensorFlow is imported lazily: this module is the TF-only part of dnnguide.

Example:
    >>> from dnnguide import distribute
    >>> strat = distribute.strategy("auto")  # doctest: +SKIP
    >>> distribute.scale_batch_size(32, strat)  # doctest: +SKIP
    32

References:
    TensorFlow guide "Distributed training with TensorFlow"
    (https://www.tensorflow.org/guide/distributed_training); "Multi-worker training with Keras";
    KerasTuner "Distributed hyperparameter tuning"
    (https://keras.io/guides/keras_tuner/distributed_tuning/).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from dnnguide.config import ConfigError, check_choice, check_range

STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")
LOOPBACK = "127.0.0.1"


def _tf():
    import tensorflow as tf

    return tf


def _tf_config_cluster() -> dict | None:
    """The cluster of ``TF_CONFIG`` if it names more than one task, else ``None``."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        cluster = json.loads(raw).get("cluster", {})
    except json.JSONDecodeError as exc:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({exc}). "
                          f"Received: TF_CONFIG={raw!r}") from exc
    tasks = sum(len(v) for v in cluster.values())
    return cluster if tasks > 1 else None


def _tpu_resolver():
    """A TPU cluster resolver, or ``None``. Only asked when a TPU is plausible, because the
    resolver otherwise probes the GCE metadata server (slow, and fails offline)."""
    tf = _tf()
    plausible = (os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR")
                 or os.path.exists("/dev/accel0") or os.path.exists("/dev/vfio/0"))
    if not plausible:
        return None
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return resolver
    except (ValueError, RuntimeError, tf.errors.NotFoundError):
        return None


def detect() -> str:
    """The strategy kind ``"auto"`` resolves to on this machine."""
    if _tf_config_cluster() is not None:
        return "multi_worker"
    if _tpu_resolver() is not None:
        return "tpu"
    if len(_tf().config.list_logical_devices("GPU")) > 1:
        return "mirrored"
    return "default"


def strategy(kind: str = "auto", *, devices=None):
    """A ``tf.distribute`` strategy for this machine (create it before any other TF work).

    Args:
        kind: ``"auto"`` (see module doc), ``"default"``, ``"mirrored"``, ``"multi_worker"``
            or ``"tpu"``.
        devices: devices to mirror over (names or logical devices, e.g. two logical CPUs);
            with more than one, ``"auto"`` picks MirroredStrategy over them.

    Raises:
        ConfigError: an unknown kind, ``multi_worker`` without a cluster in ``TF_CONFIG``,
            or ``tpu`` where no TPU is found.
    """
    check_choice("strategy", kind, STRATEGIES)
    tf = _tf()
    names = None if devices is None else [getattr(d, "name", d) for d in devices]
    if kind == "auto":
        kind = "mirrored" if names and len(names) > 1 else detect()
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(devices=names)
    if kind == "multi_worker":
        if _tf_config_cluster() is None:
            raise ConfigError("Strategy 'multi_worker' needs TF_CONFIG describing a cluster of "
                              "more than one task. Received: TF_CONFIG="
                              f"{os.environ.get('TF_CONFIG')!r}")
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = _tpu_resolver()
    if resolver is None:
        raise ConfigError("Strategy 'tpu' needs a TPU, and none was found (set TPU_NAME).")
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strat) -> bool:
    """Whether this worker should write results (always true outside multi-worker training)."""
    return bool(getattr(strat.extended, "should_checkpoint", True))


def scale_batch_size(batch_size: int, strat) -> int:
    """The global batch size: ``batch_size`` per replica times the replicas in sync."""
    check_range("batch_size", batch_size, 1, integer=True)
    return batch_size * int(strat.num_replicas_in_sync)


def enable_mixed_precision(device: str | None = None) -> str:
    """Set Keras' global mixed-precision policy for the accelerator and return its name.

    ``mixed_float16`` on GPU (with loss scaling, done by Keras), ``mixed_bfloat16`` on TPU.

    Raises:
        ConfigError: on a CPU-only machine, where mixed precision only slows training.
    """
    import keras

    if device is None:
        tf = _tf()
        device = ("tpu" if tf.config.list_logical_devices("TPU") or _tpu_resolver()
                  else "gpu" if tf.config.list_logical_devices("GPU") else "cpu")
    check_choice("device", device, ("gpu", "tpu", "cpu"))
    if device == "cpu":
        raise ConfigError("Mixed precision needs a GPU (mixed_float16) or a TPU "
                          "(mixed_bfloat16); this machine has neither. Received: device='cpu'")
    policy = "mixed_float16" if device == "gpu" else "mixed_bfloat16"
    keras.mixed_precision.set_global_policy(policy)
    return policy


# --------------------------------------------------------------------------- tuning processes
def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def oracle_env(role: str, *, tuner_id: str | None = None, ip: str = LOOPBACK,
               port: int = 8000) -> dict[str, str]:
    """The keras-tuner environment variables for a chief or a worker.

    The chief serves gRPC without TLS or authentication: keep ``ip`` on loopback or a
    private network.
    """
    check_choice("role", role, ("chief", "worker"))
    check_range("port", port, 1, 65535, integer=True)
    if role == "chief":
        tuner_id = "chief"
    elif not tuner_id or "chief" in tuner_id:
        raise ConfigError(f"A worker needs a tuner id without 'chief' in it (e.g. 'worker0'). "
                          f"Received: tuner_id={tuner_id!r}")
    return {"KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": ip,
            "KERASTUNER_ORACLE_PORT": str(port)}


def run_tuning_processes(project_dir, workers: int, *, max_trials: int, max_failures: int = 3,
                         oracle_ip: str = LOOPBACK, oracle_port: int | None = None,
                         verbose: int = 1, timeout: float | None = None) -> None:
    """Run a saved search (``project_dir``) in one chief and ``workers`` worker processes.

    Every trial runs in a worker process, so this process's memory does not grow with the
    search (keras-tuner#395). Returns when every worker has finished; the chief's oracle
    state is on disk by then (it saves after each trial), so the chief is then stopped.
    """
    check_range("workers", workers, 1, integer=True)
    port = oracle_port or free_port(oracle_ip)
    command = [sys.executable, "-m", "dnnguide.tuning", str(project_dir),
               "--max-trials", str(max_trials), "--max-failures", str(max_failures)]
    logs = Path(project_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    def start(role, tuner_id, verbosity):
        env = {**os.environ, **oracle_env(role, tuner_id=tuner_id, ip=oracle_ip, port=port)}
        log = open(logs / f"{tuner_id or 'chief'}.log", "a")
        out = None if verbosity else log
        return subprocess.Popen(command + ["--verbose", str(verbosity)], env=env, stdout=out,
                                stderr=log), log

    chief, chief_log = start("chief", None, verbose)  # the chief prints the trial progress
    procs = [start("worker", f"worker{i}", 0) for i in range(workers)]
    start_time = time.monotonic()
    try:
        while any(p.poll() is None for p, _ in procs):
            # The chief exits 0 as soon as the last worker was told to stop, which can be
            # before that worker's process has exited; any other exit is a failure.
            if chief.poll() not in (None, 0):
                raise RuntimeError(f"The tuning chief failed (exit {chief.returncode}); "
                                   f"see {logs / 'chief.log'}.")
            if timeout is not None and time.monotonic() - start_time > timeout:
                raise TimeoutError(f"Tuning processes still running after {timeout} s.")
            time.sleep(0.5)
        bad = [f"worker{i} (exit {p.returncode})" for i, (p, _) in enumerate(procs) if p.returncode]
        if bad:
            raise RuntimeError(f"Tuning worker processes failed: {', '.join(bad)}; see {logs}.")
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
            log.close()
        # keras-tuner's chief polls every 20 s before exiting; its state is already saved.
        if chief.poll() is None:
            chief.terminate()
        chief.wait()
        chief_log.close()


def weights_digest(model) -> str:
    """SHA-256 of a model's weights, to check that replicas or workers ended in sync."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- multi-worker training
def is_multi_worker(model) -> bool:
    """Whether ``model`` was built under a MultiWorkerMirroredStrategy (TensorFlow backend only)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return False
    tf = _tf()
    return isinstance(getattr(model, "distribute_strategy", None),
                      tf.distribute.MultiWorkerMirroredStrategy)


def _per_example_loss(loss):
    """The compiled loss with no reduction, so the loop can average over the *global* batch."""
    import keras

    if isinstance(loss, str):  # "binary_crossentropy" -> keras.losses.BinaryCrossentropy
        loss = getattr(keras.losses, "".join(w.capitalize() for w in loss.split("_")), loss)
        loss = loss() if isinstance(loss, type) else keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        # Loss objects align label and prediction ranks as compile() does.
        return loss.__class__.from_config({**loss.get_config(), "reduction": None})
    raise TypeError("Multi-worker training needs a compiled loss given by name or as a "
                    f"keras.losses.Loss. Received: loss={loss!r}")


def _batches(strat, x, y, global_batch: int, *, shuffle_seed: int | None):
    """A distributed dataset of global batches, sharded by data (every worker holds all of it)."""
    tf = _tf()
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strat.experimental_distribute_dataset(ds.batch(global_batch).with_options(options))


def fit_multi_worker(model, x, y, *, validation_data=None, epochs: int = 1, batch_size: int = 32,
                     callbacks=(), verbose="auto", seed: int = 0):
    """``model.fit`` for a model built under a MultiWorkerMirroredStrategy (the same keywords).

    Keras 3's ``fit`` fails there when the cluster has more than one worker: its symbolic build
    reduces a nested data batch, which the collective strategy cannot do (keras-team/keras#20585,
    open for Keras 3.15 / TF 2.21). This is the custom loop of TensorFlow's "Custom training
    loop with Keras and MultiWorkerMirroredStrategy" tutorial: every worker runs it on the same
    arrays, ``batch_size`` per replica, gradients all-reduced by the optimizer, and Keras'
    callbacks driven as ``fit`` drives them (early stopping, NaN guard, schedules, CSV log).
    Metrics are the compiled ones; their variables sum over workers when read, so every worker
    sees the same logs and callbacks decide the same (a worker that stopped alone would leave
    the others waiting in a collective).

    Args:
        model: a compiled model built under ``strategy.scope()`` of a MultiWorkerMirroredStrategy.
        x, y: training arrays (the same on every worker; each worker trains on its shard).
        validation_data: ``(x_val, y_val)``, or ``None``.
        epochs, batch_size: as for ``fit``; ``batch_size`` is per replica.
        callbacks: Keras callbacks.
        verbose: ``"auto"``/1 progress bar, 2 one line per epoch, 0 silent.
        seed: shuffling seed (the same on every worker, as sharding requires).

    Returns:
        The ``keras.callbacks.History`` of the run (``.history``: one list per log key).

    Example:
        >>> strat = strategy("multi_worker")  # doctest: +SKIP
        >>> with strat.scope():  # doctest: +SKIP
        ...     model = build_model("default", (8,), 3, "classification")
        >>> fit_multi_worker(model, x, y, epochs=2).history["loss"]  # doctest: +SKIP

    References:
        TensorFlow tutorial "Custom training loop with Keras and MultiWorkerMirroredStrategy"
        (https://www.tensorflow.org/tutorials/distribute/multi_worker_with_ctl).
    """
    import warnings

    import keras

    tf = _tf()
    strat = model.distribute_strategy
    per_example = _per_example_loss(model.loss)
    global_batch = scale_batch_size(batch_size, strat)
    train = _batches(strat, x, y, global_batch, shuffle_seed=seed)
    has_val = validation_data is not None and len(validation_data[0]) > 0
    val = _batches(strat, *validation_data, global_batch, shuffle_seed=None) if has_val else None
    steps = -(-len(x) // global_batch)
    test_step = _test_step(model, strat, per_example)

    def replica_train_step(xb, yb):
        with tf.GradientTape() as tape:
            y_pred = model(xb, training=True)
            losses = per_example(yb, y_pred)
            loss = tf.nn.compute_average_loss(losses, global_batch_size=global_batch)
            if model.losses:  # regularization: counted once over all replicas
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        grads = tape.gradient(loss, model.trainable_variables)
        # Keras' TF optimizer all-reduces (sums) the gradients in a replica context.
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
        model.compute_metrics(xb, yb, y_pred)  # SUM-synced variables, read across workers
        return loss

    @tf.function
    def train_step(batch):
        loss = strat.run(replica_train_step, args=batch)
        return strat.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)

    callbacks = list(callbacks)
    if not is_chief(strat):
        # Non-chief workers log to a throwaway run directory (fit() put it there); keep them quiet.
        verbose = 0
    if any(isinstance(cb, keras.callbacks.BackupAndRestore) for cb in callbacks):
        warnings.warn("BackupAndRestore under multi-worker training: each worker saves its own "
                      "checkpoint (non-chief workers in a temporary folder), so resuming restores "
                      "every worker only where all of them can read the chief's run directory "
                      "(one machine or a shared file system).", stacklevel=2)
    verbose = 1 if verbose == "auto" else verbose
    callback_list = keras.callbacks.CallbackList(
        callbacks, add_history=True, add_progbar=verbose != 0, model=model, verbose=verbose,
        epochs=epochs, steps=steps)
    model.stop_training = False
    callback_list.on_train_begin()
    initial_epoch = int(getattr(model, "_initial_epoch", 0) or 0)  # set by BackupAndRestore
    logs = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        total, seen = 0.0, 0
        for step, batch in enumerate(train):
            callback_list.on_train_batch_begin(step)
            loss = float(train_step(batch))
            total, seen = total + loss, seen + 1
            callback_list.on_train_batch_end(step, {"loss": total / seen})
            if model.stop_training:
                break
        logs = {"loss": total / max(seen, 1), **_metric_logs(model)}
        if has_val:
            val_logs = _evaluate(model, test_step, val)
            logs.update({f"val_{k}": v for k, v in val_logs.items()})
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return model.history


def _metric_logs(model) -> dict[str, float]:
    """The compiled metrics' results (their SUM-synced variables are read across workers)."""
    results = {}
    for metric in model.metrics:
        if metric.name == "loss":  # fit's loss tracker: this loop tracks the loss itself
            continue
        result = metric.result()
        values = result.items() if isinstance(result, dict) else [(metric.name, result)]
        results.update({k: float(v) for k, v in values})
    return results


def _test_step(model, strat, per_example):
    """A traced step: summed per-example loss, example count, and metric updates of a batch."""
    tf = _tf()

    def replica_test_step(xb, yb):
        y_pred = model(xb, training=False)
        model.compute_metrics(xb, yb, y_pred)
        losses = per_example(yb, y_pred)
        # Keras' reported loss includes the regularization penalties; they count once.
        penalty = tf.add_n(model.losses) if model.losses else tf.zeros((), losses.dtype)
        return tf.reduce_sum(losses), tf.cast(tf.shape(losses)[0], losses.dtype), penalty

    @tf.function
    def step(batch):
        total, count, penalty = strat.run(replica_test_step, args=batch)
        return (strat.reduce(tf.distribute.ReduceOp.SUM, total, axis=None),
                strat.reduce(tf.distribute.ReduceOp.SUM, count, axis=None),
                strat.reduce(tf.distribute.ReduceOp.MEAN, penalty, axis=None))

    return step


def _evaluate(model, step, dataset) -> dict[str, float]:
    """Loss (mean over all examples of all workers) and compiled metrics over a distributed set."""
    model.reset_metrics()
    total = count = penalty = 0.0
    for batch in dataset:
        batch_total, batch_count, penalty = step(batch)
        total, count = total + float(batch_total), count + float(batch_count)
    return {"loss": total / max(count, 1.0) + float(penalty), **_metric_logs(model)}


def evaluate_multi_worker(model, x, y, *, batch_size: int = 32, **_ignored) -> dict[str, float]:
    """``model.evaluate(x, y, return_dict=True)`` for a multi-worker model (keras#20585).

    Every worker passes the same arrays and gets the same result (loss and compiled metrics
    over all examples). Other ``evaluate`` keywords (``verbose``, ``return_dict``) are accepted
    and ignored, so this is a drop-in replacement.
    """
    strat = model.distribute_strategy
    dataset = _batches(strat, x, y, scale_batch_size(batch_size, strat), shuffle_seed=None)
    return _evaluate(model, _test_step(model, strat, _per_example_loss(model.loss)), dataset)
