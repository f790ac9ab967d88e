"""Pieces the experiments share: the default steering method, a side store, swapping
the agent's memory for one experiment and back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.methods import DEFAULT_METHOD

DEFAULT_STEERING = DEFAULT_METHOD
ABLATION_USERS = 6  # ablations run on a subset of users; the report says which


@contextmanager
def side_memory(ctx: Any, path: Path, prompt_memory: Any = None) -> Iterator[Any]:
    """Open a separate store at `path` and make the agent use it (and optionally another
    prompt memory) inside the block; the agent's own memory is back afterwards."""
    from memory import MemoryStore

    agent = ctx.agent
    from agent.runtime import intent_keys

    store = MemoryStore(path, agent.loaded.model_id, agent.loaded.hidden_size, agent.embedder,
                        keys=intent_keys(ctx.dataset))
    saved = (agent.store, agent.prompt_memory)
    agent.store = store
    if prompt_memory is not None:
        agent.prompt_memory = prompt_memory
    try:
        yield store
    finally:
        agent.store, agent.prompt_memory = saved
        store.close()


def fresh_dir(path: Path) -> Path:
    """Remove what an earlier run left at `path` (an experiment's own side store): an
    experiment that starts from little or no memory must not inherit a previous run's."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    return path


def subset(users: list[str], n: int = ABLATION_USERS) -> list[str]:
    return list(users[:n])
