"""The audit's rules by id (:data:`RULES`): each reads a :class:`Context`, returns findings.

The rules live by topic in ``stack_rules`` (initialization, self-normalization, depth, batch
norm, weight decay) and ``setup_rules`` (training setup, data scaling, output head and loss,
MC dropout); what they read and the reasons they cite, in ``context``. Fixes are config
overrides (for ``build_model``) plus the same change in plain Keras code.

Example:
    >>> sorted(RULES)[:3]
    ['adamw_with_l2', 'bn_not_foldable', 'deep_saturating_stack']
    >>> RULES["selu_conditions"] is selu_conditions
    True
"""

from __future__ import annotations

from dnnguide.auditing.context import LOCAL_REASONS, REASON_KEYS, Context, reason
from dnnguide.auditing.setup_rules import (
    MAX_ABS_MEAN,
    STD_RANGE,
    dropout_on_output,
    inputs_not_standardized,
    loss_kind,
    mc_dropout_without_dropout,
    no_stopping_no_schedule,
    output_loss,
    schedule_with_plateau,
    target_not_standardized,
)
from dnnguide.auditing.stack_rules import (
    EXPECTED_INIT,
    GLOROT_FAMILY,
    HE_FAMILY,
    LECUN_FAMILY,
    SATURATING,
    adamw_with_l2,
    bn_not_foldable,
    deep_saturating_stack,
    initializer,
    selu_conditions,
)

#: Every rule, in the order the report lists findings of the same severity.
RULES = {
    "output_loss": output_loss,
    "dropout_on_output": dropout_on_output,
    "mc_dropout_without_dropout": mc_dropout_without_dropout,
    "initializer": initializer,
    "selu_conditions": selu_conditions,
    "adamw_with_l2": adamw_with_l2,
    "schedule_with_plateau": schedule_with_plateau,
    "deep_saturating_stack": deep_saturating_stack,
    "bn_not_foldable": bn_not_foldable,
    "no_stopping_no_schedule": no_stopping_no_schedule,
    "inputs_not_standardized": inputs_not_standardized,
    "target_not_standardized": target_not_standardized,
}

__all__ = [
    "EXPECTED_INIT", "GLOROT_FAMILY", "HE_FAMILY", "LECUN_FAMILY", "MAX_ABS_MEAN", "SATURATING",
    "STD_RANGE", "LOCAL_REASONS", "REASON_KEYS", "RULES", "Context", "adamw_with_l2", "bn_not_foldable",
    "deep_saturating_stack", "dropout_on_output", "initializer", "inputs_not_standardized",
    "loss_kind", "mc_dropout_without_dropout", "no_stopping_no_schedule", "output_loss", "reason",
    "schedule_with_plateau", "selu_conditions", "target_not_standardized",
]
