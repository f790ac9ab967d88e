"""From (user, request) to one sized steering vector, or a recorded reason for none.

Retrieval is per user and fails closed (an unknown user, a request unlike anything the
user did before, or an unreachable store all mean *no steering*); the decision records
what was chosen so the agent can say what steered it. `Learner.steering_for` is the way
in; torch is imported only when vectors are actually combined.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class SteeringDecision:
    """What the steer node chose for one request (JSON-safe via `summary`)."""

    applied: bool
    reason: str = ""
    vector: Any | None = field(default=None, repr=False)  # a steering.SteeringVector
    entry_ids: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    similarities: list[float] = field(default_factory=list)
    matched_requests: list[str] = field(default_factory=list)
    matched_tools: list[str] = field(default_factory=list)
    fallback: bool = False  # True when steering was wanted but memory was unavailable
    agreement: float | None = None  # the user's leave-one-out agreement, when checked
    strength: float | None = None  # the alpha applied (the method's, lowered by the check)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"applied": self.applied}
        if self.applied:
            out["entries"] = [
                {"id": eid, "weight": round(w, 4), "similarity": round(s, 4), "request": r}
                for eid, w, s, r in zip(
                    self.entry_ids, self.weights, self.similarities, self.matched_requests
                )
            ]
            if self.vector is not None:
                out["norms"] = {k: round(v, 3) for k, v in self.vector.norms().items()}
            if self.strength is not None:
                out["strength"] = round(self.strength, 4)
        else:
            out["reason"] = self.reason
        if self.agreement is not None:
            out["agreement"] = round(self.agreement, 4)
        if self.fallback:
            out["fallback"] = "unsteered: memory unavailable"
        return out


def decide_steering(store: Any | None, model: Any, norms: Callable[[], dict[str, float]],
                    user_id: str | None, request: str, method: Any, *,
                    fail_closed: bool = False) -> SteeringDecision:
    """Retrieve, clip, aggregate and size one user's vectors for one request under
    `method`'s settings; with `fail_closed`, a store error raises."""
    if not method.steers:
        return SteeringDecision(False, f"method {method.name} does not steer")
    if store is None:
        return SteeringDecision(False, "no memory store configured", fallback=True)
    checked = None
    try:
        found = store.retrieve(
            user_id, request, k=method.top_k, threshold=method.threshold,
            temperature=method.temperature, half_life_days=method.half_life_days,
        )
        if method.agreement_floor > 0 and not found.abstained:
            checked = store.agreement(user_id, k=method.top_k, threshold=method.threshold,
                                      temperature=method.temperature)
    except Exception as error:  # the store is down or corrupt: never crash the request
        if fail_closed:
            raise
        log.warning("memory unavailable, answering unsteered: %s", error)
        return SteeringDecision(False, f"memory unavailable ({type(error).__name__}: {error})",
                                fallback=True)
    if found.abstained:
        return SteeringDecision(False, found.reason)
    factor = checked.strength_factor(method.agreement_floor) if checked is not None else 1.0
    agreement = checked.rate if checked is not None else None
    if factor <= 0:
        return SteeringDecision(False, f"this user's entries contradict each other (leave-one-out "
                                       f"agreement {agreement:.2f} of {checked.checked})", agreement=agreement)
    import torch

    from steering import SteeringVector, aggregate, clip_norm, scale, site_keys

    keys = [str(k) for k in site_keys(method.site, method.layers)]
    missing = [key for key in keys if key not in found.vectors]
    if missing:
        return SteeringDecision(False, f"memory holds no vectors for {missing}")
    vectors = [
        SteeringVector({key: torch.from_numpy(found.vectors[key][row]) for key in keys},
                       model.model_id, model.hidden_size)
        for row in range(len(found.entry_ids))
    ]
    reference = norms()
    bounds = {key: method.clip * reference[key] for key in keys}
    vectors = [clip_norm(v, bounds) for v in vectors]
    weights = [float(w) for w in found.weights]
    combined = aggregate(vectors, method=method.aggregation, weights=weights)
    entry_norms = [v.norms() for v in vectors]
    units = {key: sum(n[key] for n in entry_norms) / len(vectors) for key in keys}
    sized = scale(combined, method.alpha * factor, mode=method.strength,
                  reference_norms=reference, unit_norms=units)
    shown = weights if method.aggregation == "attentive" else [1.0 / len(vectors)] * len(vectors)
    return SteeringDecision(
        True,
        vector=sized.to(model.device, model.dtype),
        entry_ids=list(found.entry_ids),
        weights=shown,
        similarities=[float(s) for s in found.similarities],
        matched_requests=list(found.keys),
        matched_tools=list(found.tools),
        agreement=agreement,
        strength=method.alpha * factor,
    )
