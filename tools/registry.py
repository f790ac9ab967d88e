"""The shop's tool vocabulary, defined once: PersonalWAB's tool names, which tool each
task type needs, and which tools each track offers. Every package that names a tool
imports it from here (memory does not: its callers pass the names in)."""

from __future__ import annotations

SEARCH = "search_product_by_query"
RECOMMEND = "get_recommendations_by_history"
REVIEW = "add_product_review"
DETAILS = "get_product_details_by_asin"
STOP = "stop"
RESPOND = "respond"

# The six tools in the order `make_shop_tools` returns them.
TOOL_NAMES: tuple[str, ...] = (SEARCH, RECOMMEND, REVIEW, DETAILS, STOP, RESPOND)
# One decision, one call: the shop's actions.
SINGLE_TURN_TOOLS: tuple[str, ...] = (SEARCH, RECOMMEND, REVIEW, DETAILS)
# A conversation may also talk to the user and end.
MULTI_TURN_TOOLS: tuple[str, ...] = (*SINGLE_TURN_TOOLS, RESPOND, STOP)

TASK_TYPES: tuple[str, ...] = ("search", "recommend", "review")
# The tool each task type needs (PersonalWAB's F. Acc mapping).
TOOL_FOR_TYPE: dict[str, str] = {"search": SEARCH, "recommend": RECOMMEND, "review": REVIEW}

# The most products a recommendation reads (PersonalWAB's cap on a product sequence).
MAX_SEQUENCE = 30

# The argument a call of each tool is useless without (a decision with it empty is
# degenerate, evals.degeneration). A recommendation has none: left out or empty, its
# product sequence is the signed-in user's purchases (the short form memory records).
REQUIRED_ARGUMENT: dict[str, str] = {
    SEARCH: "query",
    REVIEW: "review",
    DETAILS: "product_asin",
    RESPOND: "content",
}
