"""Train and evaluate under a MultiWorkerMirroredStrategy, where Keras 3's ``fit`` fails.

Keras 3's ``fit``/``evaluate`` fail when a MultiWorkerMirroredStrategy cluster has more than
one worker: the symbolic build reduces a nested data batch, which the collective strategy cannot
do (keras-team/keras#20585, open for Keras 3.15 / TF 2.21). :func:`fit_multi_worker` and
:func:`evaluate_multi_worker` are the custom loop of TensorFlow's tutorial with the same keywords;
:func:`dnnguide.fit` switches to them by itself (:func:`is_multi_worker`).

This whole module is a workaround: ``tests/test_multi_worker.py`` holds a canary that runs Keras's
own ``fit`` on a two-worker cluster and starts failing the day Keras fixes the bug, so the
workaround can then be dropped.

TensorFlow-only, imported lazily.

References:
    TensorFlow tutorial "Custom training loop with Keras and MultiWorkerMirroredStrategy"
    (https://www.tensorflow.org/tutorials/distribute/multi_worker_with_ctl).
"""

from __future__ import annotations

from dnnguide.distribute import is_chief, scale_batch_size


def _tf():
    import tensorflow as tf

    return tf


def is_multi_worker(model) -> bool:
    """Whether ``model`` was built under a MultiWorkerMirroredStrategy (TensorFlow backend only)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return False
    tf = _tf()
    return isinstance(getattr(model, "distribute_strategy", None),
                      tf.distribute.MultiWorkerMirroredStrategy)


def _per_example_loss(loss):
    """The compiled loss with no reduction, so the loop can average over the *global* batch.

    A loss given by name or as a Keras loss function ("mse" -> ``mean_squared_error``) becomes
    its ``keras.losses`` class (``MeanSquaredError``); Loss objects align label and prediction
    ranks as compile() does, where a bare function would broadcast ``(n, 1)`` against ``(n,)``.
    """
    import keras

    if isinstance(loss, str):
        loss = keras.losses.get(loss)  # "mse" -> the mean_squared_error function
    if callable(loss) and not isinstance(loss, keras.losses.Loss):
        name = "".join(w.capitalize() for w in getattr(loss, "__name__", "").split("_"))
        cls = getattr(keras.losses, name, None)
        loss = cls() if isinstance(cls, type) and issubclass(cls, keras.losses.Loss) else loss
    if isinstance(loss, keras.losses.Loss):
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
