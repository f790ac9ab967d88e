"""What a shop data set says each user accepted: the interactions a bulk build learns
from. It lives in the agent, which knows both the shop's data and tools (tools.registry)
and the learner's `Interaction` (memory does not know the shop).

For each user: every train task (its gold call) and the latest `max_history` history
items (their own request and call, or for an item without one the review they wrote).
`Learner.learn_batch` turns them into entries; the negative policy is the learner's.
Entry ids are a hash of user + task id or history item, so an interrupted build resumes
where it stopped and a second build adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memory.entry import make_entry_id
from memory.learner import Interaction
from tools.data.records import derived_gold_call
from tools.registry import REVIEW, TOOL_FOR_TYPE


def gold_call(task: Any, histories: dict) -> tuple[str, dict]:
    """The task's gold call, else the one its type implies (`derived_gold_call`); a
    search with no recorded query learns from the product's title (what finds it), a
    recommendation with no earlier purchase from the signed-in user's history."""
    call = task.gold_call or derived_gold_call(task, histories.get(task.user_id, []))
    if call is not None:
        return call.name, dict(call.arguments)
    if task.type == "search":
        return TOOL_FOR_TYPE["search"], {"query": task.target.product_info.title}
    return TOOL_FOR_TYPE[task.type], {}


def past_interactions(dataset: Any, users: Sequence[str] | None = None,
                      max_history: int | None = None) -> list[Interaction]:
    """The users' (all users' when None) train tasks and latest `max_history` history
    items (all with None, none with 0), oldest data first."""
    wanted = set(users) if users else set(dataset.user_ids())
    found: list[Interaction] = []
    for task in dataset.train:
        if task.user_id in wanted:
            tool, arguments = gold_call(task, dataset.histories)
            found.append(Interaction(task.user_id, task.task, tool, arguments, float(task.timestamp),
                                     make_entry_id(task.user_id, f"task:{task.task_id}"), task.type))
    for user, items in sorted(dataset.histories.items()):
        if user not in wanted or max_history == 0:
            continue
        first_used = 0 if max_history is None else max(len(items) - max_history, 0)
        for item in items[first_used:]:
            request, kind, tool, arguments = _history_call(item)
            ref = f"history:{item.product_info.parent_asin}:{item.review.timestamp}"
            found.append(Interaction(user, request, tool, arguments, float(item.review.timestamp),
                                     make_entry_id(user, ref), kind))
    return found


def _history_call(item: Any) -> tuple[str, str, str, dict]:
    """(request, type, tool, arguments) of a history item: its own request when the data
    set records one, else the review the user wrote."""
    request = getattr(item, "request", None)
    if request is not None and request.gold_call is not None:
        return request.task, request.type, request.gold_call.name, dict(request.gold_call.arguments)
    product = item.product_info
    return (f"Write a review of the {product.title} I bought.", "review", REVIEW,
            {"review": item.review.text})
