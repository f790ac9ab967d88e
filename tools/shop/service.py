"""The shop's operations, independent of HTTP: the HTML pages and the JSON API are two
views over this one object, so they cannot disagree."""

from __future__ import annotations

from pathlib import Path

from .catalog import Catalog, load_catalog
from .models import TOP_K, ProductDetails, ProductSummary, Review
from .recommend import Recommender
from .reviews import ReviewStore
from .search import SearchIndex
from .validate import ShopInputError, check_query, check_review, check_sequence, check_user_id


class Shop:
    def __init__(self, catalog: Catalog, reviews: ReviewStore) -> None:
        self.catalog = catalog
        self.reviews = reviews
        products = list(catalog.products.values())
        self._search = SearchIndex(products)
        self._recommender = Recommender(products, list(catalog.histories.values()))

    @classmethod
    def from_dir(cls, data_dir: str | Path, db_path: str | Path | None = None) -> Shop:
        """Load a data set; reviews go to `db_path` (default: `DATA_DIR/reviews.sqlite3`)."""
        catalog = load_catalog(data_dir)
        return cls(catalog, ReviewStore(db_path or Path(data_dir) / "reviews.sqlite3"))

    def search(self, query: str | None) -> tuple[str, list[ProductSummary]]:
        query = check_query(query)
        return query, [self.catalog.summary(a) for a in self._search.search(query, TOP_K)]

    def recommend(self, sequence: list[str]) -> tuple[list[str], list[ProductSummary]]:
        sequence = check_sequence(sequence)
        unknown = [a for a in sequence if a not in self.catalog.products]
        if unknown:
            self.catalog.product(unknown[0])  # raises the 404 naming the id
        asins = self._recommender.recommend(sequence, TOP_K)
        return sequence, [self.catalog.summary(a) for a in asins]

    def product(self, asin: str) -> ProductDetails:
        return self.catalog.product(asin)

    def add_review(self, user_id: str | None, review: str | None, asin: str | None) -> Review:
        """Validate everything first, then write once: nothing half-stored on error."""
        user_id = self.catalog.check_user(check_user_id(user_id))
        review = check_review(review)
        if asin is not None and asin.strip():
            asin = self.catalog.product(asin).asin
        else:
            asin = None
        return self.reviews.add(user_id, review, asin)

    def user_reviews(self, user_id: str | None) -> list[Review]:
        return self.reviews.by_user(self.catalog.check_user(check_user_id(user_id)))

    def review(self, review_id: int, user_id: str | None) -> Review:
        user_id = check_user_id(user_id)
        found = self.reviews.get(review_id, user_id)
        if found is None:
            raise ShopInputError(404, f"no review {review_id} by user {user_id!r}")
        return found
