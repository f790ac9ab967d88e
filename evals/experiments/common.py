"""Pieces the experiments share: the default steering method and a side store that an
experiment learns into and decides from, passed explicitly."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.methods import DEFAULT_METHOD

DEFAULT_STEERING = DEFAULT_METHOD


@dataclass(frozen=True)
class SideMemory:
    """An experiment's own store, with the learner that writes it and the decision path
    that reads it; the agent's own memory is never touched."""

    store: Any
    learner: Any
    decider: Any


@contextmanager
def side_memory(ctx: Any, path: Path, prompt_memory: Any = None,
                layers: Sequence[int] | None = None) -> Iterator[SideMemory]:
    """A separate store at `path`, learnt at `layers` (the default method's when None)
    with the agent's negative policy;
    decide with `.decider` (it reads this store and `prompt_memory`, else the agent's)."""
    from dataclasses import replace

    from agent.runtime import intent_keys, make_learner
    from memory import MemoryStore

    agent = ctx.agent
    store = MemoryStore(path, agent.loaded.model_id, agent.loaded.hidden_size, agent.embedder,
                        keys=intent_keys(ctx.dataset))
    try:
        learner = make_learner(agent.loaded, store, ctx.dataset,
                               layers=layers or ctx.method(DEFAULT_STEERING).layers,
                               embedder=agent.embedder, negatives=agent.negatives)
        decider = replace(agent.decider, learner=learner,
                          prompt_memory=prompt_memory if prompt_memory is not None else agent.prompt_memory)
        yield SideMemory(store, learner, decider)
    finally:
        store.close()


def fresh_dir(path: Path) -> Path:
    """Remove what an earlier run left at `path` (an experiment's own side store): an
    experiment that starts from little or no memory must not inherit a previous run's."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    return path
