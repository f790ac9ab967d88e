"""Making sure the evaluated users have memory before memory methods run.

The evaluation builds what is missing with the agent's own learner
(`agent.runtime.make_learner`, the same code as `fints memory build` and the agent's
memory node, with the agent's negative policy): entries already present are skipped, so a second run costs nothing. `subsample` cuts each user's past down to a
fraction for the sparse-data experiment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

def memory_layers(methods: Sequence[Any]) -> list[int]:
    """Every layer a steering method among `methods` reads."""
    return sorted({layer for m in methods if m.steers for layer in m.layers})


def ensure_memory(agent: Any, dataset: Any, users: Sequence[str], layers: Sequence[int],
                  store: Any = None, *, max_history: int = 10, progress: bool = True) -> dict:
    """Build the users' dictionaries where entries are missing; returns the build report."""
    from dataclasses import asdict

    from agent.interactions import past_interactions
    from agent.runtime import make_learner

    target = store if store is not None else agent.store
    learner = make_learner(agent.loaded, target, dataset, layers=layers, embedder=agent.embedder,
                           negatives=agent.negatives)
    report = learner.learn_batch(past_interactions(dataset, list(users), max_history), progress=progress)
    return asdict(report)


def subsample(dataset: Any, users: Sequence[str], fraction: float) -> Any:
    """A copy of the data set where each user keeps the latest `fraction` of their
    history and train tasks (at least one item each), everything else unchanged."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    wanted = set(users)

    def keep(items: list) -> list:
        return items[len(items) - max(1, math.ceil(fraction * len(items))):] if items else items

    histories = {u: keep(h) if u in wanted else h for u, h in dataset.histories.items()}
    train_by_user: dict[str, list] = {}
    for task in dataset.train:
        train_by_user.setdefault(task.user_id, []).append(task)
    train = [t for u, ts in train_by_user.items() for t in (keep(ts) if u in wanted else ts)]
    return replace(dataset, histories=histories, train=train)


def interactions_per_user(dataset: Any, users: Sequence[str]) -> float:
    """Mean number of past interactions (history items + train tasks) of the users."""
    counts = {u: len(dataset.histories.get(u, [])) for u in users}
    for task in dataset.train:
        if task.user_id in counts:
            counts[task.user_id] += 1
    return sum(counts.values()) / len(counts) if counts else 0.0
