"""steering.aggregation and steering.weights: combining retrieved vectors and sizing them."""

import math

import numpy as np
import pytest
import torch

from steering import SteeringVector, VectorError, aggregate, attentive_weights, clip_norm, scale


def vec(values, key="attn.3", model="m", hidden=4):
    return SteeringVector({key: torch.tensor(values, dtype=torch.float32)}, model, hidden)


def test_mean_and_attentive_aggregation():
    a, b = vec([1, 0, 0, 0]), vec([0, 1, 0, 0])
    assert torch.allclose(aggregate([a, b], method="mean").tensors["attn.3"], torch.tensor([0.5, 0.5, 0, 0]))
    w = attentive_weights(np.array([0.9, 0.5]), temperature=0.1)
    assert w[0] == pytest.approx(1 / (1 + math.exp(-4)))
    out = aggregate([a, b], method="attentive", weights=[float(x) for x in w])
    assert torch.allclose(out.tensors["attn.3"], torch.tensor([w[0], w[1], 0, 0]))
    with pytest.raises(ValueError, match="needs weights"):
        aggregate([a, b], method="attentive")
    with pytest.raises(VectorError, match="no vectors"):
        aggregate([], method="mean")


def test_clip_bounds_one_entry():
    poisoned = vec([300, 400, 0, 0])
    clipped = clip_norm(poisoned, 5.0)
    assert clipped.norms()["attn.3"] == pytest.approx(5.0)
    assert torch.equal(clip_norm(vec([3, 4, 0, 0]), 5.0).tensors["attn.3"], torch.tensor([3.0, 4, 0, 0]))


def test_relative_strength_uses_the_reference_norm():
    v = vec([3, 4, 0, 0])
    out = scale(v, 0.5, mode="relative", reference_norms={"attn.3": 10.0})
    assert out.norms()["attn.3"] == pytest.approx(5.0)
    assert torch.allclose(scale(v, 2.0, mode="absolute").tensors["attn.3"], torch.tensor([6.0, 8, 0, 0]))
    with pytest.raises(VectorError, match="calibrate"):
        scale(v, 1.0, mode="relative", reference_norms={})
