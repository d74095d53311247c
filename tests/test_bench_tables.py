"""The evidence harness's verdicts (bench/presets_vs_baselines.py), on rows made up here.

The harness's tables are what issue 9's note quotes, so the arithmetic that turns per-seed rows
into win / tie / loss is pinned on small frames with known answers, without training; one test
trains (two 2-epoch fits) to pin what a run's row records.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

HARNESS = Path(__file__).resolve().parents[1] / "bench" / "presets_vs_baselines.py"


def _load_bench(name: str):
    """A script of bench/ as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, HARNESS.parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def harness():
    return _load_bench("presets_vs_baselines")


@pytest.fixture(scope="module")
def ablations(harness):
    # bench/ablations.py imports the harness by name: it is loaded first (the harness fixture).
    return _load_bench("ablations")


def _toy_classes(seed):
    """150 rows of 6 features, 3 classes: 60 to train, 40 to validate, 50 to test."""
    from dnnguide.data import Dataset

    x = np.random.default_rng(seed).standard_normal((150, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5)
    return Dataset("toy", "classification", 3, x[:60], y[:60], x[60:100], y[60:100],
                   x[100:], y[100:])


def _rows(data, contender, values, metric):
    # The harness's rows carry every metric of their task; the others are equal everywhere.
    others = {"rmse": 50.0} if data == "diabetes" else {"accuracy": 0.9, "nll": 0.3, "ece": 0.02}
    return [{"data": data, "contender": contender, "seed": s, **others, metric: v}
            for s, v in enumerate(values)]


def _frame(mine, newcomer, sklearn, metric="accuracy", data="digits"):
    return pd.DataFrame(_rows(data, "default", mine, metric)
                        + _rows(data, "keras_newcomer", newcomer, metric)
                        + _rows(data, "sklearn_mlp", sklearn, metric))


def _cell(harness, frame, metric="accuracy"):
    verdicts = harness.paired(frame, "default")
    return verdicts[verdicts.metric == metric].iloc[0].to_dict()


def test_a_gain_larger_than_two_standard_errors_over_both_rivals_is_a_win(harness):
    frame = _frame([0.90, 0.91, 0.92], [0.80, 0.82, 0.81], [0.85, 0.86, 0.86])
    row = _cell(harness, frame)
    assert row["verdict"] == "win"
    assert row["gain_keras_newcomer"] == pytest.approx(0.10)
    assert row["gain_sklearn_mlp"] == pytest.approx(0.91 - 2.57 / 3)


def test_a_better_mean_inside_the_noise_is_a_tie_not_a_win(harness):
    # The mean is higher than both rivals' (a "win" by the means alone), the seeds disagree.
    frame = _frame([0.95, 0.90, 0.97], [0.92, 0.94, 0.90], [0.93, 0.93, 0.90])
    row = _cell(harness, frame)
    assert row["mean"] > 0.92
    assert row["verdict"] == "tie"
    summary = harness.summarize(frame)
    _, _, lost = harness.wins(summary, "default")
    assert "digits accuracy" not in lost  # the means-only count calls it won


def test_lower_is_better_for_losses_and_one_significant_rival_makes_a_loss(harness):
    frame = _frame([0.20, 0.21, 0.22], [0.10, 0.11, 0.12], [0.30, 0.31, 0.32], metric="nll")
    row = _cell(harness, frame, "nll")
    assert row["gain_keras_newcomer"] == pytest.approx(-0.10)
    assert row["gain_sklearn_mlp"] == pytest.approx(0.10)
    assert row["verdict"] == "loss"


def test_diabetes_is_scored_on_rmse_and_a_diverged_run_loses(harness):
    frame = _frame([57.0, np.nan, 56.0], [58.0, 58.0, 58.0], [90.0, 91.0, 92.0],
                   metric="rmse", data="diabetes")
    row = _cell(harness, frame, "rmse")
    assert len(harness.paired(frame, "default")) == 1  # diabetes: RMSE only
    assert row["verdict"] == "loss"


def test_a_rival_that_diverged_loses_to_a_run_that_did_not(harness):
    # The NaN is the rival's: the contender wins that rival's cell, whatever its other seeds.
    frame = _frame([57.0, 59.0, 56.0], [58.0, np.nan, 58.0], [50.0, 51.0, 52.0],
                   metric="rmse", data="diabetes")
    row = _cell(harness, frame, "rmse")
    assert row["gain_keras_newcomer"] == np.inf and row["gain_sklearn_mlp"] < 0
    assert row["verdict"] == "loss"  # sklearn_mlp is better by far on every seed
    frame = _frame([57.0, 59.0, 56.0], [58.0, np.nan, 58.0], [58.0, 60.0, 57.0],
                   metric="rmse", data="diabetes")
    assert _cell(harness, frame, "rmse")["verdict"] == "win"


def test_baselines_get_the_split_scaled_as_a_user_would(harness):
    import dnnguide

    ours, user = dnnguide.load_dataset("digits", seed=1), harness.user_scaled("digits", 1)
    np.testing.assert_array_equal(ours.y_test, user.y_test)  # the same split
    np.testing.assert_allclose(user.x_train.mean(0), 0, atol=1e-5)
    spread = user.x_train.std(0)
    np.testing.assert_allclose(spread[spread > 0], 1, atol=1e-4)  # plain StandardScaler
    assert np.abs(user.x_train).max() > 20 > 5 >= np.abs(ours.x_train).max() - 1e-4


def test_a_csv_is_loaded_with_its_target_column_and_scored_by_its_task(harness, tmp_path):
    # Held-out data (bench/heldout_data.py) goes through the same harness as the built-ins.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    table = pd.DataFrame(x, columns=["a", "b", "c"])
    table["price"] = x @ np.array([1.0, 2.0, 3.0])
    table["target"] = (x[:, 0] > 0).astype(int)
    path = tmp_path / "shop.csv"
    table.to_csv(path, index=False)
    binary, regression = harness.load(str(path), 0), harness.load(f"{path}:price", 0)
    assert (binary.task, binary.x_train.shape[1]) == ("binary", 4)  # `price` is a feature
    assert (regression.task, regression.x_train.shape[1]) == ("regression", 4)
    # --resume finds a CSV's finished rows under the name the dataset gives itself.
    assert harness.row_name(str(path)) == binary.name == "shop"
    assert harness.row_name(f"{path}:price") == regression.name
    assert harness.row_name("digits") == harness.load("digits", 0).name
    # A regression is scored by RMSE whatever its name; a classifier's rows have no RMSE.
    rows = [{"data": name, "contender": contender, "seed": s, "time_s": 1.0, **metrics}
            for name, metrics in ((f"{path}:price", {"rmse": 1.0, "accuracy": np.nan}),
                                  (str(path), {"accuracy": 0.9, "nll": 0.3, "ece": 0.02,
                                               "rmse": np.nan}))
            for contender in ("default", "keras_newcomer", "sklearn_mlp") for s in range(3)]
    verdicts = harness.paired(pd.DataFrame(rows), "default")
    assert sorted(verdicts[verdicts.data == f"{path}:price"].metric) == ["rmse"]
    assert sorted(verdicts[verdicts.data == str(path)].metric) == ["accuracy", "ece", "nll"]
    assert f"{path}:price rmse" in harness.markdown(harness.summarize(pd.DataFrame(rows)))


def test_each_run_scores_its_ece_against_a_calibrated_models_on_the_same_rows(harness):
    # The ECE cells differ by thousandths; each run also says what ECE a calibrated model with
    # its confidences would score on the same test rows, and whether its own is beyond that.
    data = _toy_classes(0)
    # labels drawn from the probabilities: calibrated (this draw's p-value is 0.89; a calibrated
    # model's falls under 0.05 in 5% of draws, tests/test_calibration.py)
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3) * 0.3, len(data.y_test))
    drawn = dataclasses.replace(data, y_test=np.array([rng.choice(3, p=r) for r in probs]))
    honest = harness.score_or_nan(drawn, probs)
    wrong = np.full_like(probs, 0.005)
    wrong[np.arange(len(probs)), (drawn.y_test + 1) % 3] = 0.99  # sure, and always wrong
    liar = harness.score_or_nan(drawn, wrong)
    assert honest["ece_p"] > 0.05 and liar["ece_p"] < 0.01
    assert liar["ece"] > 0.9 and liar["ece_calibrated"] < 0.05
    assert honest["ece_calibrated"] == pytest.approx(honest["ece"], abs=0.06)
    diverged = harness.score_or_nan(drawn, np.full_like(probs, np.nan))
    assert np.isnan(diverged["ece_calibrated"]) and np.isnan(diverged["ece_p"])
    frame = pd.DataFrame([{"data": "toy", "contender": name, "seed": 0, **scores}
                          for name, scores in (("honest", honest), ("liar", liar))])
    table = harness.consistency_markdown(frame)
    assert "| toy | honest |" in table and table.count("0 of 1") == 1
    assert table.count("1 of 1") == 1
    assert harness.consistency_markdown(frame.drop(columns=["ece_calibrated", "ece_p"])) == ""


def test_ablations_pair_each_variant_with_the_default_by_seed(ablations):
    # bench/ablations.py's table is the harness's pairing, base as the one rival: the gain per
    # seed (accuracy up, NLL / RMSE down) per data and metric.
    rows = [{"data": "digits", "variant": v, "seed": s, "accuracy": acc, "nll": nll, "ece": 0.02}
            for s, (acc, nll) in enumerate([(0.90, 0.30), (0.92, 0.20), (0.94, 0.25)])
            for v, shift in (("base", 0.0), ("ema", 0.01)) for acc, nll in [(acc + shift,
                                                                              nll - shift * s)]]
    rows += [{"data": "diabetes", "variant": v, "seed": s, "rmse": r}
             for s in range(2) for v, r in (("base", 50.0 + s), ("ema", 49.0 + 3 * s))]
    table = ablations.paired(pd.DataFrame(rows)).set_index(["data", "metric"])
    assert np.isclose(table.loc[("digits", "accuracy"), "gain_base"], 0.01)
    assert np.isclose(table.loc[("digits", "accuracy"), "se_base"], 0.0, atol=1e-12)
    assert np.isclose(table.loc[("digits", "nll"), "gain_base"], 0.01)  # 0.01 * seed, averaged
    assert np.isclose(table.loc[("digits", "nll"), "se_base"], 0.01 / np.sqrt(3))
    assert np.isclose(table.loc[("diabetes", "rmse"), "gain_base"], 0.0)  # +1 and -1
    assert ("diabetes", "accuracy") not in table.index and len(table) == 4
    assert table.loc[("digits", "accuracy"), "verdict"] == "win"
    assert table.loc[("diabetes", "rmse"), "verdict"] == "tie"
    assert (table.variant == "ema").all()


def test_onecycle_peak_ablation_compares_the_minimum_rule_with_the_peak_rule(ablations,
                                                                             monkeypatch):
    # base fits with the finder's minimum rule alone as the peak, the variant with the product's
    # onecycle_peak, both with the preset's overrides; the product's rule is back afterwards,
    # even when a fit fails.
    import argparse

    from dnnguide import lr_finder

    rule = lr_finder.onecycle_peak
    calls = []

    def fake_fit(preset, data, seed, **kwargs):
        # What fit_setup.onecycle_max_lr would pick from a sweep's minimum of 0.0016 at AdamW 1e-3.
        calls.append((preset, lr_finder.onecycle_peak(0.0016, 1e-3, bounded=True), kwargs))
        if len(calls) == 3:
            raise FloatingPointError("diverged")
        return argparse.Namespace(model=None)

    monkeypatch.setattr(ablations, "_fit", fake_fit)
    monkeypatch.setattr(ablations, "_predict", lambda model, data: "out")
    args = argparse.Namespace(preset="default[depth=20]")
    rows = list(ablations.onecycle_peak_rows(None, 0, args))
    assert [variant for variant, _ in rows] == ["base", "onecycle_peak"]
    assert calls == [("default", 0.0016, {"schedule": "onecycle", "depth": 20}),
                     ("default", 0.005, {"schedule": "onecycle", "depth": 20})]
    assert lr_finder.onecycle_peak is rule
    with pytest.raises(FloatingPointError):
        list(ablations.onecycle_peak_rows(None, 0, args))
    assert lr_finder.onecycle_peak is rule


def test_mc_pooling_ablation_scores_each_rule_on_the_same_samples(ablations, monkeypatch):
    # base is the rule calibrate() had: the pooling whose tempered validation prediction has
    # the lower NLL; the other rows are each rule's own tempered test prediction; regression
    # data is refused before anything trains.
    import argparse

    import dnnguide
    from dnnguide.calibration import fit_temperature, negative_log_likelihood, temper

    data = _toy_classes(0)
    model = dnnguide.build_model("risk_sensitive", (6,), 3, depth=1, width=16, dropout_rate=0.5)
    monkeypatch.setattr(ablations, "_fit", lambda *a, **k: argparse.Namespace(model=model))
    rows = dict(ablations.mc_pooling_rows(data, 0, None))
    assert list(rows) == ["base", "geometric", "mean", "geometric_tested"]
    nll = {}
    for pooling in ("geometric", "mean"):
        val, test = (dnnguide.mc_predict(model, v, 100, seed=0, verbose=0, pooling=pooling).mean
                     for v in (data.x_val, data.x_test))
        t = fit_temperature(data.y_val, val)
        np.testing.assert_allclose(rows[pooling], temper(test, t), rtol=1e-6)
        nll[pooling] = negative_log_likelihood(data.y_val, temper(val, t))
    assert not np.allclose(rows["geometric"], rows["mean"], atol=1e-3)  # two rules, two rows
    np.testing.assert_array_equal(rows["base"], rows[min(("mean", "geometric"), key=nll.get)])
    regression = dataclasses.replace(data, task="regression", n_outputs=1,
                                     y_train=data.x_train[:, :1], y_val=data.x_val[:, :1],
                                     y_test=data.x_test[:, :1])
    with pytest.raises(SystemExit, match="classification data only.*toy"):
        next(ablations.mc_pooling_rows(regression, 0, None))


def test_ensemble_ablation_pools_its_members_geometrically_and_tempers_on_validation(
        ablations, monkeypatch):
    # Members 0, 1000, 2000 of each preset, each member's nets fitted once; identical members
    # pool to that net's own prediction, tempered on the validation split.
    import argparse

    import dnnguide
    from dnnguide.calibration import fit_temperature, temper

    data = _toy_classes(1)
    net = dnnguide.build_model("default", (6,), 3, depth=1, width=16)
    risk = dnnguide.build_model("risk_sensitive", (6,), 3, depth=1, width=16)
    calls = []

    def fake_fit(preset, data, seed, **overrides):
        calls.append((preset, seed, overrides))
        return argparse.Namespace(model=risk if preset == "risk_sensitive" else net)

    monkeypatch.setattr(ablations, "_fit", fake_fit)
    rows = dict(ablations.ensemble_rows(data, 0, argparse.Namespace(members=3)))
    # one net per member (the preset itself is an ensemble now)
    assert calls == [(p, s, {"ensemble": 1} if p == "risk_sensitive" else {})
                     for s in (0, 1000, 2000) for p in ("default", "risk_sensitive")]
    assert list(rows) == ["base", "default_x3", "risk_sensitive_mc_x3"]
    np.testing.assert_array_equal(rows["base"],
                                  net.predict(data.x_test, batch_size=1024, verbose=0))
    val, test = (net.predict(v, verbose=0).astype("float64") for v in (data.x_val, data.x_test))
    val, test = val / val.sum(1, keepdims=True), test / test.sum(1, keepdims=True)
    np.testing.assert_allclose(rows["default_x3"],
                               temper(test, fit_temperature(data.y_val, val)), rtol=1e-4)
    # risk members: the same MC net, 33 geometric samples each
    mc = [dnnguide.mc_predict(risk, v, 33, seed=0, verbose=0, pooling="geometric").mean
          for v in (data.x_val, data.x_test)]
    np.testing.assert_allclose(rows["risk_sensitive_mc_x3"],
                               temper(mc[1], fit_temperature(data.y_val, mc[0])), rtol=1e-4)


def test_crossfit_ablation_validates_every_row_once_and_pools_the_folds(ablations,
                                                                       monkeypatch):
    # Each member trains on train + validation less its fold and early-stops on that fold; the
    # folds partition the 100 rows; the untempered row is the members' geometric pool, and the
    # temperature is fitted on the out-of-fold predictions (here each member's own constant).
    import argparse

    from dnnguide import uncertainty
    from dnnguide.calibration import fit_temperature, temper
    from dnnguide.uncertainty.mc_dropout import _geometric

    data, seen = _toy_classes(0), []

    class Member:
        def __init__(self, k):
            self.p = np.array([0.5 + 0.1 * k, 0.3 - 0.05 * k, 0.2 - 0.05 * k], "float32")

        def predict(self, x, **kwargs):
            return np.tile(self.p, (len(x), 1))

    def fake_fit(preset, fold, seed):
        seen.append((seed, fold.x_train, fold.x_val))
        return argparse.Namespace(model=Member(len(seen) - 2) if len(seen) > 1 else Member(0))

    monkeypatch.setattr(ablations, "_fit", fake_fit)
    monkeypatch.setattr(uncertainty, "uncalibrated", lambda model: model)
    rows = dict(ablations.crossfit_rows(data, 7, argparse.Namespace(members=4)))
    assert list(rows) == ["base", "crossfit_x4", "crossfit_x4_free_t", "crossfit_x4_no_t"]
    pool_x = np.concatenate([data.x_train, data.x_val])
    members = seen[1:]
    assert [seed for seed, *_ in members] == [7, 1007, 2007, 3007]
    val_rows = np.concatenate([val for *_, val in members])
    assert len(val_rows) == 100 and len({r.tobytes() for r in val_rows}) == 100
    assert {r.tobytes() for r in val_rows} == {r.tobytes() for r in pool_x}
    for _, train, val in members:
        assert len(train) + len(val) == 100
        assert not {r.tobytes() for r in train} & {r.tobytes() for r in val}
    probs = [Member(k).p for k in range(4)]
    pooled = _geometric(np.mean(np.log(probs), axis=0), "classification")
    np.testing.assert_allclose(rows["crossfit_x4_no_t"], np.tile(pooled, (50, 1)), rtol=1e-6)
    oof = np.concatenate([np.tile(Member(k).p, (len(val), 1))
                          for k, (_, _, val) in enumerate(members)])
    order = np.concatenate([[next(i for i, r in enumerate(pool_x) if np.array_equal(r, v))
                             for v in val] for *_, val in members])
    y = np.concatenate([data.y_train, data.y_val])[order]
    free = fit_temperature(y, oof)
    assert free != 1.0
    np.testing.assert_allclose(rows["crossfit_x4_free_t"], temper(rows["crossfit_x4_no_t"], free),
                               rtol=1e-6)


def test_a_dnnguide_run_records_the_learning_rate_and_decay_it_trained_with(harness):
    # The rules change both at fit time (the LR finder; the decay moves with the LR, and under
    # 1cycle with the cycle's mean), so a row must say what its run used, not the table's.
    import dnnguide
    from dnnguide.data import Dataset
    from dnnguide.schedules import onecycle_mean_lr

    rng = np.random.default_rng(0)
    x = rng.standard_normal((700, 6)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int64")
    data = Dataset("toy", "classification", 2, x[:400], y[:400], x[400:550], y[400:550],
                   x[550:], y[550:])  # 400 training rows: 13 steps an epoch, so a decay
    table = dnnguide.get_preset("default", data=data).optimizer
    row = harness.run_one("default[epochs=2]", data, seed=0)
    assert 0 < row["learning_rate"] <= table.learning_rate and "max_lr" not in row
    assert 0 < row["best_val_loss"] < np.log(2)  # better than a coin on the restored epoch
    # the rule's timescale, lr x decay, is kept whatever LR the finder chose
    assert row["weight_decay"] * row["learning_rate"] == pytest.approx(
        table.weight_decay * table.learning_rate, rel=0.02)
    cycle = harness.run_one("default+onecycle[epochs=2]", data, seed=0)
    assert cycle["max_lr"] > cycle["learning_rate"]
    mean_lr = onecycle_mean_lr(cycle["max_lr"])
    assert cycle["weight_decay"] * mean_lr == pytest.approx(
        table.weight_decay * table.learning_rate, rel=0.02)


def test_table_only_joins_saved_rows_a_later_file_wins_and_seeds_select(harness, tmp_path):
    # Issue 9's ten-dataset count joins rows from several runs (the rivals' from one, the
    # default's from another); a rerun's rows replace the older ones for the same seed.
    old = _frame([0.90, 0.91, 0.92], [0.80] * 3, [0.80] * 3).assign(time_s=1.0)
    rerun = pd.DataFrame(_rows("digits", "default", [0.95, 0.96, 0.97], "accuracy")).assign(
        time_s=1.0)
    (tmp_path / "old.csv").write_text(old.to_csv(index=False))
    (tmp_path / "rerun.csv").write_text(rerun.to_csv(index=False))
    out = tmp_path / "out"
    assert harness.main(["--table-only", str(tmp_path / "old.csv"), str(tmp_path / "rerun.csv"),
                         "--seeds", "0", "1", "--out", str(out)]) == 0
    summary = pd.read_csv(out / "summary.csv").set_index("contender")
    assert summary.loc["default", "accuracy_mean"] == pytest.approx(0.955)  # rerun, seeds 0-1
    assert summary.loc["sklearn_mlp", "accuracy_mean"] == pytest.approx(0.80)


def test_depth_by_validation_keeps_five_layers_only_where_validation_says_so():
    module = _load_bench("depth_by_validation")

    def rows(accuracy, curves):
        return pd.DataFrame([{"data": "d", "seed": s, "accuracy": a, "nll": 1 - a, "ece": 0.0,
                              "val_accuracy_curve": c} for s, (a, c) in
                             enumerate(zip(accuracy, curves))])

    three = rows([0.70, 0.80], ["0.5;0.7", "0.5;0.8"])
    five = rows([0.90, 0.60], ["0.6;0.9", "0.8;0.8"])  # seed 1: a tie on validation keeps 3
    (row,) = module.choose_by_validation(three, five).to_dict("records")
    assert row["picked_5"] == 1
    assert row["accuracy_minus_3"] == pytest.approx((0.20 + 0.0) / 2)
    # on the restored epoch's validation loss (lower wins), a regression too
    regression = [pd.DataFrame([{"data": "r", "seed": s, "rmse": r, "best_val_loss": v}
                                for s, (r, v) in enumerate(zip(rmse, loss))])
                  for rmse, loss in (([50.0, 60.0], [0.5, 0.6]), ([40.0, 70.0], [0.4, 0.7]))]
    (row,) = module.choose_by_validation(*regression, on="val_loss").to_dict("records")
    assert row["picked_5"] == 1 and row["rmse_minus_3"] == pytest.approx(-5.0)
    assert "accuracy_minus_3" not in row
    with pytest.raises(ValueError, match="on='test'"):
        module.choose_by_validation(three, five, on="test")


def test_noise_estimates_tell_a_smooth_target_from_noise_and_read_the_nets_validation(tmp_path):
    noise = _load_bench("noise_estimates")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(600, 3))
    smooth = np.sin(3 * x[:, 0]) + x[:, 1] ** 2
    noisy = smooth + rng.normal(scale=smooth.std(), size=600)  # half the variance is noise
    assert noise.delta_noise_fraction(x, smooth) < 0.05
    assert 0.35 < noise.delta_noise_fraction(x, noisy) < 0.75

    csv = tmp_path / "toy.csv"
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "target": noisy})
    frame.to_csv(csv, index=False)
    rows = tmp_path / "rows.csv"
    pd.DataFrame({"data": ["toy"] * 3, "contender": ["default", "default", "sklearn_mlp"],
                  "seed": [0, 1, 0], "best_val_loss": [0.4, 0.6, 0.1]}).to_csv(rows, index=False)
    out = tmp_path / "table.csv"
    assert noise.main(["--data", str(csv), "--rows", str(rows), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert table.loc[0, "data"] == "toy" and table.loc[0, "rows"] < 600  # the training split
    assert 0.2 < table.loc[0, "r2_gbdt"] < 0.6 and 0.2 < table.loc[0, "r2_ridge"] < 0.6
    assert table.loc[0, "val_r2"] == pytest.approx(0.5)  # the default's two seeds, not the MLP's
    assert table.loc[0, "val_r2_seeds"] == 2
