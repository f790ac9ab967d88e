"""Evaluation maths and report schema on constructed inputs (no model)."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evals.degeneration import is_degenerate, repeats_tokens
from evals.report import ReportError, SCHEMA, render_markdown, validate_report, write_report
from evals.stats import TaskOutcome, bootstrap_interval, summarize_method, wilson_interval
from tools.registry import REVIEW


def outcome(task_type: str, f: float, r: float, **kw) -> TaskOutcome:
    return TaskOutcome("t", "u", task_type, None, f, r, **kw)


def test_wilson_matches_known_values() -> None:
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


@given(st.integers(0, 200), st.integers(1, 200))
def test_wilson_contains_the_proportion(successes: int, n: int) -> None:
    successes = min(successes, n)
    low, high = wilson_interval(successes, n)
    assert 0.0 <= low <= successes / n <= high <= 1.0


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40))
def test_bootstrap_contains_the_mean(values: list[float]) -> None:
    low, high = bootstrap_interval(values, samples=200)
    mean = sum(values) / len(values)
    assert 0.0 <= low <= mean + 1e-12 and mean - 1e-12 <= high <= 1.0


def test_bootstrap_is_reproducible_and_narrows_with_n() -> None:
    few = [0.0, 1.0] * 5
    many = [0.0, 1.0] * 200
    assert bootstrap_interval(few) == bootstrap_interval(few)
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(bootstrap_interval(many)) < width(bootstrap_interval(few)) / 3


def test_summary_per_type_and_overall() -> None:
    outcomes = [outcome("search", 1, 0.5, latency_s=1.0), outcome("search", 0, 0.0, latency_s=3.0),
                outcome("review", 1, 0.8, degenerate=True, latency_s=2.0)]
    s = summarize_method(outcomes)
    assert s["per_type"]["search"]["n"] == 2 and s["per_type"]["search"]["function_acc"] == 0.5
    assert s["per_type"]["search"]["result_acc"] == pytest.approx(0.25)
    assert "recommend" not in s["per_type"]
    assert s["overall"]["n"] == 3
    assert s["overall"]["function_acc"] == pytest.approx(2 / 3)
    assert s["overall"]["result_acc"] == pytest.approx(1.3 / 3)
    assert s["median_latency_s"] == 2.0
    assert s["degeneration_rate"] == pytest.approx(1 / 3)
    assert summarize_method(outcomes, multi=True)["avg_steps"] == 1.0


def test_degeneration() -> None:
    assert repeats_tokens("adidas adidas adidas")
    assert repeats_tokens("shoe red shoe red shoe red shoe red")
    assert not repeats_tokens("adidas running shoes with mesh upper")
    assert is_degenerate(None, malformed=True)
    assert is_degenerate({"name": "search_product_by_query", "args": {"query": " "}})
    # no sequence means the user's own purchases (the tool's default), not an empty call
    assert not is_degenerate({"name": "get_recommendations_by_history", "args": {}})
    assert is_degenerate({"name": "get_recommendations_by_history",
                          "args": {"product_sequence": ["B0A", "B0A", "B0A", "B0A"]}})
    assert is_degenerate({"name": "add_product_review", "args": {"review": "great great great"}})
    assert not is_degenerate({"name": "search_product_by_query", "args": {"query": "trail shoes"}})


def sample_report() -> dict:
    methods = {
        "zero-shot": summarize_method([outcome("search", 1, 0.9), outcome("recommend", 0, 0.0),
                                       outcome("review", 1, 0.6)]),
        "prompt-k3": summarize_method([outcome("search", 1, 0.7), outcome("recommend", 1, 0.2),
                                       outcome("review", 0, 0.0)]),
    }
    return {"schema": SCHEMA, "created": "2026-01-01T00:00:00+00:00", "model": "m",
            "data": "d", "suite": "smoke", "users": ["u"],
            "tracks": {"single": {"tasks": 3, "methods": methods}}, "experiments": {}}


def test_valid_report_passes_and_renders(tmp_path) -> None:
    report = sample_report()
    validate_report(report)
    paths = write_report(report, tmp_path / "out")
    assert [p.name for p in paths] == ["report.json", "report.md", "single_turn.png"]
    assert all(p.stat().st_size > 0 for p in paths)
    text = render_markdown(report)
    assert "| zero-shot | 1.000 / 0.900 | 0.000 / 0.000 | 1.000 / 0.600 | 0.667 / 0.500 | 3 |" in text


def test_report_shows_example_calls_beside_the_users_own() -> None:
    """Five tasks per type, each with the user's real call and every method's call."""
    def calls(name: str, text: str) -> list[TaskOutcome]:
        return [TaskOutcome(f"t{i}", "u", "review", REVIEW if name else None, 1.0 if name else 0.0,
                            0.5, arguments={"review": f"{text} {i}"} if name else None)
                for i in range(7)]

    report = sample_report()
    single = report["tracks"]["single"]
    single.update(tasks=7, methods={"zero-shot": summarize_method(calls("", "")),
                                    "steer": summarize_method(calls(REVIEW, "mine"))})
    single["ceiling"] = summarize_method(calls(REVIEW, "real"))
    validate_report(report)
    text = render_markdown(report)
    assert "**Example calls: review**" in text and "**Example calls: search**" not in text
    assert text.count("the user's own call") == 5  # five of the seven tasks
    assert '- `t0`, the user\'s own call: `add_product_review` `{"review": "real 0"}`' in text
    assert '  - steer [0.50]: `add_product_review` `{"review": "mine 0"}`' in text
    assert "  - zero-shot [0.50]: (no call)" in text


@pytest.mark.parametrize("breakage, message", [
    (lambda r: r["tracks"]["single"]["methods"]["zero-shot"]["overall"].update(function_acc=1.2),
     "outside"),
    (lambda r: r["tracks"]["single"]["methods"]["zero-shot"]["overall"].update(result_acc_ci=[0.9, 1.0]),
     "does not contain"),
    (lambda r: r["tracks"]["single"]["methods"]["zero-shot"]["per_type"]["search"].update(n=5),
     "per-type counts"),
    (lambda r: r["tracks"]["single"].update(tasks=4), "track has 4"),
    (lambda r: r.pop("users"), "missing top-level 'users'"),
    (lambda r: r["tracks"]["single"]["methods"]["zero-shot"].update(degeneration_rate=-0.1),
     "degeneration_rate"),
    (lambda r: r["tracks"]["single"]["methods"]["zero-shot"]["outcomes"].pop(), "2 outcomes for n = 3"),
    (lambda r: r["tracks"]["single"]["methods"]["zero-shot"]["outcomes"][1].update(function_acc=1.0),
     "outcomes' F. Acc differs"),
])
def test_broken_reports_are_rejected(tmp_path, breakage, message) -> None:
    report = copy.deepcopy(sample_report())
    breakage(report)
    with pytest.raises(ReportError, match=message):
        validate_report(report)
    with pytest.raises(ReportError):
        write_report(report, tmp_path / "bad")
    assert not (tmp_path / "bad" / "report.json").exists()  # nothing half-written


def test_sweep_choice_and_defaults_file(tmp_path) -> None:
    import json

    from evals.experiments.sweep import choose, choose_per_site, grid, write_defaults

    results = [{**r, "positions": r.get("positions", "decision")} for r in [
        {"site": "whole", "alpha": 2.0, "layers": [6], "function_acc": 0.9, "obedience": 0.9},
        {"site": "whole", "alpha": 0.5, "layers": [3], "function_acc": 0.9, "obedience": 0.95},
        {"site": "whole", "alpha": 0.25, "layers": [3], "function_acc": 0.9, "obedience": 0.95},
        {"site": "attn+mlp", "alpha": 0.1, "layers": [3], "function_acc": 0.6, "obedience": 0.99},
        {"site": "attn+mlp", "alpha": 1.0, "layers": [3], "function_acc": 0.7, "obedience": 0.8},
        {"site": "whole", "alpha": 0.1, "layers": [3], "function_acc": 0.9, "obedience": 0.95,
         "positions": "context"},
        {"site": "whole", "aggregation": "mean", "alpha": 0.5, "layers": [3], "function_acc": 0.8,
         "obedience": 0.9},
        {"site": "whole", "aggregation": "mean", "alpha": 0.25, "layers": [3], "function_acc": 0.7,
         "obedience": 0.8},
    ]]
    best = choose(results[:6])
    # as accurate and obedient as [1] at a lower strength, and as [5] at the deciding tokens only
    assert best is results[2]
    assert choose([]) is None
    per_site = choose_per_site(results)
    # each site its own best, and the mean aggregation its own (less accurate than the site's)
    assert per_site == {"whole": results[2], "attn+mlp": results[4], "whole-mean": results[6]}
    assert len(grid()) == len({json.dumps(g, sort_keys=True) for g in grid()})
    path = tmp_path / "defaults.json"
    path.write_text(json.dumps({"*": {"alpha": 0.5, "layers": [6]}}))
    entry = write_defaults("gemma-x", per_site, path)
    table = json.loads(path.read_text())
    assert table["gemma-x"] == entry == {
        "sites": {"whole": {"alpha": 0.25, "layers": [3], "positions": "decision"},
                  "attn+mlp": {"alpha": 1.0, "layers": [3], "positions": "decision"},
                  "whole-mean": {"alpha": 0.5}}}  # its layers and positions are its site's
    assert table["*"] == {"alpha": 0.5, "layers": [6]}


def test_a_failing_experiment_is_recorded_and_the_others_still_run(tmp_path, monkeypatch) -> None:
    import json

    import evals.experiments as experiments
    from evals.context import EvalContext
    from evals.evaluate import run_experiments

    def broken(ctx):
        raise RuntimeError("chroma went away")

    def fine(ctx):
        return {"note": "ran", "methods": {"x": sample_report()["tracks"]["single"]["methods"]["zero-shot"]}}

    monkeypatch.setattr(experiments, "EXPERIMENTS", {"broken": broken, "fine": fine})
    report = {**sample_report(), "pending": ["experiment_broken", "experiment_fine"], "errors": []}
    ctx = EvalContext(agent=None, dataset=None, users=["u"], tasks=[], out=tmp_path)
    seen = []
    real_fine = experiments.EXPERIMENTS["fine"]

    def fine_after_broken(ctx):  # the report on disk already has the failed part
        seen.append(json.loads((tmp_path / "report.json").read_text()))
        return real_fine(ctx)

    def malformed(ctx):  # a section that does not validate is an error, not a crash
        bad = copy.deepcopy(sample_report()["tracks"]["single"]["methods"]["zero-shot"])
        bad["overall"]["function_acc"] = 1.5
        return {"note": "bad", "methods": {"x": bad}}

    experiments.EXPERIMENTS["fine"] = fine_after_broken
    experiments.EXPERIMENTS["malformed"] = malformed
    report["pending"].append("experiment_malformed")
    run_experiments(ctx, ["broken", "fine", "malformed"], report, started=0.0)
    assert report["errors"][0] == "experiment broken: RuntimeError: chroma went away"
    assert report["errors"][1].startswith("experiment malformed: ReportError")
    assert len(report["errors"]) == 2
    assert seen[0]["pending"] == ["experiment_fine", "experiment_malformed"]
    assert "failed: RuntimeError" in seen[0]["experiments"]["broken"]["note"]
    final = json.loads((tmp_path / "report.json").read_text())
    assert final["pending"] == [] and final["experiments"]["fine"]["note"] == "ran"
    assert set(final["timing"]) >= {"experiment_broken", "experiment_fine", "total"}
    text = (tmp_path / "report.md").read_text()
    assert "**Error**: experiment broken: RuntimeError" in text and "Unfinished" not in text
    assert "**Unfinished**: still to run: experiment_fine, experiment_malformed" in render_markdown(seen[0])


def test_search_brand_rate_counts_searches_that_name_the_targets_brand() -> None:
    from types import SimpleNamespace

    from evals.runner import brand_named

    def task(task_type: str, brand: str = "Noven") -> SimpleNamespace:
        return SimpleNamespace(type=task_type, target=SimpleNamespace(product_info=SimpleNamespace(store=brand)))

    search = "search_product_by_query"
    assert brand_named(task("search"), {"name": search, "args": {"query": "Tamex noven dark chocolate"}}) \
        == {"brand_named": True}
    assert brand_named(task("search"), {"name": search, "args": {"query": "Novena dark chocolate"}}) \
        == {"brand_named": False}  # a word, not a substring
    assert brand_named(task("search", "The North Face"), {"name": search, "args": {"query": "the north face tent"}}) \
        == {"brand_named": True}
    assert brand_named(task("search"), {"name": REVIEW, "args": {"review": "Noven"}}) == {}
    assert brand_named(task("review"), {"name": search, "args": {"query": "Noven"}}) == {}
    assert brand_named(task("search"), None) == {}
    outcomes = [outcome("search", 1, 0.9, extra={"brand_named": True}),
                outcome("search", 1, 0.1, extra={"brand_named": False}),
                outcome("search", 0, 0.0), outcome("review", 1, 0.5)]
    summary = summarize_method(outcomes)
    assert summary["search_brand_rate"] == 0.5
    assert [o.get("brand_named") for o in summary["outcomes"]] == [True, False, None, None]
    assert "search_brand_rate" not in summarize_method(outcomes[2:])  # no search made: no rate


def test_a_plot_makes_its_folder(tmp_path) -> None:
    from evals.plots import lines

    path = lines([1, 2, 4], {"F. Acc": [0.2, 0.5, 0.9]}, "t", "x", "y", tmp_path / "new" / "p.png", log_x=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
