"""Steering vectors from contrastive pairs, by teacher forcing (no generation).

For each pair the prompt is followed once by the answer the user accepted and once by
the answer made without their context; the mean activation over the *answer tokens*
of the first minus that of the second is the vector, per (site, layer). Prompt and
answer are tokenized separately and concatenated, so the boundary between them is
exact by construction (no merge across it can shift a position).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from steering.apply import site_map_of
from steering.compat import cache_keyword
from steering.hooks import hidden_of, hooked
from steering.model import LoadedModel
from steering.pairs import ContrastPair
from steering.sites import SiteKey, site_keys


def encode_with_answer(tokenizer: Any, prompt: str, answer: str) -> tuple[list[int], int]:
    """Token ids of prompt + answer, and the index where the answer starts."""
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    if not answer_ids:
        raise ValueError(f"answer {answer!r} tokenizes to nothing; a vector needs answer tokens")
    return list(prompt_ids) + list(answer_ids), len(prompt_ids)


def mean_answer_activations(
    model: LoadedModel,
    texts: Sequence[tuple[str, str]],
    keys: Sequence[SiteKey],
    *,
    reuse_prefix: bool = True,
) -> dict[str, torch.Tensor]:
    """Mean activation over answer tokens, per site key: {key: (len(texts), hidden)}.

    The token prefix all texts share (the prompt's instructions) is run once and
    reused from `model.prefixes`; only the rest of each text is computed here.
    """
    if not keys:
        return {}
    tokenizer = model.tokenizer
    encoded = [encode_with_answer(tokenizer, prompt, answer) for prompt, answer in texts]
    rows = [ids for ids, _ in encoded]
    prompts = [ids[:start] for ids, start in encoded]  # one pair's answers share one prompt
    shared = model.prefixes.shared_length(prompts) if reuse_prefix else 0
    width = max(len(ids) for ids in rows) - shared
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), shared + width), dtype=torch.long)
    attention[:, :shared] = 1
    answer_mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for row, (ids, start) in enumerate(encoded):  # right padding: positions stay 0..n-1
        rest = ids[shared:]
        input_ids[row, : len(rest)] = torch.tensor(rest)
        attention[row, shared : shared + len(rest)] = 1
        answer_mask[row, start - shared : len(rest)] = True
    device = model.device
    weights = answer_mask.to(device, torch.float32)
    weights = weights / weights.sum(dim=1, keepdim=True)
    sites = site_map_of(model)
    means: dict[str, torch.Tensor] = {}

    def reader(key: str):
        def hook(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
            hidden = hidden_of(output).float()
            means[key] = torch.einsum("bs,bsh->bh", weights, hidden)

        return hook

    def enough(_module: nn.Module, _args: tuple[Any, ...], _output: Any) -> None:
        raise _AllRead

    # Readers first: forward hooks fire in the order registered, so the deepest layer's
    # own reader has its value before `enough` stops the pass.
    hooks = [(sites.module(key), reader(str(key))) for key in keys]  # checks each layer
    deepest = sites.module(SiteKey("whole", max(key.layer for key in keys)))
    hooks.append((deepest, enough))
    with model.lock, torch.no_grad():
        cache = model.prefixes.copy_for(model.model, rows[0][:shared], len(rows)) if shared else None
        with hooked(hooks):
            try:
                sites.decoder(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                              use_cache=cache is not None, **{cache_keyword(sites.decoder): cache})
            except _AllRead:
                pass
    return means


class _AllRead(Exception):
    """Stops an extraction pass once every site it reads has its value: the layers above
    the deepest site and the output head (a 262k-word vocabulary for Gemma 3) would only
    cost time (the cache copy they would have filled is thrown away)."""


def extract_vectors(
    model: LoadedModel,
    pairs: Sequence[ContrastPair],
    sites: str | Iterable[str] = "attn+mlp",
    layers: Iterable[int] = (6,),
    *,
    batch_size: int = 8,
    progress: bool = False,
) -> list[dict[str, torch.Tensor]]:
    """One {"site.layer": (hidden,) tensor} per pair: mean(positive) - mean(negative).

    A text that several pairs of a batch share (one accepted call contrasted with each
    other tool) is run once."""
    keys = site_keys(sites, layers)
    out: list[dict[str, torch.Tensor]] = []
    for start in tqdm(range(0, len(pairs), batch_size), desc="extracting", disable=not progress):
        chunk = pairs[start : start + batch_size]
        texts = list(dict.fromkeys([(p.prompt, p.positive) for p in chunk] + [(p.prompt, p.negative) for p in chunk]))
        row_of = {text: row for row, text in enumerate(texts)}
        means = mean_answer_activations(model, texts, keys)
        for p in chunk:
            pos, neg = row_of[(p.prompt, p.positive)], row_of[(p.prompt, p.negative)]
            out.append({k: (m[pos] - m[neg]).cpu() for k, m in means.items()})
    return out
