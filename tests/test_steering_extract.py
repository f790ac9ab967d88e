import pytest
import torch

from steering import ContrastPair, encode_with_answer, extract_vectors, mean_answer_activations, site_keys
from tests.helpers.tiny_models import tiny_model, tokenizer

ANSWERS = [
    " search_product_by_query",
    "get_recommendations_by_history",
    '{"name": "add_product_review", "arguments": {"review": "broke after a week"}}',
    "\nCall: search",
    " adidas soccer cleats",
]


@pytest.mark.parametrize("family", ["bpe", "unigram"])
@pytest.mark.parametrize("answer", ANSWERS)
def test_answer_positions_are_exactly_the_answer_tokens(family, answer):
    tok = tokenizer(family)
    prompt = "Request: something for my runs\nCall:"
    ids, start = encode_with_answer(tok, prompt, answer)
    assert ids[0] == tok.bos_token_id
    assert tok.decode(ids[start:]) == tok.decode(tok(answer, add_special_tokens=False)["input_ids"])
    assert ids[:start] == tok(prompt)["input_ids"]
    assert tok.decode(ids[start:]).strip() == answer.strip()


def test_empty_answer_is_refused():
    with pytest.raises(ValueError, match="tokenizes to nothing"):
        encode_with_answer(tokenizer("bpe"), "prompt", "")


@pytest.mark.parametrize("family", ["gemma3", "gpt2"])
def test_vector_is_mean_over_answer_tokens_of_positive_minus_negative(family):
    loaded = tiny_model(family)
    pair = ContrastPair("Request: something for my runs\nCall:", " get_recommendations_by_history",
                        " search_product_by_query")
    (vector,) = extract_vectors(loaded, [pair], sites="attn+mlp", layers=[0, 1])
    assert sorted(vector) == ["attn.0", "attn.1", "mlp.0", "mlp.1"]
    # recompute by hand for one key, one sequence at a time (no padding involved)
    from steering.hooks import hidden_of, hooked
    from steering import site_map_of, SiteKey

    module = site_map_of(loaded).module(SiteKey("mlp", 1))
    means = []
    for answer in (pair.positive, pair.negative):
        ids, start = encode_with_answer(loaded.tokenizer, pair.prompt, answer)
        seen = []
        with torch.no_grad(), hooked([(module, lambda m, a, o: seen.append(hidden_of(o)))]):
            loaded.model(torch.tensor([ids]))
        means.append(seen[0][0, start:].mean(dim=0))
    assert torch.allclose(vector["mlp.1"], means[0] - means[1], atol=1e-6)


def test_batched_extraction_equals_one_pair_at_a_time():
    loaded = tiny_model("llama")
    pairs = [
        ContrastPair("Request: a gift for my sister\nCall:", " get_recommendations_by_history", " search_product_by_query"),
        ContrastPair("short", " a", " a much longer negative answer with many tokens"),
        ContrastPair("Request: write that the blender broke\nCall:", " add_product_review", " search_product_by_query"),
    ]
    batched = extract_vectors(loaded, pairs, sites="whole", layers=[1], batch_size=3)
    single = [extract_vectors(loaded, [p], sites="whole", layers=[1])[0] for p in pairs]
    for b, s in zip(batched, single):
        assert torch.allclose(b["whole.1"], s["whole.1"], atol=1e-5)


def test_a_text_shared_by_pairs_is_run_once_with_the_same_vectors(monkeypatch):
    import steering.extract as extract

    loaded = tiny_model("llama")
    prompt, accepted = "Request: something for my runs\nCall:", " get_recommend"
    pairs = [ContrastPair(prompt, accepted, other) for other in (" search", " add", " get_product")]
    single = [extract_vectors(loaded, [p], sites="whole", layers=[1])[0] for p in pairs]
    rows = []
    real = extract.mean_answer_activations
    monkeypatch.setattr(extract, "mean_answer_activations",
                        lambda model, texts, keys: rows.append(len(texts)) or real(model, texts, keys))
    batched = extract_vectors(loaded, pairs, sites="whole", layers=[1], batch_size=3)
    assert rows == [4]  # the accepted call once, each other tool once
    for b, s in zip(batched, single):
        assert torch.allclose(b["whole.1"], s["whole.1"], atol=1e-5)


def test_identical_answers_give_a_zero_vector():
    loaded = tiny_model("qwen2")
    pair = ContrastPair("Request: x\nCall:", " search_product_by_query", " search_product_by_query")
    (vector,) = extract_vectors(loaded, [pair], sites="attn", layers=[0])
    # both rows run in one padded batch, so float noise of ~1e-10 is all that is left
    assert float(vector["attn.0"].abs().max()) < 1e-6


def test_mean_activations_shapes():
    loaded = tiny_model("gemma3")
    means = mean_answer_activations(loaded, [("a b", " c"), ("d", " e f g")], site_keys("whole", [0]))
    assert means["whole.0"].shape == (2, 32)


@pytest.mark.parametrize("family", ["gemma3", "llama", "gpt2"])
def test_reusing_the_shared_prefix_gives_the_same_vectors(family):
    loaded = tiny_model(family)
    head = "Tools: search_product_by_query, get_recommendations_by_history, add_product_review.\n" * 2
    keys = site_keys("attn+mlp", [0, 1])
    for round in range(3):  # the 1st round's rows differ: their shared part is stored, then reused
        texts = [(head + f"Request: a gift for my sister {round}\nCall:", " get_recommendations_by_history"),
                 (head + f"Request: write that the blender broke {round}\nCall:", " add_product_review"),
                 (head + f"Request: x {round}\nCall:", " search_product_by_query with a longer tail")]
        fresh = mean_answer_activations(loaded, texts, keys, reuse_prefix=False)
        reused = mean_answer_activations(loaded, texts, keys)
        for key in fresh:
            assert torch.allclose(reused[key], fresh[key], atol=1e-5)
    assert loaded.prefixes.misses == 1 and loaded.prefixes.hits == 2


def test_shared_prefix_length_leaves_a_token_per_row():
    from steering.prefix import shared_prefix_length

    assert shared_prefix_length([[1, 2, 3], [1, 2, 3, 4]]) == 2
    assert shared_prefix_length([[1, 2, 3], [1, 9]]) == 1
    assert shared_prefix_length([[5, 2], [1, 2]]) == 0
    assert shared_prefix_length([[1, 2, 3, 4], [1, 2, 3, 4]], limit=2) == 2


def test_one_pairs_answers_store_no_prefix():
    """One pair's two answers share their whole prompt, request included: extracting it
    must not store that prompt as a reusable prefix; pairs of different requests do
    store the instructions they share."""
    loaded = tiny_model("llama")
    head = "Tools: search_product_by_query, get_recommendations_by_history.\n"
    keys = site_keys("whole", [0])
    for _ in range(2):
        mean_answer_activations(loaded, [(head + "Request: a gift\nCall:", " search"),
                                         (head + "Request: a gift\nCall:", " review")], keys)
    assert loaded.prefixes.misses == 0
    mean_answer_activations(loaded, [(head + "Request: shoes\nCall:", " search"),
                                     (head + "Request: a lamp\nCall:", " review")], keys)
    assert loaded.prefixes.misses == 1


def test_extraction_stops_after_the_deepest_site_it_reads():
    from steering import site_map_of
    from steering.hooks import hooked

    loaded = tiny_model("gemma3", layers=3)
    sites = site_map_of(loaded)
    calls = []
    spies = [(sites.layers[1], lambda m, a, o: calls.append("layer1")),
             (sites.layers[2], lambda m, a, o: calls.append("layer2")),
             (loaded.model.get_output_embeddings(), lambda m, a, o: calls.append("head"))]
    pair = ContrastPair("Request: a gift\nCall:", " get_recommendations_by_history", " search_product_by_query")
    with hooked(spies):
        extract_vectors(loaded, [pair], sites="whole", layers=[1])
    assert calls == ["layer1"]  # one pass, stopped at layer 1: no layer 2, no output head


def test_extraction_names_a_layer_the_model_does_not_have():
    from steering import SiteError

    loaded = tiny_model("gemma3")
    pair = ContrastPair("Request: a gift\nCall:", " a", " b")
    with pytest.raises(SiteError, match="out of range"):
        extract_vectors(loaded, [pair], sites="whole", layers=[5])
    assert mean_answer_activations(loaded, [("a", " b")], []) == {}
