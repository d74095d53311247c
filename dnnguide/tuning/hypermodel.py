"""The keras-tuner HyperModel: each trial's model from :func:`dnnguide.presets.build_model`.

A forbidden combination of values raises in ``build`` with the config's own message, so it
shows up as a failed trial with its reason, never as a silently odd model. A trial of an
ensemble preset (``risk_sensitive``: ``ensemble=5``) trains one member, as ``build_model``
builds it: the search compares configurations, and ``fit`` of the best one trains the ensemble.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any

import keras_tuner
import numpy as np

from dnnguide.config import ConfigError, NetworkConfig
from dnnguide.presets import build_model
from dnnguide.tuning.results import TuningError, objective_direction
from dnnguide.tuning.space import SearchSpace, config_from_values


class InvalidTrialError(keras_tuner.errors.FailedTrialError):
    """A trial whose combination of values the config refuses (e.g. SELU with batch norm).

    The search skips it as ``INVALID``: it is no crash and does not count toward
    ``max_failures``.
    """


class PresetHyperModel(keras_tuner.HyperModel):
    """Builds each trial's model with :func:`build_model` and fits it with the config's callbacks.

    Args:
        space: the :class:`SearchSpace`.
        input_shape, n_outputs, task: what :func:`build_model` needs.
        n_train: training rows (1cycle's ``total_steps`` is derived from it).
        epochs: epochs per trial when the algorithm does not set a budget (Hyperband does).
        adapt_data: training features for the input ``Normalization`` layer (unstandardized data).
        replicas: replicas of the distribution strategy; the batch size is scaled by it.
        objective: the validation metric the trial's best epoch is chosen by.
    """

    def __init__(self, space: SearchSpace, input_shape, n_outputs: int, task: str, *,
                 n_train: int, epochs: int, adapt_data=None, replicas: int = 1,
                 objective: str = "val_loss"):
        super().__init__(name="dnnguide_presets", tunable=True)
        self.space = space
        self.input_shape, self.n_outputs, self.task = tuple(input_shape), n_outputs, task
        self.n_train, self.epochs, self.replicas = n_train, epochs, replicas
        self.adapt_data = adapt_data
        self.objective = objective
        self.direction = objective_direction(objective)
        self.declaring = False  # True while keras-tuner explores the space (no model needed)

    def config_for(self, values: dict[str, Any]) -> NetworkConfig:
        """The trial's config; 1cycle is keyed to this trial's own epochs.

        Hyperband's continuation trials resume at ``tuner/initial_epoch`` with a fresh
        optimizer whose step counter is 0, so 1cycle's total steps cover only the epochs
        this trial trains (``tuner/epochs - tuner/initial_epoch``), never the whole budget.
        """
        config = config_from_values(values)
        if config.schedule.name == "onecycle":
            budget = values.get("tuner/epochs", self.epochs) - values.get("tuner/initial_epoch", 0)
            steps_per_epoch = math.ceil(self.n_train / (config.batch_size * self.replicas))
            schedule = dataclasses.replace(config.schedule,
                                           total_steps=max(1, steps_per_epoch * budget))
            config = dataclasses.replace(config, schedule=schedule)
        return config

    def values_of(self, hp) -> dict[str, Any]:
        """The trial's active values plus keras-tuner's ``tuner/*`` bookkeeping."""
        values = self.space.declare(hp)
        values.update({k: v for k, v in hp.values.items() if k.startswith("tuner/")})
        return values

    def build(self, hp):
        values = self.values_of(hp)
        if self.declaring:
            return None
        try:
            config = self.config_for(values)
        except ConfigError as exc:  # predicted by the guidelines: skip, do not count as a crash
            raise InvalidTrialError(f"invalid combination: {exc}") from exc
        adapt = self.adapt_data if config.standardize_inputs else None
        return build_model(config, self.input_shape, self.n_outputs, self.task, adapt_data=adapt)

    def fit(self, hp, model, *args, callbacks=(), **kwargs):
        from dnnguide.schedules import check_callbacks
        from dnnguide.training import make_callbacks

        config = model.dnnguide_config
        # keras-tuner deep-copies the user's callbacks per trial; ours are fresh per trial too.
        validation = kwargs.get("validation_data")
        arrays = isinstance(validation, (tuple, list)) and len(validation) == 2
        callbacks = list(callbacks) + make_callbacks(config, None, has_val=True,
                                                     validation=validation if arrays else None)
        check_callbacks(model.optimizer, callbacks)
        start = time.perf_counter()
        history = model.fit(*args, batch_size=config.batch_size * self.replicas,
                            callbacks=callbacks, **kwargs)
        return self._summary(history.history, time.perf_counter() - start)

    def _summary(self, history: dict, seconds: float) -> dict[str, float]:
        """Metrics at the best epoch plus epochs run and time: keras-tuner records them all."""
        if self.objective not in history:
            raise TuningError(f"Objective {self.objective!r} was not logged; logged metrics: "
                              f"{sorted(history)}")
        scores = np.asarray(history[self.objective], dtype="float64")
        if not np.all(np.isfinite(scores)) or not np.all(np.isfinite(history["loss"])):
            raise FloatingPointError(
                f"Training diverged (non-finite loss or {self.objective}) after "
                f"{len(scores)} epochs: lower the learning rate or clip gradients.")
        best = int(np.argmin(scores) if self.direction == "min" else np.argmax(scores))
        out = {name: float(values[best]) for name, values in history.items()
               if len(values) == len(scores)}
        out.update(epochs=float(len(scores)), time_s=float(seconds), worker_pid=float(os.getpid()))
        return out
