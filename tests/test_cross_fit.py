"""Cross-fitting small regression data: one net a fold, dropout chosen out of fold, pooled,
saved and resumed (dnnguide/cross_fit.py; DATA_TABLE["cross_fit.regression"])."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import dnnguide
from dnnguide import checkpoint as ckpt
from dnnguide.config import NetworkConfig
from dnnguide.cross_fit import folds, out_of_fold_r2
from dnnguide.data_rules import DataProfile
from dnnguide.presets import get_preset, recommend_preset
from dnnguide.runs import RunExistsError, member_dirs, open_run

# Small and quick: two folds, the learning rate given (no LR sweep), a few epochs.
SMALL = dict(cross_fit=2, depth=2, width=16, epochs=4, learning_rate=1e-3, verbose=0)


class InterruptTraining(keras.callbacks.Callback):
    """Raise KeyboardInterrupt at the end of the first epoch of the ``k``-th training."""

    def __init__(self, k):
        super().__init__()
        self.k, self.trainings = k, -1

    def on_train_begin(self, logs=None):
        self.trainings += 1

    def on_epoch_end(self, epoch, logs=None):
        if self.trainings == self.k:
            raise KeyboardInterrupt("simulated crash")


@pytest.fixture(scope="module")
def crossfit(tmp_path_factory):
    return dnnguide.fit("default", "diabetes", seed=3, run_dir=tmp_path_factory.mktemp("cf"),
                        **SMALL)


def _member_predictions(run):
    """Each member's rate, fold and predictions on its fold and the test rows, from disk."""
    data = run.dataset()
    splits = folds(data, run.config.cross_fit, run.info["seed"])
    out = []
    for path in member_dirs(run.path):
        member = open_run(path)
        fold, rows = splits[member.info["fold"]]
        model = member.model()
        out.append((member.info["dropout_rate"], rows, model.predict(fold.x_val, verbose=0),
                    model.predict(data.x_test, verbose=0), member.config))
    return data, out


def test_small_regression_gets_the_cross_fit_and_says_why():
    small = DataProfile(n_train=317, n_features=10, task="regression")
    rec = dnnguide.recommend(data=small)
    assert rec.config.cross_fit == 5
    assert rec.config.regularization.dropout_choices == (0.0, 0.2)
    assert "317 training rows (fewer than 1,000)" in rec.reasons["cross_fit"]
    assert "dropout rate (0 and 0.2)" in rec.reasons["cross_fit"]
    for other in (DataProfile(n_train=1_000, n_features=10, task="regression"),
                  DataProfile(n_train=317, n_features=10, task="classification")):
        assert dnnguide.recommend(data=other).config.cross_fit == 1
    assert dnnguide.recommend(data=small, self_normalizing=True).config.cross_fit == 1
    assert dnnguide.recommend(data=small, risk_sensitive=True).config.cross_fit == 1


def test_what_you_ask_for_wins_over_the_cross_fit():
    small = {"n_train": 317, "n_features": 10, "task": "regression"}
    given = get_preset("default", small, dropout_rate=0.1)  # your rate, the only one tried
    assert (given.cross_fit, given.regularization.dropout_choices) == (5, ())
    assert given.regularization.dropout_rate == 0.1
    one = get_preset("default", small, cross_fit=1)
    assert (one.cross_fit, one.regularization.dropout_choices) == (1, ())
    rec = recommend_preset("default", small, ensemble=3)
    assert (rec.config.cross_fit, rec.config.ensemble) == (1, 3)
    assert "you asked for ensemble=3" in rec.reasons["cross_fit"]
    # a model built from a cross-fit config is one of its nets, and fit trains it as one
    model = dnnguide.build_model("default", (10,), 1, "regression", cross_fit=5,
                                 dropout_choices=[0.0, 0.2], depth=1, width=4)
    assert model.dnnguide_config.cross_fit == 1
    assert model.dnnguide_config.regularization.dropout_choices == ()
    for bad, match in (({"cross_fit": 0}, r"cross_fit.*\[1, 20\]"),
                       ({"dropout_choices": [0.0, 1.5]}, "dropout_choices"),
                       ({"dropout_choices": [0.2]}, "needs cross_fit >= 2"),
                       ({"cross_fit": 3, "ensemble": 2}, "Use one of them"),
                       ({"cross_fit": 3, "dropout_kind": "mc"}, "MC dropout")):
        with pytest.raises(dnnguide.ConfigError, match=match):
            get_preset("default", **bad)


def test_a_classifier_is_refused_before_any_run_folder(tmp_path):
    with pytest.raises(dnnguide.ConfigError, match=r"regression targets.*task='classification'"):
        dnnguide.fit("default", "digits", run_dir=tmp_path, **SMALL)
    assert not list(tmp_path.iterdir())


def test_folds_cut_train_and_validation_and_leave_the_test_split():
    data = dnnguide.load_dataset("diabetes", seed=0)
    splits = folds(data, 5, seed=0)
    rows = np.concatenate([r for _, r in splits])
    n = len(data.x_train) + len(data.x_val)
    assert sorted(rows) == list(range(n))  # every row validates exactly one net
    for fold, val in splits:
        assert len(fold.x_train) + len(fold.x_val) == n and len(fold.x_val) == len(val)
        np.testing.assert_array_equal(fold.x_test, data.x_test)
        assert not fold.spec  # a fold is never reloaded by name


def test_the_rate_kept_is_the_one_its_out_of_fold_predictions_favour(crossfit):
    run = open_run(crossfit.run_dir)
    data, members = _member_predictions(run)
    assert [m[0] for m in members] == [0.0, 0.0, 0.2, 0.2]
    y = np.concatenate([data.y_train, data.y_val])
    for rate in (0.0, 0.2):
        oof = np.zeros((len(y), 1), "float32")
        for member_rate, rows, val_pred, _, config in members:
            if member_rate == rate:
                oof[rows] = val_pred
                assert config.regularization.dropout_rate == rate
        assert crossfit.metrics[f"oof_r2_dropout_{rate:g}"] == pytest.approx(
            out_of_fold_r2(y, oof), abs=1e-6)
    kept = max((0.0, 0.2), key=lambda r: crossfit.metrics[f"oof_r2_dropout_{r:g}"])
    assert crossfit.metrics["dropout_rate"] == kept
    assert crossfit.config.regularization.dropout_rate == kept
    # the run's model is the mean of the kept rate's members, in the target's units
    pooled = np.mean([m[3] for m in members if m[0] == kept], axis=0)
    np.testing.assert_allclose(crossfit.model.predict(data.x_test, verbose=0), pooled,
                               rtol=1e-5)
    rmse = float(np.sqrt(np.mean((pooled[:, 0] - data.y_test.ravel()) ** 2)))
    assert crossfit.metrics["test_rmse"] == pytest.approx(rmse, rel=1e-4)
    assert 40 < rmse < 170  # diabetes targets: 25-346, std ~77
    saved = json.loads((crossfit.run_dir / "metrics.json").read_text())
    assert saved["dropout_rate"] == kept and saved["ensemble"] == 2
    assert dnnguide.runs.load(crossfit.run_dir.parent)["ensemble"].tolist() == [2]


def test_an_interrupted_cross_fit_resumes_to_the_uninterrupted_one(crossfit, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setattr(ckpt, "CHECKPOINT_EVERY_S", 0.0)
    with pytest.raises(KeyboardInterrupt):
        dnnguide.fit("default", "diabetes", seed=3, run_dir=tmp_path,
                     callbacks=[InterruptTraining(2)], **SMALL)
    (run,) = tmp_path.iterdir()
    assert open_run(run).info["status"] == "interrupted"
    assert len(member_dirs(run)) == 2  # members 0 and 1 finished and kept
    keras.utils.set_random_seed(99)  # the process's random state must not matter
    with pytest.raises(dnnguide.ConfigError, match="members' own budget"):
        dnnguide.fit(resume=run, epochs=8)
    resumed = dnnguide.fit(resume=run, verbose=0)
    assert len(member_dirs(run)) == 4
    x = crossfit.data.x_test
    np.testing.assert_array_equal(resumed.model.predict(x, verbose=0),
                                  crossfit.model.predict(x, verbose=0))
    assert resumed.metrics["oof_r2_dropout_0.2"] == crossfit.metrics["oof_r2_dropout_0.2"]
    assert open_run(run).info["status"] == "complete"
    with pytest.raises(RunExistsError, match="already complete"):
        dnnguide.fit(resume=run)


def test_a_cross_fit_config_round_trips_through_json():
    small = {"n_train": 317, "n_features": 10, "task": "regression"}
    config = NetworkConfig.from_dict(json.loads(json.dumps(get_preset("default",
                                                                      small).to_dict())))
    assert config.cross_fit == 5 and config.regularization.dropout_choices == (0.0, 0.2)
