"""SteeredChatModel on tiny random models: tools, tool-call shape, steering, batches, prompts."""

from __future__ import annotations

import copy

import pytest
import torch
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from agent.chat_model import NAME_WRITTEN, SteeredChatModel
from agent.prompt import CUE, EXAMPLES, copies_tool_list, format_tools, render_call, render_prompt
from steering import SteeringVector
from tests.helpers.tiny_models import tiny_model
from tools import make_shop_tools


class find_items(BaseModel):
    """Find items matching words."""

    query: str = Field(description="search words")


def end_session() -> str:
    """End the session."""
    return "ended"


@tool
def double(number: int) -> int:
    """Double a number."""
    return 2 * number


OPENAI_TOOL = {"type": "function", "function": {
    "name": "ping", "description": "Ping a host.",
    "parameters": {"type": "object", "properties": {"host": {"type": "string"}}, "required": ["host"]}}}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run far faster on one thread when the cores are shared (no OpenMP
    spinning); restored after the module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def loaded():
    return tiny_model("gemma3", "bpe", seed=1)


@pytest.fixture(scope="module")
def model(loaded) -> SteeredChatModel:
    return SteeredChatModel(loaded=loaded, max_new_tokens=48, max_string_length=8, max_array_items=2)


def vector(loaded, seed: int, scale: float = 30.0) -> SteeringVector:
    generator = torch.Generator().manual_seed(seed)
    tensors = {"whole.0": torch.randn(loaded.hidden_size, generator=generator) * scale}
    return SteeringVector(tensors, loaded.model_id, loaded.hidden_size)


@pytest.mark.parametrize("kind", ["pydantic", "function", "langchain", "openai", "shop"])
def test_bind_tools_with_each_kind_gives_tool_calls(model, kind) -> None:
    tools = {
        "pydantic": [find_items], "function": [end_session], "langchain": [double],
        "openai": [OPENAI_TOOL], "shop": make_shop_tools(object(), user_id="u")[:2],
    }[kind]
    names = {"pydantic": {"find_items"}, "function": {"end_session"}, "langchain": {"double"},
             "openai": {"ping"}, "shop": {"search_product_by_query", "get_recommendations_by_history"}}[kind]
    message = model.bind_tools(tools, tool_choice="any", max_new_tokens=100).invoke("do it")
    assert isinstance(message, AIMessage) and message.content == ""
    (call,) = message.tool_calls
    assert call["name"] in names and call["type"] == "tool_call"
    assert call["id"].startswith("call_") and isinstance(call["args"], dict)
    assert "user_id" not in call["args"]  # injected from state, never generated
    meta = message.response_metadata
    if kind == "langchain":  # this random model writes the integer's digits until the budget,
        assert meta["finish_reason"] == "length" and meta["cut"]["closed_with"] == "}}"  # closed by the grammar
    else:
        assert meta["finish_reason"] == "tool_calls"
    assert message.usage_metadata["output_tokens"] > 0


def test_named_tool_choice_forces_that_tool_and_bad_choice_is_refused(model) -> None:
    bound = model.bind_tools([find_items, end_session, double], tool_choice="double")
    for request in ("find shoes", "stop", "double 4"):
        assert bound.invoke(request).tool_calls[0]["name"] == "double"
    with pytest.raises(ValueError, match="not allowed.*find_items"):
        model.bind_tools([find_items], tool_choice="nope")


def test_without_tools_the_answer_is_text(model) -> None:
    message = model.invoke([SystemMessage("be brief"), HumanMessage("hello")])
    assert isinstance(message.content, str) and not message.tool_calls
    assert "\n" not in message.content  # a base-template turn is one line


def test_auto_choice_gives_a_call_or_text(model) -> None:
    messages = model.generate_batch([[("human", f"request {i}")] for i in range(6)], tools=[find_items])
    for message in messages:
        assert bool(message.tool_calls) != bool(message.content) or message.invalid_tool_calls == []


def test_reciting_the_tool_list_is_recognised() -> None:
    specs = format_tools([find_items, double])
    for recited in ("- find_items: Find items matching words.", "double: Double a number", "Tools:",
                    "Find items matching", "    number (integer)", "1. Find items matching red shoes",
                    "2: double: 4"):
        assert copies_tool_list(recited, specs), recited
    for answer in ("Hello! How can I help?", "The double of 4 is 8.", "Yes", "findings are in",
                   "1. Red shoes, 2. blue socks", "Find items matchingly"):
        assert not copies_tool_list(answer, specs), answer


class Reciter:
    """An output-head hook that makes the model write `ids`, one token per forward,
    wherever the grammar lets it."""

    def __init__(self, ids: list[int]) -> None:
        self.ids, self.step = ids, 0

    def __call__(self, _module, _inputs, logits):
        if self.step < len(self.ids):
            logits = logits.clone()
            logits[..., -1, self.ids[self.step]] += 80.0
        self.step += 1
        return logits


@pytest.mark.parametrize("recital", ["- find_items: Find items matching words.",
                                     "find_items: Find items matching words.", "Tools:"])
def test_auto_choice_on_a_model_that_recites_the_tools_gives_a_call_or_an_answer(recital) -> None:
    """A model that writes the tool list back ("- find_items: ..."): its first step
    may not open a list, and a text that still recites the tools becomes a call (the
    recital kept in the metadata)."""
    loaded = tiny_model("gemma3", "bpe", seed=1)
    reciter = Reciter(loaded.tokenizer(recital, add_special_tokens=False)["input_ids"])
    hook = loaded.model.get_output_embeddings().register_forward_hook(reciter)
    try:
        chat = SteeredChatModel(loaded=loaded, max_new_tokens=24, max_string_length=8)
        (reply,) = chat.generate_batch([[("human", "hello")]], tools=[find_items, double])
    finally:
        hook.remove()
    (call,) = reply.tool_calls  # this model only recites: the recital became a call
    assert call["name"] in ("find_items", "double") and reply.content == ""
    recited = reply.response_metadata["recited_tools"]
    assert copies_tool_list(recited, format_tools([find_items, double]))
    assert not recited.startswith("-")  # the first step could not open a list


def test_steering_changes_only_its_own_call(model, loaded) -> None:
    bound = model.bind_tools([find_items, end_session], tool_choice="any")
    request = "find running shoes"
    fresh = bound.invoke(request)
    steered = bound.invoke(request, steering=vector(loaded, 0))
    after = bound.invoke(request)
    assert steered.tool_calls != fresh.tool_calls or steered.usage_metadata != fresh.usage_metadata
    assert [c | {"id": ""} for c in after.tool_calls] == [c | {"id": ""} for c in fresh.tool_calls]
    via_config = bound.invoke(request, config={"configurable": {"steering": vector(loaded, 0)}})
    assert [c | {"id": ""} for c in via_config.tool_calls] == [c | {"id": ""} for c in steered.tool_calls]


def test_steering_for_another_model_is_refused(model, loaded) -> None:
    alien = SteeringVector({"whole.0": torch.ones(loaded.hidden_size)}, "other-model", loaded.hidden_size)
    with pytest.raises(ValueError, match="other-model"):
        model.invoke("hi", steering=alien)


def test_batch_rows_equal_their_single_runs(model, loaded) -> None:
    conversations = [
        [("human", "find running shoes")],
        [("system", "you help shoppers"), ("human", "stop now please, that is all for today")],
        [("human", "x")],
    ]
    vectors = [vector(loaded, 1), None, vector(loaded, 2)]
    tools = [find_items, end_session]
    batch = model.generate_batch(conversations, steering=vectors, tools=tools, tool_choice="any")
    for conversation, vec, together in zip(conversations, vectors, batch):
        (alone,) = model.generate_batch([conversation], steering=[vec], tools=tools, tool_choice="any")
        assert together.tool_calls[0] | {"id": ""} == alone.tool_calls[0] | {"id": ""}
    with pytest.raises(ValueError, match="2 steering vectors for 3"):
        model.generate_batch(conversations, steering=vectors[:2], tools=tools)


def written_name(message: AIMessage) -> str | None:
    """The tool a message names, even when the rest of its call is malformed."""
    if message.tool_calls:
        return message.tool_calls[0]["name"]
    found = NAME_WRITTEN.search(str(message.invalid_tool_calls[0]["args"]))
    return found.group(1) if found else None


def test_decision_positions_steer_the_tool_and_leave_the_arguments_unsteered(model, loaded) -> None:
    tools = [find_items, double, end_session]
    requests = [[("human", f"please help with item {i}")] for i in range(8)]
    vectors = [vector(loaded, 10 + i, scale=60.0) for i in range(len(requests))]
    plain = model.generate_batch(requests, tools=tools, tool_choice="any")
    decided = model.generate_batch(requests, steering=vectors, tools=tools, tool_choice="any",
                                   steering_positions="decision")
    everywhere = model.generate_batch(requests, steering=vectors, tools=tools, tool_choice="any")
    names = [m.tool_calls[0]["name"] for m in decided]
    # the tool is the one the fully steered model names (its call may be garbled later) ...
    assert names == [written_name(m) for m in everywhere]
    assert names != [m.tool_calls[0]["name"] for m in plain]  # ... which steering changed
    # ... and the arguments are what the unsteered model writes for that tool
    for request, name, message in zip(requests, names, decided):
        (alone,) = model.generate_batch([request], tools=tools, tool_choice=name)
        assert message.tool_calls[0]["args"] == alone.tool_calls[0]["args"]


def test_base_prompt_layout() -> None:
    tools = make_shop_tools(object(), user_id="u")[:3]
    messages = [
        SystemMessage("You are the shop's assistant."),
        HumanMessage("find  adidas\ncleats"),
        AIMessage("", tool_calls=[{"name": "search_product_by_query", "args": {"query": "adidas cleats"}, "id": "1"}]),
        ToolMessage("Top 10 products:\n" + "B00X title " * 100, tool_call_id="1"),
        HumanMessage("and now?"),
    ]
    prompt = render_prompt(messages, tools, examples=EXAMPLES)  # as the shop agent renders it
    assert prompt.startswith("You are the shop's assistant.\n\nTools:\n- search_product_by_query: ")
    assert "user_id" not in prompt and "get_product_details_by_asin" not in prompt
    assert prompt.count("User: ") == 3 + 2  # one example per bound tool + two turns
    call = render_call("search_product_by_query", {"query": "adidas cleats"})
    assert call == '{"name":"search_product_by_query","arguments":{"query":"adidas cleats"}}'
    conversation = prompt[prompt.index("Conversation:"):]
    assert f"User: find adidas cleats\n{CUE}{call}\nResult: Top 10 products: B00X" in conversation
    result_line = next(line for line in conversation.splitlines() if line.startswith("Result:"))
    assert len(result_line) <= len("Result: ") + 400
    assert conversation.endswith("User: and now?\n" + CUE)


def test_a_generic_prompt_is_built_from_the_bound_tools_alone(model, loaded) -> None:
    """The shop's examples belong to the shop agent: a caller that binds tools (even the
    shop's) and passes no examples gets none of them, in the prompt the model reads."""
    tools = make_shop_tools(object(), user_id="u")[:3]
    generic = render_prompt([("human", "hi")], tools)
    assert "Examples:" not in generic and "adidas" not in generic
    assert "Examples:" in render_prompt([("human", "hi")], tools, examples=EXAMPLES)
    read = model.bind_tools(tools, tool_choice="any").invoke("hi").usage_metadata["input_tokens"]
    assert read == len(loaded.tokenizer(generic)["input_ids"])
    shop = model.model_copy(update={"examples": EXAMPLES})
    read = shop.bind_tools(tools, tool_choice="any").invoke("hi").usage_metadata["input_tokens"]
    assert read == len(loaded.tokenizer(render_prompt([("human", "hi")], tools, examples=EXAMPLES))["input_ids"])


def test_chat_template_is_used_when_the_tokenizer_has_one(loaded) -> None:
    tokenizer = copy.deepcopy(loaded.tokenizer)
    tokenizer.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    prompt = render_prompt([("system", "sys"), ("human", "hi")], [find_items], tokenizer=tokenizer, template="auto")
    assert prompt.startswith("<system>sys\n\nTools:\n- find_items: Find items matching words.")
    assert prompt.endswith("<user>hi\n<assistant>")
    with pytest.raises(ValueError, match="no chat template"):
        render_prompt([("human", "hi")], tokenizer=loaded.tokenizer, template="chat")
    chat_model = SteeredChatModel(loaded=copy.copy(loaded), max_new_tokens=48, max_string_length=8)
    chat_model.loaded.tokenizer = tokenizer
    message = chat_model.bind_tools([find_items], tool_choice="any").invoke("find shoes")
    assert message.tool_calls[0]["name"] == "find_items"


@pytest.mark.parametrize("reuse", ["always", "exact"])
def test_reusing_the_shared_prefix_changes_no_decision(loaded, reuse, monkeypatch) -> None:
    """The instructions every prompt shares are computed once (unsteered) and reused;
    decisions must be the same as computing every prompt in full. "exact" recomputes
    the layers a vector changes ("always" does not: with this vector at layer 0's
    output and 2 layers, its decisions are the same here too)."""
    conversations = [[("human", "find running shoes")], [("human", "stop now please")], [("human", "x")]]
    vectors = [vector(loaded, 3, scale=5.0), None, vector(loaded, 4, scale=5.0)]
    tools = [find_items, end_session]
    reused = SteeredChatModel(loaded=loaded, max_new_tokens=48, max_string_length=8, max_array_items=2,
                              reuse_prefix=reuse)
    full = SteeredChatModel(loaded=loaded, max_new_tokens=48, max_string_length=8, max_array_items=2,
                            reuse_prefix="never")
    from steering.prefix import PrefixCache

    loaded.prefixes = PrefixCache()  # start from nothing: no previous prompt to compare with
    reruns: list[int] = []
    rerun = PrefixCache.rerun_layers
    monkeypatch.setattr(PrefixCache, "rerun_layers",
                        lambda self, *args: (reruns.append(args[-1]), rerun(self, *args))[1])
    for convs, vecs in ((conversations, vectors), (conversations[1:2], vectors[1:2]),
                        (conversations[2:], vectors[2:]), (conversations[:2], None)):
        a = reused.generate_batch(convs, steering=vecs, tools=tools, tool_choice="any")
        b = full.generate_batch(convs, steering=vecs, tools=tools, tool_choice="any")
        assert [m.tool_calls[0] | {"id": ""} for m in a] == [m.tool_calls[0] | {"id": ""} for m in b]
    # the 1st call's rows differ: it stores what they share; the others (the 3rd
    # steered) reuse it
    assert (loaded.prefixes.misses, loaded.prefixes.hits) == (1, 3)
    # "exact" reruns the steered calls (1st, 3rd) from layer 1 (above whole.0); unsteered
    # calls and "always" keep both layers (start 2: nothing is run again)
    assert reruns == ([2, 2, 2, 2] if reuse == "always" else [1, 2, 1, 2])


def test_decision_steering_reuses_the_prefix(loaded) -> None:
    """The one pass of "decision" steering takes the shared instructions from the cache
    (it steers only where the name is decided, after the prompt, so it reuses every
    layer), with the same calls as computing everything."""
    from steering.prefix import PrefixCache

    tools = [find_items, double, end_session]
    requests = [[("human", f"please help with item {i}")] for i in range(3)]
    vectors = [vector(loaded, 20 + i, scale=60.0) for i in range(3)]
    kwargs = dict(max_new_tokens=48, max_string_length=8, max_array_items=2, steering_positions="decision")
    loaded.prefixes = PrefixCache()
    reused = SteeredChatModel(loaded=loaded, reuse_prefix="exact", **kwargs)
    full = SteeredChatModel(loaded=loaded, reuse_prefix="never", **kwargs)
    for request, vec in zip(requests, vectors):
        (a,) = reused.generate_batch([request], steering=[vec], tools=tools, tool_choice="any")
        (b,) = full.generate_batch([request], steering=[vec], tools=tools, tool_choice="any")
        assert a.tool_calls[0] | {"id": ""} == b.tool_calls[0] | {"id": ""}
    # the 1st decision only records its prompt; the 2nd, the same instructions with
    # another request, stores them; the 3rd reuses them
    assert (loaded.prefixes.misses, loaded.prefixes.hits) == (1, 1)


def test_pack_rows_pads_on_the_left() -> None:
    from steering import pack_rows

    ids, mask = pack_rows([[3, 4], [5]], pad=0)
    assert ids.tolist() == [[3, 4], [0, 5]]
    assert mask.tolist() == [[1, 1], [0, 1]]
