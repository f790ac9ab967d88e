"""A shared prompt prefix, run through the model once and reused.

Every decision and every extraction starts with the same instructions (tool
descriptions, examples); only the request and the answer differ. Computing the
prefix's key/value cache once and copying it per use makes a decision or an extraction
cost the request and answer tokens only, roughly ten times fewer on the default prompt.

The prefix is computed unsteered. A steered call still reuses it exactly: a vector
added at layer L changes nothing below it, so the copy keeps layers 0..L-1 and
`rerun_layers` computes only the layers above again, under the call's steering, starting
from the stored output of the layer below (on the default model, layer 6 of 18: a
third of the prefix's compute is saved).
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from steering.compat import returned_cache
from steering.hooks import hidden_of
from steering.sites import site_map_of

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


@dataclass
class _Entry:
    """One prefix, run once unsteered: its KV cache and each decoder layer's output
    (`tupled`: the layers return tuples, as in transformers 4.x). The outputs take
    layers x tokens x hidden floats (24 MB on the default model's instructions)."""

    cache: Any
    outputs: list[torch.Tensor]
    tupled: bool


class PrefixCache:
    """Unsteered KV caches of recent prefixes (LRU), handed out as private copies."""

    def __init__(self, max_entries: int = 4) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[int, ...], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._previous: list[int] | None = None
        self.hits = 0
        self.misses = 0

    def shared_length(self, rows: Sequence[Sequence[int]], limit: int | None = None) -> int:
        """How much of these rows to take from the cache: the prefix they share with each
        other AND with the previous call's first row.

        Comparing with the previous call is what finds the instructions every request
        shares, even for a batch of one request (or of one request's two answers), whose
        rows alone would share the whole request and pollute the cache. From one prompt
        (alone, or again: a decision's steered pass, then its arguments pass) only a
        stored prefix is taken, never a new one. `limit` caps the length (a sliding
        window); pass prompts without their answers.
        """
        with self._lock:
            previous, self._previous = self._previous, list(rows[0])
        others = [previous + [-1]] if previous is not None else []
        length = shared_prefix_length([*rows, *others], limit)
        if length < MIN_PREFIX:
            return 0
        # A stored prefix inside the shared part is reused as it is: the shared part can
        # run a token into the requests (two requests may start alike) and must not
        # make a new entry each time.
        head = tuple(rows[0][:length])
        with self._lock:
            stored = [len(key) for key in self._entries if len(key) >= MIN_PREFIX and head[: len(key)] == key]
        if stored:
            return max(stored)
        # A new entry only where the prompts differ: one prompt (alone or again) shares
        # all of itself, request included.
        distinct = {tuple(row) for row in rows} | ({tuple(previous)} if previous is not None else set())
        return length if len(distinct) > 1 else 0

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
        private = copy.deepcopy(self._entry(model, prefix).cache)
        if gaps is not None:
            _shift_rows(private, len(prefix), list(gaps))
        elif batch > 1:
            private.batch_repeat_interleave(batch)
        return private

    def rerun_layers(self, model: nn.Module, cache: Any, prefix: Sequence[int], gaps: Sequence[int],
                     start: int) -> None:
        """Recompute layers `start`.. of a copy made by `copy_for(model, prefix, _, gaps)`
        under whatever steering hooks are active now (call it inside `steer`).

        Layers below `start` are not run: each returns the stored unsteered output of
        layer `start - 1`, so a `whole` vector at that layer still fires its hook. Exact
        when no vector acts below `start` (`steering.sites.rerun_from`). The caller holds
        the model's lock: the layers are patched while this runs.
        """
        with self._lock:
            entry = self._entries.get(tuple(prefix))
        if entry is None:
            raise ValueError("rerun_layers needs the prefix's copy from copy_for first")
        sites = site_map_of(model)
        if not 0 <= start <= sites.num_layers:
            raise ValueError(f"start must be in 0..{sites.num_layers}, not {start}")
        if start == sites.num_layers:
            return
        length, gaps = len(prefix), [min(gap, len(prefix)) for gap in gaps]
        device = entry.outputs[0].device
        ids, mask = pack_rows([list(prefix[: length - gap]) for gap in gaps], 0, width=length)
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        below = _shift(entry.outputs[start - 1], gaps, dim=1) if start else None
        with _replaying(sites.layers[:start], (below,) if entry.tupled else below):
            fresh = returned_cache(sites.decoder(input_ids=ids, attention_mask=mask,
                                                 position_ids=positions, use_cache=True))
        for index in range(start, sites.num_layers):
            cache.layers[index].keys = fresh.layers[index].keys
            cache.layers[index].values = fresh.layers[index].values

    def _entry(self, model: nn.Module, prefix: Sequence[int]) -> _Entry:
        """The stored run of `prefix`, computed (unsteered: call it outside `steer`) if new."""
        key = tuple(prefix)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry
        self.misses += 1
        entry = _run_prefix(model, key)
        with self._lock:
            self._entries[key] = entry
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return entry


def _run_prefix(model: nn.Module, prefix: tuple[int, ...]) -> _Entry:
    """One unsteered pass over the prefix through the decoder (no output head: only the
    cache and the layer outputs are kept)."""
    sites = site_map_of(model)
    outputs: list[Any] = [None] * sites.num_layers

    def recorder(index: int):
        def hook(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
            outputs[index] = output

        return hook

    handles = [layer.register_forward_hook(recorder(i)) for i, layer in enumerate(sites.layers)]
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            out = sites.decoder(input_ids=torch.tensor([prefix], device=device), use_cache=True)
    finally:
        for handle in handles:
            handle.remove()
    tupled = isinstance(outputs[0], tuple)
    return _Entry(returned_cache(out), [hidden_of(o) for o in outputs], tupled)


def _shift(states: torch.Tensor, gaps: list[int], dim: int) -> torch.Tensor:
    """A one-row tensor as a left-padded batch: row r moved right along `dim` by gaps[r]
    (zeros in front, its last gaps[r] positions dropped)."""
    length = states.shape[dim]
    rows = []
    for gap in gaps:
        gap = min(gap, length)
        empty = states.new_zeros(*states.shape[:dim], gap, *states.shape[dim + 1:])
        rows.append(torch.cat([empty, states.narrow(dim, 0, length - gap)], dim=dim))
    return torch.cat(rows, dim=0)


@contextmanager
def _replaying(layers: Sequence[nn.Module], output: Any) -> Iterator[None]:
    """Layers that return `output` instead of computing (their hooks still fire)."""
    saved = [layer.__dict__.get("forward") for layer in layers]  # a wrapper someone else set
    for layer in layers:
        layer.forward = lambda *args, **kwargs: output  # an instance attribute, removed below
    try:
        yield
    finally:
        for layer, own in zip(layers, saved):
            del layer.forward
            if own is not None:
                layer.forward = own


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
            setattr(layer, name, _shift(getattr(layer, name), gaps, dim=-2))


def pack_rows(rows: list[list[int]], pad: int | None,
              width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) for a batch of prompts, padded on the left so that
    every row's tokens keep their distances (rows end together, generation continues
    from the same column); `width` defaults to the longest row."""
    width = max(len(row) for row in rows) if width is None else width
    input_ids = torch.full((len(rows), width), 0 if pad is None else pad, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        input_ids[index, width - len(row):] = torch.tensor(row, dtype=torch.long)
        attention[index, width - len(row):] = 1
    return input_ids, attention
