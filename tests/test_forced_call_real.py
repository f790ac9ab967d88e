"""A forced call is always delivered, on the real bundled model (slow, about a minute
on a quiet machine): 51 random tool schemas (tests/helpers/schemas.py), a budget too small for
most of their calls, and every reply carries exactly one call that its tool's schema
accepts."""

from __future__ import annotations

import jsonschema
import pytest

from agent.chat_model import SteeredChatModel
from tests.helpers.schemas import random_tools

CHOICES = ("any", "required", "named")


@pytest.mark.slow
def test_every_forced_call_is_delivered_valid_whatever_the_budget() -> None:
    tools = random_tools(seed=19, count=51)
    model = SteeredChatModel(max_new_tokens=8)
    cut = 0
    for index, tool in enumerate(tools):
        bound_tools = [tool, tools[index - 1]]  # two tools per call: the model picks one
        how = CHOICES[index % 3]
        choice = tool["function"]["name"] if how == "named" else how
        request = f"{tool['function']['description']} Use the {tool['function']['name']} tool."
        message = model.bind_tools(bound_tools, tool_choice=choice).invoke(request)
        assert not message.invalid_tool_calls, (tool, message.invalid_tool_calls)
        (call,) = message.tool_calls
        used = next(t for t in bound_tools if t["function"]["name"] == call["name"])
        assert how != "named" or used is tool
        jsonschema.validate(call["args"], used["function"]["parameters"])
        cut += "cut" in message.response_metadata
    assert cut >= 25, f"only {cut} calls were cut: the budget should cut most of them"


@pytest.mark.slow
def test_auto_choice_on_the_base_model_calls_or_answers_without_reciting_the_tools() -> None:
    """The bundled base model with tools bound and tool_choice left at its default used
    to answer with the prompt's tool list ("- market_performance_get_data: ...") or
    other list lines ("- 2 + 3 = 5")."""
    from agent.prompt import copies_tool_list, format_tools

    tools = format_tools([
        {"type": "function", "function": {"name": "market_performance_get_data",
                                          "description": "Retrieve the market performance data.",
                                          "parameters": {"type": "object", "properties": {
                                              "market": {"type": "string"}}, "required": ["market"]}}},
        {"type": "function", "function": {"name": "add", "description": "Add two numbers.",
                                          "parameters": {"type": "object", "properties": {
                                              "a": {"type": "integer"}, "b": {"type": "integer"}},
                                              "required": ["a", "b"]}}},
    ])
    model = SteeredChatModel(max_new_tokens=24).bind_tools(tools)
    for request in ("How did the Nikkei do this week?", "What is 2 plus 3?", "Hello, who are you?"):
        reply = model.invoke(request)
        if reply.tool_calls:
            (call,) = reply.tool_calls
            assert call["name"] in ("market_performance_get_data", "add")
        else:
            assert reply.content and not copies_tool_list(reply.content, tools), (request, reply.content)
            assert not reply.content.startswith(("-", "*", " ")), (request, reply.content)
