"""Sparse data: memory made from only each user's latest N past interactions (history
requests and train tasks in time order), for prompt memory and steering alike, decided
decision-only on every evaluated task. Zero-shot on the same tasks is the floor: each
level reports the share of the full-history F. Acc gain over zero-shot that it keeps
(the steering paper's sparse setting averages 5.8 samples per user). The full-history
level is the evaluation's own memory and decisions when that memory holds all of the
past (`EvalContext.memory_history`), so it equals the main table; a task whose model
input did not change from one level to the next keeps its decision."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from agent.interactions import past_interactions
from agent.stages import stage_counts, stage_rows
from evals.experiments.common import DEFAULT_STEERING, fresh_dir, side_memory
from evals.memory_setup import memory_layers
from evals.plots import lines

LEVELS = (2, 4, 6, 10, 20, None)  # latest past interactions per user; None: all of them
METHODS = ("prompt-k5", DEFAULT_STEERING)
SPARSE = 6  # a user with at most this many past interactions is sparse (the target's line)


def latest(interactions: list[Any], n: int | None) -> list[Any]:
    """Each user's latest `n` interactions (all with None), oldest first."""
    by_user: dict[str, list[Any]] = defaultdict(list)
    for item in interactions:
        by_user[item.user_id].append(item)
    kept = []
    for items in by_user.values():
        items.sort(key=lambda i: i.timestamp)
        kept += items if n is None else items[-n:]
    return kept


def run_sparse(ctx: Any) -> dict:
    from agent.prompt_memory import PastCall, PromptMemory
    from agent.runtime import intent_keys
    from memory.entry import to_epoch

    agent, users, tasks = ctx.agent, list(ctx.users), list(ctx.tasks)
    methods = [ctx.method(n) for n in METHODS]
    tools = agent.tool_specs()
    layers = memory_layers(methods)
    past = past_interactions(ctx.dataset, users, None)
    levels = sorted(LEVELS, key=lambda n: float("inf") if n is None else n)
    keys = intent_keys(ctx.dataset)
    accuracy: dict[str, float] = {}
    rows = []
    with ctx.bar((len(levels) * len(methods) + 1) * len(tasks), "sparse") as bar:
        zero = stage_counts(ctx.stage_rows(ctx.method("zero-shot"), bar))
        accuracy["zero-shot"] = zero["right"] / zero["n"]
        # One store grows level by level (a user's latest 2 are among their latest 4), so
        # each entry is extracted once; it starts empty, never with an earlier run's.
        path = fresh_dir(ctx.out / "sparse" / "memory")
        memo: dict = {}  # decisions by model input: a user whose past did not change is not decided again
        asked = reused = 0
        for level in levels:
            kept = latest(past, level)
            label = "all" if level is None else level
            if level is None and ctx.memory_history is None:
                # all of the past is the evaluation's own memory: its decisions, made once
                # per run (the single-turn track's where it ran the method), as in the main table
                decided = {method: ctx.stage_rows(method, bar) for method in methods}
            else:
                prompt = PromptMemory(agent.embedder, keys)
                for user in users:
                    prompt.extend(user, [PastCall(i.request, i.tool, i.arguments, to_epoch(i.timestamp))
                                         for i in kept if i.user_id == user])
                with side_memory(ctx, path, prompt, layers) as side:
                    side.learner.learn_batch(kept, progress=False)
                    before = len(memo)
                    decided = {method: stage_rows(side.decider, tools, tasks, method, bar=bar, memo=memo)
                               for method in methods}
                asked += len(methods) * len(tasks)
                reused += len(methods) * len(tasks) - (len(memo) - before)
            row: list[Any] = [label, len(kept) / max(1, len(users))]
            for method, outcomes in decided.items():
                got = stage_counts(outcomes)
                accuracy[f"{method.name}@{label}"] = got["right"] / got["n"]
                row.append(got["right"] / got["n"])
            rows.append(row)
    floor = accuracy["zero-shot"]
    for i in range(len(METHODS)):  # share of the full-history F. Acc gain over zero-shot
        full = rows[-1][2 + i] - floor
        for row in rows:
            row.append((row[2 + i] - floor) / full if full > 0 else None)
    sparse = [r for r in rows if r[0] != "all" and r[0] <= SPARSE]
    kept_at = {m: sparse[-1][2 + len(METHODS) + i] if sparse else None for i, m in enumerate(METHODS)}
    plot = lines([r[1] for r in rows],
                 {f"{m} F. Acc": [r[2 + i] for r in rows] for i, m in enumerate(METHODS)}
                 | {"zero-shot F. Acc": [floor] * len(rows)},
                 "Sparse data (decision-only)", "mean past interactions per user", "F. Acc",
                 ctx.out / "sparse.png", log_x=True)
    columns = (["latest interactions", "mean interactions"] + [f"{m} F. Acc" for m in METHODS]
               + [f"{m} gain kept" for m in METHODS])
    return {
        "note": f"decision-only, {len(users)} users, {len(tasks)} tasks; memory from each user's latest N "
                f"past interactions (history requests and train tasks); zero-shot F. Acc {floor:.3f}; gain "
                "kept = (F. Acc - zero-shot) / (F. Acc with all of the past - zero-shot), none without a "
                f"gain; at {SPARSE} interactions: "
                + ", ".join(f"{m} {'-' if v is None else f'{v:.2f}'}" for m, v in kept_at.items())
                + f"; decisions kept from a lower level (the same model input): {reused} of {asked}"
                + ("; all of the past: the evaluation's own decisions" if ctx.memory_history is None else ""),
        "accuracy": accuracy,
        "gain_kept_sparse": kept_at,
        "tables": [{"title": "F. Acc against the past each user has", "columns": columns, "rows": rows}],
        "plot": plot.name,
    }
