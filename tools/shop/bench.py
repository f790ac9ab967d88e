"""`fints bench shop`: how fast the shop answers through each transport, and how good its
search and recommendations are when called with the data set's gold arguments (the
R. Acc a perfect agent would get: the ceiling the shop sets for the benchmark)."""

from __future__ import annotations

import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tools.registry import RECOMMEND, SEARCH

GOLD_METHODS = {SEARCH: ("search", "query"), RECOMMEND: ("recommend", "product_sequence")}


def result_accuracy(asins: list[str], target: str) -> float:
    """PersonalWAB's R. Acc for a ranked list: 1 - rank/N if the target is in it, else 0."""
    return 1 - asins.index(target) / len(asins) if target in asins else 0.0


def run_bench(data_dir: str | Path, tasks: int, browser: bool) -> dict[str, Any]:
    from tools.data import load_dataset
    from tools.results import ShopError
    from tools.shop.server import ShopServer
    from tools.transport_browser import BrowserTransport
    from tools.transport_http import HttpTransport

    dataset = load_dataset(data_dir)
    gold = [t for t in dataset.tasks if t.gold_call and t.gold_call.name in GOLD_METHODS]
    gold = gold[:tasks]
    started = time.perf_counter()
    report: dict[str, Any] = {"data": str(data_dir), "tasks": len(gold),
                              "machine": platform.machine(), "python": platform.python_version()}
    scratch = tempfile.TemporaryDirectory(prefix="fints-bench-shop-")
    with scratch, ShopServer(data_dir, db_path=Path(scratch.name) / "reviews.sqlite3") as server:
        report["startup_s"] = round(time.perf_counter() - started, 3)
        transports: list[tuple[str, Callable[[], Any]]] = [
            ("http", lambda: HttpTransport(server.url))
        ]
        if browser:
            transports.append(("browser", lambda: BrowserTransport(server.url)))
        for name, make in transports:
            with make() as transport:
                latencies: dict[str, list[float]] = {"search": [], "recommend": []}
                accuracy: dict[str, list[float]] = {"search": [], "recommend": []}
                for task in tqdm(gold, desc=f"shop via {name}", unit="call"):
                    method, arg = GOLD_METHODS[task.gold_call.name]
                    t0 = time.perf_counter()
                    try:
                        products = getattr(transport, method)(task.gold_call.arguments[arg])
                    except ShopError:
                        products = []
                    latencies[method].append(time.perf_counter() - t0)
                    accuracy[method].append(result_accuracy(
                        [p.asin for p in products], task.target.product_info.parent_asin))
                report[name] = {
                    method: {
                        "calls": len(values),
                        "latency_ms_median": _ms(statistics.median(values)) if values else None,
                        "latency_ms_max": _ms(max(values)) if values else None,
                        "gold_call_r_acc": round(statistics.fmean(accuracy[method]), 4)
                        if accuracy[method] else None,
                    }
                    for method, values in latencies.items()
                }
    return report


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def main(data: str, out: str, tasks: int, browser: bool) -> int:
    report = run_bench(data, tasks, browser)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0
