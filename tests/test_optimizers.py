"""Optimizers: every row of the table trains, clipping and decay act, and 1cycle's momentum
cycle reaches the update under ``model.fit`` (proven on the weights, not on attributes)."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from keras import ops

from dnnguide.config import OPTIMIZERS, ConfigError, NetworkConfig, OptimizerConfig
from dnnguide.optimizers import (
    MOMENTUM_OPTIMIZERS,
    ScheduledAdam,
    ScheduledAdamax,
    ScheduledAdamW,
    ScheduledNadam,
    ScheduledSGD,
    make_optimizer,
    optimizer_from_config,
)
from dnnguide.schedules import OneCycleMomentum, onecycle_lr, onecycle_momentum

EXPECTED_CLASS = {
    "sgd": "SGD", "momentum": "SGD", "nesterov": "SGD", "adagrad": "Adagrad",
    "rmsprop": "RMSprop", "adam": "Adam", "adamax": "Adamax", "nadam": "Nadam", "adamw": "AdamW",
}
LR = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.1, "rmsprop": 0.01,
      "adam": 0.01, "adamax": 0.02, "nadam": 0.01, "adamw": 0.01}


def one_weight_model(optimizer, loss="mse", w0=0.0, units_in=1):
    model = keras.Sequential([
        keras.Input((units_in,)),
        keras.layers.Dense(1, use_bias=False, kernel_initializer=keras.initializers.Constant(w0)),
    ])
    model.compile(optimizer=optimizer, loss=loss)
    return model


# --------------------------------------------------------------------------- the table
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_is_the_row_it_names(name):
    config = OptimizerConfig(name, learning_rate=0.02, momentum=0.8, beta_1=0.85, beta_2=0.99,
                             clipnorm=1.0,
                             weight_decay=0.01 if name in ("adamw", "nesterov") else 0.0)
    opt = make_optimizer(config)
    assert type(opt).__name__ == EXPECTED_CLASS[name]
    assert float(opt.learning_rate) == pytest.approx(0.02)
    assert opt.clipnorm == 1.0
    if name in ("sgd", "momentum", "nesterov"):
        assert opt.momentum == (0.0 if name == "sgd" else 0.8)
        assert opt.nesterov == (name == "nesterov")
    if name in ("adam", "adamax", "nadam", "adamw"):
        assert (opt.beta_1, opt.beta_2) == (0.85, 0.99)
    if name in ("adamw", "nesterov"):
        assert opt.weight_decay == 0.01


def test_every_optimizer_learns_an_easy_problem(blobs):
    x, y = blobs
    scores = {}
    for name in OPTIMIZERS:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(3, activation="softmax")])
        model.compile(make_optimizer(OptimizerConfig(name, learning_rate=LR[name])),
                      "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x[:240], y[:240], batch_size=32, epochs=4, verbose=0)
        scores[name] = model.evaluate(x[240:], y[240:], verbose=0)[1]
    assert min(scores.values()) > 0.9, scores


def test_clipnorm_and_clipvalue_bound_the_update():
    x, y = np.full((1, 4), 10.0, "float32"), np.full((1, 1), 1000.0, "float32")
    model = one_weight_model(make_optimizer(OptimizerConfig("sgd", learning_rate=1.0,
                                                            clipnorm=0.5)), units_in=4)
    model.train_on_batch(x, y)
    np.testing.assert_allclose(np.linalg.norm(model.get_weights()[0]), 0.5, rtol=1e-5)
    model = one_weight_model(make_optimizer(OptimizerConfig("sgd", learning_rate=1.0,
                                                            clipvalue=0.1)), units_in=4)
    model.train_on_batch(x, y)
    np.testing.assert_allclose(model.get_weights()[0], np.full((4, 1), 0.1), rtol=1e-5)


def test_adamw_decay_is_decoupled_from_the_gradient():
    # Zero gradient: Adam's step is 0, so only the decoupled decay moves the weight.
    opt = make_optimizer(OptimizerConfig("adamw", learning_rate=0.1, weight_decay=0.5))
    model = one_weight_model(opt, loss=lambda y_true, y_pred: 0.0 * ops.sum(y_pred), w0=2.0)
    model.train_on_batch(np.ones((1, 1), "float32"), np.zeros((1, 1), "float32"))
    assert float(model.get_weights()[0][0, 0]) == pytest.approx(2.0 * (1 - 0.1 * 0.5), rel=1e-6)


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="OptimizerConfig"):
        make_optimizer("adam")
    with pytest.raises(ConfigError, match="no momentum to schedule"):
        make_optimizer(OptimizerConfig("adagrad"), momentum_schedule=OneCycleMomentum(10))
    with pytest.raises(TypeError, match="momentum_schedule"):
        ScheduledAdam(0.01, momentum_schedule=0.9)


def test_onecycle_on_an_optimizer_without_momentum_warns_and_cycles_the_lr_only():
    cfg = NetworkConfig(optimizer={"name": "rmsprop"},
                        schedule={"name": "onecycle", "total_steps": 10})
    with pytest.warns(UserWarning, match="no momentum to cycle"):
        opt = optimizer_from_config(cfg)
    assert type(opt).__name__ == "RMSprop"
    assert type(opt._learning_rate).__name__ == "OneCycleSchedule"


def test_total_steps_argument_keys_the_cycle_to_a_given_budget():
    cfg = NetworkConfig(optimizer={"name": "adamw"}, schedule={"name": "onecycle"})
    opt = optimizer_from_config(cfg, total_steps=57)
    assert opt._learning_rate.total_steps == 57
    assert opt.momentum_schedule.total_steps == 57


# --------------------------------------------------------------------------- scheduled momentum
def _run(optimizer, steps=30, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    model.compile(optimizer, "mse")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(steps * 4, 4)).astype("float32")
    y = rng.normal(size=(steps * 4, 1)).astype("float32")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    return np.concatenate([w.ravel() for w in model.get_weights()])


@pytest.mark.parametrize("stock, scheduled", [
    (lambda: keras.optimizers.SGD(0.05, momentum=0.9),
     lambda m: ScheduledSGD(0.05, momentum_schedule=m)),
    (lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
     lambda m: ScheduledSGD(0.05, nesterov=True, momentum_schedule=m)),
    (lambda: keras.optimizers.Adam(0.01), lambda m: ScheduledAdam(0.01, momentum_schedule=m)),
    (lambda: keras.optimizers.AdamW(0.01, weight_decay=0.01),
     lambda m: ScheduledAdamW(0.01, weight_decay=0.01, momentum_schedule=m)),
    (lambda: keras.optimizers.Adamax(0.01), lambda m: ScheduledAdamax(0.01, momentum_schedule=m)),
    (lambda: keras.optimizers.Nadam(0.01), lambda m: ScheduledNadam(0.01, momentum_schedule=m)),
], ids=["sgd", "nesterov", "adam", "adamw", "adamax", "nadam"])
def test_flat_momentum_schedule_reproduces_the_keras_optimizer(stock, scheduled):
    flat = OneCycleMomentum(100, 0.3, max_momentum=0.9, min_momentum=0.9)
    # Keras computes 1 - beta_1 from a Python float (float64) and we from a float32 variable:
    # one float32 ulp of difference in that factor, nothing more.
    np.testing.assert_allclose(_run(scheduled(flat)), _run(stock()), rtol=1e-5, atol=1e-6)


def _reference(name: str, lrs, moms, w0=0.0, target=3.0, beta_2=0.999, eps=1e-7):
    """Keras 3.15's update rules in float64 on loss (w - target)^2, per-step lr and momentum."""
    w, m, v, u, u_product = w0, 0.0, 0.0, 0.0, 1.0
    for t in range(len(lrs)):
        lr, b1, g = lrs[t], moms[t], 2.0 * (w - target)
        if name in ("momentum", "nesterov"):
            m = b1 * m - lr * g
            w += b1 * m - lr * g if name == "nesterov" else m
        elif name in ("adam", "adamw"):
            alpha = lr * math.sqrt(1 - beta_2 ** (t + 1)) / (1 - b1 ** (t + 1))
            m += (g - m) * (1 - b1)
            v += (g * g - v) * (1 - beta_2)
            w -= m * alpha / (math.sqrt(v) + eps)
        elif name == "adamax":
            m += (g - m) * (1 - b1)
            u = max(beta_2 * u, abs(g))
            w -= lr * m / ((1 - b1 ** (t + 1)) * (u + eps))
        elif name == "nadam":
            b1_next = moms[t + 1] if t + 1 < len(moms) else moms[t]
            u_t = b1 * (1 - 0.5 * 0.96 ** (t + 1))
            u_t1 = b1_next * (1 - 0.5 * 0.96 ** (t + 2))
            u_product *= u_t
            m += (g - m) * (1 - b1)
            v += (g * g - v) * (1 - beta_2)
            m_hat = u_t1 * m / (1 - u_product * u_t1) + (1 - u_t) * g / (1 - u_product)
            w -= lr * m_hat / (math.sqrt(v / (1 - beta_2 ** (t + 1))) + eps)
    return w


@pytest.mark.parametrize("name", MOMENTUM_OPTIMIZERS)
def test_onecycle_momentum_cycle_reaches_the_update_under_fit(name):
    """The weight after ``model.fit`` follows the cycled momentum, not a baked constant."""
    steps, max_lr = 40, (0.02 if name in ("momentum", "nesterov") else 0.3)
    config = NetworkConfig(
        optimizer={"name": name, "learning_rate": max_lr},
        schedule={"name": "onecycle", "total_steps": steps, "pct_start": 0.3,
                  "max_momentum": 0.95, "min_momentum": 0.85})
    model = one_weight_model(optimizer_from_config(config))
    ones = np.ones((steps, 1), "float32")
    model.fit(ones, 3.0 * ones, batch_size=1, epochs=1, shuffle=False, verbose=0)
    got = float(model.get_weights()[0][0, 0])

    grid = np.arange(steps + 1, dtype="float32")
    lrs = ops.convert_to_numpy(onecycle_lr(grid, steps, max_lr, 0.3)).astype("float64")
    moms = ops.convert_to_numpy(onecycle_momentum(grid, steps, 0.3, 0.95, 0.85)).astype("float64")
    cycled = _reference(name, lrs[:steps], moms)
    tolerance = 1e-4 * abs(cycled) + 1e-6
    assert got == pytest.approx(cycled, abs=tolerance)
    # The cycle matters: momentum held at either end of the cycle lands measurably elsewhere.
    for constant in (0.95, 0.85):
        baked = _reference(name, lrs[:steps], np.full(steps + 1, constant))
        assert abs(got - baked) > 20 * tolerance, (constant, got, baked)


#: sha256 (first 16 hex digits) of the Keras code dnnguide.optimizers copies or overrides, in
#: the Keras versions pyproject.toml allows. A mismatch means Keras changed it: compare the
#: copies in dnnguide/optimizers.py with the new code, then update the digests.
KERAS_SOURCES = {
    ("SGD", "update_step"): "ec23ff46f0afbf03",
    ("Adam", "update_step"): "4ffd53248c630937",
    ("Adamax", "update_step"): "5d0c22bcef4385d3",
    ("Nadam", "update_step"): "40abbfcb3060e542",
    ("Nadam", "_backend_update_step"): "a52e25ee2c131221",
    ("Optimizer", "_backend_update_step"): "9be20bff479173f6",
    ("Optimizer", "_apply_weight_decay"): "9493cdf4738cdf75",
}
#: Private optimizer attributes the scheduled optimizers read, by class.
KERAS_PRIVATE_ATTRIBUTES = {
    "SGD": ("momentums", "_get_variable_index"),
    "Adam": ("_momentums", "_velocities", "_velocity_hats", "_get_variable_index"),
    "Adamax": ("_m", "_u", "_get_variable_index"),
    "Nadam": ("_momentums", "_velocities", "_u_product", "_get_variable_index"),
}


def test_canary_keras_is_the_version_whose_internals_are_copied():
    """Fails loudly on a Keras whose update steps or private names moved."""
    import hashlib
    import inspect
    import textwrap
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")
    from packaging.requirements import Requirement

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    (spec,) = [Requirement(d).specifier for d in deps if Requirement(d).name == "keras"]
    assert spec.contains(keras.__version__), f"Keras {keras.__version__} is outside {spec}"
    assert len(spec) == 2 and all(s.operator in (">=", "<") for s in spec)  # a closed range
    changed = []
    for (cls, method), digest in KERAS_SOURCES.items():
        source = textwrap.dedent(inspect.getsource(getattr(getattr(keras.optimizers, cls),
                                                           method)))
        if hashlib.sha256(source.encode()).hexdigest()[:16] != digest:
            changed.append(f"{cls}.{method}")
    assert not changed, f"Keras {keras.__version__} changed {changed}: check dnnguide.optimizers"
    weights = [keras.Variable(np.ones((2, 2), "float32"))]
    for cls, names in KERAS_PRIVATE_ATTRIBUTES.items():
        optimizer = getattr(keras.optimizers, cls)(**({"momentum": 0.9} if cls == "SGD" else {}),
                                                   **({"amsgrad": True} if cls == "Adam" else {}))
        optimizer.build(weights)
        missing = [n for n in names if not hasattr(optimizer, n)]
        assert not missing, f"keras.optimizers.{cls} no longer has {missing}"


#: The keras.src names dnnguide imports (Keras has no public path to them), by module.
KERAS_SRC_NAMES = {
    "keras.src.models.functional": ("Functional",),  # layers.to_mc_dropout, compress.bridge
    "keras.src.ops.function": ("make_node_key",),  # auditing.graph
}


def test_canary_the_keras_src_names_dnnguide_imports_still_exist():
    """The third kind of Keras internal (after copied steps and private attributes)."""
    import ast
    import importlib
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "dnnguide"
    used = {(node.module, alias.name) for path in package.rglob("*.py")
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras.src")
            for alias in node.names}  # every name, also the 2nd of `import A, B`
    assert used == {(m, n) for m, names in KERAS_SRC_NAMES.items() for n in names}, (
        "dnnguide imports keras.src names this canary does not list")
    for module, names in KERAS_SRC_NAMES.items():
        missing = [n for n in names if not hasattr(importlib.import_module(module), n)]
        assert not missing, f"Keras {keras.__version__} moved {module}.{missing}"
