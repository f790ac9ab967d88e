"""Bulk building of every user's dictionary from their past interactions.

For each past interaction: positive = the call the user accepted (a train task's gold
call, or for a history item the review they wrote), negative = the call made for the
same kind of request in another user's context (the gold call of a random other user's
task of the same type; another user's review). The steering core turns each
(prompt, positive, negative) into vectors; the extractor is passed in as a callable,
so tests use a tiny deterministic fake and the CLI passes `steering.extract_vectors`.

Entry ids are a hash of user + task id, so an interrupted build resumes where it
stopped (present entries are skipped before any extraction) and a second build adds
nothing.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from memory.entry import MemoryEntry, digest_arguments, make_entry_id
from memory.store import MemoryStore

HISTORY_LIMIT = 30  # PersonalWAB's cap on a recommendation's product sequence


class Pair(NamedTuple):
    """Teacher-forced texts for one contrast (same fields as steering.ContrastPair)."""

    prompt: str
    positive: str
    negative: str


Extractor = Callable[[list[Pair]], list[dict[str, Any]]]


def format_call(request: str, tool_name: str, arguments: dict) -> tuple[str, str]:
    """(prompt, answer) for a tool call; a stand-in until the agent's own format lands."""
    prompt = f"User request: {request}\nCall: "
    answer = json.dumps(
        {"name": tool_name, "arguments": arguments}, separators=(",", ":"), ensure_ascii=False
    )
    return prompt, answer


@dataclass(frozen=True)
class PastInteraction:
    """One past interaction and its contrast, ready for extraction."""

    entry_id: str
    user_id: str
    request: str
    tool: str
    arguments: dict
    negative_tool: str
    negative_arguments: dict
    timestamp: float

    def pair(self) -> Pair:
        prompt, positive = format_call(self.request, self.tool, self.arguments)
        _, negative = format_call(self.request, self.negative_tool, self.negative_arguments)
        return Pair(prompt, positive, negative)


@dataclass
class BuildReport:
    interactions: int = 0
    already_present: int = 0
    added: int = 0
    superseded: int = 0


def gold_call(task, histories: dict) -> tuple[str, dict]:
    """The task's gold call, or one derived from its target as PersonalWAB grades it."""
    if task.gold_call is not None:
        return task.gold_call.name, dict(task.gold_call.arguments)
    product = task.target.product_info
    if task.type == "search":
        return "search_product_by_query", {"query": product.title}
    if task.type == "recommend":
        before = [
            i.product_info.parent_asin
            for i in histories.get(task.user_id, [])
            if i.review.timestamp <= task.timestamp
        ]
        return "get_recommendations_by_history", {"product_sequence": before[-HISTORY_LIMIT:]}
    return "add_product_review", {"review": task.target.review.text}


def past_interactions(
    dataset, users: Sequence[str] | None = None, max_history: int = 10, seed: int = 0
) -> list[PastInteraction]:
    """Train tasks (gold calls) and each user's latest `max_history` reviews, with negatives."""
    wanted = set(users) if users else set(dataset.user_ids())
    calls: dict[str, list[tuple[str, str, dict]]] = {}  # task type -> (user, tool, args)
    for task in dataset.train:
        calls.setdefault(task.type, []).append((task.user_id, *gold_call(task, dataset.histories)))
    reviews = [
        (user, "add_product_review", {"review": item.review.text})
        for user, items in dataset.histories.items()
        for item in items
    ]
    result = []
    for task in dataset.train:
        if task.user_id in wanted:
            tool, arguments = gold_call(task, dataset.histories)
            entry_id = make_entry_id(task.user_id, f"task:{task.task_id}")
            negative = _other_users_call(calls.get(task.type, []), task.user_id, entry_id, seed)
            if negative is None:
                continue
            result.append(PastInteraction(entry_id, task.user_id, task.task, tool, arguments,
                                          *negative, float(task.timestamp)))
    for user in sorted(wanted):
        for item in dataset.histories.get(user, [])[-max_history:] if max_history else []:
            product = item.product_info
            entry_id = make_entry_id(user, f"history:{product.parent_asin}:{item.review.timestamp}")
            negative = _other_users_call(reviews, user, entry_id, seed)
            if negative is None:
                continue
            result.append(PastInteraction(
                entry_id, user, f"Write a review of the {product.title} I bought.",
                "add_product_review", {"review": item.review.text}, *negative,
                float(item.review.timestamp),
            ))
    return result


def _other_users_call(
    calls: list[tuple[str, str, dict]], user: str, entry_id: str, seed: int
) -> tuple[str, dict] | None:
    """A deterministic random pick among other users' calls (None if there is none)."""
    others = [(tool, args) for owner, tool, args in calls if owner != user]
    if not others:
        return None
    return random.Random(f"{seed}:{entry_id}").choice(others)


def build_memory(
    store: MemoryStore,
    interactions: list[PastInteraction],
    extract: Extractor,
    *,
    batch_size: int = 8,
    source: str = "bootstrap",
    progress: bool = True,
) -> BuildReport:
    """Extract and store vectors for every interaction not yet in the store."""
    from tqdm import tqdm

    report = BuildReport(interactions=len(interactions))
    present = store.existing_ids([i.entry_id for i in interactions])
    pending = [i for i in interactions if i.entry_id not in present]
    report.already_present = len(interactions) - len(pending)
    with tqdm(total=len(pending), desc="memory build", unit="entry", disable=not progress) as bar:
        for start in range(0, len(pending), batch_size):
            batch = pending[start : start + batch_size]
            vectors = extract([item.pair() for item in batch])
            if len(vectors) != len(batch):
                raise ValueError(f"extractor returned {len(vectors)} results for {len(batch)} pairs")
            added = store.add(entry_for(item, v, source) for item, v in zip(batch, vectors))
            report.added += added.added
            report.superseded += added.superseded
            bar.update(len(batch))
    return report


def entry_for(item: PastInteraction, vectors: dict[str, Any], source: str) -> MemoryEntry:
    return MemoryEntry(
        user_id=item.user_id,
        key=item.request,
        vectors=vectors,
        tool=item.tool,
        args_digest=digest_arguments(item.arguments),
        timestamp=item.timestamp,
        source=source,
        entry_id=item.entry_id,
    )


def steering_extractor(loaded_model, sites: Sequence[str], layers: Sequence[int]) -> Extractor:
    """Wrap `steering.extract_vectors` (the steering core) as an Extractor."""
    import steering

    def extract(pairs: list[Pair]) -> list[dict[str, Any]]:
        contrast = [steering.ContrastPair(p.prompt, p.positive, p.negative) for p in pairs]
        return steering.extract_vectors(loaded_model, contrast, list(sites), list(layers))

    return extract
