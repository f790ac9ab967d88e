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

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from agent.decide import Decider, Row
from agent.methods import Method
from memory.agreement import weighted_vote
from memory.steerer import SteeringDecision
from steering.weights import attentive_weights
from tools.registry import TOOL_FOR_TYPE


def stage_rows(decider: Decider, tools: Sequence[Any], tasks: Sequence[Any], method: Method,
               batch: int = 8, bar: Any = None, decided: Sequence[str | None] | None = None,
               memo: dict | None = None) -> list[dict]:
    """One row per task (a `tools.data.Task`): the gold tool, the decision, the retrieved
    tool and what was retrieved (entry ids or past requests, with their weights).
    `decided` gives the decisions already made (the tools of calls generated for these
    tasks, which decision-only mode picks as well): only the retrieval is read then.
    `memo`, a dict the caller keeps across calls, holds decisions by what the model read
    (`model_input`): a task whose input was decided before is not decided again (the
    sparse experiment's memory levels at which a user's retrieved past did not change)."""
    asked = [Row(task.user_id, task.task) for task in tasks]
    steering = decider.steering(method, asked)
    if method.steers:
        found = [{"tool": weighted_vote(d.matched_tools, d.weights) if d.applied else None,
                  "entries": d.entry_ids, "weights": d.weights} for d in steering]
    else:
        found = [_prompt_found(decider.prompt_memory, task, method) for task in tasks]
    if decided is not None or method.kind == "lookup":  # the first of prompt memory's ranked matches
        chosen = list(decided) if decided is not None else [got["nearest"] for got in found]
        if bar is not None:
            bar.update(len(tasks))
    else:
        chosen = _choose(decider, tools, asked, method, steering, batch, bar, memo)
    return [{"task_id": task.task_id, "user_id": task.user_id, "type": task.type,
             "gold": TOOL_FOR_TYPE[task.type], "decision": tool, "retrieved_tool": got["tool"],
             "entries": got["entries"], "weights": [float(w) for w in got["weights"]],
             "steered": method.steers and got["tool"] is not None}
            for task, tool, got in zip(tasks, chosen, found)]


def model_input(decider: Decider, method: Method, row: Row, steering: SteeringDecision) -> tuple:
    """What the model reads for a decision: the method (its positions and strength), the
    messages (prompt memory included) and the steering vector's exact values."""
    messages = tuple((m.type, str(m.content)) for m in decider.conversation(method, row))
    vector = steering.vector
    digest = hashlib.blake2b(digest_size=16)
    for key, tensor in sorted(vector.tensors.items()) if vector is not None else ():
        digest.update(key.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return method, messages, steering.strength, digest.hexdigest() if vector is not None else None


def _choose(decider: Decider, tools: Sequence[Any], rows: list[Row], method: Method,
            steering: list[SteeringDecision], batch: int, bar: Any, memo: dict | None) -> list[str | None]:
    """Decision-only for every row not in `memo`, batched shortest conversation first."""
    keys = [model_input(decider, method, row, s) for row, s in zip(rows, steering)] if memo is not None else None
    chosen: list[str | None] = [None] * len(rows)
    todo = []
    for index in range(len(rows)):
        if keys is not None and keys[index] in memo:
            chosen[index] = memo[keys[index]]
        else:
            todo.append(index)
    if bar is not None and len(todo) < len(rows):
        bar.update(len(rows) - len(todo))
    order = [todo[i] for i in decider.by_length(method, [rows[i] for i in todo])]
    for start in range(0, len(order), batch):
        indices = order[start:start + batch]
        made = decider.choose(method, [rows[i] for i in indices], tools, steering=[steering[i] for i in indices])
        for index, tool in zip(indices, made):
            chosen[index] = tool
            if keys is not None:
                memo[keys[index]] = tool
        if bar is not None:
            bar.update(len(indices))
    return chosen


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
