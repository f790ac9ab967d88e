"""The steering memory: every user's dictionary of steering vectors, in Chroma.

Layout (one "generation" g of two collections; a rebuild after `forget` writes g+1):
- `fints_keys_g{g}`: one record per entry. Embedding = the request's MiniLM embedding
  (cosine space), document = the request text, metadata = user_id, tool, args_digest,
  timestamp, source, model_id, vector_keys, superseded_by. The collection's metadata
  records the steering model id, its hidden size and the embedding model id; opening
  with another model is a `ModelMismatchError`, never a silent mix.
- `fints_vectors_g{g}`: one record per (entry, "site.layer"), id `{entry_id}/{key}`,
  embedding = the steering vector itself (float32, exact), metadata = user_id, entry_id.

Whole entries only: vectors are written first and the key record last, so a process
killed mid-write leaves at worst orphan vectors (removed on the next writable open) and
never a key whose vectors are missing; retrieval still skips such a key if one appears.
Chroma never embeds anything here: every record is given its embedding explicitly and
collections are opened with `embedding_function=None`.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.embedding import EMBEDDING_DIM, EMBEDDING_MODEL_ID
from memory.agreement import Agreement, leave_one_out
from memory.entry import MemoryEntry, MemoryInputError, validate_entry
from memory.keycache import KeyCache, UserKeys
from memory.keys import PLAIN, IntentKeys
from memory.hygiene import DUPLICATE_COSINE, KeyRecord, choose_evictions, find_supersessions
from memory.location import StoreLocation, connect, resolve_location
from memory.retrieval import SECONDS_PER_DAY, Retrieval, abstain
from steering.weights import attentive_weights

log = logging.getLogger(__name__)

FORMAT = "fints-memory/1"
KEYS_PREFIX = "fints_keys_g"
VECTORS_PREFIX = "fints_vectors_g"
LOCK_NAME = "writer.lock"
BATCH = 1000
# The vectors collection is only ever fetched by id, never searched by similarity, so
# its (unavoidable) HNSW index is built as cheaply as Chroma allows: 3x faster writes.
VECTORS_HNSW = {"space": "l2", "ef_construction": 8, "max_neighbors": 4, "ef_search": 8}
# In server mode another client may be between "vectors written" and "key written";
# only vectors orphaned for longer than this are treated as left over from a crash.
ORPHAN_GRACE_S = 600.0
# A Chroma server may answer a read with an InternalError while another client's first
# write to a collection is still being flushed ("Error creating hnsw segment reader:
# Nothing found on disk"). Reads are idempotent, so they are tried again after a pause.
READ_RETRIES = (0.05, 0.2, 0.5, 1.0, 2.0)


class StoreError(RuntimeError):
    """The store cannot be used as asked (missing, busy, inconsistent)."""


class ModelMismatchError(StoreError):
    """The store was built for another steering model, hidden size or embedder."""


class StoreBusyError(StoreError):
    """Another process holds the embedded store's writer lock."""


@dataclass
class AddReport:
    added: int = 0
    skipped: int = 0
    superseded: int = 0
    evicted: int = 0


@dataclass
class StoreInfo:
    location: str
    mode: str
    model_id: str
    hidden_size: int
    embedding_model_id: str
    generation: int


@dataclass
class UserStats:
    entries: int = 0
    superseded: int = 0
    sources: dict[str, int] = field(default_factory=dict)


def _reopens_if_rebuilt(method):
    """Another client may have rebuilt the store (forget/expire) and dropped the
    collections this one holds: then reopen the current generation and try once more."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        from chromadb.errors import NotFoundError

        try:
            return method(self, *args, **kwargs)
        except NotFoundError:
            self._open_collections(self.model_id, self.hidden_size)
            self._key_cache.clear()
            return method(self, *args, **kwargs)

    return run


def _get(collection, **query) -> dict:
    """`collection.get`, tried again when the server reports a transient internal error."""
    from chromadb.errors import InternalError

    for pause in READ_RETRIES:
        try:
            return collection.get(**query)
        except InternalError as error:
            log.warning("memory: read failed (%s); retrying in %.2f s", error, pause)
            time.sleep(pause)
    return collection.get(**query)


def _chunks(items: list, size: int = BATCH) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _vector_ids(entry_id: str, vector_keys: Iterable[str]) -> list[str]:
    return [f"{entry_id}/{key}" for key in vector_keys]


class MemoryStore:
    """Per-user steering dictionaries in Chroma (embedded directory or server URL).

    `MemoryStore(store, model_id, hidden_size, embedder)`; `store` is a directory, a
    `http://host:port` URL or None ($FINTS_MEMORY_DIR, then the user data dir).
    `model_id`/`hidden_size` may be None to open an existing store for whatever model it
    holds (stats, audit, forget). An embedded writable store holds a file lock: one
    writer process at a time; several processes write through `chroma run` instead.
    """

    def __init__(
        self,
        store: str | Path | StoreLocation | None = None,
        model_id: str | None = None,
        hidden_size: int | None = None,
        embedder=None,
        *,
        keys: IntentKeys | None = None,
        read_only: bool = False,
        cap_per_user: int = 5000,
        duplicate_cosine: float = DUPLICATE_COSINE,
        snapshot_ttl_s: float = 1.0,
    ) -> None:
        self.location = store if isinstance(store, StoreLocation) else resolve_location(store)
        self.read_only = read_only
        self.cap_per_user = cap_per_user
        self.duplicate_cosine = duplicate_cosine
        self._embedder = embedder
        self.keys = keys if keys is not None else IntentKeys()
        self._check_keys = keys is not None  # admin commands open a store for whatever keys it has
        self._key_cache = KeyCache(ttl_s=snapshot_ttl_s)
        # (user, k, threshold, temperature) -> (the snapshot it was computed on, result)
        self._agreements: dict[tuple, tuple[UserKeys, Agreement]] = {}
        self._lock = None
        self._client = None
        try:
            self._prepare_local()
            self._client = connect(self.location)
            self._open_collections(model_id, hidden_size)
            if not read_only:
                self.repair()
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------- opening
    def _prepare_local(self) -> None:
        path = self.location.path
        if path is None:
            return
        if self.read_only:
            if not (path / "chroma.sqlite3").exists():
                raise StoreError(f"no memory store at {path}: build one with `fints memory build`")
            return
        from filelock import FileLock, Timeout

        path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path / LOCK_NAME))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise StoreBusyError(
                f"another process is writing to the memory store {path}; an embedded store "
                f"has one writer at a time. For several writers, serve it with "
                f"`chroma run --host 127.0.0.1 --port 8000 --path {path}` and pass "
                f"--store http://127.0.0.1:8000"
            ) from None
        self._lock = lock

    def _generations(self) -> dict[int, dict]:
        """Generation number -> metadata of its keys collection."""
        found = {}
        for collection in self._client.list_collections():
            if collection.name.startswith(KEYS_PREFIX):
                suffix = collection.name[len(KEYS_PREFIX) :]
                if suffix.isdigit():
                    found[int(suffix)] = dict(collection.metadata or {})
        return found

    def _open_collections(self, model_id: str | None, hidden_size: int | None) -> None:
        embedding_model_id = getattr(self._embedder, "model_id", EMBEDDING_MODEL_ID)
        generations = self._generations()
        complete = [g for g, meta in generations.items() if meta.get("complete")]
        if complete:
            self.generation = max(complete)
            meta = generations[self.generation]
            self._check_models(meta, model_id, hidden_size, embedding_model_id)
            built_with = meta.get("key_format", PLAIN)
            if self._check_keys and built_with != self.keys.name:
                raise ModelMismatchError(
                    f"the memory store {self.location} was built with keys {built_with!r}, not "
                    f"{self.keys.name!r} (another catalog, or keys from before intent keys): "
                    "rebuild it with `fints memory build`, or use --store DIR for a new one")
            self._set_info(meta["model_id"], meta["hidden_size"], meta["embedding_model_id"])
            self._keys = self._collection(KEYS_PREFIX, self.generation)
            self._vectors = self._collection(VECTORS_PREFIX, self.generation)
        else:
            if self.read_only:
                raise StoreError(f"the memory store {self.location} holds no dictionary yet")
            if model_id is None or hidden_size is None:
                raise StoreError(
                    f"the memory store {self.location} is new: give the steering model id "
                    "and hidden size to create it"
                )
            self.generation = max(generations, default=-1) + 1
            self._set_info(model_id, hidden_size, embedding_model_id)
            self._keys, self._vectors = self._create_generation(self.generation, complete=True)
        if not self.read_only:
            self._drop_generations(keep=self.generation, older_only=self.location.is_server)

    def _set_info(self, model_id: str, hidden_size: int, embedding_model_id: str) -> None:
        mode = "server" if self.location.is_server else "embedded"
        self.info = StoreInfo(str(self.location), mode, model_id, int(hidden_size),
                              embedding_model_id, self.generation)

    def _check_models(
        self, meta: dict, model_id: str | None, hidden_size: int | None, embedding_model_id: str
    ) -> None:
        if meta.get("format") != FORMAT:
            raise StoreError(f"{self.location} is not a fints memory store ({FORMAT})")
        wanted = {
            "model_id": model_id,
            "hidden_size": hidden_size,
            "embedding_model_id": embedding_model_id,
        }
        for name, value in wanted.items():
            if value is not None and meta.get(name) != value:
                raise ModelMismatchError(
                    f"the memory store {self.location} was built with {name}="
                    f"{meta.get(name)!r}, not {value!r}: its vectors do not fit this model. "
                    "Use the store built for this model, or build a new one with --store DIR"
                )

    def _collection(self, prefix: str, generation: int):
        return self._client.get_collection(f"{prefix}{generation}", embedding_function=None)

    def _create_generation(self, generation: int, complete: bool):
        vectors = self._client.get_or_create_collection(
            f"{VECTORS_PREFIX}{generation}",
            embedding_function=None,
            configuration={"hnsw": VECTORS_HNSW},
            metadata={"format": FORMAT, "role": "vectors"},
        )
        keys = self._client.get_or_create_collection(
            f"{KEYS_PREFIX}{generation}",
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
            metadata=self._keys_metadata(complete),
        )
        return keys, vectors

    def _keys_metadata(self, complete: bool) -> dict:
        return {
            "format": FORMAT,
            "role": "keys",
            "model_id": self.info.model_id,
            "hidden_size": self.info.hidden_size,
            "embedding_model_id": self.info.embedding_model_id,
            "key_format": self.keys.name,
            "complete": complete,
        }

    def _drop_generations(self, keep: int, older_only: bool) -> None:
        """Delete other generations (a finished or abandoned rebuild's leftovers)."""
        for name in [c.name for c in self._client.list_collections()]:
            for prefix in (KEYS_PREFIX, VECTORS_PREFIX):
                suffix = name[len(prefix) :] if name.startswith(prefix) else ""
                if suffix.isdigit() and int(suffix) != keep:
                    if not older_only or int(suffix) < keep:
                        self._client.delete_collection(name)

    def close(self) -> None:
        """Release the writer lock (the Chroma client needs no closing)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def model_id(self) -> str:
        return self.info.model_id

    @property
    def hidden_size(self) -> int:
        return self.info.hidden_size

    @property
    def embedder(self):
        if self._embedder is None:
            from common.embedding import load_embedder

            self._embedder = load_embedder()
        return self._embedder

    # ----------------------------------------------------------------- writing
    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreError(f"the memory store {self.location} was opened read-only")

    @_reopens_if_rebuilt
    def add(self, entries: Iterable[MemoryEntry], *, hygiene: bool = True) -> AddReport:
        """Add whole entries; ids already present are skipped (idempotent, resumable).

        Every entry is validated before anything is written. With `hygiene`, near-
        duplicates supersede older entries and the per-user cap evicts the excess.
        """
        self._check_writable()
        checked: dict[str, MemoryEntry] = {}
        for entry in entries:
            checked.setdefault(
                entry.entry_id, validate_entry(entry, self.hidden_size, EMBEDDING_DIM)
            )
        items = list(checked.values())
        missing = [e for e in items if e.key_embedding is None]
        if missing:
            embedded = self.embedder.embed([self.keys.text(e.key) for e in missing])
            filled = {e.entry_id: e.with_embedding(v) for e, v in zip(missing, embedded)}
            items = [filled.get(e.entry_id, e) for e in items]
        present = self.existing_ids([e.entry_id for e in items])
        new = [e for e in items if e.entry_id not in present]
        report = AddReport(skipped=len(items) - len(new))
        if not new:
            return report
        supersede: dict[str, str] = {}
        users = sorted({e.user_id for e in new})
        if hygiene:
            for user in users:
                mine = [e for e in new if e.user_id == user]
                records = self._user_records(user) + [self._record(e) for e in mine]
                supersede.update(
                    find_supersessions(records, {e.entry_id for e in mine}, self.duplicate_cosine)
                )
        for user in users:
            self._key_cache.drop(user)
        self._write_vectors(new)
        self._write_keys(new, supersede)
        old = [eid for eid in supersede if eid not in checked]
        for chunk in _chunks(old):
            self._keys.update(ids=chunk, metadatas=[{"superseded_by": supersede[i]} for i in chunk])
        report.added = len(new)
        report.superseded = len(supersede)
        for user in users:
            self._key_cache.drop(user)
            evict = choose_evictions(self._user_records(user), self.cap_per_user)
            report.evicted += self.delete_entries(evict)
        return report

    def _record(self, entry: MemoryEntry) -> KeyRecord:
        return KeyRecord(
            entry.entry_id, entry.key_embedding, entry.tool, entry.timestamp, entry.superseded_by
        )

    @_reopens_if_rebuilt
    def existing_ids(self, ids: list[str]) -> set[str]:
        """Which of these entry ids the store already holds."""
        found: set[str] = set()
        for chunk in _chunks(ids):
            found.update(_get(self._keys, ids=chunk, include=[])["ids"])
        return found

    def _write_vectors(self, entries: list[MemoryEntry]) -> None:
        ids, vectors, metas = [], [], []
        now = time.time()
        for e in entries:
            for key, vector in sorted(e.vectors.items()):
                ids.append(f"{e.entry_id}/{key}")
                vectors.append(vector)
                metas.append({"user_id": e.user_id, "entry_id": e.entry_id, "written": now})
        for start in range(0, len(ids), BATCH):
            stop = start + BATCH
            self._vectors.upsert(
                ids=ids[start:stop], embeddings=np.stack(vectors[start:stop]),
                metadatas=metas[start:stop],
            )

    def _write_keys(self, entries: list[MemoryEntry], supersede: dict[str, str]) -> None:
        for chunk in _chunks(entries):
            self._keys.upsert(
                ids=[e.entry_id for e in chunk],
                embeddings=np.stack([e.key_embedding for e in chunk]),
                documents=[e.key for e in chunk],
                metadatas=[
                    {
                        "user_id": e.user_id,
                        "tool": e.tool,
                        "args_digest": e.args_digest,
                        "timestamp": float(e.timestamp),
                        "source": e.source,
                        "negative": e.negative,
                        "model_id": self.model_id,
                        "vector_keys": ",".join(sorted(e.vectors)),
                        "superseded_by": supersede.get(e.entry_id, e.superseded_by),
                        "added_at": time.time(),
                    }
                    for e in chunk
                ],
            )

    @_reopens_if_rebuilt
    def delete_entries(self, entry_ids: list[str]) -> int:
        """Delete entries: key records first, then their vectors (no key without vectors)."""
        self._check_writable()
        if not entry_ids:
            return 0
        deleted = 0
        self._key_cache.clear()
        for chunk in _chunks(list(entry_ids)):
            got = _get(self._keys, ids=chunk, include=["metadatas"])
            self._keys.delete(ids=chunk)
            deleted += len(got["ids"])
            self._vectors.delete(where={"entry_id": {"$in": chunk}})
        return deleted

    @_reopens_if_rebuilt
    def delete_user_vectors(self, user_id: str) -> int:
        """Delete every vector record of a user (after their keys are gone)."""
        self._check_writable()
        ids = self._all(self._vectors, [], where={"user_id": user_id})["ids"]
        self._key_cache.drop(user_id)
        for chunk in _chunks(ids):
            self._vectors.delete(ids=chunk)
        return len(ids)

    @_reopens_if_rebuilt
    def count_vectors(self, user_id: str) -> int:
        return len(self._all(self._vectors, [], where={"user_id": user_id})["ids"])

    def repair(self) -> dict[str, int]:
        """Remove what a killed writer may have left: orphan vectors, keys lacking vectors."""
        self._check_writable()
        keys = self._all(self._keys, ["metadatas"])
        vectors = self._all(self._vectors, ["metadatas"])
        vector_ids = set(vectors["ids"])
        broken = [
            eid
            for eid, meta in zip(keys["ids"], keys["metadatas"])
            if not set(_vector_ids(eid, meta["vector_keys"].split(","))) <= vector_ids
        ]
        live = set(keys["ids"]) - set(broken)
        grace = ORPHAN_GRACE_S if self.location.is_server else 0.0
        now = time.time()
        orphans = [
            vid
            for vid, meta in zip(vectors["ids"], vectors["metadatas"])
            if meta["entry_id"] not in live and now - float(meta.get("written", 0)) >= grace
        ]
        if broken:
            log.warning("memory: removing %d entries whose vectors are missing", len(broken))
            self.delete_entries(broken)
        for chunk in _chunks(orphans):
            self._vectors.delete(ids=chunk)
        return {"broken_keys": len(broken), "orphan_vectors": len(orphans)}

    @staticmethod
    def _all(collection, include: list[str], where: dict | None = None) -> dict:
        """Every record of a collection (paged, so large stores do not hit batch limits)."""
        merged: dict[str, list] = {"ids": [], **{name: [] for name in include}}
        offset = 0
        while True:
            page = _get(collection, where=where, include=include, limit=BATCH, offset=offset)
            merged["ids"].extend(page["ids"])
            for name in include:
                values = page[name]
                merged[name].extend(list(values) if values is not None else [])
            if len(page["ids"]) < BATCH:
                return merged
            offset += BATCH

    def _user_keys(self, user_id: str) -> UserKeys:
        """A current snapshot of one user's key records (see memory.keycache)."""
        return self._key_cache.get(
            user_id,
            lambda: self._all(self._keys, [], where={"user_id": user_id})["ids"],
            lambda: self._load_user_keys(user_id),
        )

    def _load_user_keys(self, user_id: str) -> UserKeys:
        got = self._all(
            self._keys, ["embeddings", "metadatas", "documents"], where={"user_id": user_id}
        )
        matrix = np.asarray(got["embeddings"], np.float32).reshape(-1, EMBEDDING_DIM)
        return UserKeys(tuple(got["ids"]), matrix, tuple(got["metadatas"]),
                        tuple(got["documents"]))

    def _user_records(self, user_id: str) -> list[KeyRecord]:
        snap = self._load_user_keys(user_id)  # writes decide on fresh data, not a snapshot
        return [
            KeyRecord(eid, emb, meta["tool"], meta["timestamp"], meta["superseded_by"])
            for eid, emb, meta in zip(snap.ids, snap.matrix, snap.metas)
        ]

    # ----------------------------------------------------------------- reading
    @_reopens_if_rebuilt
    def retrieve(
        self,
        user_id: str | None,
        request: str | None = None,
        *,
        query_embedding: np.ndarray | None = None,
        k: int = 4,
        threshold: float = 0.5,
        temperature: float = 0.1,
        half_life_days: float | None = None,
        now: float | None = None,
    ) -> Retrieval:
        """Top-k of ONE user's live entries by key similarity, or an abstention.

        Fails closed: no user id, an unknown user, an empty request or nothing with
        similarity >= threshold gives `abstained=True` and no vectors, never another
        user's entries.
        """
        if not isinstance(user_id, str) or not user_id.strip():
            return abstain("", "no user id: steering is off without a known user")
        if query_embedding is None:
            if not request or not request.strip():
                return abstain(user_id, "empty request: nothing to match")
            query_embedding = self.embedder.embed([self.keys.text(request)])[0]
        query = np.asarray(query_embedding, np.float32).reshape(-1)
        if query.shape != (EMBEDDING_DIM,) or not np.all(np.isfinite(query)):
            raise MemoryInputError(f"query embedding must be {EMBEDDING_DIM} finite numbers")
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        snap = self._user_keys(user_id)
        live = snap.live(user_id)
        if not live:
            return abstain(user_id, f"no memory for user {user_id!r}")
        scores = self.keys.scores(request or "", query, [snap.docs[i] for i in live], snap.matrix[live])
        order = np.argsort(-scores, kind="stable")[:k]
        rows = [(snap.ids[live[i]], snap.matrix[live[i]], snap.metas[live[i]], snap.docs[live[i]])
                for i in order]
        sims = scores[order]
        keep = sims >= threshold
        if not keep.any():
            return abstain(
                user_id,
                f"nearest entry has similarity {sims.max():.3f} < threshold {threshold}",
            )
        rows = [row + (float(sim),) for row, sim, ok in zip(rows, sims, keep) if ok]
        return self._assemble(user_id, rows, temperature, half_life_days, now)

    @_reopens_if_rebuilt
    def agreement(self, user_id: str, *, k: int, threshold: float, temperature: float) -> Agreement:
        """Leave-one-out agreement of the user's live entries under these retrieval
        settings (`memory.agreement`); computed again only when the user's entries
        changed."""
        snap = self._user_keys(user_id)
        setting = (user_id, k, threshold, temperature)
        cached = self._agreements.get(setting)
        if cached is not None and cached[0] is snap:
            return cached[1]
        live = snap.live(user_id)
        result = leave_one_out(self.keys, [snap.docs[i] for i in live], snap.matrix[live],
                               [snap.metas[i]["tool"] for i in live], k=k, threshold=threshold,
                               temperature=temperature)
        if len(self._agreements) > 1024:
            self._agreements.clear()
        self._agreements[setting] = (snap, result)
        return result

    def _assemble(self, user_id, rows, temperature, half_life_days, now) -> Retrieval:
        wanted = [vid for eid, _, meta, _, _ in rows
                  for vid in _vector_ids(eid, meta["vector_keys"].split(","))]
        got = _get(self._vectors, ids=wanted, include=["embeddings", "metadatas"])
        by_id = {
            vid: np.asarray(emb, np.float32)
            for vid, emb, meta in zip(got["ids"], got["embeddings"], got["metadatas"])
            if meta.get("user_id") == user_id
        }
        whole = []
        for eid, _emb, meta, doc, sim in rows:
            keys = meta["vector_keys"].split(",")
            if all(f"{eid}/{key}" in by_id for key in keys):
                whole.append((eid, sim, meta, doc, keys))
            else:
                log.warning("memory: entry %s lacks vectors; skipped", eid)
        if not whole:
            return abstain(user_id, "matching entries are incomplete (vectors missing)")
        common = sorted(set.intersection(*(set(keys) for *_, keys in whole)))
        sims = np.array([sim for _, sim, _, _, _ in whole], np.float32)
        ages = (now if now is not None else time.time()) - np.array(
            [meta["timestamp"] for _, _, meta, _, _ in whole], np.float64
        )
        half_life = half_life_days * SECONDS_PER_DAY if half_life_days else None
        return Retrieval(
            user_id=user_id,
            abstained=False,
            entry_ids=[eid for eid, *_ in whole],
            similarities=sims,
            weights=attentive_weights(sims, temperature, ages, half_life),
            vectors={key: np.stack([by_id[f"{eid}/{key}"] for eid, *_ in whole]) for key in common},
            keys=[doc for _, _, _, doc, _ in whole],
            tools=[meta["tool"] for _, _, meta, _, _ in whole],
        )

    @_reopens_if_rebuilt
    def count(self, user_id: str | None = None) -> int:
        """Entries in the store, or of one user."""
        if user_id is None:
            return self._keys.count()
        return len(self._all(self._keys, [], where={"user_id": user_id})["ids"])

    def users(self) -> list[str]:
        return sorted(self.stats())

    @_reopens_if_rebuilt
    def stats(self) -> dict[str, UserStats]:
        """Entries, superseded entries and sources per user."""
        result: dict[str, UserStats] = {}
        for meta in self._all(self._keys, ["metadatas"])["metadatas"]:
            stats = result.setdefault(meta["user_id"], UserStats())
            stats.entries += 1
            stats.superseded += bool(meta["superseded_by"])
            stats.sources[meta["source"]] = stats.sources.get(meta["source"], 0) + 1
        return result

    @_reopens_if_rebuilt
    def negatives(self) -> dict[str, int]:
        """Entries per negative policy they were made with (entries from before policies
        were recorded count for none): one scan, whatever the number of users."""
        counts: dict[str, int] = {}
        for meta in self._all(self._keys, ["metadatas"])["metadatas"]:
            if meta.get("negative"):
                counts[meta["negative"]] = counts.get(meta["negative"], 0) + 1
        return counts

    @_reopens_if_rebuilt
    def audit(self, user_id: str) -> list[dict]:
        """A user's entries with provenance, oldest first (no vectors)."""
        got = self._all(self._keys, ["metadatas", "documents"], where={"user_id": user_id})
        rows = [
            {"entry_id": eid, "key": doc, **meta}
            for eid, meta, doc in zip(got["ids"], got["metadatas"], got["documents"])
        ]
        return sorted(rows, key=lambda r: (r["timestamp"], r["entry_id"]))

    @_reopens_if_rebuilt
    def entries(self, user_id: str) -> list[MemoryEntry]:
        """A user's full entries (key embedding and vectors included), oldest first."""
        got = self._all(
            self._keys, ["metadatas", "documents", "embeddings"], where={"user_id": user_id}
        )
        vectors = self._all(self._vectors, ["embeddings"], where={"user_id": user_id})
        by_id = dict(zip(vectors["ids"], vectors["embeddings"]))
        result = []
        for eid, meta, doc, emb in zip(
            got["ids"], got["metadatas"], got["documents"], got["embeddings"]
        ):
            keys = meta["vector_keys"].split(",")
            if not all(f"{eid}/{k}" in by_id for k in keys):
                continue
            result.append(
                MemoryEntry(
                    user_id=meta["user_id"], key=doc,
                    vectors={k: np.asarray(by_id[f"{eid}/{k}"], np.float32) for k in keys},
                    tool=meta["tool"], args_digest=meta["args_digest"],
                    timestamp=meta["timestamp"], source=meta["source"], entry_id=eid,
                    negative=meta.get("negative", ""),
                    key_embedding=np.asarray(emb, np.float32),
                    superseded_by=meta["superseded_by"],
                )
            )
        return sorted(result, key=lambda e: (e.timestamp, e.entry_id))

    # ------------------------------------------------------------- maintenance
    def rebuild(self) -> None:
        """Copy every record into a fresh generation and drop the old one.

        Deleting records in Chroma leaves their bytes in the HNSW files and the write-
        ahead log; a rebuilt generation holds only what is live. Crash-safe: the new
        keys collection is marked complete only after everything is copied.
        """
        self._check_writable()
        target = max(self._generations(), default=self.generation) + 1
        keys, vectors = self._create_generation(target, complete=False)
        for source, dest, include in (
            (self._vectors, vectors, ["embeddings", "metadatas"]),
            (self._keys, keys, ["embeddings", "metadatas", "documents"]),
        ):
            got = self._all(source, include)
            for start in range(0, len(got["ids"]), BATCH):
                page = {name: got[name][start : start + BATCH] for name in ["ids", *include]}
                if page["ids"]:
                    page["embeddings"] = np.stack(page["embeddings"])
                    dest.add(**page)
        keys.modify(metadata=self._keys_metadata(complete=True))
        old = self.generation
        self._keys, self._vectors, self.generation = keys, vectors, target
        self._key_cache.clear()
        self.info.generation = target
        for prefix in (KEYS_PREFIX, VECTORS_PREFIX):
            self._client.delete_collection(f"{prefix}{old}")
