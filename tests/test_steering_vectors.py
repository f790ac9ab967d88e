"""steering.vectors: the vector type, its file format and what loading refuses."""

import math

import pytest
import torch

from steering import SteeringVector, VectorError


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
