"""The evaluation report: `report.json` (schema in docs/results.md), `report.md` (tables
shaped like PersonalWAB's) and PNG plots; `validate_report` checks every figure.

Schema `fints-eval-report/1`, top level: `schema`, `created`, `command`, `machine`,
`model`, `data`, `suite`, `users`, `tracks` ({"single"|"multi": {"tasks": n,
"methods": {name: method summary}, and for the single track "ceiling": the summary of
the gold calls}}), `experiments` ({name: section}), `timing`,
`pending` (parts not run yet: the report is rewritten after each part) and `errors`.
A method summary (see `evals.stats.summarize_method`): `per_type` and `overall` groups
of {n, function_acc, function_acc_ci, result_acc, result_acc_ci}, `median_latency_s`,
`degeneration_rate`, `malformed_rate`, `steered_rate`, `search_brand_rate` (the share of
search tasks answered with a search whose query names the target's brand), `outcomes` (per task: task_id,
user_id, type, tool, arguments, function_acc, result_acc, degenerate) and `avg_steps`
(multi-turn).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from tools.registry import TASK_TYPES

SCHEMA = "fints-eval-report/1"
RATES = ("degeneration_rate", "malformed_rate", "steered_rate")
EXAMPLES_PER_TYPE = 5  # example calls per task type in report.md


class ReportError(ValueError):
    """A report breaks its schema; the message lists every problem found."""


def _check_group(where: str, group: dict, problems: list[str]) -> None:
    for key in ("n", "function_acc", "function_acc_ci", "result_acc", "result_acc_ci"):
        if key not in group:
            problems.append(f"{where}: missing {key!r}")
            return
    if not isinstance(group["n"], int) or group["n"] < 0:
        problems.append(f"{where}: n must be a count, got {group['n']!r}")
    for metric in ("function_acc", "result_acc"):
        value, ci = group[metric], group[f"{metric}_ci"]
        if not 0.0 <= value <= 1.0:
            problems.append(f"{where}: {metric} {value} outside [0, 1]")
        if len(ci) != 2 or not 0.0 <= ci[0] <= ci[1] <= 1.0:
            problems.append(f"{where}: {metric}_ci {ci} is not an interval inside [0, 1]")
        elif group["n"] and not ci[0] - 1e-9 <= value <= ci[1] + 1e-9:
            problems.append(f"{where}: {metric}_ci {ci} does not contain {value}")


def check_method(where: str, summary: dict, problems: list[str], multi: bool = False) -> None:
    """Append every schema problem of one method summary to `problems`."""
    for key in ("per_type", "overall", "median_latency_s", *RATES):
        if key not in summary:
            problems.append(f"{where}: missing {key!r}")
            return
    _check_group(f"{where}.overall", summary["overall"], problems)
    total = 0
    for task_type, group in summary["per_type"].items():
        if task_type not in TASK_TYPES:
            problems.append(f"{where}: unknown task type {task_type!r}")
        _check_group(f"{where}.{task_type}", group, problems)
        total += group.get("n", 0)
    if total != summary["overall"].get("n"):
        problems.append(f"{where}: per-type counts sum to {total}, overall n is "
                        f"{summary['overall'].get('n')}")
    for key in RATES:
        if not 0.0 <= summary[key] <= 1.0:
            problems.append(f"{where}: {key} {summary[key]} outside [0, 1]")
    if summary["median_latency_s"] < 0:
        problems.append(f"{where}: negative latency")
    rows = summary.get("outcomes")
    if rows is not None:  # the per-task outcomes must give back the summary's figures
        n = summary["overall"].get("n", 0)
        if len(rows) != n:
            problems.append(f"{where}: {len(rows)} outcomes for n = {n}")
        elif n and abs(sum(r["function_acc"] for r in rows) / n - summary["overall"]["function_acc"]) > 1e-9:
            problems.append(f"{where}: the outcomes' F. Acc differs from the summary's")
    if multi and summary.get("avg_steps", 0) < 1:
        problems.append(f"{where}: avg_steps {summary.get('avg_steps')} below 1")


def validate_report(report: dict) -> None:
    """Raise `ReportError` listing every problem; silent when the report is sound."""
    problems: list[str] = []
    if report.get("schema") != SCHEMA:
        problems.append(f"schema is {report.get('schema')!r}, expected {SCHEMA!r}")
    for key in ("created", "model", "data", "suite", "users", "tracks", "experiments"):
        if key not in report:
            problems.append(f"missing top-level {key!r}")
    for track, section in report.get("tracks", {}).items():
        if track not in ("single", "multi"):
            problems.append(f"unknown track {track!r}")
        methods = section.get("methods", {})
        if not methods:
            problems.append(f"track {track}: no methods")
        for name, summary in methods.items():
            check_method(f"tracks.{track}.{name}", summary, problems, multi=track == "multi")
            if summary.get("overall", {}).get("n") != section.get("tasks"):
                problems.append(f"tracks.{track}.{name}: {summary.get('overall', {}).get('n')} "
                                f"tasks scored, track has {section.get('tasks')}")
        if "ceiling" in section:
            check_method(f"tracks.{track}.ceiling", section["ceiling"], problems)
    for name, section in report.get("experiments", {}).items():
        for label, summary in section.get("methods", {}).items():
            check_method(f"experiments.{name}.{label}", summary, problems)
    if problems:
        raise ReportError("invalid report:\n  " + "\n  ".join(problems))


def write_atomic(path: Path, text: str) -> None:
    """Write a file whole or not at all (a crash never leaves half a report)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; a report is an ordinary, readable file
    os.replace(tmp, path)


def write_report(report: dict, out: str | Path) -> list[Path]:
    """Validate, then write report.json, report.md and the plots; returns the paths."""
    from evals.plots import plot_report

    validate_report(report)
    out = Path(out)
    write_atomic(out / "report.json", json.dumps(report, indent=2, sort_keys=False))
    write_atomic(out / "report.md", render_markdown(report))
    return [out / "report.json", out / "report.md", *plot_report(report, out)]


def _pair(group: dict | None) -> str:
    if not group:
        return "- / -"
    return f"{group['function_acc']:.3f} / {group['result_acc']:.3f}"


def method_table(methods: dict[str, dict], multi: bool = False) -> list[str]:
    """PersonalWAB's table: method | search | recommend | review | overall (F. / R. Acc)."""
    head = "| method | search F/R | recommend F/R | review F/R | overall F/R | n |"
    rule = "|---|---|---|---|---|---|"
    extra_head = " F. Acc 95% CI | R. Acc 95% CI | latency s | degen. |"
    if multi:
        extra_head += " steps |"
    lines = [head + extra_head, rule + "---|---|---|---|" + ("---|" if multi else "")]
    for name, s in methods.items():
        o = s["overall"]
        row = (f"| {name} | " + " | ".join(_pair(s["per_type"].get(t)) for t in TASK_TYPES)
               + f" | {_pair(o)} | {o['n']} | {o['function_acc_ci'][0]:.2f}-"
               f"{o['function_acc_ci'][1]:.2f} | {o['result_acc_ci'][0]:.2f}-"
               f"{o['result_acc_ci'][1]:.2f} | {s['median_latency_s']:.2f} | "
               f"{s['degeneration_rate']:.2f} |")
        if multi:
            row += f" {s.get('avg_steps', 0):.2f} |"
        lines.append(row)
    return lines


def render_markdown(report: dict) -> str:
    """The human-readable report: one table per track and per experiment."""
    lines = [f"# fints eval: {report['suite']} suite", "",
             f"Model `{report['model']}`, data `{report['data']}`, {len(report['users'])} "
             f"users, created {report['created']}.", "",
             f"Command: `{report.get('command', '')}`", ""]
    if report.get("pending"):
        lines += [f"**Unfinished**: still to run: {', '.join(report['pending'])}.", ""]
    lines += [f"**Error**: {e}" for e in report.get("errors", [])]
    lines += [""] if report.get("errors") else []
    for track, section in report["tracks"].items():
        lines += [f"## {track.title()}-turn track ({section['tasks']} tasks)", ""]
        lines += method_table(section["methods"], multi=track == "multi")
        if section.get("ceiling"):
            lines += method_table({"gold call": section["ceiling"]})[2:]
            lines += ["", "The gold call is the data set's own call with the user's real arguments: the "
                      "ceiling for searches and reviews; a recommendation from the purchases in the "
                      "request's category can score above it."]
        rates = [f"{name} {s['search_brand_rate']:.2f}" for name, s in section["methods"].items()
                 if "search_brand_rate" in s]
        if rates:
            lines += ["", f"Searches whose query names the target's brand: {', '.join(rates)}."]
        if section.get("ceiling"):
            lines += ["", *example_calls(section)]
        lines.append("")
    for name, section in report.get("experiments", {}).items():
        lines += [f"## Experiment: {name}", ""]
        if section.get("note"):
            lines += [section["note"], ""]
        if section.get("methods"):
            lines += method_table(section["methods"])
            lines.append("")
        for table in section.get("tables", []):
            lines += [f"**{table['title']}**", "", "| " + " | ".join(table["columns"]) + " |",
                      "|" + "---|" * len(table["columns"])]
            lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table["rows"]]
            lines.append("")
    if report.get("timing"):
        lines += ["## Timing", "", "| part | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in report["timing"].items()]
        lines.append("")
    return "\n".join(lines)


def example_calls(section: dict, per_type: int = EXAMPLES_PER_TYPE, chars: int = 160) -> list[str]:
    """The first `per_type` tasks of each type as every method wrote them, beside what
    the user really wrote (the gold call): R. Acc is a number, this is what it measures."""
    gold = {o["task_id"]: o for o in section["ceiling"].get("outcomes", [])}
    written = {name: {o["task_id"]: o for o in s.get("outcomes", [])}
               for name, s in section["methods"].items()}
    lines = []
    for task_type in TASK_TYPES:
        ids = [tid for tid, o in gold.items() if o["type"] == task_type][:per_type]
        if not ids:
            continue
        lines += [f"**Example calls: {task_type}** (R. Acc in brackets)", ""]
        for tid in ids:
            lines.append(f"- `{tid}`, the user's own call: {_call_text(gold[tid], chars)}")
            lines += [f"  - {name} [{mine[tid]['result_acc']:.2f}]: {_call_text(mine[tid], chars)}"
                      for name, mine in written.items() if tid in mine]
        lines.append("")
    return lines


def _call_text(outcome: dict, chars: int) -> str:
    if outcome.get("tool") is None:
        return "(no call)"
    text = json.dumps(outcome.get("arguments") or {}, ensure_ascii=False)
    text = text if len(text) <= chars else text[: chars - 3] + "..."
    return f"`{outcome['tool']}` `{text}`"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "-" if value is None else str(value)
