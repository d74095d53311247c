"""Offline datasets, train-only standardization, and refusal of bad data before training."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pandas as pd
import pytest

from dnnguide.config import ConfigError
from dnnguide.data import DataError, from_arrays, from_spec, load_dataset, validate_arrays


@pytest.mark.parametrize("name, task, n_outputs, n_features", [
    ("digits", "classification", 10, 64),
    ("breast_cancer", "binary", 1, 30),
    ("diabetes", "regression", 1, 10),
])
def test_sklearn_datasets(name, task, n_outputs, n_features):
    ds = load_dataset(name, seed=0)
    assert (ds.task, ds.n_outputs, ds.input_shape) == (task, n_outputs, (n_features,))
    total = len(ds.x_train) + len(ds.x_val) + len(ds.x_test)
    assert abs(len(ds.x_test) / total - 0.2) < 0.01
    # standardization statistics come from the training split only
    np.testing.assert_allclose(ds.x_train.mean(0), 0.0, atol=1e-4)
    assert np.abs(ds.x_test.mean(0)).max() > 1e-3


def test_mnist1d_is_deterministic_with_its_4000_1000_split():
    a, b = load_dataset("mnist1d"), load_dataset("mnist1d")
    assert len(a.x_train) + len(a.x_val) == 4000 and len(a.x_test) == 1000
    assert a.input_shape == (40,) and a.n_outputs == 10
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_train, b.y_train)


def test_spec_reloads_the_same_split():
    ds = load_dataset("digits", seed=3, val_fraction=0.2)
    again = from_spec(ds.spec)
    np.testing.assert_array_equal(ds.x_val, again.x_val)


def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"Received: data='digit'.*Did you mean 'digits'"):
        load_dataset("digit")


def test_csv_with_named_target(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200),
                          "color": rng.choice(["red", "blue"], size=200),
                          "label": rng.choice(["x", "y", "z"], size=200)})
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    ds = load_dataset(str(path), target="label")
    assert ds.task == "classification" and ds.n_outputs == 3
    assert ds.input_shape == (4,)  # a, b and two one-hot columns for `color`
    with pytest.raises(ConfigError, match=r"one of the CSV's columns \['a', 'b', 'color', 'label'\]"):
        load_dataset(str(path), target="price")


@pytest.mark.parametrize("name", ["fashion_mnist", "cifar10"])
def test_missing_local_dataset_says_where_to_put_it(name, tmp_path, monkeypatch):
    monkeypatch.setenv("DNNGUIDE_DATA", str(tmp_path))
    with pytest.raises(DataError) as err:
        load_dataset(name)
    assert f"{name}.npz" in str(err.value) and str(tmp_path) in str(err.value)


def test_local_npz(tmp_path, monkeypatch):
    monkeypatch.setenv("DNNGUIDE_DATA", str(tmp_path))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "fashion_mnist.npz",
             x_train=rng.integers(0, 255, (100, 28, 28), dtype=np.uint8), y_train=np.arange(100) % 10,
             x_test=rng.integers(0, 255, (20, 28, 28), dtype=np.uint8), y_test=np.arange(20) % 10)
    ds = load_dataset("fashion_mnist")
    assert ds.input_shape == (784,) and len(ds.x_test) == 20 and ds.n_outputs == 10


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_from_keras_cache_files(tmp_path, monkeypatch):
    monkeypatch.setenv("DNNGUIDE_DATA", str(tmp_path))
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    images = np.arange(200 * 28 * 28).reshape(200, 28, 28) % 256
    for prefix, n in (("train", 200), ("t10k", 200)):
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images[:n])
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    ds = load_dataset("fashion_mnist", standardize=False)
    np.testing.assert_array_equal(np.sort(ds.x_test[:, 5]), np.sort(images[:, 0, 5]).astype("float32"))


def test_cifar10_from_keras_cache_files(tmp_path, monkeypatch):
    monkeypatch.setenv("DNNGUIDE_DATA", str(tmp_path))
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 255, (40, 3072), dtype=np.uint8),
                 b"labels": list(np.arange(40) % 10)}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    ds = load_dataset("cifar10")
    assert ds.input_shape == (3072,) and len(ds.x_train) + len(ds.x_val) == 200


# ---------------------------------------------------------------- bad data
def test_nan_features_are_refused():
    x = np.ones((10, 3))
    x[4, 1] = np.nan
    with pytest.raises(DataError, match=r"NaN or inf in 1 rows \(first: \[4\]\)"):
        validate_arrays(x, np.zeros(10), "classification", 2)


def test_mismatched_lengths_are_refused():
    with pytest.raises(DataError, match="x has 10 rows, y has 9"):
        from_arrays(np.ones((10, 3)), np.zeros(9))


def test_labels_out_of_range_are_refused():
    with pytest.raises(DataError, match=r"must be in \[0, 2\].*Received labels in \[0, 5\]"):
        validate_arrays(np.ones((6, 2)), np.arange(6), "classification", 3)


def test_regression_target_with_classification_task_is_refused():
    with pytest.raises(DataError, match="use task='regression'"):
        from_arrays(np.ones((10, 2)), np.linspace(0, 1, 10), task="classification")
