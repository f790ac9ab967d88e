"""The decoder that skips grammar-forced tokens (agent.chat_model._Decoder), on tiny
random models: batched, with forced runs of different lengths per row, the prefix cache
and a sliding window shorter than the prompts, it writes what a plain one-row decoding
writes that recomputes everything at every token."""

from __future__ import annotations

import pytest
import torch
from langchain_core.messages import HumanMessage

from agent.chat_model import PREFILL_COLUMNS, SteeredChatModel, _Choice, shared_state
from agent.grammar import GrammarRows
from agent.prompt import format_tools, render_prompt, resolve_template
from agent.tool_choice import FORCED_START, named_tool
from steering import SteeringVector, steer
from tests.helpers.tiny_models import tiny_model
from tools import make_shop_tools

REQUESTS = ["search for running shoes", "get recommendations please",
            "write a review: the blender broke after a week", "shoes"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def reference(chat: SteeredChatModel, request: str, tools: list, budget: int,
              vector: SteeringVector | None = None, positions: str = "all") -> str:
    """Token by token, one row, no cache: every step runs the whole sequence again and
    takes the argmax the grammar allows; a forced run is appended as the decoder spells
    it (the tokenizer's spelling of the forced text). Steering at every position
    ("all"), or ("decision") at the forced start's last token and after it while the
    name is not unique, then nowhere: a steered pass that picks the name and an
    unsteered pass that writes the call, reading the call's text so far as the
    tokenizer spells it (as a pass forced to that tool would); "context" steers every
    position while the name is not unique, then the prompt alone (its cache stays
    steered) while the call, read again as under "decision", is written unsteered."""
    loaded = chat.get_loaded()
    tok = loaded.tokenizer
    specs = format_tools(tools)
    names = [s["function"]["name"] for s in specs]
    template = resolve_template(chat.template, tok)
    prompt = tok(render_prompt([HumanMessage(request)], specs, tokenizer=tok, template=template),
                 add_special_tokens=template == "base")["input_ids"]
    state = shared_state(loaded)
    rows = GrammarRows([chat._grammar(state, _Choice(specs, False), template)], state.grammars.vocab_size,
                       quotes=state.grammars.quotes)
    decided_from = len(prompt) + len(tok(FORCED_START, add_special_tokens=False)["input_ids"]) - 1
    written: list[int] = []
    respelled = False
    while len(written) < budget and not rows.completed[0]:
        forced = rows.forced(0, tok)[: budget - len(written)]
        for token in forced:
            rows.accept(0, token)
        written.extend(forced)
        if rows.completed[0] or len(written) >= budget:
            break
        deciding = named_tool(tok.decode(written), names) is None
        if positions in ("decision", "context") and vector is not None and not deciding and not respelled:
            written, respelled = tok(tok.decode(written), add_special_tokens=False)["input_ids"], True
        ids = torch.tensor([prompt + written])
        if positions == "all" or (positions == "context" and deciding):
            where = {"positions": "all"}
        elif positions == "context":
            where = {"positions": "prompt", "prompt_length": len(prompt), "check": False}
        else:
            where = {"positions": "generated", "prompt_length": decided_from, "check": False}
        on = vector if positions in ("all", "context") or deciding else None
        with steer(loaded, on, **where):
            scores = rows.mask(loaded.model(input_ids=ids).logits[:, -1, :].float())
        token = int(scores.argmax(-1))
        rows.accept(0, token)
        written.append(token)
    return tok.decode(written)


def written(replies) -> list[str]:
    """Each reply's call text as the model wrote it (a cut call without its closing)."""
    texts = []
    for reply in replies:
        text = reply.response_metadata.get("generated_text") or reply.invalid_tool_calls[0]["args"]
        closed = reply.response_metadata.get("cut", {}).get("closed_with", "")
        texts.append(text[: len(text) - len(closed)])
    return texts


def vector(loaded, seed: int, key: str = "whole.1", scale: float = 60.0) -> SteeringVector:
    generator = torch.Generator().manual_seed(seed)
    tensors = {key: torch.randn(loaded.hidden_size, generator=generator) * scale}
    return SteeringVector(tensors, loaded.model_id, loaded.hidden_size)


TOOLS = make_shop_tools(object(), user_id="u")[:3]


@pytest.mark.parametrize("family", ["gemma3", "llama", "qwen2"])
@pytest.mark.parametrize("reuse", ["never", "exact"])
def test_batched_decoding_with_forced_runs_equals_token_by_token(family, reuse):
    loaded = tiny_model(family, "bpe", seed=5)
    chat = SteeredChatModel(loaded=loaded, reuse_prefix=reuse, max_string_length=6)
    expected = [reference(chat, r, TOOLS, 80) for r in REQUESTS]
    chat.generate_batch([[HumanMessage("warm the prefix cache")]], tools=TOOLS, tool_choice="any", max_new_tokens=2)
    widths: list[int] = []
    spy = loaded.model.model.register_forward_pre_hook(
        lambda _module, _args, kwargs: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True)
    try:
        replies = chat.generate_batch([[HumanMessage(r)] for r in REQUESTS], tools=TOOLS, tool_choice="any",
                                      max_new_tokens=80)
    finally:
        spy.remove()
    assert written(replies) == expected
    if reuse == "never":  # the ~730-token prompts were prefilled PREFILL_COLUMNS at a time
        assert widths[:5] == [PREFILL_COLUMNS] * 5 and max(widths) == PREFILL_COLUMNS
    if family == "gemma3":  # (the tiny llama and qwen2 write one call whatever the request)
        assert len({text[:14] for text in expected}) > 1  # rows named different tools: forced runs differ


@pytest.mark.parametrize("family", ["gemma3", "llama"])
@pytest.mark.parametrize("positions", ["all", "decision", "context"])
def test_steered_rows_decode_as_their_own_token_by_token_run(family, positions):
    """Per-row vectors (one row unsteered); under "decision" the steering stops per row
    once its name is unique, in the same generation, and what follows is what an
    unsteered pass over the same tokens writes."""
    loaded = tiny_model(family, "bpe", seed=3)
    chat = SteeredChatModel(loaded=loaded, max_string_length=6)
    vectors = [vector(loaded, 1), None, vector(loaded, 2), vector(loaded, 3, "mlp.0")]
    expected = [reference(chat, r, TOOLS, 80, v, positions) for r, v in zip(REQUESTS, vectors)]
    widths: list[int] = []

    def rows_of(_module, _args, kwargs) -> None:
        if kwargs.get("position_ids") is not None:  # (not the shared prefix, computed once)
            widths.append(kwargs["input_ids"].shape[0])

    spy = loaded.model.model.register_forward_pre_hook(rows_of, with_kwargs=True)
    try:
        replies = chat.generate_batch([[HumanMessage(r)] for r in REQUESTS], vectors, tools=TOOLS,
                                      tool_choice="any", steering_positions=positions, max_new_tokens=80)
    finally:
        spy.remove()
    assert written(replies) == expected
    # rows that ended left the batch, each keeping its own vector
    assert widths[0] == len(REQUESTS) and min(widths) < len(REQUESTS) and widths == sorted(widths, reverse=True)
    unsteered = [reference(chat, r, TOOLS, 80) for r in REQUESTS]
    assert expected != unsteered and len(set(expected)) > 1  # the vectors changed calls, not all alike


def test_decision_steering_acts_only_while_the_name_is_decided(monkeypatch):
    """A spy on the steered layer's output before and after the steering hook: the
    vector is added once at each of a steered row's deciding positions (the forced
    start's last token up to the token that makes the name unique, that one excluded)
    and nowhere else; those positions are read a second time, unsteered."""
    loaded = tiny_model("gemma3", "bpe", seed=3)
    chat = SteeredChatModel(loaded=loaded, max_string_length=6)
    vectors = [vector(loaded, 1, "whole.0"), None, vector(loaded, 2, "whole.0")]
    layers = loaded.model.model.layers
    passes: list[dict] = []
    before = layers[0].register_forward_hook(lambda _m, _a, out: passes[-1].update(before=out[0] if isinstance(out, tuple) else out))
    positions = loaded.model.model.register_forward_pre_hook(
        lambda _m, _a, kwargs: passes.append({"positions": kwargs.get("position_ids")}), with_kwargs=True)
    after = layers[1].register_forward_pre_hook(
        lambda _m, args, kwargs: passes[-1].update(after=args[0] if args else kwargs["hidden_states"]), with_kwargs=True)
    runs = []
    run = SteeredChatModel._run
    monkeypatch.setattr(SteeredChatModel, "_run", lambda *a, **k: runs.append(run(*a, **k)) or runs[-1])
    try:
        chat.generate_batch([[HumanMessage(r)] for r in REQUESTS[:3]], vectors, tools=TOOLS,
                            tool_choice="any", steering_positions="decision", max_new_tokens=80)
    finally:
        for handle in (before, positions, after):
            handle.remove()
    steered, read = [], []
    for one in passes:
        if one["positions"] is None:  # the shared prefix, computed once unsteered
            continue
        changed = (one["after"] - one["before"]).abs().sum(-1) > 0
        steered += [(r, int(one["positions"][r, c])) for r, c in changed.nonzero().tolist()]
        read += [(r, int(p)) for r in range(changed.shape[0]) for p in one["positions"][r].tolist()]
    tok = loaded.tokenizer
    names = [t.name for t in TOOLS]
    start = len(tok(FORCED_START, add_special_tokens=False)["input_ids"])
    expected = []
    for row, (tokens, vec) in enumerate(zip(runs[0].tokens, vectors)):
        prompt = len(tok(render_prompt([HumanMessage(REQUESTS[row])], format_tools(TOOLS), tokenizer=tok,
                                       template="base"))["input_ids"])
        unique = next(k for k in range(len(tokens)) if named_tool(tok.decode(tokens[: k + 1]), names))
        if vec is not None:
            expected += [(row, prompt + k) for k in range(start - 1, unique)]
    assert sorted(steered) == sorted(expected) and len(expected) >= 2
    assert [read.count(place) for place in expected] == [2] * len(expected)  # steered once, then read again unsteered


@pytest.mark.parametrize("positions", ["all", "decision", "context", "prompt", "generated"])
def test_choose_tools_names_what_generation_writes(positions):
    loaded = tiny_model("gemma3", "bpe", seed=5)
    chat = SteeredChatModel(loaded=loaded, max_string_length=6)
    vectors = [vector(loaded, 1), None, vector(loaded, 2), vector(loaded, 4)]
    conversations = [[HumanMessage(r)] for r in REQUESTS]
    chosen = chat.choose_tools(conversations, vectors, tools=TOOLS, steering_positions=positions)
    replies = chat.generate_batch(conversations, vectors, tools=TOOLS, tool_choice="any", max_new_tokens=60,
                                  steering_positions=positions)
    assert chosen == [(r.tool_calls or r.invalid_tool_calls)[0]["name"] for r in replies]
    assert len(set(chosen)) > 1


def test_a_growing_cache_layer_holds_what_concatenation_holds():
    """The decoder's cache layer writes new columns into reserved room: after updates
    of several widths (a prompt's chunks, then one column a step) and rows leaving the
    batch, it returns exactly what concatenating every update returns."""
    from agent.chat_model import _GrowingLayer

    layer, keys, values = _GrowingLayer(), [], []
    generator = torch.Generator().manual_seed(0)
    for step, width in enumerate([5, 3, 1, 1, 1, 7, 1]):
        rows = keys[0].shape[0] if keys else 4
        k, v = (torch.randn(rows, 2, width, 8, generator=generator) for _ in range(2))
        keys.append(k)
        values.append(v)
        got_k, got_v = layer.update(k, v)
        assert torch.equal(got_k, torch.cat(keys, dim=-2)) and torch.equal(got_v, torch.cat(values, dim=-2))
        if step == 3:  # rows 1 and 3 leave the batch
            kept = torch.tensor([0, 2])
            layer.batch_select_indices(kept)
            keys, values = [torch.cat(keys, dim=-2)[kept]], [torch.cat(values, dim=-2)[kept]]
            assert torch.equal(layer.keys, keys[0]) and layer.get_seq_length() == 10
    assert layer.get_seq_length() == 19
