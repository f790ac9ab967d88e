"""A shared prompt prefix, run through the model once and reused.

Every decision and every extraction starts with the same instructions (tool
descriptions, examples); only the request and the answer differ. Computing the
prefix's key/value cache once and copying it per use makes a decision or an extraction
cost the request and answer tokens only, roughly ten times fewer on the default prompt.
The prefix is always computed unsteered, so steering acts on the request and the
generated tokens: the part that differs per user.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch

MIN_PREFIX = 8  # below this, reuse is not worth a cache copy


def shared_prefix_length(rows: Sequence[Sequence[int]], limit: int | None = None) -> int:
    """Length of the longest common token prefix, leaving every row at least one token."""
    shortest = min(len(row) for row in rows) - 1
    bound = shortest if limit is None else min(shortest, limit)
    first = rows[0]
    length = 0
    while length < bound and all(row[length] == first[length] for row in rows):
        length += 1
    return length


class PrefixCache:
    """Unsteered KV caches of recent prefixes (LRU), handed out as private copies."""

    def __init__(self, max_entries: int = 4) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._previous: list[int] | None = None
        self.hits = 0
        self.misses = 0

    def shared_length(self, rows: Sequence[Sequence[int]], limit: int | None = None) -> int:
        """How much of these rows to take from the cache: the prefix they share with each
        other AND with the previous call's first row.

        Comparing with the previous call is what finds the instructions every request
        shares, even for a batch of one request (or of one request's two answers), whose
        rows alone would share the whole request and pollute the cache. The first call
        (nothing to compare with) reuses nothing.
        """
        with self._lock:
            previous, self._previous = self._previous, list(rows[0])
        if previous is None:
            return 0
        length = shared_prefix_length([*rows, previous + [-1]], limit)
        if length < MIN_PREFIX:
            return 0
        # A stored prefix inside the shared part is reused as it is: the shared part can
        # run a token into the requests (two requests may start alike) and must not
        # make a new entry each time.
        head = tuple(rows[0][:length])
        with self._lock:
            stored = [len(key) for key in self._entries if len(key) >= MIN_PREFIX and head[: len(key)] == key]
        return max(stored) if stored else length

    def copy_for(self, model: torch.nn.Module, prefix: Sequence[int], batch: int,
                 gaps: Sequence[int] | None = None) -> Any:
        """A cache holding `prefix` for `batch` rows, safe to extend (it is a copy).

        With `gaps` (pads before each row of a left-padded batch), row r's cache starts
        with gaps[r] empty columns and holds the prefix's first len(prefix) - gaps[r]
        tokens: the columns that row occupies in the batch. The rest of each row's prefix
        is then fed again with its request, so every row keeps its tokens' distances
        (which a sliding attention window depends on) exactly as when it runs alone.
        Call it outside any steering context: the prefix must be computed unsteered.
        """
        key = tuple(prefix)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
                self.hits += 1
        if cached is None:
            self.misses += 1
            device = next(model.parameters()).device
            with torch.no_grad():
                out = model(input_ids=torch.tensor([key], device=device), use_cache=True)
            cached = out.past_key_values
            with self._lock:
                self._entries[key] = cached
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        private = copy.deepcopy(cached)
        if gaps is not None:
            _shift_rows(private, len(key), list(gaps))
        elif batch > 1:
            private.batch_repeat_interleave(batch)
        return private


def _shift_rows(cache: Any, length: int, gaps: list[int]) -> None:
    """Turn a one-row cache of `length` tokens into a left-padded one, row r moved right
    by gaps[r] columns (its last gaps[r] tokens dropped: they are fed again)."""
    for layer in cache.layers:
        if layer.keys.shape[-2] != length:
            raise ValueError(
                f"a cache layer holds {layer.keys.shape[-2]} of the prefix's {length} tokens "
                "(a sliding window shorter than the prefix); it cannot be shifted per row"
            )
        for name in ("keys", "values"):
            states = getattr(layer, name)
            rows = []
            for gap in gaps:
                gap = min(gap, length)
                empty = states.new_zeros(*states.shape[:-2], gap, states.shape[-1])
                rows.append(torch.cat([empty, states[..., : length - gap, :]], dim=-2))
            setattr(layer, name, torch.cat(rows, dim=0))
