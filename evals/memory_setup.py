"""Making sure the evaluated users have memory before memory methods run.

The evaluation builds what is missing with the agent's own learner
(`agent.runtime.make_learner`, the same code as `fints memory build` and the agent's
memory node, with the agent's negative policy): entries already present are skipped,
so a second run costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
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
