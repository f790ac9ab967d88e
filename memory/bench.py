"""`fints bench memory`: add throughput and retrieval latency, embedded and server.

10,000 entries over 100 users by default, hidden size 640 (Gemma 3 270M) at two sites
of one layer, random unit key embeddings (the embedder is not what is timed). Entries
are added in batches of one user's `batch` entries, as a bulk build does; retrieval is
timed per query with k=4 on random users, after one "cold" retrieval per user (which
loads that user's key snapshot, see memory.keycache) that is reported separately.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from memory.server import ChromaServer
from memory.store import MemoryStore
from memory.synthetic import random_entries, unit_rows

TARGETS_MS = {"embedded": 10.0, "server": 25.0}


def _measure(store: MemoryStore, users: list[str], per_user: int, hidden: int,
             queries: int, batch: int, seed: int) -> dict:
    from tqdm import tqdm

    entries = random_entries(users, per_user, hidden, seed=seed)
    started = time.perf_counter()
    for start in tqdm(range(0, len(entries), batch), desc="add", unit="batch", leave=False):
        store.add(entries[start : start + batch])
    add_s = time.perf_counter() - started
    rng = np.random.default_rng(seed + 1)
    probes = unit_rows(rng, queries + len(users))
    cold = []  # first retrieval per user: loads that user's key snapshot
    for i, user in enumerate(users):
        t0 = time.perf_counter()
        store.retrieve(user, query_embedding=probes[queries + i], k=4, threshold=-1.0)
        cold.append((time.perf_counter() - t0) * 1000.0)
    latencies = []
    for i in tqdm(range(queries), desc="retrieve", leave=False):
        user = users[rng.integers(len(users))]
        t0 = time.perf_counter()
        store.retrieve(user, query_embedding=probes[i], k=4, threshold=-1.0)
        latencies.append((time.perf_counter() - t0) * 1000.0)
    return {
        "entries": store.count(),
        "add_per_s": round(len(entries) / add_s, 1),
        "retrieve_p50_ms": round(float(np.percentile(latencies, 50)), 3),
        "retrieve_p95_ms": round(float(np.percentile(latencies, 95)), 3),
        "retrieve_cold_p50_ms": round(float(np.percentile(cold, 50)), 3),
        "retrieve_cold_p95_ms": round(float(np.percentile(cold, 95)), 3),
    }


def run_bench(out_dir: str | Path, entries: int = 10_000, users: int = 100,
              hidden: int = 640, queries: int = 500, batch: int = 50, seed: int = 0) -> dict:
    """Run both modes in scratch directories; write and return bench_memory.json."""
    names = [f"bench-user-{i:03d}" for i in range(users)]
    per_user = entries // users
    result = {
        "config": {"entries": per_user * users, "users": users, "hidden_size": hidden,
                   "vector_keys": ["attn.6", "mlp.6"], "queries": queries, "k": 4,
                   "add_batch": batch},
    }
    with tempfile.TemporaryDirectory(prefix="fints-bench-") as scratch:
        with MemoryStore(Path(scratch) / "embedded", "bench-model", hidden) as store:
            result["embedded"] = _measure(store, names, per_user, hidden, queries, batch, seed)
        with ChromaServer(Path(scratch) / "served") as url:
            store = MemoryStore(url, "bench-model", hidden)
            result["server"] = _measure(store, names, per_user, hidden, queries, batch, seed)
    for mode, target in TARGETS_MS.items():
        result[mode]["target_p50_ms"] = target
        result[mode]["meets_target"] = result[mode]["retrieve_p50_ms"] <= target
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_memory.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
