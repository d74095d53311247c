"""The :class:`Dataset` a runner trains on, and the checks data must pass before training.

A :class:`Dataset` holds train / validation / test arrays with the task and output size the
model needs. The checks refuse, with a :class:`DataError` that says what to change, data too
small to split (:func:`check_split_sizes`), arrays that would train silently wrong
(:func:`validate_arrays`: NaN, non-integer labels, labels out of range); :func:`infer_task`
reads the task a target array implies.

Example:
    >>> validate_arrays(np.zeros((3, 2)), np.array([0.0, 1.5, 2.0]), "classification")
    Traceback (most recent call last):
    ...
    dnnguide.data.dataset.DataError: Task 'classification' needs integer class labels, but the train targets have non-integer values (e.g. [1.5]). For a continuous target use task='regression'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


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


#: Most distinct values an integer target may have to be read as class labels, and the most
#: a whole-numbered float target may have; more is a count or an amount (regression).
MAX_INFERRED_CLASSES = 50
MAX_INFERRED_CLASSES_FLOAT = 10


def class_label_limit(n_rows: int, integer: bool = True) -> int:
    """Most distinct whole numbers a target of ``n_rows`` may hold and still be read as labels:
    :data:`MAX_INFERRED_CLASSES` for an integer dtype (:data:`MAX_INFERRED_CLASSES_FLOAT` for
    whole-numbered floats), and at most a fifth of the rows, since a label needs a few rows to
    be a class."""
    return min(MAX_INFERRED_CLASSES if integer else MAX_INFERRED_CLASSES_FLOAT,
               max(2, n_rows // 5))


def infer_task(y) -> tuple[str, str]:
    """The task a target array implies, and why (for the run record).

    Class labels are whole numbers with few distinct values, and an integer dtype is a stronger
    hint than whole-numbered floats: ``[0, 1, 2]`` labels are classes, the diabetes target (214
    distinct whole numbers) or prices are not. Pass ``task=`` to override.

    Example:
        >>> infer_task(np.array([0, 1, 2, 1] * 5))[0]
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
    limit = class_label_limit(len(y), y.dtype == bool or np.issubdtype(y.dtype, np.integer))
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
