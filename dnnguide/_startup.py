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

import contextlib
import importlib
import importlib.abc
import importlib.util
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


@contextlib.contextmanager
def _filtered_stderr():
    """Capture descriptor 2; afterwards write back what is not start-up chatter (all on error)."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException:
            _restore(saved, capture, keep=lambda line: True)
            raise
        _restore(saved, capture, keep=lambda line: not startup_noise(line))


def _probe_devices(keras_module) -> None:
    if keras_module.backend.backend() == "tensorflow":
        # CUDA is probed (and its failure logged) on the first device query, not at import;
        # asking now keeps that line in the capture. Logical devices are not initialized by
        # this, so distribution strategies can still be created afterwards.
        import tensorflow as tf

        tf.config.list_physical_devices()


def import_keras():
    """``import keras`` (and TensorFlow) with the start-up chatter filtered out of stderr."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    with _filtered_stderr():
        module = importlib.import_module("keras")
        _probe_devices(module)
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


def register_keras_objects(*, strict: bool = True) -> None:
    """Import every module that registers Keras classes, so any ``model.keras`` of a run loads.

    With ``strict=False`` (right after Keras itself was imported, possibly from inside one of
    these modules) a module that cannot be imported yet is skipped: one still being imported
    registers its classes when it finishes, and the others on their first import.
    """
    import_keras()
    for name in KERAS_OBJECT_MODULES:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except ImportError:
            if strict:
                raise


class _QuietKerasLoader(importlib.abc.Loader):
    """Keras' own loader, run with stderr filtered and followed by dnnguide's registrations."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):  # resource readers and the like: Keras' loader answers
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        with _filtered_stderr():
            self._loader.exec_module(module)
            _probe_devices(module)
        register_keras_objects(strict=False)


class _KerasImportHook(importlib.abc.MetaPathFinder):
    """Finds ``keras`` the usual way and wraps its loader in :class:`_QuietKerasLoader`.

    Why a finder: Keras is imported by many dnnguide modules (and by users after ``import
    dnnguide``); this is the one place that sees the first import whichever it is, so that
    TensorFlow's start-up lines are filtered and ``keras.saving.load_model`` finds dnnguide's
    layers, schedules and losses after a plain ``import dnnguide``. It removes itself after use.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _QuietKerasLoader(spec.loader)
        return spec


def install_keras_hook() -> None:
    """Filter and register at the first ``import keras``; register now if Keras is loaded."""
    if "keras" in sys.modules:
        register_keras_objects(strict=False)
    elif not any(isinstance(f, _KerasImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _KerasImportHook())
