"""Adding steering vectors inside the forward pass, per request and per batch row.

Steering is a context manager over forward hooks, never state left on the shared
model: leaving the context restores the exact unsteered model. Each batch row can carry
its own vector (or none), so requests of different users run in one batched
`generate`. Positions are absolute (prompt vs generated tokens are told apart by the
cache length), so steering of generated tokens keeps working with the KV cache on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from steering.hooks import hidden_of, hooked, replace_hidden
from steering.model import LoadedModel, residual_dtype
from steering.sites import SiteKey, SiteMap, site_map_of
from steering.vectors import SteeringVector, VectorError

Positions = Literal["all", "prompt", "generated"]
POSITION_CHOICES: tuple[str, ...] = ("all", "prompt", "generated")


class SteeringNotAppliedError(RuntimeError):
    """A non-zero vector was given but never changed an activation."""


@dataclass
class SteeringRun:
    """What happened inside one steering context (read it after the block)."""

    positions: str
    batch_size: int | None
    prompt_length: int | None = None
    forward_calls: int = 0
    fired: dict[str, int] = field(default_factory=dict)
    moved: dict[str, int] = field(default_factory=dict)
    # Set by a caller that runs the forward passes itself (agent.chat_model's decoder):
    # (rows, tokens) of the next pass, True where the vectors are added; it replaces
    # `positions` while set, so steering can stop per row in the middle of a generation.
    where: torch.Tensor | None = None
    # Set by such a caller when it drops rows that have finished from its batch: the
    # original rows the batch still holds, in order (each keeps its own vector).
    rows: torch.Tensor | None = None
    _current: torch.Tensor | None = None  # absolute positions of the running forward


@contextmanager
def steer(
    model: LoadedModel | nn.Module,
    vectors: SteeringVector | Sequence[SteeringVector | None] | None,
    *,
    positions: Positions = "all",
    prompt_length: int | None = None,
    check: bool = True,
) -> Iterator[SteeringRun]:
    """Add `vectors` to the site activations of every forward pass inside the block.

    `vectors` is one vector for every row, or one per batch row (None = that row is
    unsteered), or None (nothing is added; the block runs unsteered). The tensors are
    added as given: scale and aggregate them first. Positions below `prompt_length`
    are the prompt; left as None it is the length of the first forward call (the
    prefill of `generate`). With `check`, a non-zero vector that
    never changed an activation raises `SteeringNotAppliedError` on exit.
    """
    if positions not in POSITION_CHOICES:
        raise ValueError(f"positions must be one of {POSITION_CHOICES}, not {positions!r}")
    sites = site_map_of(model)
    module = model.model if isinstance(model, LoadedModel) else model
    param = next(module.parameters())
    rows = _as_rows(vectors)
    run = SteeringRun(
        positions=positions,
        batch_size=None if rows is None else len(rows),
        prompt_length=prompt_length,
    )
    deltas = _deltas(rows, sites, param.device, residual_dtype(module)) if rows else {}
    rows_count = len(rows) if rows else 0
    if not deltas:
        yield run
        return

    def track_positions(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        tokens = kwargs.get("input_ids")
        if tokens is None:
            tokens = kwargs.get("inputs_embeds")
        if tokens is None and args:
            tokens = args[0]
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        past = int(cache.get_seq_length()) if cache is not None and hasattr(cache, "get_seq_length") else 0
        length = tokens.shape[1]
        expected = rows_count if run.rows is None else len(run.rows)
        if rows_count > 1 and tokens.shape[0] != expected:
            raise VectorError(
                f"{expected} per-row vectors given but the batch has {tokens.shape[0]} rows"
            )
        if run.prompt_length is None:
            run.prompt_length = past + length
        run.forward_calls += 1
        run._current = torch.arange(past, past + length, device=param.device)

    def make_hook(key: str, delta: torch.Tensor):
        nonzero = bool(delta.abs().sum() > 0)

        def hook(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> Any:
            hidden = hidden_of(output)
            rows_now = delta if run.rows is None or len(delta) == 1 else delta[run.rows]  # one vector: every row
            add = rows_now[:, None, :]
            if run.where is not None:
                if not bool(run.where.any()):
                    return None
                add = add * run.where[:, :, None].to(hidden.dtype)
            elif positions != "all":
                assert run._current is not None and run.prompt_length is not None
                in_prompt = run._current < run.prompt_length
                keep = in_prompt if positions == "prompt" else ~in_prompt
                if not bool(keep.any()):
                    return None
                add = add * keep[None, :, None].to(hidden.dtype)
            steered = hidden + add
            run.fired[key] = run.fired.get(key, 0) + 1
            if nonzero and not torch.equal(steered, hidden):
                run.moved[key] = run.moved.get(key, 0) + 1
            return replace_hidden(output, steered)

        return hook

    forward_hooks = [(sites.module(SiteKey.parse(k)), make_hook(k, d)) for k, d in deltas.items()]
    with _model_lock(model), hooked(forward_hooks, [(sites.decoder, track_positions)]):
        yield run
    if check and run.forward_calls:
        _check_live(run, deltas)


@contextmanager
def _model_lock(model: LoadedModel | nn.Module) -> Iterator[None]:
    """Hold the model's lock (LoadedModel only) so no other thread runs under our hooks."""
    if isinstance(model, LoadedModel):
        with model.lock:
            yield
    else:
        yield


def _as_rows(
    vectors: SteeringVector | Sequence[SteeringVector | None] | None,
) -> list[SteeringVector | None] | None:
    if vectors is None:
        return None
    if isinstance(vectors, SteeringVector):
        return [vectors]
    rows = list(vectors)
    return rows if any(row is not None for row in rows) else None


def _deltas(
    rows: list[SteeringVector | None], sites: SiteMap, device: torch.device, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """One (rows, hidden) tensor per site key; rows without that key add zeros."""
    keys = sorted({key for row in rows if row is not None for key in row.tensors})
    hidden = next(row.hidden_size for row in rows if row is not None)
    deltas: dict[str, torch.Tensor] = {}
    for key in keys:
        sites.module(SiteKey.parse(key))  # validates the layer range up front
        stacked = torch.zeros(len(rows), hidden, device=device, dtype=dtype)
        for index, row in enumerate(rows):
            if row is None:
                continue
            if row.hidden_size != hidden:
                raise VectorError("per-row vectors disagree on the hidden size")
            if key in row.tensors:
                stacked[index] = row.tensors[key].to(device=device, dtype=dtype)
        deltas[key] = stacked
    return deltas


def _check_live(run: SteeringRun, deltas: dict[str, torch.Tensor]) -> None:
    silent = [key for key, delta in deltas.items() if delta.abs().sum() > 0 and not run.moved.get(key)]
    if silent and not (run.positions == "generated" and run.forward_calls == 1):
        raise SteeringNotAppliedError(
            f"steering at {silent} never changed an activation in {run.forward_calls} forward "
            f"call(s) (positions={run.positions!r}, hooks fired: {run.fired}); the vector did "
            "not reach the model"
        )
