"""Evaluation of the agent's methods side by side (`fints eval`) and the agent latency
benchmark (`fints bench agent`). See docs/results.md.

Names load on first use, so that `fints --help` (which imports `evals.cli`) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EvalConfig": "evals.evaluate",
    "run_eval": "evals.evaluate",
    "ReportError": "evals.report",
    "validate_report": "evals.report",
    "TaskOutcome": "evals.stats",
    "bootstrap_interval": "evals.stats",
    "summarize_method": "evals.stats",
    "wilson_interval": "evals.stats",
    "EvalInputError": "evals.tasks",
    "load_task_file": "evals.tasks",
    "run_bench": "evals.bench",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'evals' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
