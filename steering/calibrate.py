"""The typical activation norm at each site, measured once per model and stored.

Relative steering strength needs a yardstick per (site, layer). For all three sites it
is the norm of the residual stream after that layer: `attn` and `mlp` contributions are
small next to the residual they join, and the residual is what a vector competes with
(measured on the bundled model: scaling by the site's own norm left `attn` inert).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from steering.apply import site_map_of
from steering.hooks import hidden_of, hooked
from steering.model import LoadedModel, default_cache_dir

CALIBRATION_TEXTS = (
    "I am looking for running shoes with good cushioning under 80 dollars.",
    "Recommend something similar to the headphones I bought last month.",
    "Great blender, sturdy and easy to clean. Five stars.",
    "The weather today is mild, with light rain in the afternoon.",
    "Search for a stainless steel water bottle from Hydro Flask.",
    "def add(a, b):\n    return a + b",
)


def reference_norms(model: LoadedModel, cache_dir: str | os.PathLike[str] | None = None) -> dict[str, float]:
    """{"site.layer": typical residual norm}, cached as JSON per model id and shape.

    A stored file is used only when it names this model and covers every layer: two
    checkpoints can share an id and width yet differ in depth (a cut-down copy), and a
    yardstick missing a layer would fail the first request steered there.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    layers = site_map_of(model).num_layers
    shape = f"{model.model_id}:{model.hidden_size}:{layers}"
    path = root / "norms" / f"{hashlib.sha256(shape.encode()).hexdigest()[:16]}.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        norms = {k: float(v) for k, v in stored.get("norms", {}).items()}
        if stored.get("model_id") == model.model_id and all(
                f"whole.{layer}" in norms for layer in range(layers)):
            return norms
    norms = measure_norms(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"model_id": model.model_id, "norms": norms}, indent=1))
    os.replace(tmp, path)
    return norms


def measure_norms(model: LoadedModel) -> dict[str, float]:
    """Mean token L2 norm of the residual stream after each layer, keyed for every site."""
    sites = site_map_of(model)
    sums = [0.0] * sites.num_layers
    counts = [0] * sites.num_layers

    def reader(layer: int):
        def hook(_m: torch.nn.Module, _a: object, output: object) -> None:
            hidden = hidden_of(output).float()[0, 1:]  # skip the attention-sink first token
            sums[layer] += float(hidden.norm(dim=-1).sum())
            counts[layer] += hidden.shape[0]

        return hook

    hooks = [(layer_module, reader(i)) for i, layer_module in enumerate(sites.layers)]
    with model.lock, torch.no_grad(), hooked(hooks):
        for text in CALIBRATION_TEXTS:
            ids = model.tokenizer(text, return_tensors="pt").to(model.device)
            model.model(**ids, use_cache=False)
    norms: dict[str, float] = {}
    for layer in range(sites.num_layers):
        value = sums[layer] / max(counts[layer], 1)
        for site in ("whole", "attn", "mlp"):
            norms[f"{site}.{layer}"] = round(value, 4)
    return norms
