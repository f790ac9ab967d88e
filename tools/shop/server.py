"""Run the shop in-process: a real uvicorn server on a loopback port, in a thread.

The socket is bound before the thread starts, so the port is known (and taken) at
once; `start()` returns only when the server accepts connections, and `stop()` joins
the thread and closes the socket, leaving nothing behind. Without `keys` it checks no
API keys or sessions (what the agent starts in-process on a loopback port, and
`fints shop serve --insecure`)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import uvicorn

from ..auth import KeyRing
from .app import create_app
from .service import Shop


class _Server(uvicorn.Server):
    """uvicorn's server, remembering its event loop so that stop() can wait for the
    worker threads (AnyIO's, running the sync endpoints) that belong to it."""

    loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets=sockets)


class ShopServer:
    """`with ShopServer(data_dir) as server: httpx.get(server.url + "/api/search?q=x")`."""

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        shop: Shop | None = None,
        db_path: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        keys: KeyRing | None = None,
    ) -> None:
        if (data_dir is None) == (shop is None):
            raise ValueError("give exactly one of data_dir or shop")
        self.shop = shop or Shop.from_dir(data_dir, db_path)
        self.keys = keys
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> ShopServer:
        if self._thread is not None:
            raise RuntimeError("the shop server is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(create_app(self.shop, self.keys), log_level="warning", lifespan="off")
        self._server = _Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"shop:{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the shop server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():  # stuck on an open connection: close it harder
                assert self._server is not None
                self._server.force_exit = True
                self._thread.join(timeout)
            self._join_workers(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def _join_workers(self, timeout: float) -> None:
        """The loop is closed, so its idle workers were told to exit: wait until they have."""
        loop = self._server.loop if self._server is not None else None
        for thread in threading.enumerate():
            if loop is not None and getattr(thread, "loop", None) is loop:
                thread.join(timeout)

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C raises KeyboardInterrupt here)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    def __enter__(self) -> ShopServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
