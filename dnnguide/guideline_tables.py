"""The guideline tables: each row a value and the reason for it.

Géron, *Hands-On Machine Learning*, 3rd ed., tables 11-3 (the default DNN) and 11-4 (the
self-normalizing DNN), the exceptions (sparse, low-latency, risk-sensitive), 1cycle's budget,
and the values both tables leave at their usual setting. :func:`dnnguide.guidelines.recommend`
applies them; :mod:`dnnguide.data_rules` sizes the result for the data.
"""

from __future__ import annotations

from typing import Any

from dnnguide.config import (
    EarlyStoppingConfig,
    OptimizerConfig,
    RegularizationConfig,
    ScheduleConfig,
)

#: Units per hidden layer when no data is given to size it (:func:`data_rules.choose_width`).
DEFAULT_WIDTH = 100
#: Optimizers whose weight decay is decoupled from the gradient step (Loshchilov & Hutter 2019).
DECOUPLED_DECAY_OPTIMIZERS = ("adamw", "sgd", "momentum", "nesterov")
#: From this many hidden layers on a network counts as "deep".
DEEP_FROM = 10
#: Depth used for "shallow" / "deep" / low-latency when no number is given.
SHALLOW_DEPTH, DEEP_DEPTH, LOW_LATENCY_DEPTH = 5, 20, 3

# Each row: field -> (value, reason). Values that depend on depth are resolved in recommend().
DEFAULT_TABLE: dict[str, tuple[Any, str]] = {
    "kernel_initializer": (
        "he_normal",
        "He initialization keeps the variance of ReLU-family activations (ELU, Swish) "
        "constant across layers, so gradients neither vanish nor explode at the start "
        "(He et al. 2015).",
    ),
    "activation.shallow": (
        "elu",
        "ELU is smooth, has non-zero gradients for negative inputs (no dead units) and "
        "outputs with mean near 0; on a shallow net it needs no normalization.",
    ),
    "activation.deep": (
        "swish",
        "Swish (SiLU) outperforms ReLU/ELU on deep nets (Ramachandran et al. 2017) and "
        "pairs well with batch norm.",
    ),
    "normalization.shallow": (
        "none",
        "A shallow net with He init and ELU trains stably without normalization; batch "
        "norm would only add run-time cost.",
    ),
    "normalization.deep": (
        "batch_norm_after",
        "Batch norm keeps activations standardized through a deep stack, which fights "
        "vanishing/exploding gradients and allows larger learning rates (Ioffe & Szegedy 2015).",
    ),
    "regularization": (
        RegularizationConfig(),
        "Early stopping is the first regularizer; add weight decay only if the model overfits.",
    ),
    "regularization.overfitting": (
        None,  # AdamW's decoupled weight decay; set on the optimizer row
        "The model overfits: decoupled weight decay (AdamW's, or SGD's own) regularizes "
        "without the interference L2 has with adaptive optimizers (Loshchilov & Hutter 2019).",
    ),
    "optimizer": (
        OptimizerConfig(name="adamw", learning_rate=1e-3, weight_decay=0.0),
        "AdamW (or Nesterov): adaptive, converges fast and is forgiving of the learning rate; "
        "its weight decay is decoupled from the gradient step.",
    ),
    "optimizer.deep": (
        OptimizerConfig(name="nesterov", learning_rate=0.01, momentum=0.9),
        "Nesterov momentum SGD, the table's other choice (optimizer='adamw' is the first): on "
        "a deep batch-norm stack it generalized better on small data (mnist1d, 20 layers, "
        "dropout after the last batch norm: 0.74 test accuracy vs 0.67 for AdamW at 1e-3; "
        "digits: 0.94 vs 0.64 before the dropout placement rule).",
    ),
    "dropout_layers.batch_norm": (
        1,
        "In a deep batch-norm stack, dropout goes after the last batch-norm layer only: dropout "
        "in front of a batch-norm layer shifts the variance it normalizes between training and "
        "inference (Li et al. 2019, 'Understanding the Disharmony between Dropout and Batch "
        "Normalization'), and the shift compounds layer after layer. mnist1d, 20 layers: test "
        "accuracy 0.52 with dropout after every layer, 0.74 after the last one only; on a "
        "3-layer net the shift is small and dropout everywhere regularized better (diabetes "
        "RMSE 59.4 vs 62.9).",
    ),
    "schedule": (
        ScheduleConfig(name="performance", factor=0.5, patience=5),
        "Performance scheduling (halve the LR when validation loss plateaus) needs no "
        "knowledge of the training length; 1cycle is the alternative when the budget is known.",
    ),
    "early_stopping": (
        EarlyStoppingConfig(patience=10),
        "Stop when validation loss has not improved for 10 epochs and keep the best weights.",
    ),
}

# What choosing 1cycle implies (it needs a known budget, used to the end).
ONECYCLE_TABLE: dict[str, tuple[Any, str]] = {
    "epochs": (
        30,
        "1cycle's budget: the cycle spans exactly these epochs and is never cut short. Smith "
        "(2018) reaches a constant learning rate's accuracy in a fraction of its epochs.",
    ),
    "early_stopping": (
        EarlyStoppingConfig(enabled=False),
        "No early stopping with 1cycle: a cycle cut before its end never anneals the learning "
        "rate (mnist1d: runs stopped at epochs 23-52 of 100, before the peak).",
    ),
    "max_lr": (
        None,
        "1cycle's peak learning rate, when not given: the LR finder's suggestion on this model "
        "and data (a tenth of the LR at the lowest loss; Smith 2018: the largest rate at which "
        "the loss still falls fast), lifted to at least 5x the constant learning rate where "
        "the sweep allows it.",
    ),
    "max_lr_floor": (
        5.0,
        "1cycle's peak is lifted to 5x the constant learning rate, but never above a third of "
        "the LR at the sweep's lowest loss: the cycle starts and ends 25x below its peak, so its "
        "mean LR is under half the peak, and super-convergence comes from peaks far above the "
        "constant rate (Smith & Topin 2019). A one-epoch sweep on data whose loss falls slowly "
        "suggests less (mnist1d: 1.3-1.8x AdamW's 1e-3; 30 epochs of 1cycle then reached 0.684 "
        "against the default preset's 0.728 (performance scheduling), and 0.752 with the floor; "
        "with the weight-decay rule, 0.749 against 0.722). Past the sweep's lowest loss "
        "training diverges (SELU + Nesterov on mnist1d at 0.05, 3.3x it). A sweep whose loss "
        "never turned up bounds nothing, and the peak is 5x alone (wine's 127 rows, memorized "
        "in the sweep: its lowest loss was at the sweep's end, LR 6.3, and a 0.63 peak diverged).",
    ),
}

SELF_NORMALIZING_TABLE: dict[str, tuple[Any, str]] = {
    "kernel_initializer": (
        "lecun_normal",
        "SELU self-normalizes only with LeCun normal initialization (Klambauer et al. 2017).",
    ),
    "activation": (
        "selu",
        "SELU pushes each layer's outputs towards mean 0 and std 1, so a deep plain stack "
        "trains without batch norm.",
    ),
    "normalization": (
        "none",
        "Self-normalization replaces batch norm; adding it would break the SELU fixed point.",
    ),
    "regularization": (
        RegularizationConfig(dropout_kind="alpha"),
        "No L1/L2/max-norm (they break self-normalization); AlphaDropout if regularization "
        "is needed, since it preserves mean and variance.",
    ),
    "optimizer": (
        OptimizerConfig(name="nesterov", learning_rate=0.01, momentum=0.9),
        "Nesterov accelerated gradient: momentum SGD that looks ahead, the table's choice "
        "for self-normalizing nets.",
    ),
    "schedule": (
        ScheduleConfig(name="performance", factor=0.5, patience=5),
        "Performance scheduling (or 1cycle when the training budget is known).",
    ),
    "early_stopping": (
        EarlyStoppingConfig(patience=10),
        "Stop when validation loss has not improved for 10 epochs and keep the best weights.",
    ),
    "standardize_inputs": (
        True,
        "Self-normalization assumes standardized inputs (mean 0, std 1 per feature).",
    ),
}

# Fields both tables leave at their usual value; the reason says why that value is the default.
COMMON_TABLE: dict[str, str] = {
    "width": "The same width in every hidden layer works as well as a pyramid and leaves one "
    "hyperparameter instead of many; prefer more layers to wider ones (Géron ch. 10).",
    "batch_norm_momentum": "Keras' 0.99 (moving statistics averaged over ~100 steps); used only "
    "with batch norm, and shortened by the data-aware rule when an epoch is short.",
    "architecture": "A plain sequential stack of Dense layers, the setting both tables assume.",
    "standardize_inputs": "Gradient descent converges faster on features with mean 0 and std 1; "
    "the statistics come from the training split only. A sparse or heavy-tailed feature is "
    "scaled so that no training value lies beyond 5 instead: standardized, digits' "
    "rarely-inked pixels reach 20-36 std and the net extrapolates from the few rows that "
    "have them into confident mistakes (20 seeds: test accuracy 0.970 -> 0.978, NLL 0.144 "
    "-> 0.093).",
    "standardize_target": "Regression targets are standardized for training (training-split "
    "statistics) and mapped back inside the model: raw targets such as diabetes' (mean 152, std "
    "77) make MSE gradients thousands of times larger and diverge SGD-family optimizers, while "
    "predictions and RMSE/MAE stay in the original units.",
    "batch_size": "32: small batches generalize well and are a safe default (Masters & Luschi "
    "2018); larger ones need a warm-up such as 1cycle's.",
    "epochs": "An upper bound only: early stopping ends training when validation loss stops "
    "improving.",
    "pruning_sparsity": "No pruning: only a model that must be sparse is pruned.",
    "fold_batch_norm": "Nothing to fold: only low-latency models fold batch norm for inference.",
    "precision": "Train and export in float32; 16/8-bit export is for low-latency models.",
    "ensemble": "One net. ensemble=K trains K nets from different seeds and pools them "
    "(Lakshminarayanan et al. 2017): better NLL on most data, K times the training; the "
    "risk-sensitive preset pays for it.",
    "cross_fit": "One net on one split. cross_fit=K trains one net on each of K folds of "
    "train + validation, each early-stopped on its own fold, and pools them; the data rules "
    "choose it for regression on fewer than 1,000 training rows.",
    "calibration": "Temperature scaling on the validation split after training: a net trained "
    "until its validation loss stops falling is often overconfident, and one fitted "
    "temperature fixes that without changing any prediction's class (Guo et al. 2017). It "
    "stays 1 unless a likelihood-ratio test at 5% supports it, so a net that is calibrated "
    "already keeps its outputs. Default preset, paired by seed: mnist1d NLL 0.756 -> 0.744, "
    "ECE 0.048 -> 0.035 (5 seeds; the weight-decay rule left less to fix: 0.773 -> 0.733 and "
    "0.068 -> 0.033 before it); digits, whose 3-layer net is nearly calibrated already, NLL "
    "-0.0002 and ECE within noise (10 seeds).",
}

#: The values the exceptions set (their reasons are in :data:`EXCEPTIONS_TABLE`).
EXCEPTION_VALUES: dict[str, dict[str, Any]] = {
    "sparse": {"l1": 1e-5, "pruning_sparsity": 0.8},
    "low_latency": {"kernel_initializer": "he_normal", "activation": "relu",
                    "normalization": "batch_norm_before", "fold_batch_norm": True,
                    "precision": "int8"},
    "risk_sensitive": {"dropout_rate": 0.2, "ensemble": 5},
    # Without data to look at, "the model overfits" adds this much decoupled weight decay.
    "overfitting": {"weight_decay": 0.004},
}

EXCEPTIONS_TABLE: dict[str, dict[str, str]] = {
    "sparse": {
        "l1": "L1 regularization drives many weights to exactly zero.",
        "pruning_sparsity": "Magnitude pruning (TF-MOT) removes the smallest weights during "
        "training to reach the target sparsity.",
        "activation": "Pruning and L1 break self-normalization, so a sparse model never uses "
        "SELU: the default table's activation is kept.",
    },
    "low_latency": {
        "depth": "Fewer layers mean fewer sequential matrix products per prediction.",
        "activation": "ReLU is the cheapest activation to compute (LeakyReLU if units die).",
        "normalization": "Batch norm right after each Dense (before the activation) so it can "
        "be folded into the Dense weights for inference at no cost.",
        "fold_batch_norm": "Folded BN layers cost nothing at inference time.",
        "precision": "Reduce float precision to 16 or 8 bits at export (post-training "
        "quantization) for smaller, faster models.",
    },
    "risk_sensitive": {
        "dropout": "MC dropout: keep dropout on at prediction time and pool many "
        "predictions (their normalized geometric mean, tempered on the validation split) into "
        "one prediction with uncertainty estimates, the samples' spread and mutual "
        "information, with no retraining (Gal & Ghahramani 2016).",
        "early_stopping": "Early stopping watches the validation loss of the MC prediction "
        "(val_mc_loss, 50 samples an epoch) and keeps its best weights: the model is used "
        "through that prediction, so that is the loss to stop on. It mattered on the 5-layer "
        "net without the data rules (mnist1d, 5 seeds: calibrated MC test accuracy 0.772 and "
        "NLL 0.61, against 0.755 and 0.65 on val_loss); on the 3-layer net with dropout from "
        "the data rules it stops at the same epoch in 3 of 5 seeds (0.729 / 0.734 against "
        "0.727 / 0.733).",
        "ensemble": "A deep ensemble: 5 nets trained from different seeds, pooled into one "
        "model and calibrated as one (Lakshminarayanan et al. 2017); its MC samples are draws "
        "from the members' mixture, so their spread holds the members' disagreement too. "
        "Mistakes are costly here, so 5x the training buys what MC dropout over one net could "
        "not: one net's calibrated MC prediction tied the default's calibrated one, while the "
        "ensemble's, paired by seed, has the lower NLL (mnist1d -0.043 and digits -0.011, both "
        "beyond 2.5 standard errors, 5 and 10 seeds; breast_cancer +0.001, a tie), higher "
        "accuracy (+1.3 and +0.3 points) and an ECE no higher, and on diabetes its 90% "
        "intervals cover 0.84 of test targets (the default's constant variance: 0.82). "
        "Ensembles also stay the "
        "best calibrated under data shift (Ovadia et al. 2019).",
        "ensemble_skipped": "One net, not an ensemble: the {why} exception compresses a single "
        "net (pruning, batch-norm folding, 8-bit export), and an ensemble is several.",
    },
}
