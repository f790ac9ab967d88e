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
once per (tool set, mode) and kept on the model's `GrammarCache` (an LRU of
`MAX_GRAMMARS`); per request only a `GrammarMatcher` per batch row is made. A call the token budget cuts is closed with the
shortest text the grammar accepts after it (`closing_text`), so a forced call is always
delivered.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import json
import string
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import xgrammar as xgr

CALL_SEPARATORS = (",", ":")
# Free text in "auto" mode: anything that opens neither a call nor a list (a base model
# that recites the prompt's tool list starts with "- "), up to the end of the line (base
# template) or the end of the turn (chat template, ended by the stop token).
TEXT_LINE_EBNF = 'root ::= [^{\\-*\\t\\n ] [^\\n]* "\\n"'
TEXT_TURN_EBNF = 'root ::= [^{\\-*\\t\\n ] [^\\x00]*'
# The loop guards: a free string whose last tokens are LOOP_REPEATS copies of one block of
# at most LOOP_PERIOD tokens is closed, and so is one whose next token would repeat a run
# of REPEAT_SPAN tokens the string already holds.
LOOP_REPEATS = 3
LOOP_PERIOD = 8
REPEAT_SPAN = 4
# Closing a cut call: the characters that shape JSON, and the content characters, in
# the order a free string or a number takes the first allowed one ("0" is the
# shortest number).
JSON_STRUCTURE = '"}],:[{'
JSON_CONTENT = "".join(dict.fromkeys("0tfn123456789-.eE" + string.ascii_letters + " " + "".join(
    c for c in string.punctuation if c not in JSON_STRUCTURE + "\\")))
FEW_CHOICES = 20  # a string allowing at most this many next characters is a choice
CLOSING_EXPANSIONS = 2_000
MAX_GRAMMARS = 32  # compiled grammars kept per model (GrammarCache)


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
    """One xgrammar compiler per tokenizer and its compiled grammars, keyed by tool set
    and mode, the `max_entries` most recently used kept (a service whose clients bring
    their own tools would otherwise keep every tool set it ever saw; a compiled grammar
    over Gemma's 262k-token vocabulary holds megabytes)."""

    compiler: xgr.GrammarCompiler
    vocab_size: int
    stop_token_ids: list[int]
    quotes: TokenQuotes | None = None
    max_entries: int = MAX_GRAMMARS
    compiled: OrderedDict[str, xgr.CompiledGrammar] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def for_model(cls, tokenizer: Any, vocab_size: int, stop_token_ids: list[int]) -> GrammarCache:
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=stop_token_ids)
        # xgrammar's own cache is unbounded by default: this LRU is the one cache
        return cls(xgr.GrammarCompiler(info, max_threads=2, cache_enabled=False), vocab_size, stop_token_ids,
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
        key = json.dumps([tools, allow_text, max_string_length, max_array_items], sort_keys=True)
        with self.lock:
            found = self.compiled.get(key)
            if found is not None:
                self.compiled.move_to_end(key)
                return found
            schema = call_schema(tools, max_string_length, max_array_items)
            grammar = xgr.Grammar.from_json_schema(
                json.dumps(schema), any_whitespace=False, separators=CALL_SEPARATORS, strict_mode=True
            )
            if allow_text:
                text = TEXT_LINE_EBNF if allow_text == "line" else TEXT_TURN_EBNF
                grammar = xgr.Grammar.union(grammar, xgr.Grammar.from_ebnf(text))
            found = self.compiled[key] = self.compiler.compile_grammar(grammar)
            while len(self.compiled) > self.max_entries:
                self.compiled.popitem(last=False)
        return found


def closing_text(matcher: xgr.GrammarMatcher, written: str, limit: int = CLOSING_EXPANSIONS) -> str | None:
    """The shortest text that completes the grammar from `matcher`'s state, which has
    accepted `written` (the call so far); None only if the grammar allows no way on.
    The matcher is left as it was.

    An A* search over characters: the cost is the text's length, the estimate the
    containers and string still open (each needs one character to close), so the first
    complete text found is the shortest among those the search tries (`_next_steps`:
    values are not written further than the grammar needs, and a free string's content
    is one character like another); text the grammar forces (key names, the rest of
    `true`) is taken in one step and counts in the cost. Choices that multiply (an
    array of enum values) can make that search long: after `limit` steps a greedy walk
    that closes whatever it can first gives a valid, if longer, text instead.
    """
    if matcher.is_completed() or matcher.is_terminated():
        return ""
    order = itertools.count()
    start = _JsonDepth.of(written)
    frontier = [(start.estimate, 0, next(order), "", matcher, start)]
    for _ in range(limit):
        if not frontier:
            return None
        _, _, _, text, state, depth = heapq.heappop(frontier)
        if state.is_completed():
            return text
        for step, child, after in _moves(state, depth):
            cost = len(text) + len(step)
            heapq.heappush(frontier, (cost + after.estimate, -cost, next(order), text + step, child, after))
    return _greedy_closing(matcher, start)


def _greedy_closing(matcher: xgr.GrammarMatcher, depth: _JsonDepth, max_chars: int = 100_000) -> str | None:
    """A valid closing, not always the shortest: at every step the character that
    leaves the least open (a closing one first), the first such. It ends because a
    call's grammar only moves on (object properties come in schema order, once each;
    arrays have a maxItems)."""
    state, text = matcher, ""
    while not state.is_completed() and len(text) < max_chars:
        moves = _moves(state, depth)
        if not moves:
            return None
        step, state, depth = min(moves, key=lambda move: depth.after(move[0][0]).estimate)
        text += step
    return text if state.is_completed() else None


def _moves(state: xgr.GrammarMatcher, depth: _JsonDepth) -> list[tuple[str, xgr.GrammarMatcher, _JsonDepth]]:
    """Each next step (`_next_steps`) with the text the grammar then forces taken too,
    and how much is open after it."""
    moves = []
    for step, child in _next_steps(state, depth.in_string):
        forced = child.find_jump_forward_string()
        if forced and child.accept_string(forced):
            step += forced
        moves.append((step, child, depth.after(step)))
    return moves


def _next_steps(state: xgr.GrammarMatcher, in_string: bool) -> list[tuple[str, xgr.GrammarMatcher]]:
    """Matchers one character further: every structural character the grammar allows
    (inside a string only the closing quote: the others are content there); content
    characters only where no structural one is allowed, since writing more of a value
    that may end never shortens the call. Of those, inside a string that allows few (a
    key name, an enum value, a tool name: choices that matter) all of them, else only
    the first (a free string's characters are interchangeable; "0" is the shortest
    number, "true" the shortest boolean)."""
    steps = []
    for char in '"' if in_string else JSON_STRUCTURE:
        child = state.fork()
        if child.accept_string(char):
            steps.append((char, child))
    if steps:
        return steps
    content: list[tuple[str, xgr.GrammarMatcher]] = []
    probe = state.fork()
    for char in JSON_CONTENT + (JSON_STRUCTURE[1:] if in_string else ""):
        if probe.accept_string(char):  # a refused character leaves the matcher unchanged
            content.append((char, probe))
            if not in_string or len(content) > FEW_CHOICES:
                break
            probe = state.fork()
    return content if len(content) <= FEW_CHOICES else content[:1]


@dataclass(frozen=True)
class _JsonDepth:
    """How much JSON is open after some text: containers, and whether inside a string."""

    containers: int = 0
    in_string: bool = False
    escaped: bool = False

    @classmethod
    def of(cls, text: str) -> _JsonDepth:
        return cls().after(text)

    @property
    def estimate(self) -> int:
        return self.containers + int(self.in_string)

    def after(self, text: str) -> _JsonDepth:
        containers, in_string, escaped = self.containers, self.in_string, self.escaped
        for char in text:
            if in_string:
                if escaped:
                    escaped = False
                elif char == "\\":
                    escaped = True
                elif char == '"':
                    in_string = False
            elif char == '"':
                in_string = True
            elif char in "{[":
                containers += 1
            elif char in "}]":
                containers -= 1
        return _JsonDepth(max(containers, 0), in_string, escaped)


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
    """Per-row grammar state during one batched decode: `mask` forbids every token the
    row's grammar does not allow next, `accept` moves a row on by the token it wrote and
    says whether its grammar ended it (a call grammar when its JSON closes; no extra stop
    token is generated), and `forced` gives the tokens the grammar admits alone next
    (accepted, so the decoder appends them without a forward pass each). Rows with
    grammar None are left free."""

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
        self.completed = [False] * len(self.matchers)
        self.bitmask = xgr.allocate_token_bitmask(len(self.matchers), vocab_size)
        self.generated: list[list[int]] = [[] for _ in self.matchers]
        self.quotes = quotes  # None: no loop guard

    def mask(self, scores: torch.Tensor, rows: Sequence[int] | None = None) -> torch.Tensor:
        """`scores` (rows x vocab) with what each of `rows` (default: all) may not write
        next set to -inf, in place; rows without a grammar are left as they are."""
        live = [i for i in (range(len(self.matchers)) if rows is None else rows) if self.matchers[i] is not None]
        for i in live:
            self.matchers[i].fill_next_token_bitmask(self.bitmask, i)
        if not live:
            return scores
        if bool((self.bitmask[live] == 0).all(dim=-1).any()):
            raise RuntimeError(
                "the grammar allows no token of this vocabulary next (the tokenizer cannot "
                "spell a character the tool schema needs); use a tokenizer with byte fallback"
            )
        # xgrammar writes the mask into contiguous rows; anything else is masked on a copy
        native = scores.device.type in ("cpu", "cuda") and scores.is_contiguous()
        target = scores if native else scores.cpu().contiguous()
        xgr.apply_token_bitmask_inplace(target, self.bitmask.to(target.device), indices=live)
        if target is not scores:
            scores.copy_(target)
        if self.quotes is not None:
            for i in live:
                _close_a_looping_string(self, i, scores)
                _close_a_repeating_string(self, i, scores)
        return scores

    def accept(self, row: int, token: int) -> bool:
        """Move `row` on by `token`; True when its grammar has ended (then `completed`)."""
        matcher = self.matchers[row]
        if matcher is None:
            return False
        if not matcher.accept_token(token):
            raise RuntimeError(f"grammar rejected token {token} in row {row}; the mask was bypassed")
        self.generated[row].append(token)
        if matcher.is_terminated() or (self.stop_on_complete[row] and matcher.is_completed()):
            self.completed[row] = True
        return self.completed[row]

    def forced(self, row: int, tokenizer: Any) -> list[int]:
        """The tokens `row`'s grammar admits alone next, spelled as the tokenizer spells
        the forced text (so every path to the same text reads the same tokens: the
        call's start `{"name":"`, the rest of a name once it is unique, a key); none
        where the grammar would refuse that spelling (the row is then decoded token by
        token there). Not accepted yet: `accept` each one that is used."""
        matcher = self.matchers[row]
        if matcher is None or matcher.is_completed() or matcher.is_terminated():
            return []
        text = matcher.find_jump_forward_string()
        if not text:
            return []
        tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
        probe = matcher.fork()
        return tokens if all(probe.accept_token(t) for t in tokens) else []


def repeating_tokens(tokens: Sequence[int], span: int = REPEAT_SPAN) -> set[int]:
    """The tokens that would end a second copy of a `span`-token run of `tokens`."""
    if span < 2 or len(tokens) < span:
        return set()
    tail = list(tokens[len(tokens) - span + 1:])
    return {tokens[i + span - 1] for i in range(len(tokens) - span + 1)
            if list(tokens[i:i + span - 1]) == tail}


def _close_a_repeating_string(rows: GrammarRows, row: int, scores: torch.Tensor) -> None:
    """The repeat guard. Left alone, a base model writing a long text (a review) soon
    says one sentence again and again, which the loop guard's short blocks do not catch.
    When the row's best next token would write, inside a call's string (the tokens since
    the last one holding a quote), a run of REPEAT_SPAN tokens a second time, the string
    ends there instead, as the loop guard ends it."""
    generated = rows.generated[row]
    if len(generated) < REPEAT_SPAN:
        return
    quoted = rows.quotes.inside[torch.tensor(generated, dtype=torch.long)].nonzero()
    if not len(quoted):  # not inside a call's string (free text has its own end)
        return
    if int(scores[row].argmax()) in repeating_tokens(generated[int(quoted[-1]) + 1:]):
        _close_string(rows, row, scores)


def _close_a_looping_string(rows: GrammarRows, row: int, scores: torch.Tensor) -> None:
    """The loop guard. The base model sometimes repeats itself inside a string
    ("case_phone_case_phone_...") until the token budget runs out, which loses the call
    and holds up every other row of the batch. When a row's last tokens repeat one
    block (with no quote in it: the loop is inside a string), only tokens that open
    with a quote stay allowed, so the string ends there, if the grammar allows it."""
    block = repeated_block(rows.generated[row])
    if block is not None and not bool(rows.quotes.inside[block].any()):
        _close_string(rows, row, scores)


def _close_string(rows: GrammarRows, row: int, scores: torch.Tensor) -> None:
    """Allow only tokens that open with a quote (the string ends), if the grammar allows one."""
    quotes = rows.quotes
    vocab = min(scores.shape[-1], quotes.opening.shape[0])
    closing = quotes.opening[:vocab].to(scores.device) & torch.isfinite(scores[row, :vocab])
    if bool(closing.any()):
        scores[row, :vocab] = torch.where(closing, scores[row, :vocab], float("-inf"))
        scores[row, vocab:] = float("-inf")
