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

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from agent.graph import AgentDeps, build_graph, current_request
from agent.methods import DEFAULT_METHOD, Method, load_defaults, parse_method
from agent.prompt import EXAMPLES
from agent.prompt_memory import PromptMemory, render_memory
from agent.steerer import SteeringDecision, Steerer

log = logging.getLogger(__name__)

SINGLE_TURN_TOOLS = (
    "search_product_by_query",
    "get_recommendations_by_history",
    "add_product_review",
    "get_product_details_by_asin",
)
MULTI_TURN_TOOLS = (*SINGLE_TURN_TOOLS, "respond", "stop")


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


@dataclass
class Decision:
    """One tool-call decision: request in, validated call out (not executed)."""

    call: dict[str, Any] | None
    steering: dict[str, Any]
    latency_s: float
    malformed: bool = False
    raw: str = ""  # the text the model wrote (a valid call's too)
    prompt_tokens: int = 0


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
    ) -> None:
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
        self.chat = SteeredChatModel(loaded=loaded, examples=EXAMPLES)  # the shop's own examples
        self._review_target: dict[str, str | None] = {}
        self._as_of: dict[str, float | None] = {}
        self.tools = make_shop_tools(transport, review_asin=self._review_target.get,
                                     history=self.purchases)
        self.tools_by_name = {tool.name: tool for tool in self.tools}
        self.prompt_memory = PromptMemory.from_dataset(dataset, embedder, keys=intent_keys(dataset))
        self.writer = None
        if store is not None and online_memory:
            from memory.online import OnlineWriter

            self.writer = OnlineWriter(store, self.extract_pairs, formatter=call_formatter(loaded),
                                       tools=SINGLE_TURN_TOOLS)
        self.checkpointer = checkpointer
        self._graphs: dict[tuple[str, str], Any] = {}

    # ------------------------------------------------------------------ building
    @classmethod
    @contextmanager
    def open(cls, config: AgentConfig) -> Iterator[FintsAgent]:
        """Load the model, open the store, start (or reach) the shop; close all on exit."""
        from memory import MemoryStore
        from memory.embedding import load_embedder
        from steering import load_model
        from tools import BrowserTransport, HttpTransport, ShopServer
        from tools.data import load_dataset

        with ExitStack() as stack:
            dataset = load_dataset(config.data_dir)
            loaded = load_model(config.model)
            embedder = load_embedder()
            try:
                store = MemoryStore(config.store, loaded.model_id, loaded.hidden_size, embedder,
                                    keys=intent_keys(dataset))
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

    def steerer(self, method: Method | None = None) -> Steerer:
        return Steerer(self.loaded, self.store, method or self.method, fail_closed=self.fail_closed)

    def conversation(self, user_id: str | None, request: str, method: Method) -> list[BaseMessage]:
        """The messages the model decides on: the request, plus past calls for prompt memory."""
        messages: list[BaseMessage] = []
        if method.kind == "prompt_memory":
            past = self.prompt_memory.top_k(user_id, request, method.k)
            if past:
                messages.append(SystemMessage(render_memory(past)))
        messages.append(HumanMessage(request))
        return messages

    def decide(self, user_id: str | None, request: str, *, method: Method | None = None) -> Decision:
        return self.decide_batch([(user_id, request)], method=method)[0]

    def decide_batch(
        self, items: Sequence[tuple[str | None, str]], *, method: Method | None = None
    ) -> list[Decision]:
        """Decide for several (user, request) pairs in ONE batched generate, each row
        steered by its own user's vectors. Latency is per batch, shared by its rows."""
        chosen = method or self.method
        started = time.perf_counter()
        steerer = self.steerer(chosen)
        decisions: list[SteeringDecision] = []
        conversations = []
        for user_id, request in items:
            text, _ = current_request({"messages": [HumanMessage(request)]})
            decisions.append(steerer.decide(user_id, text))
            conversations.append(self.conversation(user_id, text, chosen))
        replies = self.chat.generate_batch(
            conversations, steering=[d.vector for d in decisions], tools=self.tool_specs(),
            tool_choice="any", steering_positions=chosen.positions,
        )
        elapsed = time.perf_counter() - started
        return [_decision(reply, d, elapsed) for reply, d in zip(replies, decisions)]

    def purchases(self, user_id: str) -> list[str]:
        """The user's purchase history (ASINs, oldest first), up to the time set by
        `execute(as_of=...)`: what a recommendation that names no products falls back to."""
        as_of = self._as_of.get(user_id)
        return [item.product_info.parent_asin for item in self.dataset.histories.get(user_id, [])
                if as_of is None or item.review.timestamp <= as_of]

    def execute(self, call: dict[str, Any], user_id: str, review_asin: str | None = None,
                as_of: float | None = None) -> Any:
        """Run one call against the shop; returns the tool's `ToolResult`. `as_of` (a
        task's timestamp) limits the purchase history to what happened before it."""
        tool = self.tools_by_name.get(call["name"])
        if tool is None:
            from tools import ToolResult

            return ToolResult(call["name"], f"Error: unknown tool {call['name']!r}", ok=False)
        self._review_target[user_id] = review_asin
        self._as_of[user_id] = as_of
        message = tool.invoke({"type": "tool_call", "id": "exec", "name": tool.name,
                               "args": {**call.get("args", {}), "user_id": user_id}})
        return message.artifact

    # ------------------------------------------------------------------ episodes
    def graph(self, method: Method | None = None, track: str = "single"):
        chosen = method or self.method
        key = (chosen.name + repr(chosen), track)
        if key not in self._graphs:
            deps = AgentDeps(
                chat=self.chat.bind_tools(self.tool_specs(track), tool_choice="any"),
                tools=self.tool_specs(track), steerer=self.steerer(chosen), method=chosen,
                model_id=self.loaded.model_id, hidden_size=self.loaded.hidden_size,
                prompt_memory=self.prompt_memory, memory_writer=self.writer,
                max_steps=self.max_steps,
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
    ) -> EpisodeResult:
        """One episode through the graph (steer -> llm -> tools -> ... -> memory)."""
        thread = thread_id or uuid.uuid4().hex
        configurable: dict[str, Any] = {"thread_id": thread}
        if simulated_user is not None:
            configurable["simulated_user"] = simulated_user
        if feedback is not None:
            configurable["feedback"] = feedback
        started = time.perf_counter()
        state = self.graph(method, track).invoke(
            {"messages": [HumanMessage(request)], "user_id": user_id, "track": track},
            {"configurable": configurable},
        )
        return _episode(state, time.perf_counter() - started, thread)

    def resume(self, thread_id: str, method: Method | None = None, track: str = "single") -> EpisodeResult:
        """Finish an interrupted episode from its last checkpoint."""
        started = time.perf_counter()
        state = self.graph(method, track).invoke(None, {"configurable": {"thread_id": thread_id}})
        return _episode(state, time.perf_counter() - started, thread_id)

    # ------------------------------------------------------------------ memory
    @property
    def formatter(self):
        """(request, tool, args) -> (prompt, answer) in this agent's decision format."""
        return call_formatter(self.loaded)

    def extract_pairs(self, pairs: list[Any]) -> list[dict[str, Any]]:
        """Vectors for memory.build pairs at every site, on the agent's steering layers."""
        from steering import ContrastPair, extract_vectors

        sites = load_defaults(self.loaded.model_id)["memory_sites"]
        contrast = [ContrastPair(p.prompt, p.positive, p.negative) for p in pairs]
        return extract_vectors(self.loaded, contrast, sites, self.method.layers)

    def build_memory(self, users: Sequence[str] | None = None, *, max_history: int | None = None,
                     progress: bool = True) -> Any:
        """Turn the users' past interactions (all users when None) into memory entries in
        this agent's own decision format and steering layers; returns `memory.build`'s report."""
        from memory.build import build_memory, past_interactions

        items = past_interactions(self.dataset, users, max_history=max_history, tools=SINGLE_TURN_TOOLS)
        return build_memory(self.store, items, self.extract_pairs, formatter=self.formatter,
                            progress=progress)

    def flush_memory(self, timeout: float = 60.0) -> bool:
        return self.writer.flush(timeout) if self.writer is not None else True


def _decision(reply: AIMessage, steering: SteeringDecision, elapsed: float) -> Decision:
    usage = reply.usage_metadata or {}
    if reply.tool_calls:
        call = {"name": reply.tool_calls[0]["name"], "args": dict(reply.tool_calls[0]["args"])}
        return Decision(call, steering.summary(), elapsed, prompt_tokens=usage.get("input_tokens", 0),
                        raw=str(reply.response_metadata.get("generated_text", "")))
    raw = reply.invalid_tool_calls[0]["args"] if reply.invalid_tool_calls else str(reply.content)
    return Decision(None, steering.summary(), elapsed, malformed=True, raw=str(raw or ""),
                    prompt_tokens=usage.get("input_tokens", 0))


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


def call_formatter(loaded: Any, track: str = "single"):
    """(request, tool, arguments) -> (prompt, answer) exactly as the agent decides.

    Memory builds pass this to `memory.build`, so vectors are read from the very prompt
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
