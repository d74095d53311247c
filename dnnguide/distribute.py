"""Use the hardware there is: pick a ``tf.distribute`` strategy and a mixed-precision policy.

- :func:`strategy` picks TPUStrategy when a TPU is found, MirroredStrategy with more than one
  GPU (or over the devices you name), MultiWorkerMirroredStrategy when ``TF_CONFIG`` describes
  a cluster, and the default strategy on one GPU or the CPU.
- :func:`enable_mixed_precision` picks ``mixed_float16`` on GPU, ``mixed_bfloat16`` on TPU.
- :func:`scale_batch_size` multiplies a per-replica batch size by the replicas in sync.
- ``fit_multi_worker`` / ``evaluate_multi_worker`` / ``is_multi_worker`` live in
  :mod:`dnnguide.multi_worker` (the keras#20585 workaround) and are re-exported here lazily.
- Tuning in several processes lives in :mod:`dnnguide.tuning.worker`.

TensorFlow is imported lazily: this module is the TF-only part of dnnguide.

Example:
    >>> from dnnguide import distribute
    >>> strat = distribute.strategy("auto")  # doctest: +SKIP
    >>> distribute.scale_batch_size(32, strat)  # doctest: +SKIP
    32

References:
    TensorFlow guide "Distributed training with TensorFlow"
    (https://www.tensorflow.org/guide/distributed_training); "Multi-worker training with Keras".
"""

from __future__ import annotations

import json
import os
import socket

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


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def weights_digest(model) -> str:
    """SHA-256 of a model's weights, to check that replicas or workers ended in sync."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


#: The multi-worker loop's public names, re-exported from :mod:`dnnguide.multi_worker` on first use
#: (that module imports this one, so a top-level import here would be circular).
_MULTI_WORKER = ("fit_multi_worker", "evaluate_multi_worker", "is_multi_worker")


def __getattr__(name):
    if name in _MULTI_WORKER:
        from dnnguide import multi_worker

        return getattr(multi_worker, name)
    raise AttributeError(f"module 'dnnguide.distribute' has no attribute {name!r}")
