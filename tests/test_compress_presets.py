"""The sparse and low_latency presets deliver their artefacts; ``dnnguide compress`` never overwrites."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import dnnguide  # noqa: E402
from dnnguide.compress import LiteRTModel, sparsity  # noqa: E402
from dnnguide.compress.common import score  # noqa: E402


def test_low_latency_run_has_folded_model_and_int8_tflite_with_metrics(tmp_path):
    result = dnnguide.fit("low_latency", "digits", run_dir=tmp_path, epochs=3, verbose=0,
                          width=64)
    run, data = result.run_dir, result.data
    metrics = json.loads((run / "metrics.json").read_text())
    folded = keras.saving.load_model(run / "model_folded.keras")
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    gap = np.abs(folded.predict(data.x_test, verbose=0) - result.model.predict(data.x_test,
                                                                               verbose=0))
    assert gap.max() < 1e-4
    assert abs(metrics["folded_test_accuracy"] - metrics["test_accuracy"]) <= 1 / len(data.y_test)
    runner = LiteRTModel(run / "model_int8.tflite")
    accuracy = score("classification", data.y_test, runner.predict(data.x_test))["accuracy"]
    assert metrics["int8_test_accuracy"] == pytest.approx(accuracy)
    assert abs(metrics["int8_test_accuracy"] - metrics["test_accuracy"]) <= 0.02
    assert metrics["int8_tflite_bytes"] == (run / "model_int8.tflite").stat().st_size


def test_default_run_writes_no_compression_artefacts(tmp_path):
    result = dnnguide.fit("default", "digits", run_dir=tmp_path, epochs=1, verbose=0, depth=1,
                          width=8)
    assert not [p.name for p in result.run_dir.iterdir() if p.name.startswith("model_")]
    assert not any(k.startswith(("pruned_", "folded_", "int8_")) for k in result.metrics)


def test_missing_compress_extra_is_refused_before_training(tmp_path, monkeypatch, blobs):
    import dnnguide.compress.finalize as finalize

    monkeypatch.setattr(finalize, "find_spec",
                        lambda name: None if name == "ai_edge_litert" else object())
    with pytest.raises(ImportError, match=r"\['ai-edge-litert'\]: pip install \"dnnguide\[compress\]\""):
        dnnguide.fit("low_latency", blobs, run_dir=tmp_path / "runs", epochs=1, verbose=0)
    assert not (tmp_path / "runs").exists()  # refused before a run directory or any training


def _cli(*args, timeout=600):
    done = subprocess.run([sys.executable, "-m", "dnnguide.cli", *args], capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_sparse_preset_from_the_cli_then_compress_never_overwrites(tmp_path):
    _cli("train", "--preset", "sparse", "--data", "digits", "--epochs", "3", "--run-dir",
         str(tmp_path), "--verbose", "0")
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    metrics = json.loads((run / "metrics.json").read_text())
    pruned = keras.saving.load_model(run / "model_pruned.keras")
    assert abs(sparsity(pruned)["total"] - 0.8) <= 0.01
    assert abs(metrics["pruned_sparsity"] - 0.8) <= 0.01
    assert metrics["pruned_test_accuracy"] > 0.8

    out = _cli("compress", str(run), "--quantize", "int8", "--repeats", "2")
    assert "tflite int8" in out
    (first,) = (run / "compressed").iterdir()
    snapshot = {p.name: p.read_bytes() for p in first.iterdir() if p.is_file()}
    assert {"model_int8.tflite", "model_float32.tflite", "report.csv"} <= set(snapshot)
    _cli("compress", str(run), "--quantize", "int8", "--repeats", "2")
    folders = sorted((run / "compressed").iterdir())
    assert len(folders) == 2
    assert {p.name: p.read_bytes() for p in first.iterdir() if p.is_file()} == snapshot
    report = __import__("pandas").read_csv(first / "report.csv").set_index("variant")
    assert abs(report.loc["tflite int8", "test_accuracy"]
               - report.loc["float", "test_accuracy"]) <= 0.02
    assert (first / "plots" / "size_vs_accuracy.png").stat().st_size > 1000


def test_compress_recipe_quick(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "recipes" / "compress.py"
    spec = importlib.util.spec_from_file_location("recipe_compress", path)
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    report = recipe.main(["--quick", "--run-dir", str(tmp_path)])
    (run,) = tmp_path.iterdir()
    saved = __import__("pandas").read_csv(run / "compression.csv")
    assert list(saved["variant"]) == list(report["variant"]) == [
        "float", "pruned", "pruned+folded", "tflite float32", "tflite pruned+dynamic",
        "tflite pruned+float16", "tflite pruned+int8"]
    rows = saved.set_index("variant")
    assert abs(rows.loc["pruned", "sparsity"] - 0.8) <= 0.01
    assert abs(rows.loc["pruned+folded", "test_accuracy"]
               - rows.loc["pruned", "test_accuracy"]) <= 1 / 360
    assert rows.loc["tflite pruned+int8", "gzip_ratio"] > rows.loc["tflite float32", "gzip_ratio"]
    assert (run / "plots" / "size_vs_accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (run / "compressed").iterdir()) == [
        "model_float32.tflite", "model_pruned.keras", "model_pruned_dynamic.tflite",
        "model_pruned_float16.tflite", "model_pruned_folded.keras", "model_pruned_int8.tflite"]
