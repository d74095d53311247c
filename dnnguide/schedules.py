"""Learning-rate schedules of the guidelines: power, exponential, piecewise, performance, 1cycle.

The math is written once, as pure functions of the step built on one piecewise-linear
interpolator (optax style). Each is wrapped in a registered
``keras.optimizers.schedules.LearningRateSchedule`` with ``get_config``, so a saved
``model.keras`` reloads with its schedule. Performance scheduling acts between epochs and is
therefore a callback (``ReduceLROnPlateau``), built by :func:`schedule_callbacks`.

1cycle also cycles the momentum inversely to the LR (Smith 2018). Keras bakes an optimizer's
``momentum``/``beta_1`` into the compiled train step as Python floats, so a callback that assigns
them changes nothing: the cycle lives in the optimizer instead, in graph
(:func:`dnnguide.optimizers.optimizer_from_config`), reading :class:`OneCycleMomentum`.

Example:
    >>> from dnnguide.config import ScheduleConfig
    >>> lr = make_schedule(ScheduleConfig("onecycle", total_steps=100), base_lr=0.1)
    >>> round(float(lr(0)), 6), round(float(lr(44.55)), 6)
    (0.004, 0.1)

References:
    Smith, "A disciplined approach to neural network hyper-parameters" (2018), arXiv:1803.09820.
    Géron, "Hands-On Machine Learning", 3rd ed., ch. 11 (learning-rate scheduling).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras
from keras import ops

from dnnguide.config import ConfigError, ScheduleConfig, check_range

_LRSchedule = keras.optimizers.schedules.LearningRateSchedule
_register = keras.saving.register_keras_serializable(package="dnnguide")


# --------------------------------------------------------------------------- pure math
def piecewise_linear(step, knots: Sequence[float], values: Sequence[float]):
    """Interpolate linearly between ``(knots[i], values[i])``; constant outside the knots.

    Knots are non-decreasing Python numbers; two equal knots make a jump to the later value.
    """
    step = ops.cast(step, "float32")
    out = ops.full_like(step, values[0])
    for x0, x1, v0, v1 in zip(knots[:-1], knots[1:], values[:-1], values[1:]):
        if x1 > x0:
            frac = ops.clip((step - x0) / (x1 - x0), 0.0, 1.0)
            segment = (1.0 - frac) * v0 + frac * v1  # exact at both knots, unlike v0 + frac*(v1-v0)
        else:
            segment = ops.full_like(step, v1)
        out = ops.where(step >= x0, segment, out)
    return out


def power_decay(step, initial_learning_rate: float, decay_steps: int, power: float = 1.0):
    """``lr0 / (1 + step / decay_steps) ** power`` (power scheduling)."""
    step = ops.cast(step, "float32")
    return initial_learning_rate / ops.power(1.0 + step / decay_steps, power)


def exponential_decay(step, initial_learning_rate: float, decay_steps: int):
    """``lr0 * 0.1 ** (step / decay_steps)``: the LR drops tenfold every ``decay_steps``."""
    step = ops.cast(step, "float32")
    return initial_learning_rate * ops.power(0.1, step / decay_steps)


def piecewise_constant(step, boundaries: Sequence[int], values: Sequence[float]):
    """``values[i]`` for ``boundaries[i-1] <= step < boundaries[i]`` (the new value starts at a boundary)."""
    step = ops.cast(step, "float32")
    out = ops.full_like(step, values[0])
    for boundary, value in zip(boundaries, values[1:]):
        out = ops.where(step >= boundary, value, out)
    return out


def onecycle_knots(total_steps: int, pct_start: float) -> tuple[float, float, float, float]:
    """Steps where 1cycle's phases meet: start, peak, end of the fall, last step (``total_steps - 1``)."""
    last = float(max(total_steps - 1, 0))
    return 0.0, pct_start * last, 2.0 * pct_start * last, last


def onecycle_lr(step, total_steps: int, max_lr: float, pct_start: float = 0.45,
                div_factor: float = 25.0, final_div_factor: float = 1e4):
    """Smith's three-phase 1cycle learning rate.

    Rises linearly from ``max_lr / div_factor`` to ``max_lr`` over ``pct_start`` of the steps,
    falls back over as many, then anneals linearly to ``max_lr / final_div_factor`` at the last
    step (``total_steps - 1``) and stays there.
    """
    return piecewise_linear(step, onecycle_knots(total_steps, pct_start),
                            _onecycle_lr_values(max_lr, div_factor, final_div_factor))


def _onecycle_lr_values(max_lr: float, div_factor: float, final_div_factor: float):
    start = max_lr / div_factor
    return start, max_lr, start, max_lr / final_div_factor


def onecycle_mean_lr(max_lr: float, pct_start: float = 0.45, div_factor: float = 25.0,
                     final_div_factor: float = 1e4) -> float:
    """The mean of :func:`onecycle_lr` over its cycle: the trapezoids between its knots.

    Example:
        >>> round(onecycle_mean_lr(1.0, pct_start=0.5, div_factor=10.0), 3)
        0.55
    """
    knots = onecycle_knots(2, pct_start)  # last step 1: the knots as fractions of the cycle
    values = _onecycle_lr_values(max_lr, div_factor, final_div_factor)
    return float(sum((k1 - k0) * (v0 + v1) / 2 for k0, k1, v0, v1
                     in zip(knots[:-1], knots[1:], values[:-1], values[1:])))


def onecycle_momentum(step, total_steps: int, pct_start: float = 0.45,
                      max_momentum: float = 0.95, min_momentum: float = 0.85):
    """1cycle's momentum: falls from max to min while the LR rises, rises back, then stays at max."""
    return piecewise_linear(step, onecycle_knots(total_steps, pct_start),
                            (max_momentum, min_momentum, max_momentum, max_momentum))


# --------------------------------------------------------------------------- Keras wrappers
@_register
class PowerSchedule(_LRSchedule):
    """Power scheduling, ``lr0 / (1 + step / decay_steps) ** power`` (see :func:`power_decay`)."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, power: float = 1.0):
        check_range("initial_learning_rate", initial_learning_rate, 0.0, low_inclusive=False)
        check_range("decay_steps", decay_steps, 1, integer=True)
        check_range("power", power, 0.0, low_inclusive=False)
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = int(decay_steps)
        self.power = float(power)

    def __call__(self, step):
        return power_decay(step, self.initial_learning_rate, self.decay_steps, self.power)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "power": self.power}


@_register
class ExponentialSchedule(keras.optimizers.schedules.ExponentialDecay):
    """Exponential scheduling, ``lr0 * 0.1 ** (step / decay_steps)`` (see :func:`exponential_decay`).

    Keras's own ``ExponentialDecay`` with ``decay_rate=0.1``; this class only validates its
    arguments the dnnguide way and keeps its short config. (``PowerSchedule`` stays ours:
    Keras's ``InverseTimeDecay`` is the ``power=1`` case only. ``PiecewiseConstantSchedule``
    too: Keras's ``PiecewiseConstantDecay`` switches one step after each boundary.)
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int):
        check_range("initial_learning_rate", initial_learning_rate, 0.0, low_inclusive=False)
        check_range("decay_steps", decay_steps, 1, integer=True)
        super().__init__(float(initial_learning_rate), int(decay_steps), decay_rate=0.1)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps}


@_register
class PiecewiseConstantSchedule(_LRSchedule):
    """``values[i]`` from step ``boundaries[i-1]`` until ``boundaries[i]`` (see :func:`piecewise_constant`)."""

    def __init__(self, boundaries: Sequence[int], values: Sequence[float]):
        # ScheduleConfig validates the same rules; repeat them for direct construction.
        ScheduleConfig("piecewise", boundaries=tuple(boundaries), values=tuple(values))
        self.boundaries = [int(b) for b in boundaries]
        self.values = [float(v) for v in values]

    def __call__(self, step):
        return piecewise_constant(step, self.boundaries, self.values)

    def get_config(self):
        return {"boundaries": list(self.boundaries), "values": list(self.values)}


def _check_onecycle(total_steps, pct_start) -> None:
    if total_steps is None:
        raise ConfigError(
            "A 1cycle schedule needs `total_steps` (steps_per_epoch * epochs). Received: "
            "total_steps=None. Set it with dataclasses.replace(schedule, total_steps=...); "
            "dnnguide.training.fit fills it in."
        )
    check_range("total_steps", total_steps, 1, integer=True)
    # Rise and fall each take pct_start of the steps, so they must fit in the budget.
    check_range("pct_start", pct_start, 0.0, 0.5, low_inclusive=False)


@_register
class OneCycleSchedule(_LRSchedule):
    """1cycle learning rate (Smith 2018); see :func:`onecycle_lr` for the shape."""

    def __init__(self, max_lr: float, total_steps: int, pct_start: float = 0.45,
                 div_factor: float = 25.0, final_div_factor: float = 1e4):
        check_range("max_lr", max_lr, 0.0, low_inclusive=False)
        _check_onecycle(total_steps, pct_start)
        check_range("div_factor", div_factor, 1.0)
        check_range("final_div_factor", final_div_factor, 1.0)
        self.max_lr = float(max_lr)
        self.total_steps = int(total_steps)
        self.pct_start = float(pct_start)
        self.div_factor = float(div_factor)
        self.final_div_factor = float(final_div_factor)

    def __call__(self, step):
        return onecycle_lr(step, self.total_steps, self.max_lr, self.pct_start,
                           self.div_factor, self.final_div_factor)

    def get_config(self):
        return {"max_lr": self.max_lr, "total_steps": self.total_steps,
                "pct_start": self.pct_start, "div_factor": self.div_factor,
                "final_div_factor": self.final_div_factor}


@_register
class OneCycleMomentum:
    """1cycle momentum (SGD ``momentum`` or Adam-family ``beta_1``) as a function of the step.

    Read in graph by the optimizers of :mod:`dnnguide.optimizers`; see :func:`onecycle_momentum`.
    """

    def __init__(self, total_steps: int, pct_start: float = 0.45,
                 max_momentum: float = 0.95, min_momentum: float = 0.85):
        _check_onecycle(total_steps, pct_start)
        check_range("max_momentum", max_momentum, 0.0, 1.0, high_inclusive=False)
        check_range("min_momentum", min_momentum, 0.0, max_momentum)
        self.total_steps = int(total_steps)
        self.pct_start = float(pct_start)
        self.max_momentum = float(max_momentum)
        self.min_momentum = float(min_momentum)

    def __call__(self, step):
        return onecycle_momentum(step, self.total_steps, self.pct_start,
                                 self.max_momentum, self.min_momentum)

    def get_config(self):
        return {"total_steps": self.total_steps, "pct_start": self.pct_start,
                "max_momentum": self.max_momentum, "min_momentum": self.min_momentum}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


# --------------------------------------------------------------------------- from a config
def make_schedule(schedule: ScheduleConfig, base_lr: float):
    """The learning rate an optimizer gets for a schedule config.

    Args:
        schedule: the schedule part of a ``NetworkConfig``.
        base_lr: the optimizer's learning rate (``lr0``; 1cycle's ``max_lr`` unless set).

    Returns:
        ``base_lr`` as a float for ``constant`` and ``performance`` (the latter acts through
        :func:`schedule_callbacks`), else a registered ``LearningRateSchedule``.

    Raises:
        ConfigError: for 1cycle without ``total_steps``.

    Example:
        >>> float(make_schedule(ScheduleConfig("exponential", decay_steps=10), 1.0)(20))
        0.01...
    """
    if not isinstance(schedule, ScheduleConfig):
        raise TypeError(f"Argument `schedule` must be a ScheduleConfig. Received: schedule={schedule!r}")
    check_range("base_lr", base_lr, 0.0, low_inclusive=False)
    name = schedule.name
    if name in ("constant", "performance"):
        return float(base_lr)
    if name == "power":
        return PowerSchedule(base_lr, schedule.decay_steps, schedule.power)
    if name == "exponential":
        return ExponentialSchedule(base_lr, schedule.decay_steps)
    if name == "piecewise":
        return PiecewiseConstantSchedule(schedule.boundaries, schedule.values)
    if name == "onecycle":
        return OneCycleSchedule(schedule.max_lr or base_lr, schedule.total_steps,
                                schedule.pct_start, schedule.div_factor, schedule.final_div_factor)
    raise AssertionError(f"unreachable: {name!r} passed ScheduleConfig validation")


def make_momentum_schedule(schedule: ScheduleConfig) -> OneCycleMomentum | None:
    """1cycle's momentum cycle for a schedule config, or ``None`` for every other schedule."""
    if schedule.name != "onecycle":
        return None
    return OneCycleMomentum(schedule.total_steps, schedule.pct_start,
                            schedule.max_momentum, schedule.min_momentum)


class LearningRateLogger(keras.callbacks.Callback):
    """Add the optimizer's current learning rate to each epoch's logs (``learning_rate``).

    ``ReduceLROnPlateau`` logs it already; in-optimizer schedules do not, so without this the
    history of a power, exponential, piecewise or 1cycle run has no LR column to compare.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and "learning_rate" not in logs:
            optimizer = getattr(self.model, "optimizer", None)
            if optimizer is not None:
                logs["learning_rate"] = float(ops.convert_to_numpy(optimizer.learning_rate))


def schedule_callbacks(schedule: ScheduleConfig, monitor: str = "val_loss") -> list:
    """Callbacks a schedule needs: ``ReduceLROnPlateau`` for ``performance``, else an LR logger.

    The 1cycle momentum needs no callback: it runs inside the optimizer's update.
    """
    if schedule.name != "performance":
        return [LearningRateLogger()]
    return [keras.callbacks.ReduceLROnPlateau(
        monitor=monitor, factor=schedule.factor, patience=schedule.patience,
        min_lr=schedule.min_lr)]


def check_callbacks(optimizer, callbacks) -> None:
    """Refuse ``ReduceLROnPlateau`` with an optimizer whose learning rate is not a plain value.

    Keras accepts the pair and fails with a ``TypeError`` only the first time the callback
    reduces the LR, possibly hours into training; this check fails before training.
    Performance scheduling and the in-optimizer schedules (1cycle, power, ...) are alternatives.

    Raises:
        ConfigError: if the combination is present.

    Example:
        >>> opt = keras.optimizers.SGD(ExponentialSchedule(0.1, 100))
        >>> try:
        ...     check_callbacks(opt, [keras.callbacks.ReduceLROnPlateau()])
        ... except ConfigError as err:
        ...     print(str(err)[:44])
        Performance scheduling (ReduceLROnPlateau) c
    """
    # Mixed precision wraps the optimizer; the learning rate belongs to the inner one.
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    lr = getattr(inner, "_learning_rate", None)  # the public property evaluates the schedule
    if lr is None or not callable(lr):  # a Variable (settable) or no optimizer yet
        return
    for callback in callbacks or ():
        if isinstance(callback, keras.callbacks.LearningRateScheduler):
            # Keras raises a TypeError at the first epoch: a schedule's LR cannot be set.
            raise ConfigError(
                "A LearningRateScheduler callback cannot set a learning rate that is already "
                f"a schedule. Received: learning_rate={type(lr).__name__}, callbacks include "
                "LearningRateScheduler. Use one or the other: schedule='constant' with the "
                "callback, or the config's schedule without it."
            )
        if isinstance(callback, keras.callbacks.ReduceLROnPlateau):
            raise ConfigError(
                "Performance scheduling (ReduceLROnPlateau) cannot change a learning rate that "
                f"is already a schedule. Received: learning_rate={type(lr).__name__}, "
                "callbacks include ReduceLROnPlateau. Use one or the other: "
                "schedule='performance' with a constant LR, or the schedule without the callback."
            )


def training_steps(n_samples: int, batch_size: int, epochs: int, initial_epoch: int = 0) -> int:
    """Optimizer steps of ``fit(epochs=epochs, initial_epoch=initial_epoch)``: a 1cycle budget.

    Hyperband's continuation trials train from ``initial_epoch=k`` with a fresh optimizer (step
    counter 0), so their cycle must span ``epochs - k`` epochs, not ``epochs``.

    Example:
        >>> training_steps(3600, 32, epochs=10, initial_epoch=4)
        678
    """
    check_range("n_samples", n_samples, 1, integer=True)
    check_range("batch_size", batch_size, 1, integer=True)
    check_range("epochs", epochs, 1, integer=True)
    check_range("initial_epoch", initial_epoch, 0, epochs - 1, integer=True)
    return -(-n_samples // batch_size) * (epochs - initial_epoch)


def plot_schedule(schedule: ScheduleConfig, base_lr: float, total_steps: int, path=None):
    """Plot the LR (and 1cycle's momentum) over ``total_steps`` steps; save a PNG if ``path``.

    Returns the matplotlib figure. ``performance`` depends on the validation loss and is drawn
    as the constant ``base_lr`` it starts from.
    """
    import numpy as np

    from dnnguide.plotting import pyplot, save_figure

    plt = pyplot()

    if schedule.name == "onecycle" and schedule.total_steps is None:
        schedule = dataclasses.replace(schedule, total_steps=total_steps)
    steps = np.arange(total_steps)
    lr = make_schedule(schedule, base_lr)
    lrs = np.full(total_steps, lr) if isinstance(lr, float) else ops.convert_to_numpy(lr(steps))
    momentum = make_momentum_schedule(schedule)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, lrs, color="tab:blue")
    ax.set(xlabel="step", ylabel="learning rate", title=f"{schedule.name} schedule")
    if momentum is not None:
        twin = ax.twinx()
        twin.plot(steps, ops.convert_to_numpy(momentum(steps)), color="tab:orange")
        twin.set_ylabel("momentum / beta_1", color="tab:orange")
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    else:
        plt.close(fig)
    return fig
