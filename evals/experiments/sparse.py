"""Sparse data: memory made from 5%...100% of each user's past (history and train
tasks), for prompt memory and steering. Zero-shot on the same tasks is the floor: each
level reports the share of the full-history F. Acc gain over zero-shot that it keeps."""

from __future__ import annotations

from typing import Any

from agent.interactions import past_interactions
from evals.experiments.common import DEFAULT_STEERING, fresh_dir, side_memory, subset
from evals.memory_setup import interactions_per_user, memory_layers, subsample
from evals.plots import lines
from evals.runner import run_single
from evals.stats import summarize_method

FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)
METHODS = ("prompt-k3", DEFAULT_STEERING)


def run_sparse(ctx: Any) -> dict:
    from agent.prompt_memory import PromptMemory

    users = subset(ctx.users)
    tasks = [t for t in ctx.tasks if t.user_id in set(users)]
    methods = [ctx.method(n) for n in METHODS]
    layers = memory_layers(methods)
    summaries: dict[str, dict] = {}
    rows = []
    with ctx.bar((len(FRACTIONS) * len(methods) + 1) * len(tasks), "sparse") as bar:
        # The floor: the gain kept at each level is measured from zero-shot on these tasks.
        floor = summarize_method(run_single(ctx.agent, tasks, ctx.method("zero-shot"), bar=bar))
        summaries["zero-shot"] = floor
        # One store grows level by level: the latest 5% of a user's past is inside the
        # latest 10%, so each level adds only its new entries (building every level from
        # scratch cost twice the extraction time). It starts empty: a store left by an
        # earlier run into the same directory would hand the 5% level everything.
        fresh_dir(ctx.out / "sparse" / "memory")
        for fraction in sorted(FRACTIONS):
            data = subsample(ctx.dataset, users, fraction)
            prompt = PromptMemory.from_dataset(data, ctx.agent.embedder, users)
            with side_memory(ctx, ctx.out / "sparse" / "memory", prompt, layers) as side:
                side.learner.learn_batch(past_interactions(data, users, None), progress=False)
                row: list[Any] = [f"{fraction:.0%}", interactions_per_user(data, users)]
                for method in methods:
                    summary = summarize_method(run_single(ctx.agent, tasks, method, bar=bar,
                                                          decider=side.decider))
                    summaries[f"{method.name}@{fraction:.0%}"] = summary
                    row += [summary["overall"]["function_acc"], summary["overall"]["result_acc"]]
                rows.append(row)
    zero = floor["overall"]["function_acc"]
    for i in range(len(METHODS)):  # share of the full-history F. Acc gain over zero-shot
        full = rows[-1][2 + 2 * i] - zero
        for row in rows:
            row.append((row[2 + 2 * i] - zero) / full if full > 0 else None)
    plot = lines([r[1] for r in rows],
                 {f"{m} {k}": [r[2 + 2 * i + j] for r in rows]
                  for i, m in enumerate(METHODS) for j, k in enumerate(("F. Acc", "R. Acc"))}
                 | {"zero-shot F. Acc": [zero] * len(rows)},
                 "Sparse data", "mean past interactions per user", "accuracy",
                 ctx.out / "sparse.png", log_x=True)
    columns = (["history used", "mean interactions"]
               + [f"{m} {k}" for m in METHODS for k in ("F", "R")]
               + [f"{m} gain kept" for m in METHODS])
    return {
        "note": f"{len(users)} users ({', '.join(users)}), {len(tasks)} tasks; memory from the "
                "latest fraction of each user's history and train tasks (all of it at 100%); "
                f"zero-shot F. Acc on these tasks {zero:.3f}; gain kept = (F. Acc - zero-shot) "
                "/ (F. Acc with all history - zero-shot), none when there is no gain.",
        "methods": summaries,
        "tables": [{"title": "Accuracy against the share of history", "columns": columns,
                    "rows": rows}],
        "plot": plot.name,
    }
