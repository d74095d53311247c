"""MC dropout layers and the Dropout <-> MC conversions (dnnguide/layers.py)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import dnnguide
from dnnguide.config import ConfigError
from dnnguide.layers import (
    MCAlphaDropout, MCDropout, has_dropout, to_mc_dropout, to_standard_dropout,
)


def _weights_equal(a: keras.Model, b: keras.Model) -> bool:
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb))


@pytest.fixture
def trained(blobs):
    """A trained preset model with Normalization (adapted), batch norm and standard dropout."""
    x, y = blobs
    model = dnnguide.build_model("default", (8,), 3, adapt_data=x * 3 + 5, depth=2, width=16,
                                 dropout_rate=0.3, normalization="batch_norm_after")
    model.fit(x * 3 + 5, y, epochs=2, batch_size=32, verbose=0)
    return model, x * 3 + 5, y


@pytest.mark.parametrize("cls", [MCDropout, MCAlphaDropout])
def test_mc_layer_differs_between_calls_and_in_predict(cls):
    x = np.ones((4, 256), "float32")
    layer = cls(0.5, seed=3)
    first, second = np.asarray(layer(x)), np.asarray(layer(x))
    assert not np.array_equal(first, second)
    assert not np.allclose(first, 1.0)
    # predict() passes training=False: a plain Dropout is off there, the MC layer is not.
    model = keras.Sequential([keras.Input((256,)), cls(0.5, seed=3)])
    plain = keras.Sequential([keras.Input((256,)), keras.layers.Dropout(0.5)])
    a, b = model.predict(x, verbose=0), model.predict(x, verbose=0)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(plain.predict(x, verbose=0), x)


def test_mc_dropout_drops_at_its_rate_and_keeps_the_mean():
    out = np.asarray(MCDropout(0.25, seed=0)(np.ones((200, 500), "float32")))
    assert abs(float((out == 0).mean()) - 0.25) < 0.01
    np.testing.assert_allclose(out[out != 0], 1 / 0.75, rtol=1e-6)  # inverted dropout
    assert abs(out.mean() - 1.0) < 0.01


@pytest.mark.parametrize("cls", [MCDropout, MCAlphaDropout])
def test_mc_layers_serialize(cls, tmp_path):
    layer = cls(0.3, seed=7, name="mc")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(clone) is cls and clone.get_config() == layer.get_config()
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64), cls(0.3, seed=7)])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.layers[-1]) is cls and loaded.layers[-1].rate == 0.3
    assert _weights_equal(model, loaded)
    x = np.ones((8, 64), "float32")
    assert not np.array_equal(loaded.predict(x, verbose=0), loaded.predict(x, verbose=0))


@pytest.mark.parametrize("rate", [1.0, -0.1, "0.5", True])
def test_bad_rate_is_refused_with_the_value(rate):
    with pytest.raises(ConfigError, match=r"Argument `rate` must be .*Received: rate="):
        MCDropout(rate)


def test_numpy_rate_is_accepted():
    layer = MCAlphaDropout(np.float32(0.25))
    assert isinstance(layer.rate, float) and layer.rate == 0.25


def test_to_mc_dropout_keeps_weights_and_everything_else(trained):
    model, x, _ = trained
    before = [w.copy() for w in model.get_weights()]
    mc = to_mc_dropout(model)
    assert _weights_equal(model, mc)
    kinds = [(type(a).__name__, type(b).__name__) for a, b in zip(model.layers, mc.layers)]
    assert ("Dropout", "MCDropout") in kinds
    assert all(a == b for a, b in kinds if a != "Dropout")
    assert [layer.name for layer in model.layers] == [layer.name for layer in mc.layers]
    # the original is untouched: same classes, same weights, deterministic predict()
    assert not has_dropout(model, ("mc",)) and has_dropout(mc, ("mc",))
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    # ... and going back gives exactly the original predictions (Normalization included)
    back = to_standard_dropout(mc)
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
    assert mc.dnnguide_config.regularization.dropout_kind == "mc"
    assert back.dnnguide_config.regularization.dropout_kind == "standard"
    assert mc.loss == model.loss  # compile settings carried over


def test_seeded_conversion_is_reproducible(trained):
    model, x, _ = trained
    a = to_mc_dropout(model, seed=5).predict(x, verbose=0)
    b = to_mc_dropout(model, seed=5).predict(x, verbose=0)
    c = to_mc_dropout(model, seed=6).predict(x, verbose=0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_nested_model_is_converted():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dropout(0.5)],
                             name="inner")
    inputs = keras.Input((4,))
    outer = keras.Model(inputs, keras.layers.Dense(2)(inner(inputs)))
    mc = to_mc_dropout(outer)
    assert has_dropout(mc, ("mc",)) and not has_dropout(mc, ("standard",))
    assert _weights_equal(outer, mc)


def test_alpha_dropout_becomes_mc_alpha():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="selu"),
                              keras.layers.AlphaDropout(0.1), keras.layers.Dense(2)])
    assert type(to_mc_dropout(model).layers[1]) is MCAlphaDropout
    assert type(to_standard_dropout(to_mc_dropout(model)).layers[1]) is keras.layers.AlphaDropout


def test_other_noise_layers_warn():
    model = keras.Sequential([keras.Input((4,)), keras.layers.GaussianNoise(0.1),
                              keras.layers.Dropout(0.5), keras.layers.Dense(2)])
    with pytest.warns(UserWarning, match="GaussianNoise"):
        to_mc_dropout(model)


def test_refuses_models_it_cannot_rebuild():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    with pytest.raises(TypeError, match="Sequential or functional.*Received: model=Sub"):
        to_mc_dropout(Sub())
    with pytest.raises(ValueError, match="must be built"):
        to_mc_dropout(keras.Sequential([keras.layers.Dense(2)]))
    with pytest.raises(ConfigError, match="Argument `kinds`"):
        has_dropout(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]), ("mcc",))
