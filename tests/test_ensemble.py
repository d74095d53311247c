"""Deep ensembles: members trained as runs of their own, pooled, calibrated, saved, resumed."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import dnnguide
from dnnguide import checkpoint as ckpt
from dnnguide.calibration import negative_log_likelihood
from dnnguide.ensemble import member_seed, pool_models
from dnnguide.layers import EnsemblePool
from dnnguide.runs import RunExistsError, member_dirs, open_run
from dnnguide.uncertainty import uncalibrated

# Small and quick; the learning rate is given, so no LR sweep runs.
SMALL = dict(depth=2, width=16, epochs=4, learning_rate=1e-3, verbose=0)


class InterruptMember(keras.callbacks.Callback):
    """Raise KeyboardInterrupt at the end of ``epoch`` of the ``member``-th training."""

    def __init__(self, member, epoch):
        super().__init__()
        self.member, self.epoch, self.trainings = member, epoch, -1

    def on_train_begin(self, logs=None):
        self.trainings += 1

    def on_epoch_end(self, epoch, logs=None):
        if self.trainings == self.member and epoch == self.epoch:
            raise KeyboardInterrupt("simulated crash")


def _members(run_dir):
    return sorted((run_dir / "members").iterdir())


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    keras.utils.set_random_seed(1234)
    return dnnguide.fit("risk_sensitive", "digits", ensemble=2, seed=5,
                        run_dir=tmp_path_factory.mktemp("ens"), **SMALL)


def test_pool_is_the_normalized_geometric_mean_or_the_mean():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=(3, 6)).astype("float32")  # 3 members, 6 rows
    pooled = np.asarray(EnsemblePool("classification")(list(probs)))
    geometric = np.exp(np.log(probs).mean(0))
    np.testing.assert_allclose(pooled, geometric / geometric.sum(-1, keepdims=True), rtol=1e-5)
    p = rng.uniform(0.01, 0.99, size=(3, 6, 1)).astype("float32")
    logit = np.log(p) - np.log1p(-p)
    np.testing.assert_allclose(np.asarray(EnsemblePool("binary")(list(p))),
                               1 / (1 + np.exp(-logit.mean(0))), rtol=1e-5)
    values = rng.normal(size=(3, 6, 2)).astype("float32")
    np.testing.assert_allclose(np.asarray(EnsemblePool("regression")(list(values))),
                               values.mean(0), rtol=1e-6)
    # The pooled NLL is never above the members' mean NLL (the normalizer is at most 1).
    y = rng.integers(0, 4, size=6)
    member_nll = np.mean([negative_log_likelihood(y, q) for q in probs])
    assert negative_log_likelihood(y, pooled) <= member_nll + 1e-6


def test_pool_models_pools_the_members_and_leaves_them_unchanged(blobs):
    x, y = blobs
    x = x * 10 + 5  # unstandardized: each member starts with an adapted Normalization layer
    members = [dnnguide.build_model("default", (8,), 3, depth=1, width=8, adapt_data=x)
               for _ in range(3)]
    for member in members:
        member.fit(x, y, epochs=2, verbose=0)
    before = [m.get_weights() for m in members]
    pooled = pool_models(members, "classification")
    expected = EnsemblePool("classification")([m.predict(x, verbose=0) for m in members])
    np.testing.assert_allclose(pooled.predict(x, verbose=0), np.asarray(expected), atol=1e-6)
    assert [layer.name for layer in pooled.layers if layer.name.startswith("member_")] \
        == ["member_0", "member_1", "member_2"]
    for member, weights in zip(members, before):
        for a, b in zip(member.get_weights(), weights):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="inputs of one shape"):
        pool_models([members[0], dnnguide.build_model("default", (5,), 3, depth=1)],
                    "classification")


def test_ensemble_run_keeps_members_and_a_pooled_calibrated_model(ensemble):
    run = ensemble.run_dir
    members = _members(run)
    assert [p.name.split("-")[-1] for p in members] == ["member_0", "member_1"]
    assert member_dirs(run) == members
    for k, path in enumerate(members):
        member = open_run(path)
        assert member.status == "complete" and member.info["seed"] == member_seed(5, k)
        assert member.config.ensemble == 1 and member.config.calibration == "none"
    info, metrics = open_run(run).info, json.loads((run / "metrics.json").read_text())
    assert info["status"] == "complete" and info["ensemble"] == 2
    assert metrics["ensemble"] == 2 and metrics["mc_pooling"] == "geometric"
    # Pooling two nets beats their mean NLL; this run is calibrated and scored with MC dropout.
    assert metrics["test_loss"] <= metrics["member_mean_test_loss"]
    assert metrics["test_cal_mc_accuracy"] > 0.75  # 4 epochs of a 2x16 net; chance is 0.1
    for key in ("test_mc_nll", "test_cal_nll", "test_cal_mc_ece", "mc_temperature"):
        assert np.isfinite(metrics[key])
    assert set(ensemble.history["member"]) == {0, 1}
    assert metrics["member_best_epochs"] == [open_run(p).metrics["best_epoch"] for p in members]
    assert (run / "plots" / "learning_curves.png").stat().st_size > 10_000
    # The saved model is the pooled members, calibrated, and reloads as it predicts.
    x = ensemble.data.x_test
    reloaded = open_run(run).model()
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0),
                                  ensemble.model.predict(x, verbose=0))
    nets = [open_run(p).model() for p in members]
    pooled = EnsemblePool("classification")([m.predict(x, verbose=0) for m in nets])
    np.testing.assert_allclose(uncalibrated(reloaded).predict(x, verbose=0), np.asarray(pooled),
                               atol=1e-6)


def test_mc_samples_of_an_ensemble_come_from_its_members_mixture(blobs):
    x, y = blobs
    members = []
    for k in range(3):  # no dropout: any spread of the samples is the members' disagreement
        keras.utils.set_random_seed(k)
        member = dnnguide.build_model("default", (8,), 1, "regression", depth=1, width=8)
        member.fit(x, y.astype("float32"), epochs=2, verbose=0)
        members.append(member)
    pooled = pool_models(members, "regression")
    outputs = np.stack([m.predict(x[:20], verbose=0) for m in members])  # (3, 20, 1)
    pred = dnnguide.mc_predict(pooled, x[:20], 300, seed=0, verbose=0, return_samples=True)
    # every sample of every row is one member's output, and all three members are drawn
    match = np.isclose(pred.samples[:, None], outputs[None], atol=1e-5).all(-1)  # (300, 3, 20)
    assert match.any(axis=1).all()
    counts = match.sum(axis=0).T  # (20 rows, 3 members)
    # stratified draws: every member gives every row a third of its samples
    np.testing.assert_array_equal(counts, 100)
    # so the samples' spread is the members' disagreement and their mean the members' mean
    np.testing.assert_allclose(pred.std[:, 0], outputs.std(axis=0)[:, 0], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(pred.mean, pooled.predict(x[:20], verbose=0), rtol=1e-4,
                               atol=1e-5)
    # which member starts a row is random: the first sample is not member 0's in every row
    assert 0 < match[0, 0].sum() < 20
    # in calls of 7 samples (no multiple of 3) each member gives a row 2 or 3 of a call's 7:
    # its count over 100 samples is 33 ± 1.8, where independent draws would give 33 ± 4.7
    small = dnnguide.mc_predict(pooled, x[:20], 100, 20, seed=0, verbose=0, return_samples=True,
                                max_rows=140)
    small_counts = np.isclose(small.samples[:, None], outputs[None], atol=1e-5).all(-1).sum(0)
    assert small_counts.std() < 3.0, small_counts
    again = dnnguide.mc_predict(pooled, x[:20], 300, seed=0, verbose=0)
    np.testing.assert_array_equal(again.mean, pred.mean)  # the draws follow the seed
    assert not np.array_equal(dnnguide.mc_predict(pooled, x[:20], 300, seed=1, verbose=0).mean,
                              pred.mean)


def test_mc_samples_of_an_ensemble_vary_the_masks_too(ensemble):
    x = ensemble.data.x_test[:50]
    pred = dnnguide.mc_predict(ensemble.model, x, 20, seed=0, verbose=0, return_samples=True)
    assert pred.samples.shape == (20, 50, 10)
    members = [ensemble.model.get_layer(f"member_{k}") for k in range(2)]
    for member in members:  # each member's own masks vary
        alone = dnnguide.mc_predict(member, x, 20, seed=0, verbose=0)
        assert alone.std.max() > 1e-3
    # the ensemble's samples disagree more than either member's: masks and members
    assert pred.mutual_information.mean() > max(
        dnnguide.mc_predict(m, x, 20, seed=0, verbose=0).mutual_information.mean()
        for m in members)


def test_interrupted_ensemble_resumes_to_the_uninterrupted_one(ensemble, tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt, "CHECKPOINT_EVERY_S", 0.0)
    with pytest.raises(KeyboardInterrupt):
        dnnguide.fit("risk_sensitive", "digits", ensemble=2, seed=5, run_dir=tmp_path,
                     callbacks=[InterruptMember(member=1, epoch=1)], **SMALL)
    (run,) = tmp_path.iterdir()
    assert open_run(run).info["status"] == "interrupted"
    assert [open_run(p).info["status"] for p in _members(run)] == ["complete", "interrupted"]
    # what is kept: member 0's 4 epochs and member 1's checkpointed ones
    assert open_run(run).info["epochs_saved"] == 4 + open_run(_members(run)[1]).info["epochs_saved"]
    assert open_run(_members(run)[1]).info["epochs_saved"] >= 1
    keras.utils.set_random_seed(99)  # the process's random state must not matter
    with pytest.raises(dnnguide.ConfigError, match="members' own budget"):
        dnnguide.fit(resume=run, epochs=8)
    resumed = dnnguide.fit(resume=run, verbose=0)
    assert len(_members(run)) == 2  # member 1 continued in its own folder
    x = ensemble.data.x_test
    np.testing.assert_array_equal(resumed.model.predict(x, verbose=0),
                                  ensemble.model.predict(x, verbose=0))
    assert resumed.metrics["test_cal_mc_nll"] == ensemble.metrics["test_cal_mc_nll"]
    assert open_run(run).info["status"] == "complete"
    with pytest.raises(RunExistsError, match="already complete"):
        dnnguide.fit(resume=run)


def test_ensemble_refuses_what_it_cannot_be(ensemble, tmp_path, blobs):
    for bad, valid in ((0, r"\[1, 20\]"), (21, r"\[1, 20\]"), (2.5, "integer")):
        with pytest.raises(dnnguide.ConfigError, match=f"ensemble.*{valid}.*{bad}"):
            dnnguide.get_preset("default", ensemble=bad)
    with pytest.raises(dnnguide.ConfigError, match="cannot be compressed.*precision='int8'"):
        dnnguide.get_preset("low_latency", ensemble=3)
    # build_model makes one member; the pooled model is not trained again as one net
    assert dnnguide.build_model("default", (8,), 3, ensemble=2).dnnguide_config.ensemble == 1
    with pytest.raises(dnnguide.ConfigError, match="a built model"):
        dnnguide.fit(ensemble.model, "digits", run_dir=tmp_path, epochs=1, verbose=0)
    assert not list(tmp_path.iterdir())  # refused before a run folder exists


def test_ensemble_without_a_run_dir_trains_and_pools_in_memory(blobs):
    result = dnnguide.fit("default", blobs, run_dir=None, ensemble=3, depth=1, width=8,
                          epochs=3, learning_rate=1e-2, verbose=0)
    assert result.run_dir is None and result.metrics["ensemble"] == 3
    assert [layer.name for layer in result.model.layers if layer.name.startswith("member_")] \
        == ["member_0", "member_1", "member_2"]
    assert result.metrics["test_accuracy"] > 0.9
    assert result.metrics["test_loss"] <= result.metrics["member_mean_test_loss"]


def test_one_net_tools_name_the_members_instead(ensemble):
    from dnnguide.cli import main

    run = ensemble.run_dir
    members = [str(p) for p in _members(run)]
    for command in (["compress", str(run), "--prune", "0.5"], ["diagnose", str(run)]):
        with pytest.raises(SystemExit, match="is an ensemble of 2 nets") as refused:
            main(command)
        assert "members" in str(refused.value)
    with pytest.raises(SystemExit, match=members[1]):
        main(["diagnose", str(run)])
    with pytest.raises(dnnguide.ConfigError, match="Pass one of its members"):
        dnnguide.fit(init_from=run, data="digits", run_dir=None, epochs=1)
    with pytest.raises(dnnguide.ConfigError, match="reused layers"):  # one net's layers
        dnnguide.fit(init_from=members[0], data="digits", run_dir=None, epochs=1, ensemble=2)
    # a member is a run like any other: its layers can start a new model
    reused = dnnguide.fit(init_from=members[0], data="digits", run_dir=None, epochs=1, verbose=0)
    assert reused.model.get_layer("hidden_1").trainable is False


def test_regression_ensemble_gives_intervals_in_target_units():
    # the MC path of a regression ensemble (MC dropout members, standardized targets)
    result = dnnguide.fit("risk_sensitive", "diabetes", run_dir=None, ensemble=2, epochs=3,
                          depth=1, width=8, learning_rate=1e-2, verbose=0)
    metrics = result.metrics
    assert 40 < metrics["test_cal_mc_rmse"] < 120  # diabetes targets: 25-346, std ~77
    assert 0.5 < metrics["test_cal_mc_coverage_90"] <= 1.0
    assert metrics["mc_noise_std"] > 10
    # the pooled net's R², from its own test RMSE (a 3-epoch net explains little of it)
    y_test = np.asarray(result.data.y_test, dtype=float)
    assert metrics["test_r2"] == pytest.approx(1 - metrics["test_rmse"] ** 2 / y_test.var())
    assert -1.0 < metrics["test_r2"] < 0.8


def test_ensembles_saved_before_routing_still_sample_the_mixture(blobs, tmp_path):
    # An ensemble saved before routing (every member on every row, the pool keeps the drawn
    # one's) loads and samples as before, stratified; the routed pool gives the same prediction.
    import keras

    x, y = blobs
    members = []
    for k in range(3):
        keras.utils.set_random_seed(k)
        member = dnnguide.build_model("default", (8,), 1, "regression", depth=1, width=8)
        member.fit(x, y.astype("float32"), epochs=2, verbose=0)
        members.append(member)
    routed = pool_models(members, "regression")
    inputs = keras.Input((8,))
    old = keras.Model(inputs, EnsemblePool("regression")(
        [routed.get_layer(f"member_{k}")(inputs) for k in range(3)]))
    old.save(tmp_path / "old.keras")
    old = keras.saving.load_model(tmp_path / "old.keras")
    np.testing.assert_allclose(old.predict(x, verbose=0), routed.predict(x, verbose=0),
                               atol=1e-6)
    outputs = np.stack([m.predict(x[:20], verbose=0) for m in members])
    for model in (old, routed):
        pred = dnnguide.mc_predict(model, x[:20], 90, seed=0, verbose=0, return_samples=True)
        match = np.isclose(pred.samples[:, None], outputs[None], atol=1e-5).all(-1)
        np.testing.assert_array_equal(match.sum(axis=0), 30)
