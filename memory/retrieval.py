"""What retrieval returns: one user's matching entries, their vectors and weights
(`steering.weights.attentive_weights`), or an abstention. The steering core aggregates
(`steering.aggregation.aggregate`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SECONDS_PER_DAY = 86400.0


@dataclass
class Retrieval:
    """The steering vectors chosen for one request of one user, or an abstention.

    `vectors[key]` has shape (n, hidden_size), row i belonging to `entry_ids[i]`; only
    keys present in every used entry are returned. When `abstained` is True there are
    no vectors and `reason` says why (unknown user, nothing similar enough, ...).
    """

    user_id: str
    abstained: bool
    reason: str = ""
    entry_ids: list[str] = field(default_factory=list)
    similarities: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)  # the matched request texts, for audit
    tools: list[str] = field(default_factory=list)  # the tool each matched entry records


def abstain(user_id: str, reason: str) -> Retrieval:
    return Retrieval(user_id=user_id, abstained=True, reason=reason)
