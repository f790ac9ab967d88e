"""The shop as a real web service: a uvicorn server on loopback, no mocks."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import httpx
import pytest

from tools.data import DataError
from tools.shop import Shop, ShopServer
from tools.shop.sample import SAMPLE_PRODUCTS


@pytest.fixture(scope="module")
def client(sample_shop):
    with httpx.Client(base_url=sample_shop.url) as c:
        yield c


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    return body["error"]


# ---- search ---------------------------------------------------------------------------
@pytest.mark.parametrize("product", SAMPLE_PRODUCTS, ids=lambda p: p["parent_asin"])
def test_exact_title_query_ranks_the_product_first(client, product):
    body = client.get("/api/search", params={"q": product["title"]}).json()
    assert body["products"][0]["asin"] == product["parent_asin"]
    assert len(body["products"]) <= 10


def test_search_uses_brand_and_features(client):
    by_store = client.get("/api/search", params={"q": "Stridex"}).json()["products"]
    assert {p["asin"] for p in by_store} == {"B0SHOE0009", "B0SOCK0010"}
    by_feature = client.get("/api/search", params={"q": "conical burrs"}).json()["products"]
    assert by_feature[0]["asin"] == "B0GRIND005"


def test_search_without_match_is_an_empty_list(client):
    assert client.get("/api/search", params={"q": "zeppelin"}).json()["products"] == []


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "   "}], ids=["missing", "empty", "blank"])
def test_empty_query_is_refused(client, params):
    assert "1 to 500 characters" in error_of(client.get("/api/search", params=params), 400)


def test_oversized_query_is_refused(client):
    message = error_of(client.get("/api/search", params={"q": "tent " * 101}), 400)
    assert "at most 500" in message


# ---- product details ------------------------------------------------------------------
def test_product_details(client):
    body = client.get("/api/products/B0TENT0001").json()
    assert body["title"] == "Trailhead 2-Person Backpacking Tent"
    assert body["details"] == {"Weight": "1.8 kg", "Capacity": "2"}  # numbers become text
    assert client.get("/api/products/B0STOVE004").json()["price"] is None


def test_unknown_asin_is_404_naming_it(client):
    assert "B0NOSUCH00" in error_of(client.get("/api/products/B0NOSUCH00"), 404)


@pytest.mark.parametrize("asin", ["b0tent0001", "B0TENT", "X0TENT0001", "B0TENT00011"])
def test_malformed_asin_is_400_saying_the_form(client, asin):
    message = error_of(client.get(f"/api/products/{asin}"), 400)
    assert asin in message and "'B0' followed by 8 uppercase" in message


# ---- recommendations ------------------------------------------------------------------
def recommend(client, sequence):
    return client.post("/api/recommendations", json={"product_sequence": sequence})


def test_co_purchased_items_rank_first(client):
    tent = [p["asin"] for p in recommend(client, ["B0TENT0001"]).json()["products"]]
    assert tent[0] == "B0BAG00002"  # bought with the tent by all three campers
    assert set(tent[:4]) == {"B0BAG00002", "B0PAD00003", "B0LAMP0011", "B0STOVE004"}
    grinder = [p["asin"] for p in recommend(client, ["B0GRIND005"]).json()["products"]]
    assert grinder[0] == "B0KETTL006"


def test_recommendations_exclude_the_sequence_and_favour_recent_items(client):
    sequence = ["B0TENT0001", "B0GRIND005"]
    asins = [p["asin"] for p in recommend(client, sequence).json()["products"]]
    assert len(asins) == 10 and not set(asins) & set(sequence)
    assert asins[0] == "B0KETTL006"  # the grinder is the most recent purchase
    reversed_ = [p["asin"] for p in recommend(client, sequence[::-1]).json()["products"]]
    assert reversed_[0] == "B0BAG00002"


def test_recommendations_are_deterministic(client, sample_shop_dir, tmp_path):
    sequence = ["B0SHOE0009", "B0MUG00008"]
    first = recommend(client, sequence).json()
    assert recommend(client, sequence).json() == first
    fresh = Shop.from_dir(sample_shop_dir, tmp_path / "r.sqlite3")  # rebuilt from scratch
    assert [p.asin for p in fresh.recommend(sequence)[1]] == [
        p["asin"] for p in first["products"]
    ]


def test_recommendation_errors(client):
    assert "1 to 30 ASINs" in error_of(recommend(client, []), 400)
    assert "at most 30" in error_of(recommend(client, ["B0TENT0001"] * 31), 400)
    assert "'nope'" in error_of(recommend(client, ["B0TENT0001", "nope"]), 400)
    assert "B0NOSUCH00" in error_of(recommend(client, ["B0TENT0001", "B0NOSUCH00"]), 404)
    missing = error_of(client.post("/api/recommendations", json={}), 422)
    assert "product_sequence" in missing and "required" in missing
    assert "valid list" in error_of(recommend(client, "B0TENT0001"), 422)


# ---- reviews --------------------------------------------------------------------------
def add_review(client, **body):
    return client.post("/api/reviews", json=body)


def test_review_is_stored_for_its_user_only(client):
    stored = add_review(client, user_id="U_RUNNER01", review=" Comfy socks. ",
                        product_asin="B0SOCK0010")
    assert stored.status_code == 201
    review = stored.json()
    assert (review["user_id"], review["product_asin"], review["review"]) == (
        "U_RUNNER01", "B0SOCK0010", "Comfy socks.")
    mine = client.get("/api/reviews", params={"user_id": "U_RUNNER01"}).json()
    assert review in mine
    others = client.get("/api/reviews", params={"user_id": "U_COFFEE01"}).json()
    assert all(r["user_id"] == "U_COFFEE01" for r in others)


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        ({"user_id": "U_RUNNER01", "review": ""}, 400, "1 to 5000 characters"),
        ({"user_id": "U_RUNNER01", "review": "x" * 5001}, 400, "at most 5000"),
        ({"user_id": "U_NOBODY", "review": "ok"}, 404, "'U_NOBODY'"),
        ({"user_id": "bad id!", "review": "ok"}, 400, "letters, digits"),
        ({"user_id": "U_RUNNER01", "review": "ok", "product_asin": "B0NOSUCH00"}, 404,
         "B0NOSUCH00"),
        ({"user_id": "U_RUNNER01", "review": "ok", "product_asin": "sock"}, 400, "'B0'"),
        ({"review": "ok"}, 422, "user_id"),
    ],
)
def test_bad_reviews_are_refused_and_nothing_is_stored(client, body, status, expected):
    before = client.get("/api/reviews", params={"user_id": "U_RUNNER01"}).json()
    assert expected in error_of(add_review(client, **body), status)
    assert client.get("/api/reviews", params={"user_id": "U_RUNNER01"}).json() == before


def test_reviews_survive_a_restart(sample_shop_dir, tmp_path):
    db = tmp_path / "reviews.sqlite3"
    with ShopServer(sample_shop_dir, db_path=db) as first:
        stored = httpx.post(f"{first.url}/api/reviews", json={
            "user_id": "U_COFFEE02", "review": "Kettle pours well.", "product_asin": "B0KETTL006"
        }).json()
    with ShopServer(sample_shop_dir, db_path=db) as second:
        again = httpx.get(f"{second.url}/api/reviews", params={"user_id": "U_COFFEE02"}).json()
        page = httpx.get(f"{second.url}/products/B0KETTL006").text
    assert again == [stored]
    assert "Kettle pours well." in page


# ---- HTML pages -----------------------------------------------------------------------
def test_html_pages_render(client):
    assert "12 products" in client.get("/").text
    results = client.get("/search", params={"q": "coffee"}).text
    assert 'data-asin="B0BEANS007"' in results
    recs = client.get("/recommendations", params={"asins": "B0TENT0001"}).text
    assert 'data-asin="B0BAG00002"' in recs
    product = client.get("/products/B0SOCK0010").text
    assert "Soft &lt;b&gt;and&lt;/b&gt; warm." in product  # catalogue text is escaped too
    assert 'value="B0SOCK0010"' in client.get("/review", params={"asin": "B0SOCK0010"}).text


def test_html_errors_are_pages_with_the_message(client):
    response = client.get("/products/B0NOSUCH00")
    assert response.status_code == 404 and "text/html" in response.headers["content-type"]
    assert "no product with ASIN &#39;B0NOSUCH00&#39;" in response.text
    assert client.get("/search", params={"q": ""}).status_code == 400
    assert client.get("/recommendations", params={"asins": ""}).status_code == 400


def test_review_form_escapes_script_and_redirects(client):
    response = client.post("/review", data={
        "user_id": "U_CAMPER02", "product_asin": "B0STOVE004",
        "review": "<script>alert(1)</script>\r\nhot fast",
    })
    assert response.status_code == 303
    page = client.get(response.headers["location"])
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>" not in page.text
    assert "script-src 'none'" in page.headers["content-security-policy"]
    stored = client.get("/api/reviews", params={"user_id": "U_CAMPER02"}).json()[-1]
    assert stored["review"] == "<script>alert(1)</script>\nhot fast"
    # another user cannot read it by id
    other = client.get(response.headers["location"].replace("U_CAMPER02", "U_CAMPER01"))
    assert other.status_code == 404


def test_openapi_schema_lists_the_api(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/search", "/api/recommendations", "/api/reviews",
            "/api/products/{asin}"} <= set(paths)
    assert "/search" not in paths


# ---- starting and stopping ------------------------------------------------------------
def test_start_stop_leaves_no_thread_or_port(sample_shop_dir, tmp_path):
    threads_before = set(threading.enumerate())
    server = ShopServer(sample_shop_dir, db_path=tmp_path / "r.sqlite3").start()
    port = server.port
    assert httpx.get(f"{server.url}/api/products/B0TENT0001").status_code == 200
    server.stop()
    assert set(threading.enumerate()) - threads_before == set()  # nothing new left running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # the port is free again


def test_missing_data_set_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="missing products.json"):
        ShopServer(tmp_path)


def test_cli_serves_the_shop(sample_shop_dir, tmp_path):
    from tools.auth import KeyRing

    key, _ = KeyRing(tmp_path / "keys.json").create(["U_CAMPER01"])
    command = [sys.executable, "-m", "agent.cli", "shop", "serve", "--data", str(sample_shop_dir),
               "--port", "0", "--db", str(tmp_path / "r.sqlite3"), "--keys", str(tmp_path / "keys.json")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert "shop serving 12 products at http://127.0.0.1:" in line
        url = line.split(" at ")[1].split("/ ")[0].strip()
        assert httpx.get(f"{url}/api/search", params={"q": "tent"},
                         headers={"Authorization": f"Bearer {key}"}).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=20)
    failed = subprocess.run(command[:6] + [str(tmp_path / "none"), "--insecure"], capture_output=True,
                            text=True)
    assert failed.returncode == 2 and "missing products.json" in failed.stderr
