"""The steered agent as an HTTP service for many users at once (`fints serve`).

    POST /v1/act {"user_id": "U_00012", "request": "something for my runs"}
    -> {"call": {...}, "result": {"ok", "text", "asins"}, "steering": {...}, ...}

Requests that arrive together are decided in ONE batched, per-row steered generate
(`agent.serve_batcher.Batcher`), then each call is run against the shop from the
request's own task, outside the model lock. Steering lives only inside that generate
(per row, hooks removed on exit), so no request can see another's vectors. A full
queue answers 429 with Retry-After; bad input answers 422 (pydantic) or 413 (body too
large, counted while it is read); a failed decision answers 500 saying why. Every
request needs an API key allowed to act for its user (tools/auth.py): 401 without one,
403 for another user, before anything is read or written. When memory is unreachable the
request is answered unsteered and `steering.fallback` says so. The same service answers
OpenAI's `POST /v1/chat/completions` and `GET /v1/models` (agent.openai_api), through
the same batcher and keys.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
import uuid
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from agent import openai_api
from agent.decide import MAX_REQUEST_CHARS
from agent.openai_api import ChatOptions
from agent.serve_batcher import DEFAULT_MAX_WAIT_S, Batched, Batcher, QueueFullError, ShuttingDownError
from agent.serve_threads import EpisodeThreads, ThreadOwnedError
from tools.auth import USER_ID_PATTERN, AuthError, Caller, KeyRing, caller_for
from tools.registry import SINGLE_TURN_TOOLS

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024


def _not_blank(text: str) -> str:
    """Refused here, before batching: a blank row would otherwise fail in the model's batch."""
    if not text.strip():
        raise ValueError(f"request is only whitespace: give 1 to {MAX_REQUEST_CHARS} characters saying what you want")
    return text


RequestText = Annotated[str, Field(min_length=1, max_length=MAX_REQUEST_CHARS, description="what the user wants"),
                        AfterValidator(_not_blank)]


class AcceptedCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal[SINGLE_TURN_TOOLS]  # type: ignore[valid-type]
    args: dict[str, Any] = Field(default_factory=dict)


class ActRequest(BaseModel):
    """One user's request to the shop agent."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(pattern=USER_ID_PATTERN, description="letters, digits, _ . -; 1-64 characters")
    request: RequestText
    track: Literal["single"] = Field("single", description="single-turn decisions (one tool call)")
    method: str | None = Field(None, max_length=64, description="a method name (fints model info); default: the service's")
    execute: bool = Field(True, description="run the call against the shop")


class EpisodeRequest(ActRequest):
    """A request run through the whole graph, checkpointed under `thread_id`."""

    thread_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:\-]{1,128}$",
                                  description="resume or name the episode; default: a new id")


class EpisodeAnswer(BaseModel):
    thread_id: str
    user_id: str
    call: dict[str, Any] | None
    result_text: str
    asins: list[str]
    steering: dict[str, Any]
    notices: list[str]
    latency_s: float


class FeedbackRequest(BaseModel):
    """The user accepted this call for this request: learn it (an online memory entry)."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(pattern=USER_ID_PATTERN)
    request: RequestText
    call: AcceptedCall


class ToolOutcome(BaseModel):
    ok: bool
    text: str
    asins: list[str]


class ActAnswer(BaseModel):
    """The call the agent made, what the shop answered and the steering applied."""

    request_id: str
    user_id: str
    method: str
    call: dict[str, Any] | None
    result: ToolOutcome | None
    steering: dict[str, Any]
    malformed: bool
    raw: str = Field(description="the generated text (what failed to parse, when malformed)")
    batch_size: int
    queued_s: float
    decide_s: float
    latency_s: float


class ServeSettings(BaseModel):
    """How the service batches and queues (the CLI's --max-batch, --max-wait-ms, --max-queue)."""

    max_batch: int = Field(8, ge=1, le=64)
    max_wait_s: float = Field(DEFAULT_MAX_WAIT_S, ge=0, le=1)
    max_queue: int = Field(64, ge=1, le=10_000)
    decide_timeout_s: float = Field(600.0, gt=0)
    # episodes whose state is kept in memory when there is no --checkpoint (least
    # recently used dropped first); also how many thread owners are remembered
    max_episodes: int = Field(1000, ge=1, le=1_000_000)
    remember: bool = True  # queue an online memory entry for each successful call
    # the steering explanation names the matched past requests (--no-steering-texts: ids
    # and weights only); only callers allowed to act for the user ever get it
    steering_texts: bool = True


class AgentService:
    """The agent behind the HTTP API: resolves methods, batches decisions, runs calls.

    `method_overrides` are applied to every method name (tests on tiny models use it to
    point steering at layers the model has)."""

    def __init__(self, agent: Any, settings: ServeSettings | None = None, **method_overrides: Any) -> None:
        self.agent = agent
        self.settings = settings or ServeSettings()
        self.method_overrides = method_overrides
        self._methods: dict[str, Any] = {}
        # a persistent checkpointer keeps every episode; without one, state is bounded
        self.threads = EpisodeThreads(self.settings.max_episodes,
                                      keep_state=getattr(agent, "checkpointer", None) is not None)
        self.batcher = Batcher(
            self._decide_batch,
            max_batch=self.settings.max_batch,
            max_wait_s=self.settings.max_wait_s,
            max_queue=self.settings.max_queue,
        )

    def method(self, name: str | None) -> Any:
        """The `Method` for a name (the agent's own when None); ValueError lists valid names."""
        from agent.methods import parse_method

        if name is None:
            return self.agent.method
        if name not in self._methods:
            self._methods[name] = parse_method(name, self.agent.loaded.model_id, **self.method_overrides)
        return self._methods[name]

    def _decide_batch(self, items: Any, group: Any) -> list[Any]:
        """`group` is what a batch shares: a method (/v1/act), or the OpenAI endpoint's
        `ChatOptions` (a method with the client's tools, budget and temperature)."""
        options = group.decide_options(self.agent) if isinstance(group, ChatOptions) else {"method": group}
        return self.agent.decide_batch(list(items), **options)

    async def decided(self, user_id: str | None, request: Any, group: Any) -> Batched:
        """Queue one decision and wait for it; a full queue, a shutdown, a timeout or a
        failed decision raise the HTTP error that says so."""
        try:
            future = self.batcher.submit(user_id, request, group)
        except QueueFullError as error:
            raise HTTPException(429, str(error), headers={"Retry-After": str(error.retry_after_s)}) from None
        except ShuttingDownError as error:
            raise HTTPException(503, str(error)) from None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.settings.decide_timeout_s)
        except TimeoutError:
            raise HTTPException(504, f"no decision within {self.settings.decide_timeout_s:.0f} s") from None
        except ShuttingDownError as error:
            raise HTTPException(503, str(error)) from None
        except Exception as error:
            raise HTTPException(500, f"the decision failed ({type(error).__name__}: {error})") from None

    async def act(self, body: ActRequest) -> ActAnswer:
        started = time.perf_counter()
        try:
            method = self.method(body.method)
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        batched = await self.decided(body.user_id, body.request, method)
        decision = batched.value
        result = None
        if body.execute and decision.call is not None:
            result = await asyncio.to_thread(self.execute, body.user_id, body.request, decision.call)
        return ActAnswer(
            request_id=uuid.uuid4().hex,
            user_id=body.user_id,
            method=method.name,
            call=decision.call,
            result=result,
            steering=self.explained(decision.steering),
            malformed=decision.malformed,
            raw=decision.raw,
            batch_size=batched.batch_size,
            queued_s=round(batched.queued_s, 4),
            decide_s=round(decision.latency_s, 4),
            latency_s=round(time.perf_counter() - started, 4),
        )

    def explained(self, steering: dict[str, Any]) -> dict[str, Any]:
        """The steering summary as answered: past request texts left out when turned off."""
        if self.settings.steering_texts or "entries" not in steering:
            return steering
        return steering | {"entries": [{k: v for k, v in e.items() if k != "request"} for e in steering["entries"]]}

    def execute(self, user_id: str, request: str, call: dict[str, Any]) -> ToolOutcome:
        """Run the call; a shop failure becomes a failed outcome saying why, never a crash."""
        try:
            outcome = self.agent.execute(call, user_id=user_id)
        except Exception as error:
            return ToolOutcome(ok=False, text=f"Error: the shop call failed ({type(error).__name__}: {error})", asins=[])
        if outcome is None:  # the tool's schema refused the arguments before any shop call
            return ToolOutcome(ok=False, asins=[], text=f"Error: {call['name']} refused the arguments "
                               f"{json.dumps(call.get('args', {}), default=str)[:300]}; see the tool's schema")
        answer = ToolOutcome(ok=bool(outcome.ok), text=str(outcome.text), asins=list(outcome.asins))
        if answer.ok and self.settings.remember:
            self._remember(user_id, request, call)
        return answer

    def _remember(self, user_id: str, request: str, call: dict[str, Any]) -> bool:
        """Queue an online memory entry, made by the agent's learner like every other
        entry (its negative policy); False when there is no writer or the queue is full."""
        writer = getattr(self.agent, "writer", None)
        if writer is None:
            return False
        from memory.online import Episode

        try:
            return writer.submit(Episode(user_id, request, call["name"], dict(call.get("args", {}))))
        except Exception:
            log.exception("serve: could not queue a memory entry for %s", user_id)
            return False

    def feedback(self, body: FeedbackRequest) -> dict[str, Any]:
        if getattr(self.agent, "writer", None) is None:
            raise HTTPException(409, "this service has no writable memory store; feedback is not kept")
        queued = self._remember(body.user_id, body.request, body.call.model_dump())
        return {"queued": queued}

    async def episode(self, body: EpisodeRequest) -> EpisodeAnswer:
        """The full graph (steer -> llm -> tools -> memory), checkpointed; not batched."""
        try:
            method = self.method(body.method)
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        thread_id = body.thread_id or uuid.uuid4().hex
        try:
            key = self.threads.claim(body.user_id, thread_id, self.agent.graph(method, "single").checkpointer)
        except ThreadOwnedError as error:
            raise HTTPException(403, str(error)) from None
        try:
            result = await asyncio.to_thread(self.agent.run, body.user_id, body.request,
                                             method=method, thread_id=key)
        except Exception as error:
            raise HTTPException(500, f"the episode failed ({type(error).__name__}: {error})") from None
        return EpisodeAnswer(
            thread_id=thread_id, user_id=body.user_id, call=result.call,
            result_text=result.result_text, asins=result.asins, steering=self.explained(result.steering),
            notices=result.notices, latency_s=round(result.latency_s, 4),
        )

    def health(self) -> dict[str, Any]:
        stats = self.batcher.stats
        return {
            "status": "ok",
            "model": self.agent.loaded.model_id,
            "method": self.agent.method.name,
            "queue": {"depth": self.batcher.depth, "bound": self.settings.max_queue},
            "batches": stats.batches, "decided": stats.decided, "failed": stats.failed,
            "refused": stats.refused, "largest_batch": stats.largest_batch,
            "episodes": {"threads": len(self.threads), "bound": self.settings.max_episodes},
        }

    def close(self) -> None:
        self.batcher.close()


def create_app(service: AgentService, keys: KeyRing | None = None) -> FastAPI:
    """The FastAPI app over a service (OpenAPI at /openapi.json, docs at /docs).

    With `keys`, every /v1 request but health needs a key that may act for its user
    (401 without a valid key, 403 for another user, checked before anything runs);
    `keys=None` is the CLI's --insecure: no checks (and a warning at start)."""
    app = FastAPI(
        title="fints agent",
        description="Personalized web function calling: one steered tool call per request.",
        version="1",
    )
    refused = {401: {"description": "no valid API key"}, 403: {"description": "the key may not act for this user"}}

    def authenticate(request: Request) -> Caller:
        """Who is asking (401 without a valid key): runs before the body is parsed."""
        try:
            return caller_for(keys, request.headers)
        except AuthError as error:
            raise _refusal(error) from None

    @app.post("/v1/act", response_model=ActAnswer, responses=refused | {
        413: {"description": "body too large"}, 422: {"description": "invalid input"},
        429: {"description": "queue full; see Retry-After"}, 500: {"description": "decision failed"},
        503: {"description": "shutting down"}, 504: {"description": "no decision in time"}})
    async def act(body: ActRequest, caller: Caller = Depends(authenticate)) -> ActAnswer:
        """Decide one tool call for the user (steered by their memory) and run it."""
        authorize(caller, body.user_id)
        return await service.act(body)

    @app.post("/v1/episode", response_model=EpisodeAnswer, responses=refused)
    async def episode(body: EpisodeRequest, caller: Caller = Depends(authenticate)) -> EpisodeAnswer:
        """Run one whole episode through the graph, checkpointed under its thread id
        (403 also when the thread belongs to another user)."""
        authorize(caller, body.user_id)
        return await service.episode(body)

    @app.post("/v1/feedback", responses=refused)
    def feedback(body: FeedbackRequest, caller: Caller = Depends(authenticate)) -> dict[str, Any]:
        """The user accepted `call` for `request`: queue it as an online memory entry."""
        authorize(caller, body.user_id)
        return service.feedback(body)

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        return service.health() | {"auth": "keys" if keys is not None else "off (--insecure)"}

    openai_api.register(app, service, authenticate, authorize)
    app.add_middleware(openai_api.BodyLimits, max_bytes=MAX_BODY_BYTES)
    return app


def authorize(caller: Caller, user_id: str) -> None:
    """403 unless the caller may act for `user_id`; called before anything else runs."""
    try:
        caller.check(user_id)
    except AuthError as error:
        raise _refusal(error) from None


def _refusal(error: AuthError) -> HTTPException:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return HTTPException(error.status, error.message, headers=headers)


class ServiceThread:
    """`with ServiceThread(app) as url:` serves the app on a loopback port in a thread
    (benchmarks and tests); the socket is bound first so the port is known at once."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app, self.host, self.port = app, host, port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self._socket, self.port = sock, sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name=f"serve:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"the service did not start on {self.url}")
            time.sleep(0.01)
        return self.url

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(15)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
