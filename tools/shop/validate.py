"""Input checks shared by the HTML pages and the JSON API, so both refuse the same input
with the same words: what was wrong and what is allowed."""

from __future__ import annotations

import re

from tools.registry import MAX_SEQUENCE

from .models import ASIN_PATTERN, MAX_QUERY_CHARS, MAX_REVIEW_CHARS, USER_ID_PATTERN

_ASIN = re.compile(ASIN_PATTERN)
_USER_ID = re.compile(USER_ID_PATTERN)


class ShopInputError(Exception):
    """A request the shop refuses; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_asin(asin: str, what: str = "product_asin") -> str:
    asin = asin.strip() if isinstance(asin, str) else asin
    if not isinstance(asin, str) or not _ASIN.match(asin):
        raise ShopInputError(
            400,
            f"{what} {asin!r} is not a valid ASIN: an ASIN is 'B0' followed by 8 "
            "uppercase letters or digits, e.g. 'B0ABC12345'",
        )
    return asin


def check_query(query: str | None) -> str:
    query = (query or "").strip()
    if not query:
        raise ShopInputError(400, "query is empty: give 1 to 500 characters of search words")
    if len(query) > MAX_QUERY_CHARS:
        raise ShopInputError(
            400, f"query has {len(query)} characters: at most {MAX_QUERY_CHARS} are allowed"
        )
    return query


def check_sequence(sequence: list[str]) -> list[str]:
    if not sequence:
        raise ShopInputError(
            400, f"product_sequence is empty: give 1 to {MAX_SEQUENCE} ASINs, oldest first"
        )
    if len(sequence) > MAX_SEQUENCE:
        raise ShopInputError(
            400,
            f"product_sequence has {len(sequence)} ASINs: at most {MAX_SEQUENCE} are allowed "
            "(keep the most recent ones)",
        )
    return [check_asin(asin, "product_sequence item") for asin in sequence]


def check_review(review: str | None) -> str:
    # Browsers submit a textarea's line breaks as CRLF; store one form of the same text.
    review = (review or "").replace("\r\n", "\n").strip()
    if not review:
        raise ShopInputError(400, f"review is empty: write 1 to {MAX_REVIEW_CHARS} characters")
    if len(review) > MAX_REVIEW_CHARS:
        raise ShopInputError(
            400, f"review has {len(review)} characters: at most {MAX_REVIEW_CHARS} are allowed"
        )
    return review


def check_user_id(user_id: str | None) -> str:
    user_id = (user_id or "").strip()
    if not _USER_ID.match(user_id):
        raise ShopInputError(
            400,
            f"user_id {user_id!r} is not valid: use 1 to 64 letters, digits, '_' or '-'",
        )
    return user_id
