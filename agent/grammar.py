"""Grammar-constrained decoding of tool calls with xgrammar.

A call is one compact JSON object `{"name": <a bound tool>, "arguments": <its
parameters>}`; the grammar is built from the bound tools' JSON schemas, so a call that
names an unknown tool or breaks its schema cannot be generated. Arrays without a bound
get one (`maxItems`); strings get one only when asked (`max_string_length`), because
xgrammar checks a repetition bound above 128 at run time: a `{0,300}` string cost
~0.17 s per row and decoding step on Gemma's 262k-token vocabulary, against 0.2 ms
unbounded, and made up most of a call's decoding time. A runaway string is still
stopped by the token budget (the call is then flagged unfinished), or earlier by the
loop guard below. Compiling costs milliseconds to seconds, so grammars are compiled
once per (tool set, mode) and cached on the model's `GrammarCache`; per request only a
`GrammarMatcher` per batch row is made.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import xgrammar as xgr
from transformers import LogitsProcessor, StoppingCriteria

CALL_SEPARATORS = (",", ":")
# Free text in "auto" mode: anything that does not open a call, up to the end of the line
# (base template) or the end of the turn (chat template, ended by the stop token).
TEXT_LINE_EBNF = 'root ::= [^{\\n] [^\\n]* "\\n"'
TEXT_TURN_EBNF = 'root ::= [^{] [^\\x00]*'
# The loop guard: a free string whose last tokens are LOOP_REPEATS copies of one block of
# at most LOOP_PERIOD tokens is closed.
LOOP_REPEATS = 3
LOOP_PERIOD = 8


def bounded_schema(
    schema: dict[str, Any], max_string_length: int | None, max_array_items: int
) -> dict[str, Any]:
    """A copy of `schema` for the grammar: every free string gets a pattern of plain
    characters (bounded by its maxLength or `max_string_length`, if any), every array a
    maxItems (calls are validated against the original)."""
    bounded = copy.deepcopy(schema)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            kinds = node.get("type")
            kinds = kinds if isinstance(kinds, list) else [kinds]
            if "string" in kinds and not {"enum", "const", "pattern", "format"} & node.keys():
                # A pattern, not maxLength: xgrammar's maxLength rule lets control characters
                # through (invalid JSON). No quotes or backslashes, so no escapes either.
                low, high = node.pop("minLength", 0), node.pop("maxLength", max_string_length)
                node["pattern"] = f'^[^"\\\\\\x00-\\x1f]{{{low},{"" if high is None else high}}}$'
            if "array" in kinds:
                node.setdefault("maxItems", max_array_items)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(bounded)
    return bounded


def tool_parameters(tool: dict[str, Any]) -> dict[str, Any]:
    """The parameters schema of an OpenAI-style tool, as an object schema."""
    params = dict(tool["function"].get("parameters") or {})
    params.setdefault("type", "object")
    params.setdefault("properties", {})
    return params


def call_schema(
    tools: Sequence[dict[str, Any]], max_string_length: int | None = None, max_array_items: int = 30
) -> dict[str, Any]:
    """JSON schema of one call to any of `tools` (OpenAI-style dicts), name first."""
    if not tools:
        raise ValueError("a tool-call grammar needs at least one tool")
    cases = []
    for tool in tools:
        params = bounded_schema(tool_parameters(tool), max_string_length, max_array_items)
        cases.append({
            "type": "object",
            "properties": {"name": {"const": tool["function"]["name"]}, "arguments": params},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        })
    return cases[0] if len(cases) == 1 else {"anyOf": cases}


@dataclass
class GrammarCache:
    """One xgrammar compiler per tokenizer and its compiled grammars, keyed by tool set."""

    compiler: xgr.GrammarCompiler
    vocab_size: int
    stop_token_ids: list[int]
    quotes: TokenQuotes | None = None
    compiled: dict[str, xgr.CompiledGrammar] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def for_model(cls, tokenizer: Any, vocab_size: int, stop_token_ids: list[int]) -> GrammarCache:
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=stop_token_ids)
        return cls(xgr.GrammarCompiler(info, max_threads=2), vocab_size, stop_token_ids,
                   TokenQuotes.of(tokenizer, vocab_size))

    def grammar(
        self,
        tools: Sequence[dict[str, Any]],
        *,
        allow_text: str | None = None,
        max_string_length: int | None = None,
        max_array_items: int = 30,
    ) -> xgr.CompiledGrammar:
        """The compiled grammar of one call to `tools`; with `allow_text` ("line" or
        "turn") a free-text answer is allowed instead of a call."""
        schema = call_schema(tools, max_string_length, max_array_items)
        key = json.dumps([schema, allow_text], sort_keys=True)
        with self.lock:
            found = self.compiled.get(key)
            if found is None:
                grammar = xgr.Grammar.from_json_schema(
                    json.dumps(schema), any_whitespace=False, separators=CALL_SEPARATORS, strict_mode=True
                )
                if allow_text:
                    text = TEXT_LINE_EBNF if allow_text == "line" else TEXT_TURN_EBNF
                    grammar = xgr.Grammar.union(grammar, xgr.Grammar.from_ebnf(text))
                found = self.compiled[key] = self.compiler.compile_grammar(grammar)
        return found


@dataclass(frozen=True)
class TokenQuotes:
    """Which tokens hold a double quote (`inside`) and which start with one (`opening`):
    what the loop guard needs to know that a loop is inside a string and how to end it."""

    inside: torch.Tensor  # bool, (vocab,)
    opening: torch.Tensor  # bool, (vocab,)

    @classmethod
    def of(cls, tokenizer: Any, vocab_size: int) -> TokenQuotes:
        inside = torch.zeros(vocab_size, dtype=torch.bool)
        opening = torch.zeros(vocab_size, dtype=torch.bool)
        pieces = tokenizer.convert_ids_to_tokens(list(range(min(len(tokenizer), vocab_size))))
        for index, piece in enumerate(pieces):
            if piece and '"' in piece:
                inside[index] = True
                opening[index] = piece.startswith('"')
        return cls(inside, opening)


def repeated_block(tokens: Sequence[int], repeats: int = LOOP_REPEATS, period: int = LOOP_PERIOD) -> list[int] | None:
    """The shortest block (at most `period` tokens) whose `repeats` copies end `tokens`."""
    for size in range(1, period + 1):
        if len(tokens) < size * repeats:
            return None
        block = list(tokens[-size:])
        if all(list(tokens[-size * (k + 1): len(tokens) - size * k]) == block for k in range(1, repeats)):
            return block
    return None


class GrammarRows:
    """Per-row grammar state during one batched `generate`: a logits processor that
    masks every token the row's grammar forbids, and a stopping criterion that ends a
    row as soon as its grammar is complete (no extra stop token is generated).
    Rows with grammar None are left free."""

    def __init__(
        self,
        grammars: Sequence[xgr.CompiledGrammar | None],
        vocab_size: int,
        stop_on_complete: Sequence[bool] | None = None,
        quotes: TokenQuotes | None = None,
    ) -> None:
        # A call grammar ends when its JSON closes; free text that may go on ("turn"
        # mode) is complete after every character, so those rows end on the stop token.
        self.stop_on_complete = list(stop_on_complete or [True] * len(grammars))
        self.matchers = [None if g is None else xgr.GrammarMatcher(g) for g in grammars]
        self.done = [m is None for m in self.matchers]
        self.completed = [False] * len(self.matchers)
        self.bitmask = xgr.allocate_token_bitmask(len(self.matchers), vocab_size)
        self.constrained = [i for i, m in enumerate(self.matchers) if m is not None]
        self.generated: list[list[int]] = [[] for _ in self.matchers]
        self.quotes = quotes  # None: no loop guard
        self.processor = _MaskProcessor(self)
        self.stopper = _GrammarStop(self)


class _MaskProcessor(LogitsProcessor):
    def __init__(self, rows: GrammarRows) -> None:
        self.rows = rows

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows = self.rows
        live = [i for i in rows.constrained if not rows.done[i]]
        for i in live:
            rows.matchers[i].fill_next_token_bitmask(rows.bitmask, i)
        if live:
            if bool((rows.bitmask[live] == 0).all(dim=-1).any()):
                raise RuntimeError(
                    "the grammar allows no token of this vocabulary next (the tokenizer cannot "
                    "spell a character the tool schema needs); use a tokenizer with byte fallback"
                )
            # xgrammar writes the mask into contiguous rows; anything else is masked on a copy
            native = scores.device.type in ("cpu", "cuda") and scores.is_contiguous()
            target = scores if native else scores.cpu().contiguous()
            xgr.apply_token_bitmask_inplace(target, rows.bitmask.to(target.device), indices=live)
            if target is not scores:
                scores.copy_(target)
            if rows.quotes is not None:
                for i in live:
                    _close_a_looping_string(rows, i, scores)
        return scores


def _close_a_looping_string(rows: GrammarRows, row: int, scores: torch.FloatTensor) -> None:
    """The loop guard. The base model sometimes repeats itself inside a string
    ("case_phone_case_phone_...") until the token budget runs out, which loses the call
    and holds up every other row of the batch. When a row's last tokens repeat one
    block (with no quote in it: the loop is inside a string), only tokens that open
    with a quote stay allowed, so the string ends there, if the grammar allows it."""
    block = repeated_block(rows.generated[row])
    quotes = rows.quotes
    if block is None or bool(quotes.inside[block].any()):
        return
    vocab = min(scores.shape[-1], quotes.opening.shape[0])
    closing = quotes.opening[:vocab].to(scores.device) & torch.isfinite(scores[row, :vocab])
    if bool(closing.any()):
        scores[row, :vocab] = torch.where(closing, scores[row, :vocab], float("-inf"))
        scores[row, vocab:] = float("-inf")


class _GrammarStop(StoppingCriteria):
    def __init__(self, rows: GrammarRows) -> None:
        self.rows = rows

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        rows = self.rows
        last = input_ids[:, -1].tolist()
        for i in rows.constrained:
            if rows.done[i]:
                continue
            matcher = rows.matchers[i]
            if not matcher.accept_token(last[i]):
                raise RuntimeError(f"grammar rejected token {last[i]} in row {i}; the mask was bypassed")
            rows.generated[i].append(last[i])
            if matcher.is_terminated() or (rows.stop_on_complete[i] and matcher.is_completed()):
                rows.done[i] = rows.completed[i] = True
        stop = [rows.done[i] if rows.matchers[i] is not None else False for i in range(len(last))]
        return torch.tensor(stop, dtype=torch.bool, device=input_ids.device)
