"""CSV files as model inputs: strict column checks, one-hot categories, a record to predict with.

:func:`read_csv` is what :func:`dnnguide.load_dataset` does with a ``.csv`` path: it refuses
what would train silently wrong (a numeric column with a few text cells, text that is not clearly
categorical, NaN/inf, an empty target) naming the column and the file's line numbers, one-hot
encodes clearly categorical text (and says so with a :class:`CategoricalEncodingWarning`), maps
the target's labels to ``0..K-1`` and records the columns, categories and class names.
:func:`encode_features` applies that record to new rows (``dnnguide.load_run``).

Example:
    >>> ds = dnnguide.load_dataset("wine.csv", target="cultivar")  # doctest: +SKIP
    >>> ds.spec["preprocessing"]["classes"]  # doctest: +SKIP
    ['barbera', 'barolo', 'grignolino']
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from dnnguide.config import ConfigError
from dnnguide.data.dataset import MIN_ROWS, DataError, _plain, class_label_limit


class CategoricalEncodingWarning(UserWarning):
    """Text columns of a CSV were one-hot encoded (the message says how)."""


class TaskInferenceWarning(UserWarning):
    """An integer target was read as regression: too many distinct values for classes."""


# A text column is "clearly categorical" when it has few distinct values, each seen several
# times on average; anything else (identifiers, free text, a numeric column with typos) is
# refused rather than exploded into hundreds of one-hot columns.
MAX_CATEGORIES = 50
MIN_ROWS_PER_CATEGORY = 5


def _file_lines(index) -> list[int]:
    """Line numbers in the CSV file (line 1 is the header) of data-frame row positions."""
    return [int(i) + 2 for i in index]


def read_csv(path: str, target: str | None, task: str | None):
    """Features, labels, task and the preprocessing record of a CSV (``load_dataset`` calls it)."""
    import pandas as pd

    if not Path(path).exists():
        raise DataError(f"CSV file not found: {path!r}")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"CSV file {path!r} is empty. It needs a header row naming the columns "
                        f"and at least {MIN_ROWS} data rows.") from None
    if target is None or target not in frame.columns:
        raise ConfigError(f"Argument `target` must be one of the CSV's columns "
                          f"{list(frame.columns)}. Received: target={target!r}")
    if len(frame) == 0:
        raise DataError(f"CSV file {path!r} has a header but no data rows; it needs at least "
                        f"{MIN_ROWS} rows.")
    target_column = frame.pop(target)
    if target_column.isna().any():
        lines = _file_lines(np.flatnonzero(target_column.isna().to_numpy())[:5])
        raise DataError(f"Target column {target!r} of {path!r} is empty in "
                        f"{int(target_column.isna().sum())} rows (file lines {lines}). Drop "
                        "those rows or fill them in.")
    categorical = _categorical_columns(frame, path)
    preprocessing = {"columns": [str(c) for c in frame.columns], "target": target,
                     "categorical": categorical}
    x = encode_features(frame, preprocessing, source=repr(path))
    # pandas 3 stores text as StringDtype, which NumPy's dtype checks cannot read: ask pandas.
    is_numeric = pd.api.types.is_numeric_dtype
    if task is None:
        task = _inferred_task(target_column, target, path)
    classes = None
    if task == "regression":
        if not is_numeric(target_column):
            raise DataError(f"Task 'regression' needs a numeric target, but column {target!r} "
                            f"holds text (e.g. {target_column.iloc[0]!r}).")
        y = target_column.to_numpy("float64")
    else:
        # Labels become 0..K-1 whatever the file uses ("barolo", or 1/2/3); the names go into
        # the run so predictions come back in the user's own labels.
        codes, uniques = pd.factorize(target_column, sort=True)
        y, classes = codes, [_plain(v) for v in uniques]
        if len(classes) == 2 and task == "classification":
            task = "binary"
    preprocessing["classes"] = classes
    if categorical:
        described = "; ".join(f"{column!r} -> {len(values)} columns ({', '.join(map(str, values))})"
                              for column, values in categorical.items())
        warnings.warn(f"One-hot encoded the text columns of {path}: {described}. Categories "
                      "unseen at training are refused at prediction.",
                      CategoricalEncodingWarning, stacklevel=3)
    return x, y, None, None, task, preprocessing


#: More integer labels than this, not numbered 0..K-1 or 1..K, look like an amount: a warning
#: says how they were read.
MANY_LABELS = 10


def _inferred_task(target_column, target: str, path: str) -> str:
    """Text or a few distinct integers are class labels; floats and many integers are amounts.

    An integer column with more distinct values than
    :func:`dnnguide.data.dataset.class_label_limit` allows (50, or a fifth of the rows) is a
    count or an amount, such as a price in dollars; read as classes it would ask for a class per
    price. Arrays get the same limit (:func:`dnnguide.data.dataset.infer_task`); here a
    :class:`TaskInferenceWarning` says so.
    """
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(target_column):
        return "classification"
    if not pd.api.types.is_integer_dtype(target_column):
        return "regression"
    distinct = int(target_column.nunique())
    limit = class_label_limit(len(target_column))
    if distinct <= limit:
        low, high = int(target_column.min()), int(target_column.max())
        if distinct > MANY_LABELS and (low not in (0, 1) or high - low + 1 != distinct):
            # Labels are codes 0..K-1 or 1..K; 27 mileages from 12 to 44 are a quantity.
            warnings.warn(f"Target {target!r} of {path} holds {distinct} distinct whole numbers "
                          f"from {low} to {high}: read as {distinct} class labels. Pass "
                          "task='regression' (CLI: --task regression) if they measure an "
                          "amount.", TaskInferenceWarning, stacklevel=4)
        return "classification"
    warnings.warn(f"Target {target!r} of {path} holds whole numbers with {distinct:,} distinct "
                  f"values (more than {limit} for class labels): read as regression. Pass "
                  "task='classification' (CLI: --task classification) if they are classes.",
                  TaskInferenceWarning, stacklevel=4)
    return "regression"


def _categorical_columns(frame, path: str) -> dict[str, list]:
    import pandas as pd

    categorical = {}
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        present = values.dropna()
        as_numbers = pd.to_numeric(present, errors="coerce")
        bad = as_numbers.isna()
        if len(present) and bad.mean() <= 0.5:
            # Mostly numbers: a few stray cells ("abc", "?", "1,5") are typos, not categories.
            rows = present.index[bad.to_numpy()]
            examples = ", ".join(f"line {line}: {present[i]!r}"
                                 for line, i in zip(_file_lines(rows[:5]), rows[:5]))
            raise DataError(f"Column {column!r} of {path!r} is numeric except for {int(bad.sum())} "
                            f"cells ({examples}). Fix or empty those cells (empty cells are "
                            "missing values), or drop the column.")
        uniques = sorted(present.unique().tolist(), key=str)
        limit = min(MAX_CATEGORIES, max(2, len(frame) // MIN_ROWS_PER_CATEGORY))
        if len(uniques) > limit:
            raise DataError(
                f"Column {column!r} of {path!r} holds text with {len(uniques)} distinct values in "
                f"{len(frame)} rows, which is not clearly categorical (at most {limit} categories "
                f"here: {MAX_CATEGORIES}, and {MIN_ROWS_PER_CATEGORY} rows per category on "
                "average). Drop it (an identifier or free text?) or encode it yourself.")
        categorical[str(column)] = [_plain(v) for v in uniques]
    return categorical


def encode_features(frame, preprocessing: dict[str, Any], *, source: str = "the data") -> np.ndarray:
    """The model's input matrix from a table of raw columns, as a CSV run encoded it.

    Numeric columns are taken as they are; each categorical column becomes one 0/1 column per
    category seen at training, in the recorded order. NaN or inf is refused with the file
    lines and columns where it is (the raw values are checked, before any scaling).

    Args:
        frame: a pandas DataFrame with exactly ``preprocessing["columns"]`` (in any order).
        preprocessing: the ``preprocessing`` dict of a CSV dataset's spec.
        source: how the data is named in error messages.
    """
    import pandas as pd

    columns, categorical = preprocessing["columns"], preprocessing.get("categorical", {})
    frame = frame.rename(columns=str)
    missing = [c for c in columns if c not in frame.columns]
    extra = [c for c in frame.columns if c not in columns and c != preprocessing.get("target")]
    if missing or extra:
        raise DataError(f"The columns of {source} must be the training columns {columns}. "
                        f"Missing: {missing}; not used in training: {extra}.")
    parts = []
    for column in columns:
        values = frame[column]
        if column in categorical:
            known = categorical[column]
            unseen = sorted(set(values.dropna().tolist()) - set(known), key=str)
            if unseen:
                raise DataError(f"Column {column!r} of {source} has categories unseen in "
                                f"training: {unseen[:5]}. Known: {known}.")
            if values.isna().any():
                lines = _file_lines(np.flatnonzero(values.isna().to_numpy())[:5])
                raise DataError(f"Column {column!r} of {source} is empty in "
                                f"{int(values.isna().sum())} rows (file lines {lines}). Fill "
                                "them in or drop those rows.")
            codes = pd.Categorical(values, categories=known).codes
            parts.append(np.eye(len(known), dtype="float32")[codes])
            continue
        if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
            as_numbers = pd.to_numeric(values, errors="coerce")
            rows = np.flatnonzero(as_numbers.isna().to_numpy() & values.notna().to_numpy())
            examples = ", ".join(f"line {line}: {values.iloc[i]!r}"
                                 for line, i in zip(_file_lines(rows[:5]), rows[:5]))
            raise DataError(f"Column {column!r} of {source} must be numeric, as in training. "
                            f"Non-numeric cells: {examples}.")
        parts.append(values.to_numpy("float64").reshape(-1, 1))
    x = (np.concatenate(parts, axis=1) if parts else np.zeros((len(frame), 0))).astype("float32")
    bad = ~np.isfinite(x)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        names = _encoded_names(preprocessing)
        where = "; ".join(f"line {line}: {[names[j] for j in np.flatnonzero(bad[i])]}"
                          for line, i in zip(_file_lines(rows[:5]), rows[:5]))
        raise DataError(f"{source} has NaN or inf in {len(rows)} rows ({where}). Impute or drop "
                        "them before training.")
    return x


def _encoded_names(preprocessing: dict[str, Any]) -> list[str]:
    names = []
    for column in preprocessing["columns"]:
        values = preprocessing.get("categorical", {}).get(column)
        names += [f"{column}={v}" for v in values] if values is not None else [column]
    return names
