"""`FintsAgent`: the steered agent wired to a shop, a memory store and one loaded model.

One object owns the expensive parts (the model, the embedder, the store, the shop
server) and hands them to the graph, the evaluation and the HTTP service, so all of
them decide in exactly the same way. Methods can be switched per call on the same
loaded model, which is what makes side-by-side comparisons fair.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from agent.decide import Decider, Row, clean_request
from agent.graph import AgentDeps, build_graph
from agent.methods import DEFAULT_METHOD, Method, load_defaults, parse_method
from agent.prompt import EXAMPLES
from agent.prompt_memory import PromptMemory
from memory.steerer import SteeringDecision
from tools.registry import MULTI_TURN_TOOLS, SINGLE_TURN_TOOLS

log = logging.getLogger(__name__)



@dataclass
class AgentConfig:
    """Where everything is; every field has a working default but the data set."""

    data_dir: str | Path
    model: str | None = None
    store: str | None = None
    method: str = DEFAULT_METHOD
    transport: Literal["http", "browser"] = "http"
    shop_url: str | None = None
    checkpoint: str | Path | None = None
    online_memory: bool = True
    max_steps: int = 6
    fail_closed: bool = False  # memory unavailable -> error, instead of a flagged unsteered answer
    negatives: str | None = None  # what accepted calls are contrasted with (memory.learner); None: the store's
    progress: bool = True  # False: no bar while the model loads (a GGUF's first conversion)


@dataclass
class Decision:
    """One tool-call decision: request in, validated call out (not executed)."""

    call: dict[str, Any] | None
    steering: dict[str, Any]
    latency_s: float
    malformed: bool = False
    raw: str = ""  # the text the model wrote (a valid call's too)
    prompt_tokens: int = 0
    reply: AIMessage | None = field(default=None, repr=False, compare=False)  # the chat model's answer


@dataclass
class EpisodeResult:
    """What one run of the graph did, for people and for scoring."""

    call: dict[str, Any] | None
    result_text: str
    asins: list[str]
    steering: dict[str, Any]
    notices: list[str]
    messages: list[BaseMessage] = field(repr=False)
    latency_s: float = 0.0
    thread_id: str = ""


class FintsAgent:
    """The agent with its resources. Build it with `FintsAgent.open(config)`."""

    def __init__(
        self,
        *,
        loaded: Any,
        dataset: Any,
        store: Any | None,
        transport: Any,
        method: Method,
        embedder: Any,
        checkpointer: Any | None = None,
        online_memory: bool = True,
        max_steps: int = 6,
        fail_closed: bool = False,
        negatives: str | None = None,
        keys: Any | None = None,
    ) -> None:
        """`keys`: the data set's retrieval keys (`intent_keys(dataset)` when None);
        `negatives`: the learner's negative policy (memory.learner.NEGATIVE_POLICIES); None
        uses the one the store's entries record (`make_learner`)."""
        from agent.chat_model import SteeredChatModel
        from tools import make_shop_tools

        self.loaded = loaded
        self.dataset = dataset
        self.store = store
        self.transport = transport
        self.method = method
        self.embedder = embedder
        self.max_steps = max_steps
        self.fail_closed = fail_closed
        keys = keys if keys is not None else intent_keys(dataset)
        self.chat = SteeredChatModel(loaded=loaded, examples=EXAMPLES)  # the shop's own examples
        self.tools = make_shop_tools(transport, history=self.purchases)
        self.tools_by_name = {tool.name: tool for tool in self.tools}
        self.prompt_memory = PromptMemory.from_dataset(dataset, embedder, keys=keys)
        self.learner = (make_learner(loaded, store, dataset, layers=method.layers, negatives=negatives,
                                     embedder=embedder, fail_closed=fail_closed)
                        if store is not None else None)
        # the policy this agent's memory is written with; what evaluations pass on
        self.negatives = self.learner.negatives.name if self.learner is not None else negatives
        self.decider = Decider(self.chat, self.learner, self.prompt_memory)
        self.writer = None
        if self.learner is not None and online_memory:
            from memory.online import OnlineWriter

            self.writer = OnlineWriter(self.learner, also=[self.prompt_memory.learn])
        self.checkpointer = checkpointer
        self._graphs: dict[tuple[str, str], Any] = {}

    # ------------------------------------------------------------------ building
    @classmethod
    @contextmanager
    def open(cls, config: AgentConfig) -> Iterator[FintsAgent]:
        """Load the model, open the store, start (or reach) the shop; close all on exit."""
        from memory import MemoryStore
        from common.embedding import load_embedder
        from steering import load_model
        from tools import BrowserTransport, HttpTransport, ShopServer
        from tools.data import load_dataset

        with ExitStack() as stack:
            dataset = load_dataset(config.data_dir)
            loaded = load_model(config.model, progress=config.progress)
            embedder = load_embedder()
            keys = intent_keys(dataset)
            try:
                store = MemoryStore(config.store, loaded.model_id, loaded.hidden_size, embedder,
                                    keys=keys)
                stack.callback(store.close)
            except Exception as error:  # e.g. the Chroma server is down
                if config.fail_closed:
                    raise
                log.warning("memory store unavailable, answering unsteered: %s", error)
                store = None
            url = config.shop_url
            if url is None:
                server = stack.enter_context(ShopServer(config.data_dir))
                url = server.url
            transport_cls = BrowserTransport if config.transport == "browser" else HttpTransport
            transport = stack.enter_context(transport_cls(url))
            checkpointer = None
            if config.checkpoint:
                from langgraph.checkpoint.sqlite import SqliteSaver

                Path(config.checkpoint).parent.mkdir(parents=True, exist_ok=True)
                checkpointer = stack.enter_context(SqliteSaver.from_conn_string(str(config.checkpoint)))
            agent = cls(
                loaded=loaded, dataset=dataset, store=store, transport=transport,
                method=parse_method(config.method, loaded.model_id), embedder=embedder,
                checkpointer=checkpointer, online_memory=config.online_memory,
                max_steps=config.max_steps, fail_closed=config.fail_closed,
                negatives=config.negatives, keys=keys,
            )
            stack.callback(agent.close)
            yield agent

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close(timeout=30.0)

    # ------------------------------------------------------------------ decisions
    def tool_specs(self, track: str = "single") -> list[Any]:
        names = SINGLE_TURN_TOOLS if track == "single" else MULTI_TURN_TOOLS
        return [self.tools_by_name[name] for name in names]

    def decide(self, user_id: str | None, request: str, *, method: Method | None = None) -> Decision:
        return self.decide_batch([(user_id, request)], method=method)[0]

    def decide_batch(
        self, items: Sequence[tuple[str | None, str | Row]], *, method: Method | None = None,
        decider: Decider | None = None, tools: Sequence[Any] | None = None, tool_choice: Any = "any",
    ) -> list[Decision]:
        """Decide for several (user, request) pairs in ONE batched generate, each row
        steered by its own user's vectors, through the graph's own decision path
        (`agent.decide`); `decider` replaces this agent's (an experiment's own memory).
        A request may be a `Row` (a conversation), and `tools` / `tool_choice` replace
        the shop's tools and forced call (the OpenAI-compatible endpoint's client tools).
        Latency is per batch, shared by its rows."""
        chosen = method or self.method
        started = time.perf_counter()
        rows = [request if isinstance(request, Row) else Row(user_id, clean_request(request)[0])
                for user_id, request in items]
        made = (decider or self.decider).decide(chosen, rows, self.tool_specs() if tools is None else tools,
                                                tool_choice=tool_choice)
        elapsed = time.perf_counter() - started
        return [_decision(reply, steering, elapsed) for reply, steering in made]

    def purchases(self, user_id: str, as_of: float | None = None) -> list[str]:
        """The user's purchase history (ASINs, oldest first), up to `as_of` (a task's
        time) when given: what a recommendation that names no products falls back to."""
        return [item.product_info.parent_asin for item in self.dataset.histories.get(user_id, [])
                if as_of is None or item.review.timestamp <= as_of]

    def execute(self, call: dict[str, Any], user_id: str, review_asin: str | None = None,
                as_of: float | None = None) -> Any:
        """Run one call against the shop; returns the tool's `ToolResult`. The call's
        context (the product a review is about, the task's time) goes with this call
        only, as the graph's state gives it to the tools."""
        tool = self.tools_by_name.get(call["name"])
        if tool is None:
            from tools import ToolResult

            return ToolResult(call["name"], f"Error: unknown tool {call['name']!r}", ok=False)
        context = {"user_id": user_id, "review_asin": review_asin, "as_of": as_of}
        injected = {k: v for k, v in context.items() if k in (tool.args_schema.model_fields or {})}
        message = tool.invoke({"type": "tool_call", "id": "exec", "name": tool.name,
                               "args": {**call.get("args", {}), **injected}})
        return message.artifact

    # ------------------------------------------------------------------ episodes
    def graph(self, method: Method | None = None, track: str = "single"):
        chosen = method or self.method
        key = (chosen.name + repr(chosen), track)
        if key not in self._graphs:
            deps = AgentDeps(
                decider=self.decider, tools=self.tool_specs(track), method=chosen,
                model_id=self.loaded.model_id, hidden_size=self.loaded.hidden_size,
                memory_writer=self.writer, max_steps=self.max_steps,
            )
            from langgraph.checkpoint.memory import InMemorySaver

            self._graphs[key] = build_graph(deps, self.checkpointer or InMemorySaver())
        return self._graphs[key]

    def run(
        self,
        user_id: str,
        request: str,
        *,
        track: Literal["single", "multi"] = "single",
        method: Method | None = None,
        thread_id: str | None = None,
        simulated_user: Any | None = None,
        feedback: Any | None = None,
        review_asin: str | None = None,
        as_of: float | None = None,
    ) -> EpisodeResult:
        """One episode through the graph (steer -> llm -> tools -> ... -> memory).
        `review_asin` (the product a review is about) and `as_of` (the task's time)
        are this episode's own context, in its state."""
        thread = thread_id or uuid.uuid4().hex
        configurable: dict[str, Any] = {"thread_id": thread}
        if simulated_user is not None:
            configurable["simulated_user"] = simulated_user
        if feedback is not None:
            configurable["feedback"] = feedback
        started = time.perf_counter()
        state = self.graph(method, track).invoke(
            {"messages": [HumanMessage(request)], "user_id": user_id, "track": track,
             "review_asin": review_asin, "as_of": as_of},
            {"configurable": configurable},
        )
        return _episode(state, time.perf_counter() - started, thread)

    def resume(self, thread_id: str, method: Method | None = None, track: str = "single") -> EpisodeResult:
        """Finish an interrupted episode from its last checkpoint."""
        started = time.perf_counter()
        state = self.graph(method, track).invoke(None, {"configurable": {"thread_id": thread_id}})
        return _episode(state, time.perf_counter() - started, thread_id)

    # ------------------------------------------------------------------ memory
    def build_memory(self, users: Sequence[str] | None = None, *, max_history: int | None = None,
                     progress: bool = True) -> Any:
        """Learn the users' (all users' when None) past interactions with this agent's
        learner; returns its `BuildReport`."""
        from agent.interactions import past_interactions

        if self.learner is None:
            raise RuntimeError("this agent has no memory store to build into")
        items = past_interactions(self.dataset, users, max_history=max_history)
        return self.learner.learn_batch(items, progress=progress)

    def flush_memory(self, timeout: float = 60.0) -> bool:
        return self.writer.flush(timeout) if self.writer is not None else True


def _decision(reply: AIMessage, steering: SteeringDecision, elapsed: float) -> Decision:
    usage = reply.usage_metadata or {}
    if reply.tool_calls:
        call = {"name": reply.tool_calls[0]["name"], "args": dict(reply.tool_calls[0]["args"])}
        return Decision(call, steering.summary(), elapsed, prompt_tokens=usage.get("input_tokens", 0),
                        raw=str(reply.response_metadata.get("generated_text", "")), reply=reply)
    raw = reply.invalid_tool_calls[0]["args"] if reply.invalid_tool_calls else str(reply.content)
    return Decision(None, steering.summary(), elapsed, malformed=True, raw=str(raw or ""),
                    prompt_tokens=usage.get("input_tokens", 0), reply=reply)


def _episode(state: dict[str, Any], elapsed: float, thread: str) -> EpisodeResult:
    from agent.graph import last_call

    call = last_call(state)
    tool_messages = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    last = tool_messages[-1] if tool_messages else None
    artifact = getattr(last, "artifact", None)
    return EpisodeResult(
        call={"name": call["name"], "args": dict(call["args"])} if call else None,
        result_text=str(last.content) if last is not None else "",
        asins=list(getattr(artifact, "asins", []) or []),
        steering=state.get("steering", {}),
        notices=list(state.get("notices", [])),
        messages=list(state["messages"]),
        latency_s=elapsed,
        thread_id=thread,
    )


def intent_keys(dataset: Any) -> Any:
    """Retrieval keys for this data set: requests compared without the catalog's words
    (memory.keys), the same for steering memory and prompt memory."""
    from memory.keys import IntentKeys, catalog_words

    return IntentKeys(catalog_words(
        text for p in dataset.products.values()
        for text in (p.title, p.store or "", p.main_category or "", *p.features, *p.description)))


def make_learner(loaded: Any, store: Any, dataset: Any, *, layers: Sequence[int],
                 sites: Sequence[str] | None = None, negatives: str | None = None,
                 embedder: Any | None = None, fail_closed: bool = False) -> Any:
    """The shop agent's `memory.learner.Learner`: vectors read in the agent's own
    decision format (`call_formatter`) at `sites` (the model's `memory_sites` default)
    and `layers`, each accepted call contrasted by the negative policy `negatives`:
    None uses the policy the store's entries record (`other-tools` for an empty store);
    another policy than the recorded one is refused (`memory.learner.store_negatives`).
    Every path that writes the agent's memory builds its learner here."""
    from agent.interactions import past_interactions
    from memory.learner import Learner, negative_policy, steering_extractor, store_negatives

    negatives = store_negatives(store, negatives)
    chosen_sites = list(sites or load_defaults(loaded.model_id)["memory_sites"])
    pool = past_interactions(dataset) if negatives == "nearest-other-user" else ()
    policy = negative_policy(negatives, tools=SINGLE_TURN_TOOLS, pool=pool, embedder=embedder)
    return Learner(store, steering_extractor(loaded, chosen_sites, list(layers)), policy,
                   call_formatter(loaded), model=loaded, fail_closed=fail_closed)


def call_formatter(loaded: Any, track: str = "single"):
    """(request, tool, arguments) -> (prompt, answer) exactly as the agent decides.

    Memory builds pass this to `agent.interactions`, so vectors are read from the very prompt
    the model later decides in (tool descriptions and examples included), and on the
    tokens where it decides: the prompt ends with the call's forced start `{"name":"`
    and the answer is the part of the tool's name that tells it apart from the other
    tools (`agent.tool_choice.deciding_prefix`). Read over the whole call, the arguments'
    tokens dominated the mean and the vector hardly moved the choice of tool.
    """
    from agent.prompt import render_prompt
    from agent.tool_choice import FORCED_START, deciding_prefix
    from tools import make_shop_tools

    names = SINGLE_TURN_TOOLS if track == "single" else MULTI_TURN_TOOLS
    specs = [tool for tool in make_shop_tools(None) if tool.name in names]
    specs.sort(key=lambda tool: names.index(tool.name))
    prefixes = {name: deciding_prefix(loaded.tokenizer, name, names) for name in names}

    def format_call(request: str, tool: str, arguments: dict[str, Any]) -> tuple[str, str]:
        prompt = render_prompt([HumanMessage(request)], specs, tokenizer=loaded.tokenizer, template="auto",
                               examples=EXAMPLES)
        return prompt + FORCED_START, prefixes.get(tool, tool)

    return format_call
