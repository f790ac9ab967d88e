"""The generator: determinism, catalog invariants, users, histories, tasks and splits."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tools.data import TASK_TYPES, TOOL_FOR_TYPE, generate_dataset, load_dataset
from tools.data.store import HIDDEN, INSTRUCTIONS, MANIFEST, PRODUCTS

USERS = 30


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("gen"), users=USERS, seed=7)


@pytest.fixture(scope="module")
def ds(data_dir: Path):
    return load_dataset(data_dir)


def test_same_seed_gives_byte_identical_files(data_dir: Path, tmp_path: Path) -> None:
    again = generate_dataset(tmp_path / "again", users=USERS, seed=7)
    names = sorted(p.name for p in data_dir.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    assert HIDDEN in names and MANIFEST in names
    for name in names:
        assert (data_dir / name).read_bytes() == (again / name).read_bytes(), name


def test_output_does_not_depend_on_the_process(tmp_path: Path) -> None:
    """Set iteration order changes with PYTHONHASHSEED; the files must not."""
    code = "import sys; from tools.data import generate_dataset; " \
        "generate_dataset(sys.argv[1], users=4, seed=11)"
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", code, str(tmp_path / hash_seed)], check=True,
                       env=env, cwd=Path(__file__).parents[1])
    for name in (INSTRUCTIONS, PRODUCTS, HIDDEN):
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes()


def test_other_seed_gives_other_data(data_dir: Path, tmp_path: Path) -> None:
    other = generate_dataset(tmp_path / "other", users=USERS, seed=8)
    assert (other / INSTRUCTIONS).read_bytes() != (data_dir / INSTRUCTIONS).read_bytes()
    assert (other / PRODUCTS).read_bytes() != (data_dir / PRODUCTS).read_bytes()


def test_catalog_invariants(ds) -> None:
    products = ds.products
    assert len(products) >= 3000
    asin = re.compile(r"^B0[A-Z0-9]{8}$")
    assert all(asin.match(a) for a in products)
    by_cat: dict[str, list] = {}
    for p in products.values():
        by_cat.setdefault(p.main_category, []).append(p)
    assert len(by_cat) >= 15
    for cat, items in by_cat.items():
        assert len({p.store for p in items}) >= 20, cat
        prices = sorted(p.price for p in items)
        assert prices[-1] > 3 * prices[0], f"{cat}: prices lack spread"
        assert all(1 <= p.average_rating <= 5 and p.rating_number >= 0 for p in items)
    # Varied text: many distinct title shapes and description sentences, not one template.
    shapes = Counter(re.sub(r"[A-Za-z0-9']+", "w", p.title) for p in products.values())
    assert len(shapes) >= 20
    openings = {d.split()[0] for p in products.values() for d in p.description}
    assert len(openings) >= 6
    assert all(len(p.features) >= 3 and p.description and p.details for p in products.values())


def test_users_have_profiles_histories_and_hidden_preferences(ds) -> None:
    assert len(ds.profiles) == USERS
    assert set(ds.histories) == set(ds.profiles) == set(ds.hidden)
    for uid, history in ds.histories.items():
        prefs = ds.hidden[uid]
        assert (len(history) <= 6) if prefs.sparse else (10 <= len(history) <= 60)
        stamps = [h.review.timestamp for h in history]
        assert stamps == sorted(stamps)
        profile = ds.profiles[uid]
        assert profile.shopping_interest == ", ".join(prefs.categories)


def test_tasks_follow_history_and_cover_types(ds) -> None:
    per_user = Counter(t.user_id for t in ds.tasks)
    assert all(per_user[u] >= 8 for u in ds.profiles)
    for task in ds.tasks:
        last = ds.histories[task.user_id][-1].review.timestamp
        assert task.timestamp > last
        assert task.gold_call.name == TOOL_FOR_TYPE[task.type]
    shares = Counter(t.type for t in ds.tasks)
    total = sum(shares.values())
    assert 0.33 <= shares["search"] / total <= 0.5
    assert all(0.2 <= shares[t] / total <= 0.4 for t in ("recommend", "review"))


def test_gold_calls_carry_personal_arguments(ds) -> None:
    for task in ds.tasks:
        args = task.gold_call.arguments
        target = task.target.product_info
        if task.type == "search":
            assert target.store in args["query"]
        elif task.type == "recommend":
            seq = args["product_sequence"]
            history = [h.product_info.parent_asin for h in ds.histories[task.user_id]]
            assert 1 <= len(seq) <= 30 and set(seq) <= set(history)
        else:
            assert args["review"] == task.target.review.text


def test_history_interactions_are_past_requests(ds) -> None:
    """Every past purchase carries the request behind it, with a gold call as for tasks,
    and each mode's first purchases show every habit: held-out users need them."""
    shares: Counter = Counter()
    for uid, history in ds.histories.items():
        prefs = ds.hidden[uid]
        per_mode: dict[int, list[str]] = {}
        for i, item in enumerate(history):
            request = item.request
            shares[request.type] += 1
            mode = prefs.modes.index(prefs.mode_for(item.product_info.main_category))
            per_mode.setdefault(mode, []).append(request.type)
            assert request.gold_call.name == TOOL_FOR_TYPE[request.type]
            assert prefs.greeting in request.task and request.task.endswith(prefs.signoff)
            args = request.gold_call.arguments
            if request.type == "search":
                assert item.product_info.store in args["query"]
            elif request.type == "recommend":
                before = [h.product_info.parent_asin for h in history[:i]]
                assert 1 <= len(args["product_sequence"]) <= 30
                assert set(args["product_sequence"]) <= set(before)
            else:
                assert args["review"] == item.review.text
        for types in per_mode.values():
            assert set(types[:3]) == set(TASK_TYPES) or len(types) < 3
    total = sum(shares.values())
    assert 0.33 <= shares["search"] / total <= 0.5
    assert all(0.2 <= shares[t] / total <= 0.4 for t in ("recommend", "review"))


def test_splits_hold_out_users_and_keep_time_order(ds) -> None:
    held = set(ds.manifest.held_out_users)
    assert len(held) == round(USERS * 0.2)
    assert not any(t.user_id in held for t in ds.train)
    assert {t.user_id for t in ds.test} >= held
    last_train = {}
    for t in ds.train:
        last_train[t.user_id] = max(last_train.get(t.user_id, 0), t.timestamp)
    for t in ds.test:
        assert t.timestamp > last_train.get(t.user_id, 0)
    for uid in set(ds.profiles) - held:  # train shows each habit (type per mode) once
        types = {t.type for t in ds.train if t.user_id == uid}
        assert types == set(TASK_TYPES)
    assert ds.manifest.counts["train_tasks"] == len(ds.train)
    assert ds.manifest.counts["test_tasks"] == len(ds.test)


def test_wording_alone_does_not_give_the_tool(ds) -> None:
    """Across users, one phrasing family stands for different tools."""
    by_family: dict[int, set[str]] = {}
    for prefs in ds.hidden.values():
        for mode in prefs.modes:
            for task_type, family in mode.asking.items():
                by_family.setdefault(family, set()).add(task_type)
    assert sum(len(types) > 1 for types in by_family.values()) >= len(by_family) // 2


def test_rejects_bad_user_count(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        generate_dataset(tmp_path, users=0)
