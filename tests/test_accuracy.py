"""Real training to the accuracy the guidelines promise (slow: minutes on 2 cores)."""

from __future__ import annotations

import json

import pytest

import dnnguide
from dnnguide.cli import main

pytestmark = pytest.mark.slow


def test_readme_main_job_reaches_0955_on_digits(tmp_path, capsys):
    # Exactly the README's first command, preset defaults (100 epochs max, early stopping).
    # Its seed 0 is the lowest of seeds 0-19: 347 of 360 test rows (0.964), its LR sweep keeping
    # the table's 1e-3; the next lowest is 0.969 and the mean 0.979 (the default rows of
    # bench/results/uncertainty_digits_breast_cancer.csv). Before early stopping counted from
    # epoch 10 on small data it restored epoch 2 and scored 0.950.
    assert main(["train", "--preset", "default", "--data", "digits", "--run-dir", str(tmp_path),
                 "--verbose", "0"]) == 0
    (run,) = tmp_path.iterdir()
    assert json.loads((run / "metrics.json").read_text())["test_accuracy"] >= 0.955


def test_self_normalizing_20_layers_reaches_090_on_digits():
    result = dnnguide.fit("self_normalizing", "digits", run_dir=None, depth=20, verbose=0)
    hidden = [layer for layer in result.model.layers if layer.name.startswith("hidden_")]
    assert len(hidden) == 20
    assert result.metrics["test_accuracy"] >= 0.90
