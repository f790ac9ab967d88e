"""Running one method over tasks: the single-turn track (batched decisions, then each
call executed against the shop) and the multi-turn track (the agent's graph with a
simulated user). Both return `TaskOutcome`s, scored with `tools.scoring`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.decide import MEMORY_ADDED, Row
from agent.prompt_memory import names
from evals.degeneration import is_degenerate
from evals.stats import TaskOutcome
from tools.data import Task
from tools.registry import REVIEW, SEARCH, TOOL_FOR_TYPE
from tools.scoring import score_call

# rows of one batched generate: a decode step of 16 rows costs 14.5 ms a row against 19
# for 8 (the weights are read once per step), 15-20% less time per evaluated method
BATCH = 16


def score_executed(agent: Any, task: Task, call: dict | None) -> tuple[float, float]:
    """Execute a call for the task's user against the shop and score it."""
    if call is None:
        outcome = score_call(task, None, None, agent.embedder)
        return outcome.function_acc, outcome.result_acc
    try:
        result = agent.execute(call, user_id=task.user_id,
                               review_asin=task.target.product_info.parent_asin,
                               as_of=task.timestamp)
    except Exception:  # arguments the tool's schema refuses: the right tool, no result
        result = None
    ok = result is not None and result.ok
    returned: Any = list(result.asins) if ok else None
    if call["name"] == REVIEW and ok:
        returned = str(call.get("args", {}).get("review", ""))
    scored = score_call(task, call["name"], returned, agent.embedder)
    # a cosine of identical reviews comes out as 1.0000001 in float32: keep R. Acc in [0, 1]
    return scored.function_acc, min(1.0, max(0.0, float(scored.result_acc)))


def brand_named(task: Task, call: dict | None) -> dict:
    """For a search task answered with a search: whether the query names the target's
    brand (`brand_named`), the stage that decides most of a search's R. Acc; else {}."""
    brand = task.target.product_info.store or ""
    if task.type != "search" or not brand or call is None or call["name"] != SEARCH:
        return {}
    return {"brand_named": names(str(call.get("args", {}).get("query", "")), brand)}


def _memory_added(reply: Any) -> dict:
    """What memory put into a call (`Decider.personal_terms`, recorded on the reply that
    made it): the query's brands, the review's sentences in the user's voice, the
    recommendation's purchases; absent where nothing."""
    metadata = reply.response_metadata if reply is not None else {}
    return {key: list(metadata[key]) for key in MEMORY_ADDED if metadata.get(key)}


def batches(items: Sequence[Any], size: int = BATCH) -> list[list[Any]]:
    """Groups of up to `size` items, in order; rows of a batch may belong to different users."""
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def run_single(agent: Any, tasks: Sequence[Task], method: Any, *, batch_size: int = BATCH,
               bar: Any = None, decider: Any = None) -> list[TaskOutcome]:
    """One decision per task (batched), executed and scored; `decider` replaces the
    agent's decision path (an experiment's own memory)."""
    order = (decider or agent.decider).by_length(method, [Row(t.user_id, t.task) for t in tasks])
    outcomes: dict[int, TaskOutcome] = {}
    for group in batches(order, batch_size):
        decisions = agent.decide_batch([(tasks[i].user_id, tasks[i].task) for i in group], method=method,
                                       decider=decider)
        for index, decision in zip(group, decisions):
            task = tasks[index]
            f_acc, r_acc = score_executed(agent, task, decision.call)
            outcomes[index] = TaskOutcome(
                task.task_id, task.user_id, task.type,
                decision.call["name"] if decision.call else None, f_acc, r_acc,
                degenerate=is_degenerate(decision.call, decision.malformed),
                malformed=decision.malformed, latency_s=decision.latency_s,
                steered=bool(decision.steering.get("applied")),
                arguments=dict(decision.call["args"]) if decision.call else None,
                extra={**brand_named(task, decision.call), **_memory_added(decision.reply)},
            )
        if bar is not None:
            bar.update(len(group))
    return [outcomes[i] for i in range(len(tasks))]


def run_gold(agent: Any, tasks: Sequence[Task]) -> list[TaskOutcome]:
    """Each task's gold call (the right tool with the user's real arguments) executed and
    scored: the R. Acc the shop's search engine and recommender allow, printed beside
    every method so a reader sees how much is left."""
    from agent.interactions import gold_call

    outcomes = []
    for task in tasks:
        name, arguments = gold_call(task, agent.dataset.histories)
        f_acc, r_acc = score_executed(agent, task, {"name": name, "args": arguments})
        outcomes.append(TaskOutcome(task.task_id, task.user_id, task.type, name, f_acc, r_acc,
                                    arguments=dict(arguments),
                                    extra=brand_named(task, {"name": name, "args": arguments})))
    return outcomes


def run_multi(agent: Any, tasks: Sequence[Task], method: Any, *, max_steps: int = 6,
              seed: int = 0, bar: Any = None) -> list[TaskOutcome]:
    """The full graph per task with a rule-based simulated user answering `respond`.

    PersonalWAB's protocol (`agent.graph`): the agent may talk first, and its first shop
    action (search, recommend, review) ends the episode and is scored; an episode the
    user or the step limit ends before any action scores 0. Steps count every action
    the agent took, and the report keeps their tool names (`actions`) so a reader sees
    where an episode spent its steps. Needs the generator's hidden preferences.
    """
    from langchain_core.messages import AIMessage

    from tools.simulated_user import SimulatedUser

    outcomes = []
    for task in tasks:
        prefs = agent.dataset.hidden.get(task.user_id)
        if prefs is None:
            raise ValueError(f"the multi-turn track needs hidden preferences for {task.user_id}; "
                             "imported data sets have none: use --track single")
        user = SimulatedUser(prefs, task, seed=seed, max_steps=max_steps,
                             products=agent.dataset.products)
        episode = agent.run(task.user_id, user.opening(), track="multi", method=method,
                            simulated_user=lambda message, user=user: user.respond(message).text)
        replies = [m for m in episode.messages if isinstance(m, AIMessage) and m.tool_calls]
        calls = [m.tool_calls[0] for m in replies]
        shop = [m for m, c in zip(replies, calls) if c["name"] in TOOL_FOR_TYPE.values()]
        last = shop[-1].tool_calls[0] if shop else None
        final = {"name": last["name"], "args": dict(last["args"])} if last else None
        f_acc, r_acc = score_executed(agent, task, final) if final else (0.0, 0.0)
        steps = max(1, len(calls))
        outcomes.append(TaskOutcome(
            task.task_id, task.user_id, task.type, final["name"] if final else None,
            f_acc, r_acc, degenerate=any(is_degenerate(m.tool_calls[0]) for m in shop) or not calls,
            malformed=not calls, latency_s=episode.latency_s / steps, steps=steps,
            steered=bool(episode.steering.get("applied")),
            arguments=dict(final["args"]) if final else None,
            extra={**brand_named(task, final), **_memory_added(shop[-1] if shop else None),
                   "actions": [c["name"] for c in calls]},
        ))
        if bar is not None:
            bar.update(1)
    return outcomes
