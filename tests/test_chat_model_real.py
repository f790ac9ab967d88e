"""The bundled Gemma 3 270M inside LangChain's ready-made agent (slow: real model)."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool

from agent.chat_model import SteeredChatModel
from agent.prompt import render_call


@pytest.mark.slow
def test_create_agent_runs_a_tool_call_of_the_real_model() -> None:
    from langchain.agents import create_agent

    @tool(return_direct=True)
    def search_product_by_query(query: str) -> str:
        """Search the shop for products matching a query; returns the top products."""
        return f"Top 3 products for {query}: B001, B002, B003"

    model = SteeredChatModel(max_new_tokens=48)
    agent = create_agent(model, [search_product_by_query])
    result = agent.invoke({"messages": [("human", "Search the shop for red running shoes.")]})
    ai, observed = result["messages"][1], result["messages"][-1]
    assert isinstance(ai, AIMessage) and isinstance(observed, ToolMessage)
    (call,) = ai.tool_calls
    assert call["name"] == "search_product_by_query"
    assert "shoes" in call["args"]["query"].lower()
    assert ai.response_metadata["generated_text"] == render_call(call["name"], call["args"])
    assert observed.content.startswith("Top 3 products for")
