"""Shared fixtures: every test is seeded, and small datasets are made here."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _seed_everything():
    import keras

    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture
def blobs():
    """A tiny, easy 3-class problem: 300 x 8 features, standardized."""
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, size=(3, 8))
    y = rng.integers(0, 3, size=300)
    x = centers[y] + rng.normal(0, 1, size=(300, 8))
    x = (x - x.mean(0)) / x.std(0)
    return x.astype("float32"), y.astype("int64")
