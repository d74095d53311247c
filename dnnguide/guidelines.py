"""The practical guidelines as data, and ``recommend()`` which applies them.

Two tables (Géron, *Hands-On Machine Learning*, 3rd ed., tables 11-3 and 11-4):

- the **default DNN**: He initialization; ELU if shallow, Swish if deep; batch norm
  if deep; early stopping (+ weight decay if needed); Nesterov or AdamW;
  performance scheduling or 1cycle;
- the **self-normalizing DNN**: LeCun initialization; SELU; no normalization;
  AlphaDropout if needed; Nesterov; performance scheduling or 1cycle; standardized
  inputs and a plain stack of dense layers (Klambauer et al. 2017);

and three exceptions: a **sparse** model (L1 + pruning, never self-normalizing),
a **low-latency** model (fewer layers, BN folded, ReLU/LeakyReLU, 16/8-bit) and
**risk-sensitive** use (MC dropout, Gal & Ghahramani 2016).

Every field of the returned configuration carries its reason.

Example:
    >>> rec = recommend(depth="deep", risk_sensitive=True)
    >>> rec.config.activation, rec.config.normalization, rec.config.regularization.dropout_kind
    ('swish', 'batch_norm_after', 'mc')
    >>> print(rec.explain())  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from dnnguide import data_rules
from dnnguide.config import (
    TASKS,
    NetworkConfig,
    RegularizationConfig,
    check_choice,
    check_range,
)
from dnnguide.data_rules import DataProfile, choose_width
from dnnguide.guideline_tables import (  # noqa: F401 - the tables are public here too
    DEFAULT_WIDTH, DECOUPLED_DECAY_OPTIMIZERS, DEEP_FROM, SHALLOW_DEPTH, DEEP_DEPTH,
    LOW_LATENCY_DEPTH, DEFAULT_TABLE, ONECYCLE_TABLE, SELF_NORMALIZING_TABLE, COMMON_TABLE,
    EXCEPTION_VALUES, EXCEPTIONS_TABLE,
)


@dataclass(frozen=True)
class Recommendation:
    """A configuration plus the reason for each choice (``reasons[field] -> text``)."""

    config: NetworkConfig
    reasons: dict[str, str] = field(default_factory=dict)
    situation: dict[str, Any] = field(default_factory=dict)

    def table(self):
        """The choices and reasons as a pandas DataFrame (field, value, reason)."""
        import pandas as pd

        rows = [
            {"field": name, "value": _value_of(self.config, name), "reason": reason}
            for name, reason in self.reasons.items()
        ]
        return pd.DataFrame(rows, columns=["field", "value", "reason"])

    def explain(self, width: int = 100) -> str:
        """A printable table: one line per choice, its value, and why."""
        import textwrap

        lines = [f"Recommendation for {self.situation}"]
        indent = " " * 46
        for row in self.table().itertuples(index=False):
            head = f"{row.field:<22} {str(row.value):<22} "
            wrapped = textwrap.wrap(row.reason, width=max(width - len(indent), 30))
            if len(head) > len(indent):  # a long value gets the line to itself
                lines.append(head.rstrip())
                head = indent
            lines.append(head + wrapped[0])
            lines.extend(indent + more for more in wrapped[1:])
        return "\n".join(lines)

    def __str__(self) -> str:  # print(rec) shows the table
        return self.explain()


def _value_of(config: NetworkConfig, name: str):
    """A short display value: a part's name, or its non-default fields (``l1=1e-05``)."""
    obj = config
    for part in name.split("."):
        obj = getattr(obj, part)
    if not dataclasses.is_dataclass(obj):
        return obj
    default = type(obj)()
    changed = [f"{f.name}={getattr(obj, f.name)}" for f in dataclasses.fields(obj)
               if f.name != "name" and getattr(obj, f.name) != getattr(default, f.name)]
    head = [obj.name] if hasattr(obj, "name") else []
    return " ".join(head + changed) or "defaults"


def _resolve_depth(depth) -> int:
    if depth is None or depth == "shallow":
        return SHALLOW_DEPTH
    if depth == "deep":
        return DEEP_DEPTH
    if isinstance(depth, str):
        check_choice("depth", depth, ("shallow", "deep"))
    check_range("depth", depth, 1, integer=True)
    return depth


def recommend(
    depth: int | str | None = None,
    *,
    width: int | None = None,
    sparse: bool = False,
    low_latency: bool = False,
    risk_sensitive: bool = False,
    self_normalizing: bool = False,
    overfitting: bool = False,
    dropout_rate: float | None = None,
    task: str | None = None,
    data=None,
) -> Recommendation:
    """Apply the guideline tables to a situation, and the data-aware rules to the data.

    Args:
        depth: number of hidden layers, or ``"shallow"`` / ``"deep"`` (default: shallow, 5;
            3 when the data has fewer than 5,000 training rows, except for SELU nets:
            ``DATA_TABLE["depth"]``).
        width: units per hidden layer (default: from the data's features, else 100).
        sparse: the model must be sparse (L1 + pruning; never self-normalizing).
        low_latency: the model must predict fast (fewer layers, ReLU, BN folded, 8-bit).
        risk_sensitive: uncertainty matters (MC dropout).
        self_normalizing: prefer the self-normalizing table (SELU) where allowed.
        overfitting: the model overfits; add regularization (weight decay or AlphaDropout).
        dropout_rate: the dropout rate used when dropout is called for (default 0.2).
        task: ``"classification"``, ``"binary"`` or ``"regression"`` (default: the data's,
            else classification).
        data: a :class:`dnnguide.data.Dataset` or :class:`dnnguide.data_rules.DataProfile`;
            its rows, features, task and classes size and regularize the network
            (:mod:`dnnguide.data_rules`), each choice with the fact that triggered it.

    Returns:
        A :class:`Recommendation` with the config and a reason per field.

    Example:
        >>> from dnnguide.data_rules import DataProfile
        >>> rec = recommend(data=DataProfile(3600, 40, "classification", 10))
        >>> rec.config.width, rec.config.optimizer.weight_decay, rec.config.regularization.dropout_rate
        (256, 0.088, 0.2)
    """
    profile = DataProfile.of(data) if data is not None else None
    if task is not None:
        check_choice("task", task, TASKS)
        if profile is not None and task != profile.task:
            raise ValueError(f"Argument `task` contradicts the data: the data's task is "
                             f"{profile.task!r}. Received: task={task!r}")
    task = task or (profile.task if profile is not None else "classification")
    if dropout_rate is not None:
        check_range("dropout_rate", dropout_rate, 0.0, 1.0, high_inclusive=False)
    situation = {
        "depth": depth, "sparse": sparse, "low_latency": low_latency,
        "risk_sensitive": risk_sensitive, "self_normalizing": self_normalizing,
        "overfitting": overfitting, "task": task,
    }
    if profile is not None:
        situation["data"] = f"{profile.name}: {profile.n_train} rows x {profile.n_features} features"
    width_given, rate_given = width is not None, dropout_rate is not None
    if dropout_rate is None:
        dropout_rate = EXCEPTION_VALUES["risk_sensitive"]["dropout_rate"]
    if width is None:
        width = choose_width(profile) if profile is not None else DEFAULT_WIDTH
    if low_latency and depth is None:
        depth = LOW_LATENCY_DEPTH
    n_layers = _resolve_depth(depth)
    reasons: dict[str, str] = {}
    use_selu = self_normalizing and not sparse and not low_latency
    depth_rule = data_rules.DATA_TABLE["depth"][0]
    # No depth given (low_latency has its own) and small data: the rule's, measured on the
    # default family; a SELU net keeps the table's (3 layers measured worse on digits, mnist1d).
    small_depth = (depth is None and not use_selu and profile is not None
                   and profile.n_train < depth_rule["rows"])
    if small_depth:
        n_layers = depth_rule["depth"]
    if use_selu:
        fields = _self_normalizing_fields(reasons, overfitting or risk_sensitive, dropout_rate)
    else:
        fields = _default_fields(reasons, n_layers, overfitting)
        if self_normalizing:
            why = "sparse" if sparse else "low_latency"
            reasons["activation"] = (
                f"Self-normalizing was asked for, but the {why} exception wins: "
                + (EXCEPTIONS_TABLE["sparse"]["activation"] if sparse
                   else "SELU is slower than ReLU and BN folding replaces self-normalization.")
            )
    fields.update(depth=n_layers, width=width)
    if small_depth:
        reasons["depth"] = data_rules.reason("depth", n_train=profile.n_train, depth=n_layers,
                                             rows=depth_rule["rows"], table=SHALLOW_DEPTH)
    reasons.setdefault("depth", f"{n_layers} hidden layers "
                       f"({'deep' if n_layers >= DEEP_FROM else 'shallow'}: deep from {DEEP_FROM}).")
    if sparse:
        _apply_sparse(fields, reasons)
    if low_latency:
        _apply_low_latency(fields, reasons, depth_given=situation["depth"] is not None)
    if risk_sensitive:
        kind = "mc_alpha" if use_selu else "mc"
        reg = fields["regularization"]
        fields["regularization"] = RegularizationConfig(
            l1=reg.l1, l2=reg.l2, max_norm=reg.max_norm,
            dropout_rate=max(reg.dropout_rate, dropout_rate), dropout_kind=kind,
        )
        earlier = reasons["regularization"] + " " if sparse else ""  # keep the L1 reason
        reasons["regularization"] = earlier + EXCEPTIONS_TABLE["risk_sensitive"]["dropout"]
        fields["early_stopping"] = dataclasses.replace(fields["early_stopping"],
                                                       monitor="val_mc_loss")
        reasons["early_stopping"] = EXCEPTIONS_TABLE["risk_sensitive"]["early_stopping"]
        if sparse or low_latency:
            why = "sparse" if sparse else "low_latency"
            reasons["ensemble"] = EXCEPTIONS_TABLE["risk_sensitive"]["ensemble_skipped"].format(
                why=why)
        else:
            fields["ensemble"] = EXCEPTION_VALUES["risk_sensitive"]["ensemble"]
            reasons["ensemble"] = EXCEPTIONS_TABLE["risk_sensitive"]["ensemble"]
    if profile is not None:
        _apply_data_rules(fields, reasons, profile, use_selu=use_selu, width_given=width_given,
                          rate=dropout_rate if rate_given else None)
    for key, reason in COMMON_TABLE.items():
        reasons.setdefault(key, reason)
    name = "+".join(k for k in ("sparse", "low_latency", "risk_sensitive") if situation[k])
    fields["name"] = name or ("self_normalizing" if use_selu else "default")
    return Recommendation(place_dropout(NetworkConfig(**fields), reasons), reasons, situation)


def place_dropout(config: NetworkConfig, reasons: dict) -> NetworkConfig:
    """Dropout after the last batch-norm layer only in a deep normalized net, else everywhere.

    The one placement rule of the tables (``DEFAULT_TABLE["dropout_layers.batch_norm"]``);
    :func:`dnnguide.presets.recommend_preset` applies it again after overrides, unless the
    override sets ``dropout_layers`` itself.
    """
    reg = config.regularization
    value, why = DEFAULT_TABLE["dropout_layers.batch_norm"]
    deep_bn = config.normalization != "none" and config.depth >= DEEP_FROM
    wanted = value if deep_bn and reg.dropout_rate > 0 else None
    if reg.dropout_layers == wanted:
        return config
    if wanted is not None:
        reasons["regularization"] = f"{reasons.get('regularization', '')} {why}".strip()
    return dataclasses.replace(config, regularization=dataclasses.replace(
        reg, dropout_layers=wanted))


def _default_fields(reasons: dict, depth: int, overfitting: bool) -> dict:
    key = "deep" if depth >= DEEP_FROM else "shallow"
    fields = {}
    for name in ("kernel_initializer", "regularization", "optimizer", "schedule", "early_stopping"):
        fields[name], reasons[name] = DEFAULT_TABLE[name]
    for name in ("activation", "normalization"):
        fields[name], reasons[name] = DEFAULT_TABLE[f"{name}.{key}"]
    if key == "deep":
        fields["optimizer"], reasons["optimizer"] = DEFAULT_TABLE["optimizer.deep"]
    if overfitting:
        fields["optimizer"] = dataclasses.replace(
            fields["optimizer"], weight_decay=EXCEPTION_VALUES["overfitting"]["weight_decay"])
        reasons["optimizer"] += " " + DEFAULT_TABLE["regularization.overfitting"][1]
    return fields


def _self_normalizing_fields(reasons: dict, want_dropout: bool, rate: float) -> dict:
    fields = {}
    for name, (value, reason) in SELF_NORMALIZING_TABLE.items():
        fields[name], reasons[name] = value, reason
    if want_dropout:
        fields["regularization"] = RegularizationConfig(dropout_rate=rate, dropout_kind="alpha")
    return fields


def _apply_sparse(fields: dict, reasons: dict) -> None:
    table = EXCEPTIONS_TABLE["sparse"]
    reg = fields["regularization"]
    values = EXCEPTION_VALUES["sparse"]
    fields["regularization"] = dataclasses.replace(reg, l1=values["l1"])
    fields["pruning_sparsity"] = values["pruning_sparsity"]
    reasons["regularization"] = table["l1"]
    reasons["pruning_sparsity"] = table["pruning_sparsity"]


def _apply_low_latency(fields: dict, reasons: dict, depth_given: bool) -> None:
    table = EXCEPTIONS_TABLE["low_latency"]
    if not depth_given:
        reasons["depth"] = table["depth"]
    fields.update(EXCEPTION_VALUES["low_latency"])
    reasons["kernel_initializer"] = DEFAULT_TABLE["kernel_initializer"][1]
    for name in ("activation", "normalization", "fold_batch_norm", "precision"):
        reasons[name] = table[name]


def _apply_regression_patience(fields: dict, reasons: dict, profile: DataProfile) -> None:
    """Patience and budget in steps (:func:`dnnguide.data_rules.choose_patience`); never less
    than the tables'."""
    batch_size = NetworkConfig.batch_size  # the tables' batch size
    patience, epochs = data_rules.choose_patience(profile, batch_size)
    stop, schedule = fields["early_stopping"], fields["schedule"]
    if patience <= stop.patience:
        return
    fields["early_stopping"] = dataclasses.replace(stop, patience=patience)
    scheduler = ""
    if schedule.name == "performance":  # halve the LR after half the stopping patience
        fields["schedule"] = dataclasses.replace(schedule, patience=patience // 2)
        scheduler = (f", performance scheduling halves the LR after {patience // 2} epochs "
                     "without improvement")
    fields["epochs"] = epochs
    steps = profile.steps_per_epoch(batch_size)
    why = data_rules.reason("patience.regression", n_train=profile.n_train, steps=steps,
                            patience=patience, waited=patience * steps, scheduler=scheduler,
                            epochs=epochs, budget=epochs * steps)
    reasons["early_stopping"] += " " + why
    reasons["epochs"] = why


def _apply_regression_cross_fit(fields: dict, reasons: dict, profile: DataProfile, *,
                                rate_given: bool) -> None:
    """Small regression data: nets cross-fitted on the folds of train + validation, with and
    without dropout, the better out of fold kept (``DATA_TABLE["cross_fit.regression"]``).
    Not for a SELU net, an ensemble, MC dropout or a compressed net; a dropout rate you give
    is the only one tried."""
    rule = data_rules.DATA_TABLE["cross_fit.regression"][0]
    reg = fields["regularization"]
    if (profile.n_train >= rule["rows"] or fields["activation"] == "selu"
            or fields.get("ensemble", 1) > 1 or reg.dropout_kind.startswith("mc")
            or fields.get("pruning_sparsity", 0.0) > 0 or fields.get("fold_batch_norm")
            or fields.get("precision", "float32") != "float32"):
        return
    choices = () if rate_given else tuple(rule["dropout_rates"])
    fields["cross_fit"] = rule["folds"]
    fields["regularization"] = dataclasses.replace(reg, dropout_choices=choices)
    rates = " and ".join(f"{rate:g}" for rate in choices)
    what = (f"once for each dropout rate ({rates}); the rate whose {rule['folds']} nets' "
            "out-of-fold predictions explain more of the target (R²) is kept"
            if choices else f"all with dropout {reg.dropout_rate:g}")
    reasons["cross_fit"] = data_rules.reason(
        "cross_fit.regression", n_train=profile.n_train, choices=what,
        nets=rule["folds"] * max(len(choices), 1))


def _apply_data_rules(fields: dict, reasons: dict, profile: DataProfile, *, use_selu: bool,
                      width_given: bool, rate: float | None) -> None:
    """Size and regularize the tables' network for the data (:mod:`dnnguide.data_rules`)."""
    depth, width, rate_given = fields["depth"], fields["width"], rate is not None
    if not width_given:
        reasons["width"] = data_rules.reason("width", n_features=profile.n_features, width=width)
    rule = data_rules.DATA_TABLE["regularization"][0]
    n_weights = profile.n_weights(depth, width)
    if n_weights > profile.n_train:  # the net can memorize its rows
        reg, opt = fields["regularization"], fields["optimizer"]
        no_dropout = False
        if use_selu:  # weight penalties, decoupled or not, shift the SELU fixed point
            selu = data_rules.DATA_TABLE["regularization.selu"][0]
            rate = max(reg.dropout_rate, rate if rate is not None else selu["alpha_dropout_rate"])
            kind = reg.dropout_kind if reg.dropout_kind.endswith("alpha") else "alpha"
            what = f"AlphaDropout {rate} (weight penalties would break self-normalization)"
        else:
            # Regression: the decay alone (dropout's noise caps the fit's precision)
            no_dropout = profile.task == "regression"
            wanted = 0.0 if no_dropout else rule["dropout_rate"]
            rate = max(reg.dropout_rate, rate if rate is not None else wanted)
            kind = reg.dropout_kind
            if opt.name in DECOUPLED_DECAY_OPTIMIZERS:
                batch_size = NetworkConfig.batch_size  # the tables' batch size
                decay = data_rules.choose_weight_decay(profile, batch_size, opt.learning_rate)
                if decay >= opt.weight_decay:
                    opt = dataclasses.replace(opt, weight_decay=decay)
                    fields["optimizer"] = opt
                    reasons["optimizer.weight_decay"] = data_rules.weight_decay_reason(
                        profile, batch_size, opt.learning_rate, decay)
            what = " and ".join(part for part in (
                opt.weight_decay and f"decoupled weight decay {opt.weight_decay:g}",
                rate and f"dropout {rate}") if part) or "none beyond early stopping"
        fields["regularization"] = dataclasses.replace(reg, dropout_rate=rate, dropout_kind=kind)
        name = "regularization.selu" if use_selu and rate == 0 else "regularization"
        why = data_rules.reason(name, n_train=profile.n_train, what=what, n_weights=n_weights)
        if no_dropout and rate == 0:
            why += " " + data_rules.reason("regularization.regression")
        keep = reasons["regularization"] if reg.dropout_kind.startswith("mc") or reg.l1 else ""
        reasons["regularization"] = f"{keep} {why}".strip()
    stop, small = fields["early_stopping"], data_rules.DATA_TABLE["early_stopping"][0]
    if stop.enabled and profile.n_train < small["rows"]:
        batch_size = NetworkConfig.batch_size  # the tables' batch size
        start = data_rules.choose_early_stopping_start(profile, batch_size)
        fields["early_stopping"] = dataclasses.replace(stop, start_from_epoch=start)
        reasons["early_stopping"] += " " + data_rules.reason(
            "early_stopping", n_train=profile.n_train, rows=small["rows"], start=start,
            steps=profile.steps_per_epoch(batch_size))
    if profile.task == "regression" and fields["early_stopping"].enabled:
        _apply_regression_patience(fields, reasons, profile)
    if profile.task == "regression":
        _apply_regression_cross_fit(fields, reasons, profile, rate_given=rate_given)
    if profile.task == "regression" and fields["optimizer"].clipnorm is None:
        fields["optimizer"] = dataclasses.replace(
            fields["optimizer"], **data_rules.DATA_TABLE["regression"][0])
        reasons["optimizer"] += " " + data_rules.reason("regression")
    opt = fields["optimizer"]
    if data_rules.finder_covers(opt.name, fields["schedule"].name):
        reasons["optimizer.learning_rate"] = data_rules.reason(
            "learning_rate", table=opt.learning_rate, n_train=profile.n_train)
    if fields.get("normalization", "none") != "none":
        batch_size = NetworkConfig.batch_size  # the tables' batch size
        momentum = data_rules.choose_batch_norm_momentum(profile, batch_size)
        fields["batch_norm_momentum"] = momentum
        reasons["batch_norm_momentum"] = data_rules.reason(
            "batch_norm_momentum", steps=profile.steps_per_epoch(batch_size),
            batch_size=batch_size, momentum=momentum, horizon=round(1 / (1 - momentum)))
