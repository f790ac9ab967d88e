"""PersonalWAB's tools over the shop: schemas, injected user, both transports, errors,
and the real-browser checks. A real uvicorn server on loopback and Debian's Chromium."""

from __future__ import annotations

import pytest
import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, TypedDict

from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.graph import START, StateGraph, add_messages
from langgraph.prebuilt import ToolNode

from tools import (
    TOOL_NAMES,
    BrowserTransport,
    HttpTransport,
    ShopError,
    ShopServer,
    ToolResult,
    make_shop_tools,
)
from tools.shop.sample import write_sample_dataset


@pytest.fixture(scope="module")
def browser(sample_shop):
    with BrowserTransport(sample_shop.url) as transport:
        yield transport


def by_name(tools):
    return {t.name: t for t in tools}


def call(tool, **args):
    """Invoke like an agent does (a tool call) and return the ToolMessage."""
    return tool.invoke({"type": "tool_call", "id": "1", "name": tool.name, "args": args})


# ---- the tools as the model sees them -------------------------------------------------
def test_tool_names_and_schemas_hide_the_user(sample_http):
    tools = make_shop_tools(sample_http)
    assert tuple(t.name for t in tools) == TOOL_NAMES
    schemas = {t.name: convert_to_openai_tool(t)["function"]["parameters"] for t in tools}
    assert schemas["search_product_by_query"]["required"] == ["query"]
    assert schemas["get_recommendations_by_history"]["properties"]["product_sequence"][
        "type"] == "array"
    assert list(schemas["add_product_review"]["properties"]) == ["review"]
    assert list(schemas["get_product_details_by_asin"]["properties"]) == ["product_asin"]
    assert list(schemas["respond"]["properties"]) == ["content"]
    assert schemas["stop"]["properties"] == {}
    assert all("user_id" not in str(s) for s in schemas.values())
    assert all("as_of" not in str(s) and "review_asin" not in str(s) for s in schemas.values())


def test_search_result_is_text_for_the_model_and_asins_for_scoring(sample_http):
    tools = by_name(make_shop_tools(sample_http, user_id="U_COFFEE01"))
    message = call(tools["search_product_by_query"], query="coffee")
    result: ToolResult = message.artifact
    assert result.ok and result.asins[0] in {"B0BEANS007", "B0KETTL006", "B0GRIND005"}
    lines = message.content.splitlines()
    assert lines[0] == f'Top {len(result.asins)} products for "coffee":'
    assert lines[1].startswith(f"1. [{result.asins[0]}] ")
    assert call(tools["search_product_by_query"], query="coffee").content == message.content


@pytest.mark.parametrize(("written", "typed"), [
    ("smart_light_bulb", "smart light bulb"),
    ('{"query":"Zentrix smart light bulb"}', "Zentrix smart light bulb"),
    ('coffee","query":"grinder', "coffee grinder"),
    ("kids' shoes & socks - size 5", "kids' shoes socks size 5"),  # marks alone are no words
    ("  espresso   cups, ", "espresso cups"),
])
def test_a_query_is_searched_as_a_person_would_type_it(sample_http, written, typed):
    tools = by_name(make_shop_tools(sample_http, user_id="U_COFFEE01"))
    message = call(tools["search_product_by_query"], query=written)
    assert f'"{typed}"' in message.content.splitlines()[0]
    if written == "smart_light_bulb":
        return
    cleaned = call(tools["search_product_by_query"], query=typed)
    assert message.artifact.asins == cleaned.artifact.asins


def test_recommend_and_details_tools(sample_http):
    tools = by_name(make_shop_tools(sample_http, user_id="U_CAMPER01"))
    recs = call(tools["get_recommendations_by_history"], product_sequence=["B0TENT0001"])
    assert recs.artifact.asins[0] == "B0BAG00002"
    details = call(tools["get_product_details_by_asin"], product_asin="B0STOVE004")
    assert details.artifact.asins == ["B0STOVE004"]
    assert "Compact Camping Stove" in details.content and "price n/a" in details.content


@pytest.mark.parametrize(
    ("tool", "args", "expected"),
    [
        ("search_product_by_query", {"query": ""}, "query is empty"),
        ("search_product_by_query", {"query": '{"":"__"}'}, "query is empty"),
        ("search_product_by_query", {"query": "q" * 501}, "at most 500"),
        ("get_product_details_by_asin", {"product_asin": "B0NOSUCH00"}, "B0NOSUCH00"),
        ("get_product_details_by_asin", {"product_asin": "tent"}, "'B0' followed by 8"),
        ("get_recommendations_by_history", {"product_sequence": []}, "no purchase history"),
        ("get_recommendations_by_history", {"product_sequence": "B0TENT0001"}, "valid list"),
        ("add_product_review", {"review": ""}, "1 to 5000 characters"),
        ("search_product_by_query", {}, "query: Field required"),
    ],
)
def test_tool_errors_are_messages_not_exceptions(sample_http, tool, args, expected):
    tools = by_name(make_shop_tools(sample_http, user_id="U_CAMPER01"))
    message = call(tools[tool], **args)
    assert message.content.startswith("Error: ") and expected in message.content


def test_a_recommendation_naming_no_products_uses_the_signed_in_users_purchases(sample_http):
    orders = {"U_CAMPER01": [(1.0, "B0TENT0001"), (2.0, "B0STOVE004")], "U_NEW": []}

    def history(user: str, as_of: float | None) -> list[str]:
        return [asin for when, asin in orders[user] if as_of is None or when <= as_of]

    tools = by_name(make_shop_tools(sample_http, history=history))
    recommend = tools["get_recommendations_by_history"]
    implied = call(recommend, user_id="U_CAMPER01")
    named = call(recommend, product_sequence=["B0TENT0001", "B0STOVE004"], user_id="U_CAMPER01")
    assert implied.artifact.ok and implied.artifact.asins == named.artifact.asins
    assert "after 2 products" in implied.content
    earlier = call(recommend, user_id="U_CAMPER01", as_of=1.5)  # the call's own time
    assert "after 1 products" in earlier.content
    nothing = call(recommend, user_id="U_NEW")
    assert nothing.content.startswith("Error: ") and "no purchases yet" in nothing.content


def test_shop_down_is_a_message(tmp_path):
    with ShopServer(write_sample_dataset(tmp_path)) as stopped:
        url = stopped.url
    with HttpTransport(url) as transport:
        message = call(by_name(make_shop_tools(transport, user_id="U"))["stop"])
        assert message.content == "Conversation ended."
        search = call(by_name(make_shop_tools(transport, user_id="U"))[
            "search_product_by_query"], query="tent")
    assert search.content.startswith("Error: the shop at") and "not reachable" in search.content
    assert search.artifact.ok is False


class AgentState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    user_id: str
    review_asin: str | None
    as_of: float | None


def test_user_id_is_injected_from_graph_state(sample_http):
    graph = StateGraph(AgentState)
    graph.add_node("tools", ToolNode(make_shop_tools(sample_http)))
    graph.add_edge(START, "tools")
    request = AIMessage("", tool_calls=[{"name": "add_product_review", "id": "c1",
                                         "args": {"review": "Packs small, sleeps well."}}])
    out = graph.compile().invoke({"messages": [request], "user_id": "U_CAMPER02",
                                  "review_asin": "B0PAD00003", "as_of": None})
    out["messages"] = out["messages"][1:]
    review = out["messages"][0].artifact.review
    assert (review.user_id, review.product_asin) == ("U_CAMPER02", "B0PAD00003")
    assert review.review == "Packs small, sleeps well."


def test_isolation_fails_closed(sample_http):
    bound = by_name(make_shop_tools(sample_http, user_id="U_CAMPER01"))["add_product_review"]
    other = bound.invoke({"type": "tool_call", "id": "1", "name": bound.name,
                          "args": {"review": "hi", "user_id": "U_COFFEE01"}})
    assert other.content.startswith("Error: these tools belong to another user")
    unbound = by_name(make_shop_tools(sample_http))["add_product_review"]
    assert "no user is signed in" in call(unbound, review="hi").content


def test_tools_run_in_async_agents(sample_http):
    tool = by_name(make_shop_tools(sample_http, user_id="U_CAMPER01"))["search_product_by_query"]
    message = asyncio.run(tool.ainvoke({"type": "tool_call", "id": "1", "name": tool.name,
                                        "args": {"query": "lantern"}}))
    assert message.artifact.asins[0] == "B0LAMP0011"


def test_respond_passes_to_the_simulated_user(sample_http):
    tools = by_name(make_shop_tools(sample_http, user_id="U_RUNNER01",
                                    on_respond=lambda text: f"user heard: {text}"))
    assert call(tools["respond"], content="Which size?").content == "user heard: Which size?"


# ---- the real browser -----------------------------------------------------------------
SAME_QUERIES = [
    ("search", "tent"), ("search", "Brewlab coffee"), ("search", "merino wool socks"),
    ("search", "zeppelin"), ("search", ""), ("search", "x" * 501),
    ("recommend", ["B0TENT0001"]), ("recommend", ["B0SHOE0009", "B0GRIND005"]),
    ("recommend", []), ("recommend", ["B0TENT0001"] * 31), ("recommend", ["B0NOSUCH00"]),
    ("product", "B0TENT0001"), ("product", "B0SOCK0010"), ("product", "B0STOVE004"),
    ("product", "B0NOSUCH00"), ("product", "b0tent0001"),
]


def outcome(transport, method, *arguments):
    try:
        return getattr(transport, method)(*arguments)
    except ShopError as exc:
        return ("error", exc.status, exc.message)


@pytest.mark.browser
def test_both_transports_return_the_same_results(sample_http, browser):
    for method, argument in SAME_QUERIES:
        assert outcome(browser, method, argument) == outcome(sample_http, method, argument), method


@pytest.mark.browser
def test_both_transports_store_the_same_review(sample_http, browser):
    text = "Warm enough at 25F.\nZip snags a bit."
    via_http = sample_http.add_review("U_CAMPER03", text, "B0BAG00002")
    via_browser = browser.add_review("U_CAMPER03", text, "B0BAG00002")
    assert via_browser.id == via_http.id + 1
    same = ("user_id", "product_asin", "review")
    assert via_browser.model_dump(include=set(same)) == via_http.model_dump(include=set(same))
    for user, review, asin in (("U_NOBODY", "ok", None), ("U_CAMPER03", "ok", "B0NOSUCH00"),
                               ("U_CAMPER03", " ", None), ("bad id", "ok", None)):
        refused = [outcome(t, "add_review", user, review, asin) for t in (sample_http, browser)]
        assert refused[0][0] == "error" and refused[0] == refused[1]


@pytest.mark.browser
def test_tools_over_the_browser_match_http(sample_http, browser):
    over_http = by_name(make_shop_tools(sample_http, user_id="U_CAMPER01"))
    over_browser = by_name(make_shop_tools(browser, user_id="U_CAMPER01"))
    for name, args in [("search_product_by_query", {"query": "camping"}),
                       ("get_recommendations_by_history", {"product_sequence": ["B0BAG00002"]}),
                       ("get_product_details_by_asin", {"product_asin": "B0NOSUCH00"})]:
        assert call(over_browser[name], **args).content == call(over_http[name], **args).content


@pytest.mark.browser
def test_script_in_a_review_does_not_run(sample_shop, browser):
    attack = ('<script>window.__pwned = 1</script>'
              '<img src=x onerror="window.__pwned = 2">')
    stored = browser.add_review("U_CAMPER01", attack, "B0LAMP0011")
    assert stored.review == attack  # stored as written, shown as text

    def inspect(page):
        seen = {}
        for path in (f"/reviews/{stored.id}?user=U_CAMPER01", "/products/B0LAMP0011"):
            page.goto(sample_shop.url + path)
            seen[path] = (page.evaluate("() => window.__pwned === undefined"),
                          page.locator("p.text").last.text_content(),
                          page.locator("p.text script, p.text img").count())
        return seen

    for path, (not_run, shown, injected_elements) in browser.run_on_page(inspect).items():
        assert not_run, path
        assert shown == attack, path
        assert injected_elements == 0, path


@pytest.mark.browser
def test_browser_reports_a_stopped_shop(tmp_path):
    with ShopServer(write_sample_dataset(tmp_path)) as stopped:
        url = stopped.url
    with BrowserTransport(url) as transport:
        with pytest.raises(ShopError, match="could not be used in the browser"):
            transport.search("tent")


@pytest.mark.browser
def test_browser_serves_calls_from_many_threads(sample_http, browser):
    """LangGraph runs parallel tool calls in a thread pool; Playwright is thread-bound."""
    queries = ["tent", "coffee", "socks", "lantern", "kettle", "stove"]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(browser.search, queries))
    assert results == [sample_http.search(q) for q in queries]
