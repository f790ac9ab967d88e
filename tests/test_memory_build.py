"""Bulk build (resumable, idempotent) with a deterministic fake extractor; online writer."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pytest

from memory import MemoryStore
from memory.build import build_memory, format_call, past_interactions
from memory.online import OnlineWriter, add_online

HIDDEN = 8
TOOLS = ("search_product_by_query", "get_recommendations_by_history", "add_product_review")


def fake_extract(pairs):
    """Vectors that depend only on the texts: the same pair always gives the same vector."""
    out = []
    for pair in pairs:
        seed = int(hashlib.sha256("|".join(pair).encode()).hexdigest()[:8], 16)
        rng = np.random.default_rng(seed)
        out.append({k: rng.standard_normal(HIDDEN).astype(np.float32) for k in ("attn.3", "mlp.3")})
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from tools.data import generate_dataset, load_dataset

    return load_dataset(generate_dataset(tmp_path_factory.mktemp("data"), users=6, seed=3))


@pytest.fixture(scope="module")
def embedder():
    from memory.embedding import load_embedder

    return load_embedder()


def test_format_call():
    prompt, answer = format_call("cheap socks", "search_product_by_query", {"query": "socks"})
    assert prompt == "User request: cheap socks\nCall: "
    assert answer == '{"name":"search_product_by_query","arguments":{"query":"socks"}}'


def test_build_is_resumable_and_idempotent(tmp_path, dataset, embedder):
    items = past_interactions(dataset, max_history=3, tools=TOOLS)
    assert items and all(p.positive != p.negative for i in items[:20] for p in i.pairs())
    users = {i.user_id for i in items}
    assert users <= set(dataset.user_ids())
    with MemoryStore(tmp_path / "mem", "toy-model", HIDDEN, embedder) as store:
        calls = []

        def counting(pairs):
            calls.append(len(pairs))
            if sum(calls) > len(items) // 2:
                raise KeyboardInterrupt  # an interruption half-way through
            return fake_extract(pairs)

        with pytest.raises(KeyboardInterrupt):
            build_memory(store, items, counting, batch_size=4, progress=False)
        partial = store.count()
        assert 0 < partial < len(items)
        resumed = build_memory(store, items, fake_extract, batch_size=4, progress=False)
        assert resumed.already_present == partial
        assert store.count() == len(items)
        again = build_memory(store, items, fake_extract, batch_size=4, progress=False)
        assert (again.added, again.already_present, store.count()) == (0, len(items), len(items))
        one = items[0]
        result = store.retrieve(one.user_id, one.request, k=1, threshold=0.0)
        assert result.entry_ids == [one.entry_id] or result.similarities[0] > 0.97
        np.testing.assert_array_equal(
            store.entries(one.user_id)[0].vectors["attn.3"].shape, (HIDDEN,)
        )


def test_online_writer_adds_without_blocking_and_logs_failures(tmp_path, caplog):
    with MemoryStore(tmp_path / "mem", "toy-model", HIDDEN) as store:
        writer = OnlineWriter(store, fake_extract)
        vec = {"attn.3": np.ones(HIDDEN, np.float32)}
        assert add_online(writer, "alice", "shoes for running", "search_product_by_query",
                          {"query": "running shoes"}, vectors=vec, timestamp=1.7e9)
        assert add_online(writer, "alice", "my usual again", "get_recommendations_by_history",
                          {"product_sequence": ["B1"]}, timestamp="2024-01-02T03:04:05Z",
                          negative=("search_product_by_query", {"query": "usual"}))
        add_online(writer, "alice", "x", "stop", {}, outcome="abandoned", vectors=vec)
        with caplog.at_level(logging.ERROR, logger="memory.online"):
            bad = {"attn.3": np.full(HIDDEN, np.nan, np.float32)}
            assert add_online(writer, "alice", "broken", "search_product_by_query", {},
                              vectors=bad)  # accepted into the queue, fails in the thread
            assert writer.flush(timeout=60)
        writer.close()
        assert (writer.stats.written, writer.stats.failed, writer.stats.ignored) == (2, 1, 1)
        assert "NaN" in caplog.text
        audit = store.audit("alice")
        assert [row["source"] for row in audit] == ["online", "online"]


@pytest.mark.slow
def test_build_with_the_real_steering_core(tmp_path, dataset, embedder):
    steering = pytest.importorskip("steering")
    if not hasattr(steering, "extract_vectors"):
        pytest.skip("the steering core has no extract_vectors yet")
    from memory.build import steering_extractor

    loaded = steering.load_model()
    items = past_interactions(dataset, max_history=0, tools=TOOLS)[:4]
    extract = steering_extractor(loaded, ["attn", "mlp"], [6])
    with MemoryStore(tmp_path / "mem", loaded.model_id, loaded.hidden_size, embedder) as store:
        report = build_memory(store, items, extract, batch_size=2, progress=False)
        assert report.added == len(items)
        entry = store.entries(items[0].user_id)[0]
        assert set(entry.vectors) == {"attn.6", "mlp.6"}
        assert entry.vectors["attn.6"].shape == (loaded.hidden_size,)
        assert np.linalg.norm(entry.vectors["mlp.6"]) > 0  # positive and negative differ
        result = store.retrieve(items[0].user_id, items[0].request, k=1, threshold=0.0)
        assert not result.abstained and result.vectors["attn.6"].shape == (1, loaded.hidden_size)


def test_negatives_are_the_nearest_request_of_another_user(dataset, embedder):
    items = past_interactions(dataset, max_history=5, embedder=embedder, negatives="nearest-other-user")
    by_call = {}
    for user, histories in dataset.histories.items():
        for item in histories:
            if item.request is not None:
                by_call.setdefault((item.request.gold_call.name,
                                    str(sorted(item.request.gold_call.arguments.items()))), set()).add(user)
    for item in items:
        ((tool, arguments),) = item.negatives
        owners = by_call.get((tool, str(sorted(arguments.items()))), set())
        assert owners - {item.user_id} or not owners  # another user's call, never only their own
        assert item.policy == "nearest-other-user"
    history_items = [i for i in items if i.entry_id and i.request != "" and i.tool != ""]
    assert any(i.negatives[0][0] != i.tool for i in history_items)  # it can contrast tool choice


def test_other_tools_contrasts_each_other_tool_and_records_the_policy(tmp_path, dataset, embedder):
    items = past_interactions(dataset, max_history=2, tools=TOOLS)
    assert items and all(sorted(t for t, _ in i.negatives) == sorted(set(TOOLS) - {i.tool})
                         for i in items)
    seen = []

    def extract(pairs):
        seen.append(len(pairs))
        return fake_extract(pairs)

    with MemoryStore(tmp_path / "mem", "toy-model", HIDDEN, embedder) as store:
        build_memory(store, items[:3], extract, batch_size=3, progress=False)
        assert seen == [3 * (len(TOOLS) - 1)]  # one pair per other tool, in one extraction
        (entry,) = [e for e in store.entries(items[0].user_id) if e.entry_id == items[0].entry_id]
        pairs = items[0].pairs()
        expected = np.mean([v["attn.3"] for v in fake_extract(pairs)], axis=0)
        np.testing.assert_allclose(entry.vectors["attn.3"], expected, rtol=1e-6)
        assert store.audit(items[0].user_id)[0]["negative"] == "other-tools"
    with pytest.raises(ValueError, match="unknown negative policy 'random'"):
        past_interactions(dataset, negatives="random", tools=TOOLS)
    assert len({i.request for i in items}) > len(items) // 2  # history requests are real requests


def test_the_formatter_shapes_every_pair(dataset):
    items = past_interactions(dataset, max_history=2, tools=TOOLS)
    pair = items[0].pairs(lambda request, tool, args: (f"<{request}>", f"[{tool}]"))[0]
    assert pair.prompt == f"<{items[0].request}>" and pair.positive == f"[{items[0].tool}]"


def test_the_agent_builds_only_the_named_users_memory_at_its_own_sites(tmp_path):
    from tests.test_serve_fixtures import tiny_agent

    with tiny_agent(tmp_path) as agent:
        user = sorted(agent.dataset.histories)[0]
        report = agent.build_memory([user], max_history=2, progress=False)
        assert report.added == agent.store.count(user) > 0
        assert agent.store.count() == agent.store.count(user)  # nobody else's entries
        keys = {f"{site}.{layer}" for site in ("whole", "attn", "mlp") for layer in agent.method.layers}
        assert all(set(e.vectors) == keys for e in agent.store.entries(user))
