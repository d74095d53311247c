"""Datasets from a name, a CSV file or arrays, split into train / validation / test.

:func:`load_dataset` reads a built-in dataset (``dnnguide.data.builtin``) or a CSV file
(:func:`dnnguide.tables.read_csv`), splits it (stratified for classification) and
standardizes the features with statistics of the training split only; :func:`from_arrays`
wraps user arrays; :func:`as_dataset` takes whatever ``fit`` accepts.

Example:
    >>> ds = load_dataset("digits", seed=0)
    >>> ds.x_train.shape[1], ds.n_outputs, ds.task
    (64, 10, 'classification')
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from dnnguide.config import TASKS, ConfigError, check_choice, check_range
from dnnguide.data.builtin import EMBEDDED, LOADERS, LOCAL
from dnnguide.data.dataset import (
    DataError, Dataset, check_split_sizes, infer_task, validate_arrays,
)
from dnnguide.data.scaling import standardization


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
        standardize: scale features to mean 0 / std 1 with statistics of the training split
            only; a sparse or heavy-tailed feature is scaled so no training value lies beyond
            5 (:func:`dnnguide.data.scaling.standardization`).
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
    task_given = task
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
        x, y, x_test, y_test, own_task = LOADERS[name](name)
        if task is not None and task != own_task:
            raise ConfigError(f"Argument `task` must be {own_task!r} (or omitted) for the built-in "
                              f"dataset {name!r}. Received: task={task!r}. The task of a CSV file "
                              "can be chosen; a built-in dataset's cannot.")
        task, label = own_task, name
    try:
        check_split_sizes(np.asarray(y), task, test_fraction=test_fraction,
                          val_fraction=val_fraction, has_test=x_test is not None,
                          source=str(name), class_names=preprocessing.get("classes"))
    except DataError as error:
        classes = preprocessing.get("classes") or []  # None for a regression target
        if task_given is None and classes and all(isinstance(c, (int, float)) for c in classes):
            raise DataError(f"{error} The target's {len(classes)} distinct numbers were read "
                            "as class labels; if they measure an amount, pass "
                            "task='regression' (CLI: --task regression).") from None
        raise
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
        # Sparse or heavy-tailed features reach at most MAX_Z (dnnguide.data.scaling).
        mean, std = standardization(x_train)
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
    """Load a dataset again from the ``spec`` a run recorded, scaled as that run's was.

    The features are scaled with the recorded training-split ``mean`` and ``std`` rather than
    recomputed ones, so a run resumed or re-evaluated after the loader's scaling rule changed
    (:func:`dnnguide.data.standardization`) still sees the inputs it was trained on.
    """
    spec = dict(spec)
    recorded = spec.pop("preprocessing", None) or {}  # an output of loading, not an argument
    if not (spec.get("standardize", True) and "mean" in recorded and "std" in recorded):
        return load_dataset(spec.pop("name"), **spec)
    data = load_dataset(spec.pop("name"), **{**spec, "standardize": False})
    mean, std = (np.asarray(recorded[k], "float32") for k in ("mean", "std"))
    x_train, x_val, x_test = ((a - mean) / std for a in (data.x_train, data.x_val, data.x_test))
    data.spec.update(standardize=True)
    data.spec["preprocessing"].update(mean=recorded["mean"], std=recorded["std"])
    return replace(data, x_train=x_train, x_val=x_val, x_test=x_test, standardized=True)


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

