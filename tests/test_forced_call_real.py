"""A forced call is always delivered, on the real bundled model (slow, about a minute
on a quiet machine): 51 random tool schemas (tests/schemas.py), a budget too small for
most of their calls, and every reply carries exactly one call that its tool's schema
accepts."""

from __future__ import annotations

import jsonschema
import pytest

from agent.chat_model import SteeredChatModel
from tests.schemas import random_tools

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
