"""Reviews kept in SQLite, so they survive a restart of the shop.

One short-lived connection per call: the web server answers from several threads,
and a write is one transaction (all of it is stored, or nothing)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

from .models import Review

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    product_asin TEXT,
    review TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reviews_by_user ON reviews (user_id);
CREATE INDEX IF NOT EXISTS reviews_by_product ON reviews (product_asin);
"""
_COLUMNS = "id, user_id, product_asin, review, created_at"


class ReviewStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as conn, conn:
            conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10)
        conn.row_factory = sqlite3.Row
        return conn

    def add(self, user_id: str, review: str, product_asin: str | None) -> Review:
        """Store one (already validated) review and return it as stored."""
        created_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with closing(self._connect()) as conn, conn:
            cursor = conn.execute(
                "INSERT INTO reviews (user_id, product_asin, review, created_at) "
                "VALUES (?, ?, ?, ?)",
                (user_id, product_asin, review, created_at),
            )
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM reviews WHERE id = ?", (cursor.lastrowid,)
            ).fetchone()
        return Review(**dict(row))

    def get(self, review_id: int, user_id: str) -> Review | None:
        """A review by id, only for the user who wrote it (others get None)."""
        return next(iter(self._select("id = ? AND user_id = ?", (review_id, user_id))), None)

    def by_user(self, user_id: str) -> list[Review]:
        return self._select("user_id = ?", (user_id,))

    def by_product(self, product_asin: str) -> list[Review]:
        return self._select("product_asin = ?", (product_asin,))

    def _select(self, where: str, params: tuple) -> list[Review]:
        with closing(self._connect()) as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM reviews WHERE {where} ORDER BY id", params
            ).fetchall()
        return [Review(**dict(row)) for row in rows]
