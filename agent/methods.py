"""The methods the LLM node can run, by name, so evaluations put them side by side.

- `zero-shot`: no user information at all;
- `nearest-call`: no language model: the tool and arguments of the user's most similar
  past interaction (prompt memory's retrieval), what a user could pick instead of any
  model;
- `prompt-k{1,3,5}`: the k most relevant past requests of the user, with the calls
  they accepted, written into the prompt (the in-context baseline);
- `steer-{whole,attn,mlp,attn+mlp}-{mean,attentive}`: no extra prompt tokens; the
  user's retrieved steering vectors are added inside the forward pass.

Strength, layers, positions and retrieval settings come from `defaults.json` and the
user's defaults file on top (`agent.config`; the sweep in `fints eval` writes the
latter, per model and per site: a site's own `sites` entry wins over the shared
settings, and a `"{site}-{aggregation}"` entry over its site's), and any of them can be
overridden by keyword.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from agent.config import site_entry

Kind = Literal["zero_shot", "lookup", "prompt_memory", "steering"]
STEERING_SITES = ("whole", "attn", "mlp", "attn+mlp")
# The method the agent runs unless told otherwise: on the bundled Gemma 3 270M the whole-
# layer site is the one that moves tool choice (docs/results.md has the measurements).
DEFAULT_METHOD = "steer-whole-attentive"
AGGREGATIONS = ("mean", "attentive")
PROMPT_KS = (1, 3, 5)


@dataclass(frozen=True)
class Method:
    """How the LLM node uses (or ignores) the user's memory."""

    name: str
    kind: Kind
    k: int = 0
    site: str = "attn+mlp"
    aggregation: str = "attentive"
    layers: tuple[int, ...] = (6,)
    alpha: float = 0.2
    strength: str = "relative"
    positions: str = "decision"
    top_k: int = 5
    threshold: float = 0.35
    temperature: float = 0.05
    half_life_days: float | None = None
    clip: float = 2.0  # bound on one entry's norm, in units of the site's reference norm
    # below this leave-one-out agreement of the user's own entries, strength is lowered in
    # proportion (memory.agreement); 0 turns the check off
    agreement_floor: float = 0.0
    # a search query names up to this many brands the user chose for items like the one
    # asked about (agent.prompt_memory.PromptMemory.brands); memory methods only, 0 = off
    brands: int = 0
    # a review ends with up to this many sentences in the user's voice
    # (agent.prompt_memory.PromptMemory.voice); memory methods only, 0 = off
    voice: int = 0
    # a recommendation that names no products reads the user's purchases in the
    # request's category (agent.prompt_memory.PromptMemory.purchases); memory methods only
    category_purchases: bool = False

    @property
    def steers(self) -> bool:
        return self.kind == "steering"

    def summary(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


def method_names() -> list[str]:
    """Every method name `parse_method` accepts, in report order."""
    names = ["zero-shot", "nearest-call", *(f"prompt-k{k}" for k in PROMPT_KS)]
    names += [f"steer-{site}-{agg}" for site in STEERING_SITES for agg in AGGREGATIONS]
    return names


def load_defaults(model_id: str | None = None) -> dict[str, Any]:
    """Steering defaults for a model: the packaged defaults.json with the user's
    defaults file on top (`agent.config`); a model's own entry wins over "*"."""
    from agent.config import layered_defaults

    return layered_defaults(model_id)[0]


def parse_method(name: str, model_id: str | None = None, **overrides: Any) -> Method:
    """`zero-shot`, `nearest-call`, `prompt-k3`, `steer-attn+mlp-attentive`, ...; unknown
    names list the valid ones."""
    defaults = load_defaults(model_id)
    if name == "zero-shot":
        method = Method(name, "zero_shot")
    elif name == "nearest-call":
        method = Method(name, "lookup", k=1)
    elif name.startswith("prompt-k") and name[len("prompt-k"):].isdigit():
        method = Method(name, "prompt_memory", k=int(name[len("prompt-k"):]),
                        brands=int(defaults.get("brands", 0)),
                        voice=int(defaults.get("voice", 0)),
                        category_purchases=bool(defaults.get("category_purchases", False)))
    elif name.startswith("steer-"):
        site, _, aggregation = name[len("steer-"):].rpartition("-")
        if site not in STEERING_SITES or aggregation not in AGGREGATIONS:
            raise ValueError(_unknown(name))
        # a site's calibration wins over the shared settings, and an aggregation's own
        # (`"attn+mlp-mean"`, swept apart: a mean of entries that disagree steers weakly) over its site's
        sites = defaults.get("sites", {})
        own = {**defaults, **sites.get(site, {}), **sites.get(site_entry(site, aggregation), {})}
        fields = {k: v for k, v in own.items() if k in Method.__dataclass_fields__}
        fields["layers"] = tuple(fields.get("layers", (6,)))
        method = Method(name, "steering", site=site, aggregation=aggregation, **fields)
    else:
        raise ValueError(_unknown(name))
    if overrides:
        if "layers" in overrides:
            overrides["layers"] = tuple(overrides["layers"])
        method = replace(method, **overrides)
    return method


def _unknown(name: str) -> str:
    return f"unknown method {name!r}; valid methods: {', '.join(method_names())}"
