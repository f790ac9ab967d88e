"""`fints eval` input handling: task files in PersonalWAB's format, user selection and
bad input failing at once, before any model loads, with what is allowed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from evals.tasks import EvalInputError, load_task_file, select_users, tasks_of
from tools.data import generate_dataset, load_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return load_dataset(generate_dataset(tmp_path_factory.mktemp("shop"), users=12, seed=3))


def pwab_tasks(dataset, n: int = 3) -> list[dict]:
    """Test tasks as PersonalWAB writes them: no task_id, no gold call."""
    rows = []
    for task in dataset.test[:n]:
        row = task.model_dump(exclude={"task_id", "gold_call"})
        rows.append(row)
    return rows


def test_task_file_as_object_or_list(dataset, tmp_path) -> None:
    rows = pwab_tasks(dataset)
    (tmp_path / "a.json").write_text(json.dumps({"train": [], "test": rows}))
    (tmp_path / "b.json").write_text(json.dumps(rows))
    for name in ("a.json", "b.json"):
        tasks = load_task_file(tmp_path / name, dataset)
        assert [t.task_id for t in tasks] == ["file-00000", "file-00001", "file-00002"]
        assert [t.task for t in tasks] == [r["task"] for r in rows]
        assert all(t.gold_call is None for t in tasks)


@pytest.mark.parametrize("content, message", [
    ({"train": []}, "'test' list"),
    ([], "non-empty list"),
    ([{"user_id": "x"}], "field 'task'"),
    ("not json", "not valid JSON"),
])
def test_bad_task_files(dataset, tmp_path, content, message) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(EvalInputError, match=message):
        load_task_file(path, dataset)


def test_task_file_users_must_exist(dataset, tmp_path) -> None:
    rows = pwab_tasks(dataset, 1)
    rows[0]["user_id"] = "NOBODY"
    (tmp_path / "t.json").write_text(json.dumps(rows))
    with pytest.raises(EvalInputError, match="users not in the data set .*NOBODY"):
        load_task_file(tmp_path / "t.json", dataset)
    with pytest.raises(EvalInputError, match="does not exist"):
        load_task_file(tmp_path / "missing.json", dataset)


def test_user_selection(dataset) -> None:
    held = select_users(dataset, None)
    assert held and set(held) <= set(dataset.manifest.held_out_users)
    seen = select_users(dataset, None, default="seen")
    assert not set(seen) & set(held)
    assert select_users(dataset, "2") == held[:2]
    assert len(select_users(dataset, 50)) == len({t.user_id for t in dataset.test})
    assert select_users(dataset, f"{seen[0]},{held[0]}") == [seen[0], held[0]]
    with pytest.raises(EvalInputError, match="unknown user"):
        select_users(dataset, "NOBODY")
    tasks = tasks_of(dataset, held[:2], per_user=2)
    assert len(tasks) <= 4 and {t.user_id for t in tasks} <= set(held[:2])
    assert all(a.timestamp <= b.timestamp for a, b in zip(tasks, tasks[1:])
               if a.user_id == b.user_id)


def fints(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_unknown_method_lists_the_valid_ones(dataset, tmp_path) -> None:
    result = fints("eval", "--data", str(dataset.root), "--out", str(tmp_path / "o"),
                   "--methods", "zero-shot,steer-everything")
    assert result.returncode == 2
    assert "unknown method(s) steer-everything" in result.stderr
    assert "prompt-k3" in result.stderr and "steer-attn+mlp-attentive" in result.stderr
    assert not (tmp_path / "o").exists()


def test_missing_data_dir(tmp_path) -> None:
    result = fints("eval", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "fints shop generate" in result.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("flag", ["--tasks-per-user", "--multi-users"])
def test_counts_below_one_are_refused_before_anything_runs(dataset, tmp_path, flag) -> None:
    result = fints("eval", "--data", str(dataset.root), "--out", str(tmp_path / "o"), flag, "0")
    assert result.returncode == 2
    assert f"{flag} must be at least 1, got 0" in result.stderr
    assert not (tmp_path / "o").exists()


def test_multi_users_without_the_multi_turn_track_is_refused(dataset, tmp_path) -> None:
    """The smoke suite runs the single-turn track only: a multi-turn count would be
    silently ignored."""
    result = fints("eval", "--data", str(dataset.root), "--out", str(tmp_path / "o"),
                   "--multi-users", "3")
    assert result.returncode == 2
    assert "--multi-users needs the multi-turn track" in result.stderr
    assert "this run's tracks: single" in result.stderr
    assert not (tmp_path / "o").exists()


def test_the_multi_turn_track_takes_the_first_users_asked_for(dataset) -> None:
    from evals.evaluate import multi_tasks

    tasks = tasks_of(dataset, select_users(dataset, 3), 2)
    users = list(dict.fromkeys(t.user_id for t in tasks))
    assert {t.user_id for t in multi_tasks(tasks, 2)} == set(users[:2])
    assert multi_tasks(tasks, 10) == tasks


@pytest.mark.slow
def test_a_store_another_process_writes_is_refused_not_evaluated_unsteered(dataset, tmp_path) -> None:
    """Steering methods without their store would be measured unsteered: the run stops
    with why, and writes no report."""
    from memory import MemoryStore

    with MemoryStore(tmp_path / "busy", "some-model", 8):  # holds the store's one writer lock
        result = fints("eval", "--data", str(dataset.root), "--out", str(tmp_path / "o"),
                       "--store", str(tmp_path / "busy"), "--users", "1", "--tasks-per-user", "1",
                       "--methods", "steer-whole-attentive", "--no-progress")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "could not be opened" in result.stderr and "another process is writing" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "o" / "report.json").exists()
