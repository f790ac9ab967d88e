"""The shop's web application: HTML pages for people and browsers, a JSON API (with its
OpenAPI schema at /openapi.json) for programs. Both call the same `Shop`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jinja2
from fastapi import Depends, FastAPI, Form, Query, Request
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
from ..auth import AuthError, Caller, KeyRing, caller_for
from ..body_limit import BodyLimit
from .service import Shop
from .sessions import COOKIE, SESSION_TTL_S, Sessions, Viewer
from .validate import ShopInputError, check_user_id

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


def create_app(shop: Shop, keys: KeyRing | None = None) -> FastAPI:
    """A FastAPI application serving `shop`.

    With `keys`, the API needs a key (`Authorization: Bearer ...`) and a review is read
    or written only for a user the key may act for; the pages need a signed-in session
    to write or read one's reviews, and their forms a CSRF token. `keys=None` is the
    CLI's --insecure (also the in-process shop the agent starts on a loopback port):
    the pages then take the visitor from `?user=`, unverified."""
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
    sessions = Sessions(keys) if keys is not None else None

    def viewer(request: Request) -> Viewer:
        if sessions is None:
            return Viewer(request.query_params.get("user", ""))
        return sessions.viewer(request.cookies.get(COOKIE))

    def page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        visitor = viewer(request)
        context.setdefault("user", visitor.user)
        context.update(csrf=visitor.csrf, signed_in=sessions is not None and bool(visitor.user),
                       sessions=sessions is not None)
        response = templates.TemplateResponse(request, name, context, status_code=status)
        response.headers.update(SECURITY_HEADERS)
        return response

    def api_caller(request: Request) -> Caller:
        """The API's caller (401 without a valid key), before the body is parsed."""
        try:
            return caller_for(keys, request.headers)
        except AuthError as error:
            raise ShopInputError(error.status, error.message) from None

    def acting_for(caller: Caller, user_id: str | None) -> None:
        try:
            caller.check(user_id or "")
        except AuthError as error:
            raise ShopInputError(error.status, error.message) from None

    def signed_in(request: Request, csrf: str | None = None) -> Viewer:
        """The visitor a page acts for; with sessions, signed in (and the form's token right)."""
        visitor = viewer(request)
        if sessions is None:
            return visitor
        if not visitor.user:
            raise ShopInputError(401, "sign in first (/login) with your user id and your key")
        if csrf is not None and not visitor.csrf_matches(csrf):
            raise ShopInputError(403, "the form's security token is missing or stale: reload the page and retry")
        return visitor

    @app.exception_handler(ShopInputError)
    async def shop_error(request: Request, exc: ShopInputError) -> Response:
        return _error(request, exc.status, exc.message, page)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return _error(request, 422, _describe(exc), page)

    # ---- JSON API -------------------------------------------------------------------
    api = {"responses": _ERRORS, "tags": ["api"], "dependencies": [Depends(api_caller)]}

    @app.get("/api/search", response_model=SearchResult, **api)
    def api_search(
        q: str = Query("", description=f"search words, 1 to {MAX_QUERY_CHARS} characters"),
    ) -> SearchResult:
        """The 10 best products for a query (BM25 over product text)."""
        query, products = shop.search(q)
        return SearchResult(query=query, products=products)

    @app.post("/api/recommendations", response_model=RecommendResult, **api)
    def api_recommend(body: RecommendRequest) -> RecommendResult:
        """The 10 best next products for a purchase sequence (excluding the sequence)."""
        sequence, products = shop.recommend(body.product_sequence)
        return RecommendResult(product_sequence=sequence, products=products)

    @app.get("/api/products/{asin}", response_model=ProductDetails, **api)
    def api_product(asin: str) -> ProductDetails:
        """One product's details."""
        return shop.product(asin)

    @app.post("/api/reviews", response_model=Review, status_code=201, **api)
    def api_add_review(body: ReviewRequest, caller: Caller = Depends(api_caller)) -> Review:
        """Store a review by a user (one the key may act for), optionally about one product."""
        acting_for(caller, body.user_id)
        return shop.add_review(body.user_id, body.review, body.product_asin)

    @app.get("/api/reviews", response_model=list[Review], **api)
    def api_user_reviews(user_id: str = "", caller: Caller = Depends(api_caller)) -> list[Review]:
        """All reviews written by one user (only theirs; only for a key that may act for them)."""
        acting_for(caller, user_id)
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
        visitor = viewer(request)
        # a reviewer's id is shown only to a visitor allowed to see that user
        reviews = [(r, r.user_id if visitor.may_see(r.user_id) else "")
                   for r in shop.reviews.by_product(product.asin)]
        return page(request, "product.html", product=product, reviews=reviews)

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request) -> HTMLResponse:
        return page(request, "login.html")

    @app.post("/login", include_in_schema=False)
    def login(request: Request, user_id: str = Form(""), key: str = Form("")) -> Response:
        if sessions is None:
            raise ShopInputError(404, "this shop runs without sign-in (--insecure): add ?user=ID to a page")
        try:
            token = sessions.sign_in(check_user_id(user_id), key)
        except ValueError as error:
            raise ShopInputError(403, str(error)) from None
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=SESSION_TTL_S)
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf: str = Form("")) -> Response:
        signed_in(request, csrf)
        if sessions is not None:
            sessions.sign_out(request.cookies.get(COOKIE))
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/review", response_class=HTMLResponse, include_in_schema=False)
    def review_form(request: Request, asin: str = "") -> Response:
        if sessions is not None and not viewer(request).user:
            return RedirectResponse("/login", status_code=303)
        product = shop.product(asin) if asin.strip() else None
        return page(request, "review_form.html", product=product)

    @app.post("/review", include_in_schema=False)
    def review_submit(
        request: Request, user_id: str = Form(""), review: str = Form(""), product_asin: str = Form(""),
        csrf: str = Form(""),
    ) -> RedirectResponse:
        visitor = signed_in(request, csrf)
        if sessions is not None:
            user_id = visitor.user  # the session says who writes, never the form
        stored = shop.add_review(user_id, review, product_asin or None)
        # Post/redirect/get: reloading the confirmation page does not post twice.
        return RedirectResponse(f"/reviews/{stored.id}?user={stored.user_id}", status_code=303)

    @app.get("/reviews/{review_id}", response_class=HTMLResponse, include_in_schema=False)
    def review_page(request: Request, review_id: int = PathParam(ge=1, le=MAX_REVIEW_ID),
                    user: str = "") -> HTMLResponse:
        if sessions is not None:
            user = signed_in(request).user
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
