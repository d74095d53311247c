"""What every audit rule reads: the :class:`Context`, and the guideline reasons it cites.

The reasons come from the tables :func:`dnnguide.recommend` applies (``dnnguide.guidelines``),
looked up by key in :data:`REASON_KEYS`; the few facts those tables do not state yet are in
:data:`LOCAL_REASONS`.

Example:
    >>> reason("init.lecun") == guidelines.SELF_NORMALIZING_TABLE["kernel_initializer"][1]
    True
    >>> reason("output_dropout").split(" (")[0]
    'Dropout on the output perturbs the predictions themselves'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dnnguide import guidelines
from dnnguide.auditing.graph import ModelView

# Where each reason lives in dnnguide.guidelines: (table, key[, sub-key]).
REASON_KEYS: dict[str, tuple[str, ...]] = {
    "init.he": ("DEFAULT_TABLE", "kernel_initializer"),
    "init.lecun": ("SELF_NORMALIZING_TABLE", "kernel_initializer"),
    "selu.normalization": ("SELF_NORMALIZING_TABLE", "normalization"),
    "selu.regularization": ("SELF_NORMALIZING_TABLE", "regularization"),
    "selu.architecture": ("COMMON_TABLE", "architecture"),
    "selu.inputs": ("SELF_NORMALIZING_TABLE", "standardize_inputs"),
    "deep.normalization": ("DEFAULT_TABLE", "normalization.deep"),
    "low_latency.normalization": ("EXCEPTIONS_TABLE", "low_latency", "normalization"),
    "weight_decay": ("DEFAULT_TABLE", "regularization.overfitting"),
    "schedule": ("DEFAULT_TABLE", "schedule"),
    "early_stopping": ("DEFAULT_TABLE", "early_stopping"),
    "inputs": ("COMMON_TABLE", "standardize_inputs"),
    "mc_dropout": ("EXCEPTIONS_TABLE", "risk_sensitive", "dropout"),
}

#: Reasons the guideline tables have no row for (yet): candidates to move into dnnguide.guidelines.
LOCAL_REASONS: dict[str, str] = {
    "init.glorot": "Glorot initialization keeps the variance of tanh, sigmoid and softmax layers "
    "(near-linear around 0) the same forward and backward (Glorot & Bengio 2010).",
    "init.fixed": "A fixed-std random initializer ignores the fan-in, so activations shrink or "
    "grow layer after layer; the guideline initializers scale with it.",
    "plateau": "Keras' ReduceLROnPlateau cannot change a learning rate that is already a schedule "
    "and raises a TypeError the first time it tries, possibly hours into training.",
    "target": "A regression target far from mean 0 and std 1 starts the network's outputs (near "
    "0) far from it and scales the loss and gradients with the target: standardize it with the "
    "training statistics and de-standardize the predictions inside the model.",
    "output_loss": "The output activation and the loss must describe the same probability model: "
    "softmax with (sparse) categorical cross-entropy, sigmoid with binary cross-entropy, raw "
    "logits only with from_logits=True; anything else trains on a wrong or constant loss.",
    "output_dropout": "Dropout on the output perturbs the predictions themselves (random zeros, "
    "rescaled values) instead of regularizing hidden units.",
}


def reason(key: str) -> str:
    """The guideline text for ``key`` (from the tables, else :data:`LOCAL_REASONS`)."""
    if key in LOCAL_REASONS:
        return LOCAL_REASONS[key]
    table_name, *path = REASON_KEYS[key]
    entry: Any = getattr(guidelines, table_name)
    for part in path:
        entry = entry[part]
    return entry[1] if isinstance(entry, tuple) else entry


@dataclass
class Context:
    """What the rules read; built by :func:`dnnguide.audit`."""

    view: ModelView
    config: Any = None  # the dnnguide NetworkConfig, if any
    optimizer: Any = None
    callbacks: list | None = None  # None: unknown, the callback rules are skipped
    heads: list | None = None  # (output kernel layer, activation, trail, units, loss) per output
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    task: str | None = None
    low_latency: bool = False
    mc_dropout: bool = False

    @property
    def output_kernels(self) -> set[int]:
        return {id(head[0]) for head in self.heads or () if head[0] is not None}

    def hidden_kernels(self) -> list:
        return [k for k in self.view.kernel_layers if id(k) not in self.output_kernels]

    @property
    def selu(self) -> list:
        return [k for k in self.hidden_kernels() if self.view.activation(k) == "selu"]


def _names(layers) -> tuple[str, ...]:
    return tuple(layer.name for layer in layers)
