"""F. Acc and R. Acc as PersonalWAB defines them, on constructed cases with exact values."""

from __future__ import annotations

import pytest

from common.embedding import load_embedder
from tools.scoring import (
    CallScore,
    function_accuracy,
    rank_accuracy,
    review_similarity,
    score_call,
    summarize,
)


def task(kind: str, asin: str = "B0TARGET01", review: str = "Great boots, warm and dry.") -> dict:
    product = {"title": "Boots", "parent_asin": asin, "main_category": "Shoes", "store": "X",
               "features": [], "description": [], "details": {}}
    return {"task_id": "t", "user_id": "u", "task": "boots", "type": kind, "timestamp": 5,
            "target": {"product_info": product,
                       "review": {"rating": 5, "title": "", "text": review, "timestamp": 5}}}


def test_function_accuracy_maps_types_to_tools() -> None:
    assert function_accuracy("search", "search_product_by_query") == 1.0
    assert function_accuracy("recommend", "get_recommendations_by_history") == 1.0
    assert function_accuracy("review", "add_product_review") == 1.0
    assert function_accuracy("recommend", "search_product_by_query") == 0.0
    assert function_accuracy("search", None) == 0.0
    with pytest.raises(ValueError, match="unknown task type 'buy'"):
        function_accuracy("buy", "stop")


def test_rank_accuracy_is_one_minus_i_over_n() -> None:
    returned = [f"B0OTHER{i:03d}" for i in range(10)]
    assert rank_accuracy("B0OTHER000", returned) == 1.0
    assert rank_accuracy("B0OTHER003", returned) == pytest.approx(0.7)
    assert rank_accuracy("B0OTHER009", returned) == pytest.approx(0.1)
    assert rank_accuracy("B0MISSING0", returned) == 0.0
    assert rank_accuracy("B0X", [{"parent_asin": "B0Y"}, {"parent_asin": "B0X"}]) == 0.5
    assert rank_accuracy("B0X", []) == 0.0


def test_score_call_for_lists() -> None:
    found = ["B0A", "B0B", "B0TARGET01", "B0C"]
    assert score_call(task("search"), "search_product_by_query", found) == \
        CallScore("search", 1.0, 0.5)
    # Wrong tool, but the list still holds the target: PersonalWAB scores the result.
    assert score_call(task("search"), "get_recommendations_by_history", found) == \
        CallScore("search", 0.0, 0.5)
    assert score_call(task("recommend"), "add_product_review", "text") == \
        CallScore("recommend", 0.0, 0.0)


def test_review_similarity_uses_minilm() -> None:
    embedder = load_embedder()
    same = review_similarity("Great boots, warm and dry.", "Great boots, warm and dry.",
                             embedder)
    assert same == pytest.approx(1.0, abs=1e-5)
    close = review_similarity("Warm, dry and great boots.", "Great boots, warm and dry.",
                              embedder)
    far = review_similarity("The blender is loud.", "Great boots, warm and dry.", embedder)
    assert 0.8 < close < 1.0 and far < 0.4
    assert review_similarity("  ", "Great boots", embedder) == 0.0
    scored = score_call(task("review"), "add_product_review", "Great boots, warm and dry.",
                        embedder)
    assert scored.function_acc == 1.0 and scored.result_acc == pytest.approx(1.0, abs=1e-5)
    # A review that was never written with the review tool scores nothing.
    assert score_call(task("review"), "search_product_by_query", ["B0TARGET01"],
                      embedder).result_acc == 0.0


def test_summarize_means_per_type() -> None:
    table = summarize([CallScore("search", 1.0, 0.5), CallScore("search", 0.0, 0.0),
                       CallScore("review", 1.0, 0.8)])
    assert table["search"] == {"function_acc": 0.5, "result_acc": 0.25, "n": 2}
    assert table["overall"]["function_acc"] == pytest.approx(2 / 3)
    assert table["overall"]["result_acc"] == pytest.approx(1.3 / 3)
