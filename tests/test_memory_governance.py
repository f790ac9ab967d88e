"""Forget (down to the bytes on disk), expiry, export/import, and a writer killed mid-write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from memory import (
    MemoryInputError,
    MemoryStore,
    expire,
    export_user,
    forget_user,
    import_user,
)
from memory.synthetic import random_entries

HIDDEN = 8
ROOT = Path(__file__).resolve().parents[1]


def _bytes_of(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


def test_forget_removes_user_from_store_and_disk(tmp_path):
    path = tmp_path / "mem"
    users = [f"user{i:02d}" for i in range(25)]
    # > 1000 entries so Chroma has flushed HNSW segment files to disk as well
    entries = random_entries(users, 48, HIDDEN, seed=11)
    gone = [e for e in entries if e.user_id == "user07"]
    with MemoryStore(path, "toy-model", HIDDEN) as store:
        store.add(entries)
        before = {u: s.entries for u, s in store.stats().items()}
        report = forget_user(store, "user07")
        assert report.deleted == 48 and report.remaining == 0
        assert report.disk_checked and report.residue_before and not report.residue_after
        assert report.clean
        after = {u: s.entries for u, s in store.stats().items()}
        assert after == {u: n for u, n in before.items() if u != "user07"}
        probe = entries[0]  # another user's retrieval still right after the rebuild
        assert store.retrieve(probe.user_id, query_embedding=probe.key_embedding).entry_ids[
            0
        ] == probe.entry_id
        assert store.retrieve("user07", query_embedding=gone[0].key_embedding).abstained
    raw = _bytes_of(path)
    assert b"user07" not in raw
    for entry in gone:  # an independent scan of the bytes
        assert entry.entry_id.encode() not in raw
        assert entry.key.encode() not in raw
        assert entry.vectors["attn.6"].tobytes() not in raw
    assert entries[0].key.encode() in raw  # the scan does see surviving users


def test_expire_by_age(tmp_path):
    entries = random_entries(["alice", "bob"], 10, HIDDEN, seed=12, start_time=0.0)
    now = 3600.0 * 9 + 1  # entry i has time 3600*i: entries 0..4 are older than 5h
    with MemoryStore(tmp_path / "mem", "toy-model", HIDDEN) as store:
        store.add(entries)
        report = expire(store, 5 * 3600.0 - 1, now=now)
        assert report.deleted == 10 and report.remaining == 0 and not report.residue_after
        left = [row["timestamp"] for u in ("alice", "bob") for row in store.audit(u)]
        assert sorted(left) == sorted(3600.0 * i for i in range(5, 10) for _ in range(2))


def test_export_import_round_trip(tmp_path):
    entries = random_entries(["alice", "bob"], 4, HIDDEN, seed=13)
    with MemoryStore(tmp_path / "a", "toy-model", HIDDEN) as source:
        source.add(entries)
        assert export_user(source, "alice", tmp_path / "alice.safetensors") == 4
        original = source.entries("alice")
    with MemoryStore(tmp_path / "b", "toy-model", HIDDEN) as target:
        assert import_user(target, tmp_path / "alice.safetensors", "alice").added == 4
        assert import_user(target, tmp_path / "alice.safetensors", "alice").skipped == 4
        copied = target.entries("alice")
        assert target.count() == 4 and target.count("bob") == 0
    for a, b in zip(original, copied):
        assert (a.entry_id, a.key, a.tool, a.timestamp, a.source) == (
            b.entry_id, b.key, b.tool, b.timestamp, b.source,
        )
        for key in a.vectors:
            np.testing.assert_array_equal(a.vectors[key], b.vectors[key])


def test_export_import_keeps_the_negative_policy_and_reads_older_exports(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    entries = [replace(e, negative="nearest-other-user")
               for e in random_entries(["alice"], 3, HIDDEN, seed=15)]
    with MemoryStore(tmp_path / "a", "toy-model", HIDDEN) as source:
        source.add(entries)
        export_user(source, "alice", tmp_path / "alice.safetensors")
    with MemoryStore(tmp_path / "b", "toy-model", HIDDEN) as target:
        import_user(target, tmp_path / "alice.safetensors", "alice")
        assert [e.negative for e in target.entries("alice")] == ["nearest-other-user"] * 3
    # an export written before the policy was recorded: its entries import with none
    with safe_open(str(tmp_path / "alice.safetensors"), framework="numpy") as handle:
        metadata = handle.metadata()
    rows = json.loads(metadata["entries"])
    older = [{k: v for k, v in row.items() if k != "negative"} for row in rows]
    save_file(load_file(tmp_path / "alice.safetensors"), str(tmp_path / "old.safetensors"),
              metadata=metadata | {"entries": json.dumps(older)})
    with MemoryStore(tmp_path / "c", "toy-model", HIDDEN) as target:
        assert import_user(target, tmp_path / "old.safetensors", "alice").added == 3
        assert [e.negative for e in target.entries("alice")] == ["", "", ""]
    unknown = [row | {"negative": "random"} for row in rows]
    save_file(load_file(tmp_path / "alice.safetensors"), str(tmp_path / "bad.safetensors"),
              metadata=metadata | {"entries": json.dumps(unknown)})
    with MemoryStore(tmp_path / "d", "toy-model", HIDDEN) as target:
        with pytest.raises(MemoryInputError, match="negative policy 'random'"):
            import_user(target, tmp_path / "bad.safetensors", "alice")
        assert target.count() == 0


def test_import_refuses_wrong_model_and_non_finite(tmp_path):
    from safetensors.numpy import load_file, save_file
    from safetensors import safe_open

    with MemoryStore(tmp_path / "a", "toy-model", HIDDEN) as source:
        source.add(random_entries(["alice"], 3, HIDDEN, seed=14))
        export_user(source, "alice", tmp_path / "alice.safetensors")
    with MemoryStore(tmp_path / "wide", "toy-model", HIDDEN * 2) as wide:
        with pytest.raises(MemoryInputError, match="hidden_size"):
            import_user(wide, tmp_path / "alice.safetensors", "alice")
        assert wide.count() == 0
    with MemoryStore(tmp_path / "other", "other-model", HIDDEN) as other:
        with pytest.raises(MemoryInputError, match="model_id"):
            import_user(other, tmp_path / "alice.safetensors", "alice")
    tensors = load_file(tmp_path / "alice.safetensors")
    with safe_open(str(tmp_path / "alice.safetensors"), framework="numpy") as handle:
        metadata = handle.metadata()
    tensors["2/mlp.6"][3] = np.nan
    save_file(tensors, str(tmp_path / "nan.safetensors"), metadata=metadata)
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with MemoryStore(tmp_path / "b", "toy-model", HIDDEN) as target:
        with pytest.raises(MemoryInputError, match="NaN"):
            import_user(target, tmp_path / "nan.safetensors", "alice")
        with pytest.raises(MemoryInputError, match="not a readable"):
            import_user(target, tmp_path / "junk.safetensors", "alice")
        assert target.count() == 0
    assert json.loads(metadata["entries"])[0]["tool"]


WRITER = """
import sys, time
from memory import MemoryStore
from memory.synthetic import random_entries
store = MemoryStore(sys.argv[1], "toy-model", 8)
print("ready", flush=True)
for batch in range(10_000):
    store.add(random_entries([f"u{batch % 7}"], 5, 8, seed=batch))
"""


def test_sigkill_mid_write_leaves_only_whole_entries(tmp_path):
    path = tmp_path / "mem"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, env=env, cwd=ROOT
    )
    assert writer.stdout.readline().strip() == b"ready"
    time.sleep(3.0)  # a few hundred entries in, and always in the middle of one
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    with MemoryStore(path, "toy-model", HIDDEN) as store:  # opens; repairs leftovers
        assert store.count() > 0
        total = 0
        for user in store.users():
            audit = store.audit(user)
            whole = store.entries(user)
            assert len(whole) == len(audit)  # every key has all its vectors
            total += len(whole)
            result = store.retrieve(user, query_embedding=whole[-1].key_embedding)
            assert result.entry_ids[0] == whole[-1].entry_id
        assert total == store.count()
        assert store.repair() == {"broken_keys": 0, "orphan_vectors": 0}
        store.add([replace(e, entry_id=e.entry_id + "x") for e in whole[:1]])
