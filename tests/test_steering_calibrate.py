"""steering.calibrate: the residual norms relative strength is measured against."""


def test_reference_norms_are_per_model_shape(tmp_path):
    from steering import reference_norms
    from tests.helpers.tiny_models import tiny_model

    shallow, deep = tiny_model("gemma3", layers=2), tiny_model("gemma3", layers=4)
    assert shallow.model_id == deep.model_id and shallow.hidden_size == deep.hidden_size
    assert sorted(reference_norms(shallow, tmp_path)) == sorted(
        f"{s}.{l}" for s in ("whole", "attn", "mlp") for l in range(2))
    norms = reference_norms(deep, tmp_path)  # the shallow model's file must not answer
    assert {"whole.3", "attn.3", "mlp.3"} <= set(norms)
    assert reference_norms(deep, tmp_path) == norms  # and the deep one's is stored
