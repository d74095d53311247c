"""The rules: which statistics of a diagnostics table are a pathology, and what fixes it.

Every threshold comes from :class:`Thresholds`; every fix and reason from the guideline tables
(:mod:`dnnguide.guidelines`), so advice and guidelines cannot drift apart.

Example:
    >>> findings = find_pathologies(load_diagnostics("runs/x"))  # doctest: +SKIP
    >>> [f.kind for f in findings]  # doctest: +SKIP
    ['vanishing']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dnnguide.config import ConfigError, check_range
from dnnguide.guidelines import DEFAULT_TABLE, SELF_NORMALIZING_TABLE, recommend

#: Units of these activations are dead when they output <= 0 for the whole probe batch.
DEAD_CAPABLE = ("relu", "relu6", "leaky_relu")
#: Bounded activations and their bounds.
SATURATING = {"sigmoid": (0.0, 1.0), "hard_sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}
COLUMNS = ["step", "epoch", "index", "layer", "activation", "units", "loss", "grad_norm",
           "weight_norm", "update_ratio", "act_mean", "act_std", "dead_fraction",
           "saturated_fraction", "initializer"]


class DiagnosticsWarning(UserWarning):
    """A training pathology seen by the diagnostics (vanishing, exploding, dead, ...)."""


@dataclass(frozen=True)
class Thresholds:
    """When a statistic counts as a pathology.

    ``vanishing_ratio``/``exploding_ratio``: first-layer over last-layer gradient norm.
    ``max_update_ratio``: one step's ``||dW|| / ||W||`` (healthy is around 1e-3).
    ``max_growth``: total gradient norm over its first record. ``dead_fraction`` and
    ``saturated_fraction``: share of a layer's units; a unit is saturated when it is
    within ``saturation_margin`` of a bound for ``saturated_rows`` of the probe rows.
    ``selu_mean``/``selu_std``: a SELU layer's allowed |mean| and std interval.
    ``selu_unit_mean``/``selu_unit_std``: the same for one SELU unit; a unit outside counts
    toward the layer's ``saturated_fraction`` (far from the self-normalizing fixed point).
    """

    vanishing_ratio: float = 1e-3
    exploding_ratio: float = 1e3
    max_update_ratio: float = 0.5
    max_growth: float = 1e3
    dead_fraction: float = 0.5
    saturated_fraction: float = 0.5
    saturation_margin: float = 0.02
    saturated_rows: float = 0.9
    selu_mean: float = 0.5
    selu_std: tuple[float, float] = (1 / 3, 3.0)
    selu_unit_mean: float = 1.0
    selu_unit_std: tuple[float, float] = (1 / 3, 3.0)

    def __post_init__(self):
        for name in ("vanishing_ratio", "exploding_ratio", "max_update_ratio", "max_growth",
                     "selu_mean", "selu_unit_mean"):
            check_range(name, getattr(self, name), 0.0, low_inclusive=False)
        for name in ("dead_fraction", "saturated_fraction", "saturated_rows"):
            check_range(name, getattr(self, name), 0.0, 1.0, low_inclusive=False)
        check_range("saturation_margin", self.saturation_margin, 0.0, 0.5, low_inclusive=False)
        for name in ("selu_std", "selu_unit_std"):
            low, high = getattr(self, name)
            check_range(f"{name}[0]", low, 0.0, low_inclusive=False)
            check_range(f"{name}[1]", high, low, low_inclusive=False)


@dataclass(frozen=True)
class Finding:
    """One pathology: what, where, when, why it matters and the guideline that fixes it.

    ``fix`` holds config overrides that apply the advice, e.g. ``{"clipnorm": 1.0}``
    (usable as ``dnnguide.fit(..., **finding.fix)``).
    """

    kind: str
    message: str
    recommendation: str
    layers: tuple[str, ...] = ()
    step: int = 0
    fix: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.message}; {self.recommendation}"


def _hidden_depth(n_blocks: int) -> int:
    return max(n_blocks - 1, 1)


def _layers_where(rows, mask) -> tuple[str, ...]:
    return tuple(rows.loc[mask, "layer"])


def _step_findings(rows, t: Thresholds, first_total: float | None) -> list[Finding]:
    """The findings of one record (the rows of one step), in order of importance."""
    rows = rows.sort_values("index")
    step = int(rows["step"].iloc[0])
    depth = _hidden_depth(len(rows))
    deep = recommend(depth).config
    found: list[Finding] = []
    grads = rows["grad_norm"].to_numpy()
    finite = np.all(np.isfinite(rows[["loss", "grad_norm", "weight_norm"]].to_numpy()))
    clip = ("clip gradients (clipnorm=1.0 keeps their direction), lower the learning rate "
            "(the LR finder picks one) or add batch norm")
    if not finite:
        found.append(Finding("exploding", "loss, gradients or weights are NaN/inf: exploding "
                             "gradients (training diverged)", clip, tuple(rows["layer"]), step,
                             {"clipnorm": 1.0}))
        return found
    first, last = grads[0], grads[-1]
    ratio = first / last if last > 0 else float("inf")
    if ratio < t.vanishing_ratio:
        found.append(Finding(
            "vanishing", f"gradient norm at layer 1 ({rows['layer'].iloc[0]}) is {ratio:.1g} x "
            f"that of the last layer: vanishing gradients, the first layers barely learn",
            f"consider He init + ReLU-family or batch norm (the guidelines for a {depth}-layer "
            f"net: {deep.kernel_initializer} + {deep.activation}, normalization="
            f"{deep.normalization!r}). {DEFAULT_TABLE['kernel_initializer'][1]}",
            (rows["layer"].iloc[0],), step,
            {"kernel_initializer": deep.kernel_initializer, "activation": deep.activation,
             "normalization": deep.normalization}))
    elif ratio > t.exploding_ratio:
        found.append(Finding(
            "exploding", f"gradient norm at layer 1 is {ratio:.1g} x that of the last layer: "
            "gradients explode toward the input", clip, (rows["layer"].iloc[0],), step,
            {"clipnorm": 1.0}))
    updates = rows["update_ratio"].to_numpy()
    total = float(np.sqrt(np.sum(grads ** 2)))
    growth = total / first_total if first_total else 1.0
    if "exploding" not in [f.kind for f in found]:
        if np.nanmax(np.r_[updates, 0.0]) > t.max_update_ratio:
            worst = int(np.nanargmax(updates))
            found.append(Finding(
                "exploding", f"one step changed the weights of layer {worst + 1} "
                f"({rows['layer'].iloc[worst]}) by {updates[worst]:.2g} x their norm (healthy: "
                f"~1e-3): the learning rate is far too large, gradients explode",
                clip, _layers_where(rows, updates > t.max_update_ratio), step, {"clipnorm": 1.0}))
        elif growth > t.max_growth:
            found.append(Finding(
                "exploding", f"total gradient norm grew {growth:.2g} x since the first record: "
                "exploding gradients", clip, tuple(rows["layer"]), step, {"clipnorm": 1.0}))
    dead = rows["dead_fraction"].to_numpy()
    if np.any(dead >= t.dead_fraction):
        names = _layers_where(rows, dead >= t.dead_fraction)
        first_dead = int(np.argmax(dead >= t.dead_fraction))
        act = rows["activation"].iloc[first_dead]
        fix = "elu" if act == "leaky_relu" else "leaky_relu"
        found.append(Finding(
            "dead", f"{dead[first_dead]:.0%} of the {act} units of layer {first_dead + 1} "
            f"({names[0]}) output 0 for every probe example (dead units; {len(names)} layer(s) "
            "affected)", f"use LeakyReLU or ELU, He init and a lower learning rate. "
            f"{DEFAULT_TABLE['activation.shallow'][1]}", names, step, {"activation": fix}))
    sat = rows["saturated_fraction"].to_numpy()
    bounded = rows["activation"].isin(list(SATURATING)).to_numpy()
    if np.any(bounded & (sat >= t.saturated_fraction)):
        names = _layers_where(rows, bounded & (sat >= t.saturated_fraction))
        found.append(Finding(
            "saturated", f"{len(names)} layer(s) with {rows.loc[bounded, 'activation'].iloc[0]} "
            f"units stuck near their bounds (first: {names[0]}): saturated units pass almost "
            "no gradient", f"use {deep.kernel_initializer} init with {deep.activation} "
            f"instead of a bounded activation. {DEFAULT_TABLE['kernel_initializer'][1]}",
            names, step, {"kernel_initializer": deep.kernel_initializer,
                          "activation": deep.activation}))
    selu = (rows["activation"] == "selu").to_numpy()
    low, high = t.selu_std
    off = selu & ((rows["act_mean"].abs() > t.selu_mean) | (rows["act_std"] < low)
                  | (rows["act_std"] > high)).to_numpy()
    if np.any(off):
        names = _layers_where(rows, off)
        i = int(np.argmax(off))
        inits = rows["initializer"][off] if "initializer" in rows else ()
        already = len(inits) > 0 and all(init == "lecun_normal" for init in inits)
        why = (f"{SELF_NORMALIZING_TABLE['standardize_inputs'][1]} "
               f"{SELF_NORMALIZING_TABLE['normalization'][1]}")
        if already:  # the init is right: the drift comes from the inputs or from training
            advice = ("These layers already have LeCun normal init, so the drift comes from the "
                      "inputs or from training: standardize the inputs, keep weight penalties "
                      "and standard dropout out (AlphaDropout only), and lower the learning "
                      f"rate if it persists. {why}")
            fix = {"standardize_inputs": True, "normalization": "none"}
        else:
            advice = f"{SELF_NORMALIZING_TABLE['kernel_initializer'][1]} {why}"
            fix = {"kernel_initializer": "lecun_normal", "standardize_inputs": True,
                   "normalization": "none"}
        found.append(Finding(
            "not_self_normalizing", f"SELU layer {names[0]} has mean {rows['act_mean'].iloc[i]:.2f}"
            f" and std {rows['act_std'].iloc[i]:.2f} (self-normalizing keeps them near 0 and 1)",
            advice, names, step, fix))
    return found


def find_pathologies(frame, thresholds: Thresholds | None = None) -> list[Finding]:
    """Apply the rules to a diagnostics table; one finding per kind, at its first step.

    Args:
        frame: a DataFrame with :data:`COLUMNS` (from :func:`check_model`, the callback or
            ``diagnostics.csv``).
        thresholds: when a statistic counts as a pathology (default :class:`Thresholds`).
    """
    t = thresholds or Thresholds()
    found: dict[str, Finding] = {}
    first_total = None
    for _, rows in frame.groupby("step", sort=True):
        if first_total is None:
            first_total = float(np.sqrt(np.sum(rows["grad_norm"].to_numpy() ** 2)))
        for finding in _step_findings(rows, t, first_total):
            found.setdefault(finding.kind, finding)
    return list(found.values())


def _frame(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=COLUMNS)


def gradient_ratio(frame, step: int | None = None) -> float:
    """First-layer over last-layer gradient norm at ``step`` (default: the first record)."""
    step = frame["step"].min() if step is None else step
    rows = frame[frame["step"] == step].sort_values("index")
    if rows.empty:
        raise ConfigError(f"Argument `step` must be one of the recorded steps "
                          f"{sorted(frame['step'].unique())[:10]}. Received: step={step!r}")
    last = rows["grad_norm"].iloc[-1]
    return float(rows["grad_norm"].iloc[0] / last) if last > 0 else float("inf")
