"""How far a user's own past predicts their own choices: leave-one-out agreement.

Steering trusts that the entries retrieved for a request vote for the tool the user
means. For most users that holds (they ask for each tool their own way), but a user
whose habits changed or who asks for different tools in the same words has entries
that contradict each other; steering them at full strength pushes the model towards a
coin toss. The check: hold out each of the user's entries in turn, retrieve for its
request from the others exactly as a live request is retrieved (same keys, k,
threshold, weights), and count how often the weighted vote names the held-out entry's
own tool. `Learner.steering_for` lowers the strength for a user whose agreement falls
below the method's `agreement_floor` (0: the check is off).

Torch-free and model-free: it reads only the user's key records, so it costs a few
milliseconds and is recomputed only when the user's entries change.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from memory.keys import IntentKeys
from steering.weights import attentive_weights

MAX_CHECKED = 300  # held-out entries per user at most (evenly spaced): cost stays bounded
MIN_CHECKED = 5  # below this many votes the agreement says nothing; strength is left as it is


def weighted_vote(tools: Sequence[str], weights: Sequence[float]) -> str | None:
    """The tool with the largest summed weight (the first seen on ties)."""
    votes: Counter[str] = Counter()
    for tool, weight in zip(tools, weights):
        votes[tool] += weight
    return max(votes, key=lambda t: votes[t]) if votes else None


@dataclass(frozen=True)
class Agreement:
    """`agreed` of `checked` held-out entries were voted back to their own tool
    (entries whose request found nothing above the threshold are not checked)."""

    agreed: int
    checked: int

    @property
    def rate(self) -> float:
        return self.agreed / self.checked if self.checked else 1.0

    def strength_factor(self, floor: float) -> float:
        """1 at or above `floor`, falling linearly to 0 at agreement 0; 1 when the check
        is off (`floor` 0) or too few entries were checked to say."""
        if floor <= 0 or self.checked < MIN_CHECKED:
            return 1.0
        return min(1.0, self.rate / floor)


def leave_one_out(keys: IntentKeys, docs: Sequence[str], embeddings: np.ndarray,
                  tools: Sequence[str], *, k: int, threshold: float,
                  temperature: float) -> Agreement:
    """Agreement of one user's entries (request texts, unit key embeddings, tools),
    each held out and retrieved for from the rest as `MemoryStore.retrieve` would."""
    n = len(docs)
    if n < 2:
        return Agreement(0, 0)
    held = np.unique(np.linspace(0, n - 1, min(n, MAX_CHECKED)).round().astype(int))
    agreed = checked = 0
    for i in held:
        rest = [j for j in range(n) if j != i]
        scores = keys.scores(docs[i], embeddings[i], [docs[j] for j in rest], embeddings[rest])
        order = np.argsort(-scores, kind="stable")[:k]
        kept = order[scores[order] >= threshold]
        if not len(kept):
            continue
        weights = attentive_weights(scores[kept], temperature)
        checked += 1
        agreed += weighted_vote([tools[rest[j]] for j in kept], weights) == tools[i]
    return Agreement(agreed, checked)
