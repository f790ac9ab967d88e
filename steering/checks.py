"""The one check a steering vector's values pass, wherever they come from: a vector
file, an extraction, or a memory entry. Torch-free (numpy arrays and torch tensors
alike), so `memory` validates entries without importing torch."""

from __future__ import annotations

from typing import Any

import numpy as np

from steering.sites import SiteError, SiteKey


class VectorError(ValueError):
    """A vector that does not fit the model, or whose values are unusable."""


def check_vector(key: str, value: Any, hidden_size: int) -> None:
    """Refuse a vector unless `key` is "site.layer" and `value` is finite, of shape
    (hidden_size,); `value` is a numpy array or a torch tensor (on any device)."""
    try:
        SiteKey.parse(key)
    except SiteError as error:  # a bad key is a bad vector, whatever part is wrong
        raise VectorError(str(error)) from error
    shape = tuple(value.shape)
    if shape != (hidden_size,):
        raise VectorError(
            f"tensor {key!r} has shape {shape}; expected ({hidden_size},) for hidden size "
            f"{hidden_size}"
        )
    finite = value.isfinite().all() if hasattr(value, "isfinite") else np.isfinite(value).all()
    if not bool(finite):
        raise VectorError(f"tensor {key!r} holds NaN or inf")
