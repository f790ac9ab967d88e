"""Confidence intervals and per-method summaries of scored tasks.

Accuracies here are means over tasks, so each figure comes with its count and a 95%
interval: Wilson's score interval for F. Acc (a proportion of 0/1 outcomes; it stays
inside [0, 1] and behaves at 0 and 1, where the normal interval collapses) and a
percentile bootstrap for R. Acc (a mean of values in [0, 1] with a skewed, often
zero-inflated distribution). The bootstrap is seeded, so a report is reproducible.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tools.registry import TASK_TYPES

Z95 = 1.959963984540054
BOOTSTRAP_SAMPLES = 1000


@dataclass
class TaskOutcome:
    """One evaluated task for one method: the call made and its scores."""

    task_id: str
    user_id: str
    task_type: str
    tool: str | None
    function_acc: float
    result_acc: float
    degenerate: bool = False
    malformed: bool = False
    latency_s: float = 0.0
    steps: int = 1
    steered: bool = False
    extra: dict = field(default_factory=dict)
    arguments: dict | None = None  # the call's arguments (None: no call)

    def row(self) -> dict:
        """What the report keeps per task: enough to recompute every figure and to read
        what was written."""
        return {"task_id": self.task_id, "user_id": self.user_id, "type": self.task_type,
                "tool": self.tool, "arguments": self.arguments,
                "function_acc": self.function_acc, "result_acc": round(self.result_acc, 4),
                "degenerate": self.degenerate, **self.extra}


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0, 1) when there is no data."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # rounding must not push the point outside its own interval at p = 0 or 1
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def bootstrap_interval(
    values: Sequence[float], samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of a mean; the point itself for n < 2."""
    if not values:
        return 0.0, 1.0
    if len(values) == 1:
        return float(values[0]), float(values[0])
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(samples))
    low, high = means[int(0.025 * samples)], means[min(samples - 1, int(0.975 * samples))]
    point = sum(values) / n
    return min(low, point), max(high, point)  # the point always lies inside


def summarize_group(outcomes: Sequence[TaskOutcome]) -> dict:
    """F. Acc and R. Acc of a group with count and 95% intervals."""
    n = len(outcomes)
    f_values = [o.function_acc for o in outcomes]
    r_values = [o.result_acc for o in outcomes]
    f_acc = sum(f_values) / n if n else 0.0
    r_acc = sum(r_values) / n if n else 0.0
    return {
        "n": n,
        "function_acc": f_acc,
        "function_acc_ci": list(wilson_interval(sum(f_values), n)),
        "result_acc": r_acc,
        "result_acc_ci": list(bootstrap_interval(r_values)),
    }


def summarize_method(outcomes: Sequence[TaskOutcome], multi: bool = False) -> dict:
    """Per task type and overall, plus latency, degeneration and (multi-turn) steps."""
    groups: dict[str, list[TaskOutcome]] = defaultdict(list)
    for outcome in outcomes:
        groups[outcome.task_type].append(outcome)
    summary = {
        "per_type": {t: summarize_group(groups[t]) for t in TASK_TYPES if groups.get(t)},
        "overall": summarize_group(outcomes),
        "median_latency_s": median([o.latency_s for o in outcomes]),
        "degeneration_rate": rate(o.degenerate for o in outcomes),
        "malformed_rate": rate(o.malformed for o in outcomes),
        "steered_rate": rate(o.steered for o in outcomes),
        "outcomes": [o.row() for o in outcomes],
    }
    named = [o.extra["brand_named"] for o in outcomes if "brand_named" in o.extra]
    if named:  # of the search tasks answered with a search, the share whose query names
        summary["search_brand_rate"] = rate(named)  # the target's brand (evals.runner)
    if multi:
        summary["avg_steps"] = statistics.fmean(o.steps for o in outcomes) if outcomes else 0.0
    return summary


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def rate(flags: Iterable[bool]) -> float:
    items = list(flags)
    return sum(items) / len(items) if items else 0.0
