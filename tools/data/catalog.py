"""The synthetic catalog: products with varied titles, features and descriptions.

Each product also gets a small `Catalog` index entry (category, subtype, brand, price
quantile) that the user and task generators use to pick products by preference; the
entry is not written to products.json, which keeps PersonalWAB's product layout.
"""

from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass, field

from tools.data import vocab
from tools.data.vocab import CategorySpec

ASIN_CHARS = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class CatalogEntry:
    """What the generator knows about a product beyond its JSON record."""

    asin: str
    category: str
    subtype: str
    brand: str
    feature_keys: tuple[str, ...]
    use: str
    price: float
    price_quantile: float  # 0..1 within its category


@dataclass
class Catalog:
    """Products (PersonalWAB records) plus the generator's index over them."""

    products: dict[str, dict]
    entries: dict[str, CatalogEntry]
    brands: dict[str, list[str]]  # category -> brands
    by_category: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for asin in sorted(self.entries):
            self.by_category.setdefault(self.entries[asin].category, []).append(asin)

    def spec(self, category: str) -> CategorySpec:
        return next(c for c in vocab.CATEGORIES if c.name == category)


def new_asin(rng: random.Random, taken: set[str]) -> str:
    """An Amazon-style id, `B0` plus 8 uppercase alphanumerics, unique in `taken`."""
    while True:
        asin = "B0" + "".join(rng.choice(ASIN_CHARS) for _ in range(8))
        if asin not in taken:
            taken.add(asin)
            return asin


def brand_names(rng: random.Random, count: int, taken: set[str]) -> list[str]:
    """Distinct invented brand names (single tokens, unique across the catalog)."""
    names: list[str] = []
    while len(names) < count:
        name = rng.choice(vocab.BRAND_ONSETS) + rng.choice(vocab.BRAND_MIDDLES)
        name += rng.choice(vocab.BRAND_CODAS)
        if name.lower() not in taken:
            taken.add(name.lower())
            names.append(name)
    return names


def build_catalog(
    rng: random.Random, per_category: int = 200, brands_per_category: int = 22
) -> Catalog:
    """Build the catalog: `per_category` products in each of the vocabulary's categories."""
    products: dict[str, dict] = {}
    entries: dict[str, CatalogEntry] = {}
    brands: dict[str, list[str]] = {}
    taken_asins: set[str] = set()
    taken_brands: set[str] = set()
    for spec in vocab.CATEGORIES:
        names = brand_names(rng, brands_per_category, taken_brands)
        brands[spec.name] = names
        # Brand tiers spread prices: budget, mid-range and premium makers.
        tiers = {name: rng.choice((0.55, 0.8, 1.0, 1.3, 1.9)) for name in names}
        drafts = []
        for _ in range(per_category):
            brand = rng.choice(names)
            subtype = rng.choice(spec.subtypes)
            price = _price(rng, spec, tiers[brand], spec.subtypes.index(subtype))
            drafts.append((brand, subtype, price))
        prices = sorted(p for _, _, p in drafts)
        for brand, subtype, price in drafts:
            asin = new_asin(rng, taken_asins)
            feature_keys = tuple(rng.sample(spec.features, rng.randint(3, 5)))
            use = rng.choice(spec.uses)
            quantile = _quantile(prices, price)
            products[asin] = _product_record(rng, spec, asin, brand, subtype, feature_keys, use,
                                             price)
            entries[asin] = CatalogEntry(asin, spec.name, subtype, brand, feature_keys, use,
                                         price, quantile)
    return Catalog(products=products, entries=entries, brands=brands)


def _price(rng: random.Random, spec: CategorySpec, tier: float, subtype_index: int) -> float:
    low, high = spec.price_range
    base = math.exp(rng.uniform(math.log(low), math.log(high)))
    subtype_factor = 0.8 + 0.1 * subtype_index
    return round(max(1.99, base * tier * subtype_factor * rng.uniform(0.85, 1.15)), 2)


def _quantile(sorted_prices: list[float], price: float) -> float:
    below = sum(1 for p in sorted_prices if p < price)
    return below / max(1, len(sorted_prices) - 1)


def _product_record(
    rng: random.Random,
    spec: CategorySpec,
    asin: str,
    brand: str,
    subtype: str,
    feature_keys: tuple[str, ...],
    use: str,
    price: float,
) -> dict:
    material = rng.choice(spec.materials)
    color = rng.choice(vocab.COLORS)
    words = {
        "brand": brand,
        "subtype": subtype,
        "Subtype": subtype.title(),
        "adj": rng.choice(vocab.TITLE_ADJECTIVES),
        "f1": feature_keys[0].title(),
        "f2": feature_keys[1].title(),
        "color": color.title(),
        "size": rng.choice(vocab.SIZES),
        "model": f"{rng.choice(string.ascii_uppercase)}{rng.randint(10, 990)}",
        "line": rng.choice(vocab.LINE_NAMES),
    }
    title_template = rng.choice((
        "{brand} {adj} {Subtype} - {f1}, {f2}",
        "{brand} {Subtype} with {f1} ({color})",
        "{adj} {Subtype} by {brand}, {f1}",
        "{brand} {model} {Subtype} | {f1} | {size}",
        "{brand} {line} {Subtype}, {color}, {size}",
        "{Subtype} - {brand} {adj} {line} with {f2}",
    ))
    features = []
    for key in feature_keys:
        template = rng.choice(vocab.FEATURE_TEMPLATES)
        features.append(template.format(
            Feature=key[:1].upper() + key[1:], feature=key, use=rng.choice(spec.uses),
            material=material, aspect=rng.choice(vocab.ASPECTS),
        ))
    sentences = rng.sample(vocab.DESCRIPTION_TEMPLATES, rng.randint(2, 4))
    uses = rng.sample(spec.uses, 2)
    description = [
        s.format(use=use, use2=uses[1] if uses[1] != use else uses[0], subtype=subtype,
                 brand=brand, feature=feature_keys[0], feature2=feature_keys[-1],
                 material=material, aspect=rng.choice(vocab.ASPECTS),
                 adjective=rng.choice(vocab.DESCRIPTION_ADJECTIVES))
        for s in sentences
    ]
    year = rng.randint(2015, 2022)
    details = {
        "Brand": brand,
        "Item Type Name": subtype,
        "Color": color,
        "Material": material,
        "Item Weight": f"{rng.uniform(0.1, 9.0):.1f} pounds",
        "Model Number": words["model"],
        "Date First Available": f"{rng.choice(vocab.MONTHS)} {rng.randint(1, 28)}, {year}",
    }
    rating = min(5.0, max(1.0, rng.gauss(4.2, 0.45)))
    return {
        "title": title_template.format(**words),
        "parent_asin": asin,
        "main_category": spec.name,
        "average_rating": round(rating, 1),
        "rating_number": int(math.exp(rng.uniform(math.log(3), math.log(25000)))),
        "price": price,
        "store": brand,
        "features": features,
        "description": description,
        "details": details,
    }
