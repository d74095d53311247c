"""Static check of any Keras model and its training setup against the guidelines.

``dnnguide.audit(model)`` reads the model's layers, initializers, activations, regularizers,
compiled optimizer and loss (and, if given, the planned callbacks and a data sample) and returns
an :class:`AuditReport`: one finding per broken guideline, with the reason from the same tables
``recommend()`` uses and a fix (config overrides and the Keras code change).

Example:
    >>> import keras
    >>> from dnnguide.auditing import audit
    >>> model = keras.Sequential([keras.Input((8,)),
    ...                           keras.layers.Dense(16, activation="selu"),
    ...                           keras.layers.BatchNormalization(),
    ...                           keras.layers.Dense(1)])
    >>> audit(model).rules
    ['initializer', 'selu_batch_norm']
"""

from dnnguide.auditing.core import audit
from dnnguide.auditing.report import AuditError, AuditReport, AuditWarning, Finding
from dnnguide.auditing.rules import LOCAL_REASONS, REASON_KEYS, RULES

__all__ = [
    "AuditError", "AuditReport", "AuditWarning", "Finding", "LOCAL_REASONS", "REASON_KEYS", "RULES",
    "audit",
]
