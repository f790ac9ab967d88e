"""What retrieval returns, and the (deliberately small) weighting math.

Weights are attentive: `softmax(similarity / temperature)`, multiplied by a time decay
`0.5 ** (age / half_life)` when a half-life is given (for users whose taste drifts),
then renormalised to sum to one. The steering core aggregates; `Retrieval.aggregate`
is the reference: `v_agg[key] = sum_i weight_i * v_i[key]` (attentive) or the plain
mean (naive), as in the method's input-aware vs naive aggregation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SECONDS_PER_DAY = 86400.0


def attentive_weights(
    similarities: np.ndarray,
    temperature: float,
    ages_s: np.ndarray | None = None,
    half_life_s: float | None = None,
) -> np.ndarray:
    """Softmax of similarity / temperature, times decay, renormalised (sums to 1)."""
    sims = np.asarray(similarities, dtype=np.float64)
    if sims.size == 0:
        return np.zeros(0, dtype=np.float32)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits = sims / temperature
    weights = np.exp(logits - logits.max())
    if half_life_s is not None and ages_s is not None:
        if half_life_s <= 0:
            raise ValueError(f"half-life must be > 0, got {half_life_s}")
        weights = weights * np.power(0.5, np.clip(ages_s, 0, None) / half_life_s)
    total = weights.sum()
    if total <= 0 or not np.isfinite(total):  # every entry decayed to nothing
        weights = np.ones_like(weights)
        total = weights.sum()
    return (weights / total).astype(np.float32)


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

    def aggregate(self, mode: str = "attentive") -> dict[str, np.ndarray]:
        """Weighted sum ("attentive") or plain mean ("mean") per key; {} if abstained."""
        if self.abstained:
            return {}
        if mode == "attentive":
            weights = self.weights
        elif mode == "mean":
            weights = np.full(len(self.entry_ids), 1.0 / len(self.entry_ids), np.float32)
        else:
            raise ValueError(f"aggregation {mode!r} is not 'attentive' or 'mean'")
        return {key: (weights[:, None] * rows).sum(axis=0) for key, rows in self.vectors.items()}


def abstain(user_id: str, reason: str) -> Retrieval:
    return Retrieval(user_id=user_id, abstained=True, reason=reason)
