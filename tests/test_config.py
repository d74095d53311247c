"""Configuration dataclasses: validation in the Keras message form, JSON round-trip, overrides."""

from __future__ import annotations

import json

import pytest

from dnnguide.config import (
    ConfigError,
    NetworkConfig,
    OptimizerConfig,
    RegularizationConfig,
    ScheduleConfig,
    nested_overrides,
    replace,
)

SELU = dict(activation="selu", kernel_initializer="lecun_normal")


def test_json_round_trip_and_equality():
    cfg = NetworkConfig(depth=3, width=(64, 32, 16), regularization={"dropout_rate": 0.1},
                        schedule=ScheduleConfig("piecewise", boundaries=(10, 20),
                                                values=(0.1, 0.01, 0.001)))
    again = NetworkConfig.from_json(json.dumps(json.loads(cfg.to_json())))
    assert again == cfg
    assert again.widths == (64, 32, 16)
    assert replace(cfg, epochs=5) != cfg


def test_replace_revalidates():
    with pytest.raises(ConfigError, match="depth"):
        replace(NetworkConfig(), depth=0)


@pytest.mark.parametrize("kwargs, bad", [
    (dict(activation="selu_"), "activation='selu_'"),
    (dict(kernel_initializer="he"), "kernel_initializer='he'"),
    (dict(normalization="layer_norm"), "normalization='layer_norm'"),
    (dict(depth=0), "depth=0"),
    (dict(depth=2.5), "depth=2.5"),
    (dict(width=0), "width=0"),
    (dict(width=-3), "width=-3"),
    (dict(depth=2, width=(10, 10, 10)), "width=[10, 10, 10]"),
    (dict(batch_size=0), "batch_size=0"),
])
def test_network_values_are_checked(kwargs, bad):
    with pytest.raises(ConfigError) as err:
        NetworkConfig(**kwargs)
    assert "Argument `" in str(err.value) and bad in str(err.value)


def test_unknown_name_lists_valid_ones_and_suggests():
    with pytest.raises(ConfigError) as err:
        NetworkConfig(activation="selu_")
    message = str(err.value)
    assert "must be one of ['relu'" in message and "Did you mean 'selu'?" in message


@pytest.mark.parametrize("kwargs, bad", [
    (dict(dropout_rate=1.0), "dropout_rate=1.0"),
    (dict(dropout_rate=-0.1), "dropout_rate=-0.1"),
    (dict(l1=-1e-4), "l1=-0.0001"),
    (dict(dropout_kind="gaussian"), "dropout_kind='gaussian'"),
    (dict(max_norm=0.0), "max_norm=0.0"),
])
def test_regularization_values_are_checked(kwargs, bad):
    with pytest.raises(ConfigError, match="Received: " + bad.replace("(", r"\(").replace("[", r"\[")):
        RegularizationConfig(**kwargs)


@pytest.mark.parametrize("kwargs, bad", [
    (dict(learning_rate=0.0), "learning_rate=0.0"),
    (dict(learning_rate=-1e-3), "learning_rate=-0.001"),
    (dict(name="adamm"), "optimizer='adamm'"),
    (dict(momentum=1.0), "momentum=1.0"),
    (dict(clipnorm=-1.0), "clipnorm=-1.0"),
])
def test_optimizer_values_are_checked(kwargs, bad):
    with pytest.raises(ConfigError) as err:
        OptimizerConfig(**kwargs)
    assert bad in str(err.value)


# ---------------------------------------------------------------- guideline-forbidden combinations
@pytest.mark.parametrize("kwargs, fragment, advice", [
    (dict(normalization="batch_norm_after"), "batch norm", "normalization='none'"),
    (dict(normalization="batch_norm_before"), "batch norm", "normalization='none'"),
    (dict(regularization={"l1": 1e-4}), "L1/L2 or max-norm", "dropout_kind='alpha'"),
    (dict(regularization={"l2": 1e-4}), "L1/L2 or max-norm", "dropout_kind='alpha'"),
    (dict(regularization={"max_norm": 3.0}), "L1/L2 or max-norm", "dropout_kind='alpha'"),
    (dict(regularization={"dropout_rate": 0.2, "dropout_kind": "standard"}),
     "dropout_kind='standard'", "dropout_kind='alpha'"),
    (dict(regularization={"dropout_rate": 0.2, "dropout_kind": "mc"}),
     "dropout_kind='mc'", "'mc_alpha'"),
    (dict(architecture="residual"), "architecture='residual'", "architecture='sequential'"),
    (dict(pruning_sparsity=0.5), "Pruning", "'sparse' preset"),
    (dict(kernel_initializer="he_normal"), "kernel_initializer='he_normal'", "lecun_normal"),
])
def test_self_normalization_breakers_are_refused(kwargs, fragment, advice):
    with pytest.raises(ConfigError) as err:
        NetworkConfig(**{**SELU, **kwargs})
    assert fragment in str(err.value) and advice in str(err.value)


def test_valid_self_normalizing_config():
    cfg = NetworkConfig(**SELU, regularization={"dropout_rate": 0.1, "dropout_kind": "alpha"})
    assert cfg.self_normalizing and not cfg.uses_mc_dropout


def test_adamw_with_l2_is_refused():
    with pytest.raises(ConfigError, match="Use AdamW's decoupled `weight_decay`"):
        NetworkConfig(optimizer={"name": "adamw"}, regularization={"l2": 1e-4})


def test_weight_decay_on_adam_is_refused():
    with pytest.raises(ConfigError, match="optimizer='adam', weight_decay=0.01"):
        OptimizerConfig(name="adam", weight_decay=0.01)


def test_clipnorm_and_clipvalue_are_exclusive():
    with pytest.raises(ConfigError, match="exclusive"):
        OptimizerConfig(clipnorm=1.0, clipvalue=0.5)


def test_piecewise_needs_matching_values():
    with pytest.raises(ConfigError, match="one more `values`"):
        ScheduleConfig("piecewise", boundaries=(10,), values=(0.1,))
    with pytest.raises(ConfigError, match="strictly increasing"):
        ScheduleConfig("piecewise", boundaries=(20, 10), values=(0.1, 0.01, 0.001))


def test_fold_batch_norm_needs_batch_norm():
    with pytest.raises(ConfigError, match="normalization='none'"):
        NetworkConfig(fold_batch_norm=True)


def test_residual_needs_equal_widths():
    with pytest.raises(ConfigError, match="same width"):
        NetworkConfig(depth=2, width=(10, 20), architecture="residual")


# ---------------------------------------------------------------- flat overrides
def test_nested_overrides_route_to_their_part():
    cfg = nested_overrides(NetworkConfig(), depth=7, dropout_rate=0.3, learning_rate=3e-3,
                           optimizer="nadam", **{"schedule.name": "exponential"})
    assert (cfg.depth, cfg.regularization.dropout_rate) == (7, 0.3)
    assert (cfg.optimizer.name, cfg.optimizer.learning_rate) == ("nadam", 3e-3)
    assert cfg.schedule.name == "exponential"


def test_unknown_override_is_an_error_not_dropped():
    with pytest.raises(ConfigError, match="Received: override='dropuot_rate'.*dropout_rate"):
        nested_overrides(NetworkConfig(), dropuot_rate=0.2)


def test_ambiguous_override_asks_for_dotted_name():
    with pytest.raises(ConfigError, match="'schedule.patience'|'early_stopping.patience'"):
        nested_overrides(NetworkConfig(), patience=3)


def test_from_dict_refuses_unknown_fields():
    with pytest.raises(ConfigError, match="Unknown NetworkConfig fields \\['dept'\\]"):
        NetworkConfig.from_dict({"dept": 3})


def test_one_numeric_validator_takes_numpy_numbers():
    import numpy as np

    from dnnguide.config import check_range
    from dnnguide.presets import _head

    check_range("depth", np.int64(3), 1, integer=True)
    check_range("rate", np.float32(0.5), 0.0, 1.0)
    assert NetworkConfig(depth=np.int64(3), width=np.int32(8)).depth == 3
    assert _head("classification", np.int64(3))[0] == "softmax"
    with pytest.raises(ConfigError, match="must be an integer"):
        check_range("depth", np.float64(3.0), 1, integer=True)
    with pytest.raises(ConfigError, match="must be an integer"):
        check_range("depth", True, 1, integer=True)


@pytest.mark.parametrize("make, bad", [
    (lambda v: OptimizerConfig(learning_rate=v), "learning_rate"),
    (lambda v: RegularizationConfig(dropout_rate=v), "dropout_rate"),
    (lambda v: RegularizationConfig(l2=v), "l2"),
    (lambda v: ScheduleConfig(min_lr=v), "min_lr"),
])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e999])
def test_non_finite_numbers_are_refused_everywhere(make, bad, value):
    with pytest.raises(ConfigError, match=f"Argument `{bad}` must be a finite number"):
        make(value)


def test_pct_start_is_validated_once_in_the_config():
    assert ScheduleConfig("onecycle", pct_start=0.5).pct_start == 0.5
    with pytest.raises(ConfigError, match=r"Argument `pct_start` must be in \(0.0, 0.5\]"):
        ScheduleConfig("onecycle", pct_start=0.6)


def test_depth_and_width_are_capped_with_a_reason():
    from dnnguide.config import MAX_DEPTH, MAX_WIDTH

    NetworkConfig(depth=MAX_DEPTH, width=8)
    with pytest.raises(ConfigError, match=f"at most {MAX_DEPTH} hidden layers.*depth=10000"):
        NetworkConfig(depth=10000)
    with pytest.raises(ConfigError, match=f"at most {MAX_WIDTH} units.*width=100000"):
        NetworkConfig(width=100000)
    with pytest.raises(ConfigError, match="at most"):
        NetworkConfig(depth=2, width=(8, 10**6))


@pytest.mark.parametrize("key", ["standardize_inputs", "fold_batch_norm", "early_stopping.enabled",
                                 "early_stopping.restore_best_weights"])
def test_boolean_fields_refuse_strings(key):
    with pytest.raises(ConfigError, match=r"must be True or False. Received: .*'no'"):
        nested_overrides(NetworkConfig(), **{key: "no"})
