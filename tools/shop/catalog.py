"""The catalogue and purchase histories of a PersonalWAB-format data set.

Products arrive with loose types (prices as strings or null, details with numbers);
they are normalised once here so every later layer sees one clean shape."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .models import ProductDetails, ProductSummary
from .validate import ShopInputError, check_asin


@dataclass(frozen=True)
class Catalog:
    """Products by ASIN (in file order) and each user's purchase sequence (time order)."""

    products: dict[str, ProductDetails]
    histories: dict[str, list[str]]

    def product(self, asin: str) -> ProductDetails:
        """The product, or a 404 naming the id (after a 400 for a malformed one)."""
        asin = check_asin(asin)
        try:
            return self.products[asin]
        except KeyError:
            raise ShopInputError(404, f"no product with ASIN {asin!r} in this shop") from None

    def summary(self, asin: str) -> ProductSummary:
        p = self.products[asin]
        return ProductSummary(
            asin=p.asin, title=p.title, store=p.store, price=p.price, rating=p.rating
        )

    def check_user(self, user_id: str) -> str:
        if user_id not in self.histories:
            raise ShopInputError(404, f"no user with id {user_id!r} in this shop")
        return user_id


def load_catalog(data_dir: str | Path) -> Catalog:
    """Load a data set directory (validated by `tools.data.load_dataset`, which raises
    `DataError` naming the missing file or bad record)."""
    from tools.data import load_dataset

    dataset = load_dataset(data_dir)
    products = {
        asin: normalise_product(asin, p.model_dump()) for asin, p in dataset.products.items()
    }
    histories: dict[str, list[str]] = {}
    for user_id, interactions in dataset.histories.items():
        sequence = []
        for interaction in interactions:
            asin = interaction.product_info.parent_asin
            if asin not in products:  # a history may name products the catalogue lacks
                products[asin] = normalise_product(asin, interaction.product_info.model_dump())
            sequence.append(asin)
        histories[user_id] = sequence
    for user_id in dataset.profiles:  # users without purchases can still shop and review
        histories.setdefault(user_id, [])
    return Catalog(products=products, histories=histories)


def normalise_product(asin: str, raw: dict[str, Any]) -> ProductDetails:
    return ProductDetails(
        asin=asin,
        title=str(raw.get("title") or ""),
        store=str(raw.get("store") or ""),
        category=str(raw.get("main_category") or ""),
        price=_number(raw.get("price")),
        rating=_number(raw.get("average_rating")),
        rating_number=_integer(raw.get("rating_number")),
        features=[str(f) for f in raw.get("features") or []],
        description=[str(d) for d in raw.get("description") or []],
        details={str(k): _text(v) for k, v in (raw.get("details") or {}).items()},
    )


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace("$", "").replace(",", "").strip())
        except ValueError:
            return None
    return None


def _integer(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
