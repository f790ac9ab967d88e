"""Which tasks an evaluation runs: a data set's test split, or a PersonalWAB task file.

A task file is any file in PersonalWAB's instruction format, `{"test": [...]}` (other
splits ignored) or a plain list of tasks; tasks without a `task_id` get `file-00000`...
Tasks are evaluated against the data set's shop, so their users must exist there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tools.data import DataError, Dataset, Task
from tools.data.store import validate


class EvalInputError(ValueError):
    """The evaluation was asked for something that does not exist; says what is allowed."""


def load_task_file(path: str | Path, dataset: Dataset) -> list[Task]:
    """Read and validate a PersonalWAB-format task file against the data set's users."""
    path = Path(path)
    if not path.is_file():
        raise EvalInputError(f"task file {path} does not exist")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise EvalInputError(f"{path.name}: not valid JSON at line {error.lineno}: {error.msg}")
    if isinstance(raw, dict):
        if "test" not in raw:
            raise EvalInputError(f"{path.name}: expected a list of tasks or an object with a "
                                 f"'test' list; found keys {sorted(raw)}")
        raw = raw["test"]
    if not isinstance(raw, list) or not raw:
        raise EvalInputError(f"{path.name}: expected a non-empty list of tasks")
    tasks = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise EvalInputError(f"{path.name}: task {index} is not a JSON object")
        item = {"task_id": f"file-{index:05d}", **item}
        try:
            tasks.append(validate(Task, item, path.name, f"test[{index}]"))
        except DataError as error:
            raise EvalInputError(str(error)) from None
    unknown = sorted({t.user_id for t in tasks} - set(dataset.profiles))
    if unknown:
        raise EvalInputError(f"{path.name}: users not in the data set {dataset.root}: "
                             f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
    return tasks


def select_users(dataset: Dataset, users: str | Sequence[str] | int | None,
                 default: str = "held_out") -> list[str]:
    """`users` as a count (the first n of the default pool), a comma list, or None (pool).

    The default pool is the manifest's held-out users (falling back to every user with
    test tasks when there are none), or with `default="seen"` the users that are not held
    out - the sweep tunes on those, so the main table stays honest.
    """
    with_tests = sorted({t.user_id for t in dataset.test})
    held = [u for u in dataset.manifest.held_out_users if u in set(with_tests)]
    pool = held if default == "held_out" else [u for u in with_tests if u not in set(held)]
    pool = pool or with_tests
    if users is None or users == "":
        return pool
    if isinstance(users, int) or (isinstance(users, str) and users.isdigit()):
        count = int(users)
        if count < 1:
            raise EvalInputError(f"--users count must be at least 1, got {count}")
        extra = [u for u in with_tests if u not in set(pool)]
        return (pool + extra)[:count]
    names = [u.strip() for u in users.split(",")] if isinstance(users, str) else list(users)
    unknown = [u for u in names if u not in dataset.profiles]
    if unknown:
        raise EvalInputError(f"unknown user(s) {', '.join(unknown)}; the data set has "
                             f"{len(dataset.profiles)} users, e.g. {', '.join(with_tests[:3])}")
    return names


def tasks_of(dataset: Dataset, users: Sequence[str], per_user: int | None = None) -> list[Task]:
    """The users' test tasks in time order, at most `per_user` each."""
    wanted = set(users)
    chosen: dict[str, list[Task]] = {}
    for task in sorted(dataset.test, key=lambda t: (t.user_id, t.timestamp)):
        if task.user_id in wanted:
            chosen.setdefault(task.user_id, []).append(task)
    return [t for u in users for t in chosen.get(u, [])[:per_user]]
