"""One memory entry (a user's past interaction and its steering vectors) and its checks.

Everything that reaches the store goes through `validate_entry` first, so bad input
(wrong shape, NaN, an unknown site, an empty key) is refused before a single byte is
written: the store never holds half an entry because of a caller's mistake.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np

from steering.checks import VectorError, check_vector
from steering.sites import SiteError, SiteKey

SOURCES = ("bootstrap", "online")


class MemoryInputError(ValueError):
    """The caller handed the store something it must not hold; nothing was stored."""


@dataclass(frozen=True)
class MemoryEntry:
    """A steering-memory entry.

    `vectors` maps "site.layer" (e.g. "attn.6") to a float32 array of shape
    (hidden_size,). `timestamp` is the interaction's time in epoch seconds.
    `key_embedding` is filled by the store from `key` when not given.
    """

    user_id: str
    key: str
    vectors: dict[str, np.ndarray]
    tool: str
    args_digest: str
    timestamp: float
    source: str
    entry_id: str
    key_embedding: np.ndarray | None = field(default=None, repr=False)
    superseded_by: str = ""
    negative: str = ""  # the negative policy the vectors were made with (memory.learner)

    def with_embedding(self, embedding: np.ndarray) -> MemoryEntry:
        return replace(self, key_embedding=embedding)


def make_entry_id(user_id: str, ref: str) -> str:
    """Deterministic id from the user and a reference (task id, or request + time).

    Deterministic ids make the bulk build resumable and idempotent: an entry already in
    the store has the same id the second time round and is skipped.
    """
    digest = hashlib.sha256(f"{user_id}\x00{ref}".encode()).hexdigest()
    return f"m{digest[:31]}"


def digest_arguments(arguments: dict[str, Any]) -> str:
    """A short stable digest of a tool call's arguments (key order does not matter)."""
    text = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def to_epoch(timestamp: float | int | str | datetime | None) -> float:
    """Accept epoch seconds (or milliseconds), an ISO string or a datetime; None = now."""
    if timestamp is None:
        return time.time()
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None:
            timestamp = timestamp.replace(tzinfo=timezone.utc)
        return timestamp.timestamp()
    if isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool):
        value = float(timestamp)
        return value / 1000.0 if value > 1e11 else value  # PersonalWAB uses milliseconds
    if isinstance(timestamp, str):
        text = timestamp.strip()
        try:
            return to_epoch(float(text))
        except ValueError:
            pass
        try:
            return to_epoch(datetime.fromisoformat(text.replace("Z", "+00:00")))
        except ValueError:
            pass
    raise MemoryInputError(
        f"timestamp {timestamp!r} is not a time: give epoch seconds, an ISO 8601 string "
        "or a datetime"
    )


def check_vector_key(key: str) -> tuple[str, int]:
    """Split "site.layer" (`steering.sites.SiteKey.parse`); refuse anything else (e.g.
    "attn+mlp", which is never stored) as a MemoryInputError."""
    try:
        parsed = SiteKey.parse(key)
    except SiteError as error:
        raise MemoryInputError(str(error)) from None
    return parsed.site, parsed.layer


def as_vector(name: str, value: Any, hidden_size: int) -> np.ndarray:
    """Convert a numpy array or torch tensor to a finite float32 vector of hidden_size."""
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().to("cpu").float().numpy()
    array = np.asarray(value, dtype=np.float32)
    try:
        check_vector(name, array, hidden_size)  # the steering core's one check
    except VectorError as error:
        raise MemoryInputError(f"{error} (this store holds the steering model's hidden size)") from None
    return array


def validate_entry(entry: MemoryEntry, hidden_size: int, embedding_dim: int) -> MemoryEntry:
    """Return the entry with normalised vectors, or raise MemoryInputError saying why not."""
    if not isinstance(entry.user_id, str) or not entry.user_id.strip():
        raise MemoryInputError("user_id is empty; every entry belongs to exactly one user")
    if not isinstance(entry.key, str) or not entry.key.strip():
        raise MemoryInputError("key (the request text) is empty; retrieval needs a request")
    if entry.source not in SOURCES:
        raise MemoryInputError(f"source {entry.source!r} is not one of {SOURCES}")
    if not entry.tool:
        raise MemoryInputError("tool is empty; give the name of the accepted tool call")
    if not entry.vectors:
        raise MemoryInputError("the entry has no vectors; give at least one 'site.layer'")
    vectors = {}
    for key, value in entry.vectors.items():
        vectors[key] = as_vector(key, value, hidden_size)
    embedding = entry.key_embedding
    if embedding is not None:
        embedding = np.asarray(embedding, dtype=np.float32).reshape(-1)
        if embedding.shape != (embedding_dim,) or not np.all(np.isfinite(embedding)):
            raise MemoryInputError(
                f"key embedding must be {embedding_dim} finite numbers, got shape "
                f"{tuple(embedding.shape)}"
            )
        norm = float(np.linalg.norm(embedding))
        if norm == 0.0:
            raise MemoryInputError("key embedding is all zeros")
        embedding = embedding / norm
    return replace(
        entry, vectors=vectors, key_embedding=embedding, timestamp=to_epoch(entry.timestamp)
    )
