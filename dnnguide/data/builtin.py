"""The built-in datasets, loaded offline: embedded ones and local files.

Embedded: ``digits``, ``breast_cancer``, ``diabetes`` (scikit-learn), ``mnist1d`` (the
``mnist1d`` package's deterministic generator, 4000 train / 1000 test). Local
(:data:`LOCAL`): Fashion-MNIST and CIFAR-10 from a ``.npz`` or the Keras cache files in
:func:`data_home`, with an error saying where to put them. Each loader returns
``(x, y, x_test, y_test, task)`` (no test split: None) for :func:`dnnguide.load_dataset`.

Example:
    >>> x, y, x_test, y_test, task = LOADERS["breast_cancer"]("breast_cancer")
    >>> x.shape, x_test, task
    ((569, 30), None, 'binary')
"""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np

from dnnguide.data.dataset import DataError

EMBEDDED = ("digits", "breast_cancer", "diabetes", "mnist1d")
LOCAL = ("fashion_mnist", "cifar10")


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


#: Loader of each built-in dataset: ``name -> (x, y, x_test, y_test, task)``.
LOADERS = {"digits": _sklearn, "breast_cancer": _sklearn, "diabetes": _sklearn,
           "mnist1d": _mnist1d, "fashion_mnist": _fashion_mnist, "cifar10": _cifar10}

