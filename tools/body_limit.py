"""A request body cap enforced while the body is read, for both servers (shop and agent).

Checking Content-Length alone lets a chunked body (no length) through, and reading the
body first to measure it means holding all of it: a 200 MiB chunked upload was read
whole before the 413. This ASGI middleware counts bytes as they arrive and answers 413
the moment the count passes the cap, without reading the rest; a body within the cap
is buffered (it is small by definition) and handed to the application unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """`app.add_middleware(BodyLimit, max_bytes=N)`: bodies over N bytes get 413."""

    def __init__(self, app: ASGIApp, max_bytes: int, render: Callable[[str], tuple[bytes, str]] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.render = render or _json_detail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: wait for a disconnect
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        body, content_type = self.render(f"body too large: at most {self.max_bytes} bytes")
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _json_detail(message: str) -> tuple[bytes, str]:
    return json.dumps({"detail": message}).encode(), "application/json"
