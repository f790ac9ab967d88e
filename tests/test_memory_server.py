"""Client/server mode against a real `chroma run` on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from memory import MemoryStore, forget_user
from memory.server import ChromaServer
from memory.synthetic import random_entries

HIDDEN = 8
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def server(tmp_path):
    server = ChromaServer(tmp_path / "served")
    server.start()
    yield server
    server.stop()


def test_server_restart_keeps_2000_entries(server):
    users = [f"user{i:02d}" for i in range(40)]
    entries = random_entries(users, 50, HIDDEN, seed=21)
    store = MemoryStore(server.url, "toy-model", HIDDEN)
    assert store.add(entries).added == 2000
    server.stop()
    server.start()  # same port, same path
    store = MemoryStore(server.url, "toy-model", HIDDEN)
    assert store.count() == 2000
    assert all(s.entries == 50 for s in store.stats().values())
    for probe in entries[::97]:
        result = store.retrieve(probe.user_id, query_embedding=probe.key_embedding)
        assert result.entry_ids[0] == probe.entry_id
        assert result.vectors["mlp.6"][0].tolist() == probe.vectors["mlp.6"].tolist()


WRITER = """
import sys
from memory import MemoryStore
from memory.synthetic import random_entries
store = MemoryStore(sys.argv[1], "toy-model", 8)
for batch in range(20):
    store.add(random_entries([f"{sys.argv[2]}-{batch % 4}"], 10, 8, seed=batch))
"""


def test_two_writers_through_one_server_lose_nothing(server, tmp_path):
    MemoryStore(server.url, "toy-model", HIDDEN)  # create the store once
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, server.url, name], env=env, cwd=ROOT)
        for name in ("a", "b")
    ]
    assert [w.wait(timeout=300) for w in writers] == [0, 0]
    store = MemoryStore(server.url, "toy-model", HIDDEN)
    assert store.count() == 2 * 20 * 10
    assert {u: s.entries for u, s in store.stats().items()} == {
        f"{name}-{i}": 50 for name in "ab" for i in range(4)
    }


def test_forget_in_server_mode_checks_the_server_dir(server):
    store = MemoryStore(server.url, "toy-model", HIDDEN)
    store.add(random_entries(["alice", "bob"], 5, HIDDEN, seed=22))
    report = forget_user(store, "alice")
    assert report.remaining == 0 and not report.disk_checked  # cannot see server's files
    assert "--server-path" in report.actions[0]
    store.add(random_entries(["carol"], 5, HIDDEN, seed=23))
    report = forget_user(store, "carol", server_path=server.path)
    assert report.disk_checked and report.remaining == 0 and not report.residue_after, report
    assert store.count("bob") == 5


def test_a_client_sees_another_clients_writes(server):
    from dataclasses import replace

    reader = MemoryStore(server.url, "toy-model", HIDDEN, snapshot_ttl_s=0.0)
    writer = MemoryStore(server.url, "toy-model", HIDDEN)
    lagging = MemoryStore(server.url, "toy-model", HIDDEN, snapshot_ttl_s=3600.0)
    alice = random_entries(["alice"], 3, HIDDEN, seed=24)
    bob = random_entries(["bob"], 3, HIDDEN, seed=25)
    writer.add(alice + bob)
    probe = alice[0].key_embedding
    assert reader.retrieve("alice", query_embedding=probe).entry_ids[0] == alice[0].entry_id
    newer = replace(alice[0], entry_id="m-newer", timestamp=alice[-1].timestamp + 1)
    writer.add([newer])  # supersedes alice[0]
    assert reader.retrieve("alice", query_embedding=probe).entry_ids[0] == "m-newer"
    assert not reader.retrieve("bob", query_embedding=bob[0].key_embedding).abstained
    assert not lagging.retrieve("bob", query_embedding=bob[0].key_embedding).abstained
    forget_user(writer, "bob", server_path=server.path)  # rebuilds into a new generation
    assert reader.retrieve("bob", query_embedding=bob[0].key_embedding).abstained
    # a stale snapshot still cannot bring bob back: his vectors are gone
    assert lagging.retrieve("bob", query_embedding=bob[0].key_embedding).abstained
    assert reader.retrieve("alice", query_embedding=probe).entry_ids[0] == "m-newer"
    reader.add(random_entries(["carol"], 2, HIDDEN, seed=26))
    assert writer.count() == 6


class _FlakyCollection:
    """Answers like a Chroma server whose segment is still being flushed, then recovers."""

    def __init__(self, failures: int):
        self.failures = failures
        self.calls = 0

    def get(self, **query):
        from chromadb.errors import InternalError

        self.calls += 1
        if self.calls <= self.failures:
            raise InternalError("Error creating hnsw segment reader: Nothing found on disk")
        return {"ids": ["e1"], "query": query}


def test_a_transient_server_read_error_is_retried_and_a_lasting_one_raised(monkeypatch):
    from chromadb.errors import InternalError

    from memory import store

    monkeypatch.setattr(store, "READ_RETRIES", (0.0, 0.0, 0.0))
    flaky = _FlakyCollection(failures=2)
    assert store._get(flaky, ids=["e1"])["ids"] == ["e1"]
    assert flaky.calls == 3
    broken = _FlakyCollection(failures=10)
    with pytest.raises(InternalError):
        store._get(broken, ids=["e1"])
    assert broken.calls == 4
