"""Choosing a tool by its name alone (agent.tool_choice, SteeredChatModel.choose_tools)."""

from __future__ import annotations

import pytest

from agent.tool_choice import FORCED_START, deciding_prefix, named_tool

NAMES = ("search_product_by_query", "get_recommendations_by_history", "add_product_review",
         "get_product_details_by_asin")


class _Chars:
    """A character-level tokenizer: every character is one token."""

    def __init__(self) -> None:
        self.vocab = sorted({c for n in NAMES for c in n} | {'"', "x"})

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [self.vocab.index(c) for c in text]}

    def decode(self, ids, skip_special_tokens=False):
        return "".join(self.vocab[i] for i in ids)

    def __len__(self) -> int:
        return len(self.vocab)

    def convert_ids_to_tokens(self, i):
        return self.vocab[i]

    def convert_tokens_to_string(self, tokens):
        return "".join(tokens)


def test_the_deciding_prefix_ends_where_a_name_is_unique():
    chars = _Chars()
    assert deciding_prefix(chars, "search_product_by_query", NAMES) == "s"
    assert deciding_prefix(chars, "get_recommendations_by_history", NAMES) == "get_r"
    assert deciding_prefix(chars, "get_product_details_by_asin", NAMES) == "get_p"


def test_a_call_names_a_tool_once_only_one_bound_name_fits():
    assert named_tool(FORCED_START, NAMES) is None
    assert named_tool(FORCED_START + "get_", NAMES) is None
    assert named_tool(FORCED_START + "get_p", NAMES) == "get_product_details_by_asin"
    assert named_tool(FORCED_START + 'add_product_review","arguments":{', NAMES) == "add_product_review"
    assert named_tool(FORCED_START + "x", NAMES) is None
    assert named_tool("get_p", NAMES) is None  # not a call


@pytest.fixture(scope="module")
def real():
    from agent.chat_model import SteeredChatModel
    from steering import load_model

    return SteeredChatModel(loaded=load_model())


@pytest.fixture(scope="module")
def exact(real):
    """The real model with float32 linear layers (steering.linears): its rows do not
    depend on what else is in the batch beyond float rounding, which the bfloat16 weights
    `load_model` takes on CPUs with bfloat16 instructions do not promise."""
    from agent.chat_model import SteeredChatModel
    from steering import load_model

    if real.get_loaded().linear_form != "bfloat16":
        return real
    return SteeredChatModel(loaded=load_model(linear_dtype="float32"))


@pytest.fixture(scope="module")
def decisions(real, tmp_path_factory):
    """20 real requests, the shop's single-turn tools, and a real vector (towards
    recommendations, away from a review) at two strengths, None: unsteered."""
    from langchain_core.messages import HumanMessage

    from agent.runtime import SINGLE_TURN_TOOLS, call_formatter
    from steering import ContrastPair, SteeringVector, extract_vectors, reference_norms, scale
    from tools import make_shop_tools
    from tools.data import generate_dataset, load_dataset

    loaded = real.get_loaded()
    dataset = load_dataset(generate_dataset(tmp_path_factory.mktemp("d"), users=6, seed=5))
    requests = [t.task for t in dataset.test][:20]
    specs = sorted((t for t in make_shop_tools(None) if t.name in SINGLE_TURN_TOOLS),
                   key=lambda t: SINGLE_TURN_TOOLS.index(t.name))
    prompt, positive = call_formatter(loaded)(requests[0], "get_recommendations_by_history", {})
    _, negative = call_formatter(loaded)(requests[0], "add_product_review", {})
    (delta,) = extract_vectors(loaded, [ContrastPair(prompt, positive, negative)], "whole", [14])
    vector = SteeringVector(delta, loaded.model_id, loaded.hidden_size)
    norms = reference_norms(loaded)
    vectors = {alpha: None if alpha is None else scale(vector, alpha, reference_norms=norms).to(loaded.device, loaded.dtype)
               for alpha in (None, 0.3, 1.0)}
    return [[HumanMessage(r)] for r in requests], specs, vectors


@pytest.mark.slow
def test_choose_tools_picks_what_greedy_generation_writes(real, decisions):
    """60 real-model decisions (unsteered and steered at two strengths): the tool
    `choose_tools` reads (decoding stopped once the name is unique) is the tool greedy
    generation under the grammar writes, steered the same way."""
    conversations, specs, vectors = decisions
    seen = set()
    for sized in vectors.values():
        chosen = real.choose_tools(conversations, sized, tools=specs, steering_positions="all")
        written = real.generate_batch(conversations, sized, tools=specs, tool_choice="any",
                                      steering_positions="all", max_new_tokens=24)
        names = [(m.tool_calls or m.invalid_tool_calls)[0]["name"] or _name_in(m) for m in written]
        assert chosen == names
        seen.update(chosen)
    assert len(seen) >= 2  # steering changed some decisions: the comparison is not trivial


@pytest.mark.slow
def test_bfloat16_weights_decide_as_float32_weights(real, exact, decisions):
    """The same 60 decisions with the linear layers in float32 (steering.linears): the
    bfloat16 weights `load_model` takes on CPUs with bfloat16 instructions change no tool."""
    if real.get_loaded().linear_form != "bfloat16":
        pytest.skip("this CPU has no native bfloat16: both runs would be float32")
    conversations, specs, vectors = decisions
    for sized in vectors.values():
        assert (real.choose_tools(conversations, sized, tools=specs, steering_positions="all")
                == exact.choose_tools(conversations, sized, tools=specs, steering_positions="all"))


@pytest.fixture(scope="module")
def passes(exact, decisions):
    """40 real steered decisions, each made twice: "decision" steering in one
    generation, and two passes (the tool picked with steering only where the name is
    decided, `choose_tools` under "decision", then the call written unsteered for that tool).
    Float32 weights: one pass writes 20 rows in a batch, the second pass one row at a
    time; with bfloat16 weights oneDNN sums in another order for another row count and
    the bfloat16 result magnifies it, so a near tie between two argument tokens (1 of
    these 40 calls) can fall either way with the batch's shape."""
    conversations, specs, vectors = decisions
    one, two, picked = [], [], []
    for alpha in (0.3, 1.0):
        one += exact.generate_batch(conversations, vectors[alpha], tools=specs, tool_choice="any",
                                    steering_positions="decision", max_new_tokens=48)
        names = exact.choose_tools(conversations, vectors[alpha], tools=specs, steering_positions="decision")
        two += [exact.generate_batch([c], None, tools=specs, tool_choice=name, max_new_tokens=48)[0]
                for c, name in zip(conversations, names)]
        picked += names
    return _calls(one), _calls(two), picked


@pytest.mark.slow
def test_one_decision_pass_picks_the_tool_of_a_steered_pick(passes):
    one, two, picked = passes
    assert [calls[0]["name"] for calls in one] == picked == [calls[0]["name"] for calls in two]
    assert len(set(picked)) >= 2  # the vector moved some decisions


@pytest.mark.slow
def test_one_decision_pass_writes_the_call_of_two_passes(passes):
    """The whole call, arguments included: after the name is decided the one pass reads
    the call so far as the tokenizer spells it, unsteered, as the forced second pass does."""
    one, two, _ = passes
    assert one == two


def _calls(messages) -> list:
    """Each message's calls without their generated ids."""
    return [[call | {"id": ""} for call in (m.tool_calls or m.invalid_tool_calls)] for m in messages]


def _name_in(message) -> str:
    from agent.chat_model import NAME_WRITTEN

    return NAME_WRITTEN.search(str(message.invalid_tool_calls[0]["args"])).group(1)
