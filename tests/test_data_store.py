"""Loading and validation: bad records are rejected with file, record and field named."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tools.data import DataError, generate_dataset, load_dataset
from tools.data.store import HISTORY, INSTRUCTIONS, MANIFEST, PRODUCTS, PROFILES


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("src"), users=6, seed=1)


@pytest.fixture
def copy(source: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(source, tmp_path / "copy"))


def edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_loads_typed_records(source: Path) -> None:
    ds = load_dataset(source)
    assert ds.manifest.source == "generated" and ds.manifest.seed == 1
    uid = ds.user_ids()[0]
    assert ds.profiles[uid].price_sensitivity in {"Low", "Medium", "High"}
    assert ds.histories[uid][0].product_info.parent_asin in ds.products
    assert len(ds.tasks) == len(ds.train) + len(ds.test)
    assert set(ds.hidden) == set(ds.profiles)


def test_bad_product_field_is_named(copy: Path) -> None:
    asin = sorted(json.loads((copy / PRODUCTS).read_text()))[3]
    edit(copy / PRODUCTS, lambda d: d[asin].update(price="cheap"))
    with pytest.raises(DataError) as err:
        load_dataset(copy)
    assert f"{PRODUCTS}: record {asin}: field 'price'" in str(err.value)


def test_missing_profile_key_is_named(copy: Path) -> None:
    def drop(d: dict) -> None:
        uid = sorted(d)[0]
        del d[uid]["user_profile"]["Tone and Style"]
    edit(copy / PROFILES, drop)
    with pytest.raises(DataError, match=r"user_profiles.json: record A\w+: "
                                        r"field 'user_profile.Tone and Style': Field required"):
        load_dataset(copy)


def test_bad_task_type_and_history_order_are_named(copy: Path) -> None:
    edit(copy / INSTRUCTIONS, lambda d: d["train"][2].update(type="buy"))
    with pytest.raises(DataError, match=r"user_instructions.json: record train\[2\]: "
                                        r"field 'type'"):
        load_dataset(copy)

    edit(copy / INSTRUCTIONS, lambda d: d["train"][2].update(type="search"))

    def swap(d: dict) -> None:
        uid = sorted(d)[0]
        d[uid][0], d[uid][1] = d[uid][1], d[uid][0]
    edit(copy / HISTORY, swap)
    with pytest.raises(DataError, match=r"user_history.json: record A\w+\[1\]: "
                                        r"field 'review.timestamp': history is not in time order"):
        load_dataset(copy)


def test_bad_history_request_is_named(copy: Path) -> None:
    def bad(d: dict) -> None:
        uid = sorted(d)[0]
        d[uid][1]["request"]["type"] = "buy"
        del d[uid][1]["request"]["gold_call"]
    edit(copy / HISTORY, bad)
    with pytest.raises(DataError) as err:
        load_dataset(copy)
    message = str(err.value)
    assert re.search(r"user_history.json: record A\w+\[1\]: field 'request.type'", message)
    assert "field 'request.gold_call': Field required" in message

    edit(copy / HISTORY, lambda d: [h.pop("request") for hs in d.values() for h in hs])
    assert all(h.request is None for hs in load_dataset(copy).histories.values() for h in hs)


def test_unknown_user_and_missing_file_are_reported(copy: Path) -> None:
    edit(copy / INSTRUCTIONS, lambda d: d["test"][0].update(user_id="NOBODY"))
    with pytest.raises(DataError, match="field 'user_id': 'NOBODY' has no profile"):
        load_dataset(copy)
    (copy / MANIFEST).unlink()
    with pytest.raises(DataError, match="missing manifest.json"):
        load_dataset(copy)


def test_broken_json_names_file_and_line(copy: Path) -> None:
    (copy / PROFILES).write_text('{\n "A": \n')
    with pytest.raises(DataError, match=r"user_profiles.json: not valid JSON at line \d"):
        load_dataset(copy)
