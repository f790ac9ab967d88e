"""A task tracker that is not the shop, with the steered agent embedded in it.

Two users of the tracker say the same vague thing, "anything pending?", and mean
opposite things by it: Ada wants to see her open tasks, Ben wants a reminder created.
Each user's past (request, accepted call) examples become steering vectors in that
user's own memory (Chroma), made by the project's one learner (`memory.learner.Learner`,
each call contrasted with the app's other tools); a new request is answered by a
LangChain agent (`create_agent`) whose model is the project's `SteeredChatModel`,
steered by the vectors retrieved for that user only. The tools run against the
tracker's state.

    python examples/workflow_app.py                 # bundled Gemma 3 270M
    python examples/workflow_app.py --model PATH    # another local model
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

NEW_REQUEST = "anything pending?"
MAX_TASK_ID = 2**63 - 1  # SQLite's INTEGER

# Each user's past interactions: (request, the call they accepted). What each accepted call
# is contrasted with is the learner's negative policy (`other-tools`: the app's other tools).
HISTORY: dict[str, list[tuple[str, tuple[str, dict]]]] = {
    "ada": [
        ("anything pending for today?", ("list_tasks", {"status": "open"})),
        ("what is pending?", ("list_tasks", {"status": "open"})),
        ("anything left to do?", ("list_tasks", {"status": "open"})),
    ],
    "ben": [
        ("anything pending for today?", ("add_task", {"title": "check pending items", "due": "today"})),
        ("what is pending?", ("add_task", {"title": "review pending work", "due": "tomorrow"})),
        ("anything left to do?", ("add_task", {"title": "plan what is left", "due": "friday"})),
    ],
}


class TaskTracker:
    """The app's own state: tasks per user in SQLite (in memory unless a path is given)."""

    def __init__(self, path: str = ":memory:") -> None:
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS tasks (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, "
            "title TEXT NOT NULL, due TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0)"
        )

    def create(self, owner: str, title: str, due: str) -> dict[str, Any]:
        if not title.strip():
            raise ValueError("title is empty; give the task a short title")
        cursor = self.db.execute("INSERT INTO tasks (owner, title, due) VALUES (?, ?, ?)", (owner, title, due))
        self.db.commit()
        return {"id": cursor.lastrowid, "title": title, "due": due, "status": "open"}

    def list(self, owner: str, status: str = "open") -> list[dict[str, Any]]:
        if status not in ("open", "done", "all"):
            raise ValueError(f"status {status!r} is not one of 'open', 'done', 'all'")
        rows = self.db.execute("SELECT id, title, due, done FROM tasks WHERE owner = ? ORDER BY id", (owner,))
        tasks = [{"id": i, "title": t, "due": d, "status": "done" if done else "open"} for i, t, d, done in rows]
        return [task for task in tasks if status == "all" or task["status"] == status]

    def complete(self, owner: str, task_id: int) -> dict[str, Any]:
        if not 1 <= task_id <= MAX_TASK_ID:
            raise ValueError(f"task id {task_id} is out of range; ids run from 1 to {MAX_TASK_ID}")
        cursor = self.db.execute("UPDATE tasks SET done = 1 WHERE id = ? AND owner = ?", (task_id, owner))
        self.db.commit()
        if cursor.rowcount == 0:  # another user's task is as unknown as a missing one
            raise ValueError(f"no task {task_id} of yours; list_tasks shows your task ids")
        return {"id": task_id, "status": "done"}


def make_tools(tracker: TaskTracker, owner: str) -> list[Any]:
    """The three LangChain tools, bound to one user's tasks (the user never picks the owner).

    `return_direct` ends the agent after one action: the tracker answers one request
    with one call, and the agent does not loop on a small model. The names differ in
    their first letter, so the name's first token decides the tool. Next to
    `complete_task`, a `create_task` may start with a token `c` that both names share
    (the tests' tiny tokenizer: `c`,`r`,... and `co`,`m`,...); the model then decides
    at `c` + `r` or `o`, a step the learner never reads (it reads each name's own
    tokens, `cr` against `co`), and steering towards it misses.
    """
    from langchain_core.tools import StructuredTool, ToolException

    def add_task(title: str, due: str) -> str:
        """Create a task or reminder with a short title and a due day."""
        return _answer(tracker.create, owner, title, due)

    def list_tasks(status: Literal["open", "done", "all"]) -> str:
        """List the user's tasks with the given status."""
        return _answer(tracker.list, owner, status)

    def complete_task(task_id: int) -> str:
        """Mark one of the user's tasks as done, by its id."""
        return _answer(tracker.complete, owner, task_id)

    def _answer(action: Any, *args: Any) -> str:
        try:
            return json.dumps(action(*args))
        except ValueError as error:  # a bad argument is the model's mistake: tell it, do not crash
            raise ToolException(str(error)) from error

    return [
        StructuredTool.from_function(f, return_direct=True, handle_tool_error=True)
        for f in (add_task, list_tasks, complete_task)
    ]


@dataclass(frozen=True)
class Settings:
    """How vectors are read and sized: the site and layer, the strength relative to the
    residual norm, and retrieval's threshold and k. The agent's own defaults for the
    model fill in the rest (agent/defaults.json)."""

    sites: str = "whole"
    layer: int | None = None  # None: the agent's default layer, at most the model's last
    strength: float = 0.5
    threshold: float = 0.3
    top_k: int = 4

    def method(self, model: Any) -> Any:
        """These settings as the `agent.methods.Method` the learner reads entries for.
        Steering only picks the tool ("decision" positions), as the vectors are read
        where the tool is decided; the arguments are written unsteered."""
        from agent.methods import parse_method

        base = parse_method(f"steer-{self.sites}-attentive", model.model_id)
        layer = self.layer if self.layer is not None else min(base.layers[0], model.num_layers - 1)
        return replace(base, layers=(layer,), alpha=self.strength, threshold=self.threshold,
                       top_k=self.top_k, positions="decision")


def decision_format(chat: Any, tools: list[Any]) -> Any:
    """(request, tool, arguments) -> (prompt, answer) as the app's agent decides: the
    prompt the chat model renders for these tools with the call's forced start
    `{"name":"` appended, and the part of the tool's name that tells it apart from the
    app's other tools (`agent.tool_choice.deciding_prefix`)."""
    from langchain_core.messages import HumanMessage

    from agent.prompt import format_tools, render_prompt
    from agent.tool_choice import FORCED_START, deciding_prefix

    loaded = chat.get_loaded()
    specs = format_tools(tools)
    names = [spec["function"]["name"] for spec in specs]
    prefixes = {name: deciding_prefix(loaded.tokenizer, name, names) for name in names}

    def format_call(request: str, tool: str, arguments: dict) -> tuple[str, str]:
        prompt = render_prompt([HumanMessage(request)], specs, tokenizer=loaded.tokenizer,
                               template=chat.template, examples=chat.examples)
        return prompt + FORCED_START, prefixes[tool]

    return format_call


def make_learner(chat: Any, store: Any, tools: list[Any], settings: Settings) -> Any:
    """The app's `memory.learner.Learner`: vectors read where the app's agent decides,
    each accepted call contrasted with the app's other tools (`other-tools`; a store whose
    entries were made with another policy is refused, never mixed)."""
    from memory.learner import Learner, negative_policy, steering_extractor, store_negatives

    loaded = chat.get_loaded()
    method = settings.method(loaded)
    policy = negative_policy(store_negatives(store, "other-tools"), tools=[tool.name for tool in tools])
    return Learner(store, steering_extractor(loaded, [method.site], method.layers), policy,
                   decision_format(chat, tools), model=loaded)


def past_interactions(history: dict[str, list]) -> list[Any]:
    """Each user's past examples as the learner's interactions (ids: user + request)."""
    from memory import make_entry_id
    from memory.learner import Interaction

    now = time.time()
    return [Interaction(user, request, name, args, now, make_entry_id(user, request))
            for user, examples in history.items() for request, (name, args) in examples]


@dataclass
class SteeringContext:
    """Runtime context of one agent run: the vector for this user and request."""

    steering: Any = None


def make_agent(chat: Any, tools: list[Any]) -> Any:
    """A LangChain agent over the steered model; a middleware passes the run's vector
    to the model call and asks for a tool call (the tracker answers with actions)."""
    from langchain.agents import create_agent
    from langchain.agents.middleware import wrap_model_call

    @wrap_model_call
    def steered(request, handler):
        vector = request.runtime.context.steering if request.runtime.context else None
        settings = {**request.model_settings, "steering": vector}
        return handler(request.override(tool_choice="any", model_settings=settings))

    return create_agent(chat, tools, middleware=[steered], context_schema=SteeringContext)


def run_request(agent: Any, request: str, vector: Any) -> dict[str, Any] | None:
    """Run one request through the agent; the call it made (None if it made none)."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    state = agent.invoke({"messages": [HumanMessage(request)]}, context=SteeringContext(vector))
    calls = [c for m in state["messages"] if isinstance(m, AIMessage) for c in m.tool_calls]
    if not calls:
        return None
    results = [m.content for m in state["messages"] if isinstance(m, ToolMessage)]
    return {"name": calls[0]["name"], "args": calls[0]["args"], "result": results[0] if results else None}


def open_model(model: Any) -> Any:
    """A LoadedModel as given, or loaded from a name/path (None: the bundled default)."""
    from steering import LoadedModel, load_model

    return model if isinstance(model, LoadedModel) else load_model(model)


def main(
    model: Any = None,
    store_dir: str | Path | None = None,
    *,
    settings: Settings = Settings(),
    request: str = NEW_REQUEST,
    max_new_tokens: int = 64,
    max_string_length: int = 40,
    verbose: bool = True,
) -> dict[str, Any]:
    """Build both users' memories, then answer `request` for each user unsteered and
    steered; returns {"users": {user: {"unsteered", "steered", "entries", "tasks"}}}."""
    from agent import SteeredChatModel
    from memory import MemoryStore
    from common.embedding import load_embedder

    loaded = open_model(model)
    method = settings.method(loaded)
    chat = SteeredChatModel(loaded=loaded, max_new_tokens=max_new_tokens, max_string_length=max_string_length,
                            steering_positions=method.positions)
    tracker = TaskTracker()
    tracker.create("ada", "pay rent", "friday")  # something pending for Ada to list
    temporary = tempfile.TemporaryDirectory() if store_dir is None else None
    directory = Path(temporary.name if temporary else store_dir)
    out: dict[str, Any] = {"model": loaded.model_id, "request": request, "users": {}}
    try:
        with MemoryStore(directory, loaded.model_id, loaded.hidden_size, load_embedder()) as store:
            learner = make_learner(chat, store, make_tools(tracker, "_"), settings)
            out["added"] = learner.learn_batch(past_interactions(HISTORY), progress=False).added
            for user in HISTORY:
                agent = make_agent(chat, make_tools(tracker, user))
                steering = learner.steering_for(user, request, method)  # this user's entries only
                plain = run_request(agent, request, None)
                steered = run_request(agent, request, steering.vector) if steering.applied else None
                out["users"][user] = {
                    "unsteered": plain, "steered": steered, "entries": steering.entry_ids,
                    "tasks": tracker.list(user, "all"),
                }
    finally:
        if temporary:
            temporary.cleanup()
    if verbose:
        print(f"model {out['model']}; request {request!r}; {out['added']} memory entries")
        for user, row in out["users"].items():
            habit = HISTORY[user][0][1][0]
            print(f"{user} (habitually means {habit}):")
            print(f"  unsteered: {_show(row['unsteered'])}")
            print(f"  steered:   {_show(row['steered'])}   [{len(row['entries'])} of {user}'s entries]")
    return out


def _show(call: dict[str, Any] | None) -> str:
    if call is None:
        return "(no call)"
    return f"{call['name']}({json.dumps(call['args'], ensure_ascii=False)}) -> {str(call['result'])[:80]}"


def cli(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model name or path (default: the bundled Gemma 3 270M)")
    parser.add_argument("--store", help="memory directory (default: a temporary one)")
    parser.add_argument("--strength", type=float, default=Settings.strength,
                        help="relative steering strength (default %(default)s)")
    parser.add_argument("--request", default=NEW_REQUEST, help="the new request (default %(default)r)")
    args = parser.parse_args(argv)
    if args.strength <= 0:
        parser.error(f"--strength must be > 0, got {args.strength}")
    main(args.model, args.store, settings=Settings(strength=args.strength), request=args.request)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
