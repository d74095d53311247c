"""Helpers for tests that run dnnguide in fresh processes (distributed training and tuning)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child_env(**extra) -> dict:
    """This process's environment without tuner/cluster variables, importing this checkout."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KERASTUNER_", "TF_CONFIG"))}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO), **extra)
    return env


def run_python(code: str, *args: str, timeout: int = 300) -> str:
    """Run ``code`` in a fresh interpreter; its stdout, or the test fails with its stderr."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                          env=child_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout
