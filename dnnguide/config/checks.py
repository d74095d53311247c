"""The vocabulary of a configuration and the validators every module raises through.

Each ``*S`` tuple lists the valid values of one choice (``ACTIVATIONS``, ``OPTIMIZERS``,
``TASKS``...); :func:`check_choice`, :func:`check_range` and :func:`check_bool` refuse anything
else with a :class:`ConfigError` in the Keras form, once, at the boundary.

Example:
    >>> check_choice("optimizer", "adamw", OPTIMIZERS)  # valid: returns None
    >>> check_bool("standardize_inputs", "no")
    Traceback (most recent call last):
    ...
    dnnguide.config.checks.ConfigError: Argument `standardize_inputs` must be True or False. Received: standardize_inputs='no'
"""

from __future__ import annotations

import difflib
import math
import numbers
from typing import Any

ACTIVATIONS = (
    "relu", "leaky_relu", "elu", "selu", "swish", "gelu", "mish", "tanh", "sigmoid", "softplus",
)
RELU_FAMILY = ("relu", "leaky_relu")
INITIALIZERS = (
    "he_normal", "he_uniform", "lecun_normal", "lecun_uniform", "glorot_normal", "glorot_uniform",
)
NORMALIZATIONS = ("none", "batch_norm_before", "batch_norm_after")
DROPOUT_KINDS = ("standard", "alpha", "mc", "mc_alpha")
ARCHITECTURES = ("sequential", "residual")
OPTIMIZERS = (
    "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamax", "nadam", "adamw",
)
SCHEDULES = ("constant", "power", "exponential", "piecewise", "performance", "onecycle")
PRECISIONS = ("float32", "float16", "int8")
#: What a finished run fits on its validation split: ``"temperature"`` (temperature scaling of
#: the class probabilities; an MC dropout model also gets its pooling, a regression MC model its
#: noise variance) or ``"none"`` (the network's own outputs).
CALIBRATIONS = ("temperature", "none")
TASKS = ("classification", "binary", "regression")
#: How MC dropout pools the class probabilities of its samples into one prediction:
#: ``"mean"``, the arithmetic mean (the Bayesian model average of Gal & Ghahramani), or
#: ``"geometric"``, the normalized geometric mean, i.e. the softmax of the mean log-probability
#: (binary: the sigmoid of the mean log-odds). The geometric mean is the ensemble rule dropout
#: training approximates with its weight scaling (Srivastava et al. 2014 sec. 7; exact for one
#: softmax layer, Baldi & Sadowski 2013). Regression always uses the mean.
POOLINGS = ("mean", "geometric")


class ConfigError(ValueError):
    """An invalid or guideline-breaking configuration."""


# --------------------------------------------------------------------------- checks
def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices`` (with a close-match hint)."""
    if value in choices:
        return
    hint = ""
    if isinstance(value, str):
        close = difflib.get_close_matches(value, choices, n=1)
        if close:
            hint = f" Did you mean {close[0]!r}?"
    raise ConfigError(
        f"Argument `{name}` must be one of {list(choices)}. Received: {name}={value!r}.{hint}"
    )


def check_pooling(name: str, pooling: Any, task: str) -> str:
    """``pooling`` if it is one of :data:`POOLINGS` for ``task`` (regression: the mean only)."""
    check_choice(name, pooling, POOLINGS if task != "regression" else POOLINGS[:1])
    return pooling


def check_range(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    integer: bool = False,
) -> None:
    """Raise ConfigError unless ``value`` is a finite number inside the given interval.

    The one numeric validator: Python and NumPy numbers (``np.int64``, ``np.float32``) are
    accepted alike, booleans are not numbers here, and NaN or infinity is refused everywhere
    (NaN compares false with every bound, so an interval check alone would let it through).

    Example:
        >>> check_range("learning_rate", float("nan"), 0.0)
        Traceback (most recent call last):
        ...
        dnnguide.config.checks.ConfigError: Argument `learning_rate` must be a finite number. Received: learning_rate=nan
    """
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, numbers.Integral if integer else numbers.Real)
    if isinstance(value, bool) or not ok_type:
        raise ConfigError(f"Argument `{name}` must be {kind}. Received: {name}={value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"Argument `{name}` must be a finite number. Received: {name}={value!r}")
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ConfigError(
            f"Argument `{name}` must be in {left}{lo}, {hi}{right}. Received: {name}={value!r}"
        )


def check_bool(name: str, value: Any) -> None:
    """Raise ConfigError unless ``value`` is a real boolean (the string "no" is not False)."""
    if not isinstance(value, bool):
        raise ConfigError(f"Argument `{name}` must be True or False. Received: {name}={value!r}")


#: Caps on the network's size: beyond them a dense stack takes minutes to build with no output
#: and far more memory than the guidelines' deep nets (tens to ~100 layers, a few hundred units).
MAX_DEPTH = 1000
MAX_WIDTH = 16384
#: Most members of a deep ensemble: its gains level off by 5-10 (Lakshminarayanan et al. 2017,
#: fig. 3); 20 trains 20x as long.
MAX_ENSEMBLE = 20


def _forbid(condition: bool, message: str) -> None:
    if condition:
        raise ConfigError(message)

