"""Datasets that work offline, train-only standardization, and checks before training.

Embedded: ``digits``, ``breast_cancer``, ``diabetes`` (scikit-learn), ``mnist1d`` (the
``mnist1d`` package's deterministic generator, 4000 train / 1000 test). From local
files: any CSV (``load_dataset("data.csv", target="price")``), and Fashion-MNIST /
CIFAR-10 from a ``.npz`` or the Keras cache, with an error saying where to put them.

Example:
    >>> ds = load_dataset("digits", seed=0)
    >>> ds.x_train.shape[1], ds.n_outputs, ds.task
    (64, 10, 'classification')
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dnnguide.config import TASKS, ConfigError, check_choice, check_range

EMBEDDED = ("digits", "breast_cancer", "diabetes", "mnist1d")
LOCAL = ("fashion_mnist", "cifar10")


class DataError(ValueError):
    """Data that would make training fail or silently wrong."""


@dataclass
class Dataset:
    """Train / validation / test arrays plus what the model needs to know about them."""

    name: str
    task: str
    n_outputs: int
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    standardized: bool = False
    spec: dict[str, Any] = field(default_factory=dict)  # how to load it again
    notes: list[str] = field(default_factory=list)  # what was inferred or held out, for the record

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name, "task": self.task, "n_outputs": self.n_outputs,
            "n_train": len(self.x_train), "n_val": len(self.x_val), "n_test": len(self.x_test),
            "input_shape": list(self.input_shape), "standardized": self.standardized,
            **({"notes": list(self.notes)} if self.notes else {}),
        }


# --------------------------------------------------------------------------- loaders
def _sklearn(name: str):
    from sklearn import datasets

    loader = {"digits": datasets.load_digits, "breast_cancer": datasets.load_breast_cancer,
              "diabetes": datasets.load_diabetes}[name]
    bunch = loader()
    task = {"digits": "classification", "breast_cancer": "binary", "diabetes": "regression"}[name]
    return bunch.data, bunch.target, None, None, task


def _mnist1d(_name: str):
    from mnist1d.data import get_dataset_args, make_dataset

    state = np.random.get_state()  # make_dataset reseeds NumPy's global generator
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(state)
    return d["x"], d["y"], d["x_test"], d["y_test"], "classification"


def data_home() -> Path:
    """Where local datasets are looked for: ``$DNNGUIDE_DATA`` or ``~/.keras/datasets``."""
    return Path(os.environ.get("DNNGUIDE_DATA", Path.home() / ".keras" / "datasets"))


def _missing(name: str, tried: list[Path]) -> DataError:
    where = "\n  ".join(str(p) for p in tried)
    return DataError(
        f"Dataset {name!r} is not on this machine and cannot be downloaded here. Put "
        f"{name}.npz (arrays x_train, y_train, x_test, y_test) in {data_home()} (or set "
        f"DNNGUIDE_DATA to its folder), or the Keras cache files there. Looked for:\n  {where}"
    )


def _local_npz(name: str):
    path = data_home() / f"{name}.npz"
    if path.exists():
        with np.load(path) as f:
            return f["x_train"], f["y_train"], f["x_test"], f["y_test"], "classification"
    return None


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _fashion_mnist(name: str):
    found = _local_npz(name)
    if found:
        return found
    cache = data_home() / "fashion-mnist"
    files = ["train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"]
    paths = [cache / f for f in files]
    if not all(p.exists() for p in paths):
        raise _missing(name, [data_home() / f"{name}.npz", *paths])
    y_train, x_train, y_test, x_test = (_idx(p) for p in paths)
    return x_train, y_train, x_test, y_test, "classification"


def _cifar10(name: str):
    found = _local_npz(name)
    if found:
        return found
    root = data_home() / "cifar-10-batches-py"
    paths = [root / f"data_batch_{i}" for i in range(1, 6)] + [root / "test_batch"]
    if not all(p.exists() for p in paths):
        raise _missing(name, [data_home() / f"{name}.npz", root])

    def batch(p):
        with open(p, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        return d[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.array(d[b"labels"])

    parts = [batch(p) for p in paths]
    x_train = np.concatenate([p[0] for p in parts[:5]])
    y_train = np.concatenate([p[1] for p in parts[:5]])
    return x_train, y_train, parts[5][0], parts[5][1], "classification"


MIN_ROWS = 20  # below this, a train/validation/test split measures nothing
MIN_ROWS_PER_CLASS = 3  # two stratified splits (test, then validation) need 3 per class


def _plain(value):
    """A NumPy scalar as the Python value JSON can store."""
    return value.item() if hasattr(value, "item") else value


def _split_counts(n: int, test_fraction: float, val_fraction: float,
                  has_test: bool) -> tuple[int, ...]:
    """Rows of each split, rounded as scikit-learn's ``train_test_split`` rounds them."""
    n_test = 0 if has_test else math.ceil(test_fraction * n)
    n_val = math.ceil(val_fraction * (n - n_test))
    n_train = n - n_test - n_val
    return (n_train, n_val) if has_test else (n_train, n_val, n_test)


def check_split_sizes(y, task: str, *, test_fraction: float, val_fraction: float,
                      has_test: bool = False, source: str = "the data",
                      class_names: list | None = None) -> None:
    """Refuse data too small for a train/validation/test split (or for its classes)."""
    n = len(y)
    classes, counts = (np.unique(y, return_counts=True) if task != "regression"
                       else (np.array([0]), np.array([n])))
    if class_names is not None and task != "regression":
        classes = np.array([class_names[int(c)] for c in classes], dtype=object)
    if task != "regression" and len(classes) < 2:
        raise DataError(f"The target of {source} has a single class ({_plain(classes[0])!r} in "
                        f"all {n} rows): classification needs at least 2 classes. Check the "
                        "`target` column, or use task='regression' for a continuous target.")
    k = len(classes) if task != "regression" else 1
    needed = MIN_ROWS
    while min(_split_counts(needed, test_fraction, val_fraction, has_test)) < k:
        needed += 1  # stratified splits need at least one row of every class in each split
    if n < needed:
        per_class = "" if task == "regression" else f" for {len(classes)} classes"
        raise DataError(f"{source} has {n} rows; a train/validation/test split needs at least "
                        f"{needed}{per_class} (test_fraction={test_fraction}, "
                        f"val_fraction={val_fraction}).")
    if task != "regression" and counts.min() < MIN_ROWS_PER_CLASS:
        rare = [_plain(c) for c, k in zip(classes, counts) if k < MIN_ROWS_PER_CLASS]
        raise DataError(f"Class(es) {rare[:10]} of {source} have fewer than {MIN_ROWS_PER_CLASS} "
                        f"rows (least: {int(counts.min())}); a stratified train/validation/test "
                        f"split needs at least {MIN_ROWS_PER_CLASS} rows per class. Add rows or "
                        "merge or drop those classes.")


_LOADERS = {"digits": _sklearn, "breast_cancer": _sklearn, "diabetes": _sklearn,
            "mnist1d": _mnist1d, "fashion_mnist": _fashion_mnist, "cifar10": _cifar10}


def load_dataset(
    name: str,
    *,
    seed: int = 0,
    standardize: bool = True,
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
    target: str | None = None,
    task: str | None = None,
    flatten: bool = True,
) -> Dataset:
    """Load a dataset offline and split it into train / validation / test.

    Args:
        name: one of ``digits``, ``breast_cancer``, ``diabetes``, ``mnist1d``,
            ``fashion_mnist``, ``cifar10``, or a path to a ``.csv`` file.
        seed: seed of the (stratified for classification) splits.
        standardize: scale features to mean 0 / std 1 with statistics of the training split only.
        test_fraction: test share when the source has no test split.
        val_fraction: validation share taken from the training split.
        target: the target column (CSV only).
        task: force ``classification``/``binary``/``regression`` (CSV only; else inferred). For a
            built-in dataset it must be the dataset's own task.
        flatten: flatten images to vectors (dense networks).
    """
    from sklearn.model_selection import train_test_split

    check_range("test_fraction", test_fraction, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    check_range("val_fraction", val_fraction, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    if task is not None:
        check_choice("task", task, TASKS)
    preprocessing: dict[str, Any] = {}
    if isinstance(name, (str, os.PathLike)) and str(name).endswith(".csv"):
        from dnnguide.tables import read_csv

        x, y, x_test, y_test, task, preprocessing = read_csv(str(name), target, task)
        label = Path(name).stem
    else:
        if isinstance(name, (str, os.PathLike)) and str(name) not in EMBEDDED + LOCAL and (
                os.path.exists(name) or Path(name).suffix or os.sep in str(name)):
            raise DataError(f"CSV files must end in .csv (other files and formats are not read). "
                            f"Received: data={str(name)!r}. Rename the file, or name a built-in "
                            f"dataset: {list(EMBEDDED + LOCAL)}.")
        check_choice("data", name, EMBEDDED + LOCAL)
        x, y, x_test, y_test, own_task = _LOADERS[name](name)
        if task is not None and task != own_task:
            raise ConfigError(f"Argument `task` must be {own_task!r} (or omitted) for the built-in "
                              f"dataset {name!r}. Received: task={task!r}. The task of a CSV file "
                              "can be chosen; a built-in dataset's cannot.")
        task, label = own_task, name
    check_split_sizes(np.asarray(y), task, test_fraction=test_fraction, val_fraction=val_fraction,
                      has_test=x_test is not None, source=str(name),
                      class_names=preprocessing.get("classes"))
    x = np.asarray(x, "float32")
    if flatten:
        x = x.reshape(len(x), -1)
    strat = (lambda labels: labels) if task != "regression" else (lambda labels: None)
    if x_test is None:
        x, x_test, y, y_test = train_test_split(
            x, y, test_size=test_fraction, random_state=seed, stratify=strat(y))
    x_test = np.asarray(x_test, "float32").reshape(len(x_test), *x.shape[1:])
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=val_fraction, random_state=seed, stratify=strat(y))
    y_dtype = "float32" if task == "regression" else "int64"
    y_train, y_val, y_test = (np.asarray(a).astype(y_dtype) for a in (y_train, y_val, y_test))
    if task == "regression":
        n_outputs = 1 if y_train.ndim == 1 else y_train.shape[1]
    else:
        n_outputs = 1 if task == "binary" else int(max(y_train.max(), y_test.max())) + 1
    if standardize:
        mean = x_train.mean(axis=0)
        std = x_train.std(axis=0)
        std[std == 0] = 1.0  # constant features (digits' blank pixels) stay 0
        x_train, x_val, x_test = ((a - mean) / std for a in (x_train, x_val, x_test))
        # Recorded so new inputs can be scaled exactly as these were (dnnguide.load_run).
        preprocessing.update(mean=mean.tolist(), std=std.tolist())
    spec = {"name": str(name), "seed": seed, "standardize": standardize,
            "test_fraction": test_fraction, "val_fraction": val_fraction,
            "target": target, "task": task, "flatten": flatten,
            "preprocessing": preprocessing}
    return Dataset(label, task, n_outputs, x_train, y_train, x_val, y_val, x_test, y_test,
                   standardized=standardize, spec=spec)


def from_spec(spec: dict[str, Any]) -> Dataset:
    """Load a dataset again from the ``spec`` a run recorded."""
    spec = dict(spec)
    spec.pop("preprocessing", None)  # an output of loading, not an argument
    return load_dataset(spec.pop("name"), **spec)


#: Most distinct values an integer target may have to be read as class labels, and the most
#: a whole-numbered float target may have; more is a count or an amount (regression).
MAX_INFERRED_CLASSES = 50
MAX_INFERRED_CLASSES_FLOAT = 10


def infer_task(y) -> tuple[str, str]:
    """The task a target array implies, and why (for the run record).

    Class labels are whole numbers with few distinct values, and an integer dtype is a stronger
    hint than whole-numbered floats: ``[0, 1, 2]`` labels are classes, the diabetes target (214
    distinct whole numbers) or prices are not. Pass ``task=`` to override.

    Example:
        >>> infer_task(np.array([0, 1, 2, 1]))[0]
        'classification'
        >>> infer_task(np.arange(300.0))[0]
        'regression'
    """
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.number) and y.dtype != bool:
        return "regression", f"target of shape {list(y.shape)} and dtype {y.dtype}"
    values = np.unique(y)
    whole = y.dtype == bool or np.issubdtype(y.dtype, np.integer) or bool(
        np.all(np.isfinite(values)) and np.all(np.mod(values, 1) == 0))
    limit = (MAX_INFERRED_CLASSES if y.dtype == bool or np.issubdtype(y.dtype, np.integer)
             else MAX_INFERRED_CLASSES_FLOAT)
    limit = min(limit, max(2, len(y) // 5))  # a label needs a few rows to be a class
    if whole and values.size <= limit and values.min() >= 0:
        task = "binary" if values.size == 2 else "classification"
        return task, f"{values.size} distinct whole-number labels ({y.dtype}) <= {limit}"
    if not whole:
        why = "not whole numbers"
    elif values.min() < 0:
        why = "negative values are not class indices"
    else:
        why = f"> {limit} for class labels"
    return "regression", f"{values.size} distinct values ({y.dtype}), {why}"


def from_arrays(x, y, *, task: str | None = None, n_outputs: int | None = None,
                x_val=None, y_val=None, x_test=None, y_test=None, seed: int = 0,
                val_fraction: float = 0.1, test_fraction: float = 0.2,
                name: str = "arrays") -> Dataset:
    """Wrap user arrays as a Dataset, holding out test and validation splits if none is given.

    Without ``x_test``, ``test_fraction`` of the rows are held out as the test split first, so
    test metrics never come from the validation data early stopping watched. Without ``task``
    it is inferred (:func:`infer_task`); both are written in ``Dataset.notes`` (the run record).

    Example:
        >>> ds = from_arrays(np.random.rand(100, 4), np.arange(100) % 3)
        >>> len(ds.x_train), len(ds.x_val), len(ds.x_test), ds.task
        (72, 8, 20, 'classification')
    """
    from sklearn.model_selection import train_test_split

    check_range("val_fraction", val_fraction, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    check_range("test_fraction", test_fraction, 0.0, 1.0, low_inclusive=False,
                high_inclusive=False)
    x, y = np.asarray(x), np.asarray(y)
    notes = []
    if task is None:
        task, why = infer_task(y)
        notes.append(f"task inferred as {task!r}: {why}; pass task= to override")
    check_choice("task", task, TASKS)
    validate_arrays(x, y, task)
    stratify = (lambda labels: labels) if task != "regression" else (lambda labels: None)
    if (x_test is None) != (y_test is None) or (x_val is None) != (y_val is None):
        raise DataError("Pass x_test with y_test and x_val with y_val (each pair or neither).")
    if x_test is None:
        x, x_test, y, y_test = train_test_split(x, y, test_size=test_fraction,
                                                random_state=seed, stratify=stratify(y))
        notes.append(f"test split: {len(x_test)} rows ({test_fraction:.0%}) held out of the "
                     f"arrays (seed {seed}), unseen by training and early stopping")
    if x_val is None:
        x, x_val, y, y_val = train_test_split(x, y, test_size=val_fraction,
                                              random_state=seed, stratify=stratify(y))
    if n_outputs is None:
        if task == "regression":
            n_outputs = 1 if y.ndim == 1 else y.shape[1]
        elif task == "binary":
            n_outputs = 1
        else:
            n_outputs = int(max(np.max(y), np.max(y_val), np.max(y_test))) + 1
    return Dataset(name, task, n_outputs, x, y, np.asarray(x_val), np.asarray(y_val),
                   np.asarray(x_test), np.asarray(y_test), spec={}, notes=notes)


def as_dataset(data, seed: int, task: str | None) -> Dataset:
    """A Dataset from a name, a Dataset, ``(x, y)`` or ``(x, y, x_val, y_val)`` (what fit accepts)."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, Path)):
        return load_dataset(str(data), seed=seed, task=task)
    if isinstance(data, (tuple, list)) and len(data) in (2, 4):
        x, y, *val = data
        x_val, y_val = val if val else (None, None)
        return from_arrays(x, y, x_val=x_val, y_val=y_val, task=task, seed=seed)
    raise TypeError("Argument `data` must be a dataset name, a dnnguide Dataset, (x, y) or "
                    f"(x, y, x_val, y_val). Received: data of type {type(data).__name__}")


def validate_arrays(x, y, task: str, n_outputs: int | None = None, *, label: str = "train") -> None:
    """Refuse data that would break training or make it silently wrong."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise DataError(f"Features and targets of the {label} split differ in length: "
                        f"x has {len(x)} rows, y has {len(y)}.")
    if len(x) == 0:
        raise DataError(f"The {label} split is empty.")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"Features of the {label} split must be numeric. Received dtype {x.dtype}.")
    bad = ~np.isfinite(x)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise DataError(f"Features of the {label} split contain NaN or inf in {len(rows)} rows "
                        f"(first: {rows[:5].tolist()}). Impute or drop them before training.")
    if task == "regression":
        if not np.all(np.isfinite(y.astype("float64"))):
            raise DataError(f"Targets of the {label} split contain NaN or inf.")
        return
    y_float = y.astype("float64")
    if not np.all(np.isfinite(y_float)) or np.any(np.mod(y_float, 1) != 0):
        raise DataError(f"Task {task!r} needs integer class labels, but the {label} targets have "
                        f"non-integer values (e.g. {y_float[np.mod(y_float, 1) != 0][:3].tolist()}). "
                        "For a continuous target use task='regression'.")
    high = 1 if task == "binary" else (n_outputs - 1 if n_outputs else None)
    if y_float.min() < 0 or (high is not None and y_float.max() > high):
        raise DataError(f"Labels of the {label} split must be in [0, {high}] for task={task!r} "
                        f"with n_outputs={n_outputs}. Received labels in "
                        f"[{int(y_float.min())}, {int(y_float.max())}].")


def validate_dataset(data: Dataset) -> None:
    """Validate every split of a Dataset against its task and output size."""
    for split in ("train", "val", "test"):
        validate_arrays(getattr(data, f"x_{split}"), getattr(data, f"y_{split}"),
                        data.task, data.n_outputs, label=split)
