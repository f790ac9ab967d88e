"""Function-calling accuracy on tools that are not the shop's, with and without this
project's prompt, so prompt changes are measured.

    .venv/bin/python scripts/function_calling.py --out out/function_calling.json

The cases (tests/data/function_calling.json: 20 domains, 80 requests, one expected call
each) are decided twice on the same model, with the same grammar (one call to one of
the bound tools) and the same token budget:

- `project`: `SteeredChatModel().bind_tools(tools, tool_choice="any")`, this project's
  prompt and decoding (a call the budget cuts is closed by the grammar);
- `plain`: a plain one-paragraph prompt (the tools as JSON, then the request), decoded
  by xgrammar's own Hugging Face logits processor, without this project.

A call is right when it names the expected tool with exactly the expected arguments
(strings compared without case and surrounding spaces, numbers by value).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "data" / "function_calling.json"
PLAIN_PROMPT = (
    "You can call these functions: {functions}. Answer the user's request with exactly one "
    'function call as JSON, {{"name": <function name>, "arguments": {{...}}}}.\n'
    "User: {request}\nCall: "
)


def load_cases(path: Path = CASES) -> list[dict[str, Any]]:
    """Every case with its domain's tools: {domain, tools, request, name, arguments}."""
    data = json.loads(path.read_text())
    return [{"domain": d["domain"], "tools": d["tools"], **case} for d in data["domains"] for case in d["cases"]]


def same_value(got: Any, want: Any) -> bool:
    """Equal as the user meant it: strings without case or outer spaces, numbers by value."""
    if isinstance(want, str):
        return isinstance(got, str) and got.strip().casefold() == want.strip().casefold()
    if isinstance(want, bool) or isinstance(got, bool):
        return got is want
    if isinstance(want, (int, float)):
        return isinstance(got, (int, float)) and float(got) == float(want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(same_value, got, want))
    if isinstance(want, dict):
        return (isinstance(got, dict) and set(got) == set(want)
                and all(same_value(got[k], want[k]) for k in want))
    return got == want


def score(call: dict[str, Any] | None, case: dict[str, Any]) -> dict[str, bool]:
    named = call is not None and call["name"] == case["name"]
    return {"delivered": call is not None, "tool": named,
            "call": named and same_value(call["arguments"], case["arguments"])}


def project_call(model: Any, case: dict[str, Any]) -> dict[str, Any] | None:
    reply = model.bind_tools(case["tools"], tool_choice="any").invoke(case["request"])
    if not reply.tool_calls:
        return None
    return {"name": reply.tool_calls[0]["name"], "arguments": reply.tool_calls[0]["args"]}


def plain_call(loaded: Any, case: dict[str, Any], budget: int) -> dict[str, Any] | None:
    """The plain prompt, decoded under the same compiled grammar by xgrammar's own
    logits processor; None when the budget ends before the call does."""
    import torch
    from xgrammar.contrib.hf import LogitsProcessor

    from agent.chat_model import shared_state

    compiled = shared_state(loaded).grammars.grammar(case["tools"])
    prompt = PLAIN_PROMPT.format(functions=json.dumps([t["function"] for t in case["tools"]]),
                                 request=case["request"])
    ids = loaded.tokenizer(prompt, return_tensors="pt").to(loaded.device)
    with torch.no_grad():
        out = loaded.model.generate(**ids, max_new_tokens=budget, do_sample=False, top_p=None, top_k=None,
                                    temperature=None, logits_processor=[LogitsProcessor(compiled)],
                                    pad_token_id=loaded.tokenizer.pad_token_id)
    text = loaded.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    try:
        call = json.loads(text)
    except json.JSONDecodeError:
        return None
    return {"name": call["name"], "arguments": call["arguments"]}


def run(budget: int, limit: int | None = None, model_name: str | None = None,
        out: Path | None = None) -> dict[str, Any]:
    """Decide every case both ways; with `out`, the figures so far are written after
    each case (a run stopped halfway keeps what it measured)."""
    from agent.chat_model import SteeredChatModel
    from steering import load_model

    loaded = load_model(model_name)
    chat = SteeredChatModel(loaded=loaded, max_new_tokens=budget)
    cases = load_cases()[:limit]
    rows = []
    started = time.perf_counter()
    for index, case in enumerate(cases):
        project, plain = project_call(chat, case), plain_call(loaded, case, budget)
        rows.append({"domain": case["domain"], "request": case["request"], "expected": case["name"],
                     "project": project, "plain": plain,
                     "project_score": score(project, case), "plain_score": score(plain, case)})
        print(f"{index + 1}/{len(cases)} {case['domain']}: project {rows[-1]['project_score']['call']}, "
              f"plain {rows[-1]['plain_score']['call']}", file=sys.stderr)
        result = _result(loaded.model_id, rows, budget, time.perf_counter() - started)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=1))
    return result


def _result(model_id: str, rows: list[dict[str, Any]], budget: int, seconds: float) -> dict[str, Any]:
    summary = {
        prompt: {key: round(sum(r[f"{prompt}_score"][key] for r in rows) / len(rows), 3)
                 for key in ("delivered", "tool", "call")}
        for prompt in ("project", "plain")
    }
    return {"model": model_id, "cases": len(rows), "max_new_tokens": budget,
            "seconds": round(seconds, 1), "accuracy": summary, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file for the figures and every case")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="token budget per call")
    parser.add_argument("--limit", type=int, help="only the first N cases")
    parser.add_argument("--model", help="model (default: the bundled Gemma 3 270M)")
    args = parser.parse_args(argv)
    if args.max_new_tokens < 1 or (args.limit is not None and args.limit < 1):
        parser.error("--max-new-tokens and --limit must be at least 1")
    result = run(args.max_new_tokens, args.limit, args.model, Path(args.out))
    print(json.dumps({k: result[k] for k in ("model", "cases", "max_new_tokens", "seconds", "accuracy")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
