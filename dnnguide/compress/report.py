"""One call from a trained model to its compressed variants, measured side by side.

:func:`compress` prunes, folds batch norm and quantizes; :func:`compression_report` measures
every variant in the same process: file size, gzip size, sparsity, test accuracy (or RMSE),
latency per sample and per batch of 256 (Keras ``predict`` for Keras models, the LiteRT
interpreter for ``.tflite`` ones). :func:`plot_size_vs_accuracy` draws the trade-off.

Example:
    >>> import dnnguide
    >>> from dnnguide.compress import compress, plot_size_vs_accuracy
    >>> run = dnnguide.fit("sparse", "digits", epochs=10, run_dir=None)  # doctest: +SKIP
    >>> result = compress(run.model, run.data, prune=0.8, quantize=["int8"])  # doctest: +SKIP
    >>> result.report[["variant", "gzip_bytes", "test_accuracy"]]  # doctest: +SKIP
    >>> plot_size_vs_accuracy(result.report, "size_vs_accuracy.png")  # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import keras
import numpy as np

from dnnguide.compress.common import (
    gzip_size, keras_bytes, model_task, resolve_data, score, sparsity,
)
from dnnguide.config import check_range

BATCH = 256


@dataclass
class CompressionResult:
    """What :func:`compress` returns: the variants and their report."""

    keras_models: dict[str, keras.Model] = field(default_factory=dict)
    tflite: dict[str, bytes] = field(default_factory=dict)
    report: object = None  # pandas DataFrame, one row per variant

    def save(self, folder) -> list:
        """Write every compressed variant into ``folder`` (``model_<variant>.keras`` /
        ``.tflite``; the float model is not copied); an existing file is never replaced."""
        from pathlib import Path

        from dnnguide.compress.common import write_new_bytes
        from dnnguide.runs import RunExistsError, atomic_save_model

        folder, paths = Path(folder), []
        for name, variant in self.keras_models.items():
            if name != "float":
                path = folder / f"model_{name.replace('+', '_')}.keras"
                if path.exists():
                    raise RunExistsError(f"{path} exists; compression artefacts never overwrite.")
                atomic_save_model(variant, path)
                paths.append(path)
        for name, content in self.tflite.items():
            slug = name.removeprefix("tflite ").replace("+", "_").replace(" ", "_")
            paths.append(write_new_bytes(folder / f"model_{slug}.tflite", content))
        return paths


def compress(model: keras.Model, data, *, prune: float | None = None,
             quantize=("dynamic", "float16", "int8"), fold_bn: bool | None = None,
             qat: bool = False, prune_epochs: int = 2, qat_epochs: int = 1,
             batch_size: int = 32, measure: bool = True, repeats: int = 20,
             seed: int = 0) -> CompressionResult:
    """Prune, fold and quantize ``model``; every variant is measured on ``data``'s test split.

    Args:
        model: a trained Keras 3 model (not modified).
        data: what :func:`dnnguide.fit` accepts; training split for fine-tuning and calibration.
        prune: target sparsity of the Dense kernels (None: no pruning). The TFLite variants
            are made from the pruned model when there is one.
        quantize: TFLite modes among ``"dynamic"``, ``"float16"``, ``"int8"``; a float32
            TFLite model is always made too (the size and latency baseline).
        fold_bn: fold batch norm (None: when the model has BatchNormalization layers).
        qat: add a quantization-aware-trained int8 TFLite model (TF-MOT).
        prune_epochs, qat_epochs, batch_size: fine-tuning budgets.
        measure: build the report (skip to only make the artefacts).
        repeats: single-sample predictions timed per variant.
        seed: seeds pruning and QAT fine-tuning.
    """
    from dnnguide.compress.fold_bn import fold_batch_norm
    from dnnguide.compress.pruning import prune as prune_model
    from dnnguide.compress.quantize import MODES, quantization_aware_training, to_tflite
    from dnnguide.config import check_choice

    quantize = [quantize] if isinstance(quantize, str) else list(quantize or ())
    for mode in quantize:
        check_choice("quantize", mode, MODES[1:])
    data = resolve_data(data, model, seed)
    result = CompressionResult(keras_models={"float": model})
    base = model
    if prune:
        base = prune_model(model, data, prune, epochs=prune_epochs, batch_size=batch_size,
                           seed=seed)
        result.keras_models["pruned"] = base
    has_bn = any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    if fold_bn or (fold_bn is None and has_bn):
        result.keras_models["pruned+folded" if prune else "folded"] = fold_batch_norm(base)
    result.tflite["tflite float32"] = to_tflite(model, "float32")
    prefix = "tflite pruned+" if prune else "tflite "
    for mode in quantize:
        result.tflite[prefix + mode] = to_tflite(base, mode, representative_data=data.x_train)
    if qat:
        result.tflite[prefix + "qat int8"] = quantization_aware_training(
            base, data, epochs=qat_epochs, batch_size=batch_size, seed=seed)
    if measure:
        result.report = compression_report({**result.keras_models, **result.tflite}, data,
                                           task=model_task(model, data), repeats=repeats)
    return result


def _median_seconds(call, repeats: int) -> float:
    call()  # warm-up: tracing, interpreter allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def compression_report(variants: dict, data, *, task: str | None = None, repeats: int = 20):
    """Measure each variant (a Keras model or ``.tflite`` bytes) on ``data``'s test split.

    Returns:
        A pandas DataFrame, one row per variant: ``variant``, ``format``, ``size_bytes``,
        ``gzip_bytes``, ``gzip_ratio`` (the first variant's gzip size / this one's),
        ``sparsity`` (of the Dense kernels; Keras variants), ``test_accuracy`` (or
        ``test_rmse``/``test_mae``), ``latency_sample_ms`` (one example per call),
        ``latency_batch_ms`` (a batch of 256), ``speedup_sample`` (vs the first variant).
    """
    import pandas as pd

    from dnnguide.compress.quantize import LiteRTModel

    check_range("repeats", repeats, 1, integer=True)
    from dnnguide.data import as_dataset

    data = as_dataset(data, 0, task)
    task = task or data.task
    x = np.asarray(data.x_test, "float32")
    one = x[:1]
    batch = np.resize(x, (BATCH, *x.shape[1:]))  # 256 rows even for a small test split
    rows = []
    for name, variant in variants.items():
        if isinstance(variant, keras.Model):
            content, kind = keras_bytes(variant), "keras"
            predict = lambda inputs, m=variant: m.predict(inputs, batch_size=BATCH, verbose=0)
            single, batched = predict, predict
            zeros = sparsity(variant)["total"]
        else:
            content, kind = bytes(variant), "tflite"
            # Two interpreters: resizing one between 1 and 256 rows would be timed too.
            single, batched = LiteRTModel(content).predict, LiteRTModel(content).predict
            zeros = np.nan
        scores = score(task, data.y_test, batched(x))
        rows.append({
            "variant": name, "format": kind, "size_bytes": len(content),
            "gzip_bytes": gzip_size(content), "sparsity": zeros,
            **{f"test_{k}": v for k, v in scores.items()},
            "latency_sample_ms": 1e3 * _median_seconds(lambda: single(one), repeats),
            "latency_batch_ms": 1e3 * _median_seconds(lambda: batched(batch),
                                                      max(1, repeats // 4)),
        })
    frame = pd.DataFrame(rows)
    frame["gzip_ratio"] = frame["gzip_bytes"].iloc[0] / frame["gzip_bytes"]
    frame["speedup_sample"] = frame["latency_sample_ms"].iloc[0] / frame["latency_sample_ms"]
    return frame


def plot_size_vs_accuracy(frame, path, *, overwrite: bool = False):
    """Scatter of gzip size (KiB, log scale) against test accuracy (or RMSE), one point per
    variant, saved as a PNG (never replacing an existing file unless ``overwrite``)."""
    from dnnguide.runs import pyplot, save_figure

    metric = "test_accuracy" if "test_accuracy" in frame else "test_rmse"
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, marker in (("keras", "o"), ("tflite", "s")):
        part = frame[frame["format"] == kind]
        ax.scatter(part["gzip_bytes"] / 1024, part[metric], marker=marker, label=kind)
    for index, (_, row) in enumerate(frame.iterrows()):
        # Alternate above/below: float Keras and float32 TFLite often sit on the same spot.
        ax.annotate(row["variant"], (row["gzip_bytes"] / 1024, row[metric]), fontsize=7,
                    xytext=(3, 4 if index % 2 == 0 else -10), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("gzip size (KiB, log scale)")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title("Size vs " + metric.removeprefix("test_"))
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path, overwrite=overwrite)
