"""The agent as a LangGraph graph: steer -> llm -> tools -> (user ->) ... -> memory.

- `steer` retrieves this user's vectors for the current request and records what it
  chose (entries, weights, norms) or why it abstained;
- `llm` makes exactly one action with the steered local model: a tool call;
- `tools` runs it against the shop (the user id is injected from the state);
- `user` (multi-turn with a simulated user) answers a `respond` call;
- `memory` hands the completed episode to the background memory writer.

With a simulated user, an episode follows PersonalWAB's multi-turn protocol: the agent
talks (`respond`) as long as it needs, and its first shop action (search, recommend,
review) is its answer and ends the episode, as does a user who says they are done
(`tools.simulated_user.STOP`) or the step limit. In a chat with a person the agent goes
on after an action until it stops, asks, or reaches the limit.

The steering vector travels in the state as plain lists of floats, so a checkpointed
episode resumes with exactly the steering it had.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypedDict

import torch
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from agent.decide import Decider, Row, clean_request
from agent.methods import Method
from memory.steerer import SteeringDecision
from steering import SteeringVector
from tools.registry import RESPOND, STOP, TOOL_FOR_TYPE
from tools.simulated_user import STOP as USER_DONE

log = logging.getLogger(__name__)

ENDING_TOOLS = (STOP,)
TALK_TOOL = RESPOND
ACTIONS = tuple(TOOL_FOR_TYPE.values())  # what answers a benchmark task


class AgentState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    user_id: str
    request: str
    track: Literal["single", "multi"]
    # this call's own context, read by the tools (InjectedState): never shared state
    review_asin: str | None  # the product a review is about
    as_of: float | None  # the task's time: purchase history stops here
    steps: int
    retries: int
    steering: dict[str, Any]
    steering_vector: dict[str, list[float]] | None
    steering_log: list[dict[str, Any]]
    notices: list[str]
    memory: dict[str, Any]


@dataclass
class AgentDeps:
    """Everything the nodes use, passed in explicitly (no globals)."""

    decider: Decider
    tools: list[Any]
    method: Method
    model_id: str
    hidden_size: int
    # memory.online.OnlineWriter: the learner makes the entry on the writer's thread,
    # so the memory node never extracts on the user's time.
    memory_writer: Any | None = None
    max_steps: int = 6


def build_graph(deps: AgentDeps, checkpointer: Any | None = None):
    """Compile the agent graph; `checkpointer` makes episodes resumable by thread id."""
    from langgraph.prebuilt import ToolNode

    graph = StateGraph(AgentState)
    graph.add_node("steer", lambda state: steer_node(state, deps))
    graph.add_node("llm", lambda state: llm_node(state, deps))
    graph.add_node("tools", ToolNode(deps.tools, handle_tool_errors=True))
    graph.add_node("user", user_node)
    graph.add_node("memory", lambda state, config: memory_node(state, config, deps))
    graph.add_edge(START, "steer")
    graph.add_edge("steer", "llm")
    graph.add_conditional_edges("llm", after_llm, ["tools", "memory"])
    graph.add_conditional_edges("tools", lambda state, config: after_tools(state, config, deps), ["llm", "user", "memory", END])
    graph.add_conditional_edges("user", after_user, ["steer", "memory"])
    graph.add_edge("memory", END)
    return graph.compile(checkpointer=checkpointer)


def current_request(state: AgentState) -> tuple[str, list[str]]:
    """The first human message of the episode, bounded (`agent.decide.clean_request`)."""
    first = next((m for m in state.get("messages", []) if isinstance(m, HumanMessage)), None)
    return clean_request(str(first.content) if first is not None else "")


def steer_node(state: AgentState, deps: AgentDeps) -> dict[str, Any]:
    request, notices = current_request(state)
    decision = deps.decider.steering(deps.method, [Row(state.get("user_id"), request)])[0]
    summary = decision.summary()
    vector = (
        {k: t.detach().float().cpu().tolist() for k, t in decision.vector.tensors.items()}
        if decision.vector is not None
        else None
    )
    return {
        "request": request,
        # the call's context keys always exist, so the tools' InjectedState finds them
        "review_asin": state.get("review_asin"),
        "as_of": state.get("as_of"),
        "steering": summary,
        "steering_vector": vector,
        "steering_log": [*state.get("steering_log", []), summary],
        "notices": [*state.get("notices", []), *notices],
    }


def llm_node(state: AgentState, deps: AgentDeps) -> dict[str, Any]:
    """One action through the shared decision path, with the steering the steer node
    chose (kept in the state, so a resumed episode steers the same way)."""
    vector = None
    if state.get("steering_vector"):
        tensors = {k: torch.tensor(v) for k, v in state["steering_vector"].items()}
        vector = SteeringVector(tensors, deps.model_id, deps.hidden_size)
    steering = SteeringDecision(vector is not None, vector=vector)
    row = Row(state.get("user_id"), state["request"], tuple(state["messages"]))
    acting = [t for t in deps.tools if getattr(t, "name", None) not in (TALK_TOOL, *ENDING_TOOLS)]
    # memory that found this user's own requests like this one answers what a question
    # would ask: the first step acts (the model alone asks before many recommendations)
    known = acting and not state.get("steps") and vector is not None
    tools = acting if known else deps.tools
    ((reply, _),) = deps.decider.decide(deps.method, [row], tools, steering=[steering])
    update: dict[str, Any] = {"messages": [reply], "steps": state.get("steps", 0) + 1}
    if acting and _asks_again(reply, state["messages"]):
        # the user already answered this very question: act on the answers instead of
        # asking it once more (the model alone repeats it to the step limit)
        ((reply, _),) = deps.decider.decide(deps.method, [row], acting, steering=[steering])
        update["messages"] = [reply]
        update["notices"] = [*state.get("notices", []),
                             f"the same {TALK_TOOL} as before was replaced by an action"]
    previous = state["messages"][-1] if state.get("messages") else None
    if _failed(previous):
        update["retries"] = state.get("retries", 0) + 1
    return update


def _asks_again(reply: Any, messages: Sequence[Any]) -> bool:
    """Whether `reply` says to the user what the agent said before, word for word (case
    and spacing aside)."""
    def said(call: dict) -> str:
        content = call["args"].get("content")
        return " ".join(content.lower().split()) if isinstance(content, str) else ""

    calls = getattr(reply, "tool_calls", None) or []
    if not calls or calls[0]["name"] != TALK_TOOL or not said(calls[0]):
        return False
    return said(calls[0]) in {said(c) for m in messages if isinstance(m, AIMessage)
                              for c in m.tool_calls if c["name"] == TALK_TOOL}


def _failed(message: Any) -> bool:
    """A tool message whose result says the call failed (`ToolResult.ok` False)."""
    if not isinstance(message, ToolMessage):
        return False
    artifact = getattr(message, "artifact", None)
    if artifact is not None and hasattr(artifact, "ok"):
        return not artifact.ok
    return message.status == "error"  # an exception the ToolNode caught


def after_llm(state: AgentState) -> str:
    last = state["messages"][-1]
    return "tools" if isinstance(last, AIMessage) and last.tool_calls else "memory"


def after_tools(state: AgentState, config: RunnableConfig, deps: AgentDeps) -> str:
    call = last_call(state)
    result = state["messages"][-1]
    failed = _failed(result)
    if failed and state.get("retries", 0) < 1 and call and call["name"] not in ENDING_TOOLS:
        return "llm"  # a tool error goes back to the model once (llm_node counts it)
    if state.get("track", "single") == "single":
        return "memory"
    if call is None or call["name"] in ENDING_TOOLS or state.get("steps", 0) >= deps.max_steps:
        return "memory"
    if call["name"] == TALK_TOOL:
        return "user" if _simulated_user(config) else END
    if call["name"] in ACTIONS and _simulated_user(config):
        return "memory"  # the benchmark's answer: scored as it is, nothing after it
    return "llm"


def after_user(state: AgentState) -> str:
    """A simulated user who is done (satisfied earlier, or out of patience) ends it."""
    return "memory" if str(state["messages"][-1].content).strip() == USER_DONE else "steer"


def user_node(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
    """The simulated user answers the agent's last `respond` message."""
    answer = _simulated_user(config)
    call = last_call(state)
    reply = answer(str(call["args"].get("content", ""))) if call else "OK"
    return {"messages": [HumanMessage(reply)]}


def _simulated_user(config: RunnableConfig) -> Callable[[str], str] | None:
    return (config or {}).get("configurable", {}).get("simulated_user")


def last_call(state: AgentState) -> dict[str, Any] | None:
    for message in reversed(state.get("messages", [])):
        if isinstance(message, AIMessage) and message.tool_calls:
            return message.tool_calls[0]
    return None


def memory_node(state: AgentState, config: RunnableConfig, deps: AgentDeps) -> dict[str, Any]:
    """Hand the episode to the background writer; never fail the user's answer."""
    feedback = (config or {}).get("configurable", {}).get("feedback")
    try:
        accepted = feedback(state) if feedback else default_accepted_call(state)
        if accepted is None or deps.memory_writer is None or not state.get("user_id"):
            return {"memory": {"queued": False, "reason": "nothing accepted or no memory writer"}}
        from memory.online import Episode

        queued = deps.memory_writer.submit(Episode(
            state["user_id"], state["request"], accepted["name"], dict(accepted["args"]),
        ))
        return {"memory": {"queued": bool(queued), "tool": accepted["name"]}}
    except Exception as error:  # logged, never raised: the answer is already made
        log.exception("memory node failed")
        return {"memory": {"queued": False, "reason": f"{type(error).__name__}: {error}"}}


def default_accepted_call(state: AgentState) -> dict[str, Any] | None:
    """Without feedback, the last shop call that succeeded counts as accepted."""
    messages = state.get("messages", [])
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, AIMessage) and message.tool_calls:
            call = message.tool_calls[0]
            if call["name"] in (*ENDING_TOOLS, TALK_TOOL):
                continue
            result = messages[index + 1] if index + 1 < len(messages) else None
            if isinstance(result, ToolMessage) and not _failed(result):
                return {"name": call["name"], "args": dict(call["args"])}
            return None
    return None
