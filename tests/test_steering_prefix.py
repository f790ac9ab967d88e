"""The prefix cache: shared instructions computed once, copied per row, and for
steered calls recomputed from the first steered layer up (steering/prefix.py)."""

import pytest
import torch

from steering import SiteKey, SteeringVector, rerun_from, steer
from steering.prefix import PrefixCache
from tests.helpers.tiny_models import FAMILIES, tiny_model


def left_padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    """ids, mask, positions (as `generate` numbers left-padded rows) and each row's pads."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([[0] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0), [width - len(r) for r in rows]


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_a_shifted_prefix_cache_equals_the_left_padded_batch(family):
    """Rows of different lengths, left-padded, take their shared prefix from the cache
    shifted per row: the logits equal running the padded batch in full."""
    loaded = tiny_model(family, seed=4)
    model = loaded.model
    if family == "gemma3":
        model.config.sliding_window = 64  # the prefix must fit the window; see the next test
    prefix = list(range(5, 17))
    rows = [prefix + [40, 41, 42, 43, 44], prefix + [50], prefix + [60, 61, 62]]
    ids, mask, positions, gaps = left_padded(rows)
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1]
        cache = PrefixCache().copy_for(model, prefix, len(rows), gaps)
        cached = model(input_ids=ids[:, len(prefix):], attention_mask=mask, past_key_values=cache,
                       position_ids=positions[:, len(prefix):], use_cache=True).logits[:, -1]
    assert torch.allclose(cached, full, atol=1e-5)


def test_a_prefix_longer_than_the_sliding_window_is_refused():
    loaded = tiny_model("gemma3", seed=4)  # sliding window 16
    with pytest.raises(ValueError, match="sliding window"):
        PrefixCache().copy_for(loaded.model, list(range(5, 25)), 2, [0, 1])


def four_layers(family: str):
    """A 4-layer model; Gemma 3 with sliding and full attention layers mixed."""
    if family == "gemma3":
        return tiny_model(family, seed=5, layers=4, sliding_window=64,
                          layer_types=["sliding_attention", "full_attention"] * 2)
    return tiny_model(family, seed=5, layers=4)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("site", ["whole", "attn", "mlp"])
def test_rerunning_the_steered_layers_equals_steering_the_whole_batch(family, site):
    """A steered call reuses the unsteered prefix below the first layer its vector
    changes and recomputes the layers above under the vector: the logits equal steering
    the full left-padded batch, at every layer; without the rerun they do not."""
    loaded = four_layers(family)
    model, cache_store = loaded.model, PrefixCache()
    prefix = list(range(5, 17))
    # pads 3, 14, 12 and 0: the 2nd row's outnumber the prefix's 12 tokens (all of its
    # prefix is fed again with the request), the 3rd's equal them
    rows = [prefix + list(range(40, 52)), prefix + [52], prefix + [60, 61, 62], prefix + list(range(70, 85))]
    ids, mask, positions, gaps = left_padded(rows)
    assert max(gaps) > len(prefix)
    rest = dict(attention_mask=mask, position_ids=positions[:, len(prefix):], use_cache=True)
    generator = torch.Generator().manual_seed(0)
    for layer in range(4):
        key = f"{site}.{layer}"
        vectors = [SteeringVector({key: torch.randn(32, generator=generator) * 10}, loaded.model_id, 32),
                   None, SteeringVector({key: torch.randn(32, generator=generator)}, loaded.model_id, 32),
                   SteeringVector({key: torch.randn(32, generator=generator) * 5}, loaded.model_id, 32)]
        start = rerun_from([SiteKey.parse(key)])
        with torch.no_grad():
            with steer(loaded, vectors, prompt_length=ids.shape[1]):
                full = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1]
            cache = cache_store.copy_for(model, prefix, len(rows), gaps)
            stale = cache_store.copy_for(model, prefix, len(rows), gaps)
            with steer(loaded, vectors, prompt_length=ids.shape[1]):
                cache_store.rerun_layers(model, cache, prefix, gaps, start)
                cached = model(input_ids=ids[:, len(prefix):], past_key_values=cache, **rest).logits[:, -1]
                unrun = model(input_ids=ids[:, len(prefix):], past_key_values=stale, **rest).logits[:, -1]
        assert torch.allclose(cached, full, atol=1e-5), key
        assert torch.allclose(cached[1], unrun[1], atol=1e-5), "the unsteered row changed"
        if layer < 3:  # the last layer's outputs over the prefix are read by no later token
            assert (unrun[3] - full[3]).abs().max() > 1e-4, f"{key}: the rerun did nothing"


def test_rerun_needs_the_copy_first_and_a_layer_in_range():
    loaded = four_layers("llama")
    store = PrefixCache()
    with pytest.raises(ValueError, match="copy_for first"):
        store.rerun_layers(loaded.model, None, list(range(5, 17)), [0], 1)
    cache = store.copy_for(loaded.model, list(range(5, 17)), 1, [0])
    with pytest.raises(ValueError, match="0..4"):
        store.rerun_layers(loaded.model, cache, list(range(5, 17)), [0], 5)


def test_rerun_from_is_the_first_layer_a_vector_changes():
    keys = [SiteKey("whole", 3), SiteKey("mlp", 5)]
    assert rerun_from(keys) == 4
    assert rerun_from([SiteKey("attn", 3), *keys]) == 3
    assert rerun_from([SiteKey("whole", 0)]) == 1


def test_the_same_prompt_twice_reuses_only_a_stored_prefix():
    """A decision's two passes send the same prompt twice: that must not store the
    whole prompt (request included) as a new entry."""
    loaded = tiny_model("llama")
    store = PrefixCache()
    instructions = list(range(5, 25))
    first, second = instructions + [40, 41], instructions + [50]
    assert store.shared_length([first]) == 0  # nothing to compare with
    assert store.shared_length([first]) == 0  # itself again: no entry to take
    assert store.shared_length([second]) == len(instructions)
    store.copy_for(loaded.model, instructions, 1)
    assert store.shared_length([second]) == len(instructions)  # now stored: taken
