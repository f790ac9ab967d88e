"""Importing real-format PersonalWAB files (small fixtures written here, in the real shape)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import main
from tools.data import DataError, load_dataset
from tools.data.importer import import_pwab

PROFILE = {
    "Gender": "Female", "Age": "35-44", "Occupation": "Writer", "Price Sensitivity": "Medium",
    "Shopping Interest": "Clothing, Kitchenware", "Brand Preference": "Skechers, Colgate",
    "Diversity Preference": "Medium", "Interaction Complexity": "Low",
    "Tone and Style": "Friendly", "Item Reference": "Brands in reviews",
    "Focus Aspect": "Quality, Price",
}


def product(asin: str, price: object = 19.99) -> dict:
    return {
        "main_category": "All Beauty", "title": f"Thing {asin}", "average_rating": 4.3,
        "rating_number": 120, "features": ["soft"], "description": ["A thing."],
        "price": price, "images": [], "videos": [], "store": "Acme",
        "categories": [], "details": {"Brand": "Acme"}, "parent_asin": asin,
        "bought_together": None,
    }


def review(ts: int, text: str = "Nice.") -> dict:
    return {"rating": 5.0, "title": "Good", "text": text, "timestamp": ts}


def write(root: Path, name: str, data: object) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(json.dumps(data))


@pytest.fixture
def full(tmp_path: Path) -> Path:
    src = tmp_path / "pwab"
    write(src, "user_profiles.json", {"U1": {"user_profile": PROFILE},
                                      "U2": {"user_profile": PROFILE}})
    write(src, "all_products.json", {a: product(a, "None" if a == "B0000000P3" else 9.5)
                                     for a in ("B0000000P1", "B0000000P2", "B0000000P3")})
    # Real histories are not guaranteed to be in order; the importer sorts them.
    write(src, "user_history.json", {"U1": [
        {"product_info": product("B0000000P2"), "review": review(2000)},
        {"product_info": product("B0000000P1"), "review": review(1000)},
    ]})
    tasks = {
        "train": [{"user_id": "U1", "task": "find me a thing", "type": "search",
                   "timestamp": 3000,
                   "target": {"product_info": product("B0000000P3"), "review": review(3000)}}],
        "test": [
            {"user_id": "U1", "task": "something like my usual", "type": "recommend",
             "timestamp": 4000,
             "target": {"product_info": product("B0000000P4"), "review": review(4000)}},
            {"user_id": "U2", "task": "share my thoughts", "type": "review",
             "timestamp": 5000,
             "target": {"product_info": product("B0000000P1"),
                        "review": review(5000, "Loved it.")}},
        ],
    }
    write(src, "user_instructions.json", tasks)
    return src


def test_full_import_round_trips_through_the_loader(full: Path, tmp_path: Path) -> None:
    out, counts = import_pwab(full, tmp_path / "out")
    assert counts == {"products": 4, "users": 2, "interactions": 2, "train_tasks": 1,
                      "test_tasks": 2}
    ds = load_dataset(out)
    assert ds.manifest.source == "pwab-import" and ds.manifest.seed is None
    assert ds.manifest.held_out_users == ["U2"]
    assert ds.products["B0000000P3"].price is None  # "None" string -> null
    assert ds.products["B0000000P1"].model_extra["images"] == []  # extra keys kept
    assert [h.review.timestamp for h in ds.histories["U1"]] == [1000, 2000]
    assert all(h.request is None for h in ds.histories["U1"])  # real data has no requests
    written = json.loads((out / "user_history.json").read_text())
    assert all("request" not in h for h in written["U1"])
    search, recommend, rev = ds.tasks
    assert search.task_id == "train-00000" and search.gold_call is None
    assert recommend.gold_call.arguments == {"product_sequence": ["B0000000P1", "B0000000P2"]}
    assert rev.gold_call.name == "add_product_review"
    assert rev.gold_call.arguments == {"review": "Loved it."}
    assert ds.hidden == {}


def test_profiles_alone_give_users_without_history(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, "user_profiles.json", {"U9": {"user_profile": PROFILE}})
    out, counts = import_pwab(src, tmp_path / "out")
    ds = load_dataset(out)
    assert counts["users"] == 1 and ds.histories == {} and ds.tasks == []
    assert ds.profiles["U9"].brand_preference == "Skechers, Colgate"


def test_errors_name_file_record_and_field(full: Path, tmp_path: Path) -> None:
    bad = dict(PROFILE)
    del bad["Age"]
    write(full, "user_profiles.json", {"U1": {"user_profile": PROFILE},
                                       "U2": {"user_profile": bad}})
    with pytest.raises(DataError, match=r"user_profiles.json: record U2: "
                                        r"field 'user_profile.Age': Field required"):
        import_pwab(full, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_bad_product_price_and_orphan_history(full: Path, tmp_path: Path) -> None:
    write(full, "all_products.json", {"B0000000P1": product("B0000000P1", "about ten")})
    with pytest.raises(DataError, match=r"all_products.json: record B0000000P1: field 'price'"):
        import_pwab(full, tmp_path / "out")
    (full / "all_products.json").unlink()
    history = json.loads((full / "user_history.json").read_text())
    history["GHOST"] = history["U1"]
    write(full, "user_history.json", history)
    with pytest.raises(DataError, match="user_history.json: record GHOST: user has no profile"):
        import_pwab(full, tmp_path / "out")


def test_missing_profiles_file_is_explained(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="user_profiles.json is required"):
        import_pwab(tmp_path / "empty", tmp_path / "out")


def test_cli_import_reports_errors_and_counts(full: Path, tmp_path: Path, capsys) -> None:
    assert main(["shop", "import-pwab", str(full), "--out", str(tmp_path / "o")]) == 0
    assert "users 2" in capsys.readouterr().out
    assert main(["shop", "import-pwab", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 1
    assert "not a directory" in capsys.readouterr().err


def test_bulk_memory_build_learns_the_calls_the_importer_stored(full: Path, tmp_path: Path) -> None:
    """One derivation of gold calls: a purchase at the task's own time is not "before"
    it for either, and a search without a recorded query learns from the title."""
    from agent.interactions import gold_call
    from tools.data.records import Task, derived_gold_call

    history = json.loads((full / "user_history.json").read_text())
    history["U1"].append({"product_info": product("B0000000P3"), "review": review(4000)})
    write(full, "user_history.json", history)
    out, _ = import_pwab(full, tmp_path / "out")
    ds = load_dataset(out)
    search, recommend, rev = ds.tasks
    assert recommend.gold_call.arguments == {"product_sequence": ["B0000000P1", "B0000000P2"]}
    for task in (recommend, rev):
        assert gold_call(task, ds.histories) == (task.gold_call.name, task.gold_call.arguments)
    unrecorded = Task.model_validate({**recommend.model_dump(), "gold_call": None})
    assert gold_call(unrecorded, ds.histories) == (recommend.gold_call.name, recommend.gold_call.arguments)
    assert derived_gold_call(search, ds.histories["U1"]) is None
    assert gold_call(search, ds.histories) == ("search_product_by_query", {"query": "Thing B0000000P3"})


def test_an_imported_history_gives_recommendations_its_purchases(full: Path, tmp_path: Path) -> None:
    """Real histories carry no requests; their purchases still reach a recommendation
    (oldest first), only the asking user's."""
    from agent.prompt_memory import PromptMemory
    from common.embedding import load_embedder

    out, _ = import_pwab(full, tmp_path / "out")
    memory = PromptMemory.from_dataset(load_dataset(out), load_embedder())
    assert memory.count("U1") == 0  # no past call: no requests, and the search task records none
    assert memory.purchases("U1", "recommend me another thing") == ["B0000000P1", "B0000000P2"]
    assert memory.purchases("U2", "recommend me another thing") == []
