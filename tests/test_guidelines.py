"""The guideline tables applied by ``recommend``: every field has a reason, exceptions win."""

from __future__ import annotations

import dataclasses

import pytest

from dnnguide.config import ConfigError, NetworkConfig
from dnnguide.guidelines import DEEP_FROM, recommend

ALL_FIELDS = {f.name for f in dataclasses.fields(NetworkConfig)} - {"name"}


@pytest.mark.parametrize("situation", [
    {}, {"depth": "deep"}, {"self_normalizing": True}, {"sparse": True}, {"low_latency": True},
    {"risk_sensitive": True}, {"depth": 30, "self_normalizing": True, "risk_sensitive": True},
    {"sparse": True, "risk_sensitive": True, "overfitting": True},
])
def test_every_field_has_a_reason(situation):
    rec = recommend(**situation)
    assert set(rec.reasons) >= ALL_FIELDS, ALL_FIELDS - set(rec.reasons)
    table = rec.table()
    assert list(table.columns) == ["field", "value", "reason"]
    assert table["reason"].str.len().min() > 20
    assert "activation" in rec.explain()


def test_default_table_shallow_vs_deep():
    shallow = recommend("shallow").config
    deep = recommend("deep").config
    assert (shallow.kernel_initializer, shallow.activation, shallow.normalization) == (
        "he_normal", "elu", "none")
    assert (deep.kernel_initializer, deep.activation, deep.normalization) == (
        "he_normal", "swish", "batch_norm_after")
    assert recommend(DEEP_FROM - 1).config.activation == "elu"
    assert recommend(DEEP_FROM).config.activation == "swish"
    for cfg in (shallow, deep):
        assert cfg.optimizer.name in ("adamw", "nesterov")
        assert cfg.schedule.name in ("performance", "onecycle")
        assert cfg.early_stopping.enabled and cfg.early_stopping.restore_best_weights


def test_optimizer_by_depth():
    assert recommend("shallow").config.optimizer.name == "adamw"
    deep = recommend("deep")
    assert (deep.config.optimizer.name, deep.config.optimizer.momentum) == ("nesterov", 0.9)
    assert "AdamW" in deep.reasons["optimizer"]  # the measured reason for the switch


@pytest.mark.parametrize("depth, optimizer", [("shallow", "adamw"), ("deep", "nesterov")])
def test_overfitting_adds_decoupled_weight_decay_not_l2(depth, optimizer):
    cfg = recommend(depth, overfitting=True).config
    assert cfg.optimizer.name == optimizer and cfg.optimizer.weight_decay > 0
    assert cfg.regularization.l2 == 0


def test_self_normalizing_table():
    rec = recommend(20, self_normalizing=True, overfitting=True)
    cfg = rec.config
    assert (cfg.kernel_initializer, cfg.activation, cfg.normalization) == (
        "lecun_normal", "selu", "none")
    assert cfg.optimizer.name == "nesterov" and cfg.standardize_inputs
    assert cfg.regularization.dropout_kind == "alpha" and cfg.regularization.dropout_rate > 0
    assert "Klambauer" in rec.reasons["kernel_initializer"]


@pytest.mark.parametrize("extra", [{}, {"self_normalizing": True}, {"depth": "deep"},
                                   {"self_normalizing": True, "risk_sensitive": True}])
def test_sparse_never_self_normalizes(extra):
    rec = recommend(sparse=True, **extra)
    cfg = rec.config
    assert cfg.activation != "selu" and not cfg.self_normalizing
    assert cfg.regularization.l1 > 0 and cfg.pruning_sparsity > 0
    if extra.get("self_normalizing"):
        assert "sparse exception wins" in rec.reasons["activation"]


def test_low_latency():
    cfg = recommend(low_latency=True, self_normalizing=True).config
    assert cfg.activation in ("relu", "leaky_relu")
    assert cfg.depth < recommend().config.depth
    assert cfg.normalization == "batch_norm_before" and cfg.fold_batch_norm
    assert cfg.precision in ("float16", "int8")


@pytest.mark.parametrize("self_normalizing, kind", [(False, "mc"), (True, "mc_alpha")])
def test_risk_sensitive_turns_on_mc_dropout(self_normalizing, kind):
    cfg = recommend(risk_sensitive=True, self_normalizing=self_normalizing).config
    assert cfg.uses_mc_dropout and cfg.regularization.dropout_kind == kind


def test_bad_situation_is_refused():
    with pytest.raises(ConfigError, match="depth='medium'"):
        recommend("medium")
    with pytest.raises(ConfigError, match="task='ranking'"):
        recommend(task="ranking")
