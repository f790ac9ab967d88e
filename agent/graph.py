"""The agent as a LangGraph graph: steer -> llm -> tools -> (user ->) ... -> memory.

- `steer` retrieves this user's vectors for the current request and records what it
  chose (entries, weights, norms) or why it abstained;
- `llm` makes exactly one action with the steered local model: a tool call;
- `tools` runs it against the shop (the user id is injected from the state);
- `user` (multi-turn with a simulated user) answers a `respond` call;
- `memory` hands the completed episode to the background memory writer.

The steering vector travels in the state as plain lists of floats, so a checkpointed
episode resumes with exactly the steering it had.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypedDict

import torch
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from agent.methods import Method
from agent.prompt_memory import PromptMemory, render_memory
from agent.steerer import Steerer
from steering import SteeringVector

log = logging.getLogger(__name__)

MAX_REQUEST_CHARS = 2000
ENDING_TOOLS = ("stop",)
TALK_TOOL = "respond"


class AgentState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    user_id: str
    request: str
    track: Literal["single", "multi"]
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

    chat: Any  # a chat model with tools bound; `invoke(messages, steering=...)`
    tools: list[Any]
    steerer: Steerer
    method: Method
    model_id: str
    hidden_size: int
    prompt_memory: PromptMemory | None = None
    # memory.online.OnlineWriter; it computes the unpersonalized negative on its own
    # thread (negative_for), so the memory node never generates on the user's time.
    memory_writer: Any | None = None
    max_steps: int = 6
    system_prompt: str | None = None


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
    graph.add_edge("user", "steer")
    graph.add_edge("memory", END)
    return graph.compile(checkpointer=checkpointer)


def current_request(state: AgentState) -> tuple[str, list[str]]:
    """The first human message of the episode, truncated with a notice when oversized."""
    notices = []
    first = next((m for m in state.get("messages", []) if isinstance(m, HumanMessage)), None)
    text = str(first.content).strip() if first is not None else ""
    if not text:
        raise ValueError("empty request: say what you want from the shop")
    if len(text) > MAX_REQUEST_CHARS:
        notices.append(f"request truncated from {len(text)} to {MAX_REQUEST_CHARS} characters")
        text = text[:MAX_REQUEST_CHARS]
    return text, notices


def steer_node(state: AgentState, deps: AgentDeps) -> dict[str, Any]:
    request, notices = current_request(state)
    decision = deps.steerer.decide(state.get("user_id"), request)
    summary = decision.summary()
    vector = (
        {k: t.detach().float().cpu().tolist() for k, t in decision.vector.tensors.items()}
        if decision.vector is not None
        else None
    )
    return {
        "request": request,
        "steering": summary,
        "steering_vector": vector,
        "steering_log": [*state.get("steering_log", []), summary],
        "notices": [*state.get("notices", []), *notices],
    }


def llm_node(state: AgentState, deps: AgentDeps) -> dict[str, Any]:
    messages: list[AnyMessage] = []
    system = [deps.system_prompt] if deps.system_prompt else []
    if deps.method.kind == "prompt_memory" and deps.prompt_memory is not None:
        past = deps.prompt_memory.top_k(state.get("user_id"), state["request"], deps.method.k)
        if past:
            system.append(render_memory(past))
    if system:
        messages.append(SystemMessage("\n\n".join(system)))
    messages.extend(m for m in state["messages"] if not isinstance(m, SystemMessage))
    vector = None
    if state.get("steering_vector"):
        tensors = {k: torch.tensor(v) for k, v in state["steering_vector"].items()}
        vector = SteeringVector(tensors, deps.model_id, deps.hidden_size)
    reply = deps.chat.invoke(messages, steering=vector, steering_positions=deps.method.positions)
    if not isinstance(reply, AIMessage):
        reply = AIMessage(content=str(getattr(reply, "content", reply)))
    if len(reply.tool_calls) > 1:  # exactly one action per step
        reply = AIMessage(content=reply.content, tool_calls=reply.tool_calls[:1], id=reply.id)
    update: dict[str, Any] = {"messages": [reply], "steps": state.get("steps", 0) + 1}
    previous = state["messages"][-1] if state.get("messages") else None
    if isinstance(previous, ToolMessage) and str(previous.content).startswith("Error"):
        update["retries"] = state.get("retries", 0) + 1
    return update


def after_llm(state: AgentState) -> str:
    last = state["messages"][-1]
    return "tools" if isinstance(last, AIMessage) and last.tool_calls else "memory"


def after_tools(state: AgentState, config: RunnableConfig, deps: AgentDeps) -> str:
    call = last_call(state)
    result = state["messages"][-1]
    failed = isinstance(result, ToolMessage) and str(result.content).startswith("Error")
    if failed and state.get("retries", 0) < 1 and call and call["name"] not in ENDING_TOOLS:
        return "llm"  # a tool error goes back to the model once (llm_node counts it)
    if state.get("track", "single") == "single":
        return "memory"
    if call is None or call["name"] in ENDING_TOOLS or state.get("steps", 0) >= deps.max_steps:
        return "memory"
    if call["name"] == TALK_TOOL:
        return "user" if _simulated_user(config) else END
    return "llm"


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
            if isinstance(result, ToolMessage) and not str(result.content).startswith("Error"):
                return {"name": call["name"], "args": dict(call["args"])}
            return None
    return None
