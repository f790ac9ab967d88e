"""The LangGraph agent with a scripted chat model over a real shop and a real memory store.

The chat model is scripted (it returns given tool calls and records the steering it was
handed), so these tests pin the graph's wiring; the real model runs in the slow tests.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.memory import InMemorySaver

from agent.decide import Decider, Row, as_tools_read
from agent.graph import AgentDeps, build_graph
from agent.methods import parse_method
from common.embedding import load_embedder
from memory import MemoryEntry, MemoryStore, digest_arguments, make_entry_id
from memory.learner import Learner, negative_policy, steering_extractor
from tests.helpers.tiny_models import tiny_model
from tools import make_shop_tools

SEARCH = {"name": "search_product_by_query", "args": {"query": "backpacking tent"}}
RECOMMEND = {"name": "get_recommendations_by_history", "args": {"product_sequence": ["B0TENT0001"]}}


class ScriptedChat(BaseChatModel):
    """Returns the scripted calls in order; records the steering of every call. The
    decision path calls `generate_batch`, as it does on `SteeredChatModel`."""

    script: list[Any]
    seen: list[dict[str, Any]] = []

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        step = self.script[len(self.seen)] if len(self.seen) < len(self.script) else self.script[-1]
        self.seen.append({"messages": list(messages), "steering": kwargs.get("steering"),
                          "bound": kwargs.get("bound")})
        if isinstance(step, Exception):
            raise step
        if callable(step):  # a call chosen from the conversation (episodes run at once)
            step = step(messages)
        message = AIMessage(content="", tool_calls=[{**step, "id": f"call{len(self.seen)}"}])
        return ChatResult(generations=[ChatGeneration(message=message)])

    def generate_batch(self, conversations, steering=None, *, tools=None, tool_choice=None,
                       steering_positions="all"):
        vectors = steering or [None] * len(conversations)
        bound = [getattr(t, "name", None) for t in tools or []]
        return [self.invoke(messages, steering=vector, bound=bound)
                for messages, vector in zip(conversations, vectors)]


@pytest.fixture(scope="module")
def model():
    return tiny_model("gemma3")


@pytest.fixture(scope="module")
def store(tmp_path_factory, model):
    store = MemoryStore(tmp_path_factory.mktemp("mem"), model.model_id, model.hidden_size, load_embedder())
    rng = np.random.default_rng(0)
    entries = []
    for user, requests in {"U_CAMPER01": ["something for my trips outdoors", "stuff for camping"],
                           "U_COFFEE01": ["something for my morning brew"]}.items():
        for i, request in enumerate(requests):
            vectors = {k: rng.normal(size=32).astype(np.float32) for k in ("whole.1", "attn.1", "mlp.1")}
            entries.append(MemoryEntry(user, request, vectors, RECOMMEND["name"],
                                       digest_arguments(RECOMMEND["args"]), time.time() - i,
                                       "bootstrap", make_entry_id(user, request)))
    store.add(entries)
    yield store
    store.close()


class Writer:
    def __init__(self, fail: bool = False):
        self.episodes, self.fail = [], fail

    def submit(self, episode) -> bool:
        if self.fail:
            raise RuntimeError("disk full")
        self.episodes.append(episode)
        return True


def make(sample_http, model, store, script, method="steer-attn+mlp-attentive", **kw):
    chat = ScriptedChat(script=script, seen=[])
    chosen = parse_method(method, layers=[1], alpha=1.0, threshold=0.2)
    learner = Learner(store, steering_extractor(model, ["whole", "attn", "mlp"], [1]),
                      negative_policy("other-tools", tools=[SEARCH["name"], RECOMMEND["name"]]), model=model)
    prompt_memory = kw.pop("prompt_memory", None)
    deps = AgentDeps(decider=Decider(chat, learner, prompt_memory), tools=make_shop_tools(sample_http),
                     method=chosen, model_id=model.model_id, hidden_size=model.hidden_size, **kw)
    return chat, deps


def run(graph, user, request, thread="t", **configurable):
    config = {"configurable": {"thread_id": thread, **configurable}}
    return graph.invoke({"messages": [HumanMessage(request)], "user_id": user}, config)


def test_single_turn_steers_calls_the_shop_and_queues_memory(sample_http, model, store):
    writer = Writer()
    chat, deps = make(sample_http, model, store, [SEARCH], memory_writer=writer)
    state = run(build_graph(deps, InMemorySaver()), "U_CAMPER01", "need something for camping trips")
    tool_message = state["messages"][-1]
    assert isinstance(tool_message, ToolMessage) and "Backpacking Tent" in tool_message.content
    assert state["steering"]["applied"] is True
    assert {e["request"] for e in state["steering"]["entries"]} <= {"something for my trips outdoors", "stuff for camping"}
    vector = chat.seen[0]["steering"]
    assert sorted(vector.tensors) == ["attn.1", "mlp.1"]
    assert [e.tool for e in writer.episodes] == ["search_product_by_query"]
    assert state["memory"]["queued"] is True


def test_unknown_user_is_unsteered_and_says_so(sample_http, model, store):
    chat, deps = make(sample_http, model, store, [SEARCH])
    state = run(build_graph(deps), "U_NOBODY", "need something for camping trips")
    assert state["steering"]["applied"] is False
    assert "U_NOBODY" in state["steering"]["reason"]
    assert chat.seen[0]["steering"] is None


def test_steering_never_uses_another_users_entries(sample_http, model, store):
    chat, deps = make(sample_http, model, store, [SEARCH])
    state = run(build_graph(deps), "U_COFFEE01", "something for camping outdoors")
    used = state["steering"].get("entries", [])
    assert all(e["request"] == "something for my morning brew" for e in used)


def test_zero_shot_and_prompt_memory_add_no_vector(sample_http, model, store):
    from agent.prompt_memory import PastCall, PromptMemory

    memory = PromptMemory(load_embedder())
    memory.extend("U_CAMPER01", [PastCall("stuff for camping", RECOMMEND["name"], RECOMMEND["args"])])
    for method in ("zero-shot", "prompt-k1"):
        chat, deps = make(sample_http, model, store, [SEARCH], method=method, prompt_memory=memory)
        run(build_graph(deps), "U_CAMPER01", "need something for camping trips")
        assert chat.seen[0]["steering"] is None
        prompt = "\n".join(str(m.content) for m in chat.seen[0]["messages"])
        assert ("stuff for camping" in prompt) == (method == "prompt-k1")


def test_nearest_call_copies_the_users_most_similar_past_call_without_the_model(sample_http, model, store):
    from agent.prompt_memory import PastCall, PromptMemory

    memory = PromptMemory(load_embedder())
    memory.extend("U_CAMPER01", [PastCall("stuff for camping trips", SEARCH["name"], SEARCH["args"]),
                                 PastCall("review my stove", "add_product_review", {"review": "Good."})])
    memory.extend("U_COFFEE01", [PastCall("camping trips gear", RECOMMEND["name"], RECOMMEND["args"])])
    chat, deps = make(sample_http, model, store, [RECOMMEND], method="nearest-call", prompt_memory=memory)
    state = run(build_graph(deps), "U_CAMPER01", "need something for camping trips")
    assert chat.seen == []  # no model ran
    call = state["messages"][1].tool_calls[0]
    assert (call["name"], call["args"]) == (SEARCH["name"], SEARCH["args"])
    assert "Backpacking Tent" in state["messages"][-1].content
    alone = run(build_graph(deps), "U_NOBODY", "need something for camping trips", thread="t2")
    assert not alone["messages"][-1].tool_calls and "no past interaction" in alone["messages"][-1].content
    assert chat.seen == []


def test_a_tool_error_goes_back_to_the_model_once_then_is_reported(sample_http, model, store):
    bad = {"name": "get_product_details_by_asin", "args": {"product_asin": "B0NOSUCH99"}}
    chat, deps = make(sample_http, model, store, [bad, bad, SEARCH])
    state = run(build_graph(deps), "U_CAMPER01", "details of that tent")
    assert len(chat.seen) == 2  # the first error was returned once, the second ends the episode
    assert state["messages"][-1].content.startswith("Error")
    assert "B0NOSUCH99" in state["messages"][-1].content


def test_multi_turn_with_a_simulated_user_ends_at_the_first_action(sample_http, model, store):
    """PersonalWAB's protocol: talk as long as needed; the first shop action answers the
    task and ends the episode. With a person instead, the agent goes on after it."""
    talk = {"name": "respond", "args": {"content": "Which brand do you like?"}}
    stop = {"name": "stop", "args": {}}
    answers = []
    chat, deps = make(sample_http, model, store, [talk, SEARCH, stop])
    run(build_graph(deps), "U_CAMPER01", "something for camping", simulated_user=answers.append)
    assert len(chat.seen) == 1 and answers == []  # the single-turn track: one call, done
    chat, deps = make(sample_http, model, store, [talk, SEARCH, stop])
    state = build_graph(deps).invoke(
        {"messages": [HumanMessage("something for camping")], "user_id": "U_CAMPER01", "track": "multi"},
        {"configurable": {"thread_id": "m", "simulated_user": lambda text: answers.append(text) or "Northpeak, please"}},
    )
    assert answers == ["Which brand do you like?"]
    assert [c["name"] for m in state["messages"] if isinstance(m, AIMessage) for c in m.tool_calls] == [
        "respond", "search_product_by_query"]
    assert isinstance(state["messages"][-1], ToolMessage) and "Backpacking Tent" in state["messages"][-1].content
    assert state["steps"] == 2 and len(state["steering_log"]) == 2  # steered before each generation
    chat, deps = make(sample_http, model, store, [SEARCH, stop])
    state = build_graph(deps).invoke(  # no simulated user: a person reads the results
        {"messages": [HumanMessage("something for camping")], "user_id": "U_CAMPER01", "track": "multi"},
        {"configurable": {"thread_id": "p"}},
    )
    assert state["steps"] == 2 and state["messages"][-2].tool_calls[0]["name"] == "stop"


def test_a_simulated_user_who_is_done_ends_the_episode(sample_http, model, store):
    from tools.simulated_user import STOP as USER_DONE

    talk = {"name": "respond", "args": {"content": "Which brand do you like?"}}
    chat, deps = make(sample_http, model, store, [talk, SEARCH])
    state = build_graph(deps).invoke(
        {"messages": [HumanMessage("something for camping")], "user_id": "U_CAMPER01", "track": "multi"},
        {"configurable": {"thread_id": "done", "simulated_user": lambda text: USER_DONE}},
    )
    assert len(chat.seen) == 1 and state["steps"] == 1
    assert state["messages"][-1].content == USER_DONE and state["memory"]["queued"] is False


def test_a_question_the_user_already_answered_is_replaced_by_an_action(sample_http, model, store):
    talk = {"name": "respond", "args": {"content": "Which brand do you like?"}}
    other = {"name": "respond", "args": {"content": "And your budget?"}}
    again = {"name": "respond", "args": {"content": "which brand do you  like?"}}
    stop = {"name": "stop", "args": {}}
    chat, deps = make(sample_http, model, store, [talk, other, again, SEARCH, stop])
    state = build_graph(deps).invoke(
        {"messages": [HumanMessage("something for camping")], "user_id": "U_CAMPER01", "track": "multi"},
        {"configurable": {"thread_id": "again", "simulated_user": lambda text: "Northpeak, please"}},
    )
    assert [c["name"] for m in state["messages"] if isinstance(m, AIMessage) for c in m.tool_calls] == [
        "respond", "respond", "search_product_by_query"]
    assert len(chat.seen) == 4 and state["steps"] == 3  # asked again, without respond bound
    assert "respond" in chat.seen[2]["bound"]
    assert not {"respond", "stop"} & set(chat.seen[3]["bound"]) and SEARCH["name"] in chat.seen[3]["bound"]
    assert any("replaced by an action" in n for n in state["notices"])


def test_memory_that_knows_the_request_acts_at_the_first_step(sample_http, model, store):
    """A user whose memory holds requests like this one is not asked first: the first
    step binds only the shop's actions, later steps may talk again; a user memory knows
    nothing of may be asked."""
    talk = {"name": "respond", "args": {"content": "Which brand do you like?"}}
    stop = {"name": "stop", "args": {}}
    chat, deps = make(sample_http, model, store, [SEARCH, stop])
    state = build_graph(deps).invoke(  # a person reads the results, so the agent goes on
        {"messages": [HumanMessage("need something for camping trips")], "user_id": "U_CAMPER01", "track": "multi"},
        {"configurable": {"thread_id": "known"}},
    )
    assert state["steering"]["applied"] is True and state["steps"] == 2
    assert not {"respond", "stop"} & set(chat.seen[0]["bound"]) and SEARCH["name"] in chat.seen[0]["bound"]
    assert {"respond", "stop"} <= set(chat.seen[1]["bound"])
    chat, deps = make(sample_http, model, store, [talk, SEARCH])
    state = build_graph(deps).invoke(
        {"messages": [HumanMessage("need something for camping trips")], "user_id": "U_NOBODY", "track": "multi"},
        {"configurable": {"thread_id": "unknown", "simulated_user": lambda text: "Northpeak, please"}},
    )
    assert state["steering"]["applied"] is False and "respond" in chat.seen[0]["bound"]
    assert [c["name"] for m in state["messages"] if isinstance(m, AIMessage) for c in m.tool_calls] == [
        "respond", "search_product_by_query"]


def test_multi_turn_stops_at_the_step_limit(sample_http, model, store):
    chat, deps = make(sample_http, model, store, [SEARCH], max_steps=3)
    state = build_graph(deps).invoke(
        {"messages": [HumanMessage("tents")], "user_id": "U_CAMPER01", "track": "multi"},
        {"configurable": {"thread_id": "x"}},
    )
    assert state["steps"] == 3


def test_an_interrupted_episode_resumes_from_the_checkpoint(sample_http, model, store, tmp_path):
    from langgraph.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(str(tmp_path / "ckpt.sqlite")) as saver:
        chat, deps = make(sample_http, model, store, [RuntimeError("killed mid-episode"), SEARCH])
        graph = build_graph(deps, saver)
        config = {"configurable": {"thread_id": "resume"}}
        with pytest.raises(RuntimeError, match="killed"):
            graph.invoke({"messages": [HumanMessage("tent please")], "user_id": "U_CAMPER01"}, config)
        assert graph.get_state(config).next == ("llm",)  # steer is done and checkpointed
        state = graph.invoke(None, config)
    assert isinstance(state["messages"][-1], ToolMessage)
    assert len(state["steering_log"]) == 1  # steering was not redone
    assert chat.seen[1]["steering"] is not None  # and the resumed call got the same vector


def test_a_failing_memory_writer_never_loses_the_answer(sample_http, model, store):
    chat, deps = make(sample_http, model, store, [SEARCH], memory_writer=Writer(fail=True))
    state = run(build_graph(deps), "U_CAMPER01", "camping")
    assert isinstance(state["messages"][-1], ToolMessage)
    assert state["memory"]["queued"] is False and "disk full" in state["memory"]["reason"]


def test_bad_requests(sample_http, model, store):
    chat, deps = make(sample_http, model, store, [SEARCH])
    graph = build_graph(deps)
    with pytest.raises(ValueError, match="empty request"):
        run(graph, "U_CAMPER01", "   ")
    state = run(graph, "U_CAMPER01", "tent " * 1000)
    assert any("truncated" in n for n in state["notices"])


def test_concurrent_episodes_keep_their_own_context(sample_http, model, store):
    """Two users' episodes at once, each with its own product under review and time:
    every stored review is on its own episode's product, and every recommendation from
    the purchase history reads it up to its own episode's time (no shared per-call state)."""
    from concurrent.futures import ThreadPoolExecutor
    from dataclasses import replace

    review = {"name": "add_product_review", "args": {"review": "Works as it should."}}
    recommend = {"name": RECOMMEND["name"], "args": {}}  # from the purchase history up to as_of

    def by_request(messages):
        return review if "review" in messages[-1].content else recommend

    _, deps = make(sample_http, model, store, [by_request], method="zero-shot")
    histories: list[tuple[str, float | None]] = []  # (user, as_of) per history read

    def history(user: str, as_of: float | None) -> list[str]:
        histories.append((user, as_of))
        return ["B0TENT0001"]

    graph = build_graph(replace(deps, tools=make_shop_tools(sample_http, history=history)))
    asked = {"U_CAMPER01": "B0TENT0001", "U_COFFEE01": "B0PAD00003"}

    def episode(index: int) -> tuple[int, str, str | None]:
        user = list(asked)[index % 2]
        request = "write my review" if index % 4 < 2 else "recommend me something"
        state = graph.invoke({"messages": [HumanMessage(request)], "user_id": user,
                              "review_asin": asked[user], "as_of": float(index)},
                             {"configurable": {"thread_id": f"t{index}"}})
        stored = state["messages"][-1].artifact.review
        return index, user, stored.product_asin if stored is not None else None

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(episode, range(16)))
    assert len({user for _, user, _ in results}) == 2
    reviews = [(user, asin) for index, user, asin in results if index % 4 < 2]
    assert len(reviews) == 8 and all(asin == asked[user] for user, asin in reviews), results
    # each recommending episode read the history once, as its own user at its own time
    wanted = sorted((list(asked)[i % 2], float(i)) for i in range(16) if i % 4 >= 2)
    assert sorted(histories) == wanted, histories


def test_a_call_is_recorded_as_its_tool_reads_it() -> None:
    """The search query the model wrote with underscores and a JSON key is the one the
    shop's tool runs, cleaned; the message carries the cleaned one, other calls are
    left as written, and arguments the schema refuses stay as they were."""
    tools = make_shop_tools(object(), user_id="u")

    def call(name: str, args: dict) -> AIMessage:
        return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": "c1", "type": "tool_call"}])

    read = as_tools_read(call("search_product_by_query", {"query": '"query": smart_light_bulb'}), tools)
    assert read.tool_calls[0]["args"] == {"query": "smart light bulb"}
    review = call("add_product_review", {"review": "I_like_it"})
    assert as_tools_read(review, tools) is review
    odd = call("search_product_by_query", {"query": 42})
    assert as_tools_read(odd, tools).tool_calls[0]["args"] == {"query": 42}


def test_a_search_names_the_brands_the_user_chose_for_like_items(sample_http, model, store):
    """The brands come from this user's past items most like the request, never another
    user's; a brand the model already wrote is not repeated; zero-shot has no memory."""
    from agent.prompt_memory import PastCall, PromptMemory

    memory = PromptMemory(load_embedder())
    memory.extend("U_CAMPER01", [
        PastCall("stuff for camping", SEARCH["name"], SEARCH["args"], 1.0, "Trailmo Dome Tent, 2 person", "Trailmo"),
        PastCall("my coffee", SEARCH["name"], SEARCH["args"], 2.0, "Brewlo Burr Coffee Grinder", "Brewlo"),
        PastCall("old bag", SEARCH["name"], SEARCH["args"], 3.0, "Packly Hiking Backpack", "Packly"),
    ])
    memory.extend("U_COFFEE01", [PastCall("a tent", SEARCH["name"], SEARCH["args"], 1.0, "Otherly Tent", "Otherly")])
    assert memory.brands("U_CAMPER01", "a tent for camping trips", 1) == ["Trailmo"]
    assert memory.brands("U_CAMPER01", "a tent for camping trips", 3)[-1] == "Brewlo"
    assert memory.brands("U_NOBODY", "a tent for camping trips", 3) == []
    assert memory.brands("U_COFFEE01", "a tent for camping trips", 3) == ["Otherly"]

    for method, query in (("prompt-k1", "Trailmo backpacking tent"), ("zero-shot", "backpacking tent")):
        chat, deps = make(sample_http, model, store, [SEARCH], method=method, prompt_memory=memory)
        deps = replace(deps, method=parse_method(method, brands=1))
        state = run(build_graph(deps), "U_CAMPER01", "a tent for camping trips")
        call = state["messages"][1].tool_calls[0]
        assert call["args"]["query"] == query
        assert "Backpacking Tent" in state["messages"][-1].content
    written = {"name": SEARCH["name"], "args": {"query": "trailmo tent"}}
    chat, deps = make(sample_http, model, store, [written], method="prompt-k1", prompt_memory=memory)
    deps = replace(deps, method=parse_method("prompt-k1", brands=2))
    state = run(build_graph(deps), "U_CAMPER01", "a tent for camping trips")
    assert state["messages"][1].tool_calls[0]["args"]["query"] == "Packly trailmo tent"


def test_brands_come_from_the_category_the_request_is_about():
    """With a catalog, brands are the user's own in the request's category: the ones
    their profile declares that the catalog sells there first, then the most bought and
    the latest among equals, although another brand's item is more alike; a category
    the user neither bought in nor declares a brand for, or no catalog, falls back to
    the nearest items."""
    from agent.prompt_memory import Categories, PastCall, PromptMemory

    catalog = Categories.from_products([
        ("Trailmo Dome Tent, 2 person", "Sports", "Trailmo"), ("Packly Hiking Backpack", "Sports", "Packly"),
        ("Ventro Camping Stove", "Sports", "Ventro"), ("Hikra Trail Tent", "Sports", "Hikra"),
        ("Brewlo Burr Coffee Grinder", "Kitchen", "Brewlo"), ("Steamo Coffee Maker", "Kitchen", "Steamo"),
        ("Yogi Yoga Mat", "Fitness", "Yogi"), ("", "Fitness", "Nameless")])
    assert catalog.sold["Sports"] == {"Trailmo", "Packly", "Ventro", "Hikra"}
    assert catalog.of("a coffee grinder") == "Kitchen"
    assert catalog.of("new tent") == "Sports"
    assert catalog.of("something else entirely") is None

    def past(t: float, title: str, brand: str, category: str) -> PastCall:
        return PastCall("old request", SEARCH["name"], SEARCH["args"], t, title, brand, category)

    calls = [past(1.0, "Trailmo Dome Tent", "Trailmo", "Sports"), past(2.0, "Brewlo Grinder", "Brewlo", "Kitchen"),
             past(3.0, "Packly Hiking Backpack", "Packly", "Sports"), past(4.0, "Packly Day Pack", "Packly", "Sports"),
             past(5.0, "Ventro Camping Stove", "Ventro", "Sports"), past(6.0, "Brewlo Tent Stakes", "Brewlo", "")]
    memory = PromptMemory(load_embedder(), categories=catalog)
    memory.extend("U1", calls)
    memory.extend("U2", [past(1.0, "Steamo Coffee Maker", "Steamo", "Kitchen")])
    assert memory.brands("U1", "a new tent", 3) == ["Packly", "Ventro", "Trailmo"]
    assert memory.brands("U1", "a coffee grinder", 3) == ["Brewlo"]
    assert memory.brands("U2", "a new tent", 3) == ["Steamo"]  # no Sports item: nearest ones
    # declared brands the catalog sells in the category lead, bought or not; a declared
    # brand of another category, or one the catalog does not sell, is not named
    memory.declare("U1", ["Hikra", "Steamo", "Unknownco", "Ventro"])
    assert memory.brands("U1", "a new tent", 3) == ["Ventro", "Hikra", "Packly"]
    assert memory.brands("U1", "a new tent", 5) == ["Ventro", "Hikra", "Packly", "Trailmo"]
    memory.declare("U2", ["Hikra"])
    assert memory.brands("U2", "a new tent", 3) == ["Hikra"]
    memory.declare("U3", ["Hikra"])  # a profile and no purchases yet
    assert memory.brands("U3", "a new tent", 3) == ["Hikra"]
    assert memory.brands("U3", "a yoga mat", 3) == []
    assert memory.brands("U4", "a new tent", 3) == []  # an unknown user: nothing, never U1's
    plain = PromptMemory(load_embedder())
    plain.extend("U1", calls)
    assert plain.brands("U1", "a new tent", 1) == ["Trailmo"]


def test_a_recommendation_reads_the_purchases_in_the_requests_category():
    """A memory method's recommendation that names no products gets the user's own
    purchases in the category the request is about, oldest first; one that names
    products, a request of an unknown category, another user and zero-shot keep theirs."""
    from agent.prompt_memory import Categories, PastCall, PromptMemory, Purchase

    catalog = Categories.from_products([
        ("Trailmo Dome Tent", "Sports", "Trailmo"), ("Packly Hiking Backpack", "Sports", "Packly"),
        ("Brewlo Burr Coffee Grinder", "Kitchen", "Brewlo")])
    memory = PromptMemory(load_embedder(), categories=catalog)
    # purchases with no request that led to them (an imported history), and a past call
    # about a tent that bought nothing
    memory.record("U1", [Purchase("B0PACK0001", "Sports", 3.0), Purchase("B0TENT0001", "Sports", 1.0),
                         Purchase("B0GRND0001", "Kitchen", 2.0)])
    memory.extend("U1", [PastCall("a tent", SEARCH["name"], SEARCH["args"], 4.0, "Trailmo Dome Tent", "", "Sports")])
    decider = Decider(None, None, memory)

    def sequence(method: str, user: str, request: str, args: dict) -> Any:
        message = AIMessage(content="", tool_calls=[{"name": RECOMMEND["name"], "args": args, "id": "c"}])
        made = decider.personal_terms(parse_method(method), Row(user, request), message)
        return made.tool_calls[0]["args"].get("product_sequence"), made.response_metadata.get("purchases_added")

    assert sequence("prompt-k1", "U1", "recommend me a new tent", {}) == (["B0TENT0001", "B0PACK0001"],) * 2
    assert sequence("steer-whole-attentive", "U1", "a coffee grinder to go with my beans",
                    {"product_sequence": []}) == (["B0GRND0001"],) * 2
    assert sequence("prompt-k1", "U1", "recommend a tent", {"product_sequence": ["B0GRND0001"]}) == (["B0GRND0001"], None)
    assert sequence("prompt-k1", "U1", "something else entirely", {}) == (None, None)
    assert sequence("prompt-k1", "U2", "recommend me a new tent", {}) == (None, None)
    assert sequence("zero-shot", "U1", "recommend me a new tent", {}) == (None, None)
    off = replace(parse_method("prompt-k1"), category_purchases=False)
    message = AIMessage(content="", tool_calls=[{"name": RECOMMEND["name"], "args": {}, "id": "c"}])
    assert decider.personal_terms(off, Row("U1", "recommend me a new tent"), message).tool_calls[0]["args"] == {}


def test_brands_never_push_a_query_past_the_shops_limit_nor_fill_an_empty_one():
    from agent.prompt_memory import PastCall, PromptMemory
    from tools.shop.models import MAX_QUERY_CHARS

    memory = PromptMemory(load_embedder())
    memory.extend("U1", [PastCall("a tent", SEARCH["name"], SEARCH["args"], 1.0, "Trailmo Dome Tent", "Trailmo")])
    decider = Decider(None, None, memory)
    method = parse_method("prompt-k1", brands=3)

    def written(query: str) -> str:
        message = AIMessage(content="", tool_calls=[{"name": SEARCH["name"], "args": {"query": query}, "id": "c"}])
        return decider.personal_terms(method, Row("U1", "a tent please"), message).tool_calls[0]["args"]["query"]

    assert written("dome tent") == "Trailmo dome tent"
    assert written("x" * MAX_QUERY_CHARS) == "x" * MAX_QUERY_CHARS
    assert written("  ") == "  "


def test_a_review_ends_with_sentences_in_the_users_voice():
    """The user's voice is the sentences of their reviews of at least two kinds of
    product (category, else product) with no figure, most written first, the latest
    among equals; memory methods append those a review lacks, within the shop's limit;
    zero-shot, an empty review and one the sentences would take past the limit are
    unchanged."""
    from agent.prompt_memory import PastCall, PromptMemory
    from memory.keys import IntentKeys
    from tools.shop.models import MAX_REVIEW_CHARS

    def past(review: str, category: str = "Outdoors", item: str = "Trailmo Tent") -> PastCall:
        return PastCall("review it", "add_product_review", {"review": review}, 1.0, item, "Trailmo", category, review)

    memory = PromptMemory(load_embedder(), IntentKeys())
    memory.extend("U1", [past("The Trailmo tent is great. Would buy again. The build feels solid."),
                         past("The Trailmo tent is great. Can't complain! It cost $40, worth it."),
                         past("Stove works. Would buy again! Can't complain. It cost $40, worth it.", "Kitchen"),
                         past("The build feels solid. Kettle boils fast.", "Kitchen")])
    # Two uncategorised reviews are of two products; two of one product are not two kinds.
    memory.extend("U2", [past("Would buy again. Solid.", "", "Mug"), past("Would buy again.", "", "Pan"),
                         past("Nothing more to say.", "", "Pan"), past("Nothing more to say.", "", "Pan")])
    # three sentences twice each, the latest written first (as last written); the tent
    # sentence is of one category, the price has a figure
    assert memory.voice("U1", 4) == ["The build feels solid.", "Can't complain.", "Would buy again!"]
    assert memory.voice("U1", 1) == ["The build feels solid."]
    assert memory.voice("U2", 4) == ["Would buy again."]
    assert memory.voice("U_NOBODY", 4) == [] and memory.voice("U1", 0) == []
    decider = Decider(None, None, memory)

    def written(method: str, review: str, user: str = "U1", voice: int = 2) -> str:
        message = AIMessage(content="", tool_calls=[{"name": "add_product_review", "args": {"review": review}, "id": "c"}])
        return decider.personal_terms(parse_method(method, voice=voice), Row(user, "review my stove"),
                                      message).tool_calls[0]["args"]["review"]

    assert written("steer-whole-attentive", "It heats fast. ") == "It heats fast. The build feels solid. Can't complain."
    assert written("steer-whole-attentive", "It heats fast") == "It heats fast. The build feels solid. Can't complain."
    assert written("prompt-k1", "It heats fast, can't complain.") == "It heats fast, can't complain. The build feels solid."
    assert written("prompt-k1", "It heats fast.", voice=0) == "It heats fast."

    def cut(review: str) -> str:  # the token budget ended the review
        call = {"name": "add_product_review", "args": {"review": review}, "id": "c"}
        message = AIMessage(content="", tool_calls=[call],
                            response_metadata={"cut": {"max_new_tokens": 60, "closed_with": '"}}'}})
        made = decider.personal_terms(parse_method("prompt-k1", voice=1), Row("U1", "review my stove"), message)
        assert made.response_metadata["voice_added"] == ["The build feels solid."]
        return made.tool_calls[0]["args"]["review"]

    assert cut("It heats fast. The lid is a bit loo") == "It heats fast. The build feels solid."
    assert cut("It heats fast and the lid fits, I") == "It heats fast and the lid fits. The build feels solid."
    assert cut("It heats fast!") == "It heats fast! The build feels solid."
    assert written("zero-shot", "It heats fast.") == "It heats fast."
    assert written("prompt-k1", " ") == " "
    assert written("prompt-k1", "It heats fast. Would buy again.", "U2") == "It heats fast. Would buy again."
    long = "x" * (MAX_REVIEW_CHARS - 20)
    assert written("prompt-k1", long) == long


def test_prompt_memory_learns_what_the_live_agent_wrote():
    """An accepted interaction of the live agent (the online writer's episode) becomes a
    past call, and an accepted review's text joins the user's voice (each online review
    its own kind of product); anything not accepted is left out."""
    from agent.prompt_memory import PromptMemory
    from memory.online import Episode

    memory = PromptMemory(load_embedder())
    memory.learn(Episode("U1", "review my kettle", "add_product_review", {"review": "Boils fast. Love it."}))
    assert memory.voice("U1", 4) == []  # one review: nothing repeats yet
    memory.learn(Episode("U1", "review my lamp", "add_product_review", {"review": "Bright. Love it!"}, timestamp=1.7e12))
    memory.learn(Episode("U1", "review my mug", "add_product_review", {"review": "Ugly. Meh."}, outcome="abandoned"))
    memory.learn(Episode("U1", "find a desk", "search_product_by_query", {"query": "oak desk"}))
    assert memory.voice("U1", 4) == ["Love it!"] and memory.voice("U2", 4) == []
    found = memory.top_k("U1", "find a desk for my study", 1)[0]
    assert (found.tool, found.arguments, found.review) == ("search_product_by_query", {"query": "oak desk"}, "")
    assert memory.count("U1") == 3


def test_learnt_and_data_set_calls_keep_time_in_one_unit(tmp_path):
    """A call the live agent learns and the same call read from the data set (whose
    timestamps are milliseconds, as in PersonalWAB) carry the same time, so "the latest"
    means the same for both."""
    from agent.prompt_memory import PromptMemory
    from memory.online import Episode
    from tools.data import generate_dataset, load_dataset

    dataset = load_dataset(generate_dataset(tmp_path, users=3, seed=0))
    task = next(t for t in dataset.train if t.gold_call is not None)
    memory = PromptMemory.from_dataset(dataset, load_embedder(), users=[task.user_id])
    memory.learn(Episode(task.user_id, task.task, task.gold_call.name, dict(task.gold_call.arguments),
                         timestamp=task.timestamp))
    same = [c for c in memory.top_k(task.user_id, task.task, memory.count(task.user_id)) if c.request == task.task]
    assert len(same) == 2 and task.timestamp > 1e11  # the data set's own unit is milliseconds
    assert same[0].timestamp == same[1].timestamp == task.timestamp / 1000.0


def test_prompt_memory_sits_in_front_of_the_tools_and_examples():
    """Prompt memory's past calls join the instructions' system content, before the
    tools and examples. Placed after the examples, right before the conversation, it is
    cheaper (the instructions' cache is shared) but prompt-k5 decided 0.393 of seed 0's
    held-out tasks right instead of 0.571 (docs/chat_model.md, "Prompts")."""
    from agent.prompt import render_prompt
    from agent.prompt_memory import PromptMemory
    from memory.online import Episode

    memory = PromptMemory(load_embedder())
    memory.learn(Episode("U1", "find an oak desk", "search_product_by_query", {"query": "oak desk"}))
    decider = Decider(chat=None, learner=None, prompt_memory=memory, system_prompt="You act in a shop.")
    tool = {"type": "function", "function": {"name": "search_product_by_query", "description": "Search.",
                                             "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}
    examples = {"search_product_by_query": ("find a red kettle", {"query": "red kettle"})}
    text = render_prompt(decider.conversation(parse_method("prompt-k1"), Row("U1", "a desk lamp")), [tool],
                         examples=examples)
    past, tools, shown, asked = (text.index(s) for s in ("find an oak desk", "Search.", "find a red kettle", "a desk lamp"))
    assert text.index("You act in a shop.") < past < tools < shown < asked
    zero_shot = render_prompt(decider.conversation(parse_method("zero-shot"), Row("U1", "a desk lamp")), [tool],
                              examples=examples)
    assert "find an oak desk" not in zero_shot  # memory adds in front, the rest is the same
    assert text[text.index("Tools:"):] == zero_shot[zero_shot.index("Tools:"):]


def test_rows_are_batched_shortest_prompt_first():
    """`Decider.by_length` orders rows by what the model reads, prompt memory included:
    a short request whose user has long past calls comes after a longer request of a
    user with none (a batch is padded to its longest prompt)."""
    from agent.prompt_memory import PromptMemory
    from memory.online import Episode

    memory = PromptMemory(load_embedder())
    long_query = "a large solid oak writing desk with three drawers and brass handles " * 3
    memory.learn(Episode("U1", long_query, "search_product_by_query", {"query": long_query}))
    decider = Decider(chat=None, learner=None, prompt_memory=memory)
    rows = [Row("U1", "a desk"), Row("U2", "a red kettle for my kitchen"), Row("U2", "lamp")]
    assert decider.by_length(parse_method("zero-shot"), rows) == [2, 0, 1]
    assert decider.by_length(parse_method("prompt-k1"), rows) == [2, 1, 0]
