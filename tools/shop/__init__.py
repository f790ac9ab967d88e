"""The simulated shop: a FastAPI web application over a PersonalWAB-format data set.

Heavy imports (fastapi, bm25s, uvicorn) happen on first use of a name, so that
`fints --help` (which imports `tools.shop.cli`) stays instant."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Shop": "service",
    "ShopServer": "server",
    "create_app": "app",
    "Catalog": "catalog",
    "load_catalog": "catalog",
    "ShopInputError": "validate",
    "ProductSummary": "models",
    "ProductDetails": "models",
    "Review": "models",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
