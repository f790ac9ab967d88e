"""Generate a PersonalWAB-format data set: catalog, users, histories, tasks, splits.

Deterministic: everything is drawn from one `random.Random(seed)` in a fixed order and
written with sorted keys, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from tqdm import tqdm

from tools.data import people
from tools.data.asking import instruction
from tools.data.catalog import Catalog, CatalogEntry, build_catalog
from tools.data.people import BAND_RANGES
from tools.data.records import HiddenPreferences
from tools.registry import MAX_SEQUENCE, TASK_TYPES, TOOL_FOR_TYPE
from tools.data.store import DATA_VERSION, write_dataset_files

DAY_MS = 86_400_000
EPOCH_2019_MS = 1_546_300_800_000
TYPE_WEIGHTS = (0.45, 0.275, 0.275)  # on top of one forced task per type: ~40/30/30 overall
HISTORY_TYPE_WEIGHTS = (0.42, 0.29, 0.29)  # histories are longer: fewer forced types to offset
HELD_OUT_FRACTION = 0.2
TRAIN_FRACTION = 0.6


def generate_dataset(
    out_dir: str | Path, users: int = 200, seed: int = 0, progress: bool = False
) -> Path:
    """Generate a data set of `users` users into `out_dir` and return that path."""
    if users < 1:
        raise ValueError(f"users must be at least 1, got {users}")
    rng = random.Random(seed)
    catalog = build_catalog(rng)
    user_ids: list[str] = []
    while len(user_ids) < users:
        uid = people.make_user_id(rng)
        if uid not in user_ids:
            user_ids.append(uid)
    held_out = set(rng.sample(user_ids, round(users * HELD_OUT_FRACTION)))
    # Requests behind history interactions come from their own stream, so adding them left
    # the rest of a seed's data set as it was.
    request_rng = random.Random(f"{seed}:history-requests")

    profiles, histories, hidden = {}, {}, {}
    train: list[dict] = []
    test: list[dict] = []
    for uid in tqdm(user_ids, desc="users", unit="user", disable=not progress):
        prefs, history, tasks = _user(rng, request_rng, uid, catalog)
        hidden[uid] = prefs.model_dump(mode="json")
        profiles[uid] = {"user_profile": people.profile(rng, prefs)}
        histories[uid] = history
        cut = 0 if uid in held_out else _train_count(prefs, len(tasks))
        train.extend(tasks[:cut])
        test.extend(tasks[cut:])

    manifest = {
        "version": DATA_VERSION,
        "source": "generated",
        "seed": seed,
        "counts": {
            "products": len(catalog.products),
            "categories": len(catalog.brands),
            "brands": sum(len(b) for b in catalog.brands.values()),
            "users": users,
            "interactions": sum(len(h) for h in histories.values()),
            "train_tasks": len(train),
            "test_tasks": len(test),
        },
        "held_out_users": sorted(held_out),
    }
    return write_dataset_files(
        Path(out_dir),
        products=catalog.products,
        profiles=profiles,
        histories=histories,
        instructions={"train": train, "test": test},
        manifest=manifest,
        hidden=hidden,
    )


def _train_count(prefs: HiddenPreferences, n_tasks: int) -> int:
    """Earlier tasks go to train: at least the forced ones that show each habit once."""
    return max(3 * len(prefs.modes), round(n_tasks * TRAIN_FRACTION))


def _user(
    rng: random.Random, request_rng: random.Random, uid: str, catalog: Catalog
) -> tuple[HiddenPreferences, list[dict], list[dict]]:
    sparse = rng.random() < 0.12
    n_history = rng.randint(2, 6) if sparse else rng.randint(10, 60)
    start = EPOCH_2019_MS + rng.randint(0, 700) * DAY_MS
    times = [start]
    for _ in range(n_history - 1):
        times.append(times[-1] + rng.randint(1, 30) * DAY_MS + rng.randint(0, DAY_MS))
    prefs = people.hidden_preferences(rng, uid, catalog, start, times[-1] - start, sparse)

    history: list[dict] = []
    bought: list[CatalogEntry] = []
    for ts in times:
        if rng.random() < 0.8:
            category = rng.choice(prefs.categories)
        else:
            category = rng.choice(sorted(catalog.brands))
        entry = _pick(rng, catalog, prefs, category, ts, {e.asin for e in bought}, strict=False)
        bought.append(entry)
        review = people.write_review(rng, prefs, entry, ts)
        history.append({"product_info": catalog.products[entry.asin], "review": review})
    _add_requests(request_rng, prefs, history, bought)

    tasks = []
    used = {e.asin for e in bought}  # each task is about a product not met before
    ts = times[-1]
    for k, (category, task_type) in enumerate(_task_plan(rng, prefs)):
        ts += rng.randint(1, 20) * DAY_MS + rng.randint(0, DAY_MS)
        task = _task(rng, catalog, prefs, f"{uid}-{k:02d}", category, task_type, ts, history,
                     used)
        used.add(task["target"]["product_info"]["parent_asin"])
        tasks.append(task)
    return prefs, history, tasks


def _task_plan(rng: random.Random, prefs: HiddenPreferences) -> list[tuple[str, str]]:
    """(category, type) per task in time order; the first ones show every habit once."""
    forced = [(rng.choice(mode.categories), t) for mode in prefs.modes for t in TASK_TYPES]
    rng.shuffle(forced)
    extra = 5 + rng.randint(0, 2) + (1 if len(prefs.modes) > 1 else 0)
    rest = [
        (rng.choice(prefs.categories), rng.choices(TASK_TYPES, weights=TYPE_WEIGHTS)[0])
        for _ in range(extra)
    ]
    return forced + rest


def _task(
    rng: random.Random,
    catalog: Catalog,
    prefs: HiddenPreferences,
    task_id: str,
    category: str,
    task_type: str,
    ts: int,
    history: list[dict],
    exclude: set[str],
) -> dict:
    entry = _pick(rng, catalog, prefs, category, ts, exclude, strict=task_type != "review")
    review = people.write_review(rng, prefs, entry, ts)
    return {
        "task_id": task_id,
        "user_id": prefs.user_id,
        "task": instruction(rng, prefs, task_type, entry),
        "type": task_type,
        "timestamp": ts,
        "target": {"product_info": catalog.products[entry.asin], "review": review},
        "gold_call": _gold_call(prefs, task_type, entry, review, history),
    }


def _gold_call(
    prefs: HiddenPreferences, task_type: str, entry: CatalogEntry, review: dict,
    history: list[dict],
) -> dict:
    """The call that serves a request about `entry`, given the history before it."""
    if task_type == "search":
        liked = [f for f in entry.feature_keys
                 if f in prefs.liked_features.get(entry.category, [])]
        words = [entry.brand, entry.subtype, *(liked or entry.feature_keys[:1])]
        arguments: dict = {"query": " ".join(words)}
    elif task_type == "recommend":
        categories = prefs.mode_for(entry.category).categories
        arguments = {"product_sequence": relevant_sequence(history, categories)}
    else:
        arguments = {"review": review["text"]}
    return {"name": TOOL_FOR_TYPE[task_type], "arguments": arguments}


def _add_requests(
    rng: random.Random, prefs: HiddenPreferences, history: list[dict],
    entries: list[CatalogEntry],
) -> None:
    """Give every past interaction the request behind it: a search that found the product,
    recommendations over the items before it, or the review written of it.

    Each interaction's mode first shows every type it can once (so a held-out user's
    history teaches all their habits), then types follow the task mix. The first
    interaction cannot come from recommendations: there was nothing to recommend from.
    """
    shown: dict[int, set[str]] = {}
    for i, (item, entry) in enumerate(zip(history, entries, strict=True)):
        mode = prefs.modes.index(prefs.mode_for(entry.category))
        allowed = [t for t in TASK_TYPES if i > 0 or t != "recommend"]
        unseen = [t for t in allowed if t not in shown.setdefault(mode, set())]
        if unseen:
            task_type = rng.choice(unseen)
        else:
            weights = [w for t, w in zip(TASK_TYPES, HISTORY_TYPE_WEIGHTS, strict=True)
                       if t in allowed]
            task_type = rng.choices(allowed, weights=weights)[0]
        shown[mode].add(task_type)
        item["request"] = {
            "task": instruction(rng, prefs, task_type, entry),
            "type": task_type,
            "gold_call": _gold_call(prefs, task_type, entry, item["review"], history[:i]),
        }


def relevant_sequence(history: list[dict], categories: list[str]) -> list[str]:
    """The last <=30 ASINs of the history in these categories (all history if under 3)."""
    inside = [h["product_info"]["parent_asin"] for h in history
              if h["product_info"]["main_category"] in categories]
    if len(inside) < 3:
        inside = [h["product_info"]["parent_asin"] for h in history]
    return inside[-MAX_SEQUENCE:]


def _pick(
    rng: random.Random,
    catalog: Catalog,
    prefs: HiddenPreferences,
    category: str,
    ts: int,
    exclude: set[str],
    strict: bool,
) -> CatalogEntry:
    """A product the user would choose now: favourite brand, price band, liked features.

    Strict picks (task targets) take a best-scoring product; loose picks (history) draw
    with weights, so histories are mostly but not only on-preference.
    """
    brands = set(prefs.brands_at(ts).get(category, []))
    low, high = BAND_RANGES[prefs.price_band_at(ts)]
    liked = set(prefs.liked_features.get(category, []))
    candidates = [catalog.entries[a] for a in catalog.by_category[category] if a not in exclude]

    def score(e: CatalogEntry) -> float:
        in_band = low <= e.price_quantile <= high
        return 3.0 * (e.brand in brands) + 2.0 * in_band + len(liked.intersection(e.feature_keys))

    scores = [score(e) for e in candidates]
    if strict:
        best = max(scores)
        return rng.choice([e for e, s in zip(candidates, scores, strict=True) if s == best])
    return rng.choices(candidates, weights=[math.exp(1.2 * s) for s in scores])[0]
