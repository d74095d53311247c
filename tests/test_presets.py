"""Every registered preset builds the network its guidelines describe, trains, saves and reloads."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import dnnguide
from dnnguide.config import ConfigError, NetworkConfig
from dnnguide.layers import MCAlphaDropout, MCDropout
from dnnguide.presets import Preset, register_preset

PRESETS = dnnguide.list_presets()
INIT_CLASS = {"he_normal": keras.initializers.HeNormal, "lecun_normal": keras.initializers.LecunNormal}
DROPOUT_CLASS = {"standard": keras.layers.Dropout, "alpha": keras.layers.AlphaDropout,
                 "mc": MCDropout, "mc_alpha": MCAlphaDropout}


def test_registry_has_the_guidelines_presets():
    assert {"default", "self_normalizing", "sparse", "low_latency", "risk_sensitive"} <= set(PRESETS)


def test_registering_an_existing_name_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_preset(Preset("default", "duplicate"))
    assert dnnguide.get_preset("default").activation == "elu"  # untouched


def test_unknown_preset_lists_and_suggests():
    with pytest.raises(ConfigError) as err:
        dnnguide.get_preset("self_normalising")
    message = str(err.value)
    assert "Did you mean 'self_normalizing'?" in message
    assert all(name in message for name in PRESETS)


def _hidden_layers(model):
    return [layer for layer in model.layers if layer.name.startswith("hidden_")]


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("depth", [3, 12])
def test_preset_layers_follow_its_config(preset, depth):
    cfg = dnnguide.get_preset(preset, depth=depth, dropout_rate=0.1)
    model = dnnguide.build_model(cfg, input_shape=(8,), n_outputs=3)
    hidden = _hidden_layers(model)
    assert len(hidden) == depth
    by_name = {layer.name: layer for layer in model.layers}
    for i, dense in enumerate(hidden, start=1):
        assert isinstance(dense.kernel_initializer, INIT_CLASS[cfg.kernel_initializer])
        bn = by_name.get(f"batch_norm_{i}")
        if cfg.normalization == "none":
            assert bn is None
            assert dense.activation is keras.activations.get(cfg.activation)
        elif cfg.normalization == "batch_norm_before":
            assert isinstance(bn, keras.layers.BatchNormalization)
            assert dense.activation.__name__ == "linear"
            assert by_name[f"activation_{i}"].activation is keras.activations.get(cfg.activation)
        else:
            assert isinstance(bn, keras.layers.BatchNormalization)
            assert dense.activation is keras.activations.get(cfg.activation)
        top = cfg.regularization.dropout_layers or depth  # batch norm: after the last only
        deep_bn = cfg.normalization != "none" and depth >= 10
        assert cfg.regularization.dropout_layers == (1 if deep_bn else None)
        if i <= depth - top:
            assert f"dropout_{i}" not in by_name
            continue
        dropout = by_name[f"dropout_{i}"]
        assert type(dropout) is DROPOUT_CLASS[cfg.regularization.dropout_kind]
        assert dropout.rate == pytest.approx(0.1)
        if cfg.regularization.l1:
            assert dense.kernel_regularizer.l1 == pytest.approx(cfg.regularization.l1)
    assert model.layers[-1].activation.__name__ == "softmax"


def test_guidelines_drive_the_presets():
    assert dnnguide.get_preset("default", depth=20).activation == "swish"
    assert dnnguide.get_preset("default", depth=3).normalization == "none"
    sn = dnnguide.get_preset("self_normalizing", depth=20)
    assert (sn.activation, sn.kernel_initializer, sn.normalization, sn.optimizer.name) == (
        "selu", "lecun_normal", "none", "nesterov")
    assert dnnguide.get_preset("sparse").regularization.l1 > 0
    assert dnnguide.get_preset("risk_sensitive").uses_mc_dropout


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_trains_saves_and_reloads(preset, blobs, tmp_path):
    x, y = blobs
    cfg = dnnguide.get_preset(preset, depth=3, width=16)
    assert NetworkConfig.from_dict(json.loads(cfg.to_json())) == cfg
    model = dnnguide.build_model(cfg, n_outputs=3, adapt_data=x)
    out = model.predict(x[:32], verbose=0)
    assert np.isfinite(out).all() and np.allclose(out.sum(1), 1.0, atol=1e-5)
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    path = tmp_path / f"{preset}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    for a, b in zip(model.get_weights(), reloaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    if not cfg.uses_mc_dropout:  # MC dropout is random by design
        np.testing.assert_allclose(reloaded.predict(x[:32], verbose=0),
                                   model.predict(x[:32], verbose=0), atol=1e-6)


@pytest.mark.parametrize("task, n_outputs, activation, loss", [
    ("classification", 4, "softmax", "sparse_categorical_crossentropy"),
    ("binary", 1, "sigmoid", "binary_crossentropy"),
    ("regression", 2, "linear", "mse"),
])
def test_output_head_matches_the_task(task, n_outputs, activation, loss):
    model = dnnguide.build_model("default", (5,), n_outputs, task, depth=2)
    assert model.output_shape == (None, n_outputs)
    assert model.layers[-1].activation.__name__ == activation
    assert model.loss == loss


@pytest.mark.parametrize("task, n_outputs, fragment", [
    ("binary", 2, "n_outputs=2"), ("classification", 1, "n_outputs=1"), ("ranking", 3, "ranking"),
])
def test_bad_head_is_refused(task, n_outputs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        dnnguide.build_model("default", (5,), n_outputs, task)


def test_self_normalizing_standardizes_its_inputs():
    rng = np.random.default_rng(0)
    x = rng.normal(50.0, 10.0, size=(500, 6)).astype("float32")
    model = dnnguide.build_model("self_normalizing", n_outputs=3, adapt_data=x, depth=3)
    norm = model.get_layer("standardize")
    z = keras.ops.convert_to_numpy(norm(x))
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(z.std(0), 1.0, atol=1e-2)


def test_overrides_win_and_are_validated():
    model = dnnguide.build_model("default", (4,), 3, depth=2, width=7, activation="relu",
                                 optimizer="nadam", learning_rate=0.005)
    assert [layer.units for layer in _hidden_layers(model)] == [7, 7]
    assert type(model.optimizer).__name__ == "Nadam"
    assert float(model.optimizer.learning_rate) == pytest.approx(0.005)
    with pytest.raises(ConfigError, match="batch norm"):
        dnnguide.build_model("self_normalizing", (4,), 3, normalization="batch_norm_after")


def test_list_presets_by_pattern_and_describe():
    from dnnguide.presets import describe_preset

    assert dnnguide.list_presets("s*") == ["self_normalizing", "sparse"]
    assert dnnguide.list_presets("nothing*") == []
    assert "MC dropout" in describe_preset("risk_sensitive")
    with pytest.raises(ValueError, match="Did you mean 'sparse'"):
        describe_preset("sprase")
    with pytest.raises(TypeError, match="Received: pattern=3"):
        dnnguide.list_presets(3)


def test_a_feature_constant_in_training_passes_through_unscaled(tmp_path):
    # Keras' Normalization divides by max(std, 1e-7): a blank pixel in every training image
    # turned a test image with ink there into a 1e7-sized input (raw digits arrays, seed 2).
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).astype("float32")
    x[:, 1] = 0.5
    model = dnnguide.build_model("default", (3,), 3, depth=2, width=8, adapt_data=x)
    row = np.array([[0.0, 1.5, 0.0]], "float32")
    scaled = np.asarray(model.get_layer("standardize")(row))
    assert scaled[0, 1] == pytest.approx(1.0)  # centered, not divided by 1e-7
    expected = (row[0, [0, 2]] - x[:, [0, 2]].mean(0)) / x[:, [0, 2]].std(0)
    np.testing.assert_allclose(scaled[0, [0, 2]], expected, rtol=1e-4, atol=1e-6)
    assert np.all(np.isfinite(model.predict(row, verbose=0)))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(np.asarray(loaded.get_layer("standardize")(row)), scaled)
