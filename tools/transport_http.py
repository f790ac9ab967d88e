"""The shop's JSON API as a transport for the tools (httpx)."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from tools.results import ShopError
from tools.shop.models import (
    ProductDetails,
    ProductSummary,
    RecommendResult,
    Review,
    SearchResult,
)


class HttpTransport:
    """Talks to a running shop at `base_url` (e.g. `ShopServer.url`)."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout)

    def search(self, query: str) -> list[ProductSummary]:
        body = self._call("GET", "/api/search", params={"q": query})
        return SearchResult.model_validate(body).products

    def recommend(self, product_sequence: list[str]) -> list[ProductSummary]:
        body = self._call(
            "POST", "/api/recommendations", json={"product_sequence": product_sequence}
        )
        return RecommendResult.model_validate(body).products

    def product(self, asin: str) -> ProductDetails:
        body = self._call("GET", f"/api/products/{quote(asin, safe='')}")
        return ProductDetails.model_validate(body)

    def add_review(self, user_id: str, review: str, product_asin: str | None = None) -> Review:
        body = self._call(
            "POST",
            "/api/reviews",
            json={"user_id": user_id, "review": review, "product_asin": product_asin},
        )
        return Review.model_validate(body)

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, path: str, **kwargs) -> dict:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ShopError(
                f"the shop at {self.base_url} is not reachable ({type(exc).__name__}); "
                "try again later or stop"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.is_error:
            message = body.get("error") if isinstance(body, dict) else None
            raise ShopError(message or f"the shop answered HTTP {response.status_code}",
                            response.status_code)
        return body

    def __enter__(self) -> HttpTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
