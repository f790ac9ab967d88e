"""The full suite's experiments end to end on a tiny random model (the plumbing: side
stores, growing sparse memory, online writes, the sweep's grid and choice, per-cluster
regrouping, valid report sections and plots). What they measure on the real model is
in docs/results.md; here every experiment is shrunk to a few users and steps."""

from __future__ import annotations

import pytest

from evals.context import EvalContext
from evals.evaluate import run_track
from evals.experiments import arguments, clusters, online, sparse, stages, sweep
from evals.report import SCHEMA, validate_report
from evals.tasks import select_users, tasks_of
from tests.helpers.serve_fixtures import tiny_agent
from tests.helpers.tiny_models import tiny_model
from tools.data import generate_dataset, load_dataset


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    root = tmp_path_factory.mktemp("experiments")
    generate_dataset(root / "data", users=12, seed=3)
    dataset = load_dataset(root / "data")
    # 15 layers: the default steering method reads layer 14
    with tiny_agent(root, loaded=tiny_model("gemma3", layers=15), method="zero-shot",
                    online_memory=False) as agent:
        users = select_users(dataset, 3)
        yield EvalContext(agent=agent, dataset=dataset, users=users,
                          tasks=tasks_of(dataset, users, 1), out=root / "out",
                          suite="test", progress=False)


@pytest.fixture(autouse=True)
def small(monkeypatch):
    monkeypatch.setattr(sparse, "LEVELS", (None, 4, 2))  # also checks they get sorted, all last
    monkeypatch.setattr(online, "STREAM", 3)
    monkeypatch.setattr(sweep, "ALPHAS", (0.2, 0.4))
    monkeypatch.setattr(sweep, "LAYER_SETS", ((6,),))
    monkeypatch.setattr(sweep, "SITES", ("whole", "attn+mlp"))
    monkeypatch.setattr(sweep, "CONTEXT", {"sites": ("attn+mlp", "attn"), "layers": (5, 6), "alphas": (0.3,)})
    monkeypatch.setattr(sweep, "MIN_TASKS", 2)
    monkeypatch.setattr(sweep, "CURVE", (0.5, 2.0))
    monkeypatch.setattr(sweep, "MEAN_FACTORS", (1.0, 2.0))
    monkeypatch.setattr(arguments, "MIN_TASKS", 4)
    monkeypatch.setattr(arguments, "ALPHAS", (0.0, 4.0))
    monkeypatch.setattr(arguments, "LAYERS", (6,))


def valid(ctx, name: str, section: dict) -> None:
    report = {"schema": SCHEMA, "created": "now", "model": "m", "data": "d", "suite": "test",
              "users": ctx.users, "tracks": {}, "experiments": {name: section}}
    validate_report(report)
    assert (ctx.out / section["plot"]).stat().st_size > 0


@pytest.mark.parametrize("history", [None, 4])
def test_sparse_memory_grows_level_by_level(ctx, history) -> None:
    """With all of the past in the evaluation's memory (`memory_history` None) the "all"
    level is the evaluation's own decisions and the side store stops at the last level
    below it; with less, "all" is decided in the side store, grown to every past item."""
    from dataclasses import replace

    from agent.stages import stage_counts
    from memory import MemoryStore

    run = replace(ctx, memory_history=history, out=ctx.out / f"history_{history}")
    own = ctx.agent.store
    leftover = run.out / "sparse" / "memory" / "from_an_earlier_run"
    leftover.mkdir(parents=True)
    section = sparse.run_sparse(run)
    assert not leftover.exists()  # the growing store starts empty
    valid(run, "sparse", section)
    rows = section["tables"][0]["rows"]
    assert [r[0] for r in rows] == [2, 4, "all"]
    assert rows[0][1] == 2 and rows[1][1] == 4 and rows[2][1] > 4  # each user's latest N
    zero = section["accuracy"]["zero-shot"]
    for i, column in enumerate((2, 3)):  # F. Acc of each method; gain kept at the end
        full = rows[-1][column] - zero
        for row in rows:
            kept = row[4 + i]
            assert kept is None if full <= 0 else kept == pytest.approx((row[column] - zero) / full)
    assert section["gain_kept_sparse"] == {m: rows[1][4 + i] for i, m in enumerate(sparse.METHODS)}
    assert len(section["tables"][0]["columns"]) == len(rows[0])
    if history is None:  # the main table's decisions, made once per run
        for i, name in enumerate(sparse.METHODS):
            counts = stage_counts(run.stage_rows(run.method(name)))
            assert rows[2][2 + i] == counts["right"] / counts["n"]
    assert ctx.agent.store is own  # the side store is gone again
    store = MemoryStore(run.out / "sparse" / "memory", ctx.agent.loaded.model_id,
                        ctx.agent.loaded.hidden_size, ctx.agent.embedder)
    try:  # the store grew to the users' latest 4 past interactions, or to all of them
        grown = rows[1][1] if history is None else rows[2][1]
        assert sum(store.count(u) for u in ctx.users) == round(grown * len(ctx.users))
        assert not (run.out / "sparse" / "memory_4").exists()  # one store, not one per level
    finally:
        store.close()


def test_a_model_input_decided_before_is_not_decided_again(ctx, monkeypatch) -> None:
    """`stage_rows` with a memo decides a task again only when what the model reads
    changed: here one user's prompt memory gains a past call that becomes its top match."""
    from dataclasses import replace

    from agent.prompt_memory import PastCall, PromptMemory
    from agent.runtime import intent_keys
    from agent.stages import stage_rows

    agent, method, tools = ctx.agent, ctx.method("prompt-k1"), ctx.agent.tool_specs()
    decided: list[str] = []
    chat = type(agent.decider.chat)
    choose_tools = chat.choose_tools
    monkeypatch.setattr(chat, "choose_tools", lambda self, conversations, *a, **k: decided.extend(
        str(c) for c in conversations) or choose_tools(self, conversations, *a, **k))
    memory = PromptMemory(agent.embedder, intent_keys(ctx.dataset))
    for task in ctx.tasks:
        memory.extend(task.user_id, [PastCall("look for trail shoes", "search_product_by_query", {"query": "x"}, 1.0)])
    decider = replace(agent.decider, prompt_memory=memory)
    memo: dict = {}
    first = stage_rows(decider, tools, ctx.tasks, method, memo=memo)
    assert len(decided) == len(ctx.tasks) == len(memo)
    again = stage_rows(decider, tools, ctx.tasks, method, memo=memo)
    assert len(decided) == len(ctx.tasks)  # nothing decided twice
    assert [r["decision"] for r in again] == [r["decision"] for r in first]
    changed = ctx.tasks[0]
    memory.extend(changed.user_id, [PastCall(changed.task, "add_product_review", {"review": "good"}, 2.0)])
    stage_rows(decider, tools, ctx.tasks, method, memo=memo)
    mine = sum(t.user_id == changed.user_id for t in ctx.tasks)
    assert len(decided) == len(ctx.tasks) + mine and changed.task in decided[-1]


def test_latest_keeps_each_users_newest_interactions() -> None:
    from memory.learner import Interaction

    items = [Interaction(u, f"r{t}", "t", {}, float(t), f"{u}{t}") for u in ("a", "b") for t in (3, 1, 2)]
    kept = sparse.latest(items, 2)
    assert sorted((i.user_id, i.timestamp) for i in kept) == [("a", 2), ("a", 3), ("b", 2), ("b", 3)]
    assert len(sparse.latest(items, None)) == 6


def test_online_adds_an_entry_after_each_interaction(ctx) -> None:
    from memory import MemoryStore

    section = online.run_online(ctx)
    valid(ctx, "online", section)
    curve = section["tables"][0]
    assert [r[0] for r in curve["rows"]] == [0, 1, 2]
    assert curve["columns"] == ["completed", "prompt-k5", "steer", "steer+decay"]
    assert all(0 <= f <= 1 for row in curve["rows"] for f in row[1:])
    assert set(section["full_history"]) == set(section["reached"]) == {"prompt-k5", "steer", "steer+decay"}
    for name, reached in section["reached"].items():  # the first step at 80% of the full-history figure
        column = curve["columns"].index(name)
        at = [row[column] >= online.REACHED * section["full_history"][name] for row in curve["rows"]]
        assert reached == (at.index(True) if any(at) else None)
    users = online.pick_users(ctx)
    assert set(users) <= set(ctx.users)  # the evaluated users only
    store = MemoryStore(ctx.out / "online" / "memory_steer", ctx.agent.loaded.model_id,
                        ctx.agent.loaded.hidden_size, ctx.agent.embedder)
    try:
        assert sum(store.count(u) for u in users) == 3 * len(users)
    finally:
        store.close()


def test_sweep_runs_its_grid_and_chooses_among_it(ctx) -> None:
    section = sweep.run_sweep(ctx)
    valid(ctx, "sweep", section)
    results = section["results"]
    grid = [(r["site"], r["aggregation"], r["layers"], r["alpha"], r["positions"]) for r in results[:5]]
    assert grid == [
        ("whole", "attentive", [6], 0.2, "decision"), ("whole", "attentive", [6], 0.4, "decision"),
        ("attn+mlp", "attentive", [6], 0.2, "decision"), ("attn+mlp", "attentive", [6], 0.4, "decision"),
        ("attn+mlp", "attentive", [5, 6], 0.3, "context")]  # attn is not swept here
    for site in ("whole", "attn+mlp"):  # then the mean, at the site's chosen setting, 1 and 2 x its alpha
        picked = section["chosen"][site]
        means = [r for r in results[5:] if r["site"] == site]
        assert [(r["aggregation"], r["layers"], r["positions"]) for r in means] == [
            ("mean", picked["layers"], picked["positions"])] * 2
        assert [r["alpha"] for r in means] == [picked["alpha"], 2 * picked["alpha"]]
    assert len(results) == 9
    assert sorted(section["chosen"]) == ["attn+mlp", "attn+mlp-mean", "whole", "whole-mean"]
    for name, chosen in section["chosen"].items():
        site, _, aggregation = name.partition("-")
        own = [r for r in results if r["site"] == site and r["aggregation"] == (aggregation or "attentive")]
        assert chosen in own and chosen["function_acc"] == max(r["function_acc"] for r in own)
    swept = set(section["users"])
    assert swept and not swept & set(ctx.dataset.manifest.held_out_users)  # never tuned on held-out users
    assert sum(t.user_id in swept for t in ctx.dataset.test) >= 2


def test_calibration_curve_scales_each_sites_shipped_strength(ctx) -> None:
    """The full suite's curve: each site at its own layers and positions, the shipped
    alpha times each factor, on non-held-out users."""
    section = sweep.run_calibration(ctx)
    valid(ctx, "calibration", section)
    assert section["plot"] == "calibration.png"
    results = section["results"]
    assert len(results) == len(sweep.SITES) * len(sweep.CURVE)
    for site in sweep.SITES:
        shipped = ctx.method(f"steer-{site}-attentive")
        mine = [r for r in results if r["site"] == site]
        assert {(tuple(r["layers"]), r["positions"], r["aggregation"]) for r in mine} == {
            (shipped.layers, shipped.positions, "attentive")}
        assert [r["alpha"] for r in mine] == pytest.approx([shipped.alpha * f for f in sweep.CURVE])
    assert not set(section["users"]) & set(ctx.dataset.manifest.held_out_users)


def test_arguments_sweep_steers_what_the_call_says(ctx, monkeypatch) -> None:
    monkeypatch.setattr(ctx.agent.chat, "max_new_tokens", 40)  # room for a value after the call's head
    section = arguments.run_arguments(ctx)
    valid(ctx, "arguments", section)
    assert [(r["layer"], r["alpha"]) for r in section["results"]] == [(0, 0.0), (6, 4.0)]
    swept = set(section["users"])
    assert swept and not swept & set(ctx.dataset.manifest.held_out_users)  # never tuned on held-out users
    unsteered, steered = ({o["task_id"]: o["value"] for o in r["outcomes"]} for r in section["results"])
    assert unsteered and unsteered.keys() == steered.keys()
    assert {o["type"] for o in section["results"][0]["outcomes"]} <= {"search", "review"}
    assert any(unsteered[t] != steered[t] for t in unsteered)  # the vectors reached the arguments
    gold = section["baselines"]["gold"]
    assert gold["n"] == len(unsteered) and gold["degeneration_rate"] == 0.0


def test_clusters_regroup_the_main_tables_outcomes(ctx) -> None:
    assert clusters.run_clusters(ctx)["note"].startswith("no single-turn results")
    run_track(ctx, "single", ctx.tasks, [ctx.method("zero-shot")])
    section = clusters.run_clusters(ctx)
    valid(ctx, "clusters", section)
    counted = sum(s["overall"]["n"] for s in section["methods"].values())
    assert counted == len(ctx.tasks)
    assert sorted(section["clusters"]) == sorted(ctx.users)


def test_a_method_is_decided_once_per_run(ctx) -> None:
    """Where the single-turn track ran a method on the evaluated tasks, the stages of
    every experiment are its calls' tools (no second decision); a track over other tasks
    leaves the method to decision-only mode, decided once."""
    from dataclasses import replace

    method, other = ctx.method("prompt-k1"), ctx.method("prompt-k3")
    run_track(ctx, "single", ctx.tasks, [method])
    run_track(ctx, "single", ctx.tasks[:1], [other])
    assert other not in ctx.decided
    generated = [o.tool for o in ctx.outcomes[("single", "prompt-k1")]]
    rows = ctx.stage_rows(method)
    assert [r["decision"] for r in rows] == generated
    assert [r["task_id"] for r in rows] == [t.task_id for t in ctx.tasks]
    assert all(r["retrieved_tool"] for r in rows)  # retrieval is still read
    assert ctx.stage_rows(method) is rows
    section = stages.run_stages(replace(ctx, stage_methods=("prompt-k1", "prompt-k3")))
    assert section["outcomes"]["prompt-k1"] is rows
    assert section["note"].endswith("the single-turn track's calls for zero-shot, prompt-k1; "
                                    "decision-only for nearest-call, prompt-k3")
    assert len(section["outcomes"]["prompt-k3"]) == len(ctx.tasks)


def test_many_layers_are_swept_at_smaller_strengths(monkeypatch) -> None:
    monkeypatch.setattr(sweep, "LAYER_SETS", ((6,), tuple(range(15))))
    settings = sweep.grid()
    one = [s["alpha"] for s in settings if s["layers"] == [6] and s["site"] == "whole"]
    many = [s["alpha"] for s in settings if len(s["layers"]) == 15 and s["site"] == "whole"]
    assert one == list(sweep.ALPHAS) and many == [a / sweep.MANY_LAYERS for a in sweep.ALPHAS]
    assert sweep._span(list(range(15))) == "0-14" and sweep._span([6, 10, 14]) == "6+10+14"


def test_multi_turn_outcomes_keep_each_episodes_actions(ctx) -> None:
    """The multi-turn track scores the shop action that ended an episode (nothing comes
    after it) and keeps the tool of every action the agent took, so its step count can
    be read action by action."""
    from tools.registry import TOOL_FOR_TYPE

    section = run_track(ctx, "multi", ctx.tasks[:3], [ctx.method("prompt-k1")])
    summary = section["methods"]["prompt-k1"]
    shop = set(TOOL_FOR_TYPE.values())
    for outcome in summary["outcomes"]:
        actions = outcome["actions"]
        assert 1 <= len(actions) <= 6 and all(isinstance(a, str) and a for a in actions)
        last_shop = [a for a in actions if a in shop]
        assert outcome["tool"] == (last_shop[-1] if last_shop else None)
        # the action ends the episode; an action the shop refused gets one more try
        assert len(last_shop) <= 2 and (not last_shop or actions[-1] == outcome["tool"])
        if outcome["tool"] != "search_product_by_query":
            assert "brands_added" not in outcome
    assert summary["avg_steps"] == sum(len(o["actions"]) for o in summary["outcomes"]) / 3
