"""Scoring new rows with a finished run: training preprocessing, class names, fresh processes."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import dnnguide
from dnnguide.cli import main
from dnnguide.data import DataError, load_dataset

CULTIVARS = ["barolo", "grignolino", "barbera"]


def _wine(n=300, seed=0):
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 3, n)
    return pd.DataFrame({
        "alcohol": 12.5 + 0.8 * k + rng.normal(0, 0.3, n),
        "proline": 500 + 300 * k + rng.normal(0, 60, n),  # far from standardized on purpose
        "region": rng.choice(["north", "south"], n),
        "cultivar": np.array(CULTIVARS, dtype=object)[k],
    })


def _houses(n=300, seed=0):
    rng = np.random.default_rng(seed)
    area, rooms = rng.uniform(40, 200, n), rng.integers(1, 6, n).astype(float)
    return pd.DataFrame({"area": area, "rooms": rooms,
                         # in k$, a scale the model reaches without target scaling
                         "price": 0.05 * area + 2 * rooms + rng.normal(0, 0.5, n)})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    wine, houses = root / "wine.csv", root / "houses.csv"
    _wine().to_csv(wine, index=False)
    _houses().to_csv(houses, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the one-hot encoding report
        clf = dnnguide.fit("risk_sensitive", load_dataset(str(wine), target="cultivar", seed=0),
                           run_dir=root / "runs", epochs=30, verbose=0, depth=2, width=32)
    reg = dnnguide.fit("default", load_dataset(str(houses), target="price", seed=0),
                       run_dir=root / "runs", epochs=40, verbose=0, depth=2, width=32,
                       dropout_rate=0.0, learning_rate=1e-2)
    return {"root": root, "wine": wine, "houses": houses, "clf": clf, "reg": reg}


def _fresh(args, **kw):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=180,
                          **kw)


def test_string_target_round_trip_in_a_fresh_process(runs):
    new = runs["root"] / "new_wines.csv"
    truth = _wine(n=120, seed=7)
    truth.drop(columns="cultivar").to_csv(new, index=False)
    out = runs["root"] / "predictions.csv"
    done = _fresh(["-m", "dnnguide.cli", "predict", str(runs["clf"].run_dir), "--data", str(new),
                   "--out", str(out)])
    assert done.returncode == 0, done.stderr
    assert "oneDNN" not in done.stderr and "cuda" not in done.stderr.lower()
    predicted = pd.read_csv(out)
    assert set(predicted["prediction"]) <= set(CULTIVARS)  # the file's own names come back
    accuracy = (predicted["prediction"] == truth["cultivar"]).mean()
    assert accuracy >= 0.9, accuracy
    proba = predicted[[f"proba_{c}" for c in sorted(CULTIVARS)]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    # Same answer in this process: prediction is deterministic although the model has MC dropout.
    run = dnnguide.load_run(runs["clf"].run_dir)
    labels = run.predict(truth.drop(columns="cultivar"))
    assert list(labels) == list(predicted["prediction"])
    assert list(run.predict(truth.drop(columns="cultivar"))) == list(labels)


def test_predict_never_overwrites_its_output(runs, capsys):
    out = runs["root"] / "taken.csv"
    out.write_text("keep me\n")
    code = main(["predict", str(runs["clf"].run_dir), "--data", str(runs["wine"]),
                 "--out", str(out)])
    assert code == 2 and "exists" in capsys.readouterr().err
    assert out.read_text() == "keep me\n"


def test_regression_round_trip_in_a_fresh_process_reproduces_training_inputs(runs):
    data = runs["reg"].data
    raw = load_dataset(str(runs["houses"]), target="price", seed=0, standardize=False)
    rows = pd.DataFrame(raw.x_test, columns=["area", "rooms"])
    rows = rows[["rooms", "area"]]  # columns are matched by name, not position
    new = runs["root"] / "new_houses.csv"
    rows.to_csv(new, index=False)
    script = ("import json, sys, pandas as pd, dnnguide;"
              "run = dnnguide.load_run(sys.argv[1]);"
              "print(json.dumps(run.predict(pd.read_csv(sys.argv[2])).tolist()))")
    done = _fresh(["-c", script, str(runs["reg"].run_dir), str(new)])
    assert done.returncode == 0, done.stderr
    fresh = np.asarray(json.loads(done.stdout))
    # The model's answer on the very inputs training standardized: same preprocessing exactly.
    expected = runs["reg"].model.predict(data.x_test, verbose=0)[:, 0]
    np.testing.assert_allclose(fresh, expected, rtol=1e-5)
    rmse = float(np.sqrt(np.mean((fresh - data.y_test) ** 2)))
    assert rmse < 0.5 * float(np.std(data.y_test)), rmse  # in price units, and it learned
    run = dnnguide.load_run(runs["reg"].run_dir)
    np.testing.assert_array_equal(run.transform(rows), data.x_test)


@pytest.mark.parametrize("change, message", [
    (lambda f: f.drop(columns="proline"), r"Missing: \['proline'\]"),
    (lambda f: f.assign(colour=1.0), r"not used in training: \['colour'\]"),
    (lambda f: f.assign(alcohol=["13.1"] * 3 + ["n/a"] + ["12.0"] * (len(f) - 4)),
     r"Column 'alcohol' .* must be numeric.*line 5: 'n/a'"),
    (lambda f: f.assign(region=["east"] + ["north"] * (len(f) - 1)),
     r"Column 'region' .* unseen in training: \['east'\]"),
])
def test_wrong_columns_are_refused_by_name(runs, change, message):
    run = dnnguide.load_run(runs["clf"].run_dir)
    rows = _wine(n=10, seed=3).drop(columns="cultivar")
    with pytest.raises(DataError, match=message):
        run.predict(change(rows))


def test_mc_mean_and_std_for_an_mc_dropout_run(runs):
    run = dnnguide.load_run(runs["clf"].run_dir)
    rows = _wine(n=50, seed=5)
    mc = run.predict_mc(rows.drop(columns="cultivar"), n_samples=30, seed=1)
    assert mc.mean.shape == (50, 3) and mc.std.shape == (50, 3)
    np.testing.assert_allclose(mc.mean.sum(axis=1), 1.0, atol=1e-5)
    assert mc.std.max() > 0  # dropout was on
    assert (mc.labels == rows["cultivar"].to_numpy()).mean() >= 0.85
    with pytest.raises(dnnguide.ConfigError, match="no dropout layers"):
        dnnguide.load_run(runs["reg"].run_dir).predict_mc(_houses(n=5).drop(columns="price"))
