"""PersonalWAB's functions as LangChain tools, over any shop transport.

The model sees only PersonalWAB's arguments. The user id is not one of them: it comes
from the graph state (`InjectedState("user_id")`, filled by LangGraph's ToolNode) or is
bound when the tools are made for one user; a call with neither, or with a state user
that contradicts the bound one, is refused (isolation fails closed). The rest of the
call's own context travels the same way, never in shared dicts: the product a review is
about (`review_asin`) and the task's time (`as_of`, where the purchase history stops).

Every tool returns (text for the model, `ToolResult`) - `response_format=
"content_and_artifact"` - so a ToolMessage carries the ranked ASINs in `.artifact` for
scoring. Errors never raise into the agent: they come back as text saying what was
wrong and what is allowed."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Protocol

from langchain_core.tools import BaseTool, StructuredTool
from langgraph.prebuilt import InjectedState
from pydantic import BaseModel, Field, ValidationError, field_validator

from tools.results import (
    ShopError,
    ToolResult,
    render_details,
    render_products,
    render_review,
)
from tools.registry import DETAILS, MAX_SEQUENCE, RECOMMEND, RESPOND, REVIEW, SEARCH, STOP
from tools.shop.models import ProductDetails, ProductSummary, Review



class ShopTransport(Protocol):
    """What the tools need from a shop; `HttpTransport` and `BrowserTransport` fit."""

    def search(self, query: str) -> list[ProductSummary]: ...
    def recommend(self, product_sequence: list[str]) -> list[ProductSummary]: ...
    def product(self, asin: str) -> ProductDetails: ...
    def add_review(self, user_id: str, review: str, product_asin: str | None = None) -> Review: ...


UserId = Annotated[str | None, InjectedState("user_id")]
ReviewAsin = Annotated[str | None, InjectedState("review_asin")]
AsOf = Annotated[float | None, InjectedState("as_of")]


def clean_query(text: str) -> str:
    """A query as a person types it into a search box: words separated by single spaces,
    with no underscores, JSON keys or punctuation (a small model writes `smart_light_bulb`
    or `{"query":"..."}`, which a word index cannot match). A query of marks alone comes
    out empty, which the shop refuses as such."""
    text = re.sub(r'"\s*\w+\s*"\s*:', " ", text)  # a JSON key such as "query":
    text = re.sub(r'[_{}\[\]"\\:;|<>=*#`~^]+', " ", text)
    return " ".join(word for word in text.split() if re.search(r"\w", word)).rstrip(",.")


class SearchArgs(BaseModel):
    query: str = Field(description="search words for the product, e.g. brand, type, features")
    user_id: UserId = None

    @field_validator("query")
    @classmethod
    def _cleaned(cls, value: str) -> str:
        return clean_query(value)


class RecommendArgs(BaseModel):
    product_sequence: list[str] = Field(
        default_factory=list,
        description=f"ASINs of products the user bought, oldest first, at most {MAX_SEQUENCE}; "
        "leave it out to use the signed-in user's purchase history",
    )
    user_id: UserId = None
    as_of: AsOf = None


class ReviewArgs(BaseModel):
    review: str = Field(description="the review text, written in the user's own voice")
    user_id: UserId = None
    review_asin: ReviewAsin = None


class DetailsArgs(BaseModel):
    product_asin: str = Field(description="the product's ASIN, e.g. B0ABC12345")
    user_id: UserId = None


class StopArgs(BaseModel):
    user_id: UserId = None


class RespondArgs(BaseModel):
    content: str = Field(description="what to say to the user")
    user_id: UserId = None


DESCRIPTIONS = {
    SEARCH: "Search the shop for products matching a query; returns the "
    "top 10 products (BM25 over title, brand, category, features and description).",
    RECOMMEND: "Recommend products from a sequence of products the "
    "user interacted with (ASINs in time order, at most 30; by default the signed-in user's "
    "purchase history); returns the top 10 recommended products.",
    REVIEW: "Write and store a review of a product for the user; returns the "
    "stored review.",
    DETAILS: "Get one product's details (title, store, price, "
    "rating, features, description) by its ASIN.",
    STOP: "End the conversation when the user's request is done.",
    RESPOND: "Say something to the user, e.g. ask a clarifying question; returns the "
    "user's answer when a user is attached.",
}


def make_shop_tools(
    transport: ShopTransport,
    user_id: str | None = None,
    on_respond: Callable[[str], str] | None = None,
    history: Callable[[str, float | None], list[str]] | None = None,
) -> list[BaseTool]:
    """The six PersonalWAB tools over `transport`.

    Args:
        transport: where the shop is (HTTP or browser).
        user_id: bind the tools to one user; otherwise the graph state's `user_id` is used.
        on_respond: the simulated user's answer to `respond(content)`; without it the tool
            only confirms that the message was sent.
        history: maps (user id, the call's `as_of` time or None) to their purchase
            history (ASINs, oldest first), used when a recommendation names no products:
            a shop knows its signed-in customer's orders, and a model cannot be expected
            to recite thirty ASINs.
    """

    def who(state_user: str | None) -> str:
        if state_user and user_id and state_user != user_id:
            raise ShopError("these tools belong to another user; the request was refused")
        chosen = state_user or user_id
        if not chosen:
            raise ShopError("no user is signed in: the agent state has no user_id")
        return chosen

    def search(query: str, user_id: str | None = None) -> ToolResult:
        who(user_id)
        products = transport.search(query)
        heading = (f'Top {len(products)} products for "{query.strip()}":' if products
                   else f'No products match "{query.strip()}"; try other or fewer words.')
        return ToolResult(SEARCH, render_products(heading, products),
                          products=products)

    def recommend(product_sequence: list[str] | None = None, user_id: str | None = None,
                  as_of: float | None = None) -> ToolResult:
        user = who(user_id)
        if not product_sequence:
            if history is None:
                raise ShopError("product_sequence is empty and this shop has no purchase "
                                "history for the user; name the products (ASINs, oldest first)")
            product_sequence = history(user, as_of)[-MAX_SEQUENCE:]
            if not product_sequence:
                raise ShopError(f"user {user!r} has no purchases yet; search instead, or name "
                                "the products to recommend from")
        products = transport.recommend(product_sequence)
        heading = f"Top {len(products)} recommendations after {len(product_sequence)} products:"
        return ToolResult(RECOMMEND, render_products(heading, products),
                          products=products)

    def review(review: str, user_id: str | None = None, review_asin: str | None = None) -> ToolResult:
        user = who(user_id)
        stored = transport.add_review(user, review, review_asin)
        return ToolResult(REVIEW, render_review(stored), review=stored)

    def details(product_asin: str, user_id: str | None = None) -> ToolResult:
        who(user_id)
        product = transport.product(product_asin)
        return ToolResult(DETAILS, render_details(product),
                          details=product)

    def stop(user_id: str | None = None) -> ToolResult:
        return ToolResult(STOP, "Conversation ended.")

    def respond(content: str, user_id: str | None = None) -> ToolResult:
        who(user_id)
        answer = on_respond(content) if on_respond else "Message sent to the user."
        return ToolResult(RESPOND, answer)

    specs = [
        (SEARCH, search, SearchArgs),
        (RECOMMEND, recommend, RecommendArgs),
        (REVIEW, review, ReviewArgs),
        (DETAILS, details, DetailsArgs),
        (STOP, stop, StopArgs),
        (RESPOND, respond, RespondArgs),
    ]
    return [_tool(name, fn, schema) for name, fn, schema in specs]


def _tool(name: str, fn: Callable[..., ToolResult], schema: type[BaseModel]) -> BaseTool:
    def run(**kwargs: Any) -> tuple[str, ToolResult]:
        try:
            result = fn(**kwargs)
        except ShopError as exc:
            result = ToolResult(name, f"Error: {exc.message}", ok=False)
        except Exception as exc:  # never let a shop failure crash the agent
            result = ToolResult(name, f"Error: the shop failed ({type(exc).__name__}: {exc}); "
                                "try again or stop", ok=False)
        return result.text, result

    return StructuredTool.from_function(
        func=run,
        name=name,
        description=DESCRIPTIONS[name],
        args_schema=schema,
        response_format="content_and_artifact",
        handle_validation_error=_describe_validation_error,
    )


def _describe_validation_error(exc: ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
    )
    return f"Error: bad arguments ({problems}); check the tool's argument types"
