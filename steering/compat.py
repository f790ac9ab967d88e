"""Differences between the transformers releases this project supports (>=4.56, <6).

Transformers 5.2x renamed the KV cache's keyword and output attribute from
`past_key_values` to `cache`; the old name still works there but prints a FutureWarning
and a deprecation log line in every process that uses it (twice per `make demo`).
"""

from __future__ import annotations

import inspect
from typing import Any


def cache_keyword(model: Any) -> str:
    """The keyword `model`'s forward (and `generate`) takes a KV cache by."""
    return "cache" if "cache" in inspect.signature(type(model).forward).parameters else "past_key_values"


def returned_cache(output: Any) -> Any:
    """The KV cache a forward returned, read under the name this release gives it."""
    found = getattr(output, "cache", None)
    return found if found is not None else output.past_key_values
