"""Argument steering, swept on users that are NOT held out: can a user's vectors shape
what a call says (the search query, the review), not only which tool it names?

For each search and review test task of the swept users the call is forced to the
task's tool, so what is measured is the writing, not the choice. Its arguments are
written steered by an *argument vector*: the user's past calls of that tool most alike
in subject (`IntentKeys.subject`: the request's catalog words), each contrasted as the
mean activation over the accepted value's tokens minus that over the request text's
(the request-only argument, what the unsteered model tends to copy), both read where
the value stands in the call (after `{"name":"T","arguments":{"query":"`), at one whole
layer; the mean is sized like the tool vectors (relative to the layer's reference norm,
`steering.scale`) and added at every generated token. Alpha 0 is the unsteered call.

Beside each setting: R. Acc per type and the degeneration rate (evals.degeneration),
and on the same tasks the user's most alike past value copied (what a lookup with no
model writes) and the gold call (the ceiling the shop allows). The written values are
kept per task, so any figure can be recomputed and read.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import HumanMessage

from agent.interactions import gold_call, past_interactions
from agent.prompt import EXAMPLES, render_call, render_prompt
from agent.runtime import intent_keys
from evals.degeneration import is_degenerate
from evals.experiments.sweep import MIN_TASKS, sweep_users
from evals.plots import lines
from evals.runner import batches, score_executed
from evals.tasks import tasks_of
from tools.registry import REVIEW, SEARCH, TOOL_FOR_TYPE

ALPHAS = (0.0, 0.05, 0.1, 0.2)
LAYERS = (6, 14)
TOP = 3  # past calls per argument vector
VALUE_KEY = {SEARCH: "query", REVIEW: "review"}  # the free-text argument of each tool
_MARK = "\u241f"  # stands for the value while the call's text before it is cut out


def value_prompt(agent: Any, request: str, tool: str) -> str:
    """The decision prompt followed by the call up to where its value starts: the place
    an argument vector is read from and added at."""
    head = render_call(tool, {VALUE_KEY[tool]: _MARK}).split(_MARK)[0]
    prompt = render_prompt([HumanMessage(request)], agent.tool_specs(), tokenizer=agent.loaded.tokenizer,
                           template="auto", examples=EXAMPLES)
    return prompt + head


def alike_past_calls(agent: Any, keys: Any, task: Any, past: Sequence[Any], k: int = TOP) -> list[Any]:
    """The user's `k` past calls of the task's tool most alike in subject, best first."""
    if not past:
        return []
    texts = [keys.subject(task.task)] + [keys.subject(item.request) for item in past]
    embedded = agent.embedder.embed(texts)
    scores = embedded[1:] @ embedded[0]
    order = sorted(range(len(past)), key=lambda i: -float(scores[i]))[:k]
    return [past[i] for i in order]


def argument_vectors(agent: Any, tasks: Sequence[Any], alike: dict[str, list[Any]],
                     layers: Sequence[int]) -> dict[str, dict[str, Any]]:
    """Per task id, the mean contrast of its alike past calls at each layer ("whole.L"),
    unscaled, with the mean norm of the contrasts (`scale`'s unit)."""
    import steering

    out: dict[str, dict[str, Any]] = {}
    for task in tasks:
        tool = TOOL_FOR_TYPE[task.type]
        pairs = [steering.ContrastPair(value_prompt(agent, item.request, tool),
                                       str(item.arguments[VALUE_KEY[tool]]), item.request)
                 for item in alike[task.task_id]]
        if not pairs:
            continue
        vectors = steering.extract_vectors(agent.loaded, pairs, "whole", list(layers))
        keys = list(vectors[0])
        out[task.task_id] = {
            "mean": {key: sum(v[key] for v in vectors) / len(vectors) for key in keys},
            "unit": {key: sum(float(v[key].norm()) for v in vectors) / len(vectors) for key in keys},
        }
    return out


def write_steered(agent: Any, tasks: Sequence[Any], vectors: dict[str, dict[str, Any]],
                  layer: int, alpha: float, batch_size: int) -> list[dict | None]:
    """Each task's call, forced to its tool, arguments steered at `layer` by `alpha`
    (0: unsteered); None where the model wrote no valid call."""
    from steering import SteeringVector, reference_norms, scale

    loaded = agent.loaded
    norms = reference_norms(loaded)
    key = f"whole.{layer}"
    calls: dict[str, dict | None] = {}
    for tool in dict.fromkeys(TOOL_FOR_TYPE[t.type] for t in tasks):
        mine = [t for t in tasks if TOOL_FOR_TYPE[t.type] == tool]
        for group in batches(mine, batch_size):
            rows = None
            if alpha > 0:
                rows = [scale(SteeringVector({key: vectors[t.task_id]["mean"][key]}, loaded.model_id,
                                             loaded.hidden_size),
                              alpha, reference_norms=norms, unit_norms={key: vectors[t.task_id]["unit"][key]})
                        for t in group]
            replies = agent.chat.generate_batch(
                [[HumanMessage(t.task)] for t in group], steering=rows, tools=agent.tool_specs(),
                tool_choice={"type": "function", "function": {"name": tool}},
                steering_positions="generated" if rows else None)
            for task, reply in zip(group, replies):
                made = reply.tool_calls[0] if reply.tool_calls else None
                calls[task.task_id] = {"name": made["name"], "args": dict(made["args"])} if made else None
    return [calls[t.task_id] for t in tasks]


def run_arguments(ctx: Any) -> dict:
    agent, dataset = ctx.agent, ctx.dataset
    users = sweep_users(dataset, MIN_TASKS)
    tasks = [t for t in tasks_of(dataset, users, None) if TOOL_FOR_TYPE[t.type] in VALUE_KEY]
    keys = intent_keys(dataset)
    past: dict[tuple[str, str], list[Any]] = {}
    for item in past_interactions(dataset, users):
        if item.tool in VALUE_KEY and item.arguments.get(VALUE_KEY[item.tool]):
            past.setdefault((item.user_id, item.tool), []).append(item)
    alike = {t.task_id: alike_past_calls(agent, keys, t, past.get((t.user_id, TOOL_FOR_TYPE[t.type]), []))
             for t in tasks}
    tasks = [t for t in tasks if alike[t.task_id]]  # a user with no such past call has nothing to steer by
    vectors = argument_vectors(agent, tasks, alike, LAYERS)

    def scored(label: str, calls: Sequence[dict | None]) -> dict:
        rows = []
        for task, call in zip(tasks, calls):
            _, r_acc = score_executed(agent, task, call)  # no call scores 0
            value = (call or {}).get("args", {}).get(VALUE_KEY[TOOL_FOR_TYPE[task.type]], "")
            rows.append({"task_id": task.task_id, "type": task.type, "value": str(value)[:300],
                         "result_acc": round(r_acc, 4), "degenerate": is_degenerate(call, call is None)})
        return {"label": label, **summary(rows), "outcomes": rows}

    copied = [{"name": TOOL_FOR_TYPE[t.type],
               "args": {VALUE_KEY[TOOL_FOR_TYPE[t.type]]: alike[t.task_id][0].arguments[VALUE_KEY[TOOL_FOR_TYPE[t.type]]]}}
              for t in tasks]
    golds = [{"name": name, "args": args} for name, args in (gold_call(t, dataset.histories) for t in tasks)]
    baselines = {"copied": scored("past value copied (no model)", copied), "gold": scored("gold call (ceiling)", golds)}
    strengths = [0.0] + [alpha for alpha in ALPHAS if alpha > 0]
    settings = [(0, 0.0)] + list(itertools.product(LAYERS, strengths[1:]))
    results = []
    with ctx.bar(len(settings) * len(tasks), "arguments") as bar:
        for layer, alpha in settings:
            made = scored(f"layer {layer} alpha {alpha:g}" if alpha else "unsteered",
                          write_steered(agent, tasks, vectors, layer, alpha, ctx.batch_size))
            results.append({"layer": layer, "alpha": alpha, **made})
            bar.update(len(tasks))
    unsteered = results[0]
    series = {}
    for layer in LAYERS:
        mine = [unsteered] + [r for r in results if r["layer"] == layer]
        series[f"R. Acc, layer {layer}"] = [r["result_acc"] for r in mine]
        series[f"degeneration, layer {layer}"] = [r["degeneration_rate"] for r in mine]
    for base in baselines.values():
        series[f"R. Acc, {base['label']}"] = [base["result_acc"]] * len(strengths)
    ctx.out.mkdir(parents=True, exist_ok=True)
    plot = lines(strengths, series, f"Argument steering ({len(tasks)} non-held-out search/review tasks)",
                 "alpha (x the layer's reference norm)", "R. Acc / degeneration rate",
                 ctx.out / "arguments.png")
    table = [[r["label"], r["n"], r["search_result_acc"], r["review_result_acc"], r["result_acc"],
              r["degeneration_rate"]] for r in [*results, *baselines.values()]]
    return {
        "note": f"{len(tasks)} search and review tasks of {len(users)} non-held-out users, the call "
                f"forced to the task's tool; argument vectors from the {TOP} past calls most alike in "
                "subject (accepted value minus the request text), whole layer, every generated token",
        "users": users,
        "results": results,
        "baselines": baselines,
        "tables": [{"title": "Settings", "columns": ["setting", "n", "search R. Acc", "review R. Acc",
                                                     "R. Acc", "degeneration"], "rows": table}],
        "plot": plot.name,
    }


def summary(rows: Sequence[dict]) -> dict:
    """R. Acc per type and overall, and the degeneration rate, rounded for the report."""
    def mean(values: list[float]) -> float:
        return round(sum(values) / len(values), 3) if values else 0.0

    return {
        "n": len(rows),
        "search_result_acc": mean([r["result_acc"] for r in rows if r["type"] == "search"]),
        "review_result_acc": mean([r["result_acc"] for r in rows if r["type"] == "review"]),
        "result_acc": mean([r["result_acc"] for r in rows]),
        "degeneration_rate": mean([float(r["degenerate"]) for r in rows]),
    }

