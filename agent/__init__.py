"""The steered agent: a LangGraph graph whose LLM node is a local model steered per user
and per request, and the LangChain chat model behind it.

    from agent import SteeredChatModel          # any LangChain workflow
    chat = SteeredChatModel().bind_tools(tools)
    chat.invoke("find trail shoes", steering=vector)

    from agent import FintsAgent, AgentConfig   # the shop agent with memory and steering
    with FintsAgent.open(AgentConfig(data_dir=...)) as agent:
        agent.run("U_1", "something for my runs")

Names load on first use, so `fints --help` does not import torch or langchain.
"""

from __future__ import annotations

from common.lazy import lazy_exports

_EXPORTS = {
    "SteeredChatModel": "agent.chat_model",
    "render_prompt": "agent.prompt",
    "render_call": "agent.prompt",
    "FintsAgent": "agent.runtime",
    "AgentConfig": "agent.runtime",
    "Decision": "agent.runtime",
    "EpisodeResult": "agent.runtime",
    "call_formatter": "agent.runtime",
    "AgentDeps": "agent.graph",
    "AgentState": "agent.graph",
    "build_graph": "agent.graph",
    "Method": "agent.methods",
    "method_names": "agent.methods",
    "parse_method": "agent.methods",
    "Decider": "agent.decide",
    "make_learner": "agent.runtime",
    "SteeringDecision": "memory.steerer",
    "PromptMemory": "agent.prompt_memory",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
