"""Online adaptation (the steering paper has none): every evaluated user starts with
EMPTY memory and works through their interactions in time order; after each one the
accepted call (the gold call) is added online, as the agent's memory node would.
Decision-only (the tool each method names, `agent.stages`). We report F. Acc against
the number of completed interactions beside the same method's F. Acc on the users' test
tasks with all of their past in memory (the full-history figure a new user should
approach), the interactions it takes to reach 80% of it, and for drifting users F. Acc
before and after the drift and how many interactions recovery takes, with and without
time decay (`half_life_days`)."""

from __future__ import annotations

from typing import Any

from agent.stages import stage_counts, stage_rows
from evals.experiments.common import DEFAULT_STEERING, fresh_dir, side_memory
from evals.plots import lines
from evals.stats import TaskOutcome

STREAM = 12  # interactions per user (6 before and 6 after a drift)
HALF_LIFE_DAYS = 60.0
REACHED = 0.8  # share of the full-history F. Acc a new user should reach
VARIANTS = {  # label: (method, settings over its defaults)
    "prompt-k5": ("prompt-k5", {}),
    "steer": (DEFAULT_STEERING, {}),
    "steer+decay": (DEFAULT_STEERING, {"half_life_days": HALF_LIFE_DAYS}),
}


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
    """The evaluated users that have a request history (drifting users first)."""
    users = [u for u in ctx.users
             if any(h.request is not None for h in ctx.dataset.histories.get(u, []))]
    drifting = [u for u in users if getattr(ctx.dataset.hidden.get(u), "drift_timestamp", None)]
    return drifting + [u for u in users if u not in set(drifting)]


def run_variant(ctx: Any, name: str, method: Any, streams: dict[str, list[Any]], bar: Any) -> list[TaskOutcome]:
    """Decide at step i for every user in one batch (decision-only), then add the gold calls."""
    from agent.prompt_memory import PromptMemory
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
                decided = stage_rows(side.decider, agent.tool_specs(), due, method, batch=len(due))
                for task, row in zip(due, decided):
                    right = float(row["decision"] == row["gold"])
                    outcomes.append(TaskOutcome(task.task_id, task.user_id, task.type, row["decision"],
                                                right, 0.0, extra={"step": step,
                                                                   "timestamp": task.timestamp}))
                    gold = task.gold_call
                    episode = Episode(task.user_id, task.task, gold.name, dict(gold.arguments),
                                      timestamp=task.timestamp)
                    if method.steers:
                        writer.submit(episode)
                    else:  # what the live agent's writer also does with an accepted call
                        prompt.learn(episode)
                writer.flush(timeout=300.0)
                bar.update(len(due))
        finally:
            writer.close()
    return outcomes


def drift_figures(ctx: Any, outcomes: list[TaskOutcome]) -> dict:
    """Mean F. Acc before/after each drifting user's drift; recovery = interactions after
    the drift until the first correct tool."""
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
        hit = next((i + 1 for i, o in enumerate(post) if o.function_acc == 1.0), None)
        recoveries.append(hit)
    mean = lambda xs, key: sum(getattr(o, key) for o in xs) / len(xs) if xs else None  # noqa: E731
    found = [r for r in recoveries if r is not None]
    return {"drifting_users": len(recoveries),
            "before_f": mean(before, "function_acc"), "after_f": mean(after, "function_acc"),
            "recovery_interactions_mean": sum(found) / len(found) if found else None,
            "recovered_users": len(found)}


def run_online(ctx: Any) -> dict:
    users = pick_users(ctx)
    streams = {u: stream_for(ctx.dataset, u, STREAM) for u in users}
    variants = {label: ctx.method(name, **settings) for label, (name, settings) in VARIANTS.items()}
    tasks = [t for t in ctx.tasks if t.user_id in set(users)]
    total = (sum(len(s) for s in streams.values()) + len(ctx.tasks)) * len(variants)
    curves: dict[str, list[float]] = {}
    full: dict[str, float] = {}
    reached: dict[str, int | None] = {}
    drift_rows = []
    with ctx.bar(total, "online") as bar:
        for name, method in variants.items():
            # the full-history figure: the same method on these users' test tasks, all of
            # their past in the evaluation's store
            mine = [row for row in ctx.stage_rows(method, bar) if row["user_id"] in set(users)]
            counts = stage_counts(mine)
            full[name] = counts["right"] / max(1, counts["n"])
            outcomes = run_variant(ctx, name.replace("+", "_"), method, streams, bar)
            steps = sorted({o.extra["step"] for o in outcomes})
            curves[name] = [sum(o.function_acc for o in outcomes if o.extra["step"] == s)
                            / max(1, sum(1 for o in outcomes if o.extra["step"] == s))
                            for s in steps]
            reached[name] = next((n for n, f in enumerate(curves[name]) if f >= REACHED * full[name]), None)
            figures = drift_figures(ctx, outcomes)
            drift_rows.append([name, figures["drifting_users"], figures["before_f"], figures["after_f"],
                               figures["recovery_interactions_mean"], figures["recovered_users"]])
    length = max(len(c) for c in curves.values())
    plot = lines(list(range(length)), curves | {f"{n} full history": [f] * length for n, f in full.items()
                                                if n != "steer+decay"},
                 "Online adaptation from empty memory (decision-only)",
                 "completed interactions", "F. Acc (mean over users)", ctx.out / "online.png")
    curve_rows = [[i, *[c[i] if i < len(c) else None for c in curves.values()]]
                  for i in range(length)]
    return {
        "note": f"decision-only, {len(users)} users, {STREAM} interactions each from their history "
                f"requests and tasks (window centred on the drift for drifting users), memory empty at "
                f"the start; full-history F. Acc on their {len(tasks)} test tasks: "
                + ", ".join(f"{n} {f:.3f}" for n, f in full.items())
                + f"; {REACHED:.0%} of it first reached after: "
                + ", ".join(f"{n} {'never' if r is None else r}" for n, r in reached.items())
                + f" interactions; decay = half_life_days {HALF_LIFE_DAYS:g}.",
        "full_history": full,
        "reached": reached,
        "tables": [
            {"title": "F. Acc after n completed interactions",
             "columns": ["completed", *curves], "rows": curve_rows},
            {"title": "Drifting users: before / after the drift",
             "columns": ["variant", "users", "F before", "F after", "recovery (interactions)",
                         "recovered users"], "rows": drift_rows},
        ],
        "plot": plot.name,
    }
