"""The optimizer/schedule/LR-finder recipes run end to end in --quick mode and write their results."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def load_recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", RECIPES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def only_run(root: Path) -> Path:
    (run,) = root.iterdir()
    return run


def test_compare_optimizers_quick(tmp_path, capsys):
    assert load_recipe("compare_optimizers").main(["--quick", "--run-dir", str(tmp_path)]) == 0
    run = only_run(tmp_path)
    table = pd.read_csv(run / "results.csv")
    assert sorted(table["optimizer"]) == ["adam", "nesterov", "sgd"]
    assert table["best_val_accuracy"].between(0, 1).all()
    # On digits even two epochs separate them: Adam beats plain SGD at their default LRs.
    acc = table.set_index("optimizer")["best_val_accuracy"]
    assert acc["adam"] > acc["sgd"]
    curves = pd.read_csv(run / "curves.csv")
    assert len(curves) == 3 * 2  # one row per optimizer and epoch
    assert (run / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "epochs to reach val accuracy" in capsys.readouterr().out


@pytest.mark.slow
def test_compare_schedules_quick(tmp_path):
    assert load_recipe("compare_schedules").main(["--quick", "--run-dir", str(tmp_path)]) == 0
    run = only_run(tmp_path)
    table = pd.read_csv(run / "results.csv")
    assert sorted(table["schedule"]) == sorted(
        ["constant", "power", "exponential", "piecewise", "performance", "onecycle"])
    assert {"best_val_accuracy", "epochs_to_target"} <= set(table.columns)
    curves = pd.read_csv(run / "curves.csv")
    lr = curves.groupby("schedule")["learning_rate"].last()
    # Each schedule really moved the LR the way it says (same start, different ends).
    assert lr["exponential"] < lr["constant"] and lr["power"] < lr["constant"]
    assert (run / "schedules.png").exists() and (run / "lr_find" / "lr_find.json").exists()


def test_lr_find_recipe_quick(tmp_path):
    assert load_recipe("lr_find").main(["--quick", "--run-dir", str(tmp_path)]) == 0
    run = only_run(tmp_path)
    info = json.loads((run / "lr_find.json").read_text())
    assert 1e-7 <= info["suggestion"] <= 10 and info["steps"] <= 40
    assert (run / "plots" / "lr_find.png").exists()


def test_onecycle_recipe_uses_the_finder_suggestion(tmp_path):
    assert load_recipe("onecycle").main(["--quick", "--run-dir", str(tmp_path)]) == 0
    run = only_run(tmp_path)
    found = json.loads((run / "lr_find" / "lr_find.json").read_text())
    suggestion = found["suggestion"]
    table = pd.read_csv(run / "results.csv").set_index("schedule")
    onecycle_run = run / "runs" / table.loc["onecycle", "run"]
    config = json.loads((onecycle_run / "config.json").read_text())
    # The minimum rule's suggestion lifted towards 5x the constant LR (5x alone when the sweep
    # never diverged): the peak fit() would use.
    lr = config["optimizer"]["learning_rate"]
    peak = max(suggestion, min(5 * lr, 10 * suggestion / 3)) if found["diverged"] else 5 * lr
    assert table.loc["onecycle", "max_lr"] == pytest.approx(peak)
    assert config["schedule"]["name"] == "onecycle"
    assert config["schedule"]["max_lr"] == pytest.approx(peak)
    # The LR the optimizer had after epoch 1 lies inside the cycle: above its start, at most max_lr.
    history = pd.read_csv(onecycle_run / "history.csv")
    assert peak / 25 < history["learning_rate"].iloc[0] <= peak * 1.0001
    assert (run / "schedule.png").exists()
