"""Steering core: find hook sites, extract vectors, aggregate them, add them per request.

    model = load_model()                      # bundled Gemma 3 270M, cached safetensors
    deltas = extract_vectors(model, pairs, sites="attn+mlp", layers=[6])
    vector = aggregate([SteeringVector(d, model.model_id, model.hidden_size) for d in deltas],
                       method="attentive", weights=attentive_weights(sims, 0.1))
    vector = scale(vector, 0.1, mode="relative", reference_norms=reference_norms(model))
    with steer(model, vector):                # or a list: one vector (or None) per batch row
        model.model.generate(...)

Names load on first use, so `fints --help` does not pay for importing torch.
"""

from common.lazy import lazy_exports

_EXPORTS = {
    "aggregate": "steering.aggregation",
    "clip_norm": "steering.aggregation",
    "scale": "steering.aggregation",
    "POSITION_CHOICES": "steering.apply",
    "SteeringNotAppliedError": "steering.apply",
    "SteeringRun": "steering.apply",
    "steer": "steering.apply",
    "measure_norms": "steering.calibrate",
    "reference_norms": "steering.calibrate",
    "ContrastPair": "steering.pairs",
    "encode_with_answer": "steering.extract",
    "extract_vectors": "steering.extract",
    "mean_answer_activations": "steering.extract",
    "DEFAULT_MODEL": "steering.model",
    "LoadedModel": "steering.model",
    "ModelNotFoundError": "steering.model",
    "load_model": "steering.model",
    "pack_rows": "steering.prefix",
    "FAMILIES": "steering.sites",
    "SITE_CHOICES": "steering.sites",
    "SITES": "steering.sites",
    "SiteError": "steering.sites",
    "SiteKey": "steering.sites",
    "SiteMap": "steering.sites",
    "expand_sites": "steering.sites",
    "rerun_from": "steering.sites",
    "site_keys": "steering.sites",
    "site_map_of": "steering.sites",
    "SteeringVector": "steering.vectors",
    "VectorError": "steering.checks",
    "check_vector": "steering.checks",
    "attentive_weights": "steering.weights",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
