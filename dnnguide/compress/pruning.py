"""Magnitude pruning with TF-MOT (Zhu & Gupta 2017) of a dnnguide Keras 3 model, via the bridge.

The model is rebuilt in tf_keras (:mod:`dnnguide.compress.bridge`), every Dense layer is
wrapped with ``prune_low_magnitude``, fine-tuned a few epochs with ``UpdatePruningStep`` while
the smallest weights are zeroed, stripped with ``strip_pruning`` and copied back into a fresh
Keras 3 model. The model passed in is never modified.

Pruning breaks self-normalization (the zeros shift the weight statistics SELU relies on,
Klambauer et al. 2017), so a SELU model is refused with the guideline's reason.

Example:
    >>> import dnnguide
    >>> from dnnguide.compress import prune, sparsity
    >>> result = dnnguide.fit("sparse", "digits", epochs=5, run_dir=None)  # doctest: +SKIP
    >>> pruned = prune(result.model, result.data, target_sparsity=0.8, epochs=2)  # doctest: +SKIP
    >>> round(sparsity(pruned)["total"], 2)  # doctest: +SKIP
    0.8

References:
    Zhu & Gupta (2017), "To prune, or not to prune: exploring the efficacy of pruning for
    model compression", arXiv:1710.01878.
"""

from __future__ import annotations

import math

import keras

from dnnguide.compress.bridge import from_tf_keras, import_tf_keras, import_tfmot, to_tf_keras
from dnnguide.compress.common import (
    model_task, resolve_data, sparsity, split_calibration, training_loss, with_calibration,
)
from dnnguide.config import check_choice, check_range

SCHEDULES = ("polynomial", "constant")
#: Fraction of the fine-tuning steps after which the polynomial schedule reaches the target.
POLYNOMIAL_END = 2 / 3


class SelfNormalizingError(ValueError):
    """Pruning a self-normalizing (SELU) model would break what makes it work."""


def self_normalizing_layers(model: keras.Model) -> list[str]:
    """Names of the layers that make ``model`` a self-normalizing (SELU/AlphaDropout) network."""
    names = []
    for layer in model.layers:
        activation = getattr(layer, "activation", None)
        if activation is not None and keras.activations.serialize(activation) == "selu":
            names.append(layer.name)
        elif "AlphaDropout" in type(layer).__name__:
            names.append(layer.name)
    return names


def check_prunable(model: keras.Model) -> None:
    """Refuse a self-normalizing model, with the guideline's reason."""
    from dnnguide.guidelines import EXCEPTIONS_TABLE

    config = getattr(model, "dnnguide_config", None)
    layers = self_normalizing_layers(model)
    if layers or (config is not None and config.self_normalizing):
        raise SelfNormalizingError(
            "Argument `model` must not be self-normalizing to be pruned. "
            f"{EXCEPTIONS_TABLE['sparse']['activation']} Received: model {model.name!r} with "
            f"SELU/AlphaDropout layers {layers}. Train the 'sparse' preset (ELU/ReLU family, L1) "
            "and prune that instead.")


def prune(
    model: keras.Model,
    data,
    target_sparsity: float = 0.8,
    *,
    schedule: str = "polynomial",
    epochs: int = 2,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    verbose: int = 0,
    seed: int = 0,
) -> keras.Model:
    """A copy of ``model`` whose Dense kernels have ``target_sparsity`` zeros, fine-tuned on ``data``.

    Args:
        model: a trained dnnguide (or any Sequential/functional Keras 3) model; not modified.
        data: what :func:`dnnguide.fit` accepts (a Dataset, a name, ``(x, y)``...); its
            training split fine-tunes the pruned network.
        target_sparsity: fraction of each Dense kernel set to zero, in [0, 1).
        schedule: ``"polynomial"`` (sparsity rises from 0 to the target over the fine-tuning,
            TF-MOT's ``PolynomialDecay``) or ``"constant"`` (the target from the first step).
        epochs: fine-tuning epochs (the polynomial schedule reaches the target after two
            thirds of them; the rest recovers accuracy at full sparsity).
        batch_size, learning_rate: of the fine-tuning (Adam).
        verbose: Keras verbosity of the fine-tuning.
        seed: seeds the fine-tuning.

    Returns:
        A compiled Keras 3 model with the pruned weights (same layers and names as ``model``).
        A calibrated model's network is fine-tuned without its Calibration layer, which the
        pruned model ends in again.

    Raises:
        SelfNormalizingError: for a SELU model (pruning breaks self-normalization).
        ConversionError: naming a layer the tf_keras bridge cannot convert.
    """
    check_range("target_sparsity", target_sparsity, 0.0, 1.0, high_inclusive=False)
    check_choice("schedule", schedule, SCHEDULES)
    check_range("epochs", epochs, 1, integer=True)
    check_range("batch_size", batch_size, 1, integer=True)
    check_prunable(model)
    data = resolve_data(data, model, seed)
    task = model_task(model, data)
    network, calibration = split_calibration(model)  # fine-tuned without the temperature
    legacy = to_tf_keras(network)  # refuses unconvertible layers before TF-MOT is imported
    tfmot = import_tfmot()
    tfk = import_tf_keras()
    keras.utils.set_random_seed(seed)

    steps_per_epoch = math.ceil(len(data.x_train) / batch_size)
    total = steps_per_epoch * epochs
    # Masks are updated every `frequency` steps; TF-MOT's default (100) would never reach the
    # target on a small dataset, so several updates per epoch. The polynomial schedule reaches
    # the target after two thirds of the steps, leaving the rest to recover at full sparsity.
    frequency = max(1, min(100, steps_per_epoch // 4))
    end_step = max(frequency, (int(total * POLYNOMIAL_END) // frequency) * frequency)
    sched = tfmot.sparsity.keras
    pruning_schedule = (
        sched.PolynomialDecay(0.0, target_sparsity, begin_step=0, end_step=end_step,
                              frequency=frequency)
        if schedule == "polynomial" else
        sched.ConstantSparsity(target_sparsity, begin_step=0, frequency=frequency))

    def wrap(layer):
        if isinstance(layer, tfk.layers.Dense):
            return sched.prune_low_magnitude(layer, pruning_schedule=pruning_schedule)
        return layer

    # clone_model's clone_function sees the layers of `legacy` (a throwaway copy), so
    # prune_low_magnitude wrapping them in place never touches the user's model.
    wrapped = tfk.models.clone_model(legacy, clone_function=wrap)
    wrapped.compile(optimizer=tfk.optimizers.Adam(learning_rate), loss=training_loss(task, data))
    wrapped.fit(data.x_train, data.y_train, epochs=epochs, batch_size=batch_size,
                callbacks=[sched.UpdatePruningStep()], verbose=verbose)
    pruned = with_calibration(from_tf_keras(sched.strip_pruning(wrapped), like=network),
                              calibration, like=model)
    pruned.dnnguide_sparsity = sparsity(pruned)
    return pruned
