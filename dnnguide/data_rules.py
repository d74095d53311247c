"""The data-aware guidelines: what the shape of the training data changes in a recommendation.

The tables in :mod:`dnnguide.guidelines` say *what kind* of network to train; these rules size
and regularize it for the data at hand, the way a practitioner would after one look at the data:

- **width**: several times the number of input features (a power of two in [64, 512]), so
  the first layers can represent feature interactions; the regularization below keeps the extra
  capacity from memorizing ("stretch pants": a net bigger than needed, then early stopping and
  regularization; Géron ch. 11);
- **depth on small data** (fewer than 5,000 training rows): 3 hidden layers instead of the
  table's 5, as one starts a net before adding layers; the deeper stack measured worse on
  small tabular data (it paid only on mnist1d's signals, and the gain was gone at ~8,000 rows);
  SELU nets keep 5;
- **more weights than training rows**: decoupled weight decay and dropout, because early
  stopping alone stops a net that can memorize its rows long before it generalizes (not for
  SELU: weight penalties break self-normalization, and AlphaDropout in every layer measured
  worse than early stopping alone). It once stopped at 10,000 rows; larger data then lost to a
  plain Keras MLP. Regression from 10,000 rows gets the decay without dropout, whose noise
  limits how precisely a net fits a continuous target;
- **weight decay** sized by its timescale: Keras' decoupled decay shrinks the weights by
  ``lr x decay`` a step, so they average their updates over ``1 / (lr x decay)`` steps; the rule
  makes that the tables' 100 epochs of this data's steps (a fixed 1e-2 is thousands of epochs
  on small data, which decays nothing); none on tiny data (fewer than 10 steps an epoch), where
  it measured worse on every classification set;
- **early stopping on small data** (fewer than 10,000 rows) ignores the first epochs, ~400
  steps and at most 10 epochs: an epoch of a few hundred rows is a dozen steps, and a small
  validation split's loss is often lowest after the first of them, while the net is still
  unsure of everything;
- **regression**: clip gradient norms, because a squared error has unbounded gradients (a
  softmax cross-entropy's are bounded) and momentum SGD diverges on the first large residuals;
- **batch-norm momentum**: the moving statistics must average over a fraction of an epoch, not
  the ~100 steps of Keras' 0.99 when an epoch is a few dozen steps, or inference runs on
  statistics of weights long gone;
- **learning rate** (Adam-family optimizers): the LR finder sweeps the network on this data when
  :func:`dnnguide.fit` starts, and a valley at least twice below the table's LR replaces it
  (:func:`dnnguide.fit_setup.finder_learning_rate`); it never raises the table's LR.

Every value lives in :data:`DATA_TABLE` beside its reason; a reason names the fact about the data
that triggered it. Explicit user choices (``recommend(width=...)``, overrides) always win.

Example:
    >>> profile = DataProfile(n_train=3600, n_features=40, task="classification", n_outputs=10)
    >>> choose_width(profile)
    256
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dnnguide.config import TASKS, NetworkConfig, check_choice, check_range

# Each row: rule -> (values, reason template). Templates are filled with the data's facts.
DATA_TABLE: dict[str, tuple[dict[str, Any], str]] = {
    "width": (
        {"per_feature": 4, "min": 64, "max": 512},
        "{n_features} input features: {width} units per hidden layer (4x the inputs, a power "
        "of two in [64, 512]) leave room for feature interactions; early stopping and the "
        "regularization rule keep the spare capacity from memorizing (a bigger net, then "
        "regularize: Géron ch. 11).",
    ),
    "depth": (
        {"rows": 5_000, "depth": 3},
        "{n_train:,} training rows (fewer than {rows:,}): {depth} hidden layers, not the "
        "table's {table}. Start with a few hidden layers and add more while validation improves "
        "(Géron ch. 10); on a few thousand rows of tabular data the deeper stack adds variance, "
        "not accuracy. 3 against 5 layers, 10 seeds, on 9 small datasets of which 6 set no rule "
        "(bench/heldout_data.py): lower test NLL or RMSE on 8 (breast_cancer NLL 0.085 -> "
        "0.061, digits 0.089 -> 0.077, friedman1 RMSE 2.46 -> 2.15, star98 0.104 -> 0.097), "
        "within noise on the ninth; with the weight-decay rule, 3 layers still had the lower "
        "NLL or RMSE on all 9 (breast_cancer NLL 0.073 -> 0.055, diabetes RMSE 56.2 -> 55.2). "
        "Where depth pays, it costs: mnist1d (1-D signals, 3,600 rows) 0.778 -> 0.722 test "
        "accuracy; give depth=5 for such data. At ~8,000 rows the gain was gone (a synthetic 4-class set: ECE 0.022 -> 0.029; randhie: RMSE the same), so the "
        "rule stops at {rows:,}. A self-normalizing net keeps 5: with 3 it lost on digits (NLL "
        "0.091 -> 0.098) and mnist1d (0.708 -> 0.673).",
    ),
    "regularization": (
        {"dropout_rate": 0.2},
        "{n_train:,} training rows for {n_weights:,} weights (more weights than rows: the net "
        "can memorize them): {what}. Early stopping alone stops such a net while it memorizes "
        "the training set (mnist1d, 3,600 rows, 5 hidden layers: 0.56 test accuracy without, "
        "0.76 with). The rule once stopped at 10,000 rows, and larger data then lost to a "
        "plain Keras MLP: a synthetic 4-class set of 21,600 rows scored 0.906 test accuracy "
        "against the MLP's 0.923, and 0.954 with the rule; 17,500 rows of mnist1d's "
        "generator 0.862 -> 0.934 (3 seeds; bench/heldout_data.py --large). A net with fewer "
        "weights than rows gets early stopping alone.",
    ),
    "regularization.regression": (
        {},
        "No dropout: a regression target. Dropout's noise on every unit limits how precisely "
        "a net fits a continuous target; a classifier's softmax and its temperature absorb "
        "that noise, a regression output carries it into the residual. On 18 small "
        "regression sets (150-4,500 training rows, 15 of them never used to set a rule: "
        "bench/heldout_data.py --regression; 5-10 seeds), the decay alone had the lower test "
        "RMSE on 9 beyond two standard errors: Boston housing 3.97 -> 3.30, PC prices 206 -> "
        "190, CPU performance 56 -> 47, diamond prices 1,171 -> 843, friedman1 2.17 -> 1.49, "
        "friedman2 51 -> 36, a linear target 25.8 -> 20.1, a smooth 2-D field 0.124 -> 0.094, "
        "log wages 0.325 -> 0.317; the same within noise on 6; worse on 3 small noisy ones: "
        "mpg (168 rows) 2.36 -> 3.10, diabetes (318) 55.2 -> 57.7, star98 (217) 0.098 -> "
        "0.105 (mpg and star98 have since gained more from the decay kept on tiny data: 1.71 "
        "and 0.086). On large data too: diamonds (38,800 rows) 585 -> 573 dollars. Give "
        "dropout_rate=0.2 for a small, noisy target: diabetes, with every rule since, 58.6 "
        "-> 55.4 over 20 seeds. Nothing known before training tells such a target from those "
        "dropout costs: on 19 regression sets neither a noise estimate (the Delta test, "
        "cross-validated R² of ridge or of trees) nor one run's validation R² separates them "
        "(bench/noise_estimates.py). Below 1,000 training rows the cross-fit tries both and "
        "keeps the one its out-of-fold predictions favour (cross_fit).",
    ),
    "weight_decay": (
        {"timescale_epochs": 100, "min_steps": 10},
        "Weight decay {weight_decay:g}: AdamW's (and SGD's) decoupled decay shrinks every "
        "weight by lr x decay a step, so the weights are a moving average of their updates "
        "over 1 / (lr x decay) steps. At lr {learning_rate:g} and {steps} steps an epoch, "
        "that is {epochs:g} epochs. The rule aims at {timescale_epochs} epochs, the "
        "tables' epoch budget: long enough to average over every row many times, short "
        "enough to forget the first updates within the run (Wang & Aitchison 2025: between "
        "one epoch and the run's epochs). The usual 1e-2 at lr 1e-3 is 100,000 steps, "
        "thousands of epochs on small data: no decay at all (1e-3 gave the same test scores). "
        "Sized this way, over 20 seeds: breast_cancer test NLL 0.075 -> 0.068, digits 0.079 "
        "-> 0.075, diabetes RMSE 57.1 -> 55.5 (accuracy and ECE within noise); on data no "
        "rule was set on (10 seeds), anes96 NLL 0.216 -> 0.207, a synthetic 4-class set 0.636 "
        "-> 0.606 and +0.9 points, friedman1 and fair the same. It is sized at the table's "
        "learning rate and moves with a rate you give or the LR finder's, keeping the "
        "timescale.",
    ),
    "weight_decay.tiny": (
        {},
        "No weight decay: an epoch of {n_train:,} rows is {steps} steps, fewer than "
        "{min_steps}, and on data this small the decay measured worse on every classification "
        "set: wine (127 rows, decay 2.5) test NLL 0.041 -> 0.064 over 10 seeds, iris (108) "
        "0.19 -> 0.23 and -2.3 points, moons (216, 5 seeds) -5.7 points; capped at 1, still "
        "worse (iris -1.3 points, moons -3.7). Dropout and early stopping regularize; give "
        "weight_decay to have it. (Regression keeps the decay this small: weight_decay."
        "regression_tiny.)",
    ),
    "weight_decay.regression_tiny": (
        {},
        "Kept on {n_train:,} rows ({steps} steps an epoch, fewer than {min_steps}): classifiers "
        "this small get none, but a regression net has no dropout, and without the decay "
        "nothing but early stopping regularized it. With the decay, 5 seeds: diamond prices "
        "(221 rows) RMSE 797 -> 414, mpg (168) 2.95 -> 1.71, star98 (217) 0.103 -> 0.086; CPU "
        "performance (150), friedman3 (180) and professors' salaries (285) the same within "
        "noise (bench/heldout_data.py --regression).",
    ),
    "early_stopping": (
        {"rows": 10_000, "warmup_steps": 400, "max_epochs": 10},
        "{n_train:,} training rows (fewer than {rows:,}): early stopping ignores the first "
        "{start} epochs (Keras' start_from_epoch: no stop, and no best weights, in them), "
        "~{warmup_steps} steps at {steps} steps an epoch, at most {max_epochs} epochs. Before "
        "that, a small validation split's loss is often lowest while the net is still unsure "
        "of every row, not because it generalizes: "
        "breast_cancer (46 validation rows) restored epoch 1 in 5 runs of 20 (test accuracy 0.960 "
        "against 0.974 in the other 15). Ignoring the first 10 epochs, over 20 "
        "seeds: breast_cancer +0.6 points and ECE -0.004, diabetes RMSE -1.4, digits +0.1 "
        "points; mnist1d, whose best epochs are 35-56, unchanged.",
    ),
    "patience.regression": (
        {"steps": 1_000, "min_epochs": 10, "max_epochs": 50, "budget_steps": 10_000,
         "max_budget_epochs": 500},
        "Regression on {n_train:,} training rows, {steps} steps an epoch: patience counted in "
        "steps. Early stopping waits {patience} epochs (~{waited:,} steps; the table's 10 "
        "epochs at least, 50 at most){scheduler}, and the budget is {epochs} epochs (~{budget:,} "
        "steps). A regression net's fit keeps sharpening long after a classifier's accuracy "
        "settles, and on a few steps an epoch the table's patience, counted in epochs, halved "
        "the LR and then stopped the run on a small validation split's noise while the "
        "training loss was still falling. On 16 regression sets of 150-3,000 training rows (5 "
        "seeds; bench/heldout_data.py --regression): better on 6 beyond two standard errors "
        "(a linear target 20.1 -> 14.9 RMSE, friedman1 1.79 -> 1.26, a smooth 2-D field 0.094 "
        "-> 0.070, CPU performance 47.4 -> 42.9, diamond prices 843 -> 797, mpg 3.10 -> 2.95), "
        "the same within noise on 8 (diabetes over 20 seeds: 58.7 -> 58.6), worse on star98, "
        "a small noisy set (217 rows: 0.096 -> 0.103); runs take about twice as long. "
        "Classifiers were mixed (a synthetic 4-class set NLL 0.591 -> 0.568, digits 0.070 -> "
        "0.074, breast_cancer, wine and anes96 within noise) and keep the table's.",
    ),
    "cross_fit.regression": (
        {"rows": 1_000, "folds": 5, "dropout_rates": (0.0, 0.2)},
        "Regression on {n_train:,} training rows (fewer than {rows:,}): {folds} nets "
        "cross-fitted, each trained on four fifths of train + validation and early-stopped on "
        "the fifth it does not see, {choices}; the prediction is their mean. One validation "
        "split of a few dozen rows is a noisy judge of when to stop and of whether dropout "
        "helps a target, and nothing known before training tells (see the dropout reason); "
        "out of fold, every row judges once. Against one net, test RMSE as the code trains it (bench/ablations.py cv_dropout): diabetes 57.6 -> 54.2 over 10 seeds (dropout kept on all 10; the newcomer's Keras MLP 57.8 on them); on 7 regression sets no rule was set on, 3 seeds each, never worse: a linear target 15.2 -> 12.2, diamond prices 413 -> 376, Boston housing 3.39 -> 3.15, star98 0.090 -> 0.081, mpg 1.80 -> 1.69, friedman1 1.27 -> 1.26, CPU performance the same (37.9). It trains {nets} nets: seconds each on "
        "data this small. cross_fit=1 trains one net as before.",
    ),
    "regularization.selu": (
        {"alpha_dropout_rate": 0.0},
        "{n_train:,} training rows for {n_weights:,} weights (more weights than rows), but a "
        "self-normalizing net gets no extra regularization: weight penalties would break "
        "self-normalization, and AlphaDropout 0.1 after every SELU layer made it worse on 3 of "
        "4 datasets (mnist1d test accuracy 0.71 -> 0.50, digits NLL 0.12 -> 0.23, diabetes RMSE "
        "61 -> 71). Early stopping is its regularizer; AlphaDropout stays one override away "
        "(dropout_rate=0.1) and comes with risk_sensitive or overfitting=True.",
    ),
    "regression": (
        {"clipnorm": 1.0},
        "Regression: gradient norms clipped at 1.0. A squared error's gradient grows with the "
        "residual (a softmax cross-entropy's is bounded), and momentum SGD on a deep stack "
        "diverged within 5 steps on diabetes without clipping.",
    ),
    "learning_rate": (
        {"rule": "valley", "factor": 2.0, "optimizers": ("adam", "adamw"),
         "schedules": ("performance", "constant")},
        "{table:g} from the table unless the LR finder, swept over this network and these "
        "{n_train:,} rows when fit() trains the preset by name, finds its {rule} at least "
        "{factor:g}x lower: "
        "then the valley. Such a valley means the table's LR is past where the loss still "
        "falls steadily on this data (digits with 5 hidden layers, valley 2.4-5e-4: test accuracy "
        "0.967 -> 0.970, NLL 0.18 -> 0.14 over 20 seeds; with 3, 9 seeds of 20 are that low, "
        "2.9-5e-4, and mnist1d 2 of 5). "
        "A smaller gap is no evidence: one sweep's valley varies "
        "2-4x between seeds on the same data (mnist1d 0.9-2.2e-3; a seed lowered to 9e-4 lost "
        "2.8 points). It never raises the LR: Keras scales AdamW's decoupled weight decay by "
        "the LR, so a higher one would strengthen the decay the small-data rule sized at the "
        "table's (mnist1d, valley 1.8e-3 used as is: NLL 0.68 -> 0.72). A learning rate you "
        "give, or a config you pass to fit(), is used as is.",
    ),
    "batch_norm_momentum": (
        {"epoch_fraction": 0.25, "min": 0.9, "max": 0.99},
        "An epoch is {steps} steps of {batch_size}: batch-norm momentum {momentum} averages the "
        "moving statistics over ~{horizon} steps (a quarter of an epoch) instead of Keras' 100, "
        "so inference does not run on statistics of weights long gone.",
    ),
}


@dataclass(frozen=True)
class DataProfile:
    """The facts about a dataset the rules look at (see :func:`DataProfile.of`)."""

    n_train: int
    n_features: int
    task: str = "classification"
    n_outputs: int = 1
    name: str = "data"

    def __post_init__(self):
        check_range("n_train", self.n_train, 1, integer=True)
        check_range("n_features", self.n_features, 1, integer=True)
        check_range("n_outputs", self.n_outputs, 1, integer=True)
        check_choice("task", self.task, TASKS)

    @classmethod
    def of(cls, data) -> DataProfile:
        """A profile from a :class:`dnnguide.data.Dataset`, a profile, or a dict of its fields."""
        if isinstance(data, DataProfile):
            return data
        if isinstance(data, dict):
            return cls(**data)
        if hasattr(data, "x_train") and hasattr(data, "task"):
            x = np.asarray(data.x_train)
            return cls(n_train=int(len(x)), n_features=int(np.prod(x.shape[1:])),
                       task=data.task, n_outputs=int(data.n_outputs),
                       name=str(getattr(data, "name", "data")))
        raise TypeError("Argument `data` must be a dnnguide Dataset, a DataProfile or a dict of "
                        f"its fields. Received: data of type {type(data).__name__}")

    def n_weights(self, depth: int, width: int) -> int:
        """Dense weights of a ``depth`` x ``width`` stack on these inputs and outputs."""
        return (self.n_features * width + (depth - 1) * width * width + width * self.n_outputs)

    def steps_per_epoch(self, batch_size: int) -> int:
        return max(1, math.ceil(self.n_train / batch_size))


def choose_width(profile: DataProfile) -> int:
    """``per_feature`` x the inputs, rounded up to a power of two and clipped to [min, max]."""
    rule = DATA_TABLE["width"][0]
    wanted = max(rule["per_feature"] * profile.n_features, 1)
    width = 2 ** math.ceil(math.log2(wanted))
    return int(min(max(width, rule["min"]), rule["max"]))


def choose_weight_decay(profile: DataProfile, batch_size: int, learning_rate: float) -> float:
    """Decoupled weight decay whose timescale ``1 / (lr x decay)`` is ``timescale_epochs`` epochs.

    Keras' AdamW and SGD apply ``w -= lr * decay * w`` each step, so the weights average their
    updates over ``1 / (lr * decay)`` steps (Wang & Aitchison 2025). Two significant digits:
    breast_cancer at lr 1e-3 (13 steps an epoch) gets 0.77, digits (41) 0.24, mnist1d (113)
    0.088. None below ``min_steps`` steps an epoch for a classifier (tiny data, where it
    measured worse); a regression net, which has no dropout, keeps it.
    """
    rule = DATA_TABLE["weight_decay"][0]
    steps = profile.steps_per_epoch(batch_size)
    if _tiny_classifier(profile, steps):
        return 0.0
    return float(f"{1.0 / (learning_rate * steps * rule['timescale_epochs']):.2g}")


def _tiny_classifier(profile: DataProfile, steps: int) -> bool:
    """Fewer than ``min_steps`` steps an epoch, and classes: no weight decay (a regression net
    that small keeps it, having no dropout)."""
    return steps < DATA_TABLE["weight_decay"][0]["min_steps"] and profile.task != "regression"


def decay_at(weight_decay: float, learning_rate: float, new_learning_rate: float) -> float:
    """``weight_decay`` chosen at ``learning_rate``, moved to ``new_learning_rate`` with the
    same ``lr x decay`` a step (the same timescale); two significant digits."""
    return float(f"{weight_decay * learning_rate / new_learning_rate:.2g}")


def weight_decay_reason(profile: DataProfile, batch_size: int, learning_rate: float,
                        weight_decay: float) -> str:
    """The weight-decay rule's reason for this data: the timescale it gives, or why none."""
    rule = DATA_TABLE["weight_decay"][0]
    steps = profile.steps_per_epoch(batch_size)
    if _tiny_classifier(profile, steps):
        return reason("weight_decay.tiny", n_train=profile.n_train, steps=steps, **rule)
    epochs = float(f"{1.0 / (learning_rate * weight_decay * steps):.3g}")
    why = reason("weight_decay", weight_decay=weight_decay, learning_rate=learning_rate,
                 steps=steps, epochs=epochs, **rule)
    if steps < rule["min_steps"]:  # a tiny regression net keeps it: say why
        why += " " + reason("weight_decay.regression_tiny", n_train=profile.n_train,
                            steps=steps, **rule)
    return why


def choose_early_stopping_start(profile: DataProfile, batch_size: int) -> int:
    """Epochs before early stopping counts: ~``warmup_steps`` steps, at most ``max_epochs``.

    In steps, because what an unsure early validation loss reflects is how little the net has
    trained: 10 epochs on breast_cancer or digits (13 and 41 steps an epoch), 4 on mnist1d (113).
    """
    rule = DATA_TABLE["early_stopping"][0]
    steps = profile.steps_per_epoch(batch_size)
    return int(min(math.ceil(rule["warmup_steps"] / steps), rule["max_epochs"]))


def choose_patience(profile: DataProfile, batch_size: int) -> tuple[int, int]:
    """Early-stopping patience and epoch budget for regression, counted in steps.

    ``steps`` of patience (within ``[min_epochs, max_epochs]``) and ``budget_steps`` of budget
    (at least the tables' 100 epochs, at most ``max_budget_epochs``): an epoch of 150 rows is 5
    steps, and 10 epochs of it are 50 updates.

    Example:
        >>> choose_patience(DataProfile(n_train=720, n_features=20, task="regression"), 32)
        (44, 435)
    """
    rule = DATA_TABLE["patience.regression"][0]
    steps = profile.steps_per_epoch(batch_size)
    patience = min(max(math.ceil(rule["steps"] / steps), rule["min_epochs"]), rule["max_epochs"])
    epochs = min(max(math.ceil(rule["budget_steps"] / steps), NetworkConfig.epochs),
                 rule["max_budget_epochs"])
    return patience, epochs


def choose_batch_norm_momentum(profile: DataProfile, batch_size: int) -> float:
    """Momentum whose averaging horizon (``1 / (1 - m)`` steps) is a fraction of an epoch."""
    rule = DATA_TABLE["batch_norm_momentum"][0]
    horizon = profile.steps_per_epoch(batch_size) * rule["epoch_fraction"]
    momentum = 1.0 - 1.0 / max(horizon, 1.0)
    return round(float(min(max(momentum, rule["min"]), rule["max"])), 3)


#: Overrides that set the learning rate: the user's value is used as is.
LEARNING_RATE_KEYS = frozenset({"learning_rate", "optimizer.learning_rate"})
#: Overrides that set the weight decay: used as is, whatever the learning rate does.
WEIGHT_DECAY_KEYS = frozenset({"weight_decay", "optimizer.weight_decay"})


def finder_covers(optimizer: str, schedule: str) -> bool:
    """Whether the LR rule was measured with this optimizer and schedule (by name)."""
    rule = DATA_TABLE["learning_rate"][0]
    return optimizer in rule["optimizers"] and schedule in rule["schedules"]


def finder_applies(preset_or_config, config, overrides: dict) -> bool:
    """Whether the LR rule (``DATA_TABLE["learning_rate"]``) sets the LR of ``config``'s run.

    Only for a preset trained by name, whose LR comes from the tables (a NetworkConfig, a
    ``learning_rate`` or a whole ``optimizer`` override is the user's choice), and only with
    the optimizers and schedules the rule was measured with (:func:`finder_covers`).
    """
    if set(overrides) & LEARNING_RATE_KEYS or not isinstance(overrides.get("optimizer", ""), str):
        return False
    return (isinstance(preset_or_config, str)
            and finder_covers(config.optimizer.name, config.schedule.name))


def reason(rule: str, **facts) -> str:
    """The reason of ``rule`` with the data's facts filled in."""
    values, template = DATA_TABLE[rule]
    return template.format(**{**values, **facts})
