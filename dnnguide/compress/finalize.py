"""What ``fit`` does at the end of a run whose config asks for compression.

The ``sparse`` preset (``pruning_sparsity > 0``) gets a pruned model, the ``low_latency``
preset (``fold_batch_norm=True``, ``precision="int8"``) a BN-folded Keras model and an int8
``.tflite``; each is written into the run directory and scored on the test split, and the
scores join ``metrics.json`` (``pruned_test_accuracy``, ``folded_test_accuracy``,
``int8_test_accuracy``...). ``model.keras`` stays the float model that was trained.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from dnnguide.compress.common import gzip_size, score, write_new_bytes


def compression_requested(config) -> bool:
    return bool(config.pruning_sparsity > 0 or config.fold_batch_norm
                or config.precision != "float32")


def check_requirements(config) -> None:
    """Refuse, before training, a config whose compression needs packages that are missing.

    Uses ``find_spec``, which does not import: importing TF-MOT would switch
    ``TF_USE_LEGACY_KERAS`` on for the process.
    """
    if config is None or not compression_requested(config):
        return
    needed = {}
    if config.pruning_sparsity > 0:
        needed.update({"tensorflow_model_optimization": "tensorflow-model-optimization",
                       "tf_keras": "tf-keras"})
    if config.precision != "float32":
        needed["ai_edge_litert"] = "ai-edge-litert"
    missing = [package for module, package in needed.items() if find_spec(module) is None]
    if missing:
        raise ImportError(
            f"Configuration {config.name!r} asks for pruning_sparsity={config.pruning_sparsity}, "
            f"precision={config.precision!r}, which need {missing}: "
            'pip install "dnnguide[compress]"')


def prune_epochs(config) -> int:
    """Fine-tuning epochs while pruning: a third of the training budget, 2 to 30.

    80% magnitude pruning of the data-sized 256-wide sparse preset on mnist1d lost 3.7 test
    points with 10 epochs and gained 0.6 with 30 (``bench/bench_compress.py --prune-epochs``).
    """
    return min(30, max(2, config.epochs // 3))


def finalize_run(model, config, data, path: Path | None) -> dict[str, float]:
    """Write the artefacts ``config`` asks for into ``path``; return their test metrics.

    Files: ``model_pruned.keras`` (pruning_sparsity > 0), ``model_folded.keras``
    (fold_batch_norm), ``model_int8.tflite`` / ``model_float16.tflite`` (precision).
    Nothing happens (and TF-MOT is not imported) when the config asks for none of them.
    """
    if path is None or config is None or not compression_requested(config):
        return {}
    from dnnguide.runs import atomic_save_model

    task = getattr(model, "dnnguide_task", None) or data.task
    metrics: dict[str, float] = {}

    def record(prefix, prediction):
        for name, value in score(task, data.y_test, prediction).items():
            metrics[f"{prefix}_test_{name}"] = value

    base = model
    if config.pruning_sparsity > 0:
        from dnnguide.compress.pruning import prune

        base = prune(model, data, config.pruning_sparsity, epochs=prune_epochs(config),
                     batch_size=config.batch_size)
        atomic_save_model(base, path / "model_pruned.keras")
        record("pruned", base.predict(data.x_test, batch_size=256, verbose=0))
        metrics["pruned_sparsity"] = base.dnnguide_sparsity["total"]
    if config.fold_batch_norm:
        from dnnguide.compress.fold_bn import fold_batch_norm

        folded = fold_batch_norm(base)
        atomic_save_model(folded, path / "model_folded.keras")
        record("folded", folded.predict(data.x_test, batch_size=256, verbose=0))
    if config.precision != "float32":
        from dnnguide.compress.quantize import LiteRTModel, to_tflite
        content = to_tflite(base, config.precision, representative_data=data.x_train)
        write_new_bytes(path / f"model_{config.precision}.tflite", content)
        record(config.precision, LiteRTModel(content).predict(data.x_test))
        metrics[f"{config.precision}_tflite_bytes"] = len(content)
        metrics[f"{config.precision}_tflite_gzip_bytes"] = gzip_size(content)
    return metrics
