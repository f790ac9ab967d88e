"""`fints bench steering`: what steering costs at decode time, measured in one run.

Prefill (the prompt read in one forward) and decode (one token per forward, KV cache
kept) are timed separately. Beside decode stands the bound this machine allows: the
bytes of weights a decode step reads (every parameter once; a tied embedding counts
once, read whole by the output head) over the memory bandwidth measured by a copy
benchmark in the same run, reported as `decode_bandwidth_ratio` (achieved / bound).
Unsteered and steered runs are interleaved (A B C D E, repeated) and each figure is the
median of the repeats with its spread, so a noisy shared machine moves both sides alike
and the ratios stay meaningful.
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
from steering.compat import cache_keyword, returned_cache
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
KINDS = ("whole", "attn", "mlp", "attn+mlp")


def _random_vector(model: LoadedModel, sites: str, layer: int, seed: int) -> SteeringVector:
    gen = torch.Generator().manual_seed(seed)
    tensors = {str(k): torch.randn(model.hidden_size, generator=gen) for k in site_keys(sites, [layer])}
    return SteeringVector(tensors, model.model_id, model.hidden_size).to(model.device, model.dtype)


def weight_bytes_per_step(model: torch.nn.Module) -> int:
    """Bytes of parameters one decode step reads: each distinct tensor once (a tied head
    is the input embedding, read whole), an untied input embedding not at all (one row
    per token is gathered from it)."""
    embedding = model.get_input_embeddings().weight
    output = model.get_output_embeddings()
    head = output.weight if output is not None else None
    seen: dict[int, int] = {}
    for param in model.parameters():
        if param is embedding and param is not head:
            continue
        seen[param.data_ptr()] = param.numel() * param.element_size()
    return sum(seen.values())


def copy_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """Memory bandwidth in bytes/s from `dst.copy_(src)` (each byte read once, written once)."""
    src = torch.ones(megabytes * 2**20 // 4, dtype=torch.float32)
    dst = torch.empty_like(src)
    dst.copy_(src)  # pages touched before timing
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - started)
    return 2 * src.numel() * src.element_size() / min(times)


def prefill_decode(model: LoadedModel, prompts: list[str], tokens: int, vectors=None) -> tuple[float, float]:
    """Seconds of the prefill forward and of `tokens` greedy one-token forwards after it."""
    tok = model.tokenizer
    tok.padding_side = "left"
    batch = tok(prompts, return_tensors="pt", padding=True).to(model.device)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    with torch.inference_mode(), steer(model, vectors):
        started = time.perf_counter()
        out = model.model(input_ids=ids, attention_mask=mask, use_cache=True, logits_to_keep=1)
        prefill = time.perf_counter() - started
        cache = returned_cache(out)
        keyword = cache_keyword(model.model)
        next_ids = out.logits[:, -1].argmax(-1, keepdim=True)
        started = time.perf_counter()
        for _ in range(tokens):
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
            out = model.model(input_ids=next_ids, attention_mask=mask, use_cache=True, **{keyword: cache})
            cache = returned_cache(out)
            next_ids = out.logits[:, -1].argmax(-1, keepdim=True)
        decode = time.perf_counter() - started
    return prefill, decode


def _summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4), "values": [round(v, 4) for v in values]}


def run_benchmark(model: LoadedModel, *, tokens: int = 32, repeats: int = 3, layer: int = 6) -> dict:
    vectors = {kind: _random_vector(model, kind, layer, seed=i).scaled(0.01) for i, kind in enumerate(KINDS)}
    prompt = [PROMPTS[0]]
    prompt_tokens = len(model.tokenizer(prompt[0])["input_ids"])
    prefill_decode(model, prompt, 4)  # warm-up
    bandwidth_before = copy_bandwidth()
    prefill_s: dict[str, list[float]] = {"unsteered": [], **{k: [] for k in KINDS}}
    decode_s: dict[str, list[float]] = {"unsteered": [], **{k: [] for k in KINDS}}
    with tqdm(total=repeats * (1 + len(KINDS)), desc="prefill/decode") as bar:
        for _ in range(repeats):
            for kind in ("unsteered", *KINDS):
                p, d = prefill_decode(model, prompt, tokens, vectors.get(kind))
                prefill_s[kind].append(p)
                decode_s[kind].append(d)
                bar.update()
    bandwidth = max(bandwidth_before, copy_bandwidth())
    step_bytes = weight_bytes_per_step(model.model)
    decode_tps = tokens / statistics.median(decode_s["unsteered"])
    bound_tps = bandwidth / step_bytes
    # Ratio per repeat (each steered run against the unsteered run of the same repeat).
    ratios = {k: [s / u for s, u in zip(decode_s[k], decode_s["unsteered"])] for k in KINDS}
    per_row = [_random_vector(model, "attn+mlp", layer, seed=100 + i).scaled(0.01) for i in range(8)]
    sequential: list[float] = []
    batched: list[float] = []
    for _ in tqdm(range(max(2, repeats // 2)), desc="batch of 8"):
        sequential.append(sum(sum(prefill_decode(model, [p], tokens, v)) for p, v in zip(PROMPTS, per_row)))
        batched.append(sum(prefill_decode(model, PROMPTS, tokens, per_row)))
    return {
        "model_id": model.model_id,
        "dtype": str(model.dtype).removeprefix("torch."),
        "linear_form": model.linear_form,
        "tokens_per_generation": tokens,
        "prompt_tokens": prompt_tokens,
        "repeats": repeats,
        "layer": layer,
        "prefill_tokens_per_s": round(prompt_tokens / statistics.median(prefill_s["unsteered"]), 2),
        "decode_tokens_per_s": round(decode_tps, 2),
        "decode_step_ms": round(1000 / decode_tps, 2),
        "weight_bytes_per_decode_step": step_bytes,
        "copy_bandwidth_gb_per_s": round(bandwidth / 1e9, 3),
        "decode_tokens_per_s_bound": round(bound_tps, 2),
        "decode_bandwidth_ratio": round(decode_tps / bound_tps, 4),
        "decode_tokens_per_s_steered": {k: round(tokens / statistics.median(decode_s[k]), 2) for k in KINDS},
        "steered_vs_unsteered_decode": {k: _summary(v) for k, v in ratios.items()},
        "steered_vs_unsteered_decode_max_median": round(max(statistics.median(v) for v in ratios.values()), 4),
        "decode_s": {k: _summary(v) for k, v in decode_s.items()},
        "prefill_s": {k: _summary(v) for k, v in prefill_s.items()},
        "batch8_per_row_speedup": round(statistics.median(sequential) / statistics.median(batched), 3),
        "batch8_sequential_s": round(statistics.median(sequential), 3),
        "batch8_batched_s": round(statistics.median(batched), 3),
        "targets": {"steered_vs_unsteered_decode": 1.03, "decode_bandwidth_ratio": 0.5},
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


def main(out_dir: str, model: str | None = None, tokens: int = 32, repeats: int = 3) -> Path:
    loaded = load_model(model)
    result = run_benchmark(loaded, tokens=tokens, repeats=repeats)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bench_steering.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
