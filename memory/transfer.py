"""Export and import one user's dictionary as a single safetensors file.

Tensors: `key_embeddings` (n, 384) and `{i}/{site.layer}` (hidden_size,) per entry i.
Metadata (strings): format, model_id, hidden_size, embedding_model_id, user_id,
`keys` (JSON list of vector keys) and `entries` (JSON list of per-entry provenance).
An import is checked in full (model, hidden size, shapes, finiteness) before anything
is stored, so a bad file stores nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from memory.embedding import EMBEDDING_DIM
from memory.entry import MemoryEntry, MemoryInputError, validate_entry
from memory.store import AddReport, MemoryStore

EXPORT_FORMAT = "fints-memory-export/1"
PROVENANCE = ("entry_id", "key", "tool", "args_digest", "timestamp", "source", "superseded_by")


def export_user(store: MemoryStore, user_id: str, path: str | Path) -> int:
    """Write a user's entries to `path`; returns how many."""
    from safetensors.numpy import save_file

    entries = store.entries(user_id)
    if not entries:
        raise MemoryInputError(f"user {user_id!r} has no entries in {store.location}")
    tensors = {"key_embeddings": np.stack([e.key_embedding for e in entries])}
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
    save_file(tensors, str(path), metadata=metadata)
    return len(entries)


def _read(path: str | Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            return handle.metadata() or {}, {name: handle.get_tensor(name) for name in handle.keys()}
    except Exception as error:  # safetensors raises its own error types
        raise MemoryInputError(f"{path} is not a readable safetensors export: {error}") from None


def export_header(path: str | Path) -> dict:
    """The export's metadata (model id, hidden size...), e.g. to create a store for it."""
    return _read(path)[0]


def read_export(path: str | Path, store: MemoryStore) -> list[MemoryEntry]:
    """Load and fully validate an export against the store's model; raise on any flaw."""
    metadata, tensors = _read(path)
    if metadata.get("format") != EXPORT_FORMAT:
        raise MemoryInputError(f"{path} is not a fints memory export ({EXPORT_FORMAT})")
    for name, expected in (
        ("model_id", store.model_id),
        ("hidden_size", str(store.hidden_size)),
        ("embedding_model_id", store.info.embedding_model_id),
    ):
        if metadata.get(name) != expected:
            raise MemoryInputError(
                f"{path} was exported with {name}={metadata.get(name)!r}; this store "
                f"holds {name}={expected!r}: its vectors do not fit"
            )
    user_id = metadata.get("user_id", "")
    rows = json.loads(metadata.get("entries", "[]"))
    embeddings = tensors.get("key_embeddings")
    if embeddings is None or embeddings.shape[0] != len(rows):
        raise MemoryInputError(f"{path}: key_embeddings missing or not one row per entry")
    entries = []
    for i, row in enumerate(rows):
        missing = [k for k in row["vector_keys"] if f"{i}/{k}" not in tensors]
        if missing:
            raise MemoryInputError(f"{path}: entry {i} lacks vectors {missing}")
        entry = MemoryEntry(
            user_id=user_id,
            vectors={k: tensors[f"{i}/{k}"] for k in row["vector_keys"]},
            key_embedding=embeddings[i],
            **{name: row[name] for name in PROVENANCE},
        )
        entries.append(validate_entry(entry, store.hidden_size, EMBEDDING_DIM))
    return entries


def import_user(store: MemoryStore, path: str | Path) -> AddReport:
    """Validate an export, then store it (provenance kept, ids already present skipped)."""
    return store.add(read_export(path, store), hygiene=False)
