"""MC dropout layers and the Dropout <-> MC conversions (dnnguide/layers.py)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import dnnguide
from dnnguide.config import ConfigError
from dnnguide.layers import (
    Calibration, MCAlphaDropout, MCDropout, has_dropout, mc_sampling, mc_sampling_active,
    to_mc_dropout, to_standard_dropout,
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
def test_mc_layer_is_off_by_default_and_samples_inside_mc_sampling(cls):
    x = np.ones((4, 256), "float32")
    layer = cls(0.5, seed=3)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)  # inference: deterministic
    assert not np.array_equal(np.asarray(layer(x, training=True)), x)  # training drops
    with mc_sampling():
        first, second = np.asarray(layer(x)), np.asarray(layer(x))
    assert not np.array_equal(first, second) and not np.allclose(first, 1.0)
    assert not mc_sampling_active()
    model = keras.Sequential([keras.Input((256,)), cls(0.5, seed=3)])
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)


def test_mc_dropout_drops_at_its_rate_and_keeps_the_mean():
    with mc_sampling():
        out = np.asarray(MCDropout(0.25, seed=0)(np.ones((200, 500), "float32")))
    assert abs(float((out == 0).mean()) - 0.25) < 0.01
    np.testing.assert_allclose(out[out != 0], 1 / 0.75, rtol=1e-6)  # inverted dropout
    assert abs(out.mean() - 1.0) < 0.01


@pytest.mark.parametrize("cls", [MCDropout, MCAlphaDropout])
def test_mc_layers_serialize_and_reload_deterministic(cls, tmp_path):
    # issue 15: a saved MC-dropout model answered differently on every predict/evaluate
    layer = cls(0.3, seed=7, name="mc")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(clone) is cls and clone.get_config() == layer.get_config()
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64), cls(0.3, seed=7),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.layers[1]) is cls and loaded.layers[1].rate == 0.3
    assert _weights_equal(model, loaded)
    x = np.random.default_rng(0).normal(size=(64, 64)).astype("float32")
    y = np.arange(64) % 3
    first = loaded.predict(x, verbose=0)
    np.testing.assert_array_equal(first, loaded.predict(x, verbose=0))
    # an eager call runs other matmul kernels than predict's graph: equal to float32 rounding
    # (CI once saw 1 ulp, 1.2e-7, under load); a dropout mask would change whole units
    np.testing.assert_allclose(first, loaded(x), rtol=1e-6, atol=1e-7)
    assert loaded.evaluate(x, y, verbose=0) == loaded.evaluate(x, y, verbose=0)
    # ... and equals the weight-scaled (standard dropout) prediction
    np.testing.assert_allclose(first, to_standard_dropout(loaded).predict(x, verbose=0),
                               rtol=1e-6, atol=1e-7)
    # MC sampling is asked for explicitly and really samples
    pred = dnnguide.mc_predict(loaded, x, n_samples=20, seed=0)
    assert pred.std.max() > 1e-3


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
    with mc_sampling():
        a = np.asarray(to_mc_dropout(model, seed=5)(x))
        b = np.asarray(to_mc_dropout(model, seed=5)(x))
        c = np.asarray(to_mc_dropout(model, seed=6)(x))
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


# --------------------------------------------------------------------------- Calibration
@pytest.mark.parametrize("task,shape", [("classification", (50, 4)), ("binary", (50, 1))])
def test_temperature_one_returns_the_probabilities_bitwise(task, shape):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), 50)[:, :shape[1]].astype("float32")
    if task == "binary":
        p = rng.uniform(size=shape).astype("float32")
    np.testing.assert_array_equal(np.asarray(Calibration(task, temperature=1.0)(p)), p)
    hot = np.asarray(Calibration(task, temperature=2.0)(p))
    assert not np.array_equal(hot, p)
    # T > 1 flattens: the top probability (or |p - 0.5|) shrinks, the ranking stays
    if task == "binary":
        assert np.all(np.abs(hot - 0.5) <= np.abs(p - 0.5) + 1e-6)
    else:
        np.testing.assert_allclose(hot.sum(1), 1.0, rtol=1e-5)
        assert np.all(hot.max(1) <= p.max(1) + 1e-6)
        np.testing.assert_array_equal(hot.argmax(1), p.argmax(1))


def test_calibration_layer_matches_the_numpy_temper_and_handles_zeros():
    from dnnguide.calibration import temper

    p = np.array([[0.7, 0.3, 0.0], [1.0, 0.0, 0.0]], "float32")
    out = np.asarray(Calibration("classification", temperature=0.5)(p))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, temper(p, 0.5), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out[0, :2], np.array([0.49, 0.09]) / 0.58, rtol=1e-5)


def test_calibration_layer_validates_and_serializes():
    with pytest.raises(ValueError, match=r"Argument `temperature` must be a positive .*"
                                         r"Received: temperature=0"):
        Calibration("classification", temperature=0)
    with pytest.raises(ValueError, match="Argument `noise_variance`.*Received"):
        Calibration("regression", noise_variance=[-1.0])
    with pytest.raises(ConfigError, match="Argument `task`"):
        Calibration("regresion")
    layer = Calibration("regression", noise_variance=[2.0], mc_noise_variance=np.array([0.5]))
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert clone.get_config() == layer.get_config() and clone.mc_noise_variance == [0.5]
    x = np.array([[1.5], [-2.0]], "float32")
    np.testing.assert_array_equal(np.asarray(clone(x)), x)  # regression: outputs unchanged
