"""Subcommands of `fints` for this package (see agent/cli.py): `fints eval` and
`fints bench agent`. Registration imports nothing heavy; the model loads in handlers."""

from __future__ import annotations

import argparse
import os
import sys


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    """Add this package's subcommands to the `fints` parser."""
    evaluate = groups[""].add_parser(
        "eval", help="run methods side by side on the same tasks; write a report",
        description="Single- and multi-turn evaluation of zero-shot, prompt memory and "
                    "steering methods; writes DIR/report.json, report.md and PNG plots.")
    evaluate.add_argument("--data", help="data set directory (default: the demo's, generated "
                                         "when missing, as `fints demo` does)")
    evaluate.add_argument("--tasks", help="task file in PersonalWAB's format "
                                          "({'test': [...]} or a list), run against the shop")
    evaluate.add_argument("--methods", help="comma-separated method names (default: the suite's)")
    evaluate.add_argument("--users", help="a count, or comma-separated user ids "
                                          "(default: the suite's held-out users)")
    evaluate.add_argument("--model", help="model path or GGUF (default: the bundled Gemma 3 270M)")
    evaluate.add_argument("--store", help="memory store (default: DIR/memory)")
    evaluate.add_argument("--out", required=True, help="output directory")
    evaluate.add_argument("--track", choices=("single", "multi", "both", "none"),
                          help="which track(s) (default: the suite's; none: experiments only)")
    evaluate.add_argument("--suite", choices=("smoke", "full"), default="smoke")
    evaluate.add_argument("--tasks-per-user", type=int, help="cap on test tasks per user")
    evaluate.add_argument("--multi-users", type=int,
                          help="users on the multi-turn track (--track multi or both, or the "
                               "full suite), the first of those evaluated (default: full 6)")
    evaluate.add_argument("--experiments", help="comma list among sparse, clusters, online, "
                                                "calibration, sweep, stages, arguments (default: the "
                                                "suite's; '' for none)")
    evaluate.add_argument("--sweep", action="store_true",
                          help="run only the strength/layer/position sweep (the whole grid)")
    evaluate.add_argument("--write-defaults", action="store_true",
                          help="with --sweep: write the chosen setting to the user's defaults "
                               "file (--config, $FINTS_CONFIG, else the user config dir's "
                               "fints/defaults.json; the package is never written)")
    evaluate.add_argument("--config", help="the user's defaults file to read and write "
                                           "(default: $FINTS_CONFIG, else the user config dir's)")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bars")
    evaluate.set_defaults(func=_eval)

    bench = groups["bench"].add_parser(
        "agent", help="decision latency: zero-shot vs prompt-k5 vs steering (batch size 1)")
    bench.add_argument("--out", required=True, help="directory for bench_agent.json")
    bench.add_argument("--data", help="data set directory (default: a small generated one)")
    bench.add_argument("--model", help="model (default: the bundled Gemma 3 270M)")
    bench.add_argument("--rounds", type=int, default=10, help="decisions per method")
    bench.set_defaults(func=_bench)


def _eval(args: argparse.Namespace) -> int:
    import json

    from evals.evaluate import EvalConfig, run_eval
    from evals.report import ReportError
    from evals.tasks import EvalInputError

    experiments = None
    if args.experiments is not None:
        experiments = [e.strip() for e in args.experiments.split(",") if e.strip()]
    if args.write_defaults and not args.sweep:
        print("fints eval: --write-defaults needs --sweep", file=sys.stderr)
        return 2
    if args.sweep:
        experiments = ["sweep"]
    if args.config:  # every load of the defaults in this process reads this file
        from agent.config import CONFIG_ENV

        os.environ[CONFIG_ENV] = args.config
    config = EvalConfig(
        data=args.data or _demo_data(), out=args.out, suite=args.suite, tasks_file=args.tasks,
        methods=[m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None,
        users=args.users, model=args.model, store=args.store,
        track=args.track or ("single" if args.sweep else None),
        tasks_per_user=args.tasks_per_user, multi_users=args.multi_users,
        experiments=experiments, progress=not args.no_progress,
    )
    try:
        report = run_eval(config)
    except (EvalInputError, ReportError) as error:
        print(f"fints eval: {error}", file=sys.stderr)
        return 2
    if args.write_defaults:
        from evals.experiments.sweep import write_defaults

        chosen = report["experiments"]["sweep"].get("chosen")
        if report.get("errors"):
            print("fints eval: the sweep failed; defaults left unchanged", file=sys.stderr)
            return 1
        if not chosen:
            print("fints eval: the sweep chose no setting; defaults left unchanged",
                  file=sys.stderr)
            return 1
        from agent.config import user_config_path

        entry = write_defaults(report["model"], chosen, user_config_path(args.config))
        print(f"wrote defaults for {report['model']} to {user_config_path(args.config)}: "
              f"{json.dumps(entry)}")
    for track, section in report["tracks"].items():
        for name, summary in section["methods"].items():
            o = summary["overall"]
            print(f"{track:6s} {name:28s} F {o['function_acc']:.3f}  R {o['result_acc']:.3f}  "
                  f"n {o['n']}")
    print(f"wrote {args.out}/report.json and report.md")
    for error in report.get("errors", []):
        print(f"fints eval: {error}", file=sys.stderr)
    return 1 if report.get("errors") else 0


def _demo_data() -> str:
    """The data set `make demo` uses ($FINTS_DATA_DIR or the user data dir), generated
    there when missing, so the README's `fints eval --suite smoke` runs on a fresh clone."""
    from agent.commands import default_data_dir
    from agent.demo import ensure_data

    data = default_data_dir()
    ensure_data(data, users=200)
    return str(data)


def _bench(args: argparse.Namespace) -> int:
    import json

    from evals.bench import run_bench

    result = run_bench(args.out, data=args.data, model=args.model, rounds=args.rounds)
    print(json.dumps({k: result[k] for k in ("median_latency_s", "default_vs_zero_shot", "default_vs_prompt_k5",
                                             "steer_vs_zero_shot", "meets_targets")}, indent=2))
    return 0
