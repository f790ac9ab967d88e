"""Where personalization is won or lost, per method, on every evaluated task.

Each method's tool is the one its call named on the single-turn track, when that track
ran the method on these tasks; else it is read decision-only with
`SteeredChatModel.choose_tools` (one prefill per decision, the name written only as far
as it is unique: the tool greedy generation writes, tests/test_tool_choice.py), so a
method is decided once per run. Per method, three stages:

- retrieval: the tool carried by the retrieved entries' weighted vote equals the gold
  tool (steering: the store's retrieval; prompt memory and `nearest-call`: the prompt
  memory's top-k, weighted the same way);
- obedience: the decision equals that retrieved tool;
- F. Acc end to end, with rescued / broken counts against zero-shot on the same task.

`nearest-call` uses no language model: the tool of the user's most similar past
interaction, through the same retrieval. Per-task outcomes (decision, retrieved entry
ids or requests, weights) are kept so every figure can be recomputed.
"""

from __future__ import annotations

from typing import Any

from agent.stages import stage_counts, stage_rows
from evals.stats import wilson_interval
from tools.registry import TOOL_FOR_TYPE

STAGE_METHODS = ("zero-shot", "prompt-k5", "nearest-call", "steer-whole-attentive", "steer-whole-mean",
                 "steer-attn+mlp-attentive", "steer-attn+mlp-mean")


def decide_stage(agent: Any, tasks: list[Any], name: str, batch: int, bar: Any,
                 method: Any = None, decider: Any = None) -> list[dict]:
    """`agent.stages.stage_rows` over the agent's decision path (`decider` when given:
    an experiment's own memory); `method` overrides the settings `name` stands for (the
    sweep's alpha and layers)."""
    from agent.methods import parse_method

    if method is None:
        method = parse_method(name, agent.loaded.model_id)
    return stage_rows(decider or agent.decider, agent.tool_specs(), tasks, method, batch, bar)


def stage_summary(rows: list[dict], zero: list[dict] | None) -> dict:
    """Retrieval, obedience, F. Acc (with Wilson intervals) and rescued / broken counts."""
    counts = stage_counts(rows)
    n, right, retrieved = counts["n"], counts["right"], counts["retrieved"]
    obeyed, with_retrieval = counts["obeyed"], counts["with_retrieval"]
    out = {"n": n, "function_acc": right / n, "function_acc_ci": list(wilson_interval(right, n)),
           "retrieval_acc": retrieved / n, "retrieval_acc_ci": list(wilson_interval(retrieved, n)),
           "obedience": obeyed / with_retrieval if with_retrieval else 0.0,
           "obedience_n": with_retrieval,
           "per_type": {t: sum(r["decision"] == r["gold"] for r in rows if r["type"] == t)
                        / max(1, sum(r["type"] == t for r in rows)) for t in TOOL_FOR_TYPE}}
    if zero is not None:
        pairs = list(zip(rows, zero))
        out["rescued"] = sum(r["decision"] == r["gold"] and z["decision"] != z["gold"] for r, z in pairs)
        out["broken"] = sum(r["decision"] != r["gold"] and z["decision"] == z["gold"] for r, z in pairs)
        out["broken_rate"] = out["broken"] / n
    return out


def run_stages(ctx: Any) -> dict:
    """Every stage method over all evaluated tasks (decision-only)."""
    tasks = list(ctx.tasks)
    asked = ctx.stage_methods or STAGE_METHODS
    names = ["zero-shot", "nearest-call", *(n for n in asked if n not in ("zero-shot", "nearest-call"))]
    results: dict[str, list[dict]] = {}
    reused = [name for name in names if ctx.method(name) in ctx.decided]
    with ctx.bar(len(tasks) * len(names), "stages") as bar:
        for name in names:
            bar.set_postfix_str(name)
            results[name] = ctx.stage_rows(ctx.method(name), bar)
    zero = results["zero-shot"]
    summaries = {name: stage_summary(rows, None if name == "zero-shot" else zero)
                 for name, rows in results.items()}
    columns = ["method", "retrieval acc", "obedience", "F. Acc", "F. Acc 95% CI", "search", "recommend",
               "review", "rescued", "broken"]
    table = [[name, round(s["retrieval_acc"], 3), round(s["obedience"], 3), round(s["function_acc"], 3),
              f"{s['function_acc_ci'][0]:.2f}-{s['function_acc_ci'][1]:.2f}",
              *(round(s["per_type"][t], 3) for t in TOOL_FOR_TYPE), s.get("rescued", ""), s.get("broken", "")]
             for name, s in summaries.items()]
    decided = [name for name in names if name not in reused]
    source = "; ".join(part for part in (
        f"the single-turn track's calls for {', '.join(reused)}" if reused else "",
        f"decision-only for {', '.join(decided)}" if decided else "") if part)
    return {"note": f"{len(tasks)} tasks of {len({t.user_id for t in tasks})} users; decisions: {source}",
            "stages": summaries, "tables": [{"title": "Stages: retrieval, obedience, F. Acc",
                                             "columns": columns, "rows": table}],
            "outcomes": results}
