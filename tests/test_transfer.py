"""Transfer learning: copies that leave the source alone, two-phase fine-tuning, pretraining."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

import dnnguide
from dnnguide import transfer
from dnnguide.config import ConfigError
from dnnguide.pretrain import _reconstruction_target, pretrain_autoencoder, pretrain_auxiliary

ROOT = Path(__file__).resolve().parents[1]


def digest(model) -> str:
    weights = b"".join(np.asarray(w).tobytes() for w in model.get_weights())
    return hashlib.sha256(weights).hexdigest()


def bn_source(x, y, *, adapt=None, epochs=1):
    """A small trained classifier with batch norm (non-trivial moving statistics)."""
    model = dnnguide.build_model("default", input_shape=x.shape[1:], n_outputs=3, depth=2,
                                 width=16, normalization="batch_norm_after", adapt_data=adapt)
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return model


class WeightLog(keras.callbacks.Callback):
    """Copies of chosen variables after every epoch (both phases of a fine-tuning run)."""

    def __init__(self, names):
        super().__init__()
        self.names, self.epochs = names, []

    def on_train_begin(self, logs=None):
        if not self.epochs:
            self.epochs.append(self._snapshot())

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(self._snapshot())

    def _snapshot(self):
        return {n: [np.array(w) for w in self.model.get_layer(n).weights] for n in self.names}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """One two-phase run: source digest before/after, per-epoch weights, the run directory."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 8)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64")
    source = bn_source(x, (x[:, 2] > 0).astype("int64") + (x[:, 3] > 0))
    before = digest(source)
    model = transfer.reuse_layers(source, n_outputs=1, task="binary")
    log = WeightLog(["hidden_1", "batch_norm_1", "hidden_2", "batch_norm_2", "output"])
    result = dnnguide.fine_tune(model, (x, y), head_epochs=2, epochs=4, batch_size=32,
                                run_dir=tmp_path_factory.mktemp("runs"), callbacks=[log],
                                verbose=0)
    return {"source": source, "before": before, "model": model, "log": log.epochs,
            "result": result}


def test_source_is_copied_and_stays_bitwise_unchanged(tuned):
    source, model = tuned["source"], tuned["model"]
    assert digest(source) == tuned["before"]
    assert not {id(v) for v in source.weights} & {id(v) for v in model.weights}
    assert not {id(layer) for layer in source.layers} & {id(layer) for layer in model.layers}
    assert all(layer.trainable for layer in source.layers)  # freezing the copy froze nothing here


def test_frozen_in_phase_1_then_trained_in_phase_2(tuned):
    log = tuned["log"]  # [initial, after epoch 1, 2 (head phase), 3, 4 (fine-tuning)]
    assert len(log) == 5

    def same(a, b, layer):
        return all(np.array_equal(u, v) for u, v in zip(a[layer], b[layer]))

    for layer in ("hidden_1", "hidden_2"):
        assert same(log[0], log[2], layer), f"{layer} moved while frozen"
        assert not same(log[2], log[4], layer), f"{layer} did not move after unfreezing"
    assert not same(log[0], log[2], "output")  # the head trains in phase 1


def test_batch_norm_statistics_stay_fixed_in_both_phases(tuned):
    log = tuned["log"]
    for layer in ("batch_norm_1", "batch_norm_2"):  # gamma, beta, moving mean, moving variance
        for epoch in log[1:]:
            assert all(np.array_equal(u, v) for u, v in zip(log[0][layer], epoch[layer]))
    assert not any(layer.trainable for layer in tuned["model"].layers
                   if isinstance(layer, keras.layers.BatchNormalization))


def test_one_run_one_history_with_the_lowered_learning_rate(tuned):
    result = tuned["result"]
    history = pd.read_csv(result.run_dir / "history.csv")
    assert history["epoch"].tolist() == [0, 1, 2, 3]
    lr = history["learning_rate"].to_numpy()
    np.testing.assert_allclose(lr[2:], lr[1] * transfer.DEFAULT_LR_FACTOR, rtol=1e-6)
    info = json.loads((result.run_dir / "run.json").read_text())
    assert info["transfer"]["freeze_epochs"] == 2 and info["status"] == "complete"


def test_reused_model_reloads_in_safe_mode(tuned):
    result = tuned["result"]
    reloaded = keras.saving.load_model(result.run_dir / "model.keras", safe_mode=True)
    x = result.data.x_test[:16]
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0),
                                  result.model.predict(x, verbose=0))
    frozen = lambda m: [layer.trainable for layer in m.layers if layer.weights]  # noqa: E731
    assert frozen(reloaded) == frozen(result.model) == [True, False, True, False, True]


def test_cut_points_and_copied_standardization(blobs):
    x, y = blobs
    source = bn_source(x * 3 + 1, y, adapt=x * 3 + 1, epochs=0)
    names = lambda m: [layer.name for layer in m.layers]  # noqa: E731
    assert names(transfer.reuse_layers(source, 1))[-3:] == ["hidden_1", "batch_norm_1", "output"]
    assert "hidden_2" in names(transfer.reuse_layers(source))
    assert names(transfer.reuse_layers(source, "all"))[-2:] == ["output", "new_output"]
    assert names(transfer.reuse_layers(source, "hidden_1"))[-2:] == ["hidden_1", "output"]
    # The copy computes exactly what the source computes, adapted Normalization included
    # (set_weights alone leaves its mean/variance constants at 0/1).
    model = transfer.reuse_layers(source, 2)
    copied = keras.Model(model.inputs, model.get_layer("batch_norm_2").output)
    original = keras.Model(source.inputs, source.get_layer("batch_norm_2").output)
    np.testing.assert_array_equal(copied.predict(x, verbose=0), original.predict(x, verbose=0))
    with pytest.raises(ConfigError, match=r"Argument `n_layers` must be in \[1, 3\]"):
        transfer.reuse_layers(source, 4)
    with pytest.raises(ConfigError, match="Received: n_layers='hiden_1'"):
        transfer.reuse_layers(source, "hiden_1")


def test_unfreeze_top_layers_keeps_batch_norm_frozen(blobs):
    source = bn_source(*blobs, epochs=0)
    model = transfer.reuse_layers(source)
    assert transfer.unfreeze(model, 1) == ["hidden_2"]
    assert not model.get_layer("hidden_1").trainable
    assert not model.get_layer("batch_norm_2").trainable


def test_fine_tune_refuses_bad_arguments_before_writing(blobs, tmp_path):
    source = bn_source(*blobs, epochs=0)
    model = transfer.reuse_layers(source, n_outputs=3, task="classification")
    with pytest.raises(ConfigError, match="Argument `epochs` must be in"):
        dnnguide.fine_tune(model, blobs, head_epochs=5, epochs=5, run_dir=tmp_path)
    with pytest.raises(ConfigError, match="Argument `lr_factor`"):
        dnnguide.fine_tune(model, blobs, head_epochs=1, epochs=3, lr_factor=2.0, run_dir=tmp_path)
    unfrozen = transfer.reuse_layers(source, n_outputs=3, task="classification", freeze=False)
    with pytest.raises(ConfigError, match="no frozen layers"):
        dnnguide.fine_tune(unfrozen, blobs, head_epochs=1, epochs=3, run_dir=tmp_path)
    scheduled = transfer.reuse_layers(source, n_outputs=3, task="classification",
                                      config=dnnguide.get_preset("default", schedule="exponential"))
    with pytest.raises(ConfigError, match="ExponentialSchedule"):
        dnnguide.fine_tune(scheduled, blobs, head_epochs=1, epochs=3, run_dir=tmp_path)
    with pytest.raises(TypeError, match="subclassed"):
        transfer.reuse_layers(keras.Model())
    assert list(tmp_path.iterdir()) == []


def test_autoencoder_reconstructs_better_than_the_mean():
    data = dnnguide.load_dataset("digits", seed=0)
    encoder = pretrain_autoencoder("default", data.x_train, depth=2, width=32, epochs=15)
    autoencoder = encoder.pretraining.model
    target = _reconstruction_target(encoder, data.x_test)
    mse = float(np.mean((autoencoder.predict(data.x_test, verbose=0) - target) ** 2))
    baseline = float(np.mean((_reconstruction_target(encoder, data.x_train).mean(0) - target) ** 2))
    assert mse < 0.6 * baseline, (mse, baseline)  # measured 0.48 vs 0.99
    assert encoder.output_shape == (None, 32)
    # Its encoder is reused as is: the new model starts from exactly those features.
    model = dnnguide.reuse_layers(encoder, "all", n_outputs=10, task="classification")
    features = keras.Model(model.inputs, model.layers[-2].output)
    np.testing.assert_array_equal(features.predict(data.x_test, verbose=0),
                                  encoder.predict(data.x_test, verbose=0))


def test_autoencoder_passes_features_constant_in_the_pool_through_unscaled():
    # Raw digits: pixel 0 is blank in every row of the pool. Keras' Normalization would divide
    # a later non-blank value by 1e-7 there; the encoder sees it centered and unscaled instead.
    from sklearn.datasets import load_digits

    x = load_digits().data.astype("float32")
    constant = np.all(x == x[:1], axis=0)
    assert constant.any()
    encoder = pretrain_autoencoder("default", x[:200], depth=1, width=8, epochs=1)
    probe = x[:1].copy()
    probe[0, constant] = 16.0  # the largest pixel value
    seen = _reconstruction_target(encoder, probe)
    np.testing.assert_allclose(seen[0, constant], 16.0)
    assert np.all(np.isfinite(encoder.predict(probe, verbose=0)))


def test_tied_autoencoder_trains_each_encoder_kernel_once(blobs):
    x, _ = blobs
    encoder = pretrain_autoencoder("default", x, depth=2, width=4, epochs=1, tied=True)
    variables = encoder.pretraining.model.trainable_variables
    kernels = [v for v in variables if v.path.endswith("kernel")]
    assert len(kernels) == 2 and len({id(v) for v in variables}) == len(variables)
    assert len(variables) == 2 * 2 + 2  # encoder kernels and biases, decoder biases only


def test_auxiliary_body_is_the_trained_network_without_its_head(blobs):
    # No dropout (the data rules would add it for 216 rows): the body ends at hidden_2.
    body = pretrain_auxiliary("default", blobs, depth=2, width=8, epochs=2, dropout_rate=0.0)
    network = body.pretraining.model
    assert body.output_shape == (None, 8)
    assert [layer.name for layer in body.layers][-1] == "hidden_2"
    x = blobs[0][:5]
    hidden = keras.Model(network.inputs, network.get_layer("hidden_2").output)
    np.testing.assert_array_equal(body.predict(x, verbose=0), hidden.predict(x, verbose=0))


def test_cli_train_init_from_runs_end_to_end(tmp_path, capsys):
    from dnnguide.cli import main

    base = ["--data", "digits", "--run-dir", str(tmp_path), "--verbose", "0", "--depth", "2",
            "--width", "16"]
    assert main(["train", *base, "--epochs", "2", "--name", "source"]) == 0
    (source,) = tmp_path.glob("*-source")
    # Architecture overrides are refused: the reused layers come from the source run.
    assert main(["train", "--init-from", str(source), *base[:-4], "--depth", "3"]) == 2
    assert "change the reused layers" in capsys.readouterr().err
    assert main(["train", "--init-from", str(source), "--data", "digits", "--run-dir",
                 str(tmp_path), "--verbose", "0", "--reuse-layers", "1", "--freeze-epochs", "1",
                 "--epochs", "3", "--name", "target"]) == 0
    (target,) = tmp_path.glob("*-target")
    model = keras.saving.load_model(target / "model.keras", safe_mode=True)
    # digits is small data: the source preset has dropout after each layer, reused with it
    # ...and the target run's temperature, fitted on its own validation split, on top
    assert [layer.name for layer in model.layers] == ["features", "hidden_1", "dropout_1",
                                                      "output", "calibration"]
    history = pd.read_csv(target / "history.csv")
    assert history["epoch"].tolist() == [0, 1, 2]
    assert history["learning_rate"].iloc[-1] == pytest.approx(history["learning_rate"][0] * 0.1)
    info = json.loads((target / "run.json").read_text())["transfer"]
    assert info["init_from"] == str(source) and info["reuse_layers"] == 1
    # Resuming would rebuild the network from config.json, not from the source's layers.
    run_json = target / "run.json"
    run_json.write_text(run_json.read_text().replace('"complete"', '"running"'))
    with pytest.raises(ConfigError, match="cannot be resumed"):
        dnnguide.fit(resume=target)
    # Three epochs on 16 reused units, the head alone for one: above chance (0.1), measured 0.24.
    assert json.loads((target / "metrics.json").read_text())["test_accuracy"] > 0.15


def load_recipe():
    spec = importlib.util.spec_from_file_location("transfer_recipe",
                                                  ROOT / "recipes" / "transfer_learning.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    return recipe


def test_transfer_recipe_quick(tmp_path):
    recipe = load_recipe()
    assert recipe.main(["--quick", "--run-dir", str(tmp_path)]) == 0
    (run,) = tmp_path.iterdir()
    summary = pd.read_csv(run / "summary.csv")
    assert set(summary["method"]) == {"scratch", "A fine-tuned"}
    assert (summary["seeds"] == 2).all() and summary["mean"].between(0, 1).all()
    scratch = summary.set_index("method").loc["scratch"]
    assert scratch["gain_mean"] == 0.0
    assert (run / "accuracy_vs_labels.png").read_bytes()[:4] == b"\x89PNG"


def test_keras_applications_model_from_a_local_weights_file(tmp_path):
    # Nothing is downloaded: weights=None, then the same architecture from a file on disk.
    kwargs = {"input_shape": (32, 32, 3), "alpha": 0.35, "include_top": False, "pooling": "avg"}
    trained = keras.applications.MobileNetV2(weights=None, **kwargs)
    path = tmp_path / "mobilenet_v2.weights.h5"
    trained.save_weights(path)
    base = keras.applications.MobileNetV2(weights=str(path), **kwargs)
    model = transfer.reuse_layers(base, "all", n_outputs=5, task="classification")
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    features = keras.Model(model.inputs, model.layers[-2].output)
    np.testing.assert_allclose(features.predict(x, verbose=0), trained.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    assert [layer.name for layer in model.layers if layer.trainable] == ["output"]


def test_recipe_summary_pairs_each_seed_with_its_scratch_run(tmp_path):
    rows = [("scratch", 0, 0.80), ("scratch", 1, 0.90), ("A fine-tuned", 0, 0.85),
            ("A fine-tuned", 1, 0.88)]
    results = pd.DataFrame([{"data": "d", "n_labels": 50, "method": m, "seed": s,
                             "test_accuracy": a} for m, s, a in rows])
    results.to_csv(tmp_path / "results.csv", index=False)
    assert load_recipe().main(["--summarize", str(tmp_path / "results.csv"),
                               "--run-dir", str(tmp_path / "out")]) == 0
    (run,) = (tmp_path / "out").iterdir()
    reuse = pd.read_csv(run / "summary.csv").set_index("method").loc["A fine-tuned"]
    assert reuse["mean"] == pytest.approx(0.865)
    assert reuse["gain_mean"] == pytest.approx(0.015)  # (+0.05 - 0.02) / 2, paired by seed
    assert reuse["gain_std"] == pytest.approx(np.std([0.05, -0.02], ddof=1))
    assert reuse["seeds_better"] == 1 and reuse["seeds"] == 2


def test_cli_pretrain_autoencoder_then_train(tmp_path, capsys):
    from dnnguide.cli import main

    unlabelled = tmp_path / "unlabelled.npy"
    np.save(unlabelled, dnnguide.load_dataset("digits", standardize=False).x_test)
    assert main(["pretrain", "--data", "digits", "--unlabelled", str(unlabelled), "--depth", "1",
                 "--width", "16", "--pretrain-epochs", "10", "--epochs", "3",
                 "--freeze-epochs", "1", "--run-dir", str(tmp_path / "runs"),
                 "--verbose", "0"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["pretrain_val_mse"] < metrics["pretrain_val_mse_mean_predictor"]
    assert metrics["pretrain_n_unlabelled"] == 360 + 1293  # the file + the labelled inputs
    encoder = keras.saving.load_model(run / "encoder.keras", safe_mode=True)
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    x = dnnguide.load_dataset("digits", standardize=False).x_test[:8]
    hidden = keras.Model(model.inputs, model.get_layer("hidden_1").output)
    assert not np.array_equal(hidden.predict(x, verbose=0), encoder.predict(x, verbose=0))
    assert "reconstruction MSE" in capsys.readouterr().out
