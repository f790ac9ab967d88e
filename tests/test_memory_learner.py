"""The learner: bulk builds (resumable, idempotent), online entries, negative policies,
all with a deterministic fake extractor; the real steering core once under `slow`."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pytest

from agent.interactions import past_interactions
from memory import MemoryStore
from memory.learner import Learner, format_call, negative_policy
from memory.online import Episode, OnlineWriter
from tools.registry import TOOL_FOR_TYPE

HIDDEN = 8
TOOLS = tuple(TOOL_FOR_TYPE.values())  # search, recommend, review


def fake_extract(pairs):
    """Vectors that depend only on the texts: the same pair always gives the same vector."""
    out = []
    for pair in pairs:
        seed = int(hashlib.sha256("|".join(pair).encode()).hexdigest()[:8], 16)
        rng = np.random.default_rng(seed)
        out.append({k: rng.standard_normal(HIDDEN).astype(np.float32) for k in ("attn.3", "mlp.3")})
    return out


def learner(store, extract=fake_extract, policy=None, formatter=format_call):
    return Learner(store, extract, policy or negative_policy("other-tools", tools=TOOLS), formatter)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from tools.data import generate_dataset, load_dataset

    return load_dataset(generate_dataset(tmp_path_factory.mktemp("data"), users=6, seed=3))


@pytest.fixture(scope="module")
def embedder():
    from common.embedding import load_embedder

    return load_embedder()


def test_format_call():
    prompt, answer = format_call("cheap socks", "search_product_by_query", {"query": "socks"})
    assert prompt == "User request: cheap socks\nCall: "
    assert answer == '{"name":"search_product_by_query","arguments":{"query":"socks"}}'


def test_build_is_resumable_and_idempotent(tmp_path, dataset, embedder):
    items = past_interactions(dataset, max_history=3)
    users = {i.user_id for i in items}
    assert items and users <= set(dataset.user_ids())
    with MemoryStore(tmp_path / "mem", "toy-model", HIDDEN, embedder) as store:
        calls = []

        def counting(pairs):
            calls.append(len(pairs))
            if len(calls) > len(items) // 8:
                raise KeyboardInterrupt  # an interruption half-way through
            return fake_extract(pairs)

        with pytest.raises(KeyboardInterrupt):
            learner(store, counting).learn_batch(items, batch_size=4, progress=False)
        partial = store.count()
        assert 0 < partial < len(items)
        resumed = learner(store).learn_batch(items, batch_size=4, progress=False)
        assert resumed.already_present == partial
        assert store.count() == len(items)
        again = learner(store).learn_batch(items, batch_size=4, progress=False)
        assert (again.added, again.already_present, store.count()) == (0, len(items), len(items))
        one = items[0]
        result = store.retrieve(one.user_id, one.request, k=1, threshold=0.0)
        assert result.entry_ids == [one.entry_id] or result.similarities[0] > 0.97
        np.testing.assert_array_equal(store.entries(one.user_id)[0].vectors["attn.3"].shape, (HIDDEN,))


def test_online_writer_learns_in_the_background_and_logs_failures(tmp_path, caplog):
    def fragile(pairs):
        if any("broken" in p.prompt for p in pairs):
            return [{"attn.3": np.full(HIDDEN, np.nan, np.float32)} for _ in pairs]
        return fake_extract(pairs)

    with MemoryStore(tmp_path / "mem", "toy-model", HIDDEN) as store:
        learnt: list[Episode] = []  # what the writer's `also` heard: written episodes only
        writer = OnlineWriter(learner(store, fragile), also=[learnt.append])
        assert writer.submit(Episode("alice", "shoes for running", "search_product_by_query",
                                     {"query": "running shoes"}, timestamp=1.7e9))
        assert writer.submit(Episode("alice", "my usual again", "get_recommendations_by_history",
                                     {"product_sequence": ["B1"]}, timestamp="2024-01-02T03:04:05Z"))
        writer.submit(Episode("alice", "x", "add_product_review", {}, outcome="abandoned"))
        with caplog.at_level(logging.ERROR, logger="memory.online"):
            # accepted into the queue, refused by the store's checks in the thread
            assert writer.submit(Episode("alice", "broken", "search_product_by_query", {}))
            assert writer.flush(timeout=60)
        writer.close()
        assert (writer.stats.written, writer.stats.failed, writer.stats.ignored) == (2, 1, 1)
        assert [e.request for e in learnt] == ["shoes for running", "my usual again"]
        assert "NaN" in caplog.text
        audit = store.audit("alice")
        assert [(row["source"], row["negative"]) for row in audit] == [("online", "other-tools")] * 2


def test_an_online_entry_is_made_like_a_bulk_one(tmp_path):
    """The same call learnt online and in bulk gives the same vectors and policy."""
    with MemoryStore(tmp_path / "mem", "toy-model", HIDDEN) as store:
        learnt = learner(store)
        learnt.learn("bob", "tea for the morning", "search_product_by_query", {"query": "tea"},
                     timestamp=1.7e9)
        (online,) = store.entries("bob")
        from memory.learner import online_interaction

        item = online_interaction("carol", "tea for the morning", "search_product_by_query",
                                  {"query": "tea"}, 1.7e9)
        learnt.learn_batch([item], progress=False)
        (bulk,) = store.entries("carol")
        np.testing.assert_array_equal(online.vectors["attn.3"], bulk.vectors["attn.3"])
        assert online.negative == bulk.negative == "other-tools"


@pytest.mark.slow
def test_build_with_the_real_steering_core(tmp_path, dataset, embedder):
    import steering
    from memory.learner import steering_extractor

    loaded = steering.load_model()
    items = past_interactions(dataset, max_history=0)[:4]
    with MemoryStore(tmp_path / "mem", loaded.model_id, loaded.hidden_size, embedder) as store:
        built = Learner(store, steering_extractor(loaded, ["attn", "mlp"], [6]),
                        negative_policy("other-tools", tools=TOOLS), model=loaded)
        report = built.learn_batch(items, batch_size=2, progress=False)
        assert report.added == len(items)
        entry = store.entries(items[0].user_id)[0]
        assert set(entry.vectors) == {"attn.6", "mlp.6"}
        assert entry.vectors["attn.6"].shape == (loaded.hidden_size,)
        assert np.linalg.norm(entry.vectors["mlp.6"]) > 0  # positive and negative differ
        result = store.retrieve(items[0].user_id, items[0].request, k=1, threshold=0.0)
        assert not result.abstained and result.vectors["attn.6"].shape == (1, loaded.hidden_size)


def test_negatives_are_the_nearest_request_of_another_user(dataset, embedder):
    pool = past_interactions(dataset)
    items = past_interactions(dataset, max_history=5)
    policy = negative_policy("nearest-other-user", pool=pool, embedder=embedder)
    contrasts = policy.contrasts(items)
    owners: dict[tuple, set] = {}
    for p in pool:
        owners.setdefault((p.tool, str(sorted(p.arguments.items()))), set()).add(p.user_id)
    for item, found in zip(items, contrasts):
        ((tool, arguments),) = found
        assert owners[(tool, str(sorted(arguments.items())))] - {item.user_id}  # another user's call
    assert any(c[0][0] != i.tool for i, c in zip(items, contrasts))  # it can contrast tool choice
    random_pick = negative_policy("nearest-other-user", pool=pool).contrasts(items[:5])
    assert random_pick == negative_policy("nearest-other-user", pool=pool).contrasts(items[:5])
    assert all(len(c) == 1 for c in random_pick)


def test_other_tools_contrasts_each_other_tool_and_records_the_policy(tmp_path, dataset, embedder):
    items = past_interactions(dataset, max_history=2)
    policy = negative_policy("other-tools", tools=TOOLS)
    assert all(sorted(t for t, _ in c) == sorted(set(TOOLS) - {i.tool})
               for i, c in zip(items, policy.contrasts(items)))
    seen = []

    def extract(pairs):
        seen.append(list(pairs))
        return fake_extract(pairs)

    with MemoryStore(tmp_path / "mem", "toy-model", HIDDEN, embedder) as store:
        learner(store, extract).learn_batch(items[:3], batch_size=3, progress=False)
        assert [len(s) for s in seen] == [3 * (len(TOOLS) - 1)]  # one pair per other tool, one extraction
        (entry,) = [e for e in store.entries(items[0].user_id) if e.entry_id == items[0].entry_id]
        first = seen[0][:len(TOOLS) - 1]
        assert {p.positive for p in first} == {format_call(items[0].request, items[0].tool, items[0].arguments)[1]}
        expected = np.mean([v["attn.3"] for v in fake_extract(first)], axis=0)
        np.testing.assert_allclose(entry.vectors["attn.3"], expected, rtol=1e-6)
        assert store.audit(items[0].user_id)[0]["negative"] == "other-tools"
    with pytest.raises(ValueError, match="unknown negative policy 'random'"):
        negative_policy("random", tools=TOOLS)
    with pytest.raises(ValueError, match="at least two tools"):
        negative_policy("other-tools", tools=TOOLS[:1])
    assert len({i.request for i in items}) > len(items) // 2  # history requests are real requests


def test_the_formatter_shapes_every_pair(tmp_path, dataset):
    items = past_interactions(dataset, max_history=2)
    seen = []

    def extract(pairs):
        seen.extend(pairs)
        return fake_extract(pairs)

    with MemoryStore(tmp_path / "mem", "toy-model", HIDDEN) as store:
        learner(store, extract, formatter=lambda request, tool, args: (f"<{request}>", f"[{tool}]")
                ).learn_batch(items[:1], progress=False)
    assert seen[0].prompt == f"<{items[0].request}>" and seen[0].positive == f"[{items[0].tool}]"


def test_the_agent_builds_only_the_named_users_memory_at_its_own_sites(tmp_path):
    from tests.helpers.serve_fixtures import tiny_agent

    with tiny_agent(tmp_path) as agent:
        user = sorted(agent.dataset.histories)[0]
        report = agent.build_memory([user], max_history=2, progress=False)
        assert report.added == agent.store.count(user) > 0
        assert agent.store.count() == agent.store.count(user)  # nobody else's entries
        keys = {f"{site}.{layer}" for site in ("whole", "attn", "mlp") for layer in agent.method.layers}
        assert all(set(e.vectors) == keys for e in agent.store.entries(user))
        assert {row["negative"] for row in agent.store.audit(user)} == {"other-tools"}


def test_the_agents_online_entries_use_the_policy_its_store_records(tmp_path):
    """A store built with nearest-other-user gets nearest-other-user entries from the
    agent's memory node, and a learner with another policy is refused."""
    from agent.runtime import make_learner
    from memory import MemoryInputError
    from memory.online import Episode
    from tests.helpers.serve_fixtures import tiny_agent

    with tiny_agent(tmp_path, negatives="nearest-other-user", online_memory=False) as agent:
        user = sorted(agent.dataset.histories)[0]
        assert agent.build_memory([user], max_history=2, progress=False).added > 0
    with tiny_agent(tmp_path) as agent:  # the same store, no policy named
        assert agent.negatives == agent.learner.negatives.name == "nearest-other-user"
        known = agent.prompt_memory.count(user)
        assert agent.writer.submit(Episode(user, "a tent for two", "search_product_by_query",
                                           {"query": "tent"}, timestamp=1.7e9))
        assert agent.writer.flush(timeout=120) and agent.writer.stats.failed == 0
        rows = agent.store.audit(user)
        assert {row["source"] for row in rows} == {"bootstrap", "online"}
        assert {row["negative"] for row in rows} == {"nearest-other-user"}
        # prompt memory learns the same interaction (agent.prompt_memory.PromptMemory.learn)
        assert agent.prompt_memory.count(user) == known + 1
        assert agent.prompt_memory.top_k(user, "a tent for two", 1)[0].arguments == {"query": "tent"}
        with pytest.raises(MemoryInputError, match="holds entries made with the negative policy "
                                                   "'nearest-other-user'.*'other-tools'.*Allowed"):
            make_learner(agent.loaded, agent.store, agent.dataset, layers=[1], negatives="other-tools")
    with pytest.raises(MemoryInputError, match="other-tools"):
        with tiny_agent(tmp_path, negatives="other-tools"):
            pass
