"""`fints bench steering`: what steering costs at decode time, measured in one run.

Unsteered and steered generations are interleaved (ABAB...) and each figure is the
median of several repeats, so a noisy shared machine moves both sides alike and the
ratio stays meaningful.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from steering.apply import steer
from steering.model import LoadedModel, load_model
from steering.sites import site_keys
from steering.vectors import SteeringVector

PROMPTS = [
    "Request: something for my morning runs\nCall:",
    "Request: anything new for the kitchen?\nCall:",
    "Request: write that the blender broke after a week\nCall:",
    "Request: a gift for my sister who loves camping\nCall:",
    "Request: what goes with the desk lamp I bought\nCall:",
    "Request: find waterproof hiking boots under 100 dollars\nCall:",
    "Request: I need a new phone case\nCall:",
    "Request: got anything for my cat\nCall:",
]


def _random_vector(model: LoadedModel, sites: str, layer: int, seed: int) -> SteeringVector:
    gen = torch.Generator().manual_seed(seed)
    tensors = {str(k): torch.randn(model.hidden_size, generator=gen) for k in site_keys(sites, [layer])}
    return SteeringVector(tensors, model.model_id, model.hidden_size).to(model.device, model.dtype)


def _generate(model: LoadedModel, prompts: list[str], tokens: int, vectors=None) -> float:
    tok = model.tokenizer
    tok.padding_side = "left"
    batch = tok(prompts, return_tensors="pt", padding=True).to(model.device)
    started = time.perf_counter()
    with torch.no_grad(), steer(model, vectors):
        model.model.generate(
            **batch, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
            pad_token_id=tok.pad_token_id,
        )
    return time.perf_counter() - started


def run_benchmark(model: LoadedModel, *, tokens: int = 32, repeats: int = 5, layer: int = 6) -> dict:
    kinds = ("whole", "attn", "mlp", "attn+mlp")
    vectors = {kind: _random_vector(model, kind, layer, seed=i) for i, kind in enumerate(kinds)}
    prompt = [PROMPTS[0]]
    _generate(model, prompt, 4)  # warm-up
    times: dict[str, list[float]] = {"unsteered": [], **{k: [] for k in kinds}}
    steps = repeats * (1 + len(kinds))
    with tqdm(total=steps, desc="decode speed") as bar:
        for _ in range(repeats):
            for kind in ("unsteered", *kinds):
                vector = None if kind == "unsteered" else vectors[kind].scaled(0.01)
                times[kind].append(_generate(model, prompt, tokens, vector))
                bar.update()
    median = {k: statistics.median(v) for k, v in times.items()}
    per_row = [_random_vector(model, "attn+mlp", layer, seed=100 + i).scaled(0.01) for i in range(8)]
    sequential: list[float] = []
    batched: list[float] = []
    for _ in tqdm(range(max(2, repeats // 2)), desc="batch of 8"):
        sequential.append(sum(_generate(model, [p], tokens, v) for p, v in zip(PROMPTS, per_row)))
        batched.append(_generate(model, PROMPTS, tokens, per_row))
    return {
        "model_id": model.model_id,
        "tokens_per_generation": tokens,
        "repeats": repeats,
        "layer": layer,
        "decode_tokens_per_s_unsteered": round(tokens / median["unsteered"], 2),
        "decode_tokens_per_s_steered": {k: round(tokens / median[k], 2) for k in kinds},
        "steer_overhead_ratio": round(median["attn+mlp"] / median["unsteered"], 4),
        "steer_overhead_ratio_per_site": {k: round(median[k] / median["unsteered"], 4) for k in kinds},
        "batch8_per_row_speedup": round(statistics.median(sequential) / statistics.median(batched), 3),
        "batch8_sequential_s": round(statistics.median(sequential), 3),
        "batch8_batched_s": round(statistics.median(batched), 3),
        "machine": machine(),
    }


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "date": time.strftime("%Y-%m-%d"),
    }


def main(out_dir: str, model: str | None = None, tokens: int = 32, repeats: int = 5) -> Path:
    loaded = load_model(model)
    result = run_benchmark(loaded, tokens=tokens, repeats=repeats)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bench_steering.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
