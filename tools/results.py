"""What a shop tool hands back: a compact, deterministic text for the model and the
structured result (with the ranked ASINs) for scoring and logs.

`ShopError` is the one exception transports raise: a message the model can act on
(what was wrong, what is allowed), never a stack trace."""

from __future__ import annotations

from dataclasses import dataclass, field

from tools.shop.models import ProductDetails, ProductSummary, Review

DESCRIPTION_CHARS = 400  # a product's description is cut here in the model's view


class ShopError(Exception):
    """A request the shop refused or could not answer; `status` is HTTP's, 0 if none."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ToolResult:
    """One tool call's outcome. `asins` is the ranked list a scorer compares with."""

    tool: str
    text: str
    ok: bool = True
    products: list[ProductSummary] = field(default_factory=list)
    details: ProductDetails | None = None
    review: Review | None = None

    @property
    def asins(self) -> list[str]:
        if self.details is not None:
            return [self.details.asin]
        return [p.asin for p in self.products]


def render_products(heading: str, products: list[ProductSummary]) -> str:
    lines = [heading]
    for rank, p in enumerate(products, 1):
        lines.append(f"{rank}. [{p.asin}] {p.title} | {p.store or 'unknown store'} | "
                     f"{_price(p.price)} | rating {_rating(p.rating)}")
    return "\n".join(lines)


def render_details(p: ProductDetails) -> str:
    description = " ".join(p.description)
    if len(description) > DESCRIPTION_CHARS:
        description = description[:DESCRIPTION_CHARS].rstrip() + "..."
    lines = [
        f"[{p.asin}] {p.title}",
        f"store: {p.store or 'unknown'} | category: {p.category or 'unknown'} | "
        f"{_price(p.price)} | rating {_rating(p.rating)} ({p.rating_number or 0} ratings)",
    ]
    if p.features:
        lines.append("features: " + "; ".join(p.features))
    if description:
        lines.append("description: " + description)
    if p.details:
        lines.append("details: " + "; ".join(f"{k}: {v}" for k, v in p.details.items()))
    return "\n".join(lines)


def render_review(r: Review) -> str:
    about = f" for product {r.product_asin}" if r.product_asin else ""
    return f"Review stored{about}: {r.review}"


def _price(price: float | None) -> str:
    return "price n/a" if price is None else f"${price:.2f}"


def _rating(rating: float | None) -> str:
    return "n/a" if rating is None else f"{rating:g}/5"
