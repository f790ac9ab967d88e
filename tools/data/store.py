"""Reading and writing a data set directory, with validation that names what is wrong.

Layout (PersonalWAB's file names plus our manifest and hidden sidecar):
products.json, user_profiles.json, user_history.json, user_instructions.json,
manifest.json, and, for generated sets only, hidden_preferences.json.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from tools.data.records import (
    HiddenPreferences,
    Interaction,
    Manifest,
    Product,
    ProfileRecord,
    Task,
    UserProfile,
)

DATA_VERSION = "1"
PRODUCTS = "products.json"
PROFILES = "user_profiles.json"
HISTORY = "user_history.json"
INSTRUCTIONS = "user_instructions.json"
MANIFEST = "manifest.json"
HIDDEN = "hidden_preferences.json"

M = TypeVar("M", bound=BaseModel)


class DataError(ValueError):
    """A data file is missing or a record in it is invalid; the message says where."""


@dataclass
class Dataset:
    """A loaded, validated data set. `hidden` is empty for imported sets."""

    root: Path
    manifest: Manifest
    products: dict[str, Product]
    profiles: dict[str, UserProfile]
    histories: dict[str, list[Interaction]]
    train: list[Task]
    test: list[Task]
    hidden: dict[str, HiddenPreferences] = field(default_factory=dict)

    @property
    def tasks(self) -> list[Task]:
        return [*self.train, *self.test]

    def user_ids(self) -> list[str]:
        return sorted(self.profiles)


def read_json(path: Path) -> object:
    """Parse one JSON file; a syntax error, a file that is not UTF-8 or nesting deeper
    than Python's recursion limit becomes a DataError naming the file."""
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path.name}: not valid JSON at line {exc.lineno}: {exc.msg}") from exc
    except RecursionError:
        raise DataError(f"{path.name}: JSON nested too deeply to be a data file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path.name}: not UTF-8 text (byte {exc.start}: {exc.reason}); JSON files must be UTF-8") from exc


def validate(model: type[M], value: object, file: str, record: str) -> M:
    """Validate one record; errors name the file, the record and each bad field."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in err['loc']) or '(record)'}': {err['msg']}"
            for err in exc.errors()
        )
        raise DataError(f"{file}: record {record}: {problems}") from None


def expect_mapping(value: object, file: str, what: str) -> dict:
    if not isinstance(value, dict):
        raise DataError(f"{file}: expected a JSON object of {what}, got {type(value).__name__}")
    return value


def parse_products(raw: object, file: str = PRODUCTS) -> dict[str, Product]:
    products = {}
    for asin, value in expect_mapping(raw, file, "products keyed by parent_asin").items():
        product = validate(Product, value, file, asin)
        if product.parent_asin != asin:
            raise DataError(f"{file}: record {asin}: field 'parent_asin': "
                            f"'{product.parent_asin}' differs from its key")
        products[asin] = product
    return products


def parse_profiles(raw: object, file: str = PROFILES) -> dict[str, UserProfile]:
    return {
        uid: validate(ProfileRecord, value, file, uid).user_profile
        for uid, value in expect_mapping(raw, file, "profiles keyed by user id").items()
    }


def parse_histories(raw: object, file: str = HISTORY) -> dict[str, list[Interaction]]:
    histories = {}
    for uid, items in expect_mapping(raw, file, "histories keyed by user id").items():
        if not isinstance(items, list):
            raise DataError(f"{file}: record {uid}: expected a list of interactions")
        history = [validate(Interaction, item, file, f"{uid}[{i}]")
                   for i, item in enumerate(items)]
        for i in range(1, len(history)):
            if history[i].review.timestamp < history[i - 1].review.timestamp:
                raise DataError(f"{file}: record {uid}[{i}]: field 'review.timestamp': "
                                "history is not in time order")
        histories[uid] = history
    return histories


def parse_tasks(raw: object, file: str = INSTRUCTIONS) -> tuple[list[Task], list[Task]]:
    splits = expect_mapping(raw, file, "splits ('train', 'test')")
    unknown = sorted(set(splits) - {"train", "test"})
    if unknown:
        raise DataError(f"{file}: unknown split(s) {unknown}; allowed: 'train', 'test'")
    out: dict[str, list[Task]] = {}
    for split in ("train", "test"):
        items = splits.get(split, [])
        if not isinstance(items, list):
            raise DataError(f"{file}: split '{split}' must be a list of tasks")
        out[split] = [validate(Task, item, file, f"{split}[{i}]") for i, item in enumerate(items)]
    return out["train"], out["test"]


def load_dataset(root: str | Path) -> Dataset:
    """Load and validate a data set directory written by the generator or the importer."""
    root = Path(root)
    missing = [n for n in (PRODUCTS, PROFILES, HISTORY, INSTRUCTIONS, MANIFEST)
               if not (root / n).is_file()]
    if missing:
        raise DataError(f"{root}: missing {', '.join(missing)}; a data set directory needs "
                        f"{PRODUCTS}, {PROFILES}, {HISTORY}, {INSTRUCTIONS} and {MANIFEST}")
    manifest = validate(Manifest, read_json(root / MANIFEST), MANIFEST, "manifest")
    products = parse_products(read_json(root / PRODUCTS))
    profiles = parse_profiles(read_json(root / PROFILES))
    histories = parse_histories(read_json(root / HISTORY))
    train, test = parse_tasks(read_json(root / INSTRUCTIONS))
    _check_users(profiles, histories, [*train, *test])
    hidden = {}
    if (root / HIDDEN).is_file():
        hidden = {uid: validate(HiddenPreferences, value, HIDDEN, uid)
                  for uid, value in expect_mapping(read_json(root / HIDDEN), HIDDEN,
                                                   "preferences keyed by user id").items()}
    return Dataset(root, manifest, products, profiles, histories, train, test, hidden)


def _check_users(profiles: dict, histories: dict, tasks: list[Task]) -> None:
    """Histories and tasks may only refer to users that have a profile."""
    for uid in histories:
        if uid not in profiles:
            raise DataError(f"{HISTORY}: record {uid}: user has no profile in {PROFILES}")
    for task in tasks:
        if task.user_id not in profiles:
            raise DataError(f"{INSTRUCTIONS}: record {task.task_id}: field 'user_id': "
                            f"'{task.user_id}' has no profile in {PROFILES}")


def dumps(value: object) -> str:
    """The canonical JSON text of a data file (sorted keys, so output is reproducible)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, indent=1) + "\n"


def write_dataset_files(
    root: Path,
    *,
    products: dict,
    profiles: dict,
    histories: dict,
    instructions: dict,
    manifest: dict,
    hidden: dict | None = None,
) -> Path:
    """Write all files of a data set; each file appears whole or not at all."""
    root.mkdir(parents=True, exist_ok=True)
    files = {PRODUCTS: products, PROFILES: profiles, HISTORY: histories,
             INSTRUCTIONS: instructions, MANIFEST: manifest}
    if hidden is not None:
        files[HIDDEN] = hidden
    elif (root / HIDDEN).exists():
        (root / HIDDEN).unlink()  # a stale sidecar would describe other users
    for name, value in files.items():
        fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(dumps(value))
            os.chmod(tmp, 0o644)
            os.replace(tmp, root / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return root
