"""The search space as data: :class:`SearchSpace`, a mapping of names to :class:`Param`.

Every name is a preset name (``preset``) or a config field that
:func:`dnnguide.presets.get_preset` accepts as an override, so each trial's model is built by
:func:`dnnguide.presets.build_model` and every guideline check applies.

Example:
    >>> from dnnguide.tuning import SearchSpace, Float
    >>> space = SearchSpace.default().narrow(preset="default", depth=[2, 3])
    >>> # decoupled decay shrinks a weight by lr x decay a step: at lr 1e-3, 1e-2 and below
    >>> # take thousands of epochs to act on small data (dnnguide.data_rules)
    >>> space = space.extend(weight_decay=Float(1e-2, 1.0, log=True, default=0.1))
    >>> sorted(space.params)[:3]
    ['activation', 'batch_size', 'depth']
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import keras_tuner

from dnnguide.config import (
    OPTIMIZERS, ConfigError, NetworkConfig, OptimizerConfig, check_choice, check_range,
)
from dnnguide.data_rules import WEIGHT_DECAY_KEYS
from dnnguide.guidelines import DEEP_DEPTH, SHALLOW_DEPTH
from dnnguide.presets import get_preset, list_presets

PARAM_KINDS = ("choice", "int", "float", "fixed")


def preset_activations(preset: str) -> tuple[str, ...]:
    """The activations the guidelines give a preset: its shallow and its deep choice.

    Read from the preset itself (:func:`dnnguide.presets.get_preset`), never copied here.

    >>> preset_activations("default"), preset_activations("self_normalizing")
    (('elu', 'swish'), ('selu',))
    """
    check_choice("presets", preset, tuple(list_presets()))
    found = (get_preset(preset, depth=depth).activation for depth in (SHALLOW_DEPTH, DEEP_DEPTH))
    return tuple(dict.fromkeys(found))


def weight_decay_optimizers() -> tuple[str, ...]:
    """Optimizers whose config accepts a weight decay (asked of OptimizerConfig's own check)."""
    def accepts(name):
        try:
            OptimizerConfig(name=name, weight_decay=1e-4)
        except ConfigError:
            return False
        return True

    return tuple(name for name in OPTIMIZERS if accepts(name))


def _config_value(config: NetworkConfig, name: str):
    """The value a search-space name has in ``config`` (``optimizer`` is the optimizer's name)."""
    if name in ("optimizer", "schedule"):
        return getattr(config, name).name
    if "." in name:
        part, field = name.split(".", 1)
        return getattr(getattr(config, part), field)
    if name not in NetworkConfig._NESTED and hasattr(config, name):
        return getattr(config, name)
    for part in NetworkConfig._NESTED:
        if hasattr(getattr(config, part), name):
            return getattr(getattr(config, part), name)
    return None


@dataclass(frozen=True)
class Param:
    """One searchable value: a choice, an int or float range, or a fixed value.

    ``presets`` makes the parameter conditional: it is searched only in trials of those
    presets (keras-tuner conditional scope on ``preset``). Use the helpers :func:`Choice`,
    :func:`Int`, :func:`Float` and :func:`Fixed` to create one.
    """

    kind: str
    values: tuple = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    default: Any = None
    presets: tuple[str, ...] | None = None

    def __post_init__(self):
        check_choice("kind", self.kind, PARAM_KINDS)
        if self.kind == "choice":
            if not self.values:
                raise ConfigError("Argument `values` must list at least one value. "
                                  "Received: values=()")
            if self.default is not None and self.default not in self.values:
                raise ConfigError(f"Argument `default` must be one of {list(self.values)}. "
                                  f"Received: default={self.default!r}")
        if self.kind in ("int", "float"):
            check_range("low", self.low, integer=self.kind == "int")
            integer = self.kind == "int"
            check_range("high", self.high, self.low, low_inclusive=False, integer=integer)
            if self.log:
                check_range("low", self.low, 0.0, low_inclusive=False)
            if self.default is not None:
                check_range("default", self.default, self.low, self.high)
        if self.presets is not None:
            for name in self.presets:
                check_choice("presets", name, tuple(list_presets()))

    def options(self) -> tuple:
        """The values to validate: a choice's values, a range's ends, the fixed value."""
        if self.kind == "choice":
            return self.values
        if self.kind == "fixed":
            return (self.default,)
        return (self.low, self.high)

    def declare(self, hp: keras_tuner.HyperParameters, name: str):
        """Register this parameter on ``hp`` and return the trial's value."""
        sampling = "log" if self.log else "linear"
        if self.kind == "fixed":
            return hp.Fixed(name, self.default)
        if self.kind == "choice":
            return hp.Choice(name, list(self.values), default=self.default)
        if self.kind == "int":
            return hp.Int(name, int(self.low), int(self.high), step=self.step,
                          sampling=sampling, default=self.default)
        return hp.Float(name, float(self.low), float(self.high), step=self.step,
                        sampling=sampling, default=self.default)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["values"] = list(self.values)
        out["presets"] = None if self.presets is None else list(self.presets)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Param:
        data = dict(data)
        data["values"] = tuple(data.get("values", ()))
        if data.get("presets") is not None:
            data["presets"] = tuple(data["presets"])
        return cls(**data)


def Choice(values, default=None, presets=None) -> Param:  # noqa: N802 (keras-tuner's naming)
    """One of ``values`` (default: the first)."""
    values = tuple(values)
    return Param("choice", values, default=values[0] if default is None and values else default,
                 presets=None if presets is None else tuple(presets))


def Int(low, high, step=None, log=False, default=None, presets=None) -> Param:  # noqa: N802
    """An integer in ``[low, high]`` (every ``step``; log-uniform with ``log=True``)."""
    return Param("int", low=low, high=high, step=step, log=log, default=default,
                 presets=None if presets is None else tuple(presets))


def Float(low, high, step=None, log=False, default=None, presets=None) -> Param:  # noqa: N802
    """A float in ``[low, high]`` (log-uniform with ``log=True``, e.g. learning rates)."""
    return Param("float", low=float(low), high=float(high), step=step, log=log,
                 default=default, presets=None if presets is None else tuple(presets))


def Fixed(value, presets=None) -> Param:  # noqa: N802
    """Always ``value`` (recorded in the trials table, not searched)."""
    return Param("fixed", default=value, presets=None if presets is None else tuple(presets))


def _valid_names() -> tuple[str, ...]:
    """``preset`` plus every name ``nested_overrides`` accepts (flat unique, dotted, aliases)."""
    top = {f.name for f in dataclasses.fields(NetworkConfig)} - set(NetworkConfig._NESTED)
    counts: dict[str, int] = {}
    dotted = set()
    for part, cls in NetworkConfig._NESTED.items():
        for f in dataclasses.fields(cls):
            counts[f.name] = counts.get(f.name, 0) + 1
            dotted.add(f"{part}.{f.name}")
    flat = {name for name, n in counts.items() if n == 1 and name != "name"}
    return tuple(sorted(top | flat | dotted | {"preset", "optimizer", "schedule"}))


def _as_param(value, like: Param | None = None) -> Param:
    """A Param as is; a list/tuple becomes a Choice, a scalar a Fixed (with ``like``'s presets)."""
    if isinstance(value, Param):
        return value
    presets = like.presets if like is not None else None
    if isinstance(value, (list, tuple)):
        return Choice(value, presets=presets)
    return Fixed(value, presets=presets)


class SearchSpace:
    """A search space over the presets, as data: ``{name: Param}``.

    Narrow or extend it without subclassing anything::

        space = SearchSpace.default().narrow(depth=Int(2, 4), optimizer=["adamw", "nadam"])
        space = space.extend(l2=Float(1e-6, 1e-3, log=True))

    Raises:
        ConfigError: a name that is neither ``preset`` nor a config field (valid names listed).
    """

    def __init__(self, params: dict[str, Any]):
        valid = _valid_names()
        converted = {}
        for name, value in params.items():
            check_choice("search space name", name, valid)
            converted[name] = _as_param(value)
        converted.setdefault("preset", Fixed("default"))
        for name in converted["preset"].options():
            check_choice("preset", name, tuple(list_presets()))
        self._params = converted
        for name, param in converted.items():
            if name != "preset":
                self._check_values(name, param)

    @property
    def presets(self) -> tuple[str, ...]:
        """The presets this space searches over."""
        return tuple(self._params["preset"].options())

    def _check_values(self, name: str, param: Param) -> None:
        """Refuse a value no preset accepts (``learning_rate="abc"``) before anything is created.

        A value some preset accepts stays (``activation="selu"``): whether it fits this search
        depends on the other values of a trial, and a trial whose combination the config
        refuses is skipped as invalid during the search, not counted as a crash.
        """
        for value in param.options():
            errors = []
            for attempt in _attempts(name, value):
                try:
                    attempt()
                except (ValueError, TypeError) as exc:
                    errors.append(exc)
                else:
                    break
            else:
                raise ConfigError(f"Search space value {name}={value!r} is refused by every "
                                  f"preset and every combination: {errors[0]}")

    @property
    def params(self) -> dict[str, Param]:
        return dict(self._params)

    @classmethod
    def default(cls, presets=("default", "self_normalizing")) -> SearchSpace:
        """The guidelines' space; each default is the first preset's own value.

        The activation is searched among the guidelines' choices of each preset
        (:func:`preset_activations`): conditional on the first preset, and recorded as the
        other presets' own value in their trials.
        """
        presets = tuple(presets)
        if not presets:
            raise ConfigError("Argument `presets` must name at least one preset. Received: ()")
        for name in presets:
            check_choice("presets", name, tuple(list_presets()))
        base = get_preset(presets[0])
        activations = preset_activations(presets[0])
        widths = sorted({32, 64, 128, 256, base.widths[0]})
        first = presets[:1] if len(presets) > 1 else None  # the others record their own
        return cls({
            "preset": Choice(presets),
            "depth": Int(1, 10, default=base.depth),
            "width": Choice(widths, default=base.widths[0]),
            "activation": Choice(activations, default=base.activation, presets=first)
            if len(activations) > 1 else Fixed(activations[0], presets=first),
            "dropout_rate": Float(0.0, 0.5, step=0.1, default=base.regularization.dropout_rate),
            "optimizer": Choice(("adamw", "nadam", "nesterov"), default=base.optimizer.name),
            "learning_rate": Float(1e-4, 1e-1, log=True, default=base.optimizer.learning_rate),
            "schedule": Choice(("performance", "onecycle"), default=base.schedule.name),
            "batch_size": Choice((32, 64, 128), default=base.batch_size),
        })

    def narrow(self, **changes) -> SearchSpace:
        """Replace existing parameters (a list -> Choice, a scalar -> Fixed, or a Param)."""
        unknown = sorted(set(changes) - set(self._params))
        if unknown:
            raise ConfigError(f"narrow() changes existing parameters {sorted(self._params)}. "
                              f"Received: {unknown}. Use extend() to add new ones.")
        params = self.params
        params.update({k: _as_param(v, params[k]) for k, v in changes.items()})
        return SearchSpace(params)

    def extend(self, **new) -> SearchSpace:
        """Add parameters: any config field (``l2=Float(...)``, ``early_stopping.patience=3``)."""
        taken = sorted(set(new) & set(self._params))
        if taken:
            raise ConfigError(f"extend() adds new parameters; {taken} already exist. Use narrow().")
        return SearchSpace({**self._params, **new})

    def _conditions(self, name: str, param: Param) -> list[tuple[str, list]]:
        """keras-tuner conditions of a parameter: its presets; the optimizers taking weight decay."""
        conditions = []
        if param.presets is not None:
            conditions.append(("preset", list(param.presets)))
        if name in WEIGHT_DECAY_KEYS and "optimizer" in self._params:
            taking = weight_decay_optimizers()
            conditions.append(("optimizer", [o for o in self._params["optimizer"].options()
                                             if o in taking]))
        return conditions

    def declare(self, hp: keras_tuner.HyperParameters) -> dict[str, Any]:
        """Register every parameter on ``hp`` (keras-tuner conditions included); return the
        values active in this trial.

        ``weight_decay`` exists only in trials of an optimizer that takes it, a parameter
        limited to some presets only in their trials. (keras-tuner keeps one value per name, so
        the other presets' own values are not declared here: :func:`trials_frame` fills them in
        from each trial's config, e.g. ``activation='selu'`` for a self-normalizing trial.)
        """
        order = ["preset", "optimizer"] + [n for n in self._params if n not in ("preset",
                                                                                 "optimizer")]
        values: dict[str, Any] = {}
        for name in (n for n in order if n in self._params):
            param = self._params[name]
            conditions = self._conditions(name, param)
            value = _declare_under(hp, conditions, lambda p=param, n=name: p.declare(hp, n))
            if all(values.get(parent) in allowed for parent, allowed in conditions):
                values[name] = value
        return values

    def hyperparameters(self) -> keras_tuner.HyperParameters:
        """This space as keras-tuner's own ``HyperParameters`` (conditions included).

        Serialize it with ``.get_config()``; keras-tuner's oracles take it as ``hyperparameters=``.
        """
        hp = keras_tuner.HyperParameters()
        self.declare(hp)
        return hp

    def to_dict(self) -> dict:
        return {name: param.to_dict() for name, param in self._params.items()}

    @classmethod
    def from_dict(cls, data: dict) -> SearchSpace:
        return cls({name: Param.from_dict(p) for name, p in data.items()})

    def __eq__(self, other):
        return isinstance(other, SearchSpace) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return f"SearchSpace({self._params!r})"


def _attempts(name: str, value):
    """Ways a value could be valid: with some preset, or alone in its part of the config
    (``l2`` alone in ``RegularizationConfig``; an optimizer field with any optimizer)."""
    for preset in list_presets():
        yield lambda p=preset: config_from_values({"preset": p, name: value})
    part, _, field = name.rpartition(".")
    parts = {part: NetworkConfig._NESTED[part]} if part in NetworkConfig._NESTED else {
        p: cls for p, cls in NetworkConfig._NESTED.items()
        if field in {f.name for f in dataclasses.fields(cls)}}
    for cls in parts.values():
        names = OPTIMIZERS if cls is OptimizerConfig and field != "name" else (None,)
        for optimizer in names:
            extra = {} if optimizer is None else {"name": optimizer}
            yield lambda c=cls, e=extra: c(**e, **{field: value})


def _declare_under(hp, conditions, declare):
    """Run ``declare()`` inside nested keras-tuner conditional scopes."""
    if not conditions:
        return declare()
    (parent, allowed), *rest = conditions
    with hp.conditional_scope(parent, allowed):
        return _declare_under(hp, rest, declare)


def config_from_values(values: dict[str, Any]) -> NetworkConfig:
    """The validated NetworkConfig for one trial's values (``tuner/*`` bookkeeping ignored).

    >>> config_from_values({"preset": "self_normalizing", "depth": 3}).activation
    'selu'
    """
    overrides = {k: v for k, v in values.items() if not k.startswith("tuner/") and k != "preset"}
    return get_preset(values.get("preset", "default"), **overrides)

