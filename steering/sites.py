"""Where in a decoder-only transformer a steering vector is read and added.

Three sites per decoder layer, each a contribution to (or the state of) the residual
stream:

- `whole`: the residual stream after the layer (the decoder layer's output);
- `attn`:  what the attention block adds to the residual stream;
- `mlp`:   what the MLP block adds to the residual stream.

`attn+mlp` is not a site of its own but both of the last two at once. On architectures
with sandwich norms (Gemma 2/3: post-attention and post-feedforward norms before each
residual add) the attention and MLP contributions are the *outputs of those norms*: a
vector added before them would be normalised away. Modules are found through an
explicit table keyed by `config.model_type`; unknown families fall back to a structural
search, and anything that cannot be mapped raises instead of silently steering nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

SITES = ("whole", "attn", "mlp")
SITE_CHOICES = (*SITES, "attn+mlp")
_KEY = re.compile(r"^(whole|attn|mlp)\.([0-9]+)$")


class SiteError(ValueError):
    """A site, layer or architecture that cannot be mapped to modules."""


@dataclass(frozen=True)
class Family:
    """Module paths of one architecture family, relative to a decoder layer."""

    attn: str
    mlp: str


_LLAMA_LIKE = Family(attn="self_attn.o_proj", mlp="mlp")
_SANDWICH = Family(attn="post_attention_layernorm", mlp="post_feedforward_layernorm")

# Checked against each family's decoder-layer forward in transformers 5.x.
FAMILIES: dict[str, Family] = {
    "gemma3_text": _SANDWICH,
    "gemma3": _SANDWICH,
    "gemma2": _SANDWICH,
    "gemma": _LLAMA_LIKE,
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "phi3": _LLAMA_LIKE,
    "gpt2": Family(attn="attn.c_proj", mlp="mlp"),
}

_LAYER_LISTS = ("model.layers", "model.language_model.layers", "transformer.h", "gpt_neox.layers")


@dataclass(frozen=True)
class SiteKey:
    """One (site, layer) pair; its string form "attn.6" keys vectors everywhere."""

    site: str
    layer: int

    def __str__(self) -> str:
        return f"{self.site}.{self.layer}"

    @classmethod
    def parse(cls, text: str) -> SiteKey:
        """The one parser of "site.layer" keys (vectors, memory entries, exports)."""
        match = _KEY.match(text) if isinstance(text, str) else None
        if not match:
            raise SiteError(
                f"bad site key {text!r}: expected '<site>.<layer>' with site in {SITES} and "
                "an integer layer, e.g. 'attn.6' ('attn+mlp' is applied from the attn and "
                "mlp vectors and is never a key)"
            )
        return cls(match.group(1), int(match.group(2)))


def expand_sites(site: str) -> tuple[str, ...]:
    """`attn+mlp` -> (attn, mlp); a single site -> itself; anything else is an error."""
    if site == "attn+mlp":
        return ("attn", "mlp")
    if site in SITES:
        return (site,)
    raise SiteError(f"unknown site {site!r}; choose one of {', '.join(SITE_CHOICES)}")


def site_keys(sites: str | Iterable[str], layers: Iterable[int]) -> list[SiteKey]:
    """All (site, layer) keys for a site choice and a set of layers."""
    chosen = [sites] if isinstance(sites, str) else list(sites)
    names = [name for choice in chosen for name in expand_sites(choice)]
    return [SiteKey(name, int(layer)) for layer in layers for name in dict.fromkeys(names)]


def site_map_of(model: object) -> SiteMap:
    """The model's site modules, resolved once per model object (a `LoadedModel` or the
    transformers model itself)."""
    from torch import nn

    module = model if isinstance(model, nn.Module) else model.model  # type: ignore[attr-defined]
    cached = getattr(module, "_fints_site_map", None)
    if cached is None:
        cached = SiteMap(module)  # type: ignore[arg-type]
        module._fints_site_map = cached  # type: ignore[union-attr]  # module handles, not steering state
    return cached


def rerun_from(keys: Iterable[SiteKey]) -> int:
    """The first decoder layer that computes differently once vectors are added at
    `keys`: a vector at a layer's output (`whole`) leaves that layer itself as it was,
    one inside it (`attn`, `mlp`) does not. Everything below can be reused unsteered."""
    return min(key.layer + (1 if key.site == "whole" else 0) for key in keys)


class SiteMap:
    """The modules of one model's sites, resolved once and reused for every request."""

    def __init__(self, model: nn.Module) -> None:
        self.model_type = str(model.config.get_text_config().model_type)
        self.layers = _find_layers(model)
        family = FAMILIES.get(self.model_type) or _guess_family(self.layers[0], self.model_type)
        self.family = family
        self._modules: dict[SiteKey, nn.Module] = {}
        for index, layer in enumerate(self.layers):
            self._modules[SiteKey("whole", index)] = layer
            self._modules[SiteKey("attn", index)] = _get(layer, family.attn, self.model_type)
            self._modules[SiteKey("mlp", index)] = _get(layer, family.mlp, self.model_type)
        self.decoder = _decoder_of(model)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def module(self, key: SiteKey) -> nn.Module:
        if not 0 <= key.layer < self.num_layers:
            raise SiteError(
                f"layer {key.layer} out of range: this model has layers 0..{self.num_layers - 1}"
            )
        return self._modules[key]


def _get(root: nn.Module, dotted: str, model_type: str) -> nn.Module:
    module = root
    for part in dotted.split("."):
        if not hasattr(module, part):
            raise SiteError(
                f"{model_type}: decoder layer {type(root).__name__} has no submodule {dotted!r}; "
                "add this family to steering.sites.FAMILIES"
            )
        module = getattr(module, part)
    return module


def _find_layers(model: nn.Module) -> list[nn.Module]:
    from torch import nn

    expected = model.config.get_text_config().num_hidden_layers
    for dotted in _LAYER_LISTS:
        found: object = model
        for part in dotted.split("."):
            found = getattr(found, part, None)
        if isinstance(found, nn.ModuleList) and len(found) == expected:
            return list(found)
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == expected and "vision" not in name:
            return list(module)
    raise SiteError(
        f"{type(model).__name__}: found no list of {expected} decoder layers "
        f"(looked at {', '.join(_LAYER_LISTS)} and every ModuleList)"
    )


def _decoder_of(model: nn.Module) -> nn.Module:
    """The module whose forward sees the whole batch first: position tracking hooks here."""
    for dotted in ("model.language_model", "model", "transformer", "gpt_neox"):
        found: object = model
        for part in dotted.split("."):
            found = getattr(found, part, None)
        if found is not None and hasattr(found, "forward"):
            return found  # type: ignore[return-value]
    return model


def _guess_family(layer: nn.Module, model_type: str) -> Family:
    """Structural fallback for families not in the table."""
    if hasattr(layer, "pre_feedforward_layernorm") and hasattr(layer, "post_feedforward_layernorm"):
        return _SANDWICH
    for attn_name in ("self_attn", "attn", "attention", "self_attention"):
        attn = getattr(layer, attn_name, None)
        if attn is None:
            continue
        for proj in ("o_proj", "c_proj", "out_proj", "dense"):
            if hasattr(attn, proj):
                for mlp_name in ("mlp", "feed_forward", "ffn"):
                    if hasattr(layer, mlp_name):
                        return Family(attn=f"{attn_name}.{proj}", mlp=mlp_name)
    raise SiteError(
        f"{model_type}: cannot find the attention output projection and the MLP in "
        f"{type(layer).__name__}; add this family to steering.sites.FAMILIES"
    )
