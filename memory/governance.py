"""Forgetting and expiry that hold on disk, not just in query results.

Chroma deletes a record logically: its bytes stay in the HNSW segment files, the
write-ahead log and free sqlite pages. So after deleting, we grep the store directory
for what was deleted (entry ids, request texts, raw vector bytes); if anything is
found, the store is rebuilt into a fresh generation (only live records copied), the
dropped collections' segment directories are removed and sqlite is VACUUMed; then we
grep again and report both scans.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from memory.entry import MemoryEntry, MemoryInputError
from memory.store import LOCK_NAME, MemoryStore

AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Forgetting compacts until the directory holds no residue, at most COMPACTIONS times;
# after each, a server gets FLUSH_CHECKS pauses to finish removing dropped segments.
COMPACTIONS = 4
FLUSH_CHECKS = 2
FLUSH_WAIT_S = 1.0
# Governance actions that entries cannot record themselves (an import rewritten to
# another user), one JSON object a line, in the store's directory.
AUDIT_LOG = "audit.jsonl"
UUID_DIR = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass
class ForgetReport:
    """What a forget/expire did and what the disk check found."""

    deleted: int
    remaining: int
    disk_checked: bool
    residue_before: list[str] = field(default_factory=list)
    residue_after: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.remaining == 0 and self.disk_checked and not self.residue_after


def log_action(directory: Path, **record: object) -> None:
    """Append one governance record (with its time) to the store's audit log."""
    line = json.dumps({"time": time.time(), **record}, sort_keys=True)
    with (directory / AUDIT_LOG).open("a", encoding="utf-8") as log:
        log.write(line + "\n")


def logged_actions(directory: Path | None, user_id: str) -> list[dict]:
    """The audit log's records that concern `user_id` (as the target or the origin)."""
    path = directory / AUDIT_LOG if directory is not None else None
    if path is None or not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in records if user_id in (r.get("user_id"), r.get("from_user"))]


def _drop_logged(directory: Path, user_id: str) -> int:
    """A user forgotten (or expired to nothing) loses their audit records too: the log
    would otherwise betray them."""
    path = directory / AUDIT_LOG
    if not path.is_file():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if user_id not in line]
    partial = path.with_name(AUDIT_LOG + ".partial")
    partial.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    partial.replace(path)
    return len(lines) - len(kept)


def parse_age(text: str) -> float:
    """'30d', '12h', '90m', '3600s', '2w' -> seconds."""
    match = AGE.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise MemoryInputError(
            f"age {text!r} is not a number with a unit s, m, h, d or w (e.g. 30d)"
        )
    return float(match.group(1)) * UNIT_S[match.group(2)]


def needles_for(entries: list[MemoryEntry], survivors_text: str,
                survivors_vectors: frozenset[bytes] = frozenset()) -> list[bytes]:
    """Byte strings that betray deleted entries: user and entry ids, request texts and
    vector bytes (each only where no survivor holds it: an import `--as` another user
    copies requests and vectors, and the original's copy stays)."""
    needles: list[bytes] = []
    for user in {e.user_id for e in entries}:
        if len(user) >= 4 and user not in survivors_text:  # short ids match by chance
            needles.append(user.encode())
    for entry in entries:
        needles.append(entry.entry_id.encode())
        if entry.key not in survivors_text:  # another user may have asked the same
            needles.append(entry.key.encode())
        for vector in entry.vectors.values():
            raw = _vector_prefix(vector)
            if any(raw) and raw not in survivors_vectors:
                needles.append(raw)
    return needles


def _vector_prefix(vector) -> bytes:
    return vector.astype("<f4").tobytes()[:32]


def scan_residue(directory: Path, needles: list[bytes]) -> list[str]:
    """Files under `directory` holding any needle (relative paths, sorted)."""
    hits = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != LOCK_NAME):
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # a journal the database removed meanwhile
            continue
        if any(needle in data for needle in needles):
            hits.append(str(path.relative_to(directory)))
    return hits


def compact(store: MemoryStore, directory: Path) -> list[str]:
    """Rebuild the live records, drop dead segment dirs, VACUUM sqlite; say what was done."""
    actions = [f"rebuilt collections into generation {_rebuild(store)}"]
    actions.extend(_drop_dead_files(directory))
    return actions


def _drop_dead_files(directory: Path) -> list[str]:
    """Remove segment directories no collection uses any more, then VACUUM sqlite."""
    database = directory / "chroma.sqlite3"
    with sqlite3.connect(database, timeout=30) as connection:
        live = {row[0] for row in connection.execute("SELECT id FROM segments")}
    removed = 0
    for child in directory.iterdir():
        if child.is_dir() and UUID_DIR.match(child.name) and child.name not in live:
            shutil.rmtree(child, ignore_errors=True)
            removed += 1
    connection = sqlite3.connect(database, timeout=30, isolation_level=None)
    try:
        connection.execute("VACUUM")
    finally:
        connection.close()
    return [f"removed {removed} segment directories of dropped collections",
            "VACUUMed chroma.sqlite3"]


def _rebuild(store: MemoryStore) -> int:
    store.rebuild()
    return store.generation


def _purge(
    store: MemoryStore,
    deleted: list[MemoryEntry],
    server_path: Path | None,
    user_id: str | None = None,
) -> ForgetReport:
    removed = store.delete_entries([e.entry_id for e in deleted])
    report = ForgetReport(deleted=removed, remaining=0, disk_checked=False)
    if user_id is not None:
        orphans = store.delete_user_vectors(user_id)  # a crashed writer's leftovers
        if orphans:
            report.actions.append(f"deleted {orphans} orphan vectors")
    directory = store.location.path or server_path
    if directory is None:
        report.actions.append(
            "server mode: the server's files cannot be read from here; pass the server's "
            "--path as --server-path to check them, or run `chroma vacuum` on it"
        )
        return report
    for gone in sorted({e.user_id for e in deleted} | ({user_id} if user_id else set())):
        if store.count(gone) == 0 and _drop_logged(directory, gone):  # a user with no entries left
            report.actions.append(f"removed {gone}'s records from {AUDIT_LOG}")
    users = store.users()
    survivors = " ".join([*users, *(row["key"] for user in users for row in store.audit(user))])
    kept_vectors = frozenset(_vector_prefix(v) for user in users for e in store.entries(user)
                             for v in e.vectors.values())
    needles = needles_for(deleted, survivors, kept_vectors)
    report.disk_checked = True
    report.residue_before = scan_residue(directory, needles)
    if report.residue_before:
        report.residue_after = report.residue_before
        # A Chroma server writes a new HNSW file's unused capacity from its own heap,
        # which may still hold the deleted records' bytes (seen here in ~1 of 6 server
        # compactions): such a file is rewritten by compacting into a fresh generation.
        for _ in range(COMPACTIONS):
            report.actions.extend(compact(store, directory))
            report.residue_after = _settled_residue(directory, needles, report.actions)
            if not report.residue_after:
                break
    return report


def _settled_residue(directory: Path, needles: list[bytes], actions: list[str]) -> list[str]:
    """Residue once a server has finished flushing the segments it just dropped."""
    residue = scan_residue(directory, needles)
    for _ in range(FLUSH_CHECKS):
        if not residue:
            break
        time.sleep(FLUSH_WAIT_S)
        actions.extend(_drop_dead_files(directory))
        residue = scan_residue(directory, needles)
    return residue


def forget_user(
    store: MemoryStore, user_id: str, server_path: Path | None = None
) -> ForgetReport:
    """Remove every entry and vector of one user, verify none is left, in Chroma or on disk."""
    if not user_id or not user_id.strip():
        raise MemoryInputError("user id is empty: say whose memory to forget")
    report = _purge(store, store.entries(user_id), server_path, user_id)
    report.remaining = store.count(user_id) + store.count_vectors(user_id)
    return report


def expire(
    store: MemoryStore, max_age_s: float, now: float | None = None,
    server_path: Path | None = None,
) -> ForgetReport:
    """Forget every entry whose interaction is older than `max_age_s` seconds."""
    cutoff = (now if now is not None else time.time()) - max_age_s
    old = [
        entry
        for user in store.users()
        for entry in store.entries(user)
        if entry.timestamp < cutoff
    ]
    report = _purge(store, old, server_path)
    report.remaining = sum(
        entry.timestamp < cutoff for user in store.users() for entry in store.entries(user)
    )
    return report
