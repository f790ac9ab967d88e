"""`fints bench serve`: throughput and latency of the service under 1, 4 and 8 clients.

The service runs in-process on loopback (the same app `fints serve` runs) and is driven
over real HTTP by client threads, each sending its next request as soon as the last is
answered. Requests are the data set's test tasks, in a fixed order, so runs compare.
Online memory writes are off while measuring (they compete for the same 2 cores).
The command line (flags, the agent they open) is `agent.serve`'s; this module measures.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LEVELS = (1, 4, 8)
TARGET_SPEEDUP = 3.0  # throughput at the most clients over one client (the speed issue's target)


def drive(url: str, items: Sequence[tuple[str, str]], clients: int, timeout_s: float = 900.0) -> dict[str, Any]:
    """Send every (user, request) once through `clients` concurrent clients; measure."""
    import httpx

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    batch_sizes: list[int] = []
    lock = threading.Lock()
    pending = list(reversed(items))

    def client() -> None:
        with httpx.Client(base_url=url, timeout=timeout_s) as http:
            while True:
                with lock:
                    if not pending:
                        return
                    user_id, request = pending.pop()
                started = time.perf_counter()
                try:
                    response = http.post("/v1/act", json={"user_id": user_id, "request": request})
                    status, body = str(response.status_code), response.json()
                except httpx.HTTPError as error:
                    status, body = type(error).__name__, {}
                elapsed = time.perf_counter() - started
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == "200":
                        latencies.append(elapsed)
                        batch_sizes.append(body["batch_size"])

    threads = [threading.Thread(target=client, name=f"bench-client-{i}") for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ok = statuses.get("200", 0)
    return {
        "clients": clients,
        "requests": len(items),
        "ok": ok,
        "errors": len(items) - ok,
        "statuses": statuses,
        "wall_s": round(wall, 3),
        "throughput_rps": round(ok / wall, 4) if wall > 0 else 0.0,
        "latency_p50_s": round(_percentile(latencies, 50), 3),
        "latency_p95_s": round(_percentile(latencies, 95), 3),
        "mean_batch_size": round(statistics.fmean(batch_sizes), 2) if batch_sizes else 0.0,
    }


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def bench_serve(url: str, items: Sequence[tuple[str, str]], levels: Sequence[int] = LEVELS,
                requests: int = 16) -> dict[str, Any]:
    """Each level sends the same first `requests` items; the speed-up is 8 vs 1 client."""
    from tqdm import tqdm

    chosen = [items[i % len(items)] for i in range(requests)]
    results = {}
    for clients in tqdm(levels, desc="bench serve", unit="level"):
        results[str(clients)] = drive(url, chosen, clients)
    first, last = results[str(levels[0])], results[str(levels[-1])]
    speedup = last["throughput_rps"] / first["throughput_rps"] if first["throughput_rps"] else 0.0
    return {"levels": results, "speedup": round(speedup, 3),
            "speedup_levels": [levels[0], levels[-1]], "target_speedup": TARGET_SPEEDUP,
            "target_met": speedup >= TARGET_SPEEDUP, "errors": sum(r["errors"] for r in results.values())}


def bench_items(dataset: Any) -> list[tuple[str, str]]:
    """(user, request) of the test tasks (train tasks if there are none), in file order."""
    tasks = dataset.test or dataset.train
    return [(task.user_id, task.task) for task in tasks]


def measure(agent: Any, settings: Any, levels: Sequence[int], requests: int) -> dict[str, Any]:
    """The service over `agent` (a `FintsAgent`) with `settings`, on loopback, driven at
    each level of clients; an empty store first gets every user's dictionary, so the
    bench measures steered requests. The report also names what was measured."""
    from agent.serve_app import AgentService, ServiceThread, create_app

    built_memory = False
    if agent.store is not None and agent.store.count() == 0:
        built_memory = _build_memory(agent)
    service = AgentService(agent, settings)
    try:
        with ServiceThread(create_app(service)) as url:
            items = bench_items(agent.dataset)
            drive(url, items[:2], 1)  # warm-up: caches, grammar, first-call costs
            report = bench_serve(url, items, levels, requests)
    finally:
        service.close()
    report.update(
        model=agent.loaded.model_id, linear_form=agent.loaded.linear_form,
        method=agent.method.name, cpu_count=os.cpu_count(),
        settings=settings.model_dump(), memory_built_for_bench=built_memory,
        memory_entries=agent.store.count() if agent.store is not None else 0,
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    return report


def write_report(report: dict[str, Any], out: Path) -> Path:
    """bench_serve.json in `out` (an existing directory), and one line per level on stdout."""
    path = out / "bench_serve.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    for level, row in report["levels"].items():
        print(f"{level:>2} clients: {row['throughput_rps']:.3f} req/s, p50 {row['latency_p50_s']:.2f} s, "
              f"p95 {row['latency_p95_s']:.2f} s, errors {row['errors']}, batch {row['mean_batch_size']}")
    print(f"speed-up {report['speedup']}x (target {report['target_speedup']:g}x: "
          f"{'met' if report['target_met'] else 'NOT met'}); wrote {path}")
    return path


def _build_memory(agent: Any) -> bool:
    """Every user's dictionary, from their latest two past interactions."""
    agent.build_memory(max_history=2)
    return True
