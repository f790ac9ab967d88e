"""The steering vector: one tensor per (site, layer), and what it belongs to.

Saved as safetensors with JSON metadata so a file says which model and hidden size it
was made for, where it applies and how it was made; loading refuses a file made for
another model, of another width, or holding NaN/inf, because adding such a vector would
silently corrupt every generation it touches.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from steering.checks import VectorError, check_vector
from steering.sites import SiteKey

FORMAT = "fints-steering-vector/1"


@dataclass(frozen=True)
class SteeringVector:
    """Tensors keyed by "site.layer" (e.g. "attn.6"), each of shape (hidden_size,)."""

    tensors: Mapping[str, torch.Tensor]
    model_id: str
    hidden_size: int
    meta: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.tensors:
            raise VectorError("a steering vector needs at least one (site, layer) tensor")
        for key, tensor in self.tensors.items():
            check_vector(key, tensor, self.hidden_size)

    @property
    def keys(self) -> list[SiteKey]:
        return [SiteKey.parse(key) for key in self.tensors]

    def norms(self) -> dict[str, float]:
        return {key: float(tensor.float().norm()) for key, tensor in self.tensors.items()}

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> SteeringVector:
        moved = {key: t.to(device=device, dtype=dtype) for key, t in self.tensors.items()}
        return SteeringVector(moved, self.model_id, self.hidden_size, dict(self.meta))

    def scaled(self, factor: float) -> SteeringVector:
        return SteeringVector(
            {key: t * factor for key, t in self.tensors.items()},
            self.model_id,
            self.hidden_size,
            dict(self.meta),
        )

    def check_model(self, model_id: str, hidden_size: int) -> None:
        if self.hidden_size != hidden_size:
            raise VectorError(
                f"vector has hidden size {self.hidden_size}, the model has {hidden_size}"
            )
        if self.model_id != model_id:
            raise VectorError(f"vector was made for model {self.model_id!r}, not {model_id!r}")

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically: a crash leaves the old file or the new one, never half."""
        from safetensors.torch import save_file

        target = Path(path)
        meta = {
            "format": FORMAT,
            "model_id": self.model_id,
            "hidden_size": str(self.hidden_size),
            "norms": json.dumps(self.norms()),
            "created": self.meta.get("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())),
            "meta": json.dumps(dict(self.meta)),
        }
        tmp = target.with_name(target.name + ".tmp")
        tensors = {key: t.detach().to("cpu", torch.float32).contiguous() for key, t in self.tensors.items()}
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, target)
        return target

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        model_id: str | None = None,
        hidden_size: int | None = None,
    ) -> SteeringVector:
        """Read and validate a vector file; pass the model's id/width to check the fit."""
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        except Exception as error:  # safetensors raises several types for a broken file
            raise VectorError(f"{path}: not a readable safetensors file ({error})") from error
        if meta.get("format") != FORMAT:
            raise VectorError(f"{path}: not a steering vector file (format {meta.get('format')!r})")
        try:
            vector = cls(
                tensors=tensors,
                model_id=meta["model_id"],
                hidden_size=int(meta["hidden_size"]),
                meta=json.loads(meta.get("meta", "{}")),
            )
        except (KeyError, json.JSONDecodeError) as error:
            raise VectorError(f"{path}: metadata is incomplete or corrupt ({error})") from error
        except VectorError as error:
            raise VectorError(f"{path}: {error}") from error
        if model_id is not None or hidden_size is not None:
            vector.check_model(model_id or vector.model_id, hidden_size or vector.hidden_size)
        return vector
