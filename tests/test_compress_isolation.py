"""TF-MOT stays out of the rest of dnnguide, and the bridge leaves Keras 3 working.

Importing TF-MOT sets ``TF_USE_LEGACY_KERAS=1`` and resolves ``tf.keras`` on the spot
(DESIGN.md), so this runs in a fresh interpreter where nothing imported it yet.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np

    def tfmot_loaded():
        return any(m.startswith("tensorflow_model_optimization") for m in sys.modules)

    import dnnguide
    assert not tfmot_loaded(), "import dnnguide"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0)
    small = dict(depth=1, width=8, epochs=1, verbose=0)
    result = dnnguide.fit("default", (x, y), run_dir=sys.argv[1], **small)
    assert not tfmot_loaded(), "fit"
    risky = dnnguide.fit("risk_sensitive", (x, y), run_dir=None, **small)
    dnnguide.mc_predict(risky.model, x[:8], n_samples=3, verbose=0)
    assert not tfmot_loaded(), "MC dropout"
    space = dnnguide.SearchSpace.default().narrow(preset="default", depth=1, width=8,
                                                   dropout_rate=0.0)
    dnnguide.tune((x, y), space=space, algorithm="random", max_trials=1, epochs=1,
                  directory=sys.argv[2], verbose=0)
    assert not tfmot_loaded(), "tuning"
    import dnnguide.compress
    assert not tfmot_loaded(), "import dnnguide.compress"

    from dnnguide.compress import prune
    prune(result.model, (x, y), target_sparsity=0.5, epochs=1)
    assert tfmot_loaded()
    assert os.environ.get("TF_USE_LEGACY_KERAS") is None, os.environ.get("TF_USE_LEGACY_KERAS")
    import keras, tensorflow as tf
    assert tf.keras.version().startswith("3."), tf.keras.version()
    model = dnnguide.build_model("default", input_shape=(6,), n_outputs=3, depth=1, width=8)
    assert isinstance(model, keras.Model) and type(model).__module__.startswith("keras.")
    model.fit(x, y, epochs=1, verbose=0)
    assert np.isfinite(model.predict(x, verbose=0)).all()
    print("ISOLATED")
""")


def test_tfmot_is_imported_only_by_compress_and_keras3_survives_it(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "runs"),
                           str(tmp_path / "tuning")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ISOLATED" in done.stdout
