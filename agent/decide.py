"""The one decision path: the graph's nodes, the service's batcher and the evaluation
all decide through `Decider.decide`, so what is measured is what `fints run` does.

A decision is: the request cleaned and bounded, the user's steering for it (the
learner's, or none), the messages the model reads (prompt memory added for
`prompt-k*`), one batched generation with each row steered by its own vector, and one
action per reply. `nearest-call` takes the same path without the model: the call of
the user's most similar past request, copied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ValidationError

from agent.methods import Method
from agent.prompt import as_written, format_tools
from agent.prompt_memory import PromptMemory, names, render_memory
from memory.steerer import SteeringDecision
from tools.registry import RECOMMEND, REVIEW, SEARCH
from tools.shop.models import MAX_QUERY_CHARS, MAX_REVIEW_CHARS

MAX_REQUEST_CHARS = 2000
# the keys `Decider.personal_terms` records on a reply for what memory wrote into its call
BRANDS_ADDED, VOICE_ADDED, PURCHASES_ADDED = "brands_added", "voice_added", "purchases_added"
MEMORY_ADDED = (BRANDS_ADDED, VOICE_ADDED, PURCHASES_ADDED)


def clean_request(text: str) -> tuple[str, list[str]]:
    """The request stripped and bounded, with a notice when it was cut; an empty one is
    refused."""
    text = text.strip()
    if not text:
        raise ValueError("empty request: say what you want from the shop")
    if len(text) > MAX_REQUEST_CHARS:
        return text[:MAX_REQUEST_CHARS], [f"request truncated from {len(text)} to {MAX_REQUEST_CHARS} characters"]
    return text, []


@dataclass(frozen=True)
class Row:
    """One decision to make: who asks, what, and the conversation so far (None: just
    the request)."""

    user_id: str | None
    request: str
    messages: tuple[BaseMessage, ...] | None = None


@dataclass(frozen=True)
class Decider:
    """The model, the user's memory and the prompt memory, used the same way by every
    caller. `learner` None means no store: steering methods answer unsteered, flagged."""

    chat: Any  # agent.chat_model.SteeredChatModel, tools unbound
    learner: Any | None  # memory.learner.Learner
    prompt_memory: PromptMemory | None = None
    system_prompt: str | None = None

    def steering(self, method: Method, rows: Sequence[Row]) -> list[SteeringDecision]:
        """Each row's steering: retrieval per user, or a reason not to steer."""
        if not method.steers:
            return [SteeringDecision(False, f"method {method.name} does not steer") for _ in rows]
        if self.learner is None:
            return [SteeringDecision(False, "no memory store configured", fallback=True) for _ in rows]
        return [self.learner.steering_for(row.user_id, row.request, method) for row in rows]

    def conversation(self, method: Method, row: Row) -> list[BaseMessage]:
        """What the model reads: instructions and prompt memory, then the conversation.

        Memory joins the instructions' system content, in front of the tools: placed
        after them it lets the instructions' cache serve every call, but the model then
        follows the past calls far less (docs/chat_model.md, "Prompts")."""
        system = [self.system_prompt] if self.system_prompt else []
        if method.kind == "prompt_memory" and self.prompt_memory is not None:
            past = self.prompt_memory.top_k(row.user_id, row.request, method.k)
            if past:
                system.append(render_memory(past))
        messages: list[BaseMessage] = [SystemMessage("\n\n".join(system))] if system else []
        history = row.messages if row.messages is not None else (HumanMessage(row.request),)
        messages.extend(m for m in history if not isinstance(m, SystemMessage))
        return messages

    def by_length(self, method: Method, rows: Sequence[Row]) -> list[int]:
        """The rows' indices, shortest conversation first (prompt memory included): a
        batch is padded to its longest prompt, so batching rows in this order computes
        fewer pad tokens (prompt-k5 on seed 0's held-out tasks: 283k prefill tokens
        against 340k in task order, batches of 16)."""
        def chars(row: Row) -> int:
            return sum(len(str(m.content)) for m in self.conversation(method, row))

        return sorted(range(len(rows)), key=lambda i: chars(rows[i]))

    def decide(self, method: Method, rows: Sequence[Row], tools: Sequence[Any], *,
               steering: Sequence[SteeringDecision] | None = None, tool_choice: Any = "any",
               ) -> list[tuple[AIMessage, SteeringDecision]]:
        """One batched generation, one call per row (`steering` when already chosen, as
        the graph's steer node does; else chosen here); `tool_choice` as the chat model
        reads it (a client's own, on the OpenAI-compatible endpoint)."""
        if method.kind == "lookup":
            chosen = list(steering) if steering is not None else self.steering(method, rows)
            return [(self.looked_up(row, tools), s) for row, s in zip(rows, chosen)]
        conversations, chosen = self._prepared(method, rows, steering)
        replies = self.chat.generate_batch(
            conversations, steering=[s.vector for s in chosen],
            tools=list(tools), tool_choice=tool_choice, steering_positions=method.positions,
        )
        return [(as_tools_read(self.personal_terms(method, row, _one_action(reply)), tools), s)
                for row, reply, s in zip(rows, replies, chosen)]

    def personal_terms(self, method: Method, row: Row, message: AIMessage) -> AIMessage:
        """The call with what the user's memory knows and a vector cannot spell: a search
        query gets the brands the user chose for items like this one in front
        (`PromptMemory.brands`, `method.brands` of them, the ones it already names left
        out, as many as keep it within the shop's limit); a review ends with up to
        `method.voice` sentences in the user's voice that it lacks (`PromptMemory.voice`;
        a review the budget cut ends at its last whole sentence first, and one the
        sentences would take past the shop's limit stays as written); a recommendation
        that names no products gets the user's purchases in the request's category
        (`PromptMemory.purchases`, with `method.category_purchases`; without any there,
        the shop reads all of them).
        Anything else, an empty query or review (the shop says why it refuses it) and
        every call of a method without memory (zero-shot) are unchanged.
        Steering and prompt memory get the same from the same past calls, so they stay
        comparable."""
        calls = message.tool_calls
        if method.kind not in ("prompt_memory", "steering") or self.prompt_memory is None or not calls:
            return message
        name, args = calls[0]["name"], calls[0]["args"]
        if name == SEARCH and method.brands > 0:
            key, text, added = "query", args.get("query"), BRANDS_ADDED
            if not isinstance(text, str) or not text.strip():
                return message
            brands: list[str] = []
            for brand in self.prompt_memory.brands(row.user_id, row.request, method.brands):
                if not names(text, brand) and len(" ".join([*brands, brand, text])) <= MAX_QUERY_CHARS:
                    brands.append(brand)
            written, extra = " ".join([*brands, text]), brands
        elif name == REVIEW and method.voice > 0:
            key, text, added = "review", args.get("review"), VOICE_ADDED
            if not isinstance(text, str) or not text.strip():
                return message
            if "cut" in message.response_metadata:
                text = whole_sentences(text)
            extra = []
            for sentence in self.prompt_memory.voice(row.user_id, method.voice):
                if not names(text, sentence):
                    extra.append(sentence)
            end = "" if text.rstrip()[-1] in ".!?" else "."
            written = " ".join([f"{text.rstrip()}{end}", *extra])
            if len(written) > MAX_REVIEW_CHARS:
                return message
        elif name == RECOMMEND and method.category_purchases and not args.get("product_sequence"):
            key, added = "product_sequence", PURCHASES_ADDED
            written = extra = self.prompt_memory.purchases(row.user_id, row.request)
        else:
            return message
        if not extra:
            return message
        call = {**calls[0], "args": {**args, key: written}}
        metadata = {**message.response_metadata, added: extra}
        return message.model_copy(update={"tool_calls": [call, *calls[1:]], "response_metadata": metadata})

    def choose(self, method: Method, rows: Sequence[Row], tools: Sequence[Any], *,
               steering: Sequence[SteeringDecision] | None = None) -> list[str | None]:
        """Decision-only: the tool each row's call would name, from one prefill per row
        under the same messages, grammar and steering as `decide` (the name is written
        only as far as it is unique; `SteeredChatModel.choose_tools`, steered at the
        method's positions until the name is decided)."""
        if method.kind == "lookup":
            return [reply.tool_calls[0]["name"] if reply.tool_calls else None
                    for reply in (self.looked_up(row, tools) for row in rows)]
        conversations, chosen = self._prepared(method, rows, steering)
        vectors = [s.vector for s in chosen]
        return self.chat.choose_tools(conversations, vectors if any(v is not None for v in vectors) else None,
                                      tools=list(tools), steering_positions=method.positions)

    def looked_up(self, row: Row, tools: Sequence[Any]) -> AIMessage:
        """`nearest-call`: the user's most similar past call (prompt memory's retrieval,
        the same keys as steering), when its tool is among `tools`; else no call."""
        past = self.prompt_memory.top_k(row.user_id, row.request, 1) if self.prompt_memory else []
        names = {spec["function"]["name"] for spec in format_tools(tools)}
        if not past or past[0].tool not in names:
            why = "no past interaction of this user" if not past else f"its past tool {past[0].tool} is not bound"
            return AIMessage(content=f"nearest-call: {why}", response_metadata={"lookup": None})
        call = {"name": past[0].tool, "args": as_written(past[0].tool, past[0].arguments),
                "id": "lookup", "type": "tool_call"}
        return AIMessage(content="", tool_calls=[call], response_metadata={"lookup": past[0].request})

    def _prepared(self, method: Method, rows: Sequence[Row],
                  steering: Sequence[SteeringDecision] | None
                  ) -> tuple[list[list[BaseMessage]], list[SteeringDecision]]:
        """Each row's messages and steering (the given steering, else chosen here)."""
        chosen = list(steering) if steering is not None else self.steering(method, rows)
        return [self.conversation(method, row) for row in rows], chosen


def whole_sentences(text: str) -> str:
    """A text the token budget cut, without its unfinished end: up to its last finished
    sentence, else without its last (maybe partial) word, so a sentence appended to it
    does not follow half a word ("... and I'. Would buy again.")."""
    text = text.rstrip()
    if not text or text[-1] in ".!?":
        return text
    end = max(text.rfind(mark) for mark in ".!?")
    if end >= 0:
        return text[:end + 1]
    head, _, _ = text.rpartition(" ")
    return head.rstrip(" ,;:-") or text


def as_tools_read(message: AIMessage, tools: Sequence[Any]) -> AIMessage:
    """`message` with each call's arguments as its tool's own schema reads them (a
    search query cleaned to what a person types: `smart_light_bulb` becomes `smart light
    bulb`), so what is shown, recorded and scored is what runs. Tools without a pydantic
    schema, and arguments it refuses (the tool then says why), are left as written."""
    schemas = {getattr(t, "name", None): getattr(t, "args_schema", None) for t in tools}
    calls = []
    for call in message.tool_calls:
        schema = schemas.get(call["name"])
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            try:
                read = schema.model_validate(call["args"]).model_dump(include=set(call["args"]))
                call = {**call, "args": {key: read.get(key, value) for key, value in call["args"].items()}}
            except ValidationError:
                pass
        calls.append(call)
    return message.model_copy(update={"tool_calls": calls}) if calls != message.tool_calls else message


def _one_action(reply: Any) -> AIMessage:
    if not isinstance(reply, AIMessage):
        return AIMessage(content=str(getattr(reply, "content", reply)))
    if len(reply.tool_calls) > 1:  # exactly one action per step
        return reply.model_copy(update={"tool_calls": reply.tool_calls[:1]})
    return reply
