"""Random but reproducible entries, for the benchmark and the tests.

Random unit key embeddings stand in for MiniLM where the embedder is not the point, so
the benchmark times the store and not the sentence model.
"""

from __future__ import annotations

import numpy as np

from memory.entry import MemoryEntry, make_entry_id

TOOLS = ("tool_a", "tool_b", "tool_c")  # any names: the store only keeps them


def unit_rows(rng: np.random.Generator, n: int, dim: int = 384) -> np.ndarray:
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def random_entries(
    users: list[str],
    per_user: int,
    hidden_size: int,
    vector_keys: tuple[str, ...] = ("attn.6", "mlp.6"),
    seed: int = 0,
    start_time: float = 1.7e9,
) -> list[MemoryEntry]:
    """`per_user` entries for each user, with random unit keys and random vectors."""
    rng = np.random.default_rng(seed)
    entries = []
    for user in users:
        keys = unit_rows(rng, per_user)
        for i in range(per_user):
            entries.append(
                MemoryEntry(
                    user_id=user,
                    key=f"request {i} of {user}",
                    vectors={
                        k: rng.standard_normal(hidden_size).astype(np.float32)
                        for k in vector_keys
                    },
                    tool=TOOLS[i % len(TOOLS)],
                    args_digest=f"{i:016x}",
                    timestamp=start_time + 3600.0 * i,
                    source="bootstrap",
                    entry_id=make_entry_id(user, f"synthetic-{seed}-{i}"),
                    key_embedding=keys[i],
                )
            )
    return entries
