"""Score new rows with a finished run: the training preprocessing, the user's own class names.

A run directory records what :func:`dnnguide.load_dataset` did to its inputs (CSV columns,
one-hot categories, class names, the training split's mean and std) in ``run.json``.
:func:`load_run` reads it back with the model, so new data goes through exactly the same steps:
columns checked by name (missing, extra or non-numeric ones refused, naming them), categories
encoded as at training, features standardized with the saved statistics (or by the model's own
``Normalization`` layer when it has one), and labels returned as the file spelled them.

Example:
    >>> import dnnguide, pandas as pd
    >>> run = dnnguide.load_run("runs/20260101T000000Z-default")  # doctest: +SKIP
    >>> run.predict(pd.read_csv("new_wines.csv"))  # doctest: +SKIP
    array(['barolo', 'barbera', ...], dtype=object)
    >>> run.predict_mc(pd.read_csv("new_wines.csv"), n_samples=100).std  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from dnnguide.config import ConfigError
from dnnguide.data import DataError
from dnnguide.runs import open_run
from dnnguide.tables import encode_features


class Predictor:
    """A trained run, ready to score new data (built by :func:`load_run`).

    Attributes:
        path: the run directory.
        model: the trained Keras model (``model.keras``).
        task: ``classification``, ``binary`` or ``regression``.
        classes: the class labels as the training data named them (None for regression;
            ``0..K-1`` for data without names, such as the embedded datasets).
        columns: the input columns a DataFrame must have (None when the run trained on arrays).
    """

    def __init__(self, path: str | os.PathLike):
        from dnnguide._startup import register_keras_objects

        register_keras_objects()  # a fresh process knows none of dnnguide's layers/losses yet
        from dnnguide.layers import has_dropout, to_standard_dropout

        run = open_run(path)
        self.path: Path = run.path
        self.model = run.model()
        info = run.info
        spec: dict[str, Any] = info.get("dataset") or {}
        self._spec = spec
        self._preprocessing: dict[str, Any] = spec.get("preprocessing") or {}
        self.task: str = info.get("task") or getattr(self.model, "dnnguide_task", "regression")
        self.columns: list[str] | None = self._preprocessing.get("columns")
        classes = self._preprocessing.get("classes")
        if classes is None and self.task != "regression":
            n = 2 if self.task == "binary" else int(self.model.output_shape[-1])
            classes = list(range(n))
        self.classes: list | None = classes
        if spec.get("standardize") and "mean" not in self._preprocessing:
            raise DataError(f"Run {self.path} does not record its input statistics (it predates "
                            "dnnguide.load_run); train it again to predict on new data.")
        # The plain prediction must not depend on random dropout masks (an MC-dropout model
        # samples on every call); MC sampling is asked for with predict_mc.
        self._mc = has_dropout(self.model, kinds=("mc",))
        self._plain = to_standard_dropout(self.model) if self._mc else self.model

    def __repr__(self) -> str:
        return (f"Predictor({str(self.path)!r}, task={self.task!r}, "
                f"columns={self.columns}, classes={self.classes})")

    # ------------------------------------------------------------------ inputs
    def transform(self, data) -> np.ndarray:
        """``data`` (a DataFrame or an array of raw features) as the model's input array."""
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            if self.columns is None:
                x = data.to_numpy()
            else:
                x = encode_features(data, self._preprocessing, source="the data to predict")
        else:
            x = np.asarray(data)
            if self.columns is not None:
                if self._preprocessing.get("categorical"):
                    raise DataError(f"Run {self.path.name} one-hot encoded the columns "
                                    f"{list(self._preprocessing['categorical'])}: pass a pandas "
                                    f"DataFrame with the columns {self.columns}, not an array.")
                if x.ndim != 2 or x.shape[1] != len(self.columns):
                    raise DataError(f"Argument `data` must have the {len(self.columns)} training "
                                    f"columns {self.columns}. Received an array of shape "
                                    f"{x.shape}.")
            x = encode_features(pd.DataFrame(x, columns=self.columns), self._preprocessing,
                                source="the data to predict") if self.columns else x
        if not np.issubdtype(x.dtype, np.number):
            raise DataError(f"Features to predict must be numeric. Received dtype {x.dtype}.")
        x = x.astype("float32")
        if self._spec.get("flatten", True):
            x = x.reshape(len(x), -1)
        expected = tuple(self.model.input_shape[1:])
        if tuple(x.shape[1:]) != expected:
            raise DataError(f"The model takes inputs of shape {expected}; received "
                            f"{tuple(x.shape[1:])}.")
        if self._spec.get("standardize"):
            mean = np.asarray(self._preprocessing["mean"], "float32")
            std = np.asarray(self._preprocessing["std"], "float32")
            x = (x - mean) / std
        return x

    # ------------------------------------------------------------------ outputs
    def predict_proba(self, data) -> np.ndarray:
        """Class probabilities, one column per entry of :attr:`classes` (dropout off)."""
        if self.task == "regression":
            raise ConfigError(f"Run {self.path.name} is a regression; use predict().")
        out = self._plain.predict(self.transform(data), verbose=0)
        return self._as_proba(out)

    def predict(self, data) -> np.ndarray:
        """Labels in the training data's own class names, or regression values (dropout off)."""
        if self.task == "regression":
            out = self._plain.predict(self.transform(data), verbose=0)
            return out[:, 0] if out.shape[-1] == 1 else out
        return self._labels(self.predict_proba(data))

    def predict_mc(self, data, n_samples: int = 100, *, seed: int | None = None):
        """MC dropout mean and std (:func:`dnnguide.uncertainty.mc_predict`) on new data.

        Returns:
            A :class:`dnnguide.uncertainty.MCPrediction`; for classification ``.mean`` holds
            the class probabilities (columns as :attr:`classes`) and ``.labels`` the labels
            of the mean prediction in the user's class names.
        """
        from dnnguide.layers import has_dropout
        from dnnguide.uncertainty import mc_predict

        if not has_dropout(self.model):
            raise ConfigError(f"Run {self.path.name} has no dropout layers, so MC dropout equals "
                              "the plain prediction: use predict() / predict_proba().")
        prediction = mc_predict(self.model, self.transform(data), n_samples=n_samples,
                                task=self.task, seed=seed, verbose=0)
        if self.task != "regression":
            prediction.mean = self._as_proba(prediction.mean)
            if self.task == "binary":  # one sigmoid output: the same std for both classes
                prediction.std = np.repeat(prediction.std, 2, axis=-1)
            prediction.labels = self._labels(prediction.mean)
        return prediction

    def _as_proba(self, out: np.ndarray) -> np.ndarray:
        out = np.asarray(out, "float64")
        return np.concatenate([1.0 - out, out], axis=-1) if self.task == "binary" else out

    def _labels(self, proba: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes, dtype=object)[np.argmax(proba, axis=-1)]


def load_run(run_dir: str | os.PathLike) -> Predictor:
    """Load a finished run to predict on new data with its training preprocessing.

    Args:
        run_dir: a run directory written by :func:`dnnguide.fit` or ``dnnguide train``.

    Returns:
        A :class:`Predictor` with ``predict``, ``predict_proba`` and ``predict_mc``.

    Example:
        >>> run = load_run("runs/20260101T000000Z-default")  # doctest: +SKIP
        >>> run.predict(new_rows)  # doctest: +SKIP
    """
    return Predictor(run_dir)
