"""Bulk building of every user's dictionary from their past interactions.

For each past interaction: positive = the call the user accepted (a train task's gold
call, a history item's request and call, or for a history item without one the review
they wrote); negatives by a named policy, recorded in each entry's metadata:

- `other-tools` (the default): the same request answered with each of the other tools;
  the vector is the mean of the differences, so it points from every other choice to
  the one this user made. Measured on the bundled model with the agent's decision
  format (docs/results.md), it is what makes the steered model pick the user's tool.
- `nearest-other-user`: the call of the most similar request of another user (MiniLM),
  or without an embedder a random other user's call of the same type.

The steering core turns each (prompt, positive, negative) into vectors; the extractor
and the prompt formatter are passed in as callables, so tests use tiny fakes and the
CLI passes `steering.extract_vectors` and the agent's own prompt format.

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
NEGATIVE_POLICIES = ("other-tools", "nearest-other-user")
DEFAULT_NEGATIVES = "other-tools"


class Pair(NamedTuple):
    """Teacher-forced texts for one contrast (same fields as steering.ContrastPair)."""

    prompt: str
    positive: str
    negative: str


Extractor = Callable[[list[Pair]], list[dict[str, Any]]]
Formatter = Callable[[str, str, dict], tuple[str, str]]


def format_call(request: str, tool_name: str, arguments: dict) -> tuple[str, str]:
    """(prompt, answer) in a minimal plain format; the agent passes its own formatter
    (`agent.runtime.call_formatter`) so vectors come from the prompt it decides in."""
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
    negatives: tuple[tuple[str, dict], ...]  # (tool, arguments) of each contrasting call
    timestamp: float
    policy: str = DEFAULT_NEGATIVES

    def pairs(self, formatter: Formatter = format_call) -> list[Pair]:
        prompt, positive = formatter(self.request, self.tool, self.arguments)
        return [Pair(prompt, positive, formatter(self.request, tool, args)[1])
                for tool, args in self.negatives]


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
    dataset,
    users: Sequence[str] | None = None,
    max_history: int | None = 10,
    seed: int = 0,
    embedder=None,
    *,
    negatives: str = DEFAULT_NEGATIVES,
    tools: Sequence[str] = (),
) -> list[PastInteraction]:
    """Each user's train tasks and latest `max_history` history items (all with None),
    with negatives by the policy `negatives` (see the module doc; `other-tools` needs
    the tool names the agent chooses among, `tools`).

    For `nearest-other-user`, negatives come from every user's past (the whole data
    set), positives only from `users`; with an `embedder`, the call of the most similar
    request of another user, without one a random other user's call of the same type.
    """
    if negatives not in NEGATIVE_POLICIES:
        raise ValueError(f"unknown negative policy {negatives!r}; allowed: {', '.join(NEGATIVE_POLICIES)}")
    if negatives == "other-tools" and len(tools) < 2:
        raise ValueError("the other-tools negative policy needs the names of at least two tools")
    wanted = set(users) if users else set(dataset.user_ids())
    pool: list[tuple[str, str, str, str, dict]] = []  # (user, type, request, tool, args)
    positives: list[tuple[str, str, str, str, str, dict, float]] = []  # + entry id, time
    for task in dataset.train:
        tool, arguments = gold_call(task, dataset.histories)
        pool.append((task.user_id, task.type, task.task, tool, arguments))
        if task.user_id in wanted:
            positives.append((make_entry_id(task.user_id, f"task:{task.task_id}"), task.user_id,
                              task.type, task.task, tool, arguments, float(task.timestamp)))
    for user, items in sorted(dataset.histories.items()):
        first_used = 0 if max_history is None else max(len(items) - max_history, 0)
        for position, item in enumerate(items):
            request, kind, tool, arguments = _history_call(item)
            pool.append((user, kind, request, tool, arguments))
            if user in wanted and position >= first_used and max_history != 0:
                ref = f"history:{item.product_info.parent_asin}:{item.review.timestamp}"
                positives.append((make_entry_id(user, ref), user, kind, request, tool,
                                  arguments, float(item.review.timestamp)))
    if negatives == "other-tools":
        return [PastInteraction(entry_id, user, request, tool, arguments,
                                tuple((other, {}) for other in tools if other != tool), when, negatives)
                for entry_id, user, _kind, request, tool, arguments, when in positives]
    nearest = _nearest_other(pool, positives, embedder) if embedder is not None else None
    result = []
    for index, (entry_id, user, kind, request, tool, arguments, when) in enumerate(positives):
        if nearest is not None:
            negative = nearest[index]
        else:
            same_type = [(owner, t, a) for owner, k, _, t, a in pool if k == kind]
            negative = _other_users_call(same_type, user, entry_id, seed)
        if negative is None:
            continue
        result.append(PastInteraction(entry_id, user, request, tool, arguments, (negative,), when,
                                      negatives))
    return result


def _history_call(item) -> tuple[str, str, str, dict]:
    """(request, type, tool, arguments) of a history item: its own request when the data
    set records one, else the review the user wrote."""
    request = getattr(item, "request", None)
    if request is not None and request.gold_call is not None:
        return request.task, request.type, request.gold_call.name, dict(request.gold_call.arguments)
    product = item.product_info
    return (f"Write a review of the {product.title} I bought.", "review", "add_product_review",
            {"review": item.review.text})


def _nearest_other(pool, positives, embedder) -> list[tuple[str, dict] | None]:
    """For each positive, the call of the most similar request made by another user."""
    import numpy as np

    pool_vectors = embedder.embed([request for _, _, request, _, _ in pool])
    owners = np.array([owner for owner, *_ in pool])
    wanted = embedder.embed([request for _, _, _, request, _, _, _ in positives])
    out: list[tuple[str, dict] | None] = []
    for row, (_, user, *_rest) in enumerate(positives):
        scores = pool_vectors @ wanted[row]
        scores[owners == user] = -np.inf
        best = int(np.argmax(scores))
        out.append(None if not np.isfinite(scores[best]) else (pool[best][3], pool[best][4]))
    return out


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
    formatter: Formatter = format_call,
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
            per_item = [item.pairs(formatter) for item in batch]
            flat = [pair for pairs in per_item for pair in pairs]
            vectors = extract(flat)
            if len(vectors) != len(flat):
                raise ValueError(f"extractor returned {len(vectors)} results for {len(flat)} pairs")
            added = store.add(entry_for(item, mean_vectors(vectors[at : at + len(pairs)]), source)
                              for item, pairs, at in zip(batch, per_item, _offsets(per_item)))
            report.added += added.added
            report.superseded += added.superseded
            bar.update(len(batch))
    return report


def _offsets(groups: list[list[Pair]]) -> list[int]:
    starts, at = [], 0
    for group in groups:
        starts.append(at)
        at += len(group)
    return starts


def mean_vectors(vectors: list[dict[str, Any]]) -> dict[str, Any]:
    """The per-key mean of several contrasts' vectors (one contrast: itself)."""
    if len(vectors) == 1:
        return vectors[0]
    return {key: sum(v[key] for v in vectors) / len(vectors) for key in vectors[0]}


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
        negative=item.policy,
    )


def steering_extractor(loaded_model, sites: Sequence[str], layers: Sequence[int]) -> Extractor:
    """Wrap `steering.extract_vectors` (the steering core) as an Extractor."""
    import steering

    def extract(pairs: list[Pair]) -> list[dict[str, Any]]:
        contrast = [steering.ContrastPair(p.prompt, p.positive, p.negative) for p in pairs]
        return steering.extract_vectors(loaded_model, contrast, list(sites), list(layers))

    return extract
