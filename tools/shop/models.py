"""The shapes the shop speaks: one set of pydantic models for the JSON API, its OpenAPI
schema, and both client transports, so the server and the tools cannot drift apart."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tools.registry import MAX_SEQUENCE

MAX_QUERY_CHARS = 500
MAX_REVIEW_CHARS = 5000
TOP_K = 10
ASIN_PATTERN = r"^B0[A-Z0-9]{8}$"
USER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class ProductSummary(BaseModel):
    """One line of a result list: enough for a model to choose, small enough to fit."""

    asin: str
    title: str
    store: str
    price: float | None
    rating: float | None


class ProductDetails(ProductSummary):
    """Everything the catalogue knows about one product."""

    category: str
    rating_number: int | None
    features: list[str]
    description: list[str]
    details: dict[str, str]


class ProductList(BaseModel):
    """A ranked list (search or recommendations), best first."""

    products: list[ProductSummary]


class SearchResult(ProductList):
    query: str


class RecommendRequest(BaseModel):
    product_sequence: list[str] = Field(
        description=f"ASINs in time order, oldest first, 1 to {MAX_SEQUENCE}."
    )


class RecommendResult(ProductList):
    product_sequence: list[str]


class ReviewRequest(BaseModel):
    user_id: str = Field(description="the reviewing user")
    review: str = Field(description=f"review text, 1 to {MAX_REVIEW_CHARS} characters")
    product_asin: str | None = Field(default=None, description="the reviewed product, if any")


class Review(BaseModel):
    """A stored review, as it reads back from the database."""

    id: int
    user_id: str
    product_asin: str | None
    review: str
    created_at: str


class ErrorBody(BaseModel):
    """Every error the API returns: what was wrong and what is allowed."""

    error: str
    status: int
