"""Evaluation of the agent's methods side by side (`fints eval`) and the agent latency
benchmark (`fints bench agent`). See docs/results.md."""

from evals.evaluate import EvalConfig, run_eval
from evals.report import ReportError, validate_report
from evals.stats import TaskOutcome, bootstrap_interval, summarize_method, wilson_interval
from evals.tasks import EvalInputError, load_task_file

__all__ = [
    "EvalConfig",
    "EvalInputError",
    "ReportError",
    "TaskOutcome",
    "bootstrap_interval",
    "load_task_file",
    "run_eval",
    "summarize_method",
    "validate_report",
    "wilson_interval",
]
