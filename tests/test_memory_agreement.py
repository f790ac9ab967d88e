"""Leave-one-out agreement of a user's own entries (memory.agreement), the store's cached
check, and the strength it lowers in `decide_steering`; real MiniLM and real Chroma."""

from __future__ import annotations

import numpy as np
import pytest

from agent.methods import parse_method
from memory import MemoryStore
from memory.agreement import MIN_CHECKED, Agreement, leave_one_out, weighted_vote
from memory.entry import MemoryEntry
from memory.keys import IntentKeys, catalog_words
from memory.steerer import decide_steering

SEARCH, RECOMMEND = "search_product_by_query", "get_recommendations_by_history"
# Two ways of asking, each always meaning one tool for the consistent user.
ASKING = {SEARCH: ["Looking up {} for me, thanks", "Could you look up {} for me"],
          RECOMMEND: ["Something that goes with my usual {}", "What else fits my usual {}"]}
ITEMS = ["socks", "blender", "tent", "headphones", "kettle", "guitar strings"]
KEYS = IntentKeys(catalog_words([*ITEMS, "wool", "mugs", "lamps", "rugs"]))  # the items are masked


@pytest.fixture(scope="module")
def embedder():
    from common.embedding import load_embedder

    return load_embedder()


def past(consistent: bool) -> list[tuple[str, str]]:
    """(request, tool) pairs: each way of asking keeps its tool, or both tools are asked
    for in the same words."""
    out = []
    for n, item in enumerate(ITEMS):
        for tool, phrasings in ASKING.items():
            words = phrasings if consistent else ASKING[SEARCH]
            out.append((words[n % 2].format(item), tool))
    return out


def entries(user: str, pairs: list[tuple[str, str]], hidden: int = 8) -> list[MemoryEntry]:
    return [MemoryEntry(user_id=user, key=key, vectors={"whole.1": np.full(hidden, 1.0 + n, np.float32)},
                        tool=tool, args_digest="-", timestamp=1.7e9 + n, source="bootstrap",
                        entry_id=f"{user[-1]}{n:031d}")
            for n, (key, tool) in enumerate(pairs)]


def test_weighted_vote_sums_weights_per_tool():
    assert weighted_vote(["a", "b", "b"], [0.5, 0.3, 0.3]) == "b"
    assert weighted_vote(["a", "b"], [0.5, 0.5]) == "a"  # first seen on ties
    assert weighted_vote([], []) is None


def test_strength_factor_lowers_only_below_the_floor_and_only_when_enough_was_checked():
    assert Agreement(9, 10).strength_factor(0.8) == 1.0
    assert Agreement(4, 10).strength_factor(0.8) == pytest.approx(0.5)
    assert Agreement(0, 10).strength_factor(0.8) == 0.0
    assert Agreement(0, 10).strength_factor(0.0) == 1.0  # the check is off
    assert Agreement(0, MIN_CHECKED - 1).strength_factor(0.8) == 1.0  # too few votes to say


def test_a_consistent_user_agrees_and_a_contradicting_one_does_not(embedder):
    results = {}
    for consistent in (True, False):
        pairs = past(consistent)
        docs = [request for request, _ in pairs]
        results[consistent] = leave_one_out(KEYS, docs, embedder.embed(docs), [t for _, t in pairs],
                                            k=3, threshold=0.3, temperature=0.05)
    assert results[True].checked == len(past(True)) and results[True].rate == 1.0
    assert results[False].checked == len(past(False)) and results[False].rate <= 0.5


def test_the_store_recomputes_agreement_only_when_the_user_changes(tmp_path, embedder):
    with MemoryStore(tmp_path / "m", "toy", 8, embedder, keys=KEYS, snapshot_ttl_s=0.0) as store:
        store.add(entries("u1", past(True)), hygiene=False)
        store.add(entries("u2", past(False)), hygiene=False)
        settings = dict(k=3, threshold=0.3, temperature=0.05)
        first = store.agreement("u1", **settings)
        assert first.rate == 1.0 and store.agreement("u1", **settings) is first  # cached
        assert store.agreement("u2", **settings).rate <= 0.5  # per user, never mixed
        # one entry asked in the words of three of u1's searches (items masked alike), for
        # another tool: its own check retrieves only those three and disagrees (with three
        # such entries, which ones a tie of identical keys returns differed between CPUs)
        flipped = [("Looking up mugs for me, thanks", RECOMMEND)]
        store.add([
            MemoryEntry(user_id="u1", key=key, vectors={"whole.1": np.ones(8, np.float32)}, tool=tool,
                        args_digest="-", timestamp=1.8e9 + n, source="online", entry_id=f"x{n:031d}")
            for n, (key, tool) in enumerate(flipped)], hygiene=False)
        again = store.agreement("u1", **settings)  # new entries: computed again over them
        assert again is not first and again.checked == first.checked + len(flipped)
        assert again.rate < first.rate
        assert store.agreement("u1", **settings) is again  # and cached again


def test_a_contradicting_user_is_steered_more_weakly(tmp_path, embedder):
    from tests.helpers.tiny_models import tiny_model

    model = tiny_model("gemma3")
    hidden = model.hidden_size
    norms = {"whole.1": 10.0}
    with MemoryStore(tmp_path / "m", model.model_id, hidden, embedder, keys=KEYS) as store:
        store.add(entries("u1", past(True), hidden) + entries("u2", past(False), hidden), hygiene=False)
        request = "Could you look up wool socks for me"
        plain = parse_method("steer-whole-mean", model.model_id, layers=[1], threshold=0.3, top_k=3,
                             agreement_floor=0.0)
        checked = parse_method("steer-whole-mean", model.model_id, layers=[1], threshold=0.3, top_k=3,
                               agreement_floor=0.9)
        sizes = {}
        for user in ("u1", "u2"):
            for method in (plain, checked):
                decision = decide_steering(store, model, lambda: norms, user, request, method)
                assert decision.applied, decision.reason
                sizes[user, method.agreement_floor] = float(decision.vector.tensors["whole.1"].norm())
                assert (decision.agreement is None) == (method.agreement_floor == 0)
        assert sizes["u1", 0.9] == pytest.approx(sizes["u1", 0.0])  # agrees: full strength
        assert sizes["u2", 0.9] < 0.6 * sizes["u2", 0.0]  # contradicts itself: lowered
        summary = decide_steering(store, model, lambda: norms, "u2", request, checked).summary()
        assert summary["agreement"] <= 0.5 and summary["strength"] < checked.alpha
