"""The project's own function-calling test set (tests/data/function_calling.json) and
the scoring of scripts/function_calling.py: every expected call fits its tool's schema
and the grammar, and the scoring says right only for the expected call."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import jsonschema
import xgrammar as xgr

from agent.chat_model import shared_state
from agent.prompt import render_call
from tests.helpers.tiny_models import tiny_model

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "function_calling.py"
spec = importlib.util.spec_from_file_location("function_calling", SCRIPT)
function_calling = importlib.util.module_from_spec(spec)
spec.loader.exec_module(function_calling)


def test_every_expected_call_fits_its_tool_and_the_grammar() -> None:
    cases = function_calling.load_cases()
    assert len(cases) >= 60 and len({c["domain"] for c in cases}) >= 15
    grammars = shared_state(tiny_model("gemma3", "bpe", seed=1)).grammars
    for case in cases:
        tools = {t["function"]["name"]: t for t in case["tools"]}
        assert 2 <= len(tools) <= 4 and "search_product_by_query" not in tools  # not the shop's
        jsonschema.validate(case["arguments"], tools[case["name"]]["function"]["parameters"])
        matcher = xgr.GrammarMatcher(grammars.grammar(case["tools"]))
        assert matcher.accept_string(render_call(case["name"], case["arguments"])), case["request"]
        assert matcher.is_completed()


def test_scoring_takes_only_the_expected_call() -> None:
    case = {"name": "book_table", "arguments": {"restaurant": "Luigi's", "people": 4}}
    right = {"name": "book_table", "arguments": {"restaurant": " luigi's", "people": 4.0}}
    assert function_calling.score(right, case) == {"delivered": True, "tool": True, "call": True}
    extra = {"name": "book_table", "arguments": {"restaurant": "Luigi's", "people": 4, "time": "19:00"}}
    assert function_calling.score(extra, case)["call"] is False
    wrong_type = {"name": "book_table", "arguments": {"restaurant": "Luigi's", "people": True}}
    assert function_calling.score(wrong_type, case)["call"] is False
    assert function_calling.score(None, case) == {"delivered": False, "tool": False, "call": False}
