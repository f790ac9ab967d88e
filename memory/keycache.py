"""Per-user snapshots of key embeddings, so retrieval is a small exact dot product.

Chroma's filtered vector search (`where={"user_id": u}`) costs 15-35 ms on 10,000
entries, while listing a user's ids costs a few ms and a user's dictionary is small
(hundreds of keys). So retrieval lists the user's ids (the same `where` filter: only
that user's records can come back), reloads the user's keys only when that id set
changed, and ranks them exactly in numpy. Every write path changes the id set (adds,
evictions, deletions; supersession only happens with an add), so a snapshot whose
ids still match the store is current, also when another process wrote.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UserKeys:
    """One user's key records: ids, unit embeddings (n, 384), metadata, request texts."""

    ids: tuple[str, ...]
    matrix: np.ndarray
    metas: tuple[dict, ...]
    docs: tuple[str, ...]

    def top_live(self, user_id: str, query: np.ndarray, k: int) -> list[int]:
        """Indices of the k most similar live (not superseded) records of `user_id`."""
        live = [
            i for i, meta in enumerate(self.metas)
            if not meta["superseded_by"] and meta["user_id"] == user_id
        ]
        if not live:
            return []
        sims = self.matrix[live] @ query
        order = np.argsort(-sims, kind="stable")[:k]
        return [live[i] for i in order]


class KeyCache:
    """An LRU of `UserKeys`, revalidated against the user's current id set on each use."""

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, UserKeys] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, user_id: str, current_ids: list[str], load: Callable[[], UserKeys]) -> UserKeys:
        with self._lock:
            cached = self._items.get(user_id)
        if cached is not None and set(cached.ids) == set(current_ids):
            with self._lock:
                self._items.move_to_end(user_id)
            return cached
        fresh = load()
        with self._lock:
            self._items[user_id] = fresh
            self._items.move_to_end(user_id)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return fresh

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
