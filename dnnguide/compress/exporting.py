"""Export a model for serving: LiteRT (``.tflite``), ONNX or a TensorFlow SavedModel.

A thin layer over Keras 3's own ``model.export`` (float models), plus :func:`to_tflite` for the
quantized LiteRT modes. Nothing is overwritten: an existing ``path`` is refused, and the file
is written under a temporary name first, then renamed.

ONNX needs ``tf2onnx`` and ``onnx`` (``pip install "dnnguide[onnx]"``); run the file with
``onnxruntime``.

Example:
    >>> from dnnguide.compress import export
    >>> export(model, "model_int8.tflite", quantize="int8",
    ...        representative_data=x_train)  # doctest: +SKIP
    >>> export(model, "model.onnx", format="onnx")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np

from dnnguide.config import check_choice
from dnnguide.runs import RunExistsError

FORMATS = ("litert", "onnx", "saved_model")
_KERAS_FORMAT = {"litert": "litert", "onnx": "onnx", "saved_model": "tf_saved_model"}


def _check_onnx() -> None:
    missing = []
    for module in ("tf2onnx", "onnx"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ImportError(f"ONNX export needs {missing}: pip install \"dnnguide[onnx]\"")


def export(model: keras.Model, path, format: str = "litert", *, quantize: str | None = None,
           representative_data=None) -> Path:
    """Write ``model`` to ``path`` in ``format``; returns the path.

    Args:
        model: a Keras 3 model (float; pruned and BN-folded models are float models too).
        path: the file (``.tflite``, ``.onnx``) or folder (SavedModel) to create; must not exist.
        format: ``"litert"``, ``"onnx"`` or ``"saved_model"``.
        quantize: for ``"litert"`` only: ``"dynamic"``, ``"float16"`` or ``"int8"``
            (see :func:`dnnguide.compress.to_tflite`).
        representative_data: calibration inputs for ``quantize="int8"``.

    Raises:
        RunExistsError: if ``path`` exists (nothing is overwritten).
    """
    check_choice("format", format, FORMATS)
    if quantize is not None and format != "litert":
        raise ValueError(f"Argument `quantize` applies to format='litert' only. Received: "
                         f"quantize={quantize!r}, format={format!r}")
    path = Path(path)
    if path.exists():
        raise RunExistsError(f"{path} exists; exports never overwrite. Choose another path.")
    if format == "onnx":
        _check_onnx()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    tmp = tmp_dir / path.name
    try:
        if format == "litert" and quantize not in (None, "float32"):
            from dnnguide.compress.quantize import to_tflite

            tmp.write_bytes(to_tflite(model, quantize, representative_data))
        else:
            # Keras' ONNX export refuses a model that was never called (e.g. fresh from
            # load_model): one prediction on zeros traces it, weights untouched.
            model.predict(np.zeros((1, *model.input_shape[1:]), "float32"), verbose=0)
            model.export(str(tmp), format=_KERAS_FORMAT[format], verbose=False)
        if path.exists():  # appeared while exporting: still never overwrite
            raise RunExistsError(f"{path} appeared during the export; it was left alone.")
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return path
