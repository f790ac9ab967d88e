"""The shop's tools for the agent: PersonalWAB's functions as LangChain tools over two
transports (the shop's JSON API, or its web pages in a real browser).

`from tools import make_shop_tools, HttpTransport` - names load on first use, so that
`fints --help` (which imports `tools.*.cli`) does not pay for langchain or playwright."""

from __future__ import annotations

from common.lazy import lazy_exports

_EXPORTS = {
    "make_shop_tools": "tools.functions",
    "ShopTransport": "tools.functions",
    "TOOL_NAMES": "tools.registry",
    "HttpTransport": "tools.transport_http",
    "BrowserTransport": "tools.transport_browser",
    "ShopError": "tools.results",
    "ToolResult": "tools.results",
    "ShopServer": "tools.shop",
    "Shop": "tools.shop",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
