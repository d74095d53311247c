"""The ``dnnguide`` command: train with overrides, recommend, presets, runs, --help, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dnnguide.cli import main, parse_overrides


def test_parse_overrides_types():
    assert parse_overrides(["--depth", "20", "--dropout-rate=0.1", "--activation", "selu",
                            "--width", "64,32", "--standardize-inputs", "false",
                            "--learning-rate", "3e-3"]) == {
        "depth": 20, "dropout_rate": 0.1, "activation": "selu", "width": (64, 32),
        "standardize_inputs": False, "learning_rate": 3e-3}
    with pytest.raises(SystemExit, match="needs a value"):
        parse_overrides(["--depth"])


def test_train_writes_a_run_with_overrides(tmp_path, capsys):
    code = main(["train", "--preset", "default", "--data", "digits", "--epochs", "2",
                 "--run-dir", str(tmp_path), "--depth", "3", "--width", "32",
                 "--activation", "relu", "--verbose", "0", "--seed", "5"])
    assert code == 0
    out = capsys.readouterr().out
    assert "test_accuracy" in out and "run directory:" in out
    (run,) = tmp_path.iterdir()
    config = json.loads((run / "config.json").read_text())
    assert (config["depth"], config["width"], config["activation"]) == (3, 32, "relu")
    assert json.loads((run / "run.json").read_text())["seed"] == 5
    assert main(["runs", "--root", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert run.name in table and "relu" in table


def test_bad_override_is_refused_before_training(tmp_path, capsys):
    code = main(["train", "--data", "digits", "--run-dir", str(tmp_path), "--activaton", "relu"])
    assert code == 2
    err = capsys.readouterr().err
    assert "override='activaton'" in err and "activation" in err
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_forbidden_combination_is_refused(tmp_path, capsys):
    code = main(["train", "--preset", "self_normalizing", "--data", "digits",
                 "--run-dir", str(tmp_path), "--normalization", "batch_norm_after"])
    assert code == 2 and "batch norm" in capsys.readouterr().err


def test_recommend_prints_reasons(capsys):
    assert main(["recommend", "--depth", "deep", "--risk-sensitive"]) == 0
    out = capsys.readouterr().out
    assert "swish" in out and "MC dropout" in out and "He initialization" in out
    assert main(["recommend", "--depth", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["depth"] == 3


def test_presets_lists_the_registry(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("default", "self_normalizing", "sparse", "low_latency", "risk_sensitive"):
        assert name in out
    assert main(["presets", "--show", "self_normalizing"]) == 0
    assert "lecun_normal" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["train", "recommend", "presets", "runs"])
def test_help_of_each_command(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: dnnguide {command}")
    if command == "train":
        assert "--learning-rate" in out and "--preset" in out


def test_console_script_runs():
    done = subprocess.run([sys.executable, "-m", "dnnguide.cli", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "train" in done.stdout and "recommend" in done.stdout


# Issue 15 point 3: the light commands never import TensorFlow; --version exists.
_LIGHT_PROBE = """
import sys
from dnnguide.cli import main
for argv in (["--help"], ["presets"], ["presets", "--show", "default"],
             ["recommend", "--depth", "deep"], ["runs", "--root", sys.argv[1]], ["--version"]):
    try:
        main(argv)
    except SystemExit as done:
        assert done.code == 0, (argv, done.code)
heavy = sorted(m for m in ("tensorflow", "keras", "keras_tuner") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
"""


def test_light_commands_do_not_import_tensorflow(tmp_path):
    done = subprocess.run([sys.executable, "-c", _LIGHT_PROBE, str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "HEAVY="
    assert "risk_sensitive" in done.stdout and "swish" in done.stdout
    assert "dnnguide 0.1.0" in done.stdout


def test_import_dnnguide_does_not_import_tensorflow():
    probe = ("import sys, dnnguide; dnnguide.recommend(); dnnguide.runs.load('.');"
             "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.split() == ["False", "False"], done.stderr


def test_version_flag(capsys):
    import dnnguide

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"dnnguide {dnnguide.__version__}"

# --------------------------------------------------------------------------- strict input
@pytest.mark.parametrize("text, value", [("no", False), ("NO", False), ("0", False),
                                         ("false", False), ("yes", True), ("1", True),
                                         ("True", True)])
def test_booleans_are_parsed_strictly(text, value):
    from dnnguide.cli import coerce_booleans

    parsed = coerce_booleans(parse_overrides(["--standardize-inputs", text,
                                              "--early-stopping.enabled", text, "--depth", "1"]))
    assert parsed == {"standardize_inputs": value, "early_stopping.enabled": value, "depth": 1}


# Each is refused with rc 2 and a message naming the value, before anything is written.
REFUSED = [
    (["--epochs", "0"], "Argument `epochs` must be in [1, inf]. Received: epochs=0"),
    (["--batch-size", "0"], "Argument `batch_size` must be in [1, inf]. Received: batch_size=0"),
    (["--standardize-inputs", "maybe"], "Argument `standardize_inputs` must be one of true/false"),
    (["--enabled", "nope"], "Argument `enabled` must be one of true/false"),
    (["--learning-rate", "1e999"], "Argument `learning_rate` must be a finite number"),
    (["--dropout-rate", "nan"], "Argument `dropout_rate` must be a number. Received: "
                                "dropout_rate='nan'"),
    (["--depth", "10000"], "Argument `depth` must be at most 1000 hidden layers"),
    (["--width", "100000"], "Argument `width` must be at most 16384 units"),
    (["--task", "regression"], "Argument `task` must be 'classification' (or omitted) for the "
                               "built-in dataset 'digits'"),
    (["--early-stopping.monitor", "val_acc"], "Argument `monitor` must be one of ['loss', "
                                              "'accuracy', 'val_loss', 'val_accuracy']. Received: "
                                              "monitor='val_acc'. Did you mean 'val_accuracy'?"),
    (["--schedule", "onecycle", "--schedule.pct-start", "0.6"],
     "Argument `pct_start` must be in (0.0, 0.5]"),
]


@pytest.mark.parametrize("flags, message", REFUSED, ids=[" ".join(f) for f, _ in REFUSED])
def test_bad_values_are_refused_before_anything_is_written(flags, message, tmp_path, capsys):
    root = tmp_path / "runs"
    code = main(["train", "--data", "digits", "--run-dir", str(root), "--verbose", "0", *flags])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert not root.exists()


@pytest.mark.parametrize("callback", ["lr_scheduler", "plateau"])
def test_learning_rate_callbacks_that_fight_the_schedule_are_refused_before_the_run(callback,
                                                                                   tmp_path):
    import keras

    import dnnguide

    extra = {"lr_scheduler": keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr),
             "plateau": keras.callbacks.ReduceLROnPlateau()}[callback]
    schedule = "exponential" if callback == "lr_scheduler" else "onecycle"
    with pytest.raises(dnnguide.ConfigError, match=type(extra).__name__):
        dnnguide.fit("default", "digits", run_dir=tmp_path / "runs", epochs=1, depth=1, width=8,
                     schedule=schedule, callbacks=[extra], verbose=0)
    assert not (tmp_path / "runs").exists()


def test_run_dir_into_a_run_or_a_file_is_refused(tmp_path, capsys):
    run = tmp_path / "a-run"
    run.mkdir()
    for name in ("config.json", "run.json"):
        (run / name).write_text("{}")
    before = sorted(p.name for p in run.rglob("*"))
    assert main(["train", "--data", "digits", "--run-dir", str(run), "--verbose", "0"]) == 2
    assert "is itself a run directory" in capsys.readouterr().err
    assert sorted(p.name for p in run.rglob("*")) == before
    assert main(["train", "--data", "digits", "--run-dir", str(run / "config.json")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_resume_with_other_settings_is_refused_and_epochs_continue_a_finished_run(tmp_path,
                                                                                 capsys):
    common = ["--data", "digits", "--depth", "1", "--width", "8", "--verbose", "0"]
    assert main(["train", *common, "--epochs", "2", "--run-dir", str(tmp_path)]) == 0
    (run,) = tmp_path.iterdir()
    assert main(["train", "--resume", str(run), "--depth", "3"]) == 2
    assert "cannot honour depth=3" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--verbose", "0"]) == 2
    assert "already complete (2 epochs)" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--epochs", "3", "--verbose", "0"]) == 0
    assert json.loads((run / "metrics.json").read_text())["epochs_trained"] == 3


def test_a_diverged_run_exits_nonzero(tmp_path, capsys):
    code = main(["train", "--data", "digits", "--epochs", "3", "--depth", "1", "--width", "8",
                 "--optimizer", "sgd", "--learning-rate", "1e6", "--standardize-inputs", "no",
                 "--run-dir", str(tmp_path), "--verbose", "0"])
    assert code == 1 and "diverged" in capsys.readouterr().err
    (run,) = tmp_path.iterdir()
    assert json.loads((run / "run.json").read_text())["status"] == "diverged"
