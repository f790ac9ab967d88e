"""Issue 18 on the shop, a real uvicorn server on loopback: bodies capped while they are
read, ids that cannot exist refused, keys for the API, sessions and CSRF for the pages."""

from __future__ import annotations

import httpx
import pytest

from tests.test_serve_isolation import send_unfinished_chunked_body
from tools.shop import ShopServer
from tools.shop.app import MAX_BODY_BYTES
from tools.shop.sample import write_sample_dataset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_sample_dataset(tmp_path_factory.mktemp("shop-security"))


@pytest.fixture(scope="module")
def open_shop(data_dir, tmp_path_factory):
    with ShopServer(data_dir, db_path=tmp_path_factory.mktemp("db") / "reviews.sqlite3") as running:
        yield running


@pytest.mark.parametrize("path, content_type", [("/api/reviews", "application/json"),
                                                ("/review", "application/x-www-form-urlencoded")])
def test_chunked_body_is_refused_while_it_is_read(open_shop, path, content_type):
    reply = send_unfinished_chunked_body(open_shop.url, path, b"x" * (MAX_BODY_BYTES + 1), content_type)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]


def test_a_20_mb_review_is_refused_before_it_is_parsed(open_shop):
    answer = httpx.post(open_shop.url + "/api/reviews", timeout=60,
                        json={"user_id": "U_CAMPER01", "review": "x" * 20_000_000})
    assert answer.status_code == 413
    assert answer.json() == {"error": f"body too large: at most {MAX_BODY_BYTES} bytes", "status": 413}
    assert open_shop.shop.reviews.by_user("U_CAMPER01") == []


def test_a_review_id_beyond_sqlite_is_refused_not_a_500(open_shop):
    answer = httpx.get(open_shop.url + "/reviews/99999999999999999999999", params={"user": "U_CAMPER01"})
    assert answer.status_code == 422 and "less than or equal" in answer.text
