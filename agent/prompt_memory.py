"""A user's past calls: the in-context baseline, the lookup, and the brands a user buys.

- `prompt-k*` writes a user's k most similar past requests into the prompt: the
  alternative steering has to beat, the same past interactions spent as prompt tokens
  on every request instead of as vectors added in the forward pass;
- `nearest-call` copies the most similar one;
- the search query of every method that reads memory (prompt-k*, steer-*) gets the
  brands the user chose for items like the one asked about (`PromptMemory.brands`): in
  the catalog category the request is about (`Categories`) where the catalog is known,
  the brands their profile declares there first.
  A steering vector carries a direction, not the spelling of a brand name the model has
  never seen (docs/results.md, the argument probes), so the names come from memory and
  the model writes the rest;
- a review by those methods ends with sentences in the user's voice
  (`PromptMemory.voice`): what they write in review after review, whatever the product;
- a recommendation by those methods that names no products reads the user's purchases
  in the request's category (`PromptMemory.purchases`), not all of them.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.prompt import as_written, render_call
from memory.entry import to_epoch
from memory.keys import IntentKeys, LexicalIndex
from tools.registry import MAX_SEQUENCE, REVIEW

# Chosen with the brand count on non-held-out users of seed 0 (docs/results.md, "Brands
# in search queries", "Brands the profile declares"): 296 searches with the item's name
# as the query, then 85 with the default method's own queries. The neighbours vote only
# where the request's category is unknown.
BRAND_NEIGHBOURS = 8
CATEGORY_NEAREST = 10  # catalog titles that vote for the request's category
# A sentence of the user's voice is one they wrote in reviews of at least this many
# kinds of product (one kind's sentence may be about that product).
VOICE_KINDS = 2
FIGURE = re.compile(r"[0-9]")  # a price or size is about one product
SENTENCES = re.compile(r"[^.!?]+[.!?]*")
WORDS = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class PastCall:
    request: str
    tool: str
    arguments: dict[str, Any]
    timestamp: float = 0.0  # epoch seconds (memory.entry.to_epoch), like the store's entries
    item: str = ""  # the product the interaction was about (its title), where known
    brand: str = ""  # that product's brand, where known
    category: str = ""  # that product's catalog category, where known
    review: str = ""  # the review the user wrote of it, where known


@dataclass(frozen=True)
class Purchase:
    """A product of the user's history: bought whether or not a request led to it (an
    imported PersonalWAB history has purchases and no requests)."""

    asin: str
    category: str
    timestamp: float = 0.0


@dataclass(frozen=True)
class Categories:
    """Which catalog category a request is about. A user's brands are per category (their
    face cream brand is no tent brand) and a request names its item ("my face
    moisturizer"), not the category; the catalog says where such items are sold: the
    `CATEGORY_NEAREST` titles sharing the most rarity-weighted words with the request's
    catalog words vote. On seed 0's 296 non-held-out searches this names the target's
    category for 0.99 of requests; the category of the user's most alike past item, for
    0.85 (docs/results.md, "Brands by category")."""

    titles: LexicalIndex  # each title's words, weighted once for every request
    categories: tuple[str, ...]
    sold: dict[str, frozenset[str]]  # category: the brands the catalog sells in it

    @classmethod
    def from_products(cls, products: Iterable[tuple[str, str, str]]) -> Categories:
        """From (title, category, brand) triples of the catalog's products."""
        kept = [(frozenset(WORDS.findall(title.lower())), category, brand)
                for title, category, brand in products if category]
        sold: dict[str, set[str]] = {}
        for _, category, brand in kept:
            if brand:
                sold.setdefault(category, set()).add(brand)
        return cls(LexicalIndex([t for t, _, _ in kept]), tuple(c for _, c, _ in kept),
                   {category: frozenset(brands) for category, brands in sold.items()})

    def of(self, text: str) -> str | None:
        """The category of the titles most like `text`; None where no title shares a word."""
        scores = self.titles.scores(set(WORDS.findall(text.lower())))
        nearest = [i for i in np.argsort(-scores, kind="stable")[:CATEGORY_NEAREST] if scores[i] > 0]
        if not nearest:
            return None
        return Counter(self.categories[i] for i in nearest).most_common(1)[0][0]


@dataclass
class PromptMemory:
    """Per-user past calls with their request embeddings; retrieval never crosses users.
    Requests are compared with the same keys as steering memory (memory.keys), so the
    in-context baseline sees the same past calls steering would."""

    embedder: Any
    keys: IntentKeys = field(default_factory=IntentKeys)
    categories: Categories | None = None  # None where there is no catalog
    _calls: dict[str, list[PastCall]] = field(default_factory=dict)
    _declared: dict[str, tuple[str, ...]] = field(default_factory=dict)  # user: profile's brands
    _bought: dict[str, list[Purchase]] = field(default_factory=dict)
    _embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    _items: dict[str, tuple[int, np.ndarray]] = field(default_factory=dict)  # user: (calls seen, embeddings)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_dataset(cls, dataset: Any, embedder: Any, users: list[str] | None = None,
                     keys: IntentKeys | None = None) -> PromptMemory:
        """History requests and train tasks of each user, in time order, every purchase
        of their history and the brands each user's profile declares."""
        memory = cls(embedder, keys or IntentKeys(), Categories.from_products(
            (p.title, p.main_category or "", p.store or "") for p in dataset.products.values()))
        wanted = set(users) if users is not None else None
        for user, profile in dataset.profiles.items():
            if wanted is None or user in wanted:
                memory.declare(user, [b.strip() for b in profile.brand_preference.split(",")])
        per_user: dict[str, list[PastCall]] = {}
        for user, items in dataset.histories.items():
            if wanted is not None and user not in wanted:
                continue
            memory.record(user, [Purchase(item.product_info.parent_asin, item.product_info.main_category or "",
                                          to_epoch(item.review.timestamp)) for item in items])
            for item in items:
                request = getattr(item, "request", None)
                if request is not None and request.gold_call is not None:
                    product = item.product_info
                    per_user.setdefault(user, []).append(PastCall(
                        request.task, request.gold_call.name, dict(request.gold_call.arguments),
                        to_epoch(item.review.timestamp), product.title, product.store or "",
                        product.main_category or "", item.review.text))
        for task in dataset.train:
            if (wanted is None or task.user_id in wanted) and task.gold_call is not None:
                product = task.target.product_info
                per_user.setdefault(task.user_id, []).append(PastCall(
                    task.task, task.gold_call.name, dict(task.gold_call.arguments), to_epoch(task.timestamp),
                    product.title, product.store or "", product.main_category or "",
                    task.target.review.text))
        for user, calls in per_user.items():
            memory.extend(user, sorted(calls, key=lambda c: c.timestamp))
        return memory

    def declare(self, user_id: str, brands: Iterable[str]) -> None:
        """The brands a user says they prefer (PersonalWAB's profile field "Brand
        Preference"), whatever they bought so far."""
        with self._lock:
            self._declared[user_id] = tuple(b for b in brands if b)

    def record(self, user_id: str, purchases: Iterable[Purchase]) -> None:
        """Add products the user bought (what `purchases` reads)."""
        with self._lock:
            self._bought.setdefault(user_id, []).extend(purchases)

    def extend(self, user_id: str, calls: list[PastCall]) -> None:
        if not calls:
            return
        vectors = self.embedder.embed([self.keys.text(c.request) for c in calls])
        with self._lock:
            self._calls.setdefault(user_id, []).extend(calls)
            old = self._embeddings.get(user_id)
            self._embeddings[user_id] = vectors if old is None else np.vstack([old, vectors])

    def learn(self, episode: Any) -> None:
        """Add an accepted interaction of the live agent (a `memory.online.Episode`), as
        the steering store does: prompt memory's past calls and the user's voice (a
        review's own text) grow with what the user accepts, not only with the data set
        the agent opened. The product is unknown here, so a review counts as its own kind."""
        if episode.outcome != "accepted":
            return
        review = episode.arguments.get("review") if episode.tool == REVIEW else None
        self.extend(episode.user_id, [PastCall(episode.request, episode.tool, dict(episode.arguments),
                                                to_epoch(episode.timestamp),
                                                review=review if isinstance(review, str) else "")])

    def top_k(self, user_id: str | None, request: str, k: int) -> list[PastCall]:
        """The user's k past calls most similar to the request (none for unknown users)."""
        return [call for call, _ in self.scored(user_id, request, k)]

    def scored(self, user_id: str | None, request: str, k: int) -> list[tuple[PastCall, float]]:
        """`top_k` with each call's similarity to the request."""
        with self._lock:
            calls = list(self._calls.get(user_id or "", []))
            matrix = self._embeddings.get(user_id or "")
        if not calls or k <= 0 or matrix is None:
            return []
        query = self.embedder.embed([self.keys.text(request)])[0]
        scores = self.keys.scores(request, query, [c.request for c in calls], matrix)
        order = np.argsort(-scores, kind="stable")[:k]
        return [(calls[i], float(scores[i])) for i in order]

    def brands(self, user_id: str | None, request: str, limit: int,
               neighbours: int = BRAND_NEIGHBOURS) -> list[str]:
        """Up to `limit` brands of the user's past items like what the request is about,
        best first. A user buys from one to three brands per kind of item and a request
        does not say which, so more than one can be worth naming. Where the request's
        catalog category is known, the brands the user's profile declares that the
        catalog sells there come first (a user may not have bought from a brand they like
        yet), then the ones they bought there, each by how often they were bought there,
        the latest first among equals (tastes drift). Otherwise each of the `neighbours`
        past items nearest to the request (MiniLM over its catalog words,
        `IntentKeys.subject`, against the item's title) votes for its brand with its
        similarity. No brands for an unknown user or one whose items have none; never
        another user's. There is no similarity floor: a brand of a less alike item costs
        a search little, and the count was chosen with none."""
        with self._lock:
            calls = [c for c in self._calls.get(user_id or "", []) if c.brand and c.item]
            declared = self._declared.get(user_id or "", ())
            cached = self._items.get(user_id or "")
        if limit <= 0 or not (calls or declared):
            return []
        subject = self.keys.subject(request)
        category = self._category(subject)
        sold = self.categories.sold.get(category, frozenset()) if category else frozenset()
        liked = [b for b in declared if b in sold]
        inside = [c for c in calls if category and c.category == category]
        if liked or inside:
            counts = Counter(c.brand for c in inside)
            latest = {c.brand: c.timestamp for c in sorted(inside, key=lambda c: c.timestamp)}
            ranked = sorted(set(liked) | set(counts),
                            key=lambda b: (b not in liked, -counts[b], -latest.get(b, 0.0), b))
            return ranked[:limit]
        if not calls:
            return []
        if cached is None or cached[0] != len(calls):
            cached = (len(calls), self.embedder.embed([c.item for c in calls]))
            with self._lock:
                self._items[user_id or ""] = cached
        query = self.embedder.embed([subject])[0]
        scores = cached[1] @ query
        votes: dict[str, float] = {}
        for i in np.argsort(-scores, kind="stable")[:neighbours]:
            votes[calls[i].brand] = votes.get(calls[i].brand, 0.0) + float(scores[i])
        return sorted(votes, key=lambda b: -votes[b])[:limit]

    def purchases(self, user_id: str | None, request: str, limit: int = MAX_SEQUENCE) -> list[str]:
        """The user's latest `limit` purchases (ASINs, oldest first) in the catalog category
        the request is about; none where the category is unknown or they never bought
        there. The shop's recommender reads a sequence's products alike, and a user's
        purchases span several categories while a request asks about one."""
        with self._lock:
            bought = list(self._bought.get(user_id or "", []))
        if limit <= 0 or not bought:
            return []
        category = self._category(self.keys.subject(request))
        inside = sorted((p for p in bought if category and p.category == category), key=lambda p: p.timestamp)
        return [p.asin for p in inside][-limit:]

    def _category(self, subject: str) -> str | None:
        """The catalog category of a request's catalog words (`IntentKeys.subject`);
        None without a catalog."""
        return self.categories.of(subject) if self.categories is not None else None

    def voice(self, user_id: str | None, limit: int) -> list[str]:
        """Up to `limit` sentences this user writes in reviews of different kinds of
        product (at least `VOICE_KINDS` catalog categories, or products where the
        category is unknown), no figure in them, most often written first, the latest
        among equals: their sign-offs ("Would buy again.") and habits of judging ("The
        build feels solid."), not what they said of one product. A review's similarity
        to the user's own rewards their voice, and a vector cannot spell a sentence."""
        with self._lock:
            calls = [c for c in self._calls.get(user_id or "", []) if c.review]
        seen: dict[str, tuple[int, tuple[int, int], str]] = {}  # words: (reviews, latest place, sentence)
        kinds: dict[str, set[str]] = {}
        for when, call in enumerate(calls):
            counted: set[str] = set()
            for place, sentence in enumerate(s.strip() for s in SENTENCES.findall(call.review)):
                words = " ".join(WORDS.findall(sentence.lower()))
                if not words or words in counted or FIGURE.search(sentence):
                    continue
                counted.add(words)
                seen[words] = (seen.get(words, (0,))[0] + 1, (when, place), sentence)
                kinds.setdefault(words, set()).add(call.category or call.item or str(when))
        kept = [v for words, v in seen.items() if len(kinds[words]) >= VOICE_KINDS]
        return [sentence for *_, sentence in sorted(kept, reverse=True)[:max(limit, 0)]]

    def count(self, user_id: str) -> int:
        return len(self._calls.get(user_id, []))


def names(text: str, phrase: str) -> bool:
    """Whether `text` contains `phrase` as whole words, case and punctuation aside
    ("The North Face tent" names "the north face"; "Novena" does not name "Noven")."""
    wanted = WORDS.findall(phrase.lower())
    words = WORDS.findall(text.lower())
    return bool(wanted) and any(words[i:i + len(wanted)] == wanted for i in range(len(words)))


def render_memory(calls: list[PastCall]) -> str:
    """The system-prompt block that shows past calls to the model."""
    lines = ["Past requests of this user and the calls they accepted:"]
    for call in calls:
        payload = render_call(call.tool, as_written(call.tool, call.arguments))
        lines.append(f"Request: {call.request}\nCall: {payload}")
    return "\n".join(lines)
