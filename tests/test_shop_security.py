"""Issue 18 on the shop, a real uvicorn server on loopback: bodies capped while they are
read, ids that cannot exist refused, keys for the API, sessions and CSRF for the pages."""

from __future__ import annotations

import httpx
import pytest

from tests.test_serve_isolation import send_unfinished_chunked_body
from tools.shop import ShopServer
from tools.shop.app import MAX_BODY_BYTES


@pytest.fixture(scope="module")
def open_shop(sample_shop_dir, tmp_path_factory):
    with ShopServer(sample_shop_dir, db_path=tmp_path_factory.mktemp("db") / "reviews.sqlite3") as running:
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


# ---- keys, sessions and CSRF ---------------------------------------------------------------
@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    from tools.auth import KeyRing

    return KeyRing(tmp_path_factory.mktemp("shop-keys") / "keys.json")


@pytest.fixture(scope="module")
def secure_shop(sample_shop_dir, keys, tmp_path_factory):
    with ShopServer(sample_shop_dir, db_path=tmp_path_factory.mktemp("db") / "reviews.sqlite3", keys=keys) as running:
        yield running


def bearer(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def test_the_api_needs_a_key_and_writes_only_for_its_users(secure_shop, keys):
    url = secure_shop.url
    assert httpx.get(url + "/api/search", params={"q": "tent"}).status_code == 401
    key, _ = keys.create(["U_CAMPER01"])
    assert httpx.get(url + "/api/search", params={"q": "tent"}, headers=bearer(key)).status_code == 200
    mine = httpx.post(url + "/api/reviews", headers=bearer(key),
                      json={"user_id": "U_CAMPER01", "review": "a fine tent", "product_asin": "B0TENT0001"})
    assert mine.status_code == 201
    other = httpx.post(url + "/api/reviews", headers=bearer(key), json={"user_id": "U_COFFEE01", "review": "forged"})
    assert other.status_code == 403 and other.json()["status"] == 403
    assert secure_shop.shop.reviews.by_user("U_COFFEE01") == []
    read = httpx.get(url + "/api/reviews", params={"user_id": "U_COFFEE01"}, headers=bearer(key))
    assert read.status_code == 403
    assert [r["review"] for r in httpx.get(url + "/api/reviews", params={"user_id": "U_CAMPER01"},
                                           headers=bearer(key)).json()] == ["a fine tent"]


def test_a_front_ends_service_key_writes_for_the_user_it_forwards(secure_shop, keys):
    from tools.auth import FORWARDED_USER
    from tools.transport_http import HttpTransport

    key, _ = keys.create(tenant="*", service=True)
    with HttpTransport(secure_shop.url, key=key) as transport:  # how the agent reaches a keyed shop
        assert transport.search("tent")
        stored = transport.add_review("U_RUNNER01", "light shoes", "B0SHOE0009")
    assert stored.user_id == "U_RUNNER01"
    forged = httpx.post(secure_shop.url + "/api/reviews", headers=bearer(key, **{FORWARDED_USER: "U_RUNNER01"}),
                        json={"user_id": "U_COFFEE01", "review": "forged"})
    assert forged.status_code == 403 and secure_shop.shop.reviews.by_user("U_COFFEE01") == []


def sign_in(url: str, user: str, key: str) -> httpx.Client:
    client = httpx.Client(base_url=url)
    answer = client.post("/login", data={"user_id": user, "key": key})
    assert answer.status_code == 303, answer.text
    assert "httponly" in answer.headers["set-cookie"].lower() and "samesite=strict" in answer.headers["set-cookie"].lower()
    return client


def test_pages_need_a_session_and_forms_a_csrf_token(secure_shop, keys):
    import re

    url = secure_shop.url
    key, record = keys.create(["U_COFFEE02"])
    assert httpx.get(url + "/review").headers["location"] == "/login"
    anonymous = httpx.post(url + "/review", data={"user_id": "U_COFFEE02", "review": "forged"})
    assert anonymous.status_code == 401
    assert httpx.post(url + "/login", data={"user_id": "U_COFFEE01", "key": key}).status_code == 403
    client = sign_in(url, "U_COFFEE02", key)
    try:
        form = client.get("/review", params={"asin": "B0KETTL006"}).text
        token = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
        assert 'name="user_id"' not in form  # the session says who writes
        stale = client.post("/review", data={"review": "no token", "product_asin": "B0KETTL006"})
        assert stale.status_code == 403 and "security token" in stale.text
        posted = client.post("/review", data={"review": "pours well", "product_asin": "B0KETTL006",
                                              "user_id": "U_COFFEE01", "csrf": token})
        assert posted.status_code == 303
        assert [r.review for r in secure_shop.shop.reviews.by_user("U_COFFEE02")] == ["pours well"]
        assert secure_shop.shop.reviews.by_user("U_COFFEE01") == []
        assert client.get(posted.headers["location"].replace("U_COFFEE02", "U_COFFEE01")).status_code == 200
        assert "U_COFFEE02" in client.get("/products/B0KETTL006").text  # the reviewer sees their own id
        keys.revoke(record.key_id)
        assert client.get("/review").headers["location"] == "/login"  # the session ended with its key
    finally:
        client.close()
    page = httpx.get(url + "/products/B0KETTL006").text
    assert "pours well" in page and "U_COFFEE02" not in page and "a customer" in page


def test_product_pages_hide_reviewer_ids_without_keys_too(open_shop):
    stored = httpx.post(open_shop.url + "/api/reviews", json={"user_id": "U_CAMPER02", "review": "warm bag",
                                                              "product_asin": "B0BAG00002"})
    assert stored.status_code == 201
    anonymous = httpx.get(open_shop.url + "/products/B0BAG00002").text
    assert "warm bag" in anonymous and "U_CAMPER02" not in anonymous
    assert "U_CAMPER02" in httpx.get(open_shop.url + "/products/B0BAG00002", params={"user": "U_CAMPER02"}).text


@pytest.mark.browser
def test_a_person_signs_in_and_reviews_in_chromium(secure_shop, keys):
    from playwright.sync_api import sync_playwright

    from tools.transport_browser import CHROMIUM, CHROMIUM_ARGS

    key, _ = keys.create(["U_CAMPER03"])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(secure_shop.url + "/login")
            page.fill("#login-user", "U_CAMPER03")
            page.fill("#login-key", key)
            page.click("#login-button")
            page.goto(secure_shop.url + "/review?asin=B0LAMP0011")
            page.fill("#review-box", "bright enough")
            page.click("#review-button")
            assert page.locator("#review").get_attribute("data-user") == "U_CAMPER03"
            page.click("#logout-button")
            page.goto(secure_shop.url + "/review")
            assert page.url.endswith("/login")
        finally:
            browser.close()
    assert [r.review for r in secure_shop.shop.reviews.by_user("U_CAMPER03")] == ["bright enough"]
