"""Offline datasets, train-only standardization, and refusal of bad data before training."""

from __future__ import annotations

import gzip
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

from dnnguide.config import ConfigError
from dnnguide.data import (
    DataError,
    from_arrays,
    from_spec,
    load_dataset,
    validate_arrays,
)
from dnnguide.tables import CategoricalEncodingWarning, TaskInferenceWarning


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


def test_csv_integer_amount_target_is_regression(tmp_path):
    # An integer price column (diamonds' `price`: 11,602 distinct dollars) is an amount. Read
    # as classes it asked for a class per price and failed on the split's size.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["price"] = (1000 + 300 * x[:, 0] + rng.integers(0, 50, 400)).astype(int)
    frame["grade"] = (x[:, 1] > 0).astype(int) + (x[:, 2] > 0).astype(int)  # 3 classes
    path = tmp_path / "prices.csv"
    frame.to_csv(path, index=False)
    with pytest.warns(TaskInferenceWarning, match=r"'price'.*distinct values.*task='classification'"):
        amounts = load_dataset(str(path), target="price")
    assert amounts.task == "regression" and amounts.n_outputs == 1
    assert amounts.y_train.dtype == np.float32 and amounts.y_train.max() > 500
    grades = load_dataset(str(path), target="grade")  # a few integers are still classes
    assert grades.task == "classification" and grades.n_outputs == 3
    with pytest.raises(DataError, match="classes"):  # the user's task wins, and is checked
        load_dataset(str(path), target="price", task="classification")


def test_csv_integer_quantity_read_as_labels_says_so(tmp_path):
    # plotnine's mpg: highway mileage, 27 whole numbers from 12 to 44 in 234 rows, is under the
    # class-label limit; read as 27 classes it needs 327 rows. The warning, and the error,
    # name task='regression'.
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"displ": rng.uniform(1.6, 7.0, 234)})
    frame["hwy"] = np.resize(np.arange(12, 39), 234)
    frame["labels"] = np.resize(np.arange(12), 234)  # codes 0..11: labels, no warning
    path = tmp_path / "mpg.csv"
    frame.to_csv(path, index=False)
    with pytest.warns(TaskInferenceWarning, match=r"'hwy'.*27 distinct whole numbers from 12 "
                      r"to 38: read as 27 class labels.*task='regression'"):
        with pytest.raises(DataError, match=r"needs at least 327 for 27 classes.*27 distinct "
                           r"numbers were read as class labels.*task='regression'"):
            load_dataset(str(path), target="hwy")
    assert load_dataset(str(path), target="hwy", task="regression").task == "regression"
    with warnings.catch_warnings():
        warnings.simplefilter("error", TaskInferenceWarning)
        assert load_dataset(str(path), target="labels").n_outputs == 12
    # a regression target too small to split gets the size error alone, no word of labels
    frame.head(8).assign(hwy=lambda f: f.hwy * 1.5).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        load_dataset(str(path), target="hwy")
    assert "has 8 rows" in str(err.value) and "class labels" not in str(err.value)


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


# --------------------------------------------------------------------------- CSVs (issue 17)
def _write_csv(tmp_path, frame, name="table.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def _wine_like(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"alcohol": rng.normal(13, 1, n), "ash": rng.normal(2.4, 0.3, n),
                         "hue": rng.normal(1, 0.2, n), "magnesium": rng.integers(70, 160, n),
                         "color": rng.normal(5, 2, n), "proline": rng.normal(750, 300, n),
                         "cultivar": rng.choice(["barolo", "grignolino", "barbera"], n)})


def test_csv_numeric_column_with_a_stray_text_cell_is_refused(tmp_path):
    frame = _wine_like().astype({"ash": object})
    frame.loc[4, "ash"] = "abc"
    path = _write_csv(tmp_path, frame)
    # Before: "abc" made `ash` a text column: 60 one-hot columns, and training went on.
    with pytest.raises(DataError, match=r"Column 'ash' .* numeric except for 1 cells "
                                        r"\(line 6: 'abc'\)"):
        load_dataset(path, target="cultivar")


def test_csv_identifier_column_is_not_one_hot_encoded(tmp_path):
    frame = _wine_like()
    frame["sample_id"] = [f"s{i:03d}" for i in range(len(frame))]
    with pytest.raises(DataError, match=r"Column 'sample_id' .* 60 distinct values in 60 rows.*"
                                        r"not clearly categorical"):
        load_dataset(_write_csv(tmp_path, frame), target="cultivar")


def test_csv_categorical_column_is_encoded_and_reported(tmp_path):
    frame = _wine_like()
    frame["region"] = np.resize(["north", "south", "east"], len(frame))
    with pytest.warns(CategoricalEncodingWarning,
                      match=r"'region' -> 3 columns \(east, north, south\)"):
        ds = load_dataset(_write_csv(tmp_path, frame), target="cultivar", standardize=False)
    prep = ds.spec["preprocessing"]
    assert prep["categorical"] == {"region": ["east", "north", "south"]}
    assert ds.input_shape == (6 + 3,)
    assert prep["classes"] == ["barbera", "barolo", "grignolino"]
    # One 1 per row among the three region columns, at the right place.
    onehot = ds.x_train[:, 6:]
    assert set(onehot.sum(axis=1)) == {1.0}


def test_csv_nan_is_reported_with_file_lines_and_columns(tmp_path):
    frame = _wine_like(n=500)
    frame.loc[10, "hue"] = np.nan
    frame.loc[20, "proline"] = np.inf
    # Before: the check ran after standardization (NaN mean) and blamed all 409 training rows.
    with pytest.raises(DataError, match=r"NaN or inf in 2 rows \(line 12: \['hue'\]; "
                                        r"line 22: \['proline'\]\)"):
        load_dataset(_write_csv(tmp_path, frame), target="cultivar")


@pytest.mark.parametrize("rows, message", [
    (3, r"has 3 rows; a train/validation/test split needs at least 20"),
    (10, r"has 10 rows; a train/validation/test split needs at least 20"),
])
def test_csv_with_too_few_rows_names_the_minimum(tmp_path, rows, message):
    frame = _wine_like(n=rows)
    frame["cultivar"] = np.resize(["a", "b"], rows)
    with pytest.raises(DataError, match=message):
        load_dataset(_write_csv(tmp_path, frame), target="cultivar")


def test_csv_empty_and_header_only_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match=r"is empty.*header row.*at least 20 data rows"):
        load_dataset(str(empty), target="y")
    header = tmp_path / "header.csv"
    header.write_text("a,b,y\n")
    with pytest.raises(DataError, match=r"header but no data rows; it needs at least 20 rows"):
        load_dataset(str(header), target="y")


def test_csv_class_with_a_single_row_is_refused(tmp_path):
    frame = _wine_like(n=60)
    frame.loc[7, "cultivar"] = "nebbiolo"
    with pytest.raises(DataError, match=r"Class\(es\) \['nebbiolo'\] .* fewer than 3 rows "
                                        r"\(least: 1\).*at least 3 rows per class"):
        load_dataset(_write_csv(tmp_path, frame), target="cultivar")


def test_csv_single_class_target_is_refused(tmp_path):
    frame = _wine_like(n=60)
    frame["cultivar"] = "barolo"
    # Before: trained to accuracy 1.0.
    with pytest.raises(DataError, match=r"single class \('barolo' in all 60 rows\).*at least 2"):
        load_dataset(_write_csv(tmp_path, frame), target="cultivar")


def test_many_classes_need_more_rows(tmp_path):
    def frame(n):
        rng = np.random.default_rng(0)
        return pd.DataFrame({"a": rng.normal(size=n), "y": np.resize(np.arange(20), n)})

    # 20 classes: the validation split (10% of the rest) needs one row of each.
    with pytest.raises(DataError, match=r"has 238 rows; .* needs at least 239 for 20 classes"):
        load_dataset(_write_csv(tmp_path, frame(238)), target="y")
    ds = load_dataset(_write_csv(tmp_path, frame(239), "ok.csv"), target="y")  # the minimum works
    assert len(np.unique(ds.y_val)) == 20


def test_path_without_csv_suffix_is_told_to_end_in_csv(tmp_path):
    path = tmp_path / "table.txt"
    _wine_like().to_csv(path, index=False)
    with pytest.raises(DataError, match=r"CSV files must end in .csv.*Received: data='.*table.txt'"):
        load_dataset(str(path), target="cultivar")


def test_integer_labels_become_codes_and_keep_their_names(tmp_path):
    frame = _wine_like()
    frame["cultivar"] = frame["cultivar"].map({"barolo": 1, "grignolino": 2, "barbera": 3})
    ds = load_dataset(_write_csv(tmp_path, frame), target="cultivar", seed=1)
    # Before: labels 1..3 gave a 4-class model with an unused class 0.
    assert ds.n_outputs == 3 and set(np.unique(ds.y_train)) == {0, 1, 2}
    assert ds.spec["preprocessing"]["classes"] == [1, 2, 3]


def test_standardization_statistics_are_recorded(tmp_path):
    frame = _wine_like()
    path = _write_csv(tmp_path, frame)
    raw = load_dataset(path, target="cultivar", standardize=False, seed=2)
    ds = load_dataset(path, target="cultivar", seed=2)
    prep = ds.spec["preprocessing"]
    mean, std = np.asarray(prep["mean"], "float32"), np.asarray(prep["std"], "float32")
    np.testing.assert_array_equal((raw.x_test - mean) / std, ds.x_test)
    assert prep["columns"] == ["alcohol", "ash", "hue", "magnesium", "color", "proline"]
    again = from_spec(ds.spec)  # the recorded statistics do not disturb reloading
    np.testing.assert_array_equal(again.x_val, ds.x_val)


def test_standardization_caps_the_reach_of_sparse_features_and_keeps_gaussian_ones():
    from dnnguide.data import MAX_Z, standardization

    rng = np.random.default_rng(0)
    x = np.zeros((1000, 3), "float32")
    x[:, 0] = rng.normal(3.0, 2.0, 1000)  # Gaussian: reaches ~3.3 std, keeps its std
    x[:5, 1] = 7.0  # sparse: 5 rows of 1000 would sit 14 std out
    mean, scale = standardization(x)
    z = (x - mean) / scale
    assert scale[0] == pytest.approx(x[:, 0].std(), rel=1e-5)
    assert np.abs(z[:, 1]).max() == pytest.approx(MAX_Z, rel=1e-5)  # was 14.1 std
    assert np.abs(x[:, 1] - x[:, 1].mean()).max() / x[:, 1].std() > 14
    assert scale[2] == 1.0 and np.all(z[:, 2] == 0)  # constant: centred, unscaled
    assert z[5, 1] < 0 < z[0, 1]  # order kept, unlike clipping


def test_the_loader_and_the_models_own_layer_scale_digits_alike():
    import dnnguide
    from sklearn.datasets import load_digits

    from dnnguide.data import MAX_Z, from_arrays

    data = load_dataset("digits", seed=0)
    assert np.abs(data.x_train).max() == pytest.approx(MAX_Z, rel=1e-5)  # plain std: 35.9
    assert np.abs(data.x_test).max() < 11  # plain std: 53.6
    x, y = load_digits(return_X_y=True)
    raw = from_arrays(x.astype("float32"), y, seed=0)  # the same split, unscaled
    model = dnnguide.build_model("default", (64,), 10, depth=1, width=8, adapt_data=raw.x_train)
    np.testing.assert_allclose(np.asarray(model.get_layer("standardize")(raw.x_test)),
                               data.x_test, atol=1e-5)


def test_a_recorded_spec_reloads_with_its_own_scaling_even_after_the_rule_changed():
    data = load_dataset("digits", seed=3)
    again = from_spec(data.spec)
    np.testing.assert_array_equal(again.x_test, data.x_test)
    assert again.spec == data.spec
    # A run recorded before the sparse-feature cap: plain standard deviations.
    raw = load_dataset("digits", seed=3, standardize=False)
    plain = raw.x_train.std(0)
    plain[plain == 0] = 1.0
    old = {**data.spec, "preprocessing": {**data.spec["preprocessing"], "std": plain.tolist()}}
    reloaded = from_spec(old)
    mean = np.asarray(data.spec["preprocessing"]["mean"], "float32")
    np.testing.assert_allclose(reloaded.x_train, (raw.x_train - mean) / plain, rtol=1e-6)
    assert np.abs(reloaded.x_train).max() > 30  # what that run was trained on, not the cap
