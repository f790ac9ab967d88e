"""The simulated shop: a FastAPI web application over a PersonalWAB-format data set.

Heavy imports (fastapi, bm25s, uvicorn) happen on first use of a name, so that
`fints --help` (which imports `tools.shop.cli`) stays instant."""

from __future__ import annotations

from common.lazy import lazy_exports

_EXPORTS = {
    "Shop": ".service",
    "ShopServer": ".server",
    "create_app": ".app",
    "Catalog": ".catalog",
    "load_catalog": ".catalog",
    "ShopInputError": ".validate",
    "ProductSummary": ".models",
    "ProductDetails": ".models",
    "Review": ".models",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
