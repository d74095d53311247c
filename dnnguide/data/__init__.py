"""Datasets that work offline, train-only standardization, and checks before training.

Embedded: ``digits``, ``breast_cancer``, ``diabetes`` (scikit-learn), ``mnist1d`` (the
``mnist1d`` package's deterministic generator, 4000 train / 1000 test). From local
files: any CSV (``load_dataset("data.csv", target="price")``), and Fashion-MNIST /
CIFAR-10 from a ``.npz`` or the Keras cache, with an error saying where to put them.

Example:
    >>> ds = load_dataset("digits", seed=0)
    >>> ds.x_train.shape[1], ds.n_outputs, ds.task
    (64, 10, 'classification')

The implementation, one way down: ``dataset`` (:class:`Dataset`, :class:`DataError` and the
checks) <- ``builtin`` (the offline loaders) <- ``loading`` (:func:`load_dataset`,
:func:`from_arrays`, :func:`as_dataset`). Import from here.
"""

from dnnguide.data.builtin import EMBEDDED, LOCAL, data_home
from dnnguide.data.dataset import (
    MAX_INFERRED_CLASSES,
    MAX_INFERRED_CLASSES_FLOAT,
    MIN_ROWS,
    MIN_ROWS_PER_CLASS,
    DataError,
    Dataset,
    check_split_sizes,
    infer_task,
    validate_arrays,
    validate_dataset,
)
from dnnguide.data.loading import as_dataset, from_arrays, from_spec, load_dataset
from dnnguide.data.scaling import MAX_Z, standardization

__all__ = [
    "EMBEDDED", "LOCAL", "MAX_INFERRED_CLASSES", "MAX_INFERRED_CLASSES_FLOAT", "MAX_Z",
    "MIN_ROWS", "MIN_ROWS_PER_CLASS", "DataError", "Dataset", "as_dataset", "check_split_sizes",
    "data_home", "from_arrays", "from_spec", "infer_task", "load_dataset", "standardization",
    "validate_arrays", "validate_dataset",
]
