"""Start-up: TensorFlow's chatter stays off stderr; dnnguide's Keras classes load after `import dnnguide`."""

from __future__ import annotations

import os
import subprocess
import sys

import keras

from dnnguide.layers import MCDropout


def _fresh(code: str, *args: str):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=180, env=env)


def test_tensorflow_startup_lines_are_filtered_and_others_kept():
    from dnnguide._startup import startup_noise

    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796041976.581112    6595 port.cc:153] oneDNN custom operations are on.",
        "I0000 00:00:1796041976.585504    6595 cudart_stub.cc:31] Could not find cuda drivers "
        "on your machine, GPU will not be used.",
        "E0000 00:00:1796042061.640742   11815 cuda_platform.cc:52] failed call to cuInit: "
        "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild "
        "TensorFlow with the appropriate compiler flags.",
    ]
    assert all(startup_noise(line) for line in noise)
    kept = ["Traceback (most recent call last):", "ImportError: libcudart.so.12: cannot open",
            "E0000 00:00:1.0 1 op_kernel.cc:1] OP_REQUIRES failed: out of memory"]
    assert not any(startup_noise(line) for line in kept)


def test_keras_import_through_dnnguide_keeps_stderr_clean():
    # A fresh process: the first Keras import (and CUDA probe) happens inside the filter.
    probe = "import dnnguide; dnnguide.build_model('default', (4,), 3, depth=1); print('built')"
    done = _fresh(probe)
    assert done.returncode == 0 and done.stdout.strip() == "built", done.stderr
    assert done.stderr == ""


def test_saved_model_with_dnnguide_layers_loads_after_import_dnnguide(tmp_path):
    path = tmp_path / "mc.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), MCDropout(0.5)]).save(path)
    # `import dnnguide` alone no longer loads Keras; the first `import keras` after it
    # registers dnnguide's classes (and is quiet).
    load = ("import sys, dnnguide; assert 'dnnguide.layers' not in sys.modules; import keras;"
            "m = keras.saving.load_model(sys.argv[1]); print(type(m.layers[-1]).__name__)")
    done = _fresh(load, str(path))
    assert done.returncode == 0 and done.stdout.split() == ["MCDropout"], done.stderr
    assert done.stderr == ""
    # The other order (Keras first) registers at `import dnnguide`.
    done = _fresh("import sys, keras, dnnguide; m = keras.saving.load_model(sys.argv[1]);"
                  "print(type(m.layers[-1]).__name__)", str(path))
    assert done.stdout.split() == ["MCDropout"], done.stderr


def test_keras_first_imported_from_inside_a_registering_module():
    # schedules imports Keras at its top; the registrations must not trip over that cycle.
    done = _fresh("import dnnguide.schedules, dnnguide.optimizers, sys;"
                  "from dnnguide.layers import MCDropout;"
                  "print(all(m in sys.modules for m in ('dnnguide.targets', 'dnnguide.layers')))")
    assert done.returncode == 0 and done.stdout.split() == ["True"], done.stderr
    assert done.stderr == ""
