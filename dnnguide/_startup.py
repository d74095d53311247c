"""Keep TensorFlow's start-up noise off the user's terminal, and import it only when needed.

TensorFlow 2.21 writes its start-up lines (``oneDNN custom operations are on``, ``Could not
find cuda drivers``, CPU flags) through C++ absl logging *before* ``TF_CPP_MIN_LOG_LEVEL`` is
read, straight to file descriptor 2: no Python ``logging`` or ``warnings`` setting reaches
them. So the first ``import keras`` runs with descriptor 2 pointed at a temporary file, and
every line that is not such start-up chatter is written back to stderr afterwards (nothing
else is lost; an import error shows everything).

A user who sets ``TF_CPP_MIN_LOG_LEVEL=0`` sees all of it, as TensorFlow intends.

Example:
    >>> from dnnguide._startup import import_keras
    >>> keras = import_keras()  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import tempfile

# Lines TensorFlow prints while loading on a machine that works; anything else is shown.
_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} .*"
    r"|E\d{4} .*(cuda|cuInit|cuDNN|cuFFT|cuBLAS|TensorRT|GPU).*"
    r"|To enable the following instructions: .*"
    r"|\S*cpu_feature_guard.*)$")


def startup_noise(line: str) -> bool:
    """Whether ``line`` is TensorFlow start-up chatter (hidden), not a message for the user."""
    return bool(_NOISE.match(line.rstrip("\n")))


def import_keras():
    """``import keras`` (and TensorFlow) with the start-up chatter filtered out of stderr."""
    if "keras" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        return importlib.import_module("keras")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            module = importlib.import_module("keras")
            if module.backend.backend() == "tensorflow":
                # CUDA is probed (and its failure logged) on the first device query, not at
                # import; asking now keeps that line in the capture. Logical devices are not
                # initialized by this, so strategies can still be created afterwards.
                import tensorflow as tf

                tf.config.list_physical_devices()
        except BaseException:
            _restore(saved, capture, keep=lambda line: True)
            raise
        _restore(saved, capture, keep=lambda line: not startup_noise(line))
    return module


def _restore(saved: int, capture, keep) -> None:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    capture.seek(0)
    text = capture.read().decode("utf-8", "replace")
    shown = "".join(line for line in text.splitlines(keepends=True) if keep(line))
    if shown:
        sys.stderr.write(shown)
        sys.stderr.flush()


# Modules whose classes a saved dnnguide model may hold (registered under the package name
# "dnnguide"); Keras finds them only once they are imported.
KERAS_OBJECT_MODULES = ("dnnguide.layers", "dnnguide.optimizers", "dnnguide.schedules",
                        "dnnguide.targets")


def register_keras_objects() -> None:
    """Import every module that registers Keras classes, so any ``model.keras`` of a run loads."""
    import_keras()
    for name in KERAS_OBJECT_MODULES:
        importlib.import_module(name)
