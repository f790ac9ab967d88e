"""Calibration of the steering strength, per site and layer, on users that are NOT held
out (so the main table is not tuned on its own test users).

Decision-only (evals.experiments.stages): the tool each setting makes the model choose,
on every test task of the swept users (at least `MIN_TASKS`, users taken in order until
there are that many), with obedience (the decision equals the tool the retrieved entries
vote for) beside F. Acc. Arguments are written unsteered in "decision" positions, so
strength cannot garble them; what can go wrong is a vector too weak to move the choice
or strong enough to push every row to one tool, and the curve of F. Acc against alpha
shows both ends. One setting is chosen per site, since the sites' vectors differ in
size and reach: the most accurate one, then the most obedient, then one steered at the
deciding tokens only (its prompt's cache is shared with unsteered calls, and the
arguments are written from an unsteered prompt), then the weakest. The grid is swept
with attentive aggregation; the mean aggregation then gets its own strength at each
site's chosen layers and positions (`MEAN_FACTORS`), written as `"{site}-mean"`.
`write_defaults` stores the choices in the user's defaults file under the model id
(`agent.config`, key `sites`; the package is not written).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from agent.config import entry_site, site_entry, write_user_defaults
from agent.interactions import past_interactions
from evals.experiments.common import side_memory
from evals.experiments.stages import decide_stage, stage_summary
from evals.plots import lines
from evals.tasks import select_users, tasks_of

ALPHAS = (0.25, 0.5, 1.0, 2.0, 4.0)
SITES = ("whole", "attn+mlp", "attn", "mlp")
# one layer, three spread out, and every layer up to 14: an attention or MLP output is one
# layer's contribution to the residual, and the residual a whole-layer vector moves sums
# the contributions of all layers below it
LAYER_SETS = ((6,), (10,), (14,), (6, 10, 14), tuple(range(15)))
MANY_LAYERS = 4  # a set of more layers than this is swept at ALPHAS / MANY_LAYERS each
# attention and MLP outputs at every layer up to 14, steered over the prompt too
# ("context" positions): those sites act on the decision through attention to the
# steered prompt, and there a far weaker vector moves it
CONTEXT = {"sites": ("attn+mlp", "attn", "mlp"), "layers": tuple(range(15)), "alphas": (0.01, 0.02, 0.04)}
MIN_TASKS = 200  # non-held-out test tasks the sweep decides (95% interval about +-0.07)
# the full suite's calibration curve: multiples of each site's shipped alpha at its shipped
# layers and positions (`run_calibration`)
CURVE = (0.25, 0.5, 1.0, 2.0, 4.0)
# The mean aggregation's strengths, as multiples of its site's chosen (attentive) alpha, at
# that setting's layers and positions. An aggregate is sized by its entries' mean norm
# (steering.aggregation.scale), so entries that disagree steer less; a plain mean leaves
# more of them disagreeing than softmax weights do, and needs more strength to be obeyed
# (measured on the tuning users: attn+mlp mean obeyed 0.89 at the attentive 0.02, 0.94 at 0.03).
MEAN_FACTORS = (1.0, 1.5, 2.0)


def alphas_for(layers: tuple[int, ...]) -> tuple[float, ...]:
    """The strengths a layer set is swept at: added at many layers, each vector's share is
    smaller (measured: every layer up to 14 works best near 0.12, one layer near 0.5)."""
    return ALPHAS if len(layers) <= MANY_LAYERS else tuple(a / MANY_LAYERS for a in ALPHAS)


def grid() -> list[dict]:
    """Every setting: "decision" positions for each site, layer set and alpha; "context"
    positions for the CONTEXT sites at every layer."""
    decision = [{"site": s, "layers": list(l), "alpha": a, "positions": "decision"}
                for s, l in itertools.product(SITES, LAYER_SETS) for a in alphas_for(l)]
    context = [{"site": s, "layers": list(CONTEXT["layers"]), "alpha": a, "positions": "context"}
               for s in CONTEXT["sites"] if s in SITES for a in CONTEXT["alphas"]]
    return decision + context


def choose(results: list[dict]) -> dict | None:
    """The most accurate setting, then the most obedient, then one at "decision"
    positions, then the weakest."""
    if not results:
        return None
    return max(results, key=lambda r: (r["function_acc"], r["obedience"],
                                       r["positions"] == "decision", -r["alpha"]))


def entry_name(result: dict) -> str:
    """Where a setting goes under `sites` (`agent.config.site_entry`)."""
    return site_entry(result["site"], result.get("aggregation", "attentive"))


def choose_per_site(results: list[dict]) -> dict[str, dict]:
    """`choose` among each site's settings (each aggregation's apart)."""
    names = dict.fromkeys(entry_name(r) for r in results)
    return {name: choose([r for r in results if entry_name(r) == name]) for name in names}


def mean_grid(chosen: dict[str, dict]) -> list[dict]:
    """The mean aggregation at each site's chosen layers and positions, `MEAN_FACTORS`
    times its alpha."""
    return [{"site": c["site"], "aggregation": "mean", "layers": list(c["layers"]),
             "alpha": round(c["alpha"] * factor, 6), "positions": c["positions"]}
            for c in chosen.values() for factor in MEAN_FACTORS]


def sweep_users(dataset: Any, min_tasks: int) -> list[str]:
    """Non-held-out users in order, as many as give `min_tasks` test tasks (all if fewer)."""
    counts: dict[str, int] = {}
    for task in dataset.test:
        counts[task.user_id] = counts.get(task.user_id, 0) + 1
    chosen, total = [], 0
    for user in select_users(dataset, None, default="seen"):
        if total >= min_tasks:
            break
        chosen.append(user)
        total += counts.get(user, 0)
    return chosen


def curve_grid(ctx: Any) -> list[dict]:
    """Each site's shipped setting (its layers, positions and alpha from the defaults,
    attentive aggregation) at `CURVE` times its alpha."""
    settings = []
    for site in SITES:
        shipped = ctx.method(f"steer-{site}-attentive")
        settings += [{"site": site, "aggregation": "attentive", "layers": list(shipped.layers),
                      "alpha": round(shipped.alpha * factor, 6), "positions": shipped.positions}
                     for factor in CURVE]
    return settings


def run_sweep(ctx: Any) -> dict:
    """The whole grid, then the mean aggregation at each site's choice (`fints eval --sweep`)."""
    return _sweep(ctx, [{**setting, "aggregation": "attentive"} for setting in grid()], then_mean=True)


def run_calibration(ctx: Any) -> dict:
    """The full suite's calibration curve: F. Acc and obedience against strength at each
    site's shipped layers and positions, on the sweep's users. It checks the shipped
    strengths (the chosen one should sit at the top of its curve) at a fraction of the
    grid's cost; choosing among layers and positions is `fints eval --sweep`'s job."""
    return _sweep(ctx, curve_grid(ctx), then_mean=False, name="calibration")


def _sweep(ctx: Any, settings: list[dict], *, then_mean: bool, name: str = "sweep") -> dict:
    users = sweep_users(ctx.dataset, MIN_TASKS)
    tasks = tasks_of(ctx.dataset, users, None)
    layers = sorted({layer for setting in settings for layer in setting["layers"]})
    with side_memory(ctx, ctx.out / name / "memory", layers=layers) as side:
        side.learner.learn_batch(past_interactions(ctx.dataset, users), progress=ctx.progress)
        results = _decide(ctx, side.decider, tasks, settings, name)
        if then_mean:
            results += _decide(ctx, side.decider, tasks, mean_grid(choose_per_site(results)), f"{name} (mean)")
    chosen = choose_per_site(results)
    curves: dict[str, list[dict]] = {}
    for r in results:
        where = "" if r["positions"] == "decision" else f", {r['positions']}"
        curves.setdefault(f"{entry_name(r)} layers {_span(r['layers'])}{where}", []).append(r)
    series = {label: [r["function_acc"] for r in rs] for label, rs in curves.items()}
    totals = {label: [r["alpha"] * len(r["layers"]) for r in rs] for label, rs in curves.items()}
    plot = lines(totals, series, f"Calibration: F. Acc against strength ({len(tasks)} non-held-out tasks)",
                 "alpha x layers (x each layer's reference norm)", "F. Acc", ctx.out / f"{name}.png", log_x=True)
    rows = [[r["site"], r["aggregation"], _span(r["layers"]), r["positions"], r["alpha"],
             round(r["function_acc"], 3), round(r["obedience"], 3), round(r["retrieval_acc"], 3)]
            for r in results]
    picked = "; ".join(f"{name}: layers {_span(c['layers'])} alpha {c['alpha']} {c['positions']} "
                       f"(F. Acc {c['function_acc']:.3f})"
                       for name, c in chosen.items())
    return {
        "note": f"decision-only on {len(users)} non-held-out users ({len(tasks)} tasks); chosen per site: "
                f"{picked or 'none'}",
        "model": ctx.agent.loaded.model_id,
        "users": users,
        "results": results,
        "chosen": chosen,
        "tables": [{"title": "Settings", "columns": ["site", "aggregation", "layers", "positions", "alpha",
                                                     "F. Acc", "obedience", "retrieval acc"], "rows": rows}],
        "plot": plot.name,
    }


def _decide(ctx: Any, decider: Any, tasks: list[Any], settings: list[dict], desc: str) -> list[dict]:
    """Each setting's decisions on `tasks`, summarized (F. Acc, obedience, retrieval)."""
    results = []
    with ctx.bar(len(settings) * len(tasks), desc) as bar:
        for setting in settings:
            name = f"steer-{setting['site']}-{setting['aggregation']}"
            method = ctx.method(name, alpha=setting["alpha"], layers=setting["layers"],
                                positions=setting["positions"])
            rows = decide_stage(ctx.agent, tasks, name, ctx.batch_size, bar, method=method, decider=decider)
            summary = stage_summary(rows, None)
            results.append({**setting, "function_acc": summary["function_acc"],
                            "function_acc_ci": summary["function_acc_ci"],
                            "obedience": summary["obedience"], "retrieval_acc": summary["retrieval_acc"]})
    return results


def _span(layers: list[int] | tuple[int, ...]) -> str:
    """6+10+14, or 0-14 for a run of consecutive layers."""
    consecutive = len(layers) > 2 and list(layers) == list(range(layers[0], layers[-1] + 1))
    return f"{layers[0]}-{layers[-1]}" if consecutive else "+".join(map(str, layers))


def write_defaults(model_id: str, chosen: dict[str, dict], path: Path | None = None) -> dict:
    """Store each site's chosen alpha, layers and positions under the model id in the
    user's defaults file (`path`, else `agent.config.user_config_path()`), never in the
    package. An aggregation's entry (`"whole-mean"`) holds its alpha alone: its layers and
    positions are its site's, read from there."""
    per_site = {}
    for name, setting in chosen.items():
        keys = ("alpha", "layers", "positions") if name == entry_site(name) else ("alpha",)
        per_site[name] = {k: setting[k] for k in keys if k in setting}
    entry, _ = write_user_defaults(model_id, {"sites": per_site}, path)
    return entry
