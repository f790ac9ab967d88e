"""The text the model sees before a decision, and the exact text of a call.

Public because steering vectors are extracted from past interactions in the SAME format
the model decides in: `render_prompt(messages, tools) + render_call(name, arguments)` is
the text the model saw and wrote when it made that call (teacher forcing it gives the
activations of the real decision).

The base template (for base models without a chat template, such as the bundled Gemma
3 270M) is plain text: system content, the tools (name, description, arguments), the
caller's example requests if it gives any (`examples=`; the shop agent passes
`EXAMPLES`), then the conversation, and the cue `Assistant:` + newline after which the
model writes one compact JSON call. The instructions come from the bound tools alone:
a generic caller's prompt carries nothing of the shop. Models with a chat template get
it, with the tools passed as `tools=` when the template reads them, else described in
the system message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.utils import convert_to_messages
from langchain_core.utils.function_calling import convert_to_openai_tool

from tools.registry import DETAILS, RECOMMEND, RESPOND, REVIEW, SEARCH, STOP

Template = Literal["auto", "base", "chat"]
CUE = "Assistant:\n"
RESULT_CHARS = 400

# Example requests, per tool name: (request, arguments).
Examples = Mapping[str, tuple[str, dict[str, Any]]]
# The shop agent's examples: one explicit request per PersonalWAB tool (neutral: none is
# a vague request, so none teaches a default tool). Its memory entries were extracted
# from prompts that hold them, so the shop agent passes them (`examples=EXAMPLES`).
# The review example asks for a review without dictating it and shows one written about
# the item asked of: users ask that way, and a base model copies what the example
# shows (with the review's text in the request, it wrote that text for every product).
EXAMPLES: dict[str, tuple[str, dict[str, Any]]] = {
    SEARCH: (
        "Search the shop for Adidas soccer cleats.",
        {"query": "adidas soccer cleats"},
    ),
    RECOMMEND: ("Suggest products that fit my past orders.", {}),
    REVIEW: (
        "Post my review of the blender I bought.",
        {"review": "I bought this blender a month ago and it works well."},
    ),
    DETAILS: (
        "Show me the details of product B00EXAMPLE3.",
        {"product_asin": "B00EXAMPLE3"},
    ),
    STOP: ("That is all, thank you.", {}),
    RESPOND: (
        "Ask me which size I need before you search.",
        {"content": "Which size do you need?"},
    ),
}


def as_written(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A past call's arguments in the form the agent writes them.

    A recommendation from the user's own history leaves `product_sequence` out (the shop
    fills in the signed-in user's purchases): memory entries and prompt memory record
    that short form, so what is learnt is the choice of tool, not thirty ASINs.
    """
    if name == RECOMMEND:
        return {k: v for k, v in arguments.items() if k != "product_sequence"}
    return dict(arguments)


def format_tools(tools: Sequence[Any] | None) -> list[dict[str, Any]]:
    """OpenAI-style tool dicts from LangChain tools, pydantic models, functions or dicts."""
    return [convert_to_openai_tool(tool) for tool in tools or ()]


def render_call(name: str, arguments: dict[str, Any]) -> str:
    """The exact text the model writes for a call under the grammar: compact JSON, name
    first, then the arguments in the order given (the order of the tool's schema when
    the call came from the model)."""
    return json.dumps({"name": name, "arguments": arguments}, separators=(",", ":"), ensure_ascii=False)


def resolve_template(template: Template, tokenizer: Any | None) -> Literal["base", "chat"]:
    """"auto" means the tokenizer's chat template when it has one, else the base one."""
    if template not in ("auto", "base", "chat"):
        raise ValueError(f"template must be 'auto', 'base' or 'chat', not {template!r}")
    has_chat = tokenizer is not None and bool(getattr(tokenizer, "chat_template", None))
    if template == "chat" and not has_chat:
        raise ValueError("template='chat' but the tokenizer has no chat template; use 'base' or 'auto'")
    if template == "auto":
        return "chat" if has_chat else "base"
    return template


def render_prompt(
    messages: Sequence[Any],
    tools: Sequence[Any] | None = None,
    *,
    tokenizer: Any | None = None,
    template: Template = "base",
    examples: Examples | None = None,
) -> str:
    """The text before the model's next turn, ending with the cue for it.

    `messages` are LangChain messages (or anything `convert_to_messages` takes); `tools`
    anything `bind_tools` takes. The chat template needs the `tokenizer`. `examples`
    (base template): example requests of the bound tools that have one, shown before
    the conversation.
    """
    msgs = convert_to_messages(list(messages))
    specs = format_tools(tools)
    if resolve_template(template, tokenizer) == "chat":
        return _render_chat(msgs, specs, tokenizer)
    return _render_base(msgs, specs, examples or {})


def describe_tools(specs: Sequence[dict[str, Any]]) -> str:
    """Tools as plain text: one line per tool with its arguments, and the call format."""
    lines = ["Tools:"]
    for spec in specs:
        function = spec["function"]
        lines.append(f"- {function['name']}: {_one_line(function.get('description', ''))}")
        properties = (function.get("parameters") or {}).get("properties") or {}
        required = set((function.get("parameters") or {}).get("required") or ())
        for arg, schema in properties.items():
            kind = schema.get("type", "any")
            if kind == "array":
                kind = f"list of {(schema.get('items') or {}).get('type', 'any')}"
            note = "" if arg in required else ", optional"
            described = _one_line(schema.get("description", ""))
            lines.append(f"    {arg} ({kind}{note}){': ' + described if described else ''}")
    lines.append('Reply with one call as JSON: {"name":<tool>,"arguments":{...}}.')
    return "\n".join(lines)


RECITED_WORDS = 3  # an answer that opens with this many words of a tool's description recites it


def copies_tool_list(text: str, specs: Sequence[dict[str, Any]]) -> bool:
    """Whether a text answer recites the tool list instead of answering: its first
    line, leading marks and list numbers aside, starts with a tool's name (as a word),
    with a line of `describe_tools` or with the first RECITED_WORDS words of a tool's
    description, or is the start of such a line (8 characters or more). A base model
    does that when it cannot tell a call from an answer."""
    def bare(line: str) -> str:
        return re.sub(r"^(?:[\W_]+|\d+[.:)])+", "", _one_line(line)).strip().casefold()

    first = bare(text.strip().split("\n")[0]) if text.strip() else ""
    if not first or not specs:
        return False
    names = [spec["function"]["name"].casefold() for spec in specs]
    listed = [bare(line) for line in describe_tools(specs).splitlines()]
    openings = [" ".join(bare(spec["function"].get("description") or "").split()[:RECITED_WORDS])
                for spec in specs]
    return (any(re.match(rf"{re.escape(name)}(?!\w)", first) for name in names)
            or any(line and (first.startswith(line) or (line.startswith(first) and len(first) >= 8))
                   for line in listed)
            or any(len(opening.split()) == RECITED_WORDS and re.match(rf"{re.escape(opening)}(?!\w)", first)
                   for opening in openings))


def _render_base(msgs: list[BaseMessage], specs: list[dict[str, Any]], examples: Examples) -> str:
    blocks: list[str] = []
    system = [_text(m) for m in msgs if isinstance(m, SystemMessage)]
    if system:
        blocks.append("\n".join(system))
    if specs:
        blocks.append(describe_tools(specs))
        names = [spec["function"]["name"] for spec in specs]
        shots = [(examples[n][0], n, examples[n][1]) for n in names if n in examples]
        if shots:
            blocks.append("Examples:\n\n" + "\n\n".join(
                f"User: {request}\n{CUE}{render_call(name, args)}" for request, name, args in shots
            ))
    turns = [_base_turn(m) for m in msgs if not isinstance(m, SystemMessage)]
    blocks.append("Conversation:\n\n" + "\n".join(t for t in turns if t) + ("\n" if turns else "") + CUE)
    return "\n\n".join(blocks)


def _base_turn(message: BaseMessage) -> str:
    if isinstance(message, HumanMessage):
        return f"User: {_one_line(_text(message))}"
    if isinstance(message, AIMessage):
        parts = [_one_line(_text(message))] if _text(message).strip() else []
        parts += [render_call(call["name"], call["args"]) for call in message.tool_calls]
        return "\n".join(f"{CUE}{part}" for part in parts)
    if isinstance(message, ToolMessage):
        return f"Result: {compact_result(_text(message))}"
    return f"{message.type.capitalize()}: {_one_line(_text(message))}"


def compact_result(text: str, limit: int = RESULT_CHARS) -> str:
    """A tool result on one line, cut to `limit` characters."""
    flat = _one_line(text)
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _render_chat(msgs: list[BaseMessage], specs: list[dict[str, Any]], tokenizer: Any) -> str:
    source = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else json.dumps(tokenizer.chat_template)
    native_tools = "tools" in source
    native_tool_role = "tool" in source.replace("tools", "")
    conversation: list[dict[str, str]] = []
    for message in msgs:
        if isinstance(message, SystemMessage):
            conversation.append({"role": "system", "content": _text(message)})
        elif isinstance(message, HumanMessage):
            conversation.append({"role": "user", "content": _text(message)})
        elif isinstance(message, AIMessage):
            calls = [render_call(c["name"], c["args"]) for c in message.tool_calls]
            conversation.append({"role": "assistant", "content": "\n".join([_text(message), *calls]).strip()})
        elif isinstance(message, ToolMessage):
            if native_tool_role:
                conversation.append({"role": "tool", "content": _text(message)})
            else:
                conversation.append({"role": "user", "content": f"Result: {compact_result(_text(message))}"})
    if specs and not native_tools:
        description = describe_tools(specs)
        if conversation and conversation[0]["role"] == "system":
            conversation[0] = {"role": "system", "content": conversation[0]["content"] + "\n\n" + description}
        else:
            conversation.insert(0, {"role": "system", "content": description})
    extra = {"tools": specs} if specs and native_tools else {}
    return tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True, **extra)


def _text(message: BaseMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    return " ".join(
        part if isinstance(part, str) else str(part.get("text", ""))
        for part in message.content
        if isinstance(part, str) or part.get("type") == "text"
    )


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
