"""One Keras optimizer per row of the guidelines' optimizer table.

Example:
    >>> from dnnguide.config import OptimizerConfig
    >>> opt = make_optimizer(OptimizerConfig(name="nesterov", learning_rate=0.01))
    >>> type(opt).__name__, opt.nesterov
    ('SGD', True)
"""

from __future__ import annotations

import keras

from dnnguide.config import OptimizerConfig


def make_optimizer(config: OptimizerConfig, learning_rate=None) -> keras.optimizers.Optimizer:
    """Build the Keras optimizer a config names.

    Args:
        config: the optimizer row (name, learning rate, momentum/betas, decay, clipping).
        learning_rate: overrides ``config.learning_rate``; a float or a
            ``keras.optimizers.schedules.LearningRateSchedule``.

    Weight decay is decoupled (AdamW's, or SGD's own ``weight_decay``), never L2 on Adam.
    """
    lr = config.learning_rate if learning_rate is None else learning_rate
    common = {"learning_rate": lr, "clipnorm": config.clipnorm, "clipvalue": config.clipvalue}
    name = config.name
    if name in ("sgd", "momentum", "nesterov"):
        return keras.optimizers.SGD(
            momentum=0.0 if name == "sgd" else config.momentum,
            nesterov=name == "nesterov",
            weight_decay=config.weight_decay or None,
            **common,
        )
    if name == "adagrad":
        return keras.optimizers.Adagrad(**common)
    if name == "rmsprop":
        # RMSprop's decay factor rho plays the role of beta_2 (0.9 is Hinton's default).
        return keras.optimizers.RMSprop(rho=0.9, **common)
    betas = {"beta_1": config.beta_1, "beta_2": config.beta_2}
    if name == "adam":
        return keras.optimizers.Adam(**betas, **common)
    if name == "adamax":
        return keras.optimizers.Adamax(**betas, **common)
    if name == "nadam":
        return keras.optimizers.Nadam(**betas, **common)
    if name == "adamw":
        return keras.optimizers.AdamW(weight_decay=config.weight_decay, **betas, **common)
    raise AssertionError(f"unreachable: {name!r} passed OptimizerConfig validation")


def optimizer_from_config(config) -> keras.optimizers.Optimizer:
    """The optimizer a whole ``NetworkConfig`` implies: its optimizer row with its LR schedule.

    Example:
        >>> from dnnguide.config import NetworkConfig
        >>> cfg = NetworkConfig(schedule={"name": "exponential", "decay_steps": 100})
        >>> type(optimizer_from_config(cfg).learning_rate).__name__ in ("Variable", "KerasVariable")
        True
    """
    from dnnguide.schedules import make_schedule

    learning_rate = make_schedule(config.schedule, config.optimizer.learning_rate)
    return make_optimizer(config.optimizer, learning_rate=learning_rate)
