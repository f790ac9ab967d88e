import pytest
import torch

from steering import SiteError, SiteKey, SiteMap, expand_sites, site_keys, steer, SteeringVector
from tests.helpers.tiny_models import FAMILIES, tiny_model


def test_gemma_sites_are_the_post_norm_outputs():
    loaded = tiny_model("gemma3")
    sites = SiteMap(loaded.model)
    layer = loaded.model.model.layers[1]
    assert sites.module(SiteKey("attn", 1)) is layer.post_attention_layernorm
    assert sites.module(SiteKey("mlp", 1)) is layer.post_feedforward_layernorm
    assert sites.module(SiteKey("whole", 1)) is layer


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_llama_like_sites_are_projection_and_mlp(family):
    loaded = tiny_model(family)
    layer = loaded.model.model.layers[0]
    sites = SiteMap(loaded.model)
    # On Llama `post_attention_layernorm` is the *pre*-MLP norm: it must not be the site.
    assert sites.module(SiteKey("attn", 0)) is layer.self_attn.o_proj
    assert sites.module(SiteKey("mlp", 0)) is layer.mlp


def test_gpt2_sites():
    loaded = tiny_model("gpt2")
    block = loaded.model.transformer.h[0]
    sites = SiteMap(loaded.model)
    assert sites.module(SiteKey("attn", 0)) is block.attn.c_proj
    assert sites.module(SiteKey("mlp", 0)) is block.mlp


def test_layer_out_of_range_and_bad_names_are_clear_errors():
    sites = SiteMap(tiny_model("llama").model)
    with pytest.raises(SiteError, match=r"layers 0\.\.1"):
        sites.module(SiteKey("attn", 5))
    with pytest.raises(SiteError, match="choose one of"):
        expand_sites("residual")
    with pytest.raises(SiteError, match="expected '<site>.<layer>'"):
        SiteKey.parse("attn-6")
    assert [str(k) for k in site_keys("attn+mlp", [0, 1])] == ["attn.0", "mlp.0", "attn.1", "mlp.1"]


def test_unmappable_architecture_raises_instead_of_steering_nothing():
    loaded = tiny_model("llama")
    for layer in loaded.model.model.layers:
        layer.self_attn.o_proj = None  # attention without an output projection
        del layer.self_attn.o_proj
    loaded.model.config.model_type = "mystery"
    with pytest.raises(SiteError, match="mystery"):
        SiteMap(loaded.model)


@pytest.mark.parametrize("family", FAMILIES)
def test_steering_effect_grows_with_strength(family):
    """Regression for the sandwich-norm trap: a vector added before a norm is rescaled
    away, so its effect would stay flat as the multiplier grows."""
    loaded = tiny_model(family)
    ids = loaded.tokenizer("search for running shoes", return_tensors="pt")["input_ids"]
    direction = torch.randn(32, generator=torch.Generator().manual_seed(1))
    changes = {}
    with torch.no_grad():
        base = loaded.model(ids).logits
        for site in ("attn", "mlp"):
            for alpha in (1e-4, 1e-3):
                vector = SteeringVector({f"{site}.0": direction * alpha}, "tiny", 32)
                with steer(loaded, vector):
                    changes[site, alpha] = float((loaded.model(ids).logits - base).norm())
    for site in ("attn", "mlp"):
        assert changes[site, 1e-3] > 5 * changes[site, 1e-4] > 0
