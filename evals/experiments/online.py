"""Online adaptation (the steering paper has none): users start with EMPTY memory and
work through their interactions in time order; after each one the accepted call (the
gold call) is added online, as the agent's memory node would. We report accuracy
against the number of completed interactions, and for drifting users accuracy before
and after the drift and how many interactions recovery takes, with and without time
decay (`half_life_days`)."""

from __future__ import annotations

from typing import Any

from evals.experiments.common import DEFAULT_STEERING, fresh_dir, side_memory, subset
from evals.plots import lines
from evals.runner import score_executed
from evals.stats import TaskOutcome, summarize_method

STREAM = 12  # interactions per user (6 before and 6 after a drift)
HALF_LIFE_DAYS = 60.0


def stream_for(dataset: Any, user: str, length: int = STREAM) -> list[Any]:
    """The user's history requests and tasks as scorable tasks, in time order; the
    window is centred on a drift when the user drifts."""
    from tools.data import Target, Task

    items = [Task(task_id=f"{user}-h{i:03d}", user_id=user, task=h.request.task,
                  type=h.request.type, timestamp=h.review.timestamp,
                  target=Target(product_info=h.product_info, review=h.review),
                  gold_call=h.request.gold_call)
             for i, h in enumerate(dataset.histories.get(user, [])) if h.request is not None]
    items += [t for t in dataset.tasks if t.user_id == user and t.gold_call is not None]
    items.sort(key=lambda t: t.timestamp)
    prefs = dataset.hidden.get(user)
    drift = prefs.drift_timestamp if prefs is not None else None
    if drift is None or len(items) <= length:
        return items[:length]
    pivot = next((i for i, t in enumerate(items) if t.timestamp >= drift), len(items))
    start = max(0, min(pivot - length // 2, len(items) - length))
    return items[start:start + length]


def pick_users(ctx: Any) -> list[str]:
    """Drifting users first (up to half), then others, among users with a request history."""
    users = [u for u in ctx.dataset.user_ids()
             if any(h.request is not None for h in ctx.dataset.histories.get(u, []))]
    drifting = [u for u in users if getattr(ctx.dataset.hidden.get(u), "drift_timestamp", None)]
    steady = [u for u in users if u not in set(drifting)]
    half = max(1, len(subset(users)) // 2)
    return (drifting[:half] + steady)[:len(subset(users))]


def run_variant(ctx: Any, name: str, method: Any, streams: dict[str, list[Any]], bar: Any) -> list[TaskOutcome]:
    """Decide at step i for every user in one batch, score, then add the gold calls."""
    from agent.prompt_memory import PastCall, PromptMemory
    from agent.runtime import intent_keys
    from memory.online import Episode, OnlineWriter

    agent = ctx.agent
    prompt = PromptMemory(agent.embedder, intent_keys(ctx.dataset))
    outcomes: list[TaskOutcome] = []
    path = fresh_dir(ctx.out / "online" / f"memory_{name}")  # users start with EMPTY memory
    with side_memory(ctx, path, prompt, method.layers if method.steers else None) as side:
        writer = OnlineWriter(side.learner)  # the agent's memory node's writer and learner
        try:
            for step in range(max(len(s) for s in streams.values())):
                due = [s[step] for s in streams.values() if step < len(s)]
                decisions = agent.decide_batch([(t.user_id, t.task) for t in due], method=method,
                                               decider=side.decider)
                for task, decision in zip(due, decisions):
                    f_acc, r_acc = score_executed(agent, task, decision.call)
                    outcomes.append(TaskOutcome(task.task_id, task.user_id, task.type,
                                                decision.call["name"] if decision.call else None,
                                                f_acc, r_acc, extra={"step": step,
                                                                     "timestamp": task.timestamp}))
                    gold = task.gold_call
                    if method.steers:
                        writer.submit(Episode(task.user_id, task.task, gold.name,
                                              dict(gold.arguments), timestamp=task.timestamp))
                    else:
                        prompt.extend(task.user_id, [PastCall(task.task, gold.name,
                                                              dict(gold.arguments),
                                                              float(task.timestamp))])
                writer.flush(timeout=300.0)
                bar.update(len(due))
        finally:
            writer.close()
    return outcomes


def drift_figures(ctx: Any, outcomes: list[TaskOutcome]) -> dict:
    """Mean accuracy before/after each drifting user's drift; recovery = interactions
    after the drift until a correct tool with R. Acc at least the pre-drift mean."""
    before: list[TaskOutcome] = []
    after: list[TaskOutcome] = []
    recoveries = []
    for user in {o.user_id for o in outcomes}:
        drift = getattr(ctx.dataset.hidden.get(user), "drift_timestamp", None)
        if drift is None:
            continue
        mine = [o for o in outcomes if o.user_id == user]
        pre = [o for o in mine if o.extra["timestamp"] < drift]
        post = [o for o in mine if o.extra["timestamp"] >= drift]
        before += pre
        after += post
        bar = sum(o.result_acc for o in pre) / len(pre) if pre else 0.0
        hit = next((i + 1 for i, o in enumerate(post)
                    if o.function_acc == 1.0 and o.result_acc >= bar), None)
        recoveries.append(hit)
    mean = lambda xs, key: sum(getattr(o, key) for o in xs) / len(xs) if xs else None  # noqa: E731
    found = [r for r in recoveries if r is not None]
    return {"drifting_users": len(recoveries),
            "before_f": mean(before, "function_acc"), "before_r": mean(before, "result_acc"),
            "after_f": mean(after, "function_acc"), "after_r": mean(after, "result_acc"),
            "recovery_interactions_mean": sum(found) / len(found) if found else None,
            "recovered_users": len(found)}


def run_online(ctx: Any) -> dict:
    users = pick_users(ctx)
    streams = {u: stream_for(ctx.dataset, u, STREAM) for u in users}
    variants = {
        "prompt-k3": ctx.method("prompt-k3"),
        "steer": ctx.method(DEFAULT_STEERING),
        "steer+decay": ctx.method(DEFAULT_STEERING, half_life_days=HALF_LIFE_DAYS),
    }
    total = sum(len(s) for s in streams.values()) * len(variants)
    curves: dict[str, list[float]] = {}
    summaries: dict[str, dict] = {}
    drift_rows = []
    with ctx.bar(total, "online") as bar:
        for name, method in variants.items():
            outcomes = run_variant(ctx, name.replace("+", "_"), method, streams, bar)
            summaries[f"online:{name}"] = summarize_method(outcomes)
            steps = sorted({o.extra["step"] for o in outcomes})
            curves[name] = [sum(o.function_acc for o in outcomes if o.extra["step"] == s)
                            / max(1, sum(1 for o in outcomes if o.extra["step"] == s))
                            for s in steps]
            figures = drift_figures(ctx, outcomes)
            drift_rows.append([name, figures["drifting_users"], figures["before_f"],
                               figures["before_r"], figures["after_f"], figures["after_r"],
                               figures["recovery_interactions_mean"], figures["recovered_users"]])
    length = max(len(c) for c in curves.values())
    plot = lines(list(range(length)), curves, "Online adaptation from empty memory",
                 "completed interactions", "F. Acc (mean over users)", ctx.out / "online.png")
    curve_rows = [[i, *[c[i] if i < len(c) else None for c in curves.values()]]
                  for i in range(length)]
    return {
        "note": f"{len(users)} users ({', '.join(users)}), {STREAM} interactions each from "
                f"their history requests and tasks (window centred on the drift for drifting "
                f"users); decay = half_life_days {HALF_LIFE_DAYS:g}.",
        "methods": summaries,
        "tables": [
            {"title": "F. Acc after n completed interactions",
             "columns": ["completed", *curves], "rows": curve_rows},
            {"title": "Drifting users: before / after the drift",
             "columns": ["variant", "users", "F before", "R before", "F after", "R after",
                         "recovery (interactions)", "recovered users"], "rows": drift_rows},
        ],
        "plot": plot.name,
    }
