"""The personalization numbers: the habit model beats wording alone; preferences find targets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import main
from tools.data import generate_dataset, load_dataset
from tools.data.stats import Bm25Ranker, KeywordClassifier, dataset_stats


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("stats"), users=40, seed=0)


def test_habit_model_clearly_beats_keywords(data_dir: Path) -> None:
    stats = dataset_stats(load_dataset(data_dir))
    assert stats["keyword_tool_acc"] <= 0.6
    assert stats["habit_tool_acc"] >= 0.85
    assert stats["habit_tool_acc_heldout"] >= 0.85  # from history requests alone
    assert stats["counts"]["history_requests"] == stats["counts"]["interactions"]
    assert stats["bm25_target_rank_pref"] < 2
    assert stats["bm25_target_rank_bare"] > 5 * max(stats["bm25_target_rank_pref"], 1)


def test_keyword_classifier_learns_plain_wording() -> None:
    from tools.data import Task

    def task(text: str, kind: str) -> Task:
        product = {"title": "t", "parent_asin": "B000000001", "main_category": "c",
                   "store": "s", "features": [], "description": [], "details": {}}
        return Task(task_id=text, user_id="u", task=text, type=kind, timestamp=1,
                    target={"product_info": product,
                            "review": {"rating": 5, "title": "", "text": "", "timestamp": 1}})

    clf = KeywordClassifier([task("find lamp", "search"), task("suggest lamp", "recommend"),
                             task("review lamp", "review")] * 3)
    assert [clf.predict(t) for t in ("find desk", "suggest desk", "review desk")] == \
        ["search", "recommend", "review"]


def test_bm25_rank_counts_ties_as_half(data_dir: Path) -> None:
    ds = load_dataset(data_dir)
    ranker = Bm25Ranker(ds.products)
    asin = sorted(ds.products)[0]
    # A query matching nothing ties every product: expected rank is the middle.
    assert ranker.rank("zzqx", asin) == (len(ds.products) - 1) / 2
    assert ranker.rank(ds.products[asin].title, asin) < 3


def test_stats_cli_prints_json(data_dir: Path, capsys) -> None:
    assert main(["shop", "stats", "--data", str(data_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("keyword_tool_acc", "habit_tool_acc", "habit_tool_acc_heldout",
                "bm25_target_rank_bare", "bm25_target_rank_pref"):
        assert isinstance(out[key], float)
    assert out["counts"]["users"] == 40
    assert main(["shop", "stats", "--data", str(data_dir.parent / "missing")]) == 1
    assert "missing" in capsys.readouterr().err
