"""Heterogeneous users: sub-populations from k-means on each user's mean MiniLM
embedding of their history (requests, titles and reviews); the single-turn results of
the main table, split per cluster."""

from __future__ import annotations

from typing import Any

import numpy as np

from evals.plots import method_bars
from evals.stats import summarize_method

CLUSTERS = 3


def history_texts(dataset: Any, user: str) -> list[str]:
    texts = []
    for item in dataset.histories.get(user, []):
        request = item.request.task if item.request is not None else ""
        texts.append(f"{request} {item.product_info.title}. {item.review.text}".strip())
    return texts or [user]


def cluster_users(dataset: Any, users: list[str], embedder: Any, k: int, seed: int = 0) -> dict:
    """user -> cluster index, from k-means on mean history embeddings."""
    from sklearn.cluster import KMeans

    means = np.stack([embedder.embed(history_texts(dataset, u)).mean(axis=0) for u in users])
    k = max(1, min(k, len(users)))
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(means)
    return {u: int(c) for u, c in zip(users, labels)}


def describe(dataset: Any, members: list[str]) -> str:
    """The categories most common in a cluster's histories, to say what it is."""
    counts: dict[str, int] = {}
    for user in members:
        for item in dataset.histories.get(user, []):
            category = item.product_info.main_category or "?"
            counts[category] = counts.get(category, 0) + 1
    return ", ".join(c for c, _ in sorted(counts.items(), key=lambda kv: -kv[1])[:3])


def run_clusters(ctx: Any) -> dict:
    single = {m: o for (track, m), o in ctx.outcomes.items() if track == "single"}
    if not single:
        return {"note": "no single-turn results to split (run with --track single or both)"}
    labels = cluster_users(ctx.dataset, ctx.users, ctx.agent.embedder, CLUSTERS, ctx.seed)
    summaries: dict[str, dict] = {}
    rows = []
    for cluster in sorted(set(labels.values())):
        members = [u for u, c in labels.items() if c == cluster]
        row: list[Any] = [cluster, len(members), describe(ctx.dataset, members)]
        for name, outcomes in single.items():
            mine = [o for o in outcomes if labels.get(o.user_id) == cluster]
            if mine:
                summaries[f"{name}@cluster{cluster}"] = summarize_method(mine)
                row.append(f"{summaries[f'{name}@cluster{cluster}']['overall']['function_acc']:.2f}"
                           f" / {summaries[f'{name}@cluster{cluster}']['overall']['result_acc']:.2f}")
            else:
                row.append(None)
        rows.append(row)
    plot = method_bars(summaries, "Per cluster (method@cluster)", ctx.out / "clusters.png")
    return {
        "note": f"k-means (k={CLUSTERS}) on mean MiniLM embeddings of each user's history; "
                "single-turn outcomes of the main table regrouped per cluster.",
        "clusters": {u: c for u, c in labels.items()},
        "methods": summaries,
        "tables": [{"title": "F. / R. Acc per cluster",
                    "columns": ["cluster", "users", "top categories", *single], "rows": rows}],
        "plot": plot.name,
    }
