import math

import numpy as np
import pytest
import torch

from steering import SteeringVector, VectorError, aggregate, attentive_weights, check_vector, clip_norm, scale


def vec(values, key="attn.3", model="m", hidden=4):
    return SteeringVector({key: torch.tensor(values, dtype=torch.float32)}, model, hidden)


def test_save_load_round_trip(tmp_path):
    v = SteeringVector({"attn.3": torch.arange(4.0), "mlp.3": -torch.arange(4.0)}, "m", 4, {"source": "test"})
    path = v.save(tmp_path / "v.safetensors")
    loaded = SteeringVector.load(path, model_id="m", hidden_size=4)
    assert torch.equal(loaded.tensors["mlp.3"], v.tensors["mlp.3"])
    assert loaded.meta["source"] == "test"
    assert not (tmp_path / "v.safetensors.tmp").exists()


def test_load_refuses_other_model_width_and_garbage(tmp_path):
    path = vec([1, 2, 3, 4]).save(tmp_path / "v.safetensors")
    with pytest.raises(VectorError, match="made for model 'm', not 'other'"):
        SteeringVector.load(path, model_id="other")
    with pytest.raises(VectorError, match="hidden size 4, the model has 8"):
        SteeringVector.load(path, hidden_size=8)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(path.read_bytes()[:40])
    with pytest.raises(VectorError, match="not a readable safetensors file"):
        SteeringVector.load(broken)


def test_nan_inf_and_bad_shapes_are_refused(tmp_path):
    with pytest.raises(VectorError, match="NaN or inf"):
        vec([1, math.nan, 0, 0])
    with pytest.raises(VectorError, match="NaN or inf"):
        vec([1, math.inf, 0, 0])
    with pytest.raises(VectorError, match=r"shape \(3,\); expected \(4,\)"):
        vec([1, 2, 3])
    from safetensors.torch import save_file

    save_file({"attn.3": torch.tensor([1.0, float("nan"), 0, 0])}, str(tmp_path / "nan.safetensors"),
              metadata={"format": "fints-steering-vector/1", "model_id": "m", "hidden_size": "4"})
    with pytest.raises(VectorError, match="NaN or inf"):
        SteeringVector.load(tmp_path / "nan.safetensors")


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


def test_reference_norms_are_per_model_shape(tmp_path):
    from steering import reference_norms
    from tests.tiny_models import tiny_model

    shallow, deep = tiny_model("gemma3", layers=2), tiny_model("gemma3", layers=4)
    assert shallow.model_id == deep.model_id and shallow.hidden_size == deep.hidden_size
    assert sorted(reference_norms(shallow, tmp_path)) == sorted(
        f"{s}.{l}" for s in ("whole", "attn", "mlp") for l in range(2))
    norms = reference_norms(deep, tmp_path)  # the shallow model's file must not answer
    assert {"whole.3", "attn.3", "mlp.3"} <= set(norms)
    assert reference_norms(deep, tmp_path) == norms  # and the deep one's is stored


def test_one_check_for_tensors_and_arrays():
    """The same refusals for a torch tensor and a numpy array (memory entries)."""
    for make in (torch.tensor, np.array):
        check_vector("mlp.2", make([1.0, 2.0, 3.0, 4.0]), 4)
        with pytest.raises(VectorError, match="NaN or inf"):
            check_vector("mlp.2", make([1.0, math.nan, 3.0, 4.0]), 4)
        with pytest.raises(VectorError, match=r"shape \(3,\)"):
            check_vector("mlp.2", make([1.0, 2.0, 3.0]), 4)
        for key in ("attn+mlp.2", "attn.six", "attn.\u00b2", "mlp.2 "):
            with pytest.raises(VectorError, match="bad site key"):
                check_vector(key, make([1.0, 2.0, 3.0, 4.0]), 4)
