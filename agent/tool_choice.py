"""Choosing a tool by its name alone: one prefill, then only the steps a name needs.

Under the call grammar, a forced call always starts with the same text, `{"name":"`,
and the only choice the model makes before the arguments is the tool's name. So the
decision can be read without generating the call: append that forced text to the
prompt, run the prompt once, and let the model write only the name, restricted at
each step to tokens that keep it a prefix of some bound tool's name (greedy, as
generation under the grammar would). A row stops as soon as its name is unique:
`search...` after one token, `get_recommend...` after three. That is what the
decision-only evaluation and decision-position steering need, at the cost of one
forward pass over the prompt instead of a whole generated call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import LogitsProcessor, StoppingCriteria

FORCED_START = '{"name":"'  # what the call grammar admits alone before the name


@dataclass
class NameTable:
    """The vocabulary's tokens that can start or continue a tool name, by text."""

    names: tuple[str, ...]
    tokens: dict[int, str]  # token id -> its text, only tokens that fit in some `name"`

    @classmethod
    def build(cls, tokenizer: Any, names: Sequence[str], vocab_size: int) -> NameTable:
        ends = [f'{name}"' for name in names]
        pieces: dict[int, str] = {}
        for token_id in range(min(vocab_size, len(tokenizer))):
            text = tokenizer.convert_tokens_to_string([tokenizer.convert_ids_to_tokens(token_id)])
            if text and any(text in end for end in ends):
                pieces[token_id] = text
        return cls(tuple(names), pieces)

    def candidates(self, written: str) -> list[str]:
        """Names that `written` (the name text so far) is still a prefix of."""
        return [name for name in self.names if f'{name}"'.startswith(written)]

    def allowed(self, written: str) -> list[int]:
        """Tokens that keep `written` a prefix of some `name"`."""
        ends = [f'{name}"' for name in self.candidates(written)]
        return [t for t, text in self.tokens.items() if any(e.startswith(written + text) for e in ends)]


@dataclass
class NameRows:
    """Per-row state of a name being written; `processor` and `stopper` share it."""

    table: NameTable
    prompt_width: int
    tokenizer: Any
    written: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._allowed: dict[str, torch.Tensor] = {}

    def chosen(self, row: int) -> str | None:
        found = self.table.candidates(self.written[row])
        return found[0] if len(found) == 1 else None

    def update(self, input_ids: torch.LongTensor) -> None:
        self.written = [self.tokenizer.decode(row[self.prompt_width:].tolist(), skip_special_tokens=True)
                        for row in input_ids]

    def mask(self, written: str, vocab: int, device: torch.device) -> torch.Tensor:
        if written not in self._allowed:
            keep = torch.full((vocab,), float("-inf"))
            keep[self.table.allowed(written)] = 0.0
            self._allowed[written] = keep
        return self._allowed[written].to(device)


class NameProcessor(LogitsProcessor):
    """Only tokens that continue some tool's name; finished rows are left alone."""

    def __init__(self, rows: NameRows) -> None:
        self.rows = rows

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.rows.update(input_ids)
        for row, written in enumerate(self.rows.written):
            if self.rows.chosen(row) is None:
                scores[row] = scores[row] + self.rows.mask(written, scores.shape[-1], scores.device)
        return scores


class NameChosen(StoppingCriteria):
    """A row is done once its name is unique among the bound tools."""

    def __init__(self, rows: NameRows) -> None:
        self.rows = rows

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        self.rows.update(input_ids)
        done = [self.rows.chosen(row) is not None for row in range(input_ids.shape[0])]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def deciding_prefix(tokenizer: Any, name: str, names: Sequence[str]) -> str:
    """The start of `name`, in whole tokens, up to the first token that tells it apart
    from every other name: what the model writes while it decides (`search`,
    `get_recommend`). Steering vectors are read on these tokens, not on the whole call,
    whose arguments would otherwise dominate the mean."""
    ids = tokenizer(name, add_special_tokens=False)["input_ids"]
    others = [n for n in names if n != name]
    for count in range(1, len(ids) + 1):
        text = tokenizer.decode(ids[:count])
        if not any(other.startswith(text) for other in others):
            return text
    return name
