"""The shop's web application: HTML pages for people and browsers, a JSON API (with its
OpenAPI schema at /openapi.json) for programs. Both call the same `Shop`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jinja2
from fastapi import FastAPI, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from .models import (
    MAX_QUERY_CHARS,
    ErrorBody,
    ProductDetails,
    RecommendRequest,
    RecommendResult,
    Review,
    ReviewRequest,
    SearchResult,
)
from ..body_limit import BodyLimit
from .service import Shop
from .validate import ShopInputError

HERE = Path(__file__).parent
# The pages need no script at all; forbidding scripts is a second wall behind escaping.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
}
_ERRORS = {400: {"model": ErrorBody}, 404: {"model": ErrorBody}, 422: {"model": ErrorBody}}
# The largest honest body: a 5,000-character review, form-encoded (up to 9 bytes a
# character for non-ASCII text), plus the other fields.
MAX_BODY_BYTES = 64 * 1024
MAX_REVIEW_ID = 2**63 - 1  # SQLite's largest integer: a larger id cannot exist


def create_app(shop: Shop) -> FastAPI:
    """A FastAPI application serving `shop`."""
    app = FastAPI(
        title="fints shop",
        description="A simulated shop in PersonalWAB's format: search, recommendations, "
        "product details and reviews.",
        version="1.0",
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True
    )
    templates = Jinja2Templates(env=env)

    def page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        context.setdefault("user", request.query_params.get("user", ""))
        response = templates.TemplateResponse(request, name, context, status_code=status)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(ShopInputError)
    async def shop_error(request: Request, exc: ShopInputError) -> Response:
        return _error(request, exc.status, exc.message, page)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return _error(request, 422, _describe(exc), page)

    # ---- JSON API -------------------------------------------------------------------
    @app.get("/api/search", response_model=SearchResult, responses=_ERRORS, tags=["api"])
    def api_search(
        q: str = Query("", description=f"search words, 1 to {MAX_QUERY_CHARS} characters"),
    ) -> SearchResult:
        """The 10 best products for a query (BM25 over product text)."""
        query, products = shop.search(q)
        return SearchResult(query=query, products=products)

    @app.post(
        "/api/recommendations", response_model=RecommendResult, responses=_ERRORS, tags=["api"]
    )
    def api_recommend(body: RecommendRequest) -> RecommendResult:
        """The 10 best next products for a purchase sequence (excluding the sequence)."""
        sequence, products = shop.recommend(body.product_sequence)
        return RecommendResult(product_sequence=sequence, products=products)

    @app.get(
        "/api/products/{asin}", response_model=ProductDetails, responses=_ERRORS, tags=["api"]
    )
    def api_product(asin: str) -> ProductDetails:
        """One product's details."""
        return shop.product(asin)

    @app.post(
        "/api/reviews", response_model=Review, status_code=201, responses=_ERRORS, tags=["api"]
    )
    def api_add_review(body: ReviewRequest) -> Review:
        """Store a review by a user, optionally about one product."""
        return shop.add_review(body.user_id, body.review, body.product_asin)

    @app.get("/api/reviews", response_model=list[Review], responses=_ERRORS, tags=["api"])
    def api_user_reviews(user_id: str = "") -> list[Review]:
        """All reviews written by one user (only theirs)."""
        return shop.user_reviews(user_id)

    # ---- HTML pages -----------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request) -> HTMLResponse:
        return page(request, "home.html", product_count=len(shop.catalog.products))

    @app.get("/search", response_class=HTMLResponse, include_in_schema=False)
    def search_page(request: Request, q: str = "") -> HTMLResponse:
        query, products = shop.search(q)
        return page(request, "search.html", query=query, products=products)

    @app.get("/recommendations", response_class=HTMLResponse, include_in_schema=False)
    def recommend_page(request: Request, asins: str | None = None) -> HTMLResponse:
        if asins is None:  # the bare form; an empty submitted form is an error below
            return page(request, "recommend.html", asins="", sequence=[], products=None)
        sequence, products = shop.recommend([a for a in re.split(r"[\s,]+", asins) if a])
        return page(
            request,
            "recommend.html",
            asins=" ".join(sequence),
            sequence=[shop.catalog.summary(a) for a in sequence],
            products=products,
        )

    @app.get("/products/{asin}", response_class=HTMLResponse, include_in_schema=False)
    def product_page(request: Request, asin: str) -> HTMLResponse:
        product = shop.product(asin)
        reviews = shop.reviews.by_product(product.asin)
        return page(request, "product.html", product=product, reviews=reviews)

    @app.get("/review", response_class=HTMLResponse, include_in_schema=False)
    def review_form(request: Request, asin: str = "") -> HTMLResponse:
        product = shop.product(asin) if asin.strip() else None
        return page(request, "review_form.html", product=product)

    @app.post("/review", include_in_schema=False)
    def review_submit(
        user_id: str = Form(""), review: str = Form(""), product_asin: str = Form("")
    ) -> RedirectResponse:
        stored = shop.add_review(user_id, review, product_asin or None)
        # Post/redirect/get: reloading the confirmation page does not post twice.
        return RedirectResponse(f"/reviews/{stored.id}?user={stored.user_id}", status_code=303)

    @app.get("/reviews/{review_id}", response_class=HTMLResponse, include_in_schema=False)
    def review_page(request: Request, review_id: int = PathParam(ge=1, le=MAX_REVIEW_ID),
                    user: str = "") -> HTMLResponse:
        return page(request, "review.html", review=shop.review(review_id, user))

    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES, render=_error_body)
    return app


def _error_body(message: str) -> tuple[bytes, str]:
    """The API's error shape for the body cap (pages and API alike: the cap comes first)."""
    return json.dumps({"error": message, "status": 413}).encode(), "application/json"


def _error(request: Request, status: int, message: str, page) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message, "status": status}, status_code=status)
    return page(request, "error.html", status=status, status_code=status, message=message)


def _describe(exc: RequestValidationError) -> str:
    """One readable sentence per problem, e.g. "body.product_sequence: Field required"."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)
