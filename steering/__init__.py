"""Steering core: find hook sites, extract vectors, aggregate them, add them per request.

    model = load_model()                      # bundled Gemma 3 270M, cached safetensors
    deltas = extract_vectors(model, pairs, sites="attn+mlp", layers=[6])
    vector = aggregate([SteeringVector(d, model.model_id, model.hidden_size) for d in deltas],
                       method="attentive", similarities=sims)
    vector = scale(vector, 0.1, mode="relative", reference_norms=reference_norms(model))
    with steer(model, vector):                # or a list: one vector (or None) per batch row
        model.model.generate(...)
"""

from steering.aggregate import aggregate, attention_weights, clip_norm, scale
from steering.apply import POSITION_CHOICES, SteeringNotAppliedError, SteeringRun, site_map_of, steer
from steering.calibrate import measure_norms, reference_norms
from steering.extract import ContrastPair, encode_with_answer, extract_vectors, mean_answer_activations
from steering.model import DEFAULT_MODEL, LoadedModel, ModelNotFoundError, load_model
from steering.sites import FAMILIES, SITE_CHOICES, SITES, SiteError, SiteKey, SiteMap, expand_sites, site_keys
from steering.vectors import SteeringVector, VectorError

__all__ = [
    "DEFAULT_MODEL",
    "FAMILIES",
    "POSITION_CHOICES",
    "SITES",
    "SITE_CHOICES",
    "ContrastPair",
    "LoadedModel",
    "ModelNotFoundError",
    "SiteError",
    "SiteKey",
    "SiteMap",
    "SteeringNotAppliedError",
    "SteeringRun",
    "SteeringVector",
    "VectorError",
    "aggregate",
    "attention_weights",
    "clip_norm",
    "encode_with_answer",
    "expand_sites",
    "extract_vectors",
    "load_model",
    "mean_answer_activations",
    "measure_norms",
    "reference_norms",
    "scale",
    "site_keys",
    "site_map_of",
    "steer",
]
