"""One Keras optimizer per row of the guidelines' optimizer table, and 1cycle's momentum cycle.

:func:`make_optimizer` builds SGD, momentum, Nesterov (NAG), AdaGrad, RMSprop, Adam, AdaMax,
Nadam or AdamW from an :class:`~dnnguide.config.OptimizerConfig`, with gradient clipping by norm
or value. Weight decay is decoupled (AdamW's, or SGD's own), never L2 on Adam.

Keras 3 bakes ``momentum``/``beta_1`` into the compiled train step as Python floats, so a callback
that assigns them after the first step changes nothing. 1cycle's momentum cycle therefore lives in
the optimizer: :class:`ScheduledSGD`, :class:`ScheduledAdam`, :class:`ScheduledAdamax`,
:class:`ScheduledNadam` and :class:`ScheduledAdamW` compute ``momentum``/``beta_1`` from a
``momentum_schedule(iterations)`` inside the update, once per step. Their math is Keras 3.15's
``update_step`` with only that value replaced; with a flat schedule they match the stock optimizer.
Because they copy Keras internals, ``pyproject.toml`` pins Keras to 3.15.x and a canary test
(``tests/test_optimizers.py``) fails on a Keras whose copied code or private names changed.
(A ``keras.Variable`` ``beta_1`` read by the stock Adam update works, but SGD accepts only a
float ``momentum`` and Nadam's running product needs the next step's value, so one public
mechanism would not cover the five optimizers.)

Example:
    >>> from dnnguide.config import NetworkConfig, OptimizerConfig
    >>> type(make_optimizer(OptimizerConfig(name="nesterov"))).__name__
    'SGD'
    >>> cfg = NetworkConfig(optimizer={"name": "adamw"},
    ...                     schedule={"name": "onecycle", "total_steps": 1000})
    >>> type(optimizer_from_config(cfg)).__name__
    'ScheduledAdamW'

References:
    Smith, "A disciplined approach to neural network hyper-parameters" (2018), arXiv:1803.09820.
    Loshchilov & Hutter, "Decoupled weight decay regularization" (2019), arXiv:1711.05101.
"""

from __future__ import annotations

import dataclasses
import warnings

import keras
from keras import ops

from dnnguide.config import ConfigError, NetworkConfig, OptimizerConfig
from dnnguide.schedules import make_momentum_schedule, make_schedule

_register = keras.saving.register_keras_serializable(package="dnnguide")

# Optimizers with a first-moment / momentum coefficient that 1cycle can cycle.
MOMENTUM_OPTIMIZERS = ("momentum", "nesterov", "adam", "adamax", "nadam", "adamw")


# --------------------------------------------------------------------------- scheduled momentum
class _ScheduledMomentum:
    """Mixin: ``momentum``/``beta_1`` = ``momentum_schedule(iterations)``, evaluated in graph.

    The value is computed once per step into an optimizer variable (as Keras's Nadam does with
    its ``u_product``) so the per-variable update reads one scalar instead of re-evaluating the
    schedule for every weight.
    """

    def __init__(self, *args, momentum_schedule=None, **kwargs):
        if momentum_schedule is None or not callable(momentum_schedule):
            raise TypeError("Argument `momentum_schedule` must be a callable of the step, e.g. "
                            "dnnguide.schedules.OneCycleMomentum. "
                            f"Received: momentum_schedule={momentum_schedule!r}")
        super().__init__(*args, **kwargs)
        self.momentum_schedule = momentum_schedule

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._momentum_now = self.add_variable(
            (), initializer="zeros", aggregation="only_first_replica", name="scheduled_momentum")

    def _apply_weight_decay(self, variables):
        # Keras applies a zero decay too (w -= w * 0 * lr, an exact no-op for finite weights),
        # evaluating the learning-rate schedule once per variable to do so; skip it.
        if not self.weight_decay:
            return
        super()._apply_weight_decay(variables)

    def _scheduled_momentum(self, dtype):
        return ops.cast(self._momentum_now, dtype)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        self.assign(self._momentum_now, self.momentum_schedule(self.iterations))
        super()._backend_update_step(grads, trainable_variables, learning_rate)

    def get_config(self):
        config = super().get_config()
        config["momentum_schedule"] = keras.saving.serialize_keras_object(self.momentum_schedule)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("momentum_schedule"), dict):
            config["momentum_schedule"] = keras.saving.deserialize_keras_object(
                config["momentum_schedule"], custom_objects=custom_objects)
        return super().from_config(config, custom_objects=custom_objects)


@_register
class ScheduledSGD(_ScheduledMomentum, keras.optimizers.SGD):
    """SGD with (Nesterov) momentum following ``momentum_schedule(step)``.

    Example:
        >>> from dnnguide.schedules import OneCycleMomentum
        >>> opt = ScheduledSGD(learning_rate=0.1, nesterov=True,
        ...                    momentum_schedule=OneCycleMomentum(total_steps=100))
    """

    def __init__(self, learning_rate=0.01, momentum_schedule=None, nesterov=False, **kwargs):
        # `momentum` is only recorded (the value at step 0); the update reads the schedule.
        kwargs.setdefault("momentum", _initial_momentum(momentum_schedule))
        super().__init__(learning_rate=learning_rate, momentum_schedule=momentum_schedule,
                         nesterov=nesterov, **kwargs)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        if not self.momentums:  # SGD skips the velocity slots when the recorded momentum is 0
            self.momentums = self.add_optimizer_variables(variables, "momentum")

    def update_step(self, gradient, variable, learning_rate):
        # keras/src/optimizers/sgd.py (3.15) with the scheduled momentum.
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        m = self.momentums[self._get_variable_index(variable)]
        momentum = self._scheduled_momentum(variable.dtype)
        self.assign(m, ops.subtract(ops.multiply(m, momentum),
                                    ops.multiply(gradient, learning_rate)))
        if self.nesterov:
            self.assign_add(variable, ops.subtract(ops.multiply(m, momentum),
                                                   ops.multiply(gradient, learning_rate)))
        else:
            self.assign_add(variable, m)


@_register
class ScheduledAdam(_ScheduledMomentum, keras.optimizers.Adam):
    """Adam with ``beta_1`` following ``momentum_schedule(step)``.

    The bias correction uses the current ``beta_1 ** t``, as Keras and PyTorch's ``OneCycleLR``
    with ``cycle_momentum`` do.
    """

    def __init__(self, learning_rate=0.001, momentum_schedule=None, **kwargs):
        kwargs.setdefault("beta_1", _initial_momentum(momentum_schedule))
        super().__init__(learning_rate=learning_rate, momentum_schedule=momentum_schedule,
                         **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        # keras/src/optimizers/adam.py (3.15) with the scheduled beta_1.
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        local_step = ops.cast(self.iterations + 1, variable.dtype)
        beta_1 = self._scheduled_momentum(variable.dtype)
        beta_1_power = ops.power(beta_1, local_step)
        beta_2_power = ops.power(ops.cast(self.beta_2, variable.dtype), local_step)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        if self.amsgrad:
            v_hat = self._velocity_hats[self._get_variable_index(variable)]
            self.assign(v_hat, ops.maximum(v_hat, v))
            v = v_hat
        self.assign_sub(variable, ops.divide(ops.multiply(m, alpha),
                                             ops.add(ops.sqrt(v), self.epsilon)))


@_register
class ScheduledAdamW(ScheduledAdam, keras.optimizers.AdamW):
    """AdamW (decoupled weight decay) with ``beta_1`` following ``momentum_schedule(step)``."""


@_register
class ScheduledAdamax(_ScheduledMomentum, keras.optimizers.Adamax):
    """AdaMax with ``beta_1`` following ``momentum_schedule(step)``."""

    def __init__(self, learning_rate=0.001, momentum_schedule=None, **kwargs):
        kwargs.setdefault("beta_1", _initial_momentum(momentum_schedule))
        super().__init__(learning_rate=learning_rate, momentum_schedule=momentum_schedule,
                         **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        # keras/src/optimizers/adamax.py (3.15) with the scheduled beta_1.
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        local_step = ops.cast(self.iterations + 1, variable.dtype)
        beta_1 = self._scheduled_momentum(variable.dtype)
        beta_1_power = ops.power(beta_1, local_step)
        m = self._m[self._get_variable_index(variable)]
        u = self._u[self._get_variable_index(variable)]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), (1 - beta_1)))
        self.assign(u, ops.maximum(ops.multiply(self.beta_2, u), ops.abs(gradient)))
        self.assign_sub(variable, ops.divide(ops.multiply(lr, m),
                                             ops.multiply((1 - beta_1_power),
                                                          ops.add(u, self.epsilon))))


@_register
class ScheduledNadam(_ScheduledMomentum, keras.optimizers.Nadam):
    """Nadam with ``beta_1`` following ``momentum_schedule(step)``.

    Nadam already warms its momentum up (``mu_t = beta_1 * (1 - 0.5 * 0.96 ** t)``, Dozat 2016);
    here ``beta_1`` in that product is the scheduled value at step ``t`` (and at ``t + 1`` for the
    look-ahead ``mu_{t+1}``), which is what the running product ``u_product`` accumulates.
    """

    def __init__(self, learning_rate=0.001, momentum_schedule=None, **kwargs):
        kwargs.setdefault("beta_1", _initial_momentum(momentum_schedule))
        super().__init__(learning_rate=learning_rate, momentum_schedule=momentum_schedule,
                         **kwargs)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._momentum_next = self.add_variable(
            (), initializer="zeros", aggregation="only_first_replica", name="scheduled_momentum_next")

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # Nadam's own _backend_update_step multiplies u_product by the float beta_1; do that
        # with the scheduled value, then run the optimizer-level step (skipping Nadam's).
        self.assign(self._momentum_now, self.momentum_schedule(self.iterations))
        self.assign(self._momentum_next, self.momentum_schedule(self.iterations + 1))
        dtype = self._u_product.dtype
        decay = ops.power(0.96, ops.cast(self.iterations + 1, dtype))
        self.assign(self._u_product, self._u_product * ops.cast(self._momentum_now, dtype)
                    * (1.0 - 0.5 * decay))
        super(keras.optimizers.Nadam, self)._backend_update_step(
            grads, trainable_variables, learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        # keras/src/optimizers/nadam.py (3.15) with the scheduled beta_1.
        var_dtype = variable.dtype
        lr = ops.cast(learning_rate, var_dtype)
        gradient = ops.cast(gradient, var_dtype)
        local_step = ops.cast(self.iterations + 1, var_dtype)
        next_step = ops.cast(self.iterations + 2, var_dtype)
        decay = ops.cast(0.96, var_dtype)
        beta_1 = self._scheduled_momentum(var_dtype)
        beta_1_next = ops.cast(self._momentum_next, var_dtype)
        beta_2 = ops.cast(self.beta_2, var_dtype)
        u_t = beta_1 * (1.0 - 0.5 * (ops.power(decay, local_step)))
        u_t_1 = beta_1_next * (1.0 - 0.5 * (ops.power(decay, next_step)))
        u_product_t = ops.cast(self._u_product, var_dtype)
        u_product_t_1 = u_product_t * u_t_1
        beta_2_power = ops.power(beta_2, local_step)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), (1 - beta_1)))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), (1 - beta_2)))
        m_hat = ops.add(ops.divide(ops.multiply(u_t_1, m), 1 - u_product_t_1),
                        ops.divide(ops.multiply(1 - u_t, gradient), 1 - u_product_t))
        v_hat = ops.divide(v, (1 - beta_2_power))
        self.assign_sub(variable, ops.divide(ops.multiply(m_hat, lr),
                                             ops.add(ops.sqrt(v_hat), self.epsilon)))


def _initial_momentum(momentum_schedule) -> float:
    if momentum_schedule is None or not callable(momentum_schedule):
        return 0.9  # _ScheduledMomentum.__init__ raises the real error
    return float(ops.convert_to_numpy(momentum_schedule(0)))


# --------------------------------------------------------------------------- factories
def make_optimizer(config: OptimizerConfig, learning_rate=None,
                   momentum_schedule=None) -> keras.optimizers.Optimizer:
    """Build the Keras optimizer a config names.

    Args:
        config: the optimizer row (name, learning rate, momentum/betas, decay, clipping).
        learning_rate: overrides ``config.learning_rate``; a float or a
            ``keras.optimizers.schedules.LearningRateSchedule``.
        momentum_schedule: a callable of the step (e.g.
            :class:`~dnnguide.schedules.OneCycleMomentum`) that drives ``momentum``
            (momentum, nesterov) or ``beta_1`` (adam, adamax, nadam, adamw) in graph; then
            ``config.momentum``/``config.beta_1`` are not used.

    Raises:
        ConfigError: a momentum schedule for an optimizer without momentum.

    Example:
        >>> opt = make_optimizer(OptimizerConfig("adamw", learning_rate=1e-3, clipnorm=1.0))
        >>> type(opt).__name__, opt.clipnorm
        ('AdamW', 1.0)
    """
    if not isinstance(config, OptimizerConfig):
        raise TypeError("Argument `config` must be an OptimizerConfig. "
                        f"Received: config={config!r}")
    lr = config.learning_rate if learning_rate is None else learning_rate
    if isinstance(lr, (int, float)):
        lr = float(lr)  # Keras refuses an int learning rate
    name = config.name
    if momentum_schedule is not None and name not in MOMENTUM_OPTIMIZERS:
        raise ConfigError(f"Optimizer {name!r} has no momentum to schedule. Optimizers with a "
                          f"momentum or beta_1: {list(MOMENTUM_OPTIMIZERS)}. Received: "
                          f"optimizer={name!r}, momentum_schedule={momentum_schedule!r}")
    common = {"learning_rate": lr, "clipnorm": config.clipnorm, "clipvalue": config.clipvalue}
    scheduled = {"momentum_schedule": momentum_schedule} if momentum_schedule else {}
    if name in ("sgd", "momentum", "nesterov"):
        sgd_args = {"nesterov": name == "nesterov", "weight_decay": config.weight_decay or None}
        if scheduled:
            return ScheduledSGD(**scheduled, **sgd_args, **common)
        momentum = 0.0 if name == "sgd" else float(config.momentum)
        return keras.optimizers.SGD(momentum=momentum, **sgd_args, **common)
    if name == "adagrad":
        return keras.optimizers.Adagrad(**common)
    if name == "rmsprop":
        # RMSprop's decay factor rho plays the role of beta_2 (0.9 is Hinton's default).
        return keras.optimizers.RMSprop(rho=0.9, **common)
    betas = {"beta_2": float(config.beta_2)}
    if not scheduled:
        betas["beta_1"] = float(config.beta_1)
    if name == "adamw":
        stock, cycled = keras.optimizers.AdamW, ScheduledAdamW
        betas["weight_decay"] = float(config.weight_decay)
    else:
        stock, cycled = {
            "adam": (keras.optimizers.Adam, ScheduledAdam),
            "adamax": (keras.optimizers.Adamax, ScheduledAdamax),
            "nadam": (keras.optimizers.Nadam, ScheduledNadam),
        }[name]
    if scheduled:
        return cycled(**scheduled, **betas, **common)
    return stock(**betas, **common)


def optimizer_from_config(config: NetworkConfig, total_steps: int | None = None
                          ) -> keras.optimizers.Optimizer:
    """The optimizer a whole ``NetworkConfig`` implies: its optimizer row with its schedule.

    For 1cycle the learning rate is a :class:`~dnnguide.schedules.OneCycleSchedule` and, for
    optimizers with momentum, ``momentum``/``beta_1`` follow
    :class:`~dnnguide.schedules.OneCycleMomentum` inside the update (see the module docstring).

    Args:
        config: the network config (its ``optimizer`` and ``schedule`` parts are used).
        total_steps: the 1cycle budget in optimizer steps; overrides
            ``config.schedule.total_steps``. A run that starts from ``initial_epoch=k`` with a
            fresh optimizer (keras-tuner's Hyperband continuation trials) passes
            ``steps_per_epoch * (epochs - k)`` so the cycle spans exactly that run.

    Example:
        >>> cfg = NetworkConfig(schedule={"name": "exponential", "decay_steps": 100})
        >>> type(optimizer_from_config(cfg)._learning_rate).__name__
        'ExponentialSchedule'
    """
    schedule = config.schedule
    if total_steps is not None:
        schedule = dataclasses.replace(schedule, total_steps=total_steps)
    learning_rate = make_schedule(schedule, config.optimizer.learning_rate)
    momentum = make_momentum_schedule(schedule)
    if momentum is not None and config.optimizer.name not in MOMENTUM_OPTIMIZERS:
        warnings.warn(
            f"1cycle cycles the learning rate only: optimizer {config.optimizer.name!r} has no "
            f"momentum to cycle (those with one: {list(MOMENTUM_OPTIMIZERS)}).", UserWarning,
            stacklevel=2)
        momentum = None
    return make_optimizer(config.optimizer, learning_rate=learning_rate,
                          momentum_schedule=momentum)
