"""The shop and its tools on a small set made by the project's generator (10 users)."""

from __future__ import annotations

import json

import pytest

from tools import BrowserTransport, ShopError, make_shop_tools
from tools.data import generate_dataset, load_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return load_dataset(generate_dataset(tmp_path_factory.mktemp("generated"), users=10, seed=0))


@pytest.fixture(scope="module")
def sample_shop_dir(dataset):
    """This module's data set: the shared `sample_shop` and `sample_http` fixtures
    (tests/helpers/shop.py) serve the generated set instead of the bundled sample."""
    return dataset.root


def test_bought_products_are_found_by_their_title(dataset, sample_http):
    bought = sorted({i.product_info.parent_asin: i.product_info.title
                     for history in dataset.histories.values() for i in history}.items())
    for asin, title in bought[::10]:
        assert sample_http.search(title)[0].asin == asin, title


def test_recommendations_for_every_user(dataset, sample_http):
    for user_id, history in dataset.histories.items():
        sequence = [i.product_info.parent_asin for i in history][-30:]
        if not sequence:
            continue
        products = sample_http.recommend(sequence)
        assert len(products) == 10 and not {p.asin for p in products} & set(sequence)
        assert sample_http.recommend(sequence) == products


def test_tools_store_a_review_for_a_real_user(dataset, sample_http):
    user_id = dataset.user_ids()[0]
    tools = {t.name: t for t in make_shop_tools(sample_http, user_id=user_id)}
    message = tools["add_product_review"].invoke(
        {"type": "tool_call", "id": "1", "name": "add_product_review",
         "args": {"review": "Solid build, fair price."}})
    assert message.artifact.review.user_id == user_id
    assert message.content == "Review stored: Solid build, fair price."


@pytest.mark.browser
def test_transports_agree_on_the_gold_search_queries(dataset, sample_shop, sample_http):
    queries = [t.gold_call.arguments["query"] for t in dataset.tasks
               if t.gold_call and t.gold_call.name == "search_product_by_query"][:5]
    sequences = [t.gold_call.arguments["product_sequence"] for t in dataset.tasks
                 if t.gold_call and t.gold_call.name == "get_recommendations_by_history"][:3]
    assert queries and sequences
    with BrowserTransport(sample_shop.url) as browser:
        for query in queries:
            assert browser.search(query) == sample_http.search(query)
        for sequence in sequences:
            assert browser.recommend(sequence) == sample_http.recommend(sequence)
        asin = sequences[0][-1]
        assert browser.product(asin) == sample_http.product(asin)
        with pytest.raises(ShopError, match="B0NOSUCH00"):
            browser.product("B0NOSUCH00")


def test_bench_shop_writes_json(dataset, tmp_path):
    from tools.shop.bench import main  # what `fints bench shop` runs

    out = tmp_path / "bench.json"
    assert main(str(dataset.root), str(out), tasks=20, browser=False) == 0
    report = json.loads(out.read_text())
    assert report["tasks"] == 20 and "browser" not in report
    search = report["http"]["search"]
    assert search["calls"] > 0 and search["gold_call_r_acc"] > 0.5
    assert search["latency_ms_median"] > 0
