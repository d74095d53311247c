"""Findings of an audit and the report that holds them (table, text, JSON, fixed config).

Example:
    >>> report = AuditReport("mlp", [Finding("initializer", "warning", ("hidden_1",),
    ...     "He initialization keeps ...", {"kernel_initializer": "he_normal"},
    ...     "Dense(..., kernel_initializer='he_normal')")])
    >>> report.ok, report.findings["rule"].tolist()
    (True, ['initializer'])
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("error", "warning", "info")


class AuditError(AssertionError):
    """A model dnnguide built itself breaks its own guidelines: a bug in dnnguide, not user error.

    ``build_model`` and ``fit`` audit what they build and raise this on any error finding; it is
    an ``AssertionError`` so no ``except ValueError`` meant for user input can swallow it.
    """


class AuditWarning(UserWarning):
    """``dnnguide.fit`` was given a model of yours with error findings (training may be wrong)."""


@dataclass(frozen=True)
class Finding:
    """One broken guideline.

    Attributes:
        rule: the rule id (see :data:`dnnguide.auditing.rules.RULES`).
        severity: ``error`` (training fails or is silently wrong), ``warning`` (against the
            guidelines), ``info`` (worth knowing).
        layers: names of the layers involved (empty for training-setup findings).
        reason: why the guideline says so, read from the tables ``recommend()`` uses.
        fix: config overrides that apply the guideline (``build_model(..., **fix)``); empty
            where no config field expresses it.
        code: the same fix as a change to plain Keras code.
    """

    rule: str
    severity: str
    layers: tuple[str, ...]
    reason: str
    fix: dict[str, Any] = field(default_factory=dict)
    code: str = ""

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"Argument `severity` must be one of {list(SEVERITIES)}. "
                             f"Received: severity={self.severity!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "severity": self.severity, "layers": list(self.layers),
                "reason": self.reason, "fix": dict(self.fix), "code": self.code}


class AuditReport:
    """What :func:`dnnguide.audit` found: ``.findings``, ``.ok``, ``str()``, ``.fixed_config()``."""

    COLUMNS = ["rule", "severity", "layers", "reason", "fix", "code"]

    def __init__(self, model_name: str, findings: list[Finding], config=None):
        order = {severity: i for i, severity in enumerate(SEVERITIES)}
        self.model_name = model_name
        self.items = sorted(findings, key=lambda f: order[f.severity])  # stable within a severity
        self.config = config

    @property
    def findings(self):
        """One row per finding (columns: rule, severity, layers, reason, fix, code)."""
        import pandas as pd

        return pd.DataFrame([f.to_dict() for f in self.items], columns=self.COLUMNS)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.items if f.severity == "error"]

    @property
    def ok(self) -> bool:
        """No error findings (warnings and infos allowed): what a CI pipeline checks."""
        return not self.errors

    @property
    def rules(self) -> list[str]:
        """The rule ids found, in report order."""
        return [f.rule for f in self.items]

    def fixed_config(self):
        """The model's dnnguide config with every finding's ``fix`` applied (a new NetworkConfig).

        Raises:
            ValueError: the model was not built by dnnguide (no config to fix; use each
                finding's ``code`` instead).
        """
        from dnnguide.config import nested_overrides

        if self.config is None:
            raise ValueError(
                f"Argument `model` must be a dnnguide model (built by build_model, or audited "
                f"with config=...) to have a config to fix. Received: model {self.model_name!r} "
                "without a dnnguide config. Apply each finding's `code` change instead.")
        config = self.config
        for finding in self.items:
            if finding.fix:
                config = nested_overrides(config, **finding.fix)
        return config

    def check(self) -> AuditReport:
        """Raise :class:`AuditError` listing the error findings, if any; else return ``self``."""
        if self.errors:
            raise AuditError(f"dnnguide built a model that breaks its guidelines (a dnnguide "
                             f"bug, please report it):\n{self}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model_name, "ok": self.ok,
                "findings": [f.to_dict() for f in self.items]}

    def __str__(self) -> str:
        counts = {s: sum(f.severity == s for f in self.items) for s in SEVERITIES}
        summary = ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n)
        lines = [f"Audit of model {self.model_name!r}: {summary or 'no findings'}"]
        for f in self.items:
            shown = ", ".join(f.layers[:4]) + (f" (+{len(f.layers) - 4} more)"
                                                if len(f.layers) > 4 else "")
            lines.append(f"{f.severity.upper():<8} {f.rule:<26} {shown}")
            body = [("why", f.reason), ("fix", str(f.fix) if f.fix else ""), ("code", f.code)]
            for label, text in body:
                if text:
                    wrapped = textwrap.wrap(text, width=88)
                    lines.append(f"{'':9}{label + ':':<6}{wrapped[0]}")
                    lines.extend(f"{'':15}{more}" for more in wrapped[1:])
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<AuditReport {self.model_name!r}: {len(self.items)} findings, ok={self.ok}>"
