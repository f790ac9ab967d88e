"""PersonalWAB's metrics: function accuracy (F. Acc) and result accuracy (R. Acc).

Plain data in, numbers out, so any evaluation loop can call these:
- F. Acc: 1 if the tool called is the one the task type needs, else 0.
- R. Acc, search and recommend: the target at 0-based rank i of the N products returned
  scores 1 - i/N, absent scores 0. As in PersonalWAB, any tool that returned a product
  list counts (a recommendation list can still contain a search target).
- R. Acc, review: cosine similarity of the MiniLM embeddings of the written review and
  the user's real one; only a review actually written with `add_product_review` counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tools.data.records import Task
from tools.registry import TASK_TYPES, TOOL_FOR_TYPE

if TYPE_CHECKING:
    from common.embedding import Embedder

__all__ = [
    "CallScore",
    "function_accuracy",
    "rank_accuracy",
    "review_similarity",
    "score_call",
    "summarize",
]


@dataclass(frozen=True)
class CallScore:
    """The two metrics for one task."""

    task_type: str
    function_acc: float
    result_acc: float


def function_accuracy(task_type: str, tool_name: str | None) -> float:
    """1.0 if `tool_name` is the tool PersonalWAB maps `task_type` to, else 0.0."""
    if task_type not in TOOL_FOR_TYPE:
        raise ValueError(f"unknown task type {task_type!r}; allowed: {', '.join(TASK_TYPES)}")
    return 1.0 if tool_name == TOOL_FOR_TYPE[task_type] else 0.0


def rank_accuracy(target_asin: str, returned: Sequence[str | dict]) -> float:
    """1 - i/N for the target at 0-based rank i of N returned products; 0 if absent.

    Items may be ASINs or product dicts with a `parent_asin`.
    """
    asins = [item.get("parent_asin") if isinstance(item, dict) else item for item in returned]
    if target_asin not in asins:
        return 0.0
    return 1.0 - asins.index(target_asin) / len(asins)


def review_similarity(written: str, real: str, embedder: Embedder | None = None) -> float:
    """Cosine similarity of MiniLM embeddings of two reviews (0.0 for an empty review)."""
    if not written.strip() or not real.strip():
        return 0.0
    if embedder is None:
        from common.embedding import load_embedder

        embedder = load_embedder()
    return embedder.similarity(written, real)


def score_call(
    task: Task | dict[str, Any],
    tool_name: str | None,
    result: Sequence[str | dict] | str | None,
    embedder: Embedder | None = None,
) -> CallScore:
    """Score the one call an agent made for a task (tool_name None = no call made).

    `result` is what the tool returned: a list of ASINs (or product dicts) for search and
    recommend, the review text for add_product_review.
    """
    data = task.model_dump() if isinstance(task, Task) else task
    task_type = data["type"]
    f_acc = function_accuracy(task_type, tool_name)
    target = data["target"]
    if task_type == "review":
        written = result if tool_name == TOOL_FOR_TYPE["review"] and isinstance(result, str) \
            else None
        r_acc = review_similarity(written, target["review"]["text"], embedder) if written else 0.0
    elif isinstance(result, Sequence) and not isinstance(result, str):
        r_acc = rank_accuracy(target["product_info"]["parent_asin"], result)
    else:
        r_acc = 0.0
    return CallScore(task_type, f_acc, r_acc)


def summarize(scores: Iterable[CallScore]) -> dict[str, dict[str, float]]:
    """Mean F. Acc and R. Acc per task type and overall, with counts."""
    groups: dict[str, list[CallScore]] = defaultdict(list)
    for score in scores:
        groups[score.task_type].append(score)
        groups["overall"].append(score)
    return {
        name: {
            "function_acc": sum(s.function_acc for s in items) / len(items),
            "result_acc": sum(s.result_acc for s in items) / len(items),
            "n": len(items),
        }
        for name, items in sorted(groups.items())
    }
