"""The tool-call grammar: every call it allows is valid, and it allows our own calls."""

from __future__ import annotations

import json
import random
import re
from typing import Literal

import jsonschema
import pytest
import torch
import xgrammar as xgr
from pydantic import BaseModel, Field

from agent.chat_model import SteeredChatModel, shared_state
from agent.grammar import (GrammarRows, bounded_schema, call_schema, closing_text, repeated_block,
                           repeating_tokens)
from agent.prompt import format_tools, render_call
from tests.test_chat_model import one_thread  # noqa: F401 (autouse fixture)
from tests.helpers.schemas import random_tools, sample_arguments
from tests.helpers.tiny_models import tiny_model
from tools import make_shop_tools


class find_items(BaseModel):
    """Find items matching words."""

    query: str = Field(description="search words")
    limit: int = Field(default=5, ge=1, le=20)
    in_stock: bool = True


class rate_item(BaseModel):
    """Rate one item."""

    asin: str
    stars: Literal[1, 2, 3, 4, 5]
    tags: list[str] = Field(default_factory=list)
    mood: Literal["happy", "sad"] | None = None


class end_session(BaseModel):
    """End the session."""


TOOLS = format_tools([find_items, rate_item, end_session])
PROMPTS = [
    f"{verb} {thing} {extra}"
    for verb in ("find", "rate", "stop", "show me", "I want")
    for thing in ("running shoes", "a blender", "my last order", "something nice")
    for extra in ("please", "now", "for my sister")
]  # 60 different prompts


@pytest.fixture(scope="module")
def model() -> SteeredChatModel:
    return SteeredChatModel(loaded=tiny_model("gemma3", "bpe", seed=3), max_new_tokens=160,
                            max_string_length=6, max_array_items=2)


def test_bounds_are_added_where_missing_only() -> None:
    schema = {"type": "object", "properties": {
        "a": {"type": "string"}, "b": {"type": "string", "maxLength": 4},
        "c": {"type": "array", "items": {"type": "string"}}, "d": {"type": "string", "enum": ["x"]}}}
    bounded = bounded_schema(schema, 10, 3)
    props = bounded["properties"]
    assert props["a"]["pattern"].endswith("{0,10}$") and props["b"]["pattern"].endswith("{0,4}$")
    assert props["c"]["maxItems"] == 3 and props["c"]["items"]["pattern"].endswith("{0,10}$")
    assert "pattern" not in props["d"] and "pattern" not in schema["properties"]["a"]
    plain = re.compile(props["a"]["pattern"])
    assert plain.match("ok words") and not plain.match('a"b') and not plain.match("a\x07")


def test_call_schema_needs_a_tool() -> None:
    with pytest.raises(ValueError, match="at least one tool"):
        call_schema([])


@pytest.mark.parametrize("tools", ["shop", "local"])
def test_grammar_accepts_render_call_of_every_tool(model: SteeredChatModel, tools: str) -> None:
    samples = {
        "search_product_by_query": {"query": "adidas cleats"},
        "get_recommendations_by_history": {"product_sequence": ["B00A", "B00B"]},
        "add_product_review": {"review": "Great, é!"},
        "get_product_details_by_asin": {"product_asin": "B00EXAMPLE3"},
        "stop": {},
        "respond": {"content": "Which size?"},
        "find_items": {"query": "shoes", "limit": 3, "in_stock": False},
        "rate_item": {"asin": "B01", "stars": 4, "tags": ["a"], "mood": None},
        "end_session": {},
    }
    specs = format_tools(make_shop_tools(object(), user_id="u")) if tools == "shop" else TOOLS
    cache = shared_state(model.get_loaded()).grammars
    compiled = cache.grammar(specs, max_string_length=40, max_array_items=3)
    for spec in specs:
        name = spec["function"]["name"]
        matcher = xgr.GrammarMatcher(compiled)
        text = render_call(name, samples[name])
        assert matcher.accept_string(text), text
        assert matcher.is_completed(), text
    wrong = xgr.GrammarMatcher(compiled)
    assert not wrong.accept_string('{"name":"unknown_tool"')
    spaced = xgr.GrammarMatcher(compiled)
    assert not spaced.accept_string('{"name": ')  # one format only: compact


def test_grammar_makes_every_call_valid_on_a_random_model(model: SteeredChatModel) -> None:
    """A random model's logits are garbage: only the grammar keeps its calls valid."""
    bound = model.bind_tools(TOOLS, tool_choice="any")
    greedy = model.generate_batch([[("human", p)] for p in PROMPTS[:30]], tools=TOOLS, tool_choice="any")
    sampled_model = model.model_copy(update={"temperature": 1.5})
    sampled = sampled_model.generate_batch([[("human", p)] for p in PROMPTS[30:]], tools=TOOLS, tool_choice="any")
    singles = [bound.invoke(PROMPTS[0])]
    names = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    seen = set()
    for message in [*greedy, *sampled, *singles]:
        assert not message.invalid_tool_calls, message.invalid_tool_calls
        (call,) = message.tool_calls
        assert call["name"] in names
        jsonschema.validate(call["args"], names[call["name"]])
        seen.add(call["name"])
        assert render_call(call["name"], call["args"]) == message.response_metadata["generated_text"]
    assert len(greedy) + len(sampled) == 60
    assert len(seen) >= 2, "the random model should reach more than one tool"


@pytest.mark.parametrize("budget", [1, 2, 4, 9])
def test_a_forced_call_the_budget_cuts_is_closed_and_says_so(model: SteeredChatModel, budget: int) -> None:
    for choice in ("any", "rate_item"):
        message = model.bind_tools(TOOLS, tool_choice=choice, max_new_tokens=budget).invoke("find shoes")
        assert not message.invalid_tool_calls
        (call,) = message.tool_calls
        jsonschema.validate(call["args"], next(t for t in TOOLS if t["function"]["name"] == call["name"])
                            ["function"]["parameters"])
        assert choice == "any" or call["name"] == choice
        meta = message.response_metadata
        assert meta["finish_reason"] == "length" and meta["cut"]["max_new_tokens"] == budget
        assert meta["generated_text"].endswith(meta["cut"]["closed_with"])
        assert message.usage_metadata["output_tokens"] == budget


def test_a_call_without_the_grammar_that_the_budget_cuts_is_flagged(model: SteeredChatModel) -> None:
    free = model.model_copy(update={"grammar": False})
    message = free.bind_tools(TOOLS, tool_choice="any", max_new_tokens=2).invoke("find shoes")
    assert message.tool_calls == [] and "cut" not in message.response_metadata
    (bad,) = message.invalid_tool_calls
    assert "max_new_tokens=2" in bad["error"]


CLOSING_CASES = [  # (what was written, the shortest closing)
    ('', '{"name":"end_session","arguments":{}}'),
    ('{"name":"find_items","arguments":{"query":"red sh', '"}}'),
    ('{"name":"find_items","arguments":{"query":"x","limit":1', '}}'),  # optional fields left out
    ('{"name":"rate_item","arguments":{"as', 'in":"","stars":1}}'),
    ('{"name":"rate_item","arguments":{"asin":"B","stars":2,"tags":["a","b', '"]}}'),
    ('{"name":"rate_item","arguments":{"asin":"B","stars":2,"mood":"ha', 'ppy"}}'),
    ('{"name":"find_items","arguments":{"query":"x","in_stock":f', 'alse}}'),
]


@pytest.mark.parametrize(("written", "expected"), CLOSING_CASES)
def test_closing_text_is_the_shortest_completion(model: SteeredChatModel, written: str, expected: str) -> None:
    compiled = shared_state(model.get_loaded()).grammars.grammar(TOOLS)
    matcher = xgr.GrammarMatcher(compiled)
    assert matcher.accept_string(written) or written == ""
    assert closing_text(matcher, written) == expected
    assert not matcher.is_completed()  # the matcher is left where it was
    assert matcher.accept_string(expected) and matcher.is_completed()


def test_every_cut_of_a_valid_call_closes_into_a_valid_call(model: SteeredChatModel) -> None:
    """60 random tools (nested objects, arrays, enums, bounded integers, numbers,
    booleans, optional fields), a valid call of each cut at 6 places: the closing
    always makes a call that the tool's schema accepts, from the search and from the
    greedy walk alike."""
    cache = shared_state(model.get_loaded()).grammars
    rng = random.Random(7)
    for tool in random_tools(seed=11, count=60):
        compiled = cache.grammar([tool])
        schema = tool["function"]["parameters"]
        text = render_call(tool["function"]["name"], sample_arguments(rng, schema))
        assert xgr.GrammarMatcher(compiled).accept_string(text), text
        for cut in sorted(rng.sample(range(len(text)), min(6, len(text)))):
            matcher = xgr.GrammarMatcher(compiled)
            assert matcher.accept_string(text[:cut]) or cut == 0
            for limit in (2_000, 0):  # the search, and the greedy walk it falls back to
                closing = closing_text(matcher, text[:cut], limit=limit)
                assert closing is not None, text[:cut]
                call = json.loads(text[:cut] + closing)
                jsonschema.validate(call["arguments"], schema)


def test_the_mask_lands_on_the_right_tokens_of_non_contiguous_logits(model: SteeredChatModel) -> None:
    """A model head may hand back logits whose rows are not contiguous (a transposed
    product); the mask must forbid the same tokens as on contiguous logits."""
    loaded = model.get_loaded()
    state = shared_state(loaded)
    spec = format_tools(make_shop_tools(object(), user_id="u")[:2])
    compiled = state.grammars.grammar(spec)
    logits = torch.randn(state.grammars.vocab_size, 2).T  # rows with stride 2: not contiguous
    assert not logits.is_contiguous()
    masked = GrammarRows([compiled, compiled], state.grammars.vocab_size).mask(logits.clone())
    expected = GrammarRows([compiled, compiled], state.grammars.vocab_size).mask(logits.contiguous())
    assert torch.equal(masked, expected)
    assert int(torch.isfinite(expected[0]).sum()) < state.grammars.vocab_size  # the mask forbade something


def test_repeated_block_finds_the_shortest_loop_at_the_end() -> None:
    assert repeated_block([9, 1, 2, 1, 2, 1, 2]) == [1, 2]
    assert repeated_block([5, 5, 5]) == [5]
    assert repeated_block([1, 2, 1, 2, 3]) is None
    assert repeated_block([1, 2, 3, 1, 2, 3]) is None  # two copies are not a loop


def test_repeating_tokens_are_those_that_would_copy_a_run_again() -> None:
    assert repeating_tokens([1, 2, 3, 4, 5, 1, 2, 3]) == {4}
    assert repeating_tokens([1, 2, 3, 9, 1, 2, 3, 7, 1, 2, 3]) == {9, 7}
    assert repeating_tokens([1, 2, 3, 4, 5, 6]) == set()
    assert repeating_tokens([1, 2, 3]) == set()  # shorter than a run


def test_a_string_about_to_repeat_a_run_is_closed_there(model: SteeredChatModel) -> None:
    """Inside a call's string, when the best next token would write a 4-token run the
    string already holds, only tokens that end the string stay allowed; another best
    token, or the same tokens outside any string, are left alone."""
    loaded = model.get_loaded()
    state = shared_state(loaded)
    tok = loaded.tokenizer
    compiled = state.grammars.grammar(format_tools([find_items]))
    head = tok('{"name":"find_items","arguments":{"query":"', add_special_tokens=False)["input_ids"]
    run = [tok(c, add_special_tokens=False)["input_ids"][0] for c in "vwxyz"]
    assert len(set(run)) == 5
    written = head + run + run[:3]

    def masked(best: int, tokens: list[int]) -> torch.Tensor:
        rows = GrammarRows([compiled], state.grammars.vocab_size, quotes=state.grammars.quotes)
        for token in tokens:
            rows.accept(0, token)
        scores = torch.zeros(1, state.grammars.vocab_size)
        scores[0, best] = 10.0
        return rows.mask(scores)[0]

    closed = masked(run[3], written)  # would write v w x y a second time
    allowed = torch.isfinite(closed).nonzero()[:, 0].tolist()
    assert allowed and all(tok.convert_ids_to_tokens(i).startswith('"') for i in allowed)
    assert not torch.isfinite(masked(run[4], written)).logical_xor(
        torch.isfinite(masked(run[4], written[: len(head) + 5]))).any()  # another token: the mask as before
    assert torch.isfinite(masked(run[4], written))[run[0]]  # the string may go on


def test_a_string_that_loops_is_closed_and_the_call_stays_valid() -> None:
    """A model that can only say "ab" forever: without the guard the string runs to the
    budget and no call comes out; with it the string ends after three copies."""
    loaded = tiny_model("gemma3", "bpe", seed=5)
    tok = loaded.tokenizer
    loop = tok("ab", add_special_tokens=False)["input_ids"]
    assert len(loop) >= 1
    bias = torch.zeros(loaded.model.get_output_embeddings().weight.shape[0])
    bias[loop] = 50.0  # the model prefers the loop's tokens wherever the grammar allows them
    spec = [{"type": "function", "function": {"name": "find", "description": "find",
             "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                            "required": ["query"]}}}]
    hook = loaded.model.get_output_embeddings().register_forward_hook(lambda _m, _i, out: out + bias)
    try:
        guarded = SteeredChatModel(loaded=loaded, max_new_tokens=40)
        free = SteeredChatModel(loaded=loaded, max_new_tokens=40, close_loops=False)
        (closed,) = guarded.generate_batch([[("human", "find it")]], tools=spec, tool_choice="any")
        (looped,) = free.generate_batch([[("human", "find it")]], tools=spec, tool_choice="any")
    finally:
        hook.remove()
    assert looped.response_metadata["cut"]  # the budget ended the loop; the grammar closed it
    assert "cut" not in closed.response_metadata
    query = closed.tool_calls[0]["args"]["query"]
    assert len(looped.tool_calls[0]["args"]["query"]) > len(query)
    assert 0 < len(query) <= 20, query
    assert any(query.endswith(block * 3) for block in ("a", "b", "ab", "ba")), query


def test_the_grammar_cache_keeps_the_most_recently_used(model: SteeredChatModel) -> None:
    """An LRU of `max_entries` compiled grammars: the same tool set is compiled once, a
    grammar used again is kept, the least recently used one is dropped."""
    from agent.grammar import GrammarCache

    loaded = model.get_loaded()
    cache = GrammarCache.for_model(loaded.tokenizer, shared_state(loaded).grammars.vocab_size,
                                   shared_state(loaded).grammars.stop_token_ids)
    cache.max_entries = 2
    a, b, c = (format_tools([tool]) for tool in (find_items, rate_item, OPENAI_PING))
    first = cache.grammar(a)
    assert cache.grammar(a) is first  # compiled once
    cache.grammar(b)
    cache.grammar(a)  # a is now the most recently used
    cache.grammar(c)  # drops b
    assert len(cache.compiled) == 2
    assert cache.grammar(a) is first
    assert xgr.GrammarMatcher(cache.grammar(b)).accept_string(render_call("rate_item", {"asin": "x", "stars": 1}))
    assert len(cache.compiled) == 2  # b compiled again, c dropped


OPENAI_PING = {"type": "function", "function": {"name": "ping", "description": "Ping a host.", "parameters": {
    "type": "object", "properties": {"host": {"type": "string"}}, "required": ["host"]}}}
