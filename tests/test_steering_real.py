"""The steering core on the real bundled model (Gemma 3 270M): loading and its cache,
answer-token boundaries of the real tokenizer, and a steered decision."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from steering import (
    ContrastPair,
    ModelNotFoundError,
    SiteKey,
    SteeringVector,
    aggregate,
    encode_with_answer,
    extract_vectors,
    load_model,
    reference_norms,
    scale,
    site_map_of,
    steer,
)
from steering.linears import BFloat16Linear, TallLinear, native_bfloat16
from tools.registry import TOOL_FOR_TYPE

TOOLS = list(TOOL_FOR_TYPE.values())  # search, recommend, review
PROMPT = ("Tools: search_product_by_query, get_recommendations_by_history, add_product_review.\n"
          "Request: I need a new phone case.\nCall: search_product_by_query\n"
          "Request: Write that the blender broke after a week.\nCall: add_product_review\n"
          "Request: {request}\nCall:")
PAST = ["something for my runs", "anything new for the kitchen?", "what should I get next for my desk",
        "I could use a fresh idea for camping", "got anything for my cat", "need something for the garden"]
NEW = ["something for the bathroom", "anything for my bike?", "need stuff for my dog",
       "fresh ideas for baking", "something for hiking"]


@pytest.fixture(scope="module")
def model():
    return load_model()


def choose(model, request: str, vector=None) -> str:
    """The tool whose name is most likely after the prompt (one forward per tool)."""
    scores = []
    for tool in TOOLS:
        ids, start = encode_with_answer(model.tokenizer, PROMPT.format(request=request), " " + tool)
        x = torch.tensor([ids])
        with torch.no_grad(), steer(model, vector):
            logits = model.model(x).logits[0].float()
        logp = torch.log_softmax(logits[:-1], dim=-1)[torch.arange(len(ids) - 1), x[0, 1:]]
        scores.append(float(logp[start - 1:].sum()))
    return TOOLS[max(range(len(TOOLS)), key=scores.__getitem__)]


@pytest.mark.slow
def test_default_model_loads_from_its_cache_with_gemma_sites(model):
    assert model.model_id.startswith("google/gemma-3-270m")
    assert (model.hidden_size, model.num_layers) == (640, 18)
    assert "safetensors" in model.source and model.load_seconds > 0
    head = model.model.get_output_embeddings()
    assert model.linear_form == ("bfloat16" if native_bfloat16() else "float32-tall")
    assert isinstance(head, BFloat16Linear if native_bfloat16() else TallLinear)
    assert model.dtype == torch.float32  # the residual stream steering adds to
    layer = model.model.model.layers[4]
    sites = site_map_of(model)
    assert sites.module(SiteKey("attn", 4)) is layer.post_attention_layernorm
    assert sites.module(SiteKey("mlp", 4)) is layer.post_feedforward_layernorm


@pytest.mark.slow
@pytest.mark.parametrize("answer", [" search_product_by_query", '{"name":"add_product_review","arguments":{"review":"ok"}}'])
def test_answer_tokens_are_exact_for_the_gemma_tokenizer(model, answer):
    ids, start = encode_with_answer(model.tokenizer, PROMPT.format(request="x"), answer)
    assert model.tokenizer.decode(ids[start:]) == answer
    assert ids[:start] == model.tokenizer(PROMPT.format(request="x"))["input_ids"]


@pytest.mark.slow
def test_steering_picks_each_users_habitual_tool(model):
    """Two users with opposite habits for vague requests: vectors from six past
    interactions each steer new vague requests to that user's tool."""
    norms = reference_norms(model)
    unsteered = [choose(model, r) for r in NEW]
    for habit, other in ((TOOLS[1], TOOLS[0]), (TOOLS[0], TOOLS[1])):
        pairs = [ContrastPair(PROMPT.format(request=r), " " + habit, " " + other) for r in PAST]
        deltas = extract_vectors(model, pairs, sites="whole", layers=[6])
        vectors = [SteeringVector(d, model.model_id, model.hidden_size) for d in deltas]
        vector = scale(aggregate(vectors, method="mean"), 0.2, mode="relative", reference_norms=norms)
        steered = [choose(model, r, vector) for r in NEW]
        assert sum(c == habit for c in steered) >= 4, (habit, steered)
    assert sum(c == TOOLS[1] for c in unsteered) <= 1 or sum(c == TOOLS[0] for c in unsteered) <= 1


@pytest.mark.slow
def test_model_info_command_prints_json():
    out = subprocess.run([sys.executable, "-m", "agent.cli", "model", "info"], capture_output=True,
                         text=True, timeout=600, check=True)
    info = json.loads(out.stdout)
    assert info["architecture"] == "Gemma3ForCausalLM" and info["sites"] == ["whole", "attn", "mlp", "attn+mlp"]
    assert info["num_layers"] == 18 and info["hidden_size"] == 640 and info["device"] == "cpu"


def test_a_hub_name_that_is_not_cached_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="never downloads"):
        load_model("someorg/not-a-cached-model")
    with pytest.raises(ModelNotFoundError, match="no model file"):
        load_model(str(tmp_path / "missing.gguf"))
