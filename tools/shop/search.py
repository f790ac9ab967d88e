"""BM25 search over product text (title, brand, category, features, description).

bm25s scores every document; we rank with a stable sort on (-score, catalogue order)
ourselves, so equal scores never reorder between runs."""

from __future__ import annotations

import re

import bm25s
import numpy as np

from .models import ProductDetails

_TOKEN = re.compile(r"[a-z0-9]+")
# A short English stop list: enough to keep "the"/"for" from deciding a ranking.
STOPWORDS = frozenset(
    "a an and are as at be by for from has have i in is it its me my of on or our so "
    "that the their this to was we with you your".split()
)


def tokenize(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if t not in STOPWORDS]


def product_text(p: ProductDetails) -> str:
    """The indexed text; the title is counted twice because it names the product."""
    return " ".join([p.title, p.title, p.store, p.category, *p.features, *p.description])


class SearchIndex:
    """A BM25 index over a fixed list of products."""

    def __init__(self, products: list[ProductDetails]) -> None:
        self.asins = [p.asin for p in products]
        self._bm25 = bm25s.BM25()
        self._bm25.index([tokenize(product_text(p)) or ["<empty>"] for p in products],
                         show_progress=False)

    def search(self, query: str, k: int) -> list[str]:
        """The ASINs of the k best matches with a positive score, best first."""
        tokens = tokenize(query)
        if not tokens or not self.asins:
            return []
        scores = np.asarray(self._bm25.get_scores(tokens), dtype=np.float64)
        order = np.lexsort((np.arange(len(scores)), -scores))[:k]
        return [self.asins[i] for i in order if scores[i] > 0]
