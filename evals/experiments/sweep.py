"""Calibration of the steering strength, per site and layer, on users that are NOT held
out (so the main table is not tuned on its own test users).

Decision-only (evals.experiments.stages): the tool each setting makes the model choose,
on every test task of the swept users, with obedience (the decision equals the tool
the retrieved entries vote for) beside F. Acc. Arguments are written unsteered in
"decision" positions, so strength cannot garble them; what can go wrong is a vector too
weak to move the choice or strong enough to push every row to one tool, and the curve
of F. Acc against alpha shows both ends. The chosen setting is the most accurate one
(then the most obedient, then the weakest); `write_defaults` stores it in the
user's defaults file under the model id (agent.config; the package is not written).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from evals.experiments.common import side_memory
from evals.experiments.stages import decide_stage, stage_summary
from memory.build import past_interactions
from evals.plots import lines
from evals.tasks import select_users, tasks_of

ALPHAS = (0.1, 0.25, 0.5, 1.0, 2.0)
SITES = ("whole", "attn+mlp")
LAYER_SETS = ((6,), (10,), (14,))
SWEEP_USERS = 24  # non-held-out users; with all their test tasks, 200+ decisions


def grid() -> list[dict]:
    return [{"site": s, "layers": list(l), "alpha": a}
            for s, l, a in itertools.product(SITES, LAYER_SETS, ALPHAS)]


def choose(results: list[dict]) -> dict | None:
    """The most accurate setting, then the most obedient, then the weakest."""
    if not results:
        return None
    return max(results, key=lambda r: (r["function_acc"], r["obedience"], -r["alpha"]))


def run_sweep(ctx: Any) -> dict:
    users = select_users(ctx.dataset, None, default="seen")[:SWEEP_USERS]
    tasks = tasks_of(ctx.dataset, users, None)
    layers = sorted({layer for ls in LAYER_SETS for layer in ls})
    settings = grid()
    results = []
    with side_memory(ctx, ctx.out / "sweep" / "memory", layers=layers) as side:
        side.learner.learn_batch(past_interactions(ctx.dataset, users), progress=ctx.progress)
        with ctx.bar(len(settings) * len(tasks), "sweep") as bar:
            for setting in settings:
                name = f"steer-{setting['site']}-attentive"
                method = ctx.method(name, alpha=setting["alpha"], layers=setting["layers"])
                rows = decide_stage(ctx.agent, tasks, name, ctx.batch_size, bar, method=method,
                                    decider=side.decider)
                summary = stage_summary(rows, None)
                results.append({**setting, "function_acc": summary["function_acc"],
                                "obedience": summary["obedience"],
                                "retrieval_acc": summary["retrieval_acc"]})
    best = choose(results)
    series = {f"{s} layer {l[0]}": [r["function_acc"] for r in results
                                    if r["site"] == s and r["layers"] == list(l)]
              for s, l in itertools.product(SITES, LAYER_SETS)}
    plot = lines(ALPHAS, series, "Calibration: F. Acc against strength (non-held-out users)",
                 "alpha (x the site's reference norm)", "F. Acc", ctx.out / "sweep.png", log_x=True)
    rows = [[r["site"], r["layers"][0], r["alpha"], round(r["function_acc"], 3),
             round(r["obedience"], 3), round(r["retrieval_acc"], 3)] for r in results]
    return {
        "note": f"decision-only on {len(users)} non-held-out users ({len(tasks)} tasks); "
                f"chosen: {best if best else 'none'}",
        "model": ctx.agent.loaded.model_id,
        "results": results,
        "chosen": best,
        "tables": [{"title": "Settings", "columns": ["site", "layer", "alpha", "F. Acc", "obedience",
                                                     "retrieval acc"], "rows": rows}],
        "plot": plot.name,
    }


def write_defaults(model_id: str, chosen: dict, path: Path | None = None) -> dict:
    """Store the chosen alpha/layers under the model id in the user's defaults file
    (`path`, else `agent.config.user_config_path()`), never in the package."""
    from agent.config import write_user_defaults

    entry, _ = write_user_defaults(model_id, {k: chosen[k] for k in ("alpha", "layers")}, path)
    return entry
