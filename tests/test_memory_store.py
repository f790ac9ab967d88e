"""The steering memory store in embedded mode: isolation, abstention, hygiene, bad input."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from memory import (
    MemoryInputError,
    MemoryStore,
    ModelMismatchError,
    StoreBusyError,
)
from memory.synthetic import random_entries, unit_rows
from steering.weights import attentive_weights

HIDDEN = 8


@pytest.fixture
def store(tmp_path):
    with MemoryStore(tmp_path / "mem", "toy-model", HIDDEN) as opened:
        yield opened


def test_isolation_randomized_zero_cross_user_hits(store):
    users = [f"user{i:02d}" for i in range(30)]
    entries = random_entries(users, 12, HIDDEN, seed=1)
    store.add(entries)
    owner = {e.entry_id: e.user_id for e in entries}
    rng = np.random.default_rng(7)
    for _ in range(200):
        user = users[rng.integers(len(users))]
        # queries near other users' keys too: the filter, not luck, must keep them out
        probe = entries[rng.integers(len(entries))]
        noisy = probe.key_embedding + 0.05 * rng.standard_normal(384).astype(np.float32)
        result = store.retrieve(user, query_embedding=noisy, k=5, threshold=-1.0)
        assert not result.abstained
        assert {owner[eid] for eid in result.entry_ids} == {user}
        if probe.user_id == user:  # own key nearly identical: found first
            assert result.entry_ids[0] == probe.entry_id


def test_retrieval_returns_exact_vectors_and_weights(store):
    entries = random_entries(["alice"], 6, HIDDEN, seed=2)
    store.add(entries)
    target = entries[3]
    result = store.retrieve("alice", query_embedding=target.key_embedding, k=3, threshold=-1.0)
    assert result.entry_ids[0] == target.entry_id
    assert result.similarities[0] == pytest.approx(1.0, abs=1e-5)
    for key, vector in target.vectors.items():
        np.testing.assert_array_equal(result.vectors[key][0], vector)
    assert result.weights.sum() == pytest.approx(1.0)
    assert list(result.weights) == sorted(result.weights, reverse=True)
    expected = attentive_weights(result.similarities, 0.1)  # the default temperature
    np.testing.assert_allclose(result.weights, expected, rtol=1e-6)


def test_abstains_and_fails_closed(store):
    store.add(random_entries(["alice"], 5, HIDDEN, seed=3))
    rng = np.random.default_rng(0)
    unrelated = unit_rows(rng, 1)[0]  # random 384-d: similarity near 0
    for user in ("bob", "", None):
        result = store.retrieve(user, query_embedding=unrelated, threshold=-1.0)
        assert result.abstained and not result.vectors and not result.entry_ids
    below = store.retrieve("alice", query_embedding=unrelated, threshold=0.5)
    assert below.abstained and "threshold" in below.reason and not below.vectors


def test_time_decay_prefers_recent():
    sims = np.array([0.9, 0.9], np.float32)
    ages = np.array([0.0, 30 * 86400.0])
    flat = attentive_weights(sims, 0.1)
    decayed = attentive_weights(sims, 0.1, ages, 30 * 86400.0)
    assert flat == pytest.approx([0.5, 0.5])
    assert decayed == pytest.approx([2 / 3, 1 / 3])


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda e: replace(e, vectors={"attn.6": np.zeros(HIDDEN + 1, np.float32)}), "shape"),
        (lambda e: replace(e, vectors={"attn.6": np.full(HIDDEN, np.nan, np.float32)}), "NaN"),
        (lambda e: replace(e, vectors={"attn.6": np.full(HIDDEN, np.inf, np.float32)}), "NaN"),
        (lambda e: replace(e, vectors={"attn+mlp.6": np.zeros(HIDDEN, np.float32)}), "site"),
        (lambda e: replace(e, vectors={"attn.six": np.zeros(HIDDEN, np.float32)}), "site"),
        (lambda e: replace(e, key="  "), "key"),
        (lambda e: replace(e, user_id=""), "user_id"),
        (lambda e: replace(e, source="guess"), "source"),
    ],
)
def test_bad_input_is_refused_and_nothing_stored(store, change, message):
    good, bad = random_entries(["alice"], 2, HIDDEN, seed=4)
    with pytest.raises(MemoryInputError, match=message):
        store.add([good, change(bad)])
    assert store.count() == 0


def test_model_mismatch_and_single_writer(tmp_path):
    path = tmp_path / "mem"
    with MemoryStore(path, "toy-model", HIDDEN) as first:
        first.add(random_entries(["alice"], 2, HIDDEN))
        with pytest.raises(StoreBusyError, match="chroma run"):
            MemoryStore(path, "toy-model", HIDDEN)
    with pytest.raises(ModelMismatchError, match="hidden_size"):
        MemoryStore(path, "toy-model", HIDDEN * 2)
    with pytest.raises(ModelMismatchError, match="model_id"):
        MemoryStore(path, "other-model", HIDDEN)
    with MemoryStore(path) as reopened:  # no model given: whatever the store holds
        assert (reopened.model_id, reopened.hidden_size, reopened.count()) == ("toy-model", 8, 2)


def test_near_duplicates_supersede_and_cap_evicts(tmp_path):
    with MemoryStore(tmp_path / "mem", "toy-model", HIDDEN, cap_per_user=4) as store:
        base = random_entries(["alice"], 3, HIDDEN, seed=5)
        dup = replace(base[0], entry_id="m-dup", timestamp=base[-1].timestamp + 10)
        store.add(base)
        report = store.add([dup])
        assert report.superseded == 1
        audit = {row["entry_id"]: row for row in store.audit("alice")}
        assert audit[base[0].entry_id]["superseded_by"] == "m-dup"
        result = store.retrieve("alice", query_embedding=dup.key_embedding, k=4, threshold=-1)
        assert base[0].entry_id not in result.entry_ids and result.entry_ids[0] == "m-dup"
        stats = store.stats()["alice"]
        assert (stats.entries, stats.superseded) == (4, 1)
        newer = random_entries(["alice"], 2, HIDDEN, seed=6, start_time=2e9)
        assert store.add(newer).evicted == 2
        left = {row["entry_id"] for row in store.audit("alice")}
        assert base[0].entry_id not in left  # the superseded one went first
        assert base[1].entry_id not in left  # then the oldest live one
        assert len(left) == 4


def test_survives_restart(tmp_path):
    path = tmp_path / "mem"
    entries = random_entries(["alice", "bob"], 5, HIDDEN, seed=8)
    with MemoryStore(path, "toy-model", HIDDEN) as store:
        store.add(entries)
    with MemoryStore(path, "toy-model", HIDDEN, read_only=True) as store:
        assert store.count() == 10
        result = store.retrieve("bob", query_embedding=entries[7].key_embedding)
        assert result.entry_ids[0] == entries[7].entry_id


def test_real_embedder_keys(tmp_path):
    from common.embedding import load_embedder

    embedder = load_embedder()
    entries = [
        replace(e, key=text)
        for e, text in zip(
            random_entries(["alice"], 3, HIDDEN, seed=9),
            ["running shoes for trail races", "a review of my new kettle", "more like my last books"],
        )
    ]
    entries = [replace(e, key_embedding=None) for e in entries]
    with MemoryStore(tmp_path / "mem", "toy-model", HIDDEN, embedder) as store:
        store.add(entries)
        result = store.retrieve("alice", "shoes for running on trails", k=1)
        assert not result.abstained and result.keys == ["running shoes for trail races"]
        assert store.retrieve("alice", "quantum chromodynamics lecture notes").abstained
