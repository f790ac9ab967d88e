"""Recommendations for a purchase sequence, learned from every user's history.

Three signals, blended into one score per candidate product:
- co-occurrence: products bought by the same users, closer in time counting more,
  normalised by popularity (cosine over users' baskets), so best sellers do not win
  everything;
- content: TF-IDF cosine between the candidate and the sequence's products, which
  also covers products nobody bought yet;
- recency: the latest products in the sequence weigh most (geometric decay).
A tiny popularity prior breaks remaining ties, then catalogue order: deterministic.

The weights were compared on a generated 50-user set (seed 1), scoring each recommend
task's target with PersonalWAB's R. Acc from the user's last 30 purchases: content 0.3
and decay 0.75 gave 0.040, content 1.0 and decay 0.9 gave 0.068 (co-occurrence alone:
0.016). Few users means sparse co-occurrence, hence the strong content signal."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
from scipy import sparse

from .models import ProductDetails
from .search import product_text, tokenize

COOCCURRENCE_WINDOW = 10  # positions apart within one history that still count
RECENCY_DECAY = 0.9  # weight of an item relative to the one after it
CONTENT_WEIGHT = 1.0
POPULARITY_WEIGHT = 0.01


class Recommender:
    def __init__(self, products: list[ProductDetails], histories: list[list[str]]) -> None:
        self.asins = [p.asin for p in products]
        self.index = {asin: i for i, asin in enumerate(self.asins)}
        self._cooc, counts = _cooccurrence(self.index, histories)
        self._popularity = np.log1p(counts) / max(math.log1p(counts.max(initial=0)), 1.0)
        self._content = _tfidf([product_text(p) for p in products])

    def recommend(self, sequence: list[str], k: int) -> list[str]:
        """Top-k ASINs for a sequence of known ASINs (oldest first), excluding the sequence."""
        rows = [self.index[a] for a in sequence]
        weights = np.array([RECENCY_DECAY ** (len(rows) - 1 - i) for i in range(len(rows))])
        weights /= weights.sum()
        picked = sparse.csr_matrix(
            (weights, (np.zeros(len(rows), dtype=int), rows)), shape=(1, len(self.asins))
        )
        cooc = np.asarray((picked @ self._cooc).todense()).ravel()
        profile = picked @ self._content
        norm = math.sqrt(profile.multiply(profile).sum())
        content = (
            np.asarray((self._content @ profile.T).todense()).ravel() / norm
            if norm
            else np.zeros(len(self.asins))
        )
        score = cooc + CONTENT_WEIGHT * content + POPULARITY_WEIGHT * self._popularity
        score[rows] = -np.inf
        order = np.lexsort((np.arange(len(score)), -score))
        return [self.asins[i] for i in order[:k] if np.isfinite(score[i])]


def _cooccurrence(
    index: dict[str, int], histories: list[list[str]]
) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Symmetric co-occurrence weighted by 1/distance, cosine-normalised by item counts."""
    pairs: Counter[tuple[int, int]] = Counter()
    counts = np.zeros(len(index))
    for history in histories:
        items = [index[a] for a in history if a in index]
        for i, a in enumerate(items):
            counts[a] += 1
            for j in range(i + 1, min(i + 1 + COOCCURRENCE_WINDOW, len(items))):
                b = items[j]
                if a != b:
                    pairs[a, b] += 1.0 / (j - i)
                    pairs[b, a] += 1.0 / (j - i)
    n = len(index)
    if not pairs:
        return sparse.csr_matrix((n, n)), counts
    (rows, cols), values = zip(*pairs.keys()), list(pairs.values())
    rows, cols = np.array(rows), np.array(cols)
    values = np.array(values) / np.sqrt(counts[rows] * counts[cols])
    return sparse.csr_matrix((values, (rows, cols)), shape=(n, n)), counts


def _tfidf(texts: list[str]) -> sparse.csr_matrix:
    """L2-normalised TF-IDF rows (sublinear tf, smoothed idf)."""
    vocab: dict[str, int] = {}
    rows, cols, values = [], [], []
    for r, text in enumerate(texts):
        for token, tf in Counter(tokenize(text)).items():
            rows.append(r)
            cols.append(vocab.setdefault(token, len(vocab)))
            values.append(1.0 + math.log(tf))
    matrix = sparse.csr_matrix((values, (rows, cols)), shape=(len(texts), max(len(vocab), 1)))
    df = np.bincount(matrix.indices, minlength=matrix.shape[1])
    idf = np.log((1 + len(texts)) / (1 + df)) + 1.0
    matrix = matrix @ sparse.diags(idf)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sparse.csr_matrix(sparse.diags(1.0 / norms) @ matrix)
