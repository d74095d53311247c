"""The public API is what the README documents, and every name in it resolves."""

from __future__ import annotations

import re
from pathlib import Path

import dnnguide

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_all_names_resolve_and_are_documented():
    documented = set(re.findall(r"`(\w+)`", README.split("Public names", 1)[1].split("\n\n")[0]))
    assert set(dnnguide.__all__) == documented
    for name in dnnguide.__all__:
        assert getattr(dnnguide, name) is not None


def test_readme_starts_with_install_and_test_commands():
    block = README.split("```bash", 1)[1].split("```", 1)[0].strip().splitlines()
    assert block[0].startswith('pip install -e ".[dev]" && dnnguide train')
    assert block[1] == "pytest"
    assert "pytest" in (Path(__file__).parents[1] / ".ci" / "run").read_text().splitlines()


def test_compression_stays_out_of_the_import():
    # Importing TFMOT flips TF_USE_LEGACY_KERAS for the whole process (DESIGN.md). A fresh
    # process: in this one the compression tests may already have imported it.
    import subprocess
    import sys

    probe = ("import sys, dnnguide; dnnguide.build_model('default', input_shape=(4,), "
             "n_outputs=2); print('tensorflow_model_optimization' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=300)
    assert done.stdout.split()[-1:] == ["False"], done.stderr[-2000:]
