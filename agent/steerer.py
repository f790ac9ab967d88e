"""The steer node's work: from (user, request) to one sized steering vector, or none.

Retrieval is per user and fails closed (an unknown user, a request unlike anything the
user did before, or an unreachable store all mean *no steering*); the decision records
what was chosen so the agent can say what steered it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from agent.methods import Method
from steering import (
    LoadedModel,
    SteeringVector,
    aggregate,
    clip_norm,
    reference_norms,
    scale,
    site_keys,
)

log = logging.getLogger(__name__)


@dataclass
class SteeringDecision:
    """What the steer node chose for one request (JSON-safe via `summary`)."""

    applied: bool
    reason: str = ""
    vector: SteeringVector | None = field(default=None, repr=False)
    entry_ids: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    similarities: list[float] = field(default_factory=list)
    matched_requests: list[str] = field(default_factory=list)
    matched_tools: list[str] = field(default_factory=list)
    fallback: bool = False  # True when steering was wanted but memory was unavailable

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
        else:
            out["reason"] = self.reason
        if self.fallback:
            out["fallback"] = "unsteered: memory unavailable"
        return out


class Steerer:
    """Retrieves, aggregates, clips and sizes one user's vectors for one request."""

    def __init__(
        self, model: LoadedModel, store: Any | None, method: Method, *, fail_closed: bool = False
    ) -> None:
        self.model = model
        self.store = store
        self.method = method
        self.fail_closed = fail_closed  # raise when memory is unavailable, instead of a flagged fallback
        self.keys = [str(k) for k in site_keys(method.site, method.layers)] if method.steers else []
        self._norms: dict[str, float] | None = None

    @property
    def norms(self) -> dict[str, float]:
        if self._norms is None:
            self._norms = reference_norms(self.model)
        return self._norms

    def decide(self, user_id: str | None, request: str) -> SteeringDecision:
        """The steering for this request; with `fail_closed`, a store error raises."""
        method = self.method
        if not method.steers:
            return SteeringDecision(False, f"method {method.name} does not steer")
        if self.store is None:
            return SteeringDecision(False, "no memory store configured", fallback=True)
        try:
            found = self.store.retrieve(
                user_id,
                request,
                k=method.top_k,
                threshold=method.threshold,
                temperature=method.temperature,
                half_life_days=method.half_life_days,
            )
        except Exception as error:  # the store is down or corrupt: never crash the request
            if self.fail_closed:
                raise
            log.warning("memory unavailable, answering unsteered: %s", error)
            return SteeringDecision(False, f"memory unavailable ({type(error).__name__}: {error})",
                                    fallback=True)
        if found.abstained:
            return SteeringDecision(False, found.reason)
        missing = [key for key in self.keys if key not in found.vectors]
        if missing:
            return SteeringDecision(False, f"memory holds no vectors for {missing}")
        vectors = [
            SteeringVector(
                {key: torch.from_numpy(found.vectors[key][row]) for key in self.keys},
                self.model.model_id,
                self.model.hidden_size,
            )
            for row in range(len(found.entry_ids))
        ]
        bounds = {key: method.clip * self.norms[key] for key in self.keys}
        vectors = [clip_norm(v, bounds) for v in vectors]
        weights = [float(w) for w in found.weights]
        combined = aggregate(vectors, method=method.aggregation, weights=weights)  # type: ignore[arg-type]
        entry_norms = [v.norms() for v in vectors]
        units = {key: sum(n[key] for n in entry_norms) / len(vectors) for key in self.keys}
        sized = scale(combined, method.alpha, mode=method.strength,  # type: ignore[arg-type]
                      reference_norms=self.norms, unit_norms=units)
        shown = weights if method.aggregation == "attentive" else [1.0 / len(vectors)] * len(vectors)
        return SteeringDecision(
            True,
            vector=sized.to(self.model.device, self.model.dtype),
            entry_ids=list(found.entry_ids),
            weights=shown,
            similarities=[float(s) for s in found.similarities],
            matched_requests=list(found.keys),
            matched_tools=list(found.tools),
        )


