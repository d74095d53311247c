"""Compression for dnnguide models: pruning, quantization, BN folding, export, a report.

TensorFlow-only, and imported lazily: nothing here is loaded by ``import dnnguide``, and
TF-MOT (which switches ``TF_USE_LEGACY_KERAS`` on import) is loaded only when pruning or
quantization-aware training runs. Install with ``pip install "dnnguide[compress]"``.

Example:
    >>> import dnnguide
    >>> from dnnguide.compress import compress
    >>> result = dnnguide.fit("default", "digits", epochs=10, run_dir=None)  # doctest: +SKIP
    >>> compress(result.model, result.data, prune=0.8, quantize=["int8"]).report  # doctest: +SKIP
"""

from __future__ import annotations

import importlib

# Module names differ from the function names (pruning.prune, exporting.export): importing a
# submodule sets it as an attribute of the package, which would shadow a same-named function.
_LAZY = {
    "ConversionError": "bridge", "to_tf_keras": "bridge", "from_tf_keras": "bridge",
    "register_converter": "bridge",
    "prune": "pruning", "SelfNormalizingError": "pruning", "check_prunable": "pruning",
    "sparsity": "common", "gzip_size": "common",
    "to_tflite": "quantize", "keras_quantize": "quantize", "LiteRTModel": "quantize",
    "quantization_aware_training": "quantize",
    "fold_batch_norm": "fold_bn",
    "export": "exporting",
    "compress": "report", "compression_report": "report", "CompressionResult": "report",
    "plot_size_vs_accuracy": "report", "finalize_run": "finalize",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'dnnguide.compress' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"dnnguide.compress.{_LAZY[name]}"), name)
    globals()[name] = value
    return value
