import pytest
import torch

from steering import SteeringNotAppliedError, SteeringVector, VectorError, site_map_of, steer
from steering.hooks import hidden_of, hooked
from tests.helpers.tiny_models import FAMILIES, tiny_model

PROMPT = "search for running shoes"


def _vector(keys, seed=0, scale=1.0, hidden=32):
    gen = torch.Generator().manual_seed(seed)
    return SteeringVector({k: torch.randn(hidden, generator=gen) * scale for k in keys}, "tiny", hidden)


def _record(loaded, key, ids, vector=None, **kwargs):
    """Output of one site module, read by a hook registered after the steering hook."""
    seen = []
    module = site_map_of(loaded).module(__import__("steering").SiteKey.parse(key))
    with torch.no_grad(), steer(loaded, vector, **kwargs):
        with hooked([(module, lambda m, a, out: seen.append(hidden_of(out).clone()))]):
            loaded.model(ids)
    return seen[0]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("key", ["whole.1", "attn.0", "mlp.1"])
def test_steered_site_equals_original_plus_delta(family, key):
    loaded = tiny_model(family)
    ids = loaded.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    vector = _vector([key])
    before = _record(loaded, key, ids)
    after = _record(loaded, key, ids, vector)
    assert torch.equal(after, before + vector.tensors[key])


@pytest.mark.parametrize("family", FAMILIES)
def test_leaving_the_context_restores_the_exact_model(family):
    loaded = tiny_model(family)
    ids = loaded.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = loaded.model(ids).logits
        with steer(loaded, _vector(["attn.0", "mlp.0", "whole.1"])):
            during = loaded.model(ids).logits
        after = loaded.model(ids).logits
    assert not torch.equal(before, during)
    assert torch.equal(before, after)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in loaded.model.modules())


def test_hooks_are_removed_when_the_block_raises():
    loaded = tiny_model("llama")
    with pytest.raises(RuntimeError, match="boom"):
        with steer(loaded, _vector(["attn.0"])):
            raise RuntimeError("boom")
    assert all(not m._forward_hooks for m in loaded.model.modules())


def test_a_bad_layer_registers_nothing():
    loaded = tiny_model("llama")
    with pytest.raises(Exception, match="out of range"):
        with steer(loaded, _vector(["attn.0", "mlp.9"])):
            pass
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in loaded.model.modules())


@pytest.mark.parametrize("positions", ["prompt", "generated"])
def test_position_modes_change_exactly_their_positions(positions):
    loaded = tiny_model("gemma3")
    ids = loaded.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    split = 3
    vector = _vector(["mlp.0"])
    before = _record(loaded, "mlp.0", ids)
    after = _record(loaded, "mlp.0", ids, vector, positions=positions, prompt_length=split)
    changed = (after != before).any(dim=-1)[0]
    expected = torch.arange(ids.shape[1]) < split
    assert torch.equal(changed, expected if positions == "prompt" else ~expected)


@pytest.mark.parametrize("family", ["gemma3", "llama"])
@pytest.mark.parametrize("positions", ["all", "prompt", "generated"])
def test_generation_with_and_without_kv_cache_agrees(family, positions):
    loaded = tiny_model(family)
    ids = loaded.tokenizer(PROMPT, return_tensors="pt")
    vector = _vector(["attn.0", "mlp.1"], scale=3.0)
    outs = {}
    for use_cache in (True, False):
        with torch.no_grad(), steer(loaded, vector, positions=positions):
            outs[use_cache] = loaded.model.generate(
                **ids, max_new_tokens=6, do_sample=False, use_cache=use_cache, pad_token_id=0
            )
    with torch.no_grad():
        plain = loaded.model.generate(**ids, max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(outs[True], outs[False])
    assert not torch.equal(outs[True], plain)  # the vector is strong enough to matter


def test_generated_mode_steers_generated_tokens_with_the_kv_cache():
    loaded = tiny_model("llama")
    ids = loaded.tokenizer(PROMPT, return_tensors="pt")
    with torch.no_grad(), steer(loaded, _vector(["mlp.0"]), positions="generated") as run:
        loaded.model.generate(**ids, max_new_tokens=4, do_sample=False, pad_token_id=0)
    # prefill is not steered, the three decode steps (one token each) are
    assert run.prompt_length == ids["input_ids"].shape[1]
    assert run.fired["mlp.0"] == 3 and run.moved["mlp.0"] == 3


@pytest.mark.parametrize("family", ["gemma3", "llama", "qwen2"])
def test_per_row_batch_matches_single_requests(family):
    loaded = tiny_model(family)
    tok = loaded.tokenizer
    tok.padding_side = "left"
    prompts = ["search for running shoes", "write a review", "get recommendations from my history please"]
    rows = [_vector(["attn.0", "mlp.1"], seed=1, scale=2.0), None, _vector(["attn.0", "mlp.1"], seed=2, scale=2.0)]
    singles = []
    with torch.no_grad():
        for prompt, row in zip(prompts, rows):
            with steer(loaded, row):
                out = loaded.model.generate(**tok(prompt, return_tensors="pt"), max_new_tokens=5,
                                            do_sample=False, pad_token_id=0, output_scores=True,
                                            return_dict_in_generate=True)
            singles.append(out)
        batch = tok(prompts, return_tensors="pt", padding=True)
        with steer(loaded, rows):
            batched = loaded.model.generate(**batch, max_new_tokens=5, do_sample=False, pad_token_id=0,
                                            output_scores=True, return_dict_in_generate=True)
    width = batch["input_ids"].shape[1]
    for i, single in enumerate(singles):
        assert torch.equal(batched.sequences[i, width:], single.sequences[0, -5:])
        # padding changes the attention kernels' arithmetic slightly; 1e-4 is the tolerance
        first_step = batched.scores[0][i]
        assert torch.allclose(first_step, single.scores[0][0], atol=1e-4)


def test_row_count_must_match_the_batch():
    loaded = tiny_model("llama")
    batch = loaded.tokenizer(["a b", "c d", "e f"], return_tensors="pt", padding=True)
    with pytest.raises(VectorError, match="2 per-row vectors given but the batch has 3"):
        with torch.no_grad(), steer(loaded, [_vector(["attn.0"]), None]):
            loaded.model(**batch)


def test_guard_raises_when_a_vector_changes_nothing():
    loaded = tiny_model("llama")
    ids = loaded.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    negligible = SteeringVector({"whole.0": torch.full((32,), 1e-30)}, "tiny", 32)
    with pytest.raises(SteeringNotAppliedError, match="never changed an activation"):
        with torch.no_grad(), steer(loaded, negligible):
            loaded.model(ids)
