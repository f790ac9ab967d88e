"""Intent keys: requests compared without the catalog's words, per user (memory.keys),
with the real MiniLM and a real embedded Chroma store."""

from __future__ import annotations

import numpy as np
import pytest

from memory import MemoryStore
from memory.entry import MemoryEntry
from memory.keys import PLAIN, IntentKeys, catalog_words, lexical_scores
from memory.store import ModelMismatchError

HIDDEN = 8
CATALOG = catalog_words(["Noven Dark Chocolate, Fair Trade", "Corove Running Shoes with Extra Padding",
                         "Solasen Hot Sauce", "Yarrasen hiking backpack"])


@pytest.fixture(scope="module")
def embedder():
    from common.embedding import load_embedder

    return load_embedder()


def test_catalog_words_are_masked_and_the_rest_kept():
    keys = IntentKeys(CATALOG)
    assert keys.text("Regarding hot sauce stuff, a note. Thx") == "Regarding stuff a note Thx"
    assert keys.text("Noven running shoes") == "Noven running shoes"  # nothing left: the request
    assert IntentKeys().text("Regarding hot sauce stuff") == "Regarding hot sauce stuff"
    assert IntentKeys().name == PLAIN and IntentKeys(CATALOG).name.startswith("intent-v1:")
    assert IntentKeys(CATALOG).name != IntentKeys(catalog_words(["Other Catalog"])).name


def test_the_subject_is_what_the_key_leaves_out():
    keys = IntentKeys(CATALOG)
    assert keys.subject("Regarding hot sauce stuff, a note. Thx") == "hot sauce"
    assert keys.subject("Hello there") == "Hello there"  # no catalog word: the request
    assert IntentKeys().subject("Regarding hot sauce stuff") == "Regarding hot sauce stuff"


def test_lexical_weights_ignore_what_the_user_always_says():
    docs = [{"hello", "note"}, {"hello", "passing"}, {"hello", "usual"}]
    scores = lexical_scores({"hello", "passing"}, docs)
    assert int(np.argmax(scores)) == 1 and scores[1] == pytest.approx(1.0)
    assert scores[0] == scores[2] < 0.05  # a shared greeting counts for almost nothing


def test_without_a_catalog_scores_are_the_plain_dense_cosine(embedder):
    keys = IntentKeys()
    docs = ["Regarding hot sauce stuff, a note.", "Dark chocolate stuff: passing it over."]
    matrix = embedder.embed(docs)
    query = embedder.embed(["hot sauce please"])[0]
    np.testing.assert_allclose(keys.scores("hot sauce please", query, docs, matrix), matrix @ query, rtol=1e-6)


def _entry(user: str, key: str, tool: str, n: int) -> MemoryEntry:
    return MemoryEntry(user_id=user, key=key, vectors={"whole.3": np.full(HIDDEN, n, np.float32)},
                       tool=tool, args_digest="-", timestamp=1.7e9 + n, source="bootstrap",
                       entry_id=f"m{n:031d}")


def test_retrieval_finds_the_same_way_of_asking_not_the_same_item(tmp_path, embedder):
    past = [("Regarding hot sauce stuff, a note. Thx", "search_product_by_query"),
            ("Dark chocolate stuff: passing it over. Thx", "get_recommendations_by_history"),
            ("Running shoes stuff: passing it over. Thx", "get_recommendations_by_history")]
    request = "Hot sauce stuff: passing it over. Thx"  # the item of entry 0, the phrasing of 1 and 2
    entries = [_entry("u1", key, tool, n) for n, (key, tool) in enumerate(past)]
    with MemoryStore(tmp_path / "plain", "toy", HIDDEN, embedder, keys=IntentKeys()) as store:
        store.add(entries, hygiene=False)
        plain = store.retrieve("u1", request, k=1, threshold=0.0)
    with MemoryStore(tmp_path / "intent", "toy", HIDDEN, embedder, keys=IntentKeys(CATALOG)) as store:
        store.add(entries, hygiene=False)
        found = store.retrieve("u1", request, k=3, threshold=0.0)
        assert found.tools[0] == "get_recommendations_by_history"
        assert set(found.tools[:2]) == {"get_recommendations_by_history"}
        assert store.retrieve("u2", request, k=3, threshold=0.0).abstained  # never another user's
    assert plain.tools == ["search_product_by_query"]  # what whole-request keys found


def test_a_store_is_never_searched_with_keys_of_another_kind(tmp_path, embedder):
    with MemoryStore(tmp_path / "m", "toy", HIDDEN, embedder, keys=IntentKeys(CATALOG)) as store:
        store.add([_entry("u1", "Regarding hot sauce stuff", "search_product_by_query", 1)])
    with pytest.raises(ModelMismatchError, match="built with keys 'intent-v1:"):
        MemoryStore(tmp_path / "m", "toy", HIDDEN, embedder, keys=IntentKeys())
    with MemoryStore(tmp_path / "m", read_only=True) as admin:  # stats, audit, forget: any keys
        assert admin.count("u1") == 1
