"""Attentive weights: how much each retrieved vector counts. Torch-free, so `memory`
weighs its retrievals without importing torch.

`softmax(similarity / temperature)`, multiplied by a time decay `0.5 ** (age /
half_life)` when a half-life is given (for users whose taste drifts), renormalised to
sum to one. `steering.aggregation.aggregate` takes these weights.
"""

from __future__ import annotations

import numpy as np


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
