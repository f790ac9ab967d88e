"""Turning the top-K retrieved vectors into one, and sizing it.

`mean` weighs every retrieved vector alike; `attentive` weighs each by a softmax of its
key's similarity to the new request (`steering.weights`), so the most relevant past
interactions count most.
Strength is either absolute (`alpha * v`) or relative: `alpha` times the typical norm of
the residual stream at that layer, along v's direction. Relative strength transfers
across models and sites (a post-norm attention output is small next to the residual it
joins, so its own norm is the wrong yardstick). Clipping bounds what one vector, e.g. a
poisoned entry, can do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch

from steering.vectors import SteeringVector, VectorError

Aggregation = Literal["mean", "attentive"]
StrengthMode = Literal["absolute", "relative"]


def aggregate(
    vectors: Sequence[SteeringVector],
    *,
    method: Aggregation = "attentive",
    weights: Sequence[float] | None = None,
) -> SteeringVector:
    """Weighted sum of vectors over the (site, layer) keys they all hold.

    `attentive` takes `weights` (`steering.weights.attentive_weights` of the retrieved
    similarities, already decayed by age where a half-life is set); `mean` ignores them.
    """
    if not vectors:
        raise VectorError("nothing to aggregate: no vectors were retrieved")
    if method not in ("mean", "attentive"):
        raise ValueError(f"aggregation must be 'mean' or 'attentive', not {method!r}")
    if method == "mean":
        w = [1.0 / len(vectors)] * len(vectors)
    elif weights is not None:
        total = float(sum(weights))
        if total <= 0:
            raise ValueError("aggregation weights must sum to a positive number")
        w = [float(x) / total for x in weights]
    else:
        raise ValueError("attentive aggregation needs weights (steering.weights.attentive_weights)")
    if len(w) != len(vectors):
        raise ValueError(f"{len(w)} weights for {len(vectors)} vectors")
    first = vectors[0]
    keys = [k for k in first.tensors if all(k in v.tensors for v in vectors)]
    if not keys:
        raise VectorError("the retrieved vectors share no (site, layer) key")
    summed = {k: sum(wi * v.tensors[k].float() for wi, v in zip(w, vectors)) for k in keys}
    meta = {"aggregation": method, "count": str(len(vectors))}
    return SteeringVector(summed, first.model_id, first.hidden_size, meta)


def clip_norm(vector: SteeringVector, max_norm: float | Mapping[str, float]) -> SteeringVector:
    """Scale down each tensor whose norm exceeds its bound (one bound, or one per key)."""
    clipped: dict[str, torch.Tensor] = {}
    for key, tensor in vector.tensors.items():
        bound = max_norm[key] if isinstance(max_norm, Mapping) else max_norm
        norm = float(tensor.float().norm())
        clipped[key] = tensor * (bound / norm) if norm > bound > 0 else tensor
    return SteeringVector(clipped, vector.model_id, vector.hidden_size, dict(vector.meta))


def scale(
    vector: SteeringVector,
    alpha: float,
    *,
    mode: StrengthMode = "relative",
    reference_norms: Mapping[str, float] | None = None,
    unit_norms: Mapping[str, float] | None = None,
) -> SteeringVector:
    """Size a vector for application: `alpha * v`, or `alpha * norm_ref * v / unit`.

    `unit` is |v| itself by default; for an aggregate, pass the mean norm of the vectors
    that went into it, so agreeing entries steer at full strength and entries that
    cancel each other out steer less.
    """
    if mode == "absolute":
        return vector.scaled(alpha)
    if mode != "relative":
        raise ValueError(f"strength mode must be 'absolute' or 'relative', not {mode!r}")
    if reference_norms is None:
        raise ValueError("relative strength needs the model's reference norms (steering.calibrate)")
    sized: dict[str, torch.Tensor] = {}
    for key, tensor in vector.tensors.items():
        if key not in reference_norms:
            raise VectorError(f"no reference norm for {key!r}; calibrate the model first")
        unit = unit_norms[key] if unit_norms is not None else float(tensor.float().norm())
        sized[key] = tensor * (alpha * reference_norms[key] / unit) if unit > 0 else tensor
    return SteeringVector(sized, vector.model_id, vector.hidden_size, dict(vector.meta))
