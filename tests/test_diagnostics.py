"""Diagnostics: vanishing / exploding gradients, dead and saturated units, SELU drift,
the callback's table and plots, ``fit(diagnose=True)``, ``dnnguide diagnose`` and the recipe."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

import dnnguide
from dnnguide.config import ConfigError
from dnnguide.diagnostics import (
    COLUMNS, DIAGNOSTICS_CSV, DiagnosticsCallback, DiagnosticsWarning, Thresholds, check_model,
    find_pathologies, gradient_ratio,
)
from dnnguide.diagnostics.callback import _eager_records
from dnnguide.diagnostics.probe import EAGER_RECORDS, _Probe

ROOT = Path(__file__).resolve().parents[1]


def _model(depth=5, lr=None, **overrides):
    if lr is not None:
        overrides.update(optimizer="sgd", learning_rate=lr)
    return dnnguide.build_model("default", (8,), 3, depth=depth, width=32, **overrides)


def _sigmoid_net(depth=20):
    return _model(depth, activation="sigmoid", kernel_initializer="glorot_uniform",
                  normalization="none", optimizer="sgd")


def test_deep_sigmoid_net_vanishes_and_the_default_preset_does_not(blobs):
    x, y = blobs
    sigmoid = check_model(_sigmoid_net(), x[:256], y[:256])
    assert sigmoid.kinds == ["vanishing"]
    assert gradient_ratio(sigmoid.frame) < 1e-6
    grads = sigmoid.frame.sort_values("index")["grad_norm"].to_numpy()
    assert np.all(np.diff(np.log(grads)) > 0)  # shrinks layer after layer toward the input
    (finding,) = sigmoid.findings
    assert "vanishing gradients" in finding.message and "He init" in finding.recommendation
    assert finding.fix == {"kernel_initializer": "he_normal", "activation": "swish",
                           "normalization": "batch_norm_after"}  # the deep-net guideline row
    default = check_model(_model(20), x[:256], y[:256])
    assert default.ok, [str(f) for f in default.findings]
    assert 1e-2 < gradient_ratio(default.frame) < 1e2
    assert len(default.frame) == 21 and list(default.frame.columns) == COLUMNS


def test_a_dead_relu_layer_is_flagged(blobs):
    x, y = blobs
    healthy = _model(4, activation="relu")
    assert "dead" not in check_model(healthy, x[:256], y[:256]).kinds
    model = _model(4, activation="relu")
    model.get_layer("hidden_2").bias.assign(np.full(32, -100.0, "float32"))
    report = check_model(model, x[:256], y[:256])
    dead = next(f for f in report.findings if f.kind == "dead")
    assert dead.layers[0] == "hidden_2" and dead.fix == {"activation": "leaky_relu"}
    assert "dead units" in dead.message and "LeakyReLU" in dead.recommendation
    by_layer = report.frame.set_index("layer")["dead_fraction"]
    assert by_layer["hidden_2"] == 1.0 and by_layer["hidden_1"] < 0.5
    assert np.isnan(by_layer["output"])  # a softmax output has no dead units


def test_an_exploding_setup_is_flagged_and_clipping_suggested(blobs):
    x, y = blobs
    assert check_model(_model(5, activation="relu", lr=0.01), x[:256], y[:256]).ok
    report = check_model(_model(5, activation="relu", lr=30.0), x[:256], y[:256])
    exploding = next(f for f in report.findings if f.kind == "exploding")
    assert exploding.fix == {"clipnorm": 1.0} and "clipnorm=1.0" in exploding.recommendation
    assert report.frame["update_ratio"].max() > 1  # one step would dwarf the weights

    model = _model(5, activation="relu", lr=30.0)
    callback = DiagnosticsCallback(x[:256], y[:256], interval=1, max_overhead=None, plots=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[callback])
    found = [w for w in caught if issubclass(w.category, DiagnosticsWarning)
             and "explode" in str(w.message)]
    assert len(found) == 1 and "clip gradients" in str(found[0].message)
    assert callback.findings[0].kind == "exploding"


def test_saturated_sigmoid_units_and_drifting_selu_are_flagged(blobs):
    x, y = blobs
    model = _model(4, activation="sigmoid", kernel_initializer="glorot_uniform",
                   normalization="none")
    for i in (1, 2, 3):
        kernel = model.get_layer(f"hidden_{i}").kernel
        kernel.assign(kernel * 100.0)  # |z| >> 4: sigmoid pinned at 0 or 1
    report = check_model(model, x[:256], y[:256])
    assert "saturated" in report.kinds
    assert report.frame.set_index("layer").loc["hidden_2", "saturated_fraction"] > 0.5

    selu = dnnguide.build_model("self_normalizing", (8,), 3, depth=6, width=32)
    assert check_model(selu, x[:256], y[:256]).ok
    drift = check_model(selu, x[:256] * 5 + 3, y[:256])  # unstandardized inputs
    finding = next(f for f in drift.findings if f.kind == "not_self_normalizing")
    assert finding.fix["standardize_inputs"] is True
    # the preset has LeCun init already: no advice to switch to it, the inputs are the cause
    assert set(drift.frame["initializer"]) == {"lecun_normal", "glorot_uniform"}  # + the head
    assert "kernel_initializer" not in finding.fix and "already have LeCun" in finding.recommendation
    # a user's SELU net with He init (dnnguide's configs refuse it) gets the init advice
    he_selu = keras.Sequential([keras.Input((8,))] + [
        keras.layers.Dense(32, "selu", kernel_initializer="he_uniform") for _ in range(6)]
        + [keras.layers.Dense(3, "softmax")])
    he_selu.compile(loss="sparse_categorical_crossentropy")
    finding = next(f for f in check_model(he_selu, x[:256] * 5 + 3, y[:256]).findings
                   if f.kind == "not_self_normalizing")
    assert finding.fix["kernel_initializer"] == "lecun_normal" and "LeCun" in finding.recommendation


def test_check_model_changes_nothing(blobs):
    x, y = blobs
    model = _model(3, normalization="batch_norm_after", dropout_rate=0.3)
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)  # optimizer state exists
    before = [np.array(v) for v in model.variables]
    opt_before = [np.array(v) for v in model.optimizer.variables]
    report = check_model(model, x[:256], y[:256])
    assert all(np.array_equal(a, np.array(v)) for a, v in zip(before, model.variables))
    assert all(np.array_equal(a, np.array(v))
               for a, v in zip(opt_before, model.optimizer.variables))
    assert report.frame["update_ratio"].notna().all()  # measured on a copy of the optimizer


def test_compiled_probe_matches_the_eager_pass(blobs):
    x, y = blobs
    probe = _Probe(_model(4, normalization="batch_norm_after"), x[:128], y[:128])
    (loss_e, norms_e, stats_e), _, _ = probe.measure(compiled=False)
    loss_c, norms_c, stats_c = probe.measure(compiled=True)[0]
    np.testing.assert_allclose(norms_c, norms_e, rtol=1e-4)
    np.testing.assert_allclose(stats_c, stats_e, rtol=1e-4, atol=1e-6)
    assert loss_c == pytest.approx(loss_e, rel=1e-5)


def test_callback_writes_its_table_and_plots(blobs, tmp_path):
    x, y = blobs
    model = _sigmoid_net(depth=12)
    kernel0 = np.array(model.get_layer("hidden_1").kernel)
    callback = DiagnosticsCallback(x[:256], y[:256], tmp_path, interval=7, max_overhead=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[callback])  # 30 steps
    vanishing = [w for w in caught if issubclass(w.category, DiagnosticsWarning)]
    assert len(vanishing) == 1 and "vanishing" in str(vanishing[0].message)  # warned once
    saved = pd.read_csv(tmp_path / DIAGNOSTICS_CSV)
    pd.testing.assert_frame_equal(saved, callback.frame, check_dtype=False)
    assert sorted(saved["step"].unique()) == [1, 8, 15, 22, 29, 30]
    assert (saved.groupby("step").size() == 13).all()
    last = saved[saved["step"] == 30].set_index("layer")
    kernel = np.array(model.get_layer("hidden_1").kernel)
    assert last.loc["hidden_1", "weight_norm"] == pytest.approx(np.linalg.norm(kernel), rel=1e-6)
    first = saved[saved["step"] == 1].set_index("layer")
    assert first.loc["hidden_1", "weight_norm"] == pytest.approx(
        np.linalg.norm(kernel0), rel=1e-3)  # SGD barely moves layer 1: its gradient vanished
    assert saved.loc[saved["step"] < 30, "update_ratio"].between(0, 1).all()
    assert [f.kind for f in find_pathologies(saved)] == ["vanishing"]
    for name in ("gradient_norms_depth", "gradient_norms_time", "activation_histograms"):
        assert (tmp_path / "plots" / f"{name}.png").stat().st_size > 5000


def test_the_time_budget_holds_back_due_records(blobs):
    x, y = blobs
    capped = DiagnosticsCallback(x[:64], y[:64], interval=1, max_overhead=1e-6, plots=False)
    _model(3).fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[capped])  # 20 steps
    assert sorted(capped.frame["step"].unique()) == [1, 20]  # the first and the final record
    free = DiagnosticsCallback(x[:64], y[:64], interval=1, max_overhead=None, plots=False)
    _model(3).fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[free])
    assert sorted(free.frame["step"].unique()) == list(range(1, 21))


def test_the_probe_traces_at_once_for_long_runs_and_never_for_short_ones(blobs):
    x, y = blobs  # 10 steps an epoch at batch 32
    long_run = DiagnosticsCallback(x[:64], y[:64], interval=1, max_overhead=None, plots=False)
    _model(3).fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[long_run])  # 21 records
    assert long_run._probe.eager_records == 0 and long_run._probe._fn is not None
    short_run = DiagnosticsCallback(x[:64], y[:64], interval=5, max_overhead=None, plots=False)
    _model(3).fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[short_run])  # 3 records
    assert short_run._probe._fn is None  # tracing would cost more than the eager passes
    assert sorted(short_run.frame["step"].unique()) == [1, 6, 10]
    assert _eager_records({"epochs": 4, "steps": None}, 100) == EAGER_RECORDS  # unknown length


def test_bad_input_is_refused_before_training(blobs):
    x, y = blobs
    with pytest.raises(ConfigError, match=r"Argument `interval` must be in \[1, inf\]"):
        DiagnosticsCallback(x, y, interval=0)
    with pytest.raises(ConfigError, match="same length.*len\\(x_batch\\)=300, len\\(y_batch\\)=10"):
        DiagnosticsCallback(x, y[:10])
    with pytest.raises(ConfigError, match="`max_overhead` must be in"):
        DiagnosticsCallback(x, y, max_overhead=0)
    with pytest.raises(ConfigError, match="`dead_fraction` must be in"):
        Thresholds(dead_fraction=2.0)
    uncompiled = dnnguide.build_model("default", (8,), 3, depth=2, compile=False)
    with pytest.raises(ConfigError, match="compile the model or pass loss"):
        check_model(uncompiled, x, y)
    report = check_model(uncompiled, x, y, loss="sparse_categorical_crossentropy")
    assert report.frame["update_ratio"].isna().all()  # no optimizer: nothing to estimate
    with pytest.raises(TypeError, match="must be a keras.Model"):
        check_model("default", x, y)


@pytest.fixture(scope="module")
def diagnosed_run(tmp_path_factory):
    keras.utils.set_random_seed(0)
    data = dnnguide.load_dataset("digits", seed=0)
    root = tmp_path_factory.mktemp("runs")
    return dnnguide.fit("default", data, run_dir=root, depth=3, width=32, epochs=2,
                        diagnose=True, verbose=0).run_dir


def test_fit_diagnose_and_cli_diagnose(diagnosed_run, capsys):
    from dnnguide.cli import main

    frame = pd.read_csv(diagnosed_run / DIAGNOSTICS_CSV)
    assert set(frame["layer"]) == {"hidden_1", "hidden_2", "hidden_3", "output"}
    assert (diagnosed_run / "plots" / "gradient_norms_depth.png").exists()
    assert main(["diagnose", str(diagnosed_run), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "recorded during training" in out and "hidden_3" in out
    assert "No pathology found." in out
    assert main(["diagnose", str(diagnosed_run), "--check", "--rows", "64"]) == 0
    out = capsys.readouterr().out
    assert "one-shot check of the saved model on 64 training rows" in out
    assert (diagnosed_run / "plots" / "check_activation_histograms.png").exists()
    assert main(["diagnose", str(diagnosed_run.parent / "missing")]) == 2
    assert "not a dnnguide run directory" in capsys.readouterr().err


def test_recipe_quick_shows_why_the_guidelines_exist(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "vanishing_gradients_recipe", ROOT / "recipes" / "vanishing_gradients.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    table = recipe.main(["--quick", "--run-dir", str(tmp_path)]).set_index("setup")
    assert table.loc["sigmoid+glorot+sgd", "ratio_at_init"] < 1e-6
    assert table.loc["sigmoid+glorot+sgd", "findings_at_init"] == "vanishing"
    others = table.drop(index="sigmoid+glorot+sgd")
    assert others["ratio_at_init"].between(1e-2, 1e2).all()
    assert (others["findings_at_init"] == "none").all()
    (run,) = tmp_path.iterdir()
    assert (run / "plots" / "gradient_norms_at_init.png").exists()
    assert pd.read_csv(run / "comparison.csv").shape == (4, 3)


def test_the_selu_unit_band_comes_from_thresholds(blobs):
    from dnnguide.diagnostics.probe import _Probe

    x, y = blobs
    selu = dnnguide.build_model("self_normalizing", (8,), 3, depth=2, width=16)
    rng = np.random.default_rng(0)
    # Every unit of the first SELU layer: mean 0.7, std 1.5 (inside the default band).
    acts = [rng.normal(0.7, 1.5, size=(512, 16)), rng.normal(0.0, 1.0, size=(512, 16)),
            rng.normal(0.0, 1.0, size=(512, 3))]
    default = _Probe(selu, x[:64], y[:64])._stats(acts)
    assert default[0, 3] == 0.0
    # The hard-coded band (|mean| > 1, std outside [1/3, 3]) could not be tightened before.
    strict = Thresholds(selu_unit_mean=0.5, selu_unit_std=(0.8, 1.25))
    assert _Probe(selu, x[:64], y[:64], thresholds=strict)._stats(acts)[0, 3] == 1.0
    with pytest.raises(ConfigError, match="selu_unit_std"):
        Thresholds(selu_unit_std=(2.0, 1.0))


def test_gradient_plot_names_every_line_and_explains_the_ratio(blobs, tmp_path, monkeypatch):
    from dnnguide.diagnostics import plots

    x, y = blobs
    frame = check_model(_sigmoid_net(6), x[:128], y[:128]).frame
    frames = pd.concat([frame.assign(step=step) for step in range(0, 300, 20)])  # 15 records
    figures = []
    real = plots.save_figure
    monkeypatch.setattr(plots, "save_figure",
                        lambda fig, path: figures.append(fig) or real(fig, path))
    path = plots.plot_gradient_norms(frames, tmp_path / "g.png")
    assert path.stat().st_size > 1000
    (ax,) = figures[0].axes
    names = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(ax.get_lines()) == len(names) == plots.MAX_LINES  # every drawn line is named
    assert names[0] == "step 0" and names[-1] == "step 280"
    assert "layer 1 / last layer gradient norm" in ax.get_title()
    assert "vanishing" in ax.get_title() and "exploding" in ax.get_title()
