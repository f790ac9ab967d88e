"""Export and import one user's dictionary as a single safetensors file.

Tensors: `key_embeddings` (n, 384) and `{i}/{site.layer}` (hidden_size,) per entry i.
Metadata (strings): format, model_id, hidden_size, embedding_model_id, user_id,
`keys` (JSON list of vector keys) and `entries` (JSON list of per-entry provenance, the
negative policy included; exports made before it was recorded import with none).
An import is checked before anything is stored, so a bad file stores nothing: first the
metadata and the tensor table (format, user id, per-entry provenance, names, shapes and
dtypes) without reading a tensor, then the model, then every vector's values. The
entries are imported for the user named on the command line, who must be the file's
user, or deliberately rewritten to another (`--as`, recorded in the store's audit log).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.embedding import EMBEDDING_DIM
from memory.entry import MemoryEntry, MemoryInputError, check_vector_key, make_entry_id, validate_entry
from memory.learner import NEGATIVE_POLICIES
from memory.store import AddReport, MemoryStore
from common.users import USER_ID  # user ids as `fints serve` and the keys take them

EXPORT_FORMAT = "fints-memory-export/1"
PROVENANCE = ("entry_id", "key", "tool", "args_digest", "timestamp", "source", "superseded_by", "negative")
OPTIONAL = {"negative": ""}  # fields older exports lack, with the value they import as
ENTRY_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
MAX_HIDDEN = 65_536
FLOATS = ("F32", "F64")


def export_user(store: MemoryStore, user_id: str, path: str | Path) -> int:
    """Write a user's entries to `path` (whole or not at all); returns how many."""
    from safetensors.numpy import save_file

    path = Path(path)
    if not path.parent.is_dir():
        raise MemoryInputError(f"cannot write {path}: the directory {path.parent} does not exist")
    if path.is_dir():
        raise MemoryInputError(f"cannot write {path}: it is a directory; give a file name")
    entries = store.entries(user_id)
    if not entries:
        raise MemoryInputError(f"user {user_id!r} has no entries in {store.location}")
    tensors = {"key_embeddings": np.stack([e.key_embedding for e in entries]).astype(np.float32)}
    rows = []
    for i, entry in enumerate(entries):
        rows.append({name: getattr(entry, name) for name in PROVENANCE}
                    | {"vector_keys": sorted(entry.vectors)})
        for key, vector in entry.vectors.items():
            tensors[f"{i}/{key}"] = np.ascontiguousarray(vector, dtype=np.float32)
    metadata = {
        "format": EXPORT_FORMAT,
        "model_id": store.model_id,
        "hidden_size": str(store.hidden_size),
        "embedding_model_id": store.info.embedding_model_id,
        "user_id": user_id,
        "keys": json.dumps(sorted({k for e in entries for k in e.vectors})),
        "entries": json.dumps(rows),
    }
    partial = path.with_name(f".{path.name}.partial")
    try:
        save_file(tensors, str(partial), metadata=metadata)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return len(entries)


@dataclass(frozen=True)
class ExportHeader:
    """What an export says about itself, checked before any tensor is read."""

    path: str
    model_id: str
    hidden_size: int
    embedding_model_id: str
    user_id: str
    rows: list[dict]


def read_header(path: str | Path) -> ExportHeader:
    """Parse and check an export's metadata and tensor table (names, shapes, dtypes)
    without reading a tensor; raise `MemoryInputError` naming the first flaw."""
    from safetensors import safe_open

    name = str(path)
    try:
        with safe_open(name, framework="numpy") as handle:
            metadata = handle.metadata() or {}
            table = {key: (handle.get_slice(key).get_dtype(), tuple(handle.get_slice(key).get_shape()))
                     for key in handle.keys()}
    except Exception as error:  # safetensors raises its own error types
        raise MemoryInputError(f"{name} is not a readable safetensors export: {_one_line(error)}") from None
    if metadata.get("format") != EXPORT_FORMAT:
        raise MemoryInputError(f"{name} is not a fints memory export ({EXPORT_FORMAT})")
    for field_name in ("model_id", "embedding_model_id"):
        if not isinstance(metadata.get(field_name), str) or not metadata[field_name]:
            raise MemoryInputError(f"{name}: metadata {field_name} is missing")
    hidden = metadata.get("hidden_size", "")
    if not hidden.isdigit() or not 0 < int(hidden) <= MAX_HIDDEN:
        raise MemoryInputError(f"{name}: metadata hidden_size {hidden[:20]!r} is not a whole number 1-{MAX_HIDDEN}")
    user_id = check_user_id(metadata.get("user_id", ""), f"{name}: metadata user_id")
    rows = _rows(name, metadata.get("entries", ""))
    expected = {"key_embeddings": (FLOATS, (len(rows), EMBEDDING_DIM))}
    for i, row in enumerate(rows):
        expected |= {f"{i}/{key}": (FLOATS, (int(hidden),)) for key in row["vector_keys"]}
    if set(table) != set(expected):
        extra, missing = sorted(set(table) - set(expected)), sorted(set(expected) - set(table))
        raise MemoryInputError(f"{name}: tensors do not match the entries (missing {missing[:3]}, "
                               f"unexpected {extra[:3]})")
    for key, (dtypes, shape) in expected.items():
        if table[key][0] not in dtypes or table[key][1] != shape:
            raise MemoryInputError(f"{name}: tensor {key} is {table[key][0]} {list(table[key][1])}, "
                                   f"expected {' or '.join(dtypes)} {list(shape)}")
    return ExportHeader(name, metadata["model_id"], int(hidden), metadata["embedding_model_id"], user_id, rows)


def _rows(name: str, text: str) -> list[dict]:
    """The per-entry provenance: a JSON list of objects with every field, typed."""
    try:
        rows = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise MemoryInputError(f"{name}: metadata entries is not valid JSON") from None
    if not isinstance(rows, list) or not rows:
        raise MemoryInputError(f"{name}: metadata entries must be a non-empty JSON list")
    ids = set()
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not {*PROVENANCE, "vector_keys"} - set(OPTIONAL) <= set(row) \
                or not set(row) <= {*PROVENANCE, "vector_keys"}:
            raise MemoryInputError(f"{name}: entry {i} must be an object with the fields "
                                   f"{', '.join((*PROVENANCE, 'vector_keys'))} ({', '.join(OPTIONAL)} "
                                   "may be missing)")
        for field_name, default in OPTIONAL.items():
            row.setdefault(field_name, default)
        texts = [row[k] for k in ("entry_id", "key", "tool", "args_digest", "source", "superseded_by", "negative")]
        if not all(isinstance(t, str) for t in texts) or not isinstance(row["timestamp"], (int, float)) \
                or isinstance(row["timestamp"], bool):
            raise MemoryInputError(f"{name}: entry {i}: text fields must be strings and timestamp a number")
        if not ENTRY_ID.match(row["entry_id"]) or row["entry_id"] in ids:
            raise MemoryInputError(f"{name}: entry {i}: entry_id {row['entry_id'][:40]!r} is not a unique id "
                                   "of 1-64 letters, digits, _ . : -")
        if row["negative"] not in ("", *NEGATIVE_POLICIES):
            raise MemoryInputError(f"{name}: entry {i}: negative policy {row['negative'][:40]!r} is not one of "
                                   f"{', '.join(NEGATIVE_POLICIES)} (or empty)")
        ids.add(row["entry_id"])
        keys = row["vector_keys"]
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            raise MemoryInputError(f"{name}: entry {i}: vector_keys must be a non-empty list of 'site.layer'")
        for key in keys:
            check_vector_key(key)
    return rows


def read_export(path: str | Path, store: MemoryStore, user_id: str | None = None,
                as_user: str | None = None) -> list[MemoryEntry]:
    """Load and fully validate an export for `user_id` (who must be the file's user) or
    rewritten to `as_user`; everything is checked before the store sees an entry."""
    header = read_header(path)
    target = check_import_user(header, user_id, as_user)
    for name, expected in (
        ("model_id", store.model_id),
        ("hidden_size", store.hidden_size),
        ("embedding_model_id", store.info.embedding_model_id),
    ):
        if getattr(header, name) != expected:
            raise MemoryInputError(
                f"{header.path} was exported with {name}={getattr(header, name)!r}; this store "
                f"holds {name}={expected!r}: its vectors do not fit"
            )
    from safetensors import safe_open

    entries = []
    with safe_open(header.path, framework="numpy") as handle:
        embeddings = handle.get_tensor("key_embeddings")
        for i, row in enumerate(header.rows):
            provenance = {name: row[name] for name in PROVENANCE}
            if target != header.user_id:  # its own ids: the original user's stay theirs
                provenance["entry_id"] = make_entry_id(target, row["entry_id"])
                provenance["superseded_by"] = ""
            entry = MemoryEntry(
                user_id=target,
                vectors={k: handle.get_tensor(f"{i}/{k}") for k in row["vector_keys"]},
                key_embedding=embeddings[i],
                **provenance,
            )
            entries.append(validate_entry(entry, store.hidden_size, EMBEDDING_DIM))
    return entries


def check_import_user(header: ExportHeader, user_id: str | None, as_user: str | None) -> str:
    """Whom the entries are stored for: `user_id`, only if it is the file's user, or
    `as_user` (a deliberate rewrite). Exactly one must be given."""
    if (user_id is None) == (as_user is None):
        raise MemoryInputError("say whom the entries are for: the file's user (--user) or a rewrite (--as)")
    if user_id is not None:
        check_user_id(user_id, "user")
        if user_id != header.user_id:
            raise MemoryInputError(f"{header.path} holds the entries of user {header.user_id!r}, not "
                                   f"{user_id!r}; pass --as {user_id} to import them as {user_id!r}")
        return user_id
    return check_user_id(as_user, "--as user")


def check_user_id(user_id: object, what: str) -> str:
    """User ids as the service takes them: 1-64 letters, digits, _ . - (no NUL, no newline)."""
    if not isinstance(user_id, str) or not USER_ID.match(user_id):
        shown = repr(user_id)[:40] if isinstance(user_id, str) else type(user_id).__name__
        raise MemoryInputError(f"{what} {shown} is not a user id: use 1-64 letters, digits, _ . -")
    return user_id


def import_user(store: MemoryStore, path: str | Path, user_id: str | None = None, *,
                as_user: str | None = None) -> AddReport:
    """Validate an export, then store it (provenance kept, ids already present skipped)."""
    return store.add(read_export(path, store, user_id, as_user), hygiene=False)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300]
