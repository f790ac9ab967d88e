"""CPU linear layers (steering.linears): the tall float32 form, and bfloat16 weights with
a float32 residual stream."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from steering import SteeringVector, steer
from steering.bench import weight_bytes_per_step
from steering.linears import (
    MAX_TALL_ROWS,
    ROW_BLOCKS,
    BFloat16Linear,
    TallLinear,
    resolve_linear_dtype,
    use_cpu_linears,
)
from steering.sites import site_keys
from tests.helpers.tiny_models import FAMILIES, tiny_model


@pytest.mark.parametrize("outputs", [ROW_BLOCKS // 2, 300, 20 * ROW_BLOCKS])  # fewer rows than blocks, a remainder, none
@pytest.mark.parametrize("rows", [1, 4, MAX_TALL_ROWS + 1])
def test_tall_linear_gives_the_linear_product(rows, outputs):
    torch.manual_seed(0)
    linear = nn.Linear(32, outputs, bias=True)
    tall = nn.Linear(32, outputs, bias=True)
    tall.load_state_dict(linear.state_dict())
    tall.__class__ = TallLinear
    x = torch.randn(rows, 1, 32)
    assert torch.allclose(tall(x), linear(x), atol=1e-5)
    assert tall(x).shape == (rows, 1, outputs)
    # each output row is its own weight row's product: a permuted weight permutes it
    order = torch.randperm(outputs)
    permuted = nn.Linear(32, outputs, bias=True)
    permuted.load_state_dict({"weight": linear.weight[order], "bias": linear.bias[order]})
    permuted.__class__ = TallLinear
    assert torch.allclose(permuted(x), tall(x)[..., order], atol=1e-5)
    # a weight stored transposed (not contiguous) gives the same product
    strided = nn.Linear(32, outputs, bias=True)
    strided.weight = nn.Parameter(linear.weight.detach().T.contiguous().T)
    strided.bias = linear.bias
    strided.__class__ = TallLinear
    assert not strided.weight.is_contiguous()
    assert torch.allclose(strided(x), linear(x), atol=1e-5)


def _greedy(model, ids):
    return model.generate(input_ids=ids, max_new_tokens=8, do_sample=False, pad_token_id=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_float32_keeps_the_weights_and_the_output(family):
    model = tiny_model(family).model
    ids = torch.randint(4, 300, (3, 12))
    with torch.no_grad():
        before, plain = model(input_ids=ids).logits, _greedy(model, ids)
        one_row = _greedy(model, ids[:1])
        tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
        weights = {k: v.clone() for k, v in model.state_dict().items()}
        linears = [m for m in model.modules() if type(m) is nn.Linear]
        assert use_cpu_linears(model, "float32") == "float32-tall"
        assert all(type(m) is TallLinear for m in linears)
        assert model.get_output_embeddings() in linears
        assert (model.get_output_embeddings().weight is model.get_input_embeddings().weight) == tied
        after = model.state_dict()
        assert set(after) == set(weights) and all(torch.equal(after[k], v) for k, v in weights.items())
        assert torch.allclose(model(input_ids=ids).logits, before, atol=1e-5)
        assert torch.equal(_greedy(model, ids), plain)
        assert torch.equal(_greedy(model, ids[:1]), one_row)  # decode steps of one row


@pytest.mark.parametrize("family", FAMILIES)
def test_bfloat16_weights_keep_a_float32_stream_and_close_logits(family):
    loaded = tiny_model(family)
    model = loaded.model
    ids = torch.randint(4, 300, (3, 12))
    with torch.no_grad():
        before = model(input_ids=ids).logits
        embedding = model.get_input_embeddings().weight.clone()
        assert use_cpu_linears(model, "bfloat16") == "bfloat16"
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        assert linears and all(type(m) is BFloat16Linear and m.weight.dtype == torch.bfloat16
                               for m in linears)
        # the embedding is untouched (the head got its own bfloat16 copy)
        assert model.get_input_embeddings().weight.dtype == torch.float32
        assert torch.equal(model.get_input_embeddings().weight, embedding)
        assert loaded.dtype == torch.float32
        after = model(input_ids=ids).logits
        assert after.dtype == torch.float32
        # bfloat16 keeps 8 bits of mantissa: logits move by a small share of their spread
        assert (after - before).abs().max() < 0.05 * before.abs().max()
        assert (after - before).abs().max() > 0  # the weights really are rounded
        # a strided 3-D input (the last position of a prefill) gives the contiguous rows' values
        head = model.get_output_embeddings()
        hidden = torch.randn(2, 5, head.in_features)
        assert torch.equal(head(hidden[:, -1:, :]), head(hidden[:, -1:, :].contiguous()))


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_steering_acts_the_same_through_bfloat16_layers(family):
    """Attention sites hook the output projection on llama-like models: after the switch
    the hook sits on the bfloat16 layer and adds the same float32 vector."""
    ids = torch.randint(4, 300, (2, 10))
    shifts = []
    for dtype, form in (("float32", "float32-tall"), ("bfloat16", "bfloat16")):
        loaded = tiny_model(family)  # the same seed: the same weights before the switch
        assert use_cpu_linears(loaded.model, dtype) == form
        torch.manual_seed(1)
        tensors = {str(k): torch.randn(loaded.hidden_size) for k in site_keys("attn+mlp", [0, 1])}
        vector = SteeringVector(tensors, loaded.model_id, loaded.hidden_size)
        with torch.no_grad():
            plain = loaded.model(input_ids=ids).logits
            with steer(loaded, vector):
                steered = loaded.model(input_ids=ids).logits
        shifts.append((steered - plain).flatten())
    assert shifts[0].abs().max() > 0.1
    assert not torch.equal(shifts[0], shifts[1])  # the second run really was bfloat16
    assert torch.cosine_similarity(shifts[0], shifts[1], dim=0) > 0.99


def test_biases_stay_float32():
    model = tiny_model("qwen2").model  # q, k and v projections have biases
    use_cpu_linears(model, "bfloat16")
    biased = [m for m in model.modules() if isinstance(m, BFloat16Linear) and m.bias is not None]
    assert biased and all(m.bias.dtype == torch.float32 for m in biased)


def test_a_switched_model_is_left_alone():
    model = tiny_model("llama").model
    assert use_cpu_linears(model, "bfloat16") == "bfloat16"
    assert use_cpu_linears(model, "float32") == "unchanged"
    assert type(model.get_output_embeddings()) is BFloat16Linear


def test_bytes_per_step_count_the_bfloat16_head_not_an_untied_embedding():
    model = tiny_model("gemma3").model
    use_cpu_linears(model, "bfloat16")
    decoder = model.model
    layers = sum(p.numel() * p.element_size() for p in decoder.layers.parameters())
    norm = sum(p.numel() * p.element_size() for p in decoder.norm.parameters())
    head = model.get_output_embeddings().weight
    assert head.element_size() == 2
    assert weight_bytes_per_step(model) == layers + norm + head.numel() * 2


def test_other_heads_are_left_alone():
    class Custom(nn.Linear):
        pass

    holder = nn.Module()
    holder.head = Custom(4, 8)
    holder.get_output_embeddings = lambda: holder.head
    assert use_cpu_linears(holder, "bfloat16") == "unchanged"
    assert type(holder.head) is Custom


def test_a_linear_dtype_that_is_not_allowed_is_refused_before_loading(monkeypatch):
    from steering import load_model
    from steering.model import ModelNotFoundError

    with pytest.raises(ValueError, match="auto, bfloat16, float32.*'fp16'"):
        resolve_linear_dtype("fp16")
    with pytest.raises(ValueError, match="^linear_dtype must be one of"):
        load_model("/nonexistent/model", linear_dtype="half")
    monkeypatch.setenv("FINTS_LINEAR_DTYPE", "half")
    with pytest.raises(ValueError, match=r"^\$FINTS_LINEAR_DTYPE must be one of .*'half'"):
        load_model("/nonexistent/model")
    with pytest.raises(ModelNotFoundError):  # the argument wins over the variable
        load_model("/nonexistent/model", linear_dtype="float32")
