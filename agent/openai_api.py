"""The OpenAI-compatible face of `fints serve`: `POST /v1/chat/completions` and
`GET /v1/models`, so the `openai` client and LangChain's `ChatOpenAI` use the agent.

    client = OpenAI(base_url="http://127.0.0.1:8700/v1", api_key=KEY)
    client.chat.completions.create(model=MODEL, user="U_00012", messages=[...], tools=[...])

A completion is decided exactly as `/v1/act` decides: by the service's batcher (an
OpenAI request and an /v1/act request waiting together share one generate), in
`FintsAgent.decide_batch`, behind the same API keys. The request's `tools` say how:

- none, or the shop's own tools (by name): the shop agent's decision for `user` and the
  last user message, steered by that user's memory, as /v1/act makes it; it always
  makes one shop call, returned to the client to run (not run here). Once that call's
  result is in the conversation, the answer is the result, as the agent's episode ends.
- the client's own tools: the generic chat model (instructions from these tools alone)
  reads the whole conversation and answers under `tool_choice`; the user's steering
  applies where the memory entries it matched were calls of these tools.

The answer is a standard `chat.completion`; what steered it is in the extra field
`fints` (method, steering explanation, batch). Errors have the standard shape
`{"error": {"message", "type", "param", "code"}}`: a bad body is 400
`invalid_request_error`, an unknown model 404 `model_not_found`, no valid key 401, a
`user` the key may not act for 403. A service key names its end user in `user` (an
`X-Fints-User` header, when sent, must name the same user).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Annotated, Any, Literal

import jsonschema
from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.exceptions import HTTPException

from agent.decide import Decider, Row, clean_request
from memory.steerer import SteeringDecision
from tools.auth import USER_ID_PATTERN, Caller
from tools.body_limit import BodyLimit

OPENAI_PATHS = ("/v1/chat/", "/v1/models")
MAX_BODY_BYTES = 256 * 1024  # a conversation with tool results is longer than one request
MAX_MESSAGES = 64
MAX_TOOLS = 32
MAX_CONTENT_CHARS = 16_000
MAX_COMPLETION_TOKENS = 1024
# status -> the error's (type, code) unless the raiser says otherwise
ERROR_KINDS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", "user_not_allowed"),
    404: ("invalid_request_error", "not_found"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "timeout"),
}


# ---------------------------------------------------------------------- the request
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Strict):
    type: Literal["text"]
    text: str = Field(max_length=MAX_CONTENT_CHARS)


Content = Annotated[str, Field(max_length=MAX_CONTENT_CHARS)] | list[TextPart]


class FunctionCall(_Strict):
    name: str = Field(max_length=64)
    arguments: str = Field(max_length=MAX_CONTENT_CHARS, description="the arguments as a JSON object's text")


class ToolCall(_Strict):
    id: str = Field(max_length=128)
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(BaseModel):
    """One message of the conversation. Fields a client echoes back from an answer
    (`refusal`, `annotations`, ...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Content | None = None
    name: str | None = Field(None, max_length=64)
    tool_calls: list[ToolCall] | None = Field(None, max_length=8)
    tool_call_id: str | None = Field(None, max_length=128)

    @model_validator(mode="after")
    def _complete(self) -> Message:
        if self.role == "assistant" and self.content is None and not self.tool_calls:
            raise ValueError("an assistant message needs content or tool_calls")
        if self.role != "assistant" and self.content is None:
            raise ValueError(f"a {self.role} message needs content")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        if (self.role == "tool") != (self.tool_call_id is not None):
            raise ValueError("a tool message needs tool_call_id, and only a tool message has one")
        for call in self.tool_calls or ():
            try:
                arguments = json.loads(call.function.arguments)
            except json.JSONDecodeError as error:
                raise ValueError(f"tool call {call.id!r}: arguments are not JSON ({error})") from None
            if not isinstance(arguments, dict):
                raise ValueError(f"tool call {call.id!r}: arguments must be a JSON object")
        return self

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""

    def to_langchain(self) -> BaseMessage:
        if self.role in ("system", "developer"):
            return SystemMessage(self.text)
        if self.role == "user":
            return HumanMessage(self.text)
        if self.role == "tool":
            return ToolMessage(self.text, tool_call_id=self.tool_call_id)
        calls = [{"name": c.function.name, "args": json.loads(c.function.arguments), "id": c.id, "type": "tool_call"}
                 for c in self.tool_calls or ()]
        return AIMessage(self.text, tool_calls=calls)


class FunctionSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    description: str | None = Field(None, max_length=4000)
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _a_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is None:
            return None
        if schema.get("type", "object") != "object":
            raise ValueError("parameters must be a JSON schema of type 'object'")
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as error:
            raise ValueError(f"parameters is not a valid JSON schema: {error.message}") from None
        return schema


class Tool(_Strict):
    type: Literal["function"]
    function: FunctionSpec


class ToolName(_Strict):
    name: str


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: ToolName


class ChatCompletionRequest(_Strict):
    """The parameters of OpenAI's chat completions that this endpoint honours; others
    are refused by name (400), not silently ignored."""

    model: str = Field(max_length=256)
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    tools: list[Tool] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    max_tokens: int | None = Field(None, ge=1, le=MAX_COMPLETION_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_COMPLETION_TOKENS)
    temperature: float | None = Field(None, ge=0, le=2, description="unset or 0: greedy")
    user: str | None = Field(None, pattern=USER_ID_PATTERN, description="whose memory steers the answer")
    n: Literal[1] | None = None
    stream: Literal[False] | None = Field(None, description="streaming is not offered")
    parallel_tool_calls: bool | None = Field(None, description="accepted; an answer makes at most one call")


# ---------------------------------------------------------------------- errors
class OpenAIError(HTTPException):
    """An HTTP error with the standard body's `param` and `code`."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(status, message)
        self.param, self.code = param, code


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    kind, default_code = ERROR_KINDS.get(status, ("server_error" if status >= 500 else "invalid_request_error",
                                                  None))
    return {"error": {"message": message, "type": kind, "param": param, "code": code or default_code}}


def _render_413(message: str) -> tuple[bytes, str]:
    return json.dumps(error_body(413, message)).encode(), "application/json"


def _param(loc: tuple[Any, ...]) -> str | None:
    """A validation error's location as OpenAI writes it: `messages[0].role`."""
    parts = [p for p in loc if p != "body"]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or None


def _is_openai(request: Request) -> bool:
    return request.url.path.startswith(OPENAI_PATHS)


def install_errors(app: FastAPI) -> None:
    """Errors on the OpenAI paths in the standard shape; every other path keeps
    FastAPI's own (`{"detail": ...}`)."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Any:
        if not _is_openai(request):
            return await http_exception_handler(request, error)
        body = error_body(error.status_code, str(error.detail), getattr(error, "param", None),
                          getattr(error, "code", None))
        return JSONResponse(body, error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Any:
        if not _is_openai(request):
            return await request_validation_exception_handler(request, error)
        first = error.errors()[0]
        param = _param(tuple(first.get("loc", ())))
        if first.get("type") == "extra_forbidden":
            message = f"unsupported parameter {param!r}: this endpoint does not take it"
        elif first.get("type") == "json_invalid":
            message, param = "the body is not valid JSON", None
        else:
            message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
        return JSONResponse(error_body(400, message, param), 400)

    @app.exception_handler(Exception)
    async def crashed(request: Request, error: Exception) -> Any:
        if not _is_openai(request):
            return PlainTextResponse("Internal Server Error", 500)
        return JSONResponse(error_body(500, f"the server failed ({type(error).__name__})"), 500)


class BodyLimits:
    """The service's body cap (agent.serve_app), with a larger one for the OpenAI paths
    (whole conversations), whose 413 has the standard error shape."""

    def __init__(self, app: Any, max_bytes: int, openai_max_bytes: int = MAX_BODY_BYTES) -> None:
        self.default = BodyLimit(app, max_bytes)
        self.openai = BodyLimit(app, openai_max_bytes, render=_render_413)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        limit = self.openai if str(scope.get("path", "")).startswith(OPENAI_PATHS) else self.default
        await limit(scope, receive, send)


# ---------------------------------------------------------------------- deciding
@dataclass(frozen=True)
class ClientTools(Decider):
    """The agent's decider for a client's own tools: the client's system text for
    instructions, no shop examples or past shop calls, and a user's steering only from
    memory entries learned on calls of the tools offered (a vector learned on other
    tools pushes towards a tool this request cannot call)."""

    offered: frozenset[str] = frozenset()

    def steering(self, method: Any, rows: Sequence[Row]) -> list[SteeringDecision]:
        return [s if not s.applied or set(s.matched_tools) <= self.offered else SteeringDecision(
                    False, "the matched memory entries are calls of tools this request does not offer "
                    f"({', '.join(sorted(set(s.matched_tools) - self.offered))})")
                for s in super().steering(method, rows)]


@dataclass(frozen=True)
class ChatOptions:
    """What a batch of completions shares (the batcher's group) beyond the method: the
    client's tools (canonical JSON; None: the shop's) and system text, tool_choice
    (JSON), the token budget and the temperature (None: the agent's own)."""

    method: Any  # agent.methods.Method
    tools: str | None = None
    tool_choice: str = '"any"'
    max_new_tokens: int | None = None
    temperature: float | None = None
    system: str | None = None

    def decide_options(self, agent: Any) -> dict[str, Any]:
        """The keywords of `FintsAgent.decide_batch` for this group."""
        update: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature}
        update = {key: value for key, value in update.items() if value is not None}
        decider, tools = agent.decider, None
        if self.tools is not None:
            tools = json.loads(self.tools)
            update["examples"] = None  # the shop's examples belong to the shop's tools
            shared = {f.name: getattr(decider, f.name) for f in fields(Decider)}
            decider = ClientTools(**shared | {"prompt_memory": None, "system_prompt": self.system,
                                              "offered": frozenset(t["function"]["name"] for t in tools)})
        if update:
            decider = replace(decider, chat=agent.chat.model_copy(update=update))
        return {"method": self.method, "decider": decider, "tools": tools,
                "tool_choice": json.loads(self.tool_choice)}


@dataclass(frozen=True)
class Plan:
    """How one completion is decided: the batcher's item and group, or an answer that
    needs no model (`answer`: the shop call's result, already in the conversation)."""

    item: str | Row | None
    group: Any
    shop: bool
    answer: str | None = None


def plan(body: ChatCompletionRequest, method: Any, shop_tools: tuple[str, ...]) -> Plan:
    """The batcher's item and group for a request (400 for a tool_choice naming no
    offered tool), or the answer when the shop's call already has its result."""
    offered = [tool.function.name for tool in body.tools or ()]
    if len(set(offered)) != len(offered):
        raise OpenAIError(400, "tools: two tools have the same name", param="tools")
    shop = not offered or sorted(offered) == sorted(shop_tools)
    choice: Any = body.tool_choice
    if isinstance(choice, NamedToolChoice):
        choice = {"type": "function", "function": {"name": choice.function.name}}
        if choice["function"]["name"] not in (offered or shop_tools):
            raise OpenAIError(400, f"tool_choice names {choice['function']['name']!r}, which is not among the "
                              f"tools ({', '.join(offered or shop_tools)})", param="tool_choice")
    budget = body.max_completion_tokens or body.max_tokens
    temperature = body.temperature or None  # 0 is the agent's own greedy decoding
    try:
        request, _ = clean_request(next(m.text for m in reversed(body.messages) if m.role == "user"))
    except ValueError as error:
        raise OpenAIError(400, f"messages: the last user message is empty ({error})", param="messages") from None
    if shop:
        if body.messages[-1].role == "tool":
            return Plan(None, None, True, answer=body.messages[-1].text)
        choice = "any" if choice in (None, "auto", "required") else choice  # the shop agent always calls
        if choice == "any" and budget is None and temperature is None:
            return Plan(request, method, True)  # the very group of /v1/act: batched with it
        return Plan(request, ChatOptions(method, None, json.dumps(choice), budget, temperature), True)
    tools = json.dumps([tool.model_dump(exclude_none=True) for tool in body.tools or ()], sort_keys=True)
    system = "\n\n".join(m.text for m in body.messages if m.role in ("system", "developer")) or None
    row = Row(body.user, request, tuple(m.to_langchain() for m in body.messages))
    return Plan(row, ChatOptions(method, tools, json.dumps(choice, sort_keys=True), budget, temperature, system),
                False)


# ---------------------------------------------------------------------- the answer
def completion(decision: Any, model_id: str, extra: dict[str, Any]) -> dict[str, Any]:
    """A `chat.completion` from a `Decision` (its chat model's reply)."""
    reply: AIMessage = decision.reply
    meta, usage = reply.response_metadata, reply.usage_metadata or {}
    calls = [{"id": call["id"] or f"call_{uuid.uuid4().hex[:24]}", "type": "function",
              "function": {"name": call["name"], "arguments": json.dumps(call["args"], ensure_ascii=False)}}
             for call in reply.tool_calls]
    message: dict[str, Any] = {"role": "assistant", "content": None if calls else str(reply.content)}
    if calls:
        message["tool_calls"] = calls
    finish = meta.get("finish_reason")
    finish = finish if finish in ("length", "tool_calls") else ("tool_calls" if calls else "stop")
    # a call that failed to parse (a text answer is no call either, but not malformed)
    fints = extra | {"malformed": bool(reply.invalid_tool_calls)}
    if "cut" in meta:
        fints["cut"] = meta["cut"]
    return _envelope(model_id, message, finish, usage.get("input_tokens", 0), usage.get("output_tokens", 0), fints)


def result_completion(text: str, model_id: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The shop agent's last word: the result of its call, which the client sent back."""
    return _envelope(model_id, {"role": "assistant", "content": text}, "stop", 0, 0, extra)


def _envelope(model_id: str, message: dict[str, Any], finish: str, prompt: int, written: int,
              fints: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_id,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": written, "total_tokens": prompt + written},
        "fints": fints,
    }


def model_card(model_id: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "fints"}


# ---------------------------------------------------------------------- the routes
def register(app: FastAPI, service: Any, authenticate: Callable[..., Caller],
             authorize: Callable[[Caller, str], None]) -> None:
    """The OpenAI routes on the service's app (called by agent.serve_app.create_app)."""
    install_errors(app)
    model_id = service.agent.loaded.model_id
    shop_tools = tuple(tool.name for tool in service.agent.tool_specs())
    created = int(time.time())
    refused = {401: {"description": "no valid API key"}, 403: {"description": "the key may not act for this user"}}

    def served(name: str) -> None:
        if name != model_id:
            raise OpenAIError(404, f"the model {name[:100]!r} does not exist here; this service serves "
                              f"{model_id!r} (GET /v1/models)", param="model", code="model_not_found")

    @app.get("/v1/models", responses=refused)
    def models(caller: Caller = Depends(authenticate)) -> dict[str, Any]:
        """The served model, in OpenAI's list shape."""
        return {"object": "list", "data": [model_card(model_id, created)]}

    @app.get("/v1/models/{model:path}", responses=refused | {404: {"description": "not the served model"}})
    def model(model: str, caller: Caller = Depends(authenticate)) -> dict[str, Any]:
        served(model)
        return model_card(model_id, created)

    @app.post("/v1/chat/completions", responses=refused | {
        400: {"description": "invalid request"}, 404: {"description": "unknown model"},
        413: {"description": "body too large"}, 429: {"description": "queue full; see Retry-After"},
        500: {"description": "decision failed"}, 503: {"description": "shutting down"},
        504: {"description": "no decision in time"}})
    async def chat_completions(body: ChatCompletionRequest, caller: Caller = Depends(authenticate)) -> dict[str, Any]:
        """One assistant turn for `user`, steered by their memory: a tool call or text."""
        served(body.model)
        if not any(m.role == "user" for m in body.messages):
            raise OpenAIError(400, "messages: there is no user message to answer", param="messages")
        if body.user is not None:
            if caller.record is not None and caller.record.service:  # a front end names its user in `user`
                caller = Caller(caller.record, caller.forwarded_user or body.user)
            authorize(caller, body.user)
        method = service.method(None)
        chosen = plan(body, method, shop_tools)
        extra: dict[str, Any] = {"method": method.name, "tools": "shop" if chosen.shop else "client"}
        if chosen.answer is not None:
            return result_completion(chosen.answer, model_id, extra | {
                "steering": {"applied": False, "reason": "the shop call's result is in the conversation: "
                                                         "the agent answers with it"}})
        batched = await service.decided(body.user, chosen.item, chosen.group)
        decision = batched.value
        return completion(decision, model_id, extra | {
            "steering": service.explained(decision.steering), "batch_size": batched.batch_size,
            "queued_s": round(batched.queued_s, 4), "decide_s": round(decision.latency_s, 4)})
