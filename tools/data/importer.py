"""Import real PersonalWAB files into our data set layout.

Any subset may be present beside the required `user_profiles.json`: products
(`products.json`, or `all_products.json` as PersonalWAB's scripts call it),
`user_history.json` and `user_instructions.json`. Everything is validated before
anything is written, so a bad record leaves no half-imported set behind.
"""

from __future__ import annotations

from pathlib import Path

from tools.data.records import Task, derived_gold_call
from tools.data.store import (
    DATA_VERSION,
    HISTORY,
    INSTRUCTIONS,
    PRODUCTS,
    PROFILES,
    DataError,
    expect_mapping,
    parse_histories,
    parse_products,
    parse_profiles,
    parse_tasks,
    read_json,
    write_dataset_files,
)

PRODUCT_FILES = (PRODUCTS, "all_products.json")
MISSING_PRICES = {"", "none", "null", "nan", "n/a"}


def import_pwab(source: str | Path, out: str | Path) -> tuple[Path, dict[str, int]]:
    """Validate PersonalWAB files in `source`, write our layout to `out`; return it and counts."""
    source = Path(source)
    if not source.is_dir():
        raise DataError(f"{source}: not a directory")
    if not (source / PROFILES).is_file():
        raise DataError(f"{source}: {PROFILES} is required (other PersonalWAB files are "
                        f"optional: {', '.join(PRODUCT_FILES)}, {HISTORY}, {INSTRUCTIONS})")
    profiles = parse_profiles(read_json(source / PROFILES))

    products = {}
    product_file = next((n for n in PRODUCT_FILES if (source / n).is_file()), None)
    if product_file:
        raw = expect_mapping(read_json(source / product_file), product_file,
                             "products keyed by parent_asin")
        products = parse_products({a: _clean_product(p) for a, p in raw.items()}, product_file)

    histories = {}
    if (source / HISTORY).is_file():
        raw = expect_mapping(read_json(source / HISTORY), HISTORY, "histories keyed by user id")
        histories = parse_histories({uid: _time_ordered(uid, items) for uid, items in raw.items()})

    train: list[Task] = []
    test: list[Task] = []
    if (source / INSTRUCTIONS).is_file():
        raw = expect_mapping(read_json(source / INSTRUCTIONS), INSTRUCTIONS, "splits")
        train, test = parse_tasks({
            split: [_with_task_id(t, split, i) for i, t in enumerate(items)]
            if isinstance(items, list) else items
            for split, items in raw.items()
        })

    for uid in histories:
        if uid not in profiles:
            raise DataError(f"{HISTORY}: record {uid}: user has no profile in {PROFILES}")
    for task in [*train, *test]:
        if task.user_id not in profiles:
            raise DataError(f"{INSTRUCTIONS}: record {task.task_id}: field 'user_id': "
                            f"'{task.user_id}' has no profile in {PROFILES}")
        if task.gold_call is None:
            task.gold_call = derived_gold_call(task, histories.get(task.user_id, []))

    # Products met in histories and targets belong to the catalog even without a file.
    for item in [*(h for hs in histories.values() for h in hs), *(t.target for t in train),
                 *(t.target for t in test)]:
        products.setdefault(item.product_info.parent_asin, item.product_info)

    trained = {t.user_id for t in train}
    counts = {
        "products": len(products),
        "users": len(profiles),
        "interactions": sum(len(h) for h in histories.values()),
        "train_tasks": len(train),
        "test_tasks": len(test),
    }
    manifest = {
        "version": DATA_VERSION,
        "source": "pwab-import",
        "seed": None,
        "counts": counts,
        "held_out_users": sorted({t.user_id for t in test} - trained),
    }
    out_path = write_dataset_files(
        Path(out),
        products={a: p.model_dump(mode="json") for a, p in products.items()},
        profiles={uid: {"user_profile": p.model_dump(mode="json", by_alias=True)}
                  for uid, p in profiles.items()},
        histories={uid: [h.model_dump(mode="json", exclude=_ABSENT_REQUEST if h.request is None
                                      else None) for h in hs]
                   for uid, hs in histories.items()},
        instructions={"train": [t.model_dump(mode="json") for t in train],
                      "test": [t.model_dump(mode="json") for t in test]},
        manifest=manifest,
    )
    return out_path, counts


_ABSENT_REQUEST = {"request"}  # real histories have no requests: leave the key out


def _clean_product(value: object) -> object:
    """Real PersonalWAB prices are sometimes strings such as "None" or "12.99"."""
    if isinstance(value, dict) and isinstance(value.get("price"), str):
        price = value["price"].strip().lstrip("$")
        if price.lower() in MISSING_PRICES:
            return {**value, "price": None}
        try:
            return {**value, "price": float(price.replace(",", ""))}
        except ValueError:
            return value  # validation reports it with file, record and field
    return value


def _time_ordered(uid: str, items: object) -> object:
    if not isinstance(items, list):
        return items
    try:
        return sorted(items, key=lambda h: h["review"]["timestamp"])
    except (KeyError, TypeError):
        return items  # validation names the broken interaction


def _with_task_id(task: object, split: str, index: int) -> object:
    if isinstance(task, dict) and "task_id" not in task:
        return {"task_id": f"{split}-{index:05d}", **task}
    return task
