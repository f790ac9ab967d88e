"""`run_eval`: methods side by side on the same tasks, users, seeds and shop.

Input is checked before anything heavy loads (unknown methods, missing data, unknown
users fail at once with what is allowed); memory for the evaluated users is built when
missing; each track runs every method over the same tasks; the suite's experiments add
their sections. The report is validated and written after every track and experiment
(`pending` lists what is still to come), so a long run stopped halfway keeps what it
finished; an experiment that fails (or returns a section that does not validate) is
recorded under `errors` and the others still run. A failing memory build or track ends
the run: the experiments build on the main table, and the report on disk keeps the
tracks already finished.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.methods import DEFAULT_METHOD
from evals.context import EvalContext
from evals.memory_setup import ensure_memory, memory_layers
from evals.report import SCHEMA, validate_report, write_report
from evals.runner import run_gold, run_multi, run_single
from evals.stats import summarize_method
from evals.suites import SUITES, Suite
from evals.tasks import EvalInputError, load_task_file, select_users, tasks_of

TRACKS = ("single", "multi")


@dataclass
class EvalConfig:
    """Everything `fints eval` can be asked; None means the suite's choice."""

    data: str | Path
    out: str | Path
    suite: str = "smoke"
    tasks_file: str | Path | None = None
    methods: Sequence[str] | None = None
    users: str | int | None = None
    model: str | None = None
    store: str | None = None
    track: str | None = None  # single | multi | both
    tasks_per_user: int | None = None
    multi_users: int | None = None  # users (of the evaluated ones) on the multi-turn track
    experiments: Sequence[str] | None = None
    progress: bool = True


def check_methods(names: Sequence[str]) -> list[str]:
    """Every name must be a known method; the error lists the valid ones."""
    from agent.methods import method_names

    valid = method_names()
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise EvalInputError(f"unknown method(s) {', '.join(unknown)}; valid methods: "
                             f"{', '.join(valid)}")
    if not names:
        raise EvalInputError(f"no methods given; valid methods: {', '.join(valid)}")
    return list(names)


def tracks_for(track: str | None, suite: Suite) -> tuple[str, ...]:
    if track is None:
        return suite.tracks
    if track == "both":
        return TRACKS
    if track == "none":  # experiments only (e.g. the decision-only stages)
        return ()
    if track not in TRACKS:
        raise EvalInputError(f"unknown track {track!r}; allowed: single, multi, both, none")
    return (track,)


def load_data(path: str | Path) -> Any:
    from tools.data import DataError, load_dataset

    if not Path(path).is_dir():
        raise EvalInputError(f"data set directory {path} does not exist; make one with "
                             "`fints shop generate --out DIR` or `fints shop import-pwab`")
    try:
        return load_dataset(path)
    except DataError as error:
        raise EvalInputError(str(error)) from None


def run_eval(config: EvalConfig) -> dict:
    """Run the evaluation and write DIR/report.json, report.md and plots; returns the report."""
    from agent.methods import method_names

    if config.suite not in SUITES:
        raise EvalInputError(f"unknown suite {config.suite!r}; allowed: {', '.join(SUITES)}")
    suite = SUITES[config.suite]
    names = check_methods(config.methods or suite.methods or method_names())
    multi_names = check_methods(config.methods or suite.multi_methods or names)
    for flag, value in (("--tasks-per-user", config.tasks_per_user),
                        ("--multi-users", config.multi_users)):
        if value is not None and value < 1:
            raise EvalInputError(f"{flag} must be at least 1, got {value}")
    tasks_per_user = config.tasks_per_user or suite.tasks_per_user
    multi_users = config.multi_users or suite.multi_users
    tracks = tracks_for(config.track, suite)
    if config.multi_users is not None and "multi" not in tracks:
        raise EvalInputError(f"--multi-users needs the multi-turn track (--track multi or both); "
                             f"this run's tracks: {', '.join(tracks) or 'none'}")
    experiments = suite.experiments if config.experiments is None else tuple(config.experiments)
    from evals.experiments import EXPERIMENTS

    unknown = [e for e in experiments if e not in EXPERIMENTS]
    if unknown:
        raise EvalInputError(f"unknown experiment(s) {', '.join(unknown)}; allowed: "
                             f"{', '.join(EXPERIMENTS)}")
    dataset = load_data(config.data)
    if config.tasks_file:
        tasks = load_task_file(config.tasks_file, dataset)
        users = sorted({t.user_id for t in tasks})
    else:
        users = select_users(dataset, config.users if config.users is not None else suite.users)
        tasks = tasks_of(dataset, users, tasks_per_user)
    if not tasks:
        raise EvalInputError(f"no test tasks for users {', '.join(users[:5])}")
    if "multi" in tracks and not dataset.hidden:
        raise EvalInputError("the multi-turn track needs hidden_preferences.json (generated "
                             "data sets only); use --track single")
    out = Path(config.out)
    started = time.perf_counter()
    from agent.runtime import AgentConfig, FintsAgent

    agent_config = AgentConfig(data_dir=config.data, model=config.model,
                               store=config.store or str(out / "memory"),
                               method="zero-shot", online_memory=False, progress=config.progress)
    parts = [f"track_{t}" for t in tracks] + [f"experiment_{e}" for e in experiments]
    with FintsAgent.open(agent_config) as agent:
        timing = {"open": time.perf_counter() - started}
        ctx = EvalContext(agent=agent, dataset=dataset, users=users, tasks=tasks, out=out,
                          suite=suite.name, progress=config.progress, timing=timing,
                          memory_history=suite.max_history,
                          stage_methods=tuple(config.methods or ()))
        by_track = {"single": [ctx.method(n) for n in names],
                    "multi": [ctx.method(n) for n in multi_names]}
        report = base_report(config, agent, dataset, users, tasks_per_user, multi_users)
        report.update(pending=list(parts), errors=[])
        steering = [m for t in tracks for m in by_track[t]]
        if "stages" in experiments:  # its steering methods read the memory built here
            from evals.experiments.stages import STAGE_METHODS

            steering += [ctx.method(n) for n in (config.methods or STAGE_METHODS) if n.startswith("steer-")]
        if {"sparse", "online"} & set(experiments):  # they read the default's full-history decisions
            steering.append(ctx.method(DEFAULT_METHOD))
        layers = memory_layers(steering) or list(ctx.method(DEFAULT_METHOD).layers)
        from evals.experiments import WITHOUT_MEMORY

        if any(m.steers for m in steering) or set(experiments) - WITHOUT_MEMORY:
            if agent.store is None:  # steering would answer unsteered: nothing worth measuring
                raise EvalInputError(f"the memory store {agent_config.store} could not be opened (the "
                                     "warning above says why); steering methods and experiments need "
                                     "it: pass --store with another path, or run without them")
            mark = time.perf_counter()
            report["memory_build"] = ensure_memory(agent, dataset, users, layers,
                                                   max_history=suite.max_history,
                                                   progress=config.progress)
            timing["memory_build"] = time.perf_counter() - mark
        for track in tracks:
            mark = time.perf_counter()
            track_tasks = tasks if track == "single" else multi_tasks(tasks, multi_users)
            report["tracks"][track] = run_track(ctx, track, track_tasks, by_track[track])
            timing[f"track_{track}"] = time.perf_counter() - mark
            _save_part(ctx, report, f"track_{track}", started)
        run_experiments(ctx, experiments, report, started)
    return report


def run_experiments(ctx: EvalContext, names: Sequence[str], report: dict, started: float) -> None:
    """Each experiment in turn, the report saved after each; one that raises is recorded
    under `errors` (and as its section's note) and the others still run."""
    from evals.experiments import EXPERIMENTS

    for name in names:
        mark = time.perf_counter()
        try:
            section = EXPERIMENTS[name](ctx)
            validate_report({**report, "experiments": {name: section}})
            report["experiments"][name] = section
        except Exception as error:  # noqa: BLE001 - reported, and the CLI exits non-zero
            report["errors"].append(f"experiment {name}: {type(error).__name__}: {error}")
            report["experiments"][name] = {"note": f"failed: {type(error).__name__}: {error}"}
        ctx.timing[f"experiment_{name}"] = time.perf_counter() - mark
        _save_part(ctx, report, f"experiment_{name}", started)


def _save_part(ctx: EvalContext, report: dict, part: str, started: float) -> None:
    """After each track or experiment, write the report so far (marked by what is still
    pending): a run stopped halfway keeps everything it finished."""
    report["pending"].remove(part)
    ctx.timing.pop("total", None)  # kept last in the table
    ctx.timing["total"] = time.perf_counter() - started
    report["timing"] = {k: round(v, 1) for k, v in ctx.timing.items()}
    write_report(report, ctx.out)


def multi_tasks(tasks: Sequence[Any], user_count: int) -> list[Any]:
    """The multi-turn track runs the first `user_count` users' tasks (it is ~steps x slower)."""
    chosen = list(dict.fromkeys(t.user_id for t in tasks))[:user_count]
    return [t for t in tasks if t.user_id in set(chosen)]


def run_track(ctx: EvalContext, track: str, tasks: Sequence[Any], methods_run: Sequence[Any]) -> dict:
    """Every method over the same tasks; one progress bar for the whole track."""
    methods: dict[str, dict] = {}
    with ctx.bar(len(tasks) * len(methods_run), f"{track}-turn") as bar:
        for method in methods_run:
            bar.set_postfix_str(method.name)
            if track == "single":
                outcomes = run_single(ctx.agent, tasks, method, batch_size=ctx.batch_size, bar=bar)
            else:
                outcomes = run_multi(ctx.agent, tasks, method, seed=ctx.seed, bar=bar)
            ctx.outcomes[(track, method.name)] = outcomes
            if track == "single" and [t.task_id for t in tasks] == [t.task_id for t in ctx.tasks]:
                ctx.decided[method] = [o.tool for o in outcomes]
            methods[method.name] = summarize_method(outcomes, multi=track == "multi")
    section = {"tasks": len(tasks), "users": len({t.user_id for t in tasks}), "methods": methods}
    if track == "single":  # what the gold arguments score: the ceiling of R. Acc
        section["ceiling"] = summarize_method(run_gold(ctx.agent, tasks))
    return section


def base_report(config: EvalConfig, agent: Any, dataset: Any, users: list[str],
                tasks_per_user: int | None, multi_users: int) -> dict:
    return {
        "schema": SCHEMA,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in ["fints", *sys.argv[1:]])
        if Path(sys.argv[0]).name == "fints" else "",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "linear_form": agent.loaded.linear_form},
        "model": agent.loaded.model_id,
        "data": str(dataset.root),
        "suite": config.suite,
        "tasks_file": str(config.tasks_file) if config.tasks_file else None,
        "users": users,
        "tasks_per_user": tasks_per_user,
        "multi_users": multi_users,
        "tracks": {},
        "experiments": {},
    }
