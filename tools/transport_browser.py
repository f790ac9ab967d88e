"""The shop's HTML pages as a transport for the tools: Playwright drives Debian's
Chromium like a person would (types into the search box, reads the result list,
submits the review form).

Playwright's sync API belongs to the thread that started it, while agents call tools
from any thread (LangGraph runs parallel tool calls in a pool), so every browser action
runs on one dedicated worker thread."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from tools.results import ShopError
from tools.shop.models import ProductDetails, ProductSummary, Review

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
T = TypeVar("T")

_READ_LIST = """els => els.map(li => ({
    asin: li.dataset.asin,
    title: li.querySelector('.title').textContent,
    store: li.querySelector('.store').textContent,
    price: li.dataset.price,
    rating: li.dataset.rating,
}))"""
_READ_PRODUCT = """el => ({
    asin: el.dataset.asin,
    title: el.querySelector('.title').textContent,
    store: el.querySelector('.store').textContent,
    category: el.querySelector('.category').textContent,
    price: el.dataset.price,
    rating: el.dataset.rating,
    rating_number: el.dataset.ratingNumber,
    features: [...el.querySelectorAll('.features li')].map(x => x.textContent),
    description: [...el.querySelectorAll('.description p')].map(x => x.textContent),
    details: Object.fromEntries([...el.querySelectorAll('.details tr')].map(
        tr => [tr.querySelector('th').textContent, tr.querySelector('td').textContent])),
})"""
_READ_REVIEW = """el => ({
    id: el.dataset.id,
    user_id: el.dataset.user,
    product_asin: el.dataset.asin,
    review: el.querySelector('.text').textContent,
    created_at: el.dataset.created,
})"""


class BrowserTransport:
    """Uses the shop at `base_url` through its web pages in a headless Chromium."""

    def __init__(self, base_url: str, executable_path: str = CHROMIUM,
                 timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shop-browser")
        self._playwright: Any = None
        self._browser: Any = None
        self._page: Any = None
        try:
            self._executor.submit(self._launch, executable_path, timeout).result()
        except BaseException:
            self.close()
            raise

    def _launch(self, executable_path: str, timeout: float) -> None:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(
            executable_path=executable_path, args=CHROMIUM_ARGS, headless=True
        )
        self._page = self._browser.new_page()
        self._page.set_default_timeout(timeout * 1000)

    # ---- the transport interface ------------------------------------------------------
    def search(self, query: str) -> list[ProductSummary]:
        def run(page) -> list[ProductSummary]:
            self._goto_form(page, "/", "#search-box")
            page.fill("#search-box", query)
            with page.expect_navigation():
                page.click("#search-button")
            return self._read_list(page)

        return self.run_on_page(run)

    def recommend(self, product_sequence: list[str]) -> list[ProductSummary]:
        def run(page) -> list[ProductSummary]:
            self._goto_form(page, "/recommendations", "#asins-box")
            page.fill("#asins-box", " ".join(product_sequence))
            with page.expect_navigation():
                page.click("#recommend-button")
            return self._read_list(page)

        return self.run_on_page(run)

    def product(self, asin: str) -> ProductDetails:
        def run(page) -> ProductDetails:
            self._goto(page, f"/products/{quote(asin, safe='')}")
            self._raise_error_page(page)
            raw = page.eval_on_selector("#product", _READ_PRODUCT)
            raw["rating_number"] = int(raw["rating_number"]) if raw["rating_number"] else None
            return ProductDetails(**_numbers(raw))

        return self.run_on_page(run)

    def add_review(self, user_id: str, review: str, product_asin: str | None = None) -> Review:
        def run(page) -> Review:
            self._goto(page, "/review?" + urlencode({"user": user_id}))
            page.fill("#user-box", user_id)
            page.fill("#asin-box", product_asin or "")
            page.fill("#review-box", review)
            with page.expect_navigation():
                page.click("#review-button")
            self._raise_error_page(page)
            raw = page.eval_on_selector("#review", _READ_REVIEW)
            return Review(**{**raw, "id": int(raw["id"]),
                             "product_asin": raw["product_asin"] or None})

        return self.run_on_page(run)

    def close(self) -> None:
        """Close the browser and its thread; safe to call twice."""
        def shutdown() -> None:
            if self._browser is not None:
                self._browser.close()
            if self._playwright is not None:
                self._playwright.stop()
            self._browser = self._playwright = self._page = None

        if self._executor is not None:
            try:
                self._executor.submit(shutdown).result()
            finally:
                self._executor.shutdown(wait=True)
                self._executor = None

    def __enter__(self) -> BrowserTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_on_page(self, action: Callable[[Any], T]) -> T:
        """Run `action(page)` on the browser's thread; Playwright errors become ShopError."""
        if self._executor is None or self._page is None:
            raise ShopError("the browser is closed; open a new BrowserTransport")
        from playwright.sync_api import Error as PlaywrightError

        def guarded() -> T:
            try:
                return action(self._page)
            except PlaywrightError as exc:
                first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ShopError(
                    f"the shop at {self.base_url} could not be used in the browser "
                    f"({first_line}); try again later or stop"
                ) from exc

        return self._executor.submit(guarded).result()

    # ---- helpers ----------------------------------------------------------------------
    def _goto(self, page, path: str) -> None:
        page.goto(self.base_url + path)

    def _goto_form(self, page, path: str, selector: str) -> None:
        """Stay on the current shop page if it has the form (every page has the search
        box), as a person would; otherwise open `path`."""
        if not (page.url.startswith(self.base_url + "/") and page.query_selector(selector)):
            self._goto(page, path)

    def _read_list(self, page) -> list[ProductSummary]:
        self._raise_error_page(page)
        rows = page.eval_on_selector_all("#results li.product", _READ_LIST)
        return [ProductSummary(**_numbers(row)) for row in rows]

    @staticmethod
    def _raise_error_page(page) -> None:
        error = page.query_selector("#error")
        if error is not None:
            raise ShopError(error.text_content() or "the shop refused the request",
                            int(error.get_attribute("data-status") or 0))


def _numbers(raw: dict) -> dict:
    """data-* attributes are strings; '' means no value."""
    for key in ("price", "rating"):
        raw[key] = float(raw[key]) if raw[key] else None
    return raw
