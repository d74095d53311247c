"""``from_arrays``: a real test split, and a task inferred from the target (not any integer)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from dnnguide.data import from_arrays, infer_task


def test_without_x_test_a_test_split_is_held_out_and_recorded():
    x = np.arange(200, dtype="float32").reshape(100, 2)
    ds = from_arrays(x, np.arange(100) % 2, seed=1)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (72, 8, 20)
    seen = {tuple(r) for r in np.concatenate([ds.x_train, ds.x_val])}
    assert not seen & {tuple(r) for r in ds.x_test}  # the old main reused x_val as x_test
    assert any("test split: 20 rows (20%) held out" in note for note in ds.notes)
    assert ds.summary()["notes"] == ds.notes
    given = from_arrays(x, np.arange(100) % 2, x_test=x[:5], y_test=np.zeros(5))
    assert len(given.x_test) == 5 and not any("test split" in n for n in given.notes)


def test_whole_number_regression_targets_are_not_classes():
    x, y = load_diabetes(return_X_y=True)  # 214 distinct whole numbers
    ds = from_arrays(x, y.astype("int64"))
    assert ds.task == "regression" and ds.n_outputs == 1
    assert "task inferred as 'regression': 214 distinct values (int64), > 50" in ds.notes[0]
    assert from_arrays(x, y).task == "regression"  # float dtype too
    forced = from_arrays(x, (y > 140).astype("int64"), task="classification")
    assert forced.task == "classification" and not any("inferred" in n for n in forced.notes)


@pytest.mark.parametrize("y, task", [
    (np.arange(300) % 3, "classification"),
    (np.arange(300) % 2, "binary"),
    ((np.arange(300) % 2).astype(bool), "binary"),
    ((np.arange(300) % 4).astype("float32"), "classification"),  # labels read from a float file
    ((np.arange(300) % 40).astype("float32"), "regression"),  # 40 whole floats: a count
    (np.arange(300) % 40, "classification"),  # 40 integer labels
    (np.arange(300) % 80, "regression"),  # too many for labels
    (np.arange(300) * 0.5, "regression"),
    (np.arange(300) % 3 - 1, "regression"),  # negative: not class indices
])
def test_task_inference_uses_distinct_values_and_dtype(y, task):
    assert infer_task(y)[0] == task
