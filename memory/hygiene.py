"""Dictionary hygiene: near-duplicate supersession and the per-user cap.

A user who asks the same thing with the same tool many times would otherwise fill the
top-K with copies of one interaction. The newer of two near-duplicates (cosine of the
keys >= threshold, same tool) supersedes the older one: the older stays in the store with
`superseded_by` set (provenance), but retrieval ignores it. Eviction under the cap drops
superseded entries first (oldest first), then the oldest live ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DUPLICATE_COSINE = 0.97


@dataclass(frozen=True)
class KeyRecord:
    """The part of an entry hygiene looks at."""

    entry_id: str
    embedding: np.ndarray
    tool: str
    timestamp: float
    superseded_by: str = ""


def find_supersessions(
    records: list[KeyRecord], new_ids: set[str], threshold: float = DUPLICATE_COSINE
) -> dict[str, str]:
    """Map older entry id -> the newer near-duplicate that supersedes it.

    Only pairs involving a new entry are examined: older pairs were settled when the
    newer of them arrived. A live entry is superseded by the oldest newer live entry
    with the same tool and cosine >= threshold; superseded entries keep their provenance.
    """
    live = sorted(
        (r for r in records if not r.superseded_by), key=lambda r: (r.timestamp, r.entry_id)
    )
    fresh = np.array([i for i, r in enumerate(live) if r.entry_id in new_ids], dtype=int)
    if fresh.size == 0 or len(live) < 2:
        return {}
    matrix = np.stack([r.embedding for r in live]).astype(np.float32)
    tools = np.array([r.tool for r in live], dtype=object)
    result: dict[str, str] = {}
    for i, older in enumerate(live):
        later = np.arange(i + 1, len(live)) if older.entry_id in new_ids else fresh[fresh > i]
        if later.size == 0:
            continue
        close = (matrix[later] @ matrix[i] >= threshold) & (tools[later] == older.tool)
        if close.any():
            result[older.entry_id] = live[int(later[np.argmax(close)])].entry_id
    return result


def choose_evictions(records: list[KeyRecord], cap: int) -> list[str]:
    """Ids to delete so at most `cap` remain: oldest superseded first, then oldest."""
    excess = len(records) - cap
    if excess <= 0:
        return []
    order = sorted(records, key=lambda r: (not r.superseded_by, r.timestamp, r.entry_id))
    return [r.entry_id for r in order[:excess]]
