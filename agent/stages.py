"""Where one decision is won or lost: what memory retrieved, and what the model did.

For each task, the tool the retrieved past interactions vote for (steering: the store's
entries, weighted as they are aggregated; prompt memory and `nearest-call`: the prompt
memory's top matches, weighted the same way) beside the tool the method decided,
through the agent's own decision path in decision-only mode (`Decider.choose`: one
prefill per decision, the name written only as far as it is unique). `fints demo` shows
these counts for its two users; `fints eval`'s stages experiment adds intervals and
rescued / broken counts over all evaluated tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agent.decide import Decider, Row
from agent.methods import Method
from memory.agreement import weighted_vote
from steering.weights import attentive_weights
from tools.registry import TOOL_FOR_TYPE


def stage_rows(decider: Decider, tools: Sequence[Any], tasks: Sequence[Any], method: Method,
               batch: int = 8, bar: Any = None, decided: Sequence[str | None] | None = None,
               ) -> list[dict]:
    """One row per task (a `tools.data.Task`): the gold tool, the decision, the retrieved
    tool and what was retrieved (entry ids or past requests, with their weights).
    `decided` gives the decisions already made (the tools of calls generated for these
    tasks, which decision-only mode picks as well): only the retrieval is read then."""
    # decided rows are read in task order; rows to decide are batched shortest first
    order = (list(range(len(tasks))) if decided is not None or method.kind == "lookup"
             else decider.by_length(method, [Row(task.user_id, task.task) for task in tasks]))
    rows: dict[int, dict] = {}
    for start in range(0, len(tasks), batch):
        indices = order[start:start + batch]
        group = [tasks[i] for i in indices]
        asked = [Row(task.user_id, task.task) for task in group]
        steering = decider.steering(method, asked)
        if method.steers:
            found = [{"tool": weighted_vote(d.matched_tools, d.weights) if d.applied else None,
                      "entries": d.entry_ids, "weights": d.weights} for d in steering]
        else:
            found = [_prompt_found(decider.prompt_memory, task, method) for task in group]
        if decided is not None:
            chosen = [decided[i] for i in indices]
        elif method.kind == "lookup":  # the first of the prompt memory's ranked matches
            chosen = [got["nearest"] for got in found]
        else:
            chosen = decider.choose(method, asked, tools, steering=steering)
        for index, task, tool, got in zip(indices, group, chosen, found):
            rows[index] = {"task_id": task.task_id, "user_id": task.user_id, "type": task.type,
                           "gold": TOOL_FOR_TYPE[task.type], "decision": tool, "retrieved_tool": got["tool"],
                           "entries": got["entries"], "weights": [float(w) for w in got["weights"]],
                           "steered": method.steers and got["tool"] is not None}
        if bar is not None:
            bar.update(len(group))
    return [rows[i] for i in range(len(tasks))]


def stage_counts(rows: Sequence[dict]) -> dict[str, int]:
    """n, right (decision = gold), retrieved (retrieved tool = gold), with_retrieval
    (something was retrieved) and obeyed (decision = retrieved tool)."""
    return {"n": len(rows),
            "right": sum(r["decision"] == r["gold"] for r in rows),
            "retrieved": sum(r["retrieved_tool"] == r["gold"] for r in rows),
            "with_retrieval": sum(bool(r["retrieved_tool"]) for r in rows),
            "obeyed": sum(r["decision"] == r["retrieved_tool"] for r in rows if r["retrieved_tool"])}


def _prompt_found(prompt_memory: Any, task: Any, method: Method) -> dict:
    """What prompt memory retrieves for the task (its top 5, softmax-weighted like the
    store's retrieval), for the retrieval stage of methods without vectors."""
    scored = prompt_memory.scored(task.user_id, task.task, max(method.k, 5)) if prompt_memory else []
    weights = [float(w) for w in attentive_weights(np.array([s for _, s in scored]), method.temperature)]
    return {"tool": weighted_vote([c.tool for c, _ in scored], weights),
            "nearest": scored[0][0].tool if scored else None,
            "entries": [c.request for c, _ in scored], "weights": [round(w, 4) for w in weights]}
