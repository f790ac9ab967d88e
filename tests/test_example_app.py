"""examples/workflow_app.py: the steered agent embedded in a task tracker (not the shop).

One run of the example on a tiny random model (real Chroma, real embedder, real
LangChain agent) feeds the checks; the bundled model runs once under `slow`.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import torch

from agent.prompt import format_tools
from memory import make_entry_id
from tests.helpers.tiny_models import tiny_model

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "workflow_app.py"


def _load_example():
    """The example is a script, not a package: load it from its file."""
    spec = importlib.util.spec_from_file_location("workflow_app", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


app = _load_example()
HISTORY, Settings, TaskTracker, main, make_tools = app.HISTORY, app.Settings, app.TaskTracker, app.main, app.make_tools
STRONG = Settings(strength=4.0)  # four residual norms: enough to move a random 2-layer model


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    store = tmp_path_factory.mktemp("memory")
    return main(tiny_model("gemma3"), store, settings=STRONG, max_new_tokens=150,
                max_string_length=6, verbose=False)


def test_tools_run_against_the_tracker_state() -> None:
    tracker = TaskTracker()
    create, listing, complete = make_tools(tracker, "ada")
    created = create.invoke({"title": "water plants", "due": "monday"})
    assert '"water plants"' in listing.invoke({"status": "open"})
    task_id = tracker.list("ada")[0]["id"]
    assert complete.invoke({"task_id": task_id})
    assert "water plants" not in listing.invoke({"status": "open"})
    assert "water plants" in listing.invoke({"status": "done"})
    assert '"id"' in created
    # another user neither sees nor completes Ada's task; a bad id is an answer, not a crash
    _, other_listing, other_complete = make_tools(tracker, "ben")
    assert other_listing.invoke({"status": "all"}) == "[]"
    assert "no task" in other_complete.invoke({"task_id": task_id})
    assert "out of range" in complete.invoke({"task_id": 10**30})


def test_memory_holds_every_past_example(run) -> None:
    assert run["added"] == sum(len(examples) for examples in HISTORY.values())


def test_each_user_is_steered_only_by_their_own_entries(run) -> None:
    for user, row in run["users"].items():
        own = {make_entry_id(user, request) for request, _ in HISTORY[user]}
        assert row["entries"], f"{user}: memory abstained on a request like their past ones"
        assert set(row["entries"]) <= own, f"{user} was steered by another user's entries"


def test_calls_are_valid_for_the_bound_tools(run) -> None:
    specs = {s["function"]["name"]: s["function"]["parameters"] for s in format_tools(make_tools(TaskTracker(), "x"))}
    calls = [c for row in run["users"].values() for c in (row["unsteered"], row["steered"]) if c is not None]
    assert len(calls) >= 3, run
    for call in calls:
        assert call["name"] in specs
        jsonschema.validate(call["args"], specs[call["name"]])
        assert call["result"] is not None  # the tool ran and answered


def test_a_created_task_is_then_listed(run) -> None:
    created = [(user, call) for user, row in run["users"].items()
               for call in (row["unsteered"], row["steered"]) if call and call["name"] == "add_task"]
    assert created, "no run created a task; the strong vector should have moved one"
    for user, call in created:
        titles = [task["title"] for task in run["users"][user]["tasks"]]
        assert call["args"]["title"] in titles
        for other in set(run["users"]) - {user}:
            assert call["args"]["title"] not in [t["title"] for t in run["users"][other]["tasks"]]


def test_a_strong_vector_changes_the_call(run) -> None:
    changed = [user for user, row in run["users"].items() if row["steered"] != row["unsteered"]]
    assert changed == list(run["users"]), run


def test_cli_help_runs() -> None:
    done = subprocess.run([sys.executable, str(EXAMPLE), "--help"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "--model" in done.stdout and "--strength" in done.stdout


def test_cli_rejects_a_bad_strength() -> None:
    done = subprocess.run([sys.executable, str(EXAMPLE), "--strength", "-1"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2 and "--strength must be > 0" in done.stderr


@pytest.mark.slow
def test_bundled_model_answers_both_users(tmp_path) -> None:
    out = main(None, tmp_path, verbose=False)
    for user, row in out["users"].items():
        assert row["entries"] and row["steered"] is not None, (user, row)
        assert row["steered"]["name"] in ("add_task", "list_tasks", "complete_task")
