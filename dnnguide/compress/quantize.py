"""Post-training quantization to TFLite, quantization-aware training, and running TFLite in LiteRT.

Three post-training modes of the TFLite converter (``Optimize.DEFAULT``):

* ``"dynamic"``: int8 weights, float activations (no data needed; ~4x smaller);
* ``"float16"``: float16 weights (~2x smaller, GPU-friendly);
* ``"int8"``: int8 weights *and* activations, calibrated on a representative dataset
  (~4x smaller, integer-only kernels), optionally with int8 inputs and outputs.

``"float32"`` converts without quantization (the baseline). The converter folds inference-mode
batch norm into the preceding Dense on its own. Quantization-aware training (TF-MOT
``quantize_apply`` over the tf_keras bridge) fine-tunes with fake quantization first.

Keras 3's ``model.quantize("int8")`` (:func:`keras_quantize`) gives int8 Dense layers for use
*inside Keras*; its int8 matmuls do not convert to TFLite, so :func:`to_tflite` refuses such a
model and asks for the float one.

TFLite models run in LiteRT (``ai_edge_litert.interpreter.Interpreter``, the supported
runtime; ``tf.lite.Interpreter`` is deprecated): :class:`LiteRTModel`.

Example:
    >>> from dnnguide.compress import to_tflite, LiteRTModel
    >>> content = to_tflite(model, "int8", representative_data=x_train)  # doctest: +SKIP
    >>> LiteRTModel(content).predict(x_test).shape  # doctest: +SKIP
    (360, 10)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import keras
import numpy as np

from dnnguide.compress.bridge import EXTRA_HINT, import_tf_keras, import_tfmot, to_tf_keras
from dnnguide.compress.common import (
    dense_layers, model_task, resolve_data, split_calibration, training_loss,
)
from dnnguide.config import check_choice, check_range

MODES = ("float32", "dynamic", "float16", "int8")
#: Dense activations TF-MOT 0.8's quantization-aware training knows (QuantizeAwareActivation).
QAT_ACTIVATIONS = ("linear", "relu", "silu", "gelu", "softmax", "sigmoid", "tanh")


def _check_float(model) -> None:
    quantized = [layer.name for layer in model.layers
                 if getattr(layer, "quantization_mode", None) is not None]
    if quantized:
        raise ValueError(
            f"Layers {quantized} were quantized with Keras 3's model.quantize(), whose int8 "
            "matmuls the TFLite converter rejects. Argument `model` must be the float model: "
            "to_tflite(float_model, mode='int8', representative_data=x) quantizes it for TFLite.")


def representative_batches(x, n: int = 200):
    """A TFLite ``representative_dataset``: up to ``n`` single examples of ``x``."""
    x = np.asarray(x, "float32")
    if x.ndim < 2 or len(x) == 0:
        raise ValueError("Argument `representative_data` must be a non-empty batch of inputs "
                         f"(n_examples, ...). Received: shape {x.shape}")
    rows = np.random.default_rng(0).permutation(len(x))[:n]

    def generate():
        for row in rows:
            yield [x[row:row + 1]]
    return generate


def _converter(model, tmp: str):
    import tensorflow as tf

    if not isinstance(model, keras.Model):  # a tf_keras model (quantization-aware training)
        return tf.lite.TFLiteConverter.from_keras_model(model)
    # Keras 3: through its own SavedModel export, quietly (from_keras_model does the same but
    # prints the whole signature on every call).
    model.export(tmp, format="tf_saved_model", verbose=False)
    return tf.lite.TFLiteConverter.from_saved_model(tmp)


def to_tflite(model, mode: str = "int8", representative_data=None, *, int8_io: bool = False,
              n_representative: int = 200) -> bytes:
    """Convert a float Keras 3 (or tf_keras) model to a TFLite flatbuffer.

    Args:
        model: the float model (not one quantized with ``model.quantize``).
        mode: ``"float32"``, ``"dynamic"``, ``"float16"`` or ``"int8"``.
        representative_data: inputs (e.g. training features) that calibrate the int8
            activation ranges; required for ``mode="int8"``.
        int8_io: for ``"int8"``, int8 inputs and outputs too (integer-only accelerators);
            :class:`LiteRTModel` quantizes and dequantizes them for you.
        n_representative: examples used for calibration.

    Returns:
        The ``.tflite`` content.
    """
    check_choice("mode", mode, MODES)
    if mode == "int8" and representative_data is None:
        raise ValueError("Argument `representative_data` is required for mode='int8' (it "
                         "calibrates the activation ranges): pass training inputs. "
                         "Received: representative_data=None")
    if int8_io and mode != "int8":
        raise ValueError(f"Argument `int8_io=True` needs mode='int8'. Received: mode={mode!r}")
    _check_float(model)
    with tempfile.TemporaryDirectory(prefix="dnnguide-tflite-") as tmp:
        converter = _converter(model, tmp)
        _configure(converter, mode, representative_data, int8_io, n_representative)
        return converter.convert()


def _configure(converter, mode, representative_data, int8_io, n_representative) -> None:
    import tensorflow as tf

    if mode != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if mode == "int8":
        converter.representative_dataset = representative_batches(representative_data,
                                                                   n_representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8


def keras_quantize(model: keras.Model, mode: str = "int8") -> keras.Model:
    """A copy of ``model`` with Keras 3's own quantized Dense layers (``model.quantize(mode)``).

    For faster, smaller inference *in Keras*. The result does not convert to TFLite (the
    converter rejects its int8 matmuls): use :func:`to_tflite` on the float model for that.
    """
    from dnnguide.compress.bridge import copy_attributes
    from dnnguide.layers import copy_weights

    check_choice("mode", mode, ("int8", "int4", "float8"))
    clone = keras.models.clone_model(model)
    copy_weights(model, clone)
    clone.quantize(mode)
    copy_attributes(model, clone)
    return clone


def quantization_aware_training(model: keras.Model, data, *, epochs: int = 1,
                                batch_size: int = 32, learning_rate: float = 1e-4,
                                int8_io: bool = False, verbose: int = 0, seed: int = 0) -> bytes:
    """Fine-tune ``model`` with fake int8 quantization (TF-MOT) and return its int8 TFLite model.

    Only the Dense layers are annotated (``quantize_annotate_layer``): the input
    Normalization and the regression TargetScale stay float. ``model`` is not modified. A
    calibrated model is fine-tuned and exported without its Calibration layer: the int8 model
    returns the network's own probabilities (the temperature changes no predicted class).
    """
    check_range("epochs", epochs, 1, integer=True)
    unsupported = {layer.name: keras.activations.serialize(layer.activation)
                   for layer in dense_layers(model)
                   if keras.activations.serialize(layer.activation) not in QAT_ACTIVATIONS}
    if unsupported:
        raise ValueError(
            f"Quantization-aware training (TF-MOT) supports Dense activations {QAT_ACTIVATIONS}. "
            f"Received: model with {unsupported}. Use post-training int8 (to_tflite(model, "
            "'int8', ...)) or a ReLU network such as the low_latency preset.")
    data = resolve_data(data, model, seed)
    task = model_task(model, data)
    legacy = to_tf_keras(split_calibration(model)[0])
    tfmot = import_tfmot()
    tfk = import_tf_keras()
    keras.utils.set_random_seed(seed)
    quant = tfmot.quantization.keras
    dense_names = {layer.name for layer in dense_layers(model)}

    def annotate(layer):
        return quant.quantize_annotate_layer(layer) if layer.name in dense_names else layer

    annotated = tfk.models.clone_model(legacy, clone_function=annotate)
    with quant.quantize_scope():
        aware = quant.quantize_apply(annotated)
    aware.compile(optimizer=tfk.optimizers.Adam(learning_rate), loss=training_loss(task, data))
    aware.fit(data.x_train, data.y_train, epochs=epochs, batch_size=batch_size, verbose=verbose)
    return to_tflite(aware, "int8", representative_data=data.x_train, int8_io=int8_io)


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise ImportError(f"Running TFLite models needs LiteRT (ai-edge-litert): {EXTRA_HINT}"
                          ) from exc
    return Interpreter


class LiteRTModel:
    """A TFLite model in the LiteRT interpreter, with a Keras-like ``predict``.

    Args:
        model: the ``.tflite`` content (bytes) or a path to it.
        num_threads: interpreter threads (None: LiteRT's default).

    Example:
        >>> runner = LiteRTModel("runs/x/model_int8.tflite")  # doctest: +SKIP
        >>> runner.predict(x_test[:1])  # doctest: +SKIP
    """

    def __init__(self, model, num_threads: int | None = None):
        content = Path(model).read_bytes() if isinstance(model, (str, Path)) else bytes(model)
        self.content = content
        self.interpreter = _interpreter_class()(model_content=content, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._batch = int(self._input["shape"][0])

    @property
    def input_dtype(self):
        return self._input["dtype"]

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            shape = [batch, *self._input["shape"][1:]]
            self.interpreter.resize_tensor_input(self._input["index"], shape)
            self.interpreter.allocate_tensors()
            self._input = self.interpreter.get_input_details()[0]
            self._output = self.interpreter.get_output_details()[0]
            self._batch = batch

    def _run(self, x: np.ndarray) -> np.ndarray:
        self._resize(len(x))
        dtype = self._input["dtype"]
        if dtype in (np.int8, np.uint8):  # int8 I/O: quantize with the input's scale/zero point
            scale, zero = self._input["quantization"]
            x = np.clip(np.round(x / scale + zero), np.iinfo(dtype).min, np.iinfo(dtype).max)
        self.interpreter.set_tensor(self._input["index"], x.astype(dtype))
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self._output["index"])
        if self._output["dtype"] in (np.int8, np.uint8):
            scale, zero = self._output["quantization"]
            out = (out.astype("float32") - zero) * scale
        return np.array(out, "float32")

    def predict(self, x, batch_size: int = 256) -> np.ndarray:
        """Predictions for ``x`` (float outputs whatever the model's I/O type), in batches."""
        check_range("batch_size", batch_size, 1, integer=True)
        x = np.asarray(x, "float32")
        return np.concatenate([self._run(x[i:i + batch_size])
                               for i in range(0, len(x), batch_size)])
