"""The shop's JSON API as a transport for the tools (httpx).

A shop that checks keys (`fints shop serve` without --insecure) is reached with a key:
`key=` or $FINTS_SHOP_KEY, usually a service key, and the user a review is written
for is forwarded in X-Fints-User."""

from __future__ import annotations

import os
from urllib.parse import quote

import httpx

from tools.auth import FORWARDED_USER
from tools.results import ShopError
from tools.shop.models import (
    ProductDetails,
    ProductSummary,
    RecommendResult,
    Review,
    SearchResult,
)


SHOP_KEY_ENV = "FINTS_SHOP_KEY"


class HttpTransport:
    """Talks to a running shop at `base_url` (e.g. `ShopServer.url`)."""

    def __init__(self, base_url: str, timeout: float = 30.0, key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        key = key or os.environ.get(SHOP_KEY_ENV)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers)

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
            headers={FORWARDED_USER: user_id},
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
