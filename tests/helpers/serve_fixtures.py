"""Building blocks for the service tests: a real agent on a tiny model, a real shop, a
real memory store with seeded per-user vectors (imported by tests/helpers/serve.py and
the test_serve*, test_faults*, test_fuzz*, test_scaleout* and other modules)."""

from __future__ import annotations

import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

# Layer 1 exists in the 2-layer tiny models; "all" positions so that steering visibly
# changes every part of a call (the plumbing under test), not only the tool name.
TINY_STEERING = {"layers": [1], "alpha": 8.0, "threshold": 0.2, "positions": "all"}
MAX_NEW_TOKENS = 12  # tiny random models never finish a call; keep their rambling short
SITE_KEYS = ("whole.1", "attn.1", "mlp.1")
MEMORY = {
    "U_CAMPER01": ["something for my trips outdoors", "stuff for camping in the mountains"],
    "U_COFFEE01": ["something for my morning brew", "coffee gear for the kitchen"],
    "U_RUNNER01": ["gear for my runs", "running shoes for the trail"],
}
RECOMMEND = {"name": "get_recommendations_by_history", "args": {"product_sequence": ["B0TENT0001"]}}


def seed_memory(store: Any, memory: dict[str, list[str]] = MEMORY, seed: int = 0, norm: float = 1.0) -> list[str]:
    """One random entry per (user, request): vectors of the given norm at every site."""
    from memory import MemoryEntry, digest_arguments, make_entry_id

    rng = np.random.default_rng(seed)
    entries = []
    for user, requests in memory.items():
        for i, request in enumerate(requests):
            vectors = {}
            for key in SITE_KEYS:
                v = rng.normal(size=store.hidden_size).astype(np.float32)
                vectors[key] = v * (norm / np.linalg.norm(v))
            entries.append(MemoryEntry(user, request, vectors, RECOMMEND["name"],
                                       digest_arguments(RECOMMEND["args"]), time.time() - i,
                                       "bootstrap", make_entry_id(user, request)))
    store.add(entries, hygiene=False)
    return [e.entry_id for e in entries]


@contextmanager
def tiny_agent(
    root: Path,
    *,
    store_location: Any = None,
    shop_url: str | None = None,
    checkpointer: Any = None,
    method: str = "steer-attn+mlp-attentive",
    loaded: Any = None,
    online_memory: bool = True,
    negatives: str | None = None,
) -> Iterator[Any]:
    """A `FintsAgent` on the tiny Gemma 3, the sample shop (started here unless
    `shop_url`), and a MemoryStore at `store_location` (default: a dir under root);
    `negatives`: the learner's negative policy (None: the one the store records)."""
    from agent.methods import parse_method
    from agent.runtime import FintsAgent
    from memory import MemoryStore
    from common.embedding import load_embedder
    from tests.helpers.tiny_models import tiny_model
    from tools import HttpTransport, ShopServer
    from tools.data import load_dataset
    from tools.shop.sample import write_sample_dataset

    data = root / "data"
    if not (data / "manifest.json").exists():
        write_sample_dataset(data)
    model = loaded or tiny_model("gemma3")
    embedder = load_embedder()
    with ExitStack() as stack:
        store = stack.enter_context(MemoryStore(store_location or root / "memory", model.model_id,
                                                model.hidden_size, embedder))
        if shop_url is None:
            shop_url = stack.enter_context(ShopServer(data)).url
        transport = stack.enter_context(HttpTransport(shop_url))
        agent = FintsAgent(loaded=model, dataset=load_dataset(data), store=store, transport=transport,
                           method=parse_method(method, model.model_id, **TINY_STEERING),
                           embedder=embedder, checkpointer=checkpointer, online_memory=online_memory,
                           negatives=negatives)
        agent.chat.max_new_tokens = MAX_NEW_TOKENS
        stack.callback(agent.close)
        yield agent


def service_for(agent: Any, positions: str = TINY_STEERING["positions"], **settings: Any) -> Any:
    """An `AgentService` whose method names resolve with the tiny model's steering settings."""
    from agent.serve_app import AgentService, ServeSettings

    return AgentService(agent, ServeSettings(**settings), **(TINY_STEERING | {"positions": positions}))


def hooks_left(model: Any) -> int:
    """Forward (pre-)hooks still registered anywhere on the model: must be 0 between requests."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
