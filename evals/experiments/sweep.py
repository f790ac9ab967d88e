"""Strength / layer / position sweep of the default steering method, on users that are
NOT held out (so the main table is not tuned on its own test users), with the
degeneration rate beside accuracy. The chosen setting is the most accurate one
(F. Acc + R. Acc) whose degeneration rate stays at or below `MAX_DEGENERATION`;
`write_defaults` stores it in agent/defaults.json under the model id."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from evals.experiments.common import DEFAULT_STEERING, side_memory, subset
from evals.memory_setup import ensure_memory
from evals.plots import lines
from evals.runner import run_single
from evals.stats import summarize_method
from evals.tasks import select_users, tasks_of

# Around the setting a probe on the bundled model found (whole site, layer 6, 0.2 x the
# residual norm, "decision" positions: 11/12 habitual tools, clean arguments).
# Every layer in "decision" mode, and "all" positions at the probe's layer only (it
# degenerated there already): 12 settings, sized to the full suite's 90 minutes.
ALPHAS = (0.1, 0.2, 0.4)
LAYER_SETS = ((4,), (6,), (8,))
LINES = [(layers, "decision") for layers in LAYER_SETS] + [((6,), "all")]
MAX_DEGENERATION = 0.1
TASKS_PER_USER = 2


def grid() -> list[dict]:
    return [{"alpha": a, "layers": list(l), "positions": p}
            for (l, p), a in itertools.product(LINES, ALPHAS)]


def choose(results: list[dict]) -> dict | None:
    """The best setting by F. Acc + R. Acc among those that rarely degenerate."""
    fine = [r for r in results if r["degeneration_rate"] <= MAX_DEGENERATION]
    if not fine:
        return None
    return max(fine, key=lambda r: (r["function_acc"] + r["result_acc"], -r["alpha"]))


def run_sweep(ctx: Any) -> dict:
    users = subset(select_users(ctx.dataset, None, default="seen"))
    tasks = tasks_of(ctx.dataset, users, TASKS_PER_USER)
    layers = sorted({layer for ls, _ in LINES for layer in ls})
    settings = grid()
    results = []
    with ctx.bar(len(settings) * len(tasks), "sweep") as bar:
        with side_memory(ctx, ctx.out / "sweep" / "memory") as store:
            ensure_memory(ctx.agent, ctx.dataset, users, layers, store=store, progress=False)
            for setting in settings:
                method = ctx.method(DEFAULT_STEERING, **setting)
                summary = summarize_method(run_single(ctx.agent, tasks, method, bar=bar))
                results.append({**setting, "function_acc": summary["overall"]["function_acc"],
                                "result_acc": summary["overall"]["result_acc"],
                                "degeneration_rate": summary["degeneration_rate"],
                                "steered_rate": summary["steered_rate"]})
    best = choose(results)
    series = {}
    for l, p in LINES:
        mine = [r for r in results if r["layers"] == list(l) and r["positions"] == p]
        series[f"R layer {l[0]} {p}"] = [r["result_acc"] for r in mine]
        series[f"degen layer {l[0]} {p}"] = [r["degeneration_rate"] for r in mine]
    plot = lines(ALPHAS, series, "Sweep: R. Acc and degeneration against alpha", "alpha",
                 "rate", ctx.out / "sweep.png", log_x=True)
    rows = [[r["alpha"], r["layers"][0], r["positions"], r["function_acc"], r["result_acc"],
             r["degeneration_rate"], r["steered_rate"]] for r in results]
    return {
        "note": f"{DEFAULT_STEERING} on {len(users)} non-held-out users ({len(tasks)} tasks); "
                f"chosen: {best if best else 'none (every setting degenerates)'}",
        "model": ctx.agent.loaded.model_id,
        "results": results,
        "chosen": best,
        "tables": [{"title": "Settings", "columns": ["alpha", "layer", "positions", "F. Acc",
                                                     "R. Acc", "degeneration", "steered"],
                    "rows": rows}],
        "plot": plot.name,
    }


def write_defaults(model_id: str, chosen: dict, path: Path | None = None) -> dict:
    """Store the chosen alpha/layers/positions under the model id in agent/defaults.json."""
    if path is None:
        from importlib import resources

        path = Path(str(resources.files("agent").joinpath("defaults.json")))
    table = json.loads(path.read_text())
    entry = dict(table.get(model_id, {}))
    entry.update({k: chosen[k] for k in ("alpha", "layers", "positions")})
    table[model_id] = entry
    from evals.report import write_atomic

    write_atomic(path, json.dumps(table, indent=2) + "\n")
    return entry
