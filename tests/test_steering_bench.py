"""steering.bench on tiny random models: what its figures are computed from."""

from __future__ import annotations

import torch

from steering.bench import KINDS, prefill_decode, run_benchmark, weight_bytes_per_step
from tests.helpers.tiny_models import tiny_model


def test_weight_bytes_count_a_tied_embedding_once():
    loaded = tiny_model("gemma3")
    model = loaded.model
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    distinct = {p.data_ptr(): p.numel() * p.element_size() for p in model.parameters()}
    head = model.get_output_embeddings().weight
    assert weight_bytes_per_step(model) == sum(distinct.values())
    assert weight_bytes_per_step(model) < sum(p.numel() * 4 for p in model.parameters()) + head.numel() * 4


def test_prefill_decode_writes_the_tokens_greedy_generate_writes(monkeypatch):
    loaded = tiny_model("llama")
    prompt = ["Request: a tent\nCall:"]
    written: list[int] = []
    original = loaded.model.forward

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        written.append(int(out.logits[0, -1].argmax()))
        return out

    monkeypatch.setattr(loaded.model, "forward", spy)
    prefill_decode(loaded, prompt, 5)
    monkeypatch.undo()
    ids = loaded.tokenizer(prompt, return_tensors="pt")
    expected = loaded.model.generate(**ids, max_new_tokens=6, min_new_tokens=6, do_sample=False,
                                     pad_token_id=loaded.tokenizer.pad_token_id)
    assert written == expected[0, ids["input_ids"].shape[1]:].tolist()


def test_report_has_prefill_decode_bound_and_ratios_per_site():
    loaded = tiny_model("gemma3")
    result = run_benchmark(loaded, tokens=3, repeats=3, layer=1)
    for key in ("prefill_tokens_per_s", "decode_tokens_per_s", "decode_bandwidth_ratio",
                "weight_bytes_per_decode_step", "copy_bandwidth_gb_per_s"):
        assert result[key] > 0
    assert set(result["steered_vs_unsteered_decode"]) == set(KINDS)
    for summary in result["steered_vs_unsteered_decode"].values():
        assert len(summary["values"]) == 3
        assert summary["min"] <= summary["median"] <= summary["max"]
    bound = result["copy_bandwidth_gb_per_s"] * 1e9 / result["weight_bytes_per_decode_step"]
    assert abs(result["decode_tokens_per_s_bound"] - bound) <= 0.01 * bound + 0.01
    assert torch.get_num_threads() == result["machine"]["torch_threads"]
