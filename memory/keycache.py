"""Per-user snapshots of key embeddings, so retrieval is a small exact dot product.

Chroma's filtered vector search (`where={"user_id": u}`) costs 15-35 ms on 10,000
entries, while listing a user's ids costs a few ms and a user's dictionary is small
(hundreds of keys). So retrieval lists the user's ids (the same `where` filter: only
that user's records can come back), reloads the user's keys only when that id set
changed, and ranks them exactly in numpy. Every write path changes the id set (adds,
evictions, deletions; supersession only happens with an add), so a snapshot whose
ids still match the store is current, also when another process wrote.

Within `ttl_s` of the last check a snapshot is used without listing ids again. This
process's own writes drop the snapshot at once; another process's writes are seen at
most `ttl_s` later. That staleness cannot leak or resurrect anything: the snapshot is
one user's own records, and an entry deleted meanwhile has no vectors left to fetch,
so retrieval skips it.
"""

from __future__ import annotations

import threading
import time
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

    def live(self, user_id: str) -> list[int]:
        """Indices of the live (not superseded) records of `user_id`."""
        return [
            i for i, meta in enumerate(self.metas)
            if not meta["superseded_by"] and meta["user_id"] == user_id
        ]


class KeyCache:
    """An LRU of `UserKeys`, revalidated against the user's current id set on each use."""

    def __init__(self, capacity: int = 256, ttl_s: float = 1.0) -> None:
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._items: OrderedDict[str, tuple[UserKeys, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self,
        user_id: str,
        list_ids: Callable[[], list[str]],
        load: Callable[[], UserKeys],
    ) -> UserKeys:
        """The user's snapshot: reused within ttl, else revalidated by ids, else loaded."""
        with self._lock:
            cached, checked = self._items.get(user_id, (None, 0.0))
        now = time.monotonic()
        if cached is not None and now - checked < self.ttl_s:
            return cached
        if cached is None or set(cached.ids) != set(list_ids()):
            cached = load()
        with self._lock:
            self._items[user_id] = (cached, now)
            self._items.move_to_end(user_id)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return cached

    def drop(self, user_id: str) -> None:
        with self._lock:
            self._items.pop(user_id, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
