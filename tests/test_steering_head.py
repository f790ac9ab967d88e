"""The CPU output head (`steering.head.TallHead`): same logits, same parameters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from steering.head import MAX_TALL_ROWS, TallHead, use_tall_head
from tests.helpers.tiny_models import FAMILIES, tiny_model


@pytest.mark.parametrize("rows", [1, 4, MAX_TALL_ROWS + 1])
def test_tall_head_gives_the_linear_logits(rows):
    torch.manual_seed(0)
    linear = nn.Linear(32, 300, bias=True)
    tall = nn.Linear(32, 300, bias=True)
    tall.load_state_dict(linear.state_dict())
    tall.__class__ = TallHead
    x = torch.randn(rows, 1, 32)
    assert torch.allclose(tall(x), linear(x), atol=1e-5)
    assert tall(x).shape == (rows, 1, 300)


@pytest.mark.parametrize("family", FAMILIES)
def test_switching_keeps_the_model_and_its_greedy_output(family):
    loaded = tiny_model(family)
    model = loaded.model
    ids = torch.randint(4, 300, (3, 12))
    with torch.no_grad():
        before = model(input_ids=ids).logits
        plain = model.generate(input_ids=ids, max_new_tokens=8, do_sample=False, pad_token_id=0)
        tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
        keys = set(model.state_dict())
        assert use_tall_head(model)
        head = model.get_output_embeddings()
        assert isinstance(head, TallHead)
        assert (head.weight is model.get_input_embeddings().weight) == tied
        assert set(model.state_dict()) == keys
        assert torch.allclose(model(input_ids=ids).logits, before, atol=1e-5)
        assert torch.equal(model.generate(input_ids=ids, max_new_tokens=8, do_sample=False, pad_token_id=0), plain)


def test_other_heads_are_left_alone():
    class Custom(nn.Linear):
        pass

    holder = nn.Module()
    holder.head = Custom(4, 8)
    holder.get_output_embeddings = lambda: holder.head
    assert not use_tall_head(holder)
    assert type(holder.head) is Custom
