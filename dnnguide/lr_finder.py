"""The learning-rate finder: sweep the LR exponentially, watch the loss, suggest a value.

:func:`lr_find` trains for one epoch (or ``num_steps`` steps) while the learning rate grows
exponentially from ``start_lr`` (1e-7) to ``end_lr`` (10), records the loss of every batch and
its smoothed value, stops once the smoothed loss has diverged, and then puts the model back as
it was: the weights are restored bitwise and the model's own optimizer is never stepped (the
sweep runs on a copy of it, same class and hyperparameters but no decoupled weight decay), so
its state is unchanged too.

The suggestion follows one of three stated rules on the smoothed loss against **log(LR)**:

- ``"valley"`` (default, fastai's): the longest stretch over which the loss keeps decreasing,
  and a point two thirds down its slope (fastai's ``valley``; robust to noise);
- ``"steepest"``: where the smoothed loss falls fastest against log(LR);
- ``"minimum"``: a tenth of the LR at the lowest smoothed loss (fastai's former ``lr_min``):
  one decade below where training turns unstable, where 1cycle's ``max_lr`` starts from.
  :func:`onecycle_peak` lifts it towards 5x the constant LR (the cycle spends most steps well
  below its peak), never above a third of the LR at the lowest loss.

All use log(LR) on the x axis, never linear LR: the LRs are spaced evenly in log(LR), and a
gradient against linear LR divides the slope by the LR, which drags the pick toward the flat,
small-LR start of the curve (PyTorch Lightning#21141). The suggestion lies inside the swept range.

Example:
    >>> import dnnguide
    >>> from dnnguide.lr_finder import lr_find
    >>> result = lr_find("default", "digits", verbose=0)  # doctest: +SKIP
    >>> peak = result.onecycle_peak(1e-3)  # doctest: +SKIP
    >>> dnnguide.fit("default", "digits", schedule="onecycle", max_lr=peak)  # doctest: +SKIP

References:
    Smith, "Cyclical learning rates for training neural networks" (2017), arXiv:1506.01186.
    fastai ``LRFinder`` and ``valley``: https://docs.fast.ai/callback.schedule.html
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dnnguide.config import (
    ConfigError,
    NetworkConfig,
    ScheduleConfig,
    check_choice,
    check_range,
)

RULES = ("valley", "steepest", "minimum")


@dataclass
class LRFinderResult:
    """What :func:`lr_find` returns.

    Attributes:
        frame: pandas DataFrame with columns ``step``, ``lr``, ``loss``, ``smoothed_loss``.
        suggestion: the suggested learning rate (by ``rule``).
        rule: ``"valley"``, ``"steepest"`` or ``"minimum"``.
        suggestions: the suggestion of every rule, for comparison.
        diverged: whether the sweep stopped early because the loss diverged.
        start_lr, end_lr: the swept range.
        plot_path: the PNG written by :meth:`plot`, if any.
    """

    frame: Any
    suggestion: float
    rule: str
    suggestions: dict[str, float]
    diverged: bool
    start_lr: float
    end_lr: float
    plot_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def onecycle_peak(self, learning_rate: float) -> float:
        """1cycle's ``max_lr`` from this sweep for a network whose constant LR is
        ``learning_rate``: what ``fit(..., schedule="onecycle")`` picks (:func:`onecycle_peak`
        on the ``minimum`` suggestion, bounded only if the sweep diverged)."""
        return onecycle_peak(self.suggestions["minimum"], learning_rate, bounded=self.diverged)

    def plot(self, path=None):
        """Smoothed loss against the LR on a log-x axis, with the suggestion marked."""
        return plot_lr_find(self, path)

    def save(self, run_dir) -> Path:
        """Write ``lr_find.csv``, ``lr_find.json`` and ``plots/lr_find.png`` into ``run_dir``."""
        from dnnguide.runs import atomic_write_json, atomic_write_text

        run_dir = Path(run_dir)
        (run_dir / "plots").mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "lr_find.csv", self.frame.to_csv(index=False))
        self.plot(run_dir / "plots" / "lr_find.png")
        atomic_write_json(run_dir / "lr_find.json", {
            "suggestion": self.suggestion, "rule": self.rule, "suggestions": self.suggestions,
            "diverged": self.diverged, "start_lr": self.start_lr, "end_lr": self.end_lr,
            "steps": len(self.frame), **self.extra})
        return run_dir


# --------------------------------------------------------------------------- suggestion rules
def _trimmed(lrs, losses):
    """Drop the noisy first tenth and the last few points before divergence (as fastai does)."""
    lrs, losses = np.asarray(lrs, "float64"), np.asarray(losses, "float64")
    keep = np.isfinite(losses)
    lrs, losses = lrs[keep], losses[keep]
    n = len(lrs)
    start, end = n // 10, n - min(5, n // 10)
    if end - start < 3:
        start, end = 0, n
    return lrs[start:end], losses[start:end]


def steepest_suggestion(lrs, smoothed_losses) -> float:
    """The LR where the smoothed loss falls fastest against log10(LR)."""
    lrs, losses = _trimmed(lrs, smoothed_losses)
    if len(lrs) < 2:
        raise ValueError(f"Need at least 2 finite loss points to suggest an LR. Received {len(lrs)}.")
    slope = np.gradient(losses, np.log10(lrs))
    return float(lrs[int(np.argmin(slope))])


def valley_suggestion(lrs, smoothed_losses) -> float:
    """fastai's ``valley``: inside the longest decreasing run of the loss, 2/3 of the way down.

    Hand-written (15 lines) rather than depending on fastai, which would pull in PyTorch.
    """
    lrs, losses = _trimmed(lrs, smoothed_losses)
    n = len(losses)
    if n < 2:
        raise ValueError(f"Need at least 2 finite loss points to suggest an LR. Received {n}.")
    # Longest decreasing subsequence ending at each point (O(n^2), n is a few hundred).
    lds = np.ones(n, dtype=int)
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
        if lds[max_end] < lds[i]:
            max_end = i
            max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    index = max_start + int(sections) + int(sections / 2)
    return float(lrs[min(max(index, 0), n - 1)])


def minimum_suggestion(lrs, smoothed_losses) -> float:
    """A tenth of the LR at the lowest smoothed loss (fastai's former ``lr_min``)."""
    first = float(np.asarray(lrs, "float64")[0])
    lrs, losses = _trimmed(lrs, smoothed_losses)
    if len(lrs) < 2:
        raise ValueError(f"Need at least 2 finite loss points to suggest an LR. Received {len(lrs)}.")
    return float(max(lrs[int(np.argmin(losses))] / 10, first))  # stay inside the swept range


def onecycle_peak(minimum: float, learning_rate: float, bounded: bool = True) -> float:
    """1cycle's ``max_lr`` from the finder's ``minimum`` suggestion and the constant LR.

    The ``minimum`` suggestion (a tenth of the LR at the lowest loss), lifted towards
    ``ONECYCLE_TABLE["max_lr_floor"]`` (5) times the learning rate the network would train
    with at a constant rate, but never above a third of the LR at the lowest loss; the table
    gives the reasons. ``bounded=False`` (:attr:`LRFinderResult.diverged` false: the loss never
    turned up, so its lowest point is wherever the sweep stopped and bounds nothing; wine's
    127 rows memorized over 50 epochs of sweep, to an LR of 10) gives the floor alone.

        >>> onecycle_peak(0.0018, 0.001), onecycle_peak(0.02, 0.001), onecycle_peak(0.0015, 0.01)
        (0.005, 0.02, 0.005)
        >>> onecycle_peak(0.63, 0.01, bounded=False)
        0.05
    """
    from dnnguide.guideline_tables import ONECYCLE_TABLE

    floor = ONECYCLE_TABLE["max_lr_floor"][0] * learning_rate
    if not bounded:
        return float(floor)
    return float(max(minimum, min(floor, 10 * minimum / 3)))


_RULE_FUNCS = {"valley": valley_suggestion, "steepest": steepest_suggestion,
               "minimum": minimum_suggestion}


# --------------------------------------------------------------------------- the sweep
def _prepare(model_or_config, data, seed: int):
    """A compiled model and the Dataset, from a model or a preset/config plus data."""
    from dnnguide.presets import build_for_data, resolve_config
    from dnnguide.data import as_dataset

    given_model = isinstance(model_or_config, keras.Model)
    if given_model and getattr(model_or_config, "optimizer", None) is None:
        raise ConfigError("lr_find needs a compiled model (model.compile(optimizer, loss)) "
                          "or a preset name / NetworkConfig.")
    data = as_dataset(data, seed, None)
    keras.utils.set_random_seed(seed)  # after loading, as fit does
    if given_model:
        return model_or_config, data, getattr(model_or_config, "dnnguide_config", None)
    # A preset is sized for the data as fit() sizes it (dnnguide.data_rules): the sweep must
    # probe the network that will train, not the tables' 100-wide one.
    config = resolve_config(model_or_config, data=data)
    # The sweep drives the LR itself; a schedule (1cycle needs total_steps) is irrelevant here.
    config = replace(config, schedule=ScheduleConfig("constant"))
    return build_for_data(config, data), data, config


def _sweep_optimizer(optimizer, start_lr: float):
    """A fresh copy of ``optimizer`` (same class and hyperparameters, without its decoupled
    weight decay) with a settable LR.

    Decoupled decay shrinks every weight by ``lr x decay`` a step, a rate sized for the
    training LR. At the sweep's LRs, 100-10,000x higher, a decay sized by its timescale (the
    small-data rule's 0.24-1.0, ``dnnguide.data_rules``) takes most of each weight away every
    step: the loss cannot diverge, and its minimum moves to higher LRs. With it, 1cycle's peak
    on breast_cancer rose from 0.007-0.010 to 0.022-0.039 and the cycle ended with confident
    errors (BENCHMARKS.md). The sweep measures the gradient step alone.
    """
    config = optimizer.get_config()
    if "learning_rate" not in config:
        raise ConfigError(f"lr_find cannot copy optimizer {type(optimizer).__name__} "
                          "(its config has no learning_rate, e.g. a LossScaleOptimizer).")
    config["learning_rate"] = float(start_lr)
    if config.get("weight_decay"):
        config["weight_decay"] = 0.0  # AdamW takes a float only
    return type(optimizer).from_config(config)


def lr_find(
    model_or_config="default",
    data="digits",
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int | None = None,
    batch_size: int | None = None,
    beta: float = 0.98,
    diverge_threshold: float = 4.0,
    rule: str = "valley",
    seed: int = 0,
    verbose: int = 1,
) -> LRFinderResult:
    """Sweep the learning rate exponentially and suggest one (see the module docstring).

    Args:
        model_or_config: a compiled Keras model, a preset name or a NetworkConfig.
        data: a dataset name, a Dataset, ``(x, y)`` or ``(x, y, x_val, y_val)``.
        start_lr, end_lr: the swept range (``lr_i = start * (end / start) ** (i / (n - 1))``).
        num_steps: batches in the sweep; default one epoch, at least 200 (the data is
            reshuffled and repeated if an epoch is shorter).
        batch_size: default the config's batch size (32 for a bare model).
        beta: smoothing of the loss (exponential moving average with bias correction).
        diverge_threshold: stop once the smoothed loss exceeds this multiple of its minimum
            (or is not finite).
        rule: ``"valley"``, ``"steepest"`` (both on log(LR)) or ``"minimum"``.
        seed: seed of the batch order (and of the model built from a config).
        verbose: 1 shows a progress bar.

    Returns:
        An :class:`LRFinderResult`; ``result.suggestion`` is inside ``[start_lr, end_lr]``.

    Raises:
        ConfigError: on a bad argument, before any training step.
    """
    check_range("start_lr", start_lr, 0.0, low_inclusive=False)
    check_range("end_lr", end_lr, start_lr, low_inclusive=False)
    check_range("beta", beta, 0.0, 1.0, high_inclusive=False)
    check_range("diverge_threshold", diverge_threshold, 1.0, low_inclusive=False)
    check_choice("rule", rule, RULES)
    if num_steps is not None:
        check_range("num_steps", num_steps, 5, integer=True)
    if batch_size is not None:
        check_range("batch_size", batch_size, 1, integer=True)
    model, data, config = _prepare(model_or_config, data, seed)
    batch_size = batch_size or (config.batch_size if isinstance(config, NetworkConfig) else 32)
    n = len(data.x_train)
    num_steps = num_steps or max(math.ceil(n / batch_size), 200)
    lrs = start_lr * (end_lr / start_lr) ** (np.arange(num_steps) / (num_steps - 1))

    original_optimizer = model.optimizer
    sweep_optimizer = _sweep_optimizer(original_optimizer, start_lr)
    saved_weights = model.get_weights()  # numpy copies: restored bitwise below
    rng = np.random.default_rng(seed)
    progbar = keras.utils.Progbar(num_steps, verbose=verbose, stateful_metrics=["lr", "loss"])
    records, avg, best, diverged = [], 0.0, math.inf, False
    order, cursor = rng.permutation(n), 0
    try:
        model.optimizer = sweep_optimizer
        model.train_function = None  # retrace the train step with the sweep optimizer
        for step, lr in enumerate(lrs):
            if cursor + batch_size > n:
                order, cursor = rng.permutation(n), 0
            index = order[cursor:cursor + batch_size]
            cursor += batch_size
            sweep_optimizer.learning_rate = float(lr)
            logs = model.train_on_batch(data.x_train[index], data.y_train[index], return_dict=True)
            loss = float(logs["loss"])
            avg = beta * avg + (1 - beta) * loss
            smoothed = avg / (1 - beta ** (step + 1))
            records.append((step, float(lr), loss, smoothed))
            progbar.update(step + 1, [("lr", float(lr)), ("loss", loss)])
            if not math.isfinite(smoothed) or smoothed > diverge_threshold * best:
                diverged = True
                break
            best = min(best, smoothed)
    finally:
        model.optimizer = original_optimizer
        model.train_function = None
        model.set_weights(saved_weights)
    if verbose:
        print()
    return _result(records, rule, diverged, start_lr, end_lr)


def _result(records, rule, diverged, start_lr, end_lr) -> LRFinderResult:
    import pandas as pd

    frame = pd.DataFrame(records, columns=["step", "lr", "loss", "smoothed_loss"])
    suggestions = {}
    for name, func in _RULE_FUNCS.items():
        try:
            suggestions[name] = func(frame["lr"], frame["smoothed_loss"])
        except ValueError:
            suggestions[name] = math.nan
    if not math.isfinite(suggestions[rule]):
        raise ValueError(f"The loss diverged after {len(frame)} steps, too soon to suggest a "
                         f"learning rate. Lower start_lr (received start_lr={start_lr}).")
    return LRFinderResult(frame, suggestions[rule], rule, suggestions, diverged,
                          float(start_lr), float(end_lr))


def plot_lr_find(result: LRFinderResult, path=None):
    """Loss (raw, faint) and smoothed loss against the LR on a log-x axis; PNG if ``path``."""
    from dnnguide.plotting import pyplot, save_figure

    plt = pyplot()
    frame = result.frame
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(frame["lr"], frame["loss"], color="tab:blue", alpha=0.25, label="loss")
    ax.plot(frame["lr"], frame["smoothed_loss"], color="tab:blue", label="smoothed loss")
    ax.set_xscale("log")
    for (name, lr), color in zip(result.suggestions.items(),
                                 ("tab:red", "tab:green", "tab:purple")):
        if math.isfinite(lr):
            style = "-" if name == result.rule else ":"
            ax.axvline(lr, color=color, linestyle=style, label=f"{name}: {lr:.2e}")
    finite = frame["smoothed_loss"][np.isfinite(frame["smoothed_loss"])]
    if len(finite):  # keep the divergence from squashing the interesting part
        low, first = float(finite.min()), float(finite.iloc[0])
        ax.set_ylim(low - 0.05 * abs(first - low), max(first, low) * 1.5 + 1e-12)
    ax.set(xlabel="learning rate (log scale)", ylabel="loss", title="LR finder")
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        result.plot_path = save_figure(fig, path)
    else:
        plt.close(fig)
    return fig


def result_summary(result: LRFinderResult) -> str:
    """One line: the suggestion, the rule and what the other rule says."""
    others = ", ".join(f"{k}={v:.3g}" for k, v in result.suggestions.items() if k != result.rule)
    return (f"suggested learning rate: {result.suggestion:.3g} (rule: {result.rule}; {others}; "
            f"swept {result.start_lr:g}..{result.end_lr:g} in {len(result.frame)} steps"
            f"{', stopped at divergence' if result.diverged else ''})")

