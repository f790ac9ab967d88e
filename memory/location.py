"""Where the store lives, and how to connect to it (embedded directory or server URL)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

ENV_VAR = "FINTS_MEMORY_DIR"


@dataclass(frozen=True)
class StoreLocation:
    """An embedded store directory, or the URL of a `chroma run` server."""

    path: Path | None = None
    url: str | None = None

    @property
    def is_server(self) -> bool:
        return self.url is not None

    def __str__(self) -> str:
        return self.url if self.url else str(self.path)


def resolve_location(store: str | Path | None = None) -> StoreLocation:
    """`--store` wins, then $FINTS_MEMORY_DIR, then the user data dir (`.../fints/memory`)."""
    if store is None or str(store) == "":
        store = os.environ.get(ENV_VAR) or None
    if store is None:
        import platformdirs

        return StoreLocation(path=Path(platformdirs.user_data_dir("fints")) / "memory")
    text = str(store)
    if text.startswith(("http://", "https://")):
        return StoreLocation(url=text.rstrip("/"))
    return StoreLocation(path=Path(text).expanduser())


def connect(location: StoreLocation):
    """A Chroma client with telemetry off: PersistentClient or HttpClient."""
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if location.url:
        parsed = urlparse(location.url)
        port = parsed.port or (443 if parsed.scheme == "https" else 8000)
        return chromadb.HttpClient(
            host=parsed.hostname or "127.0.0.1",
            port=port,
            ssl=parsed.scheme == "https",
            settings=settings,
        )
    assert location.path is not None
    location.path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(location.path), settings=settings)
