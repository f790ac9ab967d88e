"""Tiny random decoder-only models and tokenizers built in-process (no downloads).

Two layers, hidden size 32: fast enough for exact-equality tests on every family the
steering core supports. Tokenizers are trained here on a small corpus, one per
tokenizer family (byte-level BPE as in GPT-2/Llama 3/Qwen, metaspace Unigram as in
SentencePiece models such as Gemma and Mistral).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
from transformers import PreTrainedTokenizerFast

from steering.model import LoadedModel

CORPUS = [
    "search for running shoes with good cushioning",
    "get recommendations from my history please",
    "write a review: the blender broke after a week",
    '{"name": "search_product_by_query", "arguments": {"query": "adidas soccer cleats"}}',
    "Request: something for my runs\nCall: get_recommendations_by_history",
    "the quick brown fox jumps over the lazy dog 0123456789",
] * 4
VOCAB = 300


@lru_cache(maxsize=None)
def tokenizer(family: str) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    if family == "bpe":
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=VOCAB, special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
    elif family == "unigram":
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=VOCAB, special_tokens=specials, unk_token="<unk>")
    else:
        raise ValueError(family)
    tok.train_from_iterator(CORPUS, trainer)
    from tokenizers.processors import TemplateProcessing

    tok.post_processor = TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tok.token_to_id("<bos>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def config(family: str, layers: int = 2, **overrides: Any):
    from transformers import Gemma3TextConfig, GPT2Config, LlamaConfig, Qwen2Config

    common = dict(vocab_size=VOCAB, pad_token_id=0, bos_token_id=1, eos_token_id=2, **overrides)
    if family == "llama":
        return LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                           num_attention_heads=4, num_key_value_heads=2, **common)
    if family == "qwen2":
        return Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                           num_attention_heads=4, num_key_value_heads=2, **common)
    if family == "gemma3":
        return Gemma3TextConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                                num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                                **{"sliding_window": 16, **common})
    if family == "gpt2":
        return GPT2Config(n_embd=32, n_layer=layers, n_head=4, n_positions=512, vocab_size=VOCAB,
                          bos_token_id=1, eos_token_id=2, **overrides)
    raise ValueError(family)


FAMILIES = ("llama", "qwen2", "gemma3", "gpt2")


def tiny_model(family: str, tokenizer_family: str = "bpe", seed: int = 0, layers: int = 2,
               **overrides: Any) -> LoadedModel:
    """A random model of `family` (`overrides`: extra config fields)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config(family, layers, **overrides), dtype=torch.float32)
    model.eval().requires_grad_(False)
    return LoadedModel(model, tokenizer(tokenizer_family), f"tiny-{family}", "config", 0.0)
