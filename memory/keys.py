"""Retrieval keys that find how a user asks, not what they ask about.

A request names an item ("Regarding hot sauce stuff, a note") and carries the user's
way of asking for a tool ("regarding ... a note" means a search for this user). Embedded
whole, the item dominates: the nearest past request is about the same product, asked
for with another tool. So keys are compared on the request with the catalog's words
(the item) taken out, two ways at once:

- dense: MiniLM cosine of the masked texts;
- lexical: cosine of word and word-pair sets of the masked texts, each term weighted by
  its rarity *within this user's own requests* (a greeting they always use says
  nothing; the phrase they use only for one tool says everything).

The score is their mean. Where no catalog is known (an app with its own tools) the
mask is empty and the score is today's dense cosine of the whole request: keys degrade,
never fail. `IntentKeys.name` records which key a store was built with, so a store is
never searched with keys of another kind.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")
PLAIN = "request"  # the key of stores built before intent keys: the whole request, dense only
LEXICAL_WEIGHT = 0.5


def catalog_words(texts: Iterable[str]) -> frozenset[str]:
    """Lower-cased words of the catalog's texts (titles, brands, features, descriptions)."""
    return frozenset(w.lower() for text in texts for w in WORD.findall(text))


@dataclass(frozen=True)
class IntentKeys:
    """How request texts become keys and how two keys are scored (see the module doc)."""

    masked: frozenset[str] = field(default_factory=frozenset)
    lexical_weight: float = LEXICAL_WEIGHT

    @property
    def name(self) -> str:
        if not self.masked:
            return PLAIN
        digest = hashlib.sha256("\n".join(sorted(self.masked)).encode()).hexdigest()[:12]
        return f"intent-v1:{digest}:{self.lexical_weight:g}"

    def text(self, request: str) -> str:
        """What is embedded: the request without catalog words."""
        if not self.masked:
            return request
        kept = [w for w in WORD.findall(request) if w.lower() not in self.masked]
        return " ".join(kept) if kept else request

    def subject(self, request: str) -> str:
        """What the request is about: its catalog words alone (the whole request where
        none is known or none occurs). The complement of `text`: a user's past call
        about the same kind of item says what they write about it."""
        kept = [w for w in WORD.findall(request) if w.lower() in self.masked]
        return " ".join(kept) if kept else request

    def terms(self, request: str) -> set[str]:
        words = [w.lower() for w in WORD.findall(request) if w.lower() not in self.masked]
        return set(words) | {f"{a} {b}" for a, b in zip(words, words[1:])}

    def scores(self, query: str, query_embedding: np.ndarray, docs: Sequence[str],
               embeddings: np.ndarray) -> np.ndarray:
        """Similarity of the query to each of one user's keys (dense, or dense + lexical)."""
        dense = embeddings @ query_embedding
        if not self.masked or not len(docs):
            return dense.astype(np.float32)
        return ((1 - self.lexical_weight) * dense
                + self.lexical_weight * lexical_scores(self.terms(query), [self.terms(d) for d in docs])
                ).astype(np.float32)


def lexical_scores(query: set[str], docs: Sequence[set[str]]) -> np.ndarray:
    """Cosine of term sets, each term weighted by its rarity among `docs` (one user's)."""
    return LexicalIndex(docs).scores(query)


class LexicalIndex:
    """`lexical_scores` against fixed docs: their rarity weights and norms are computed
    once, for docs scored again on every request (the catalog's titles)."""

    def __init__(self, docs: Sequence[set[str]]) -> None:
        self.docs = list(docs)
        self._unseen = math.log((len(self.docs) + 1) / 0.5)
        df = Counter(term for doc in self.docs for term in doc)
        self._weights = {term: math.log((len(self.docs) + 1) / (count + 0.5)) for term, count in df.items()}
        self._norms = [math.sqrt(sum(self._weight(t) ** 2 for t in doc)) for doc in self.docs]

    def _weight(self, term: str) -> float:
        return self._weights.get(term, self._unseen)

    def scores(self, query: set[str]) -> np.ndarray:
        query_norm = math.sqrt(sum(self._weight(t) ** 2 for t in query))
        out = np.zeros(len(self.docs), np.float64)
        for i, doc in enumerate(self.docs):
            shared = sum(self._weight(t) ** 2 for t in query & doc)
            if shared > 0:
                out[i] = shared / (query_norm * self._norms[i])
        return out
