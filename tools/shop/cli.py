"""`fints shop serve`: the shop as a web service (see agent/cli.py for the dispatcher)."""

from __future__ import annotations

import argparse


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    """Add `fints shop serve` to the `fints` parser."""
    serve = groups["shop"].add_parser(
        "serve",
        help="serve a data set as a web shop (HTML pages and a JSON API)",
        description="Serve a data set made by `fints shop generate` as a web shop. "
        "Open http://HOST:PORT/ in a browser; the JSON API is documented at /docs.",
    )
    serve.add_argument("--data", required=True, help="data set directory (products.json, ...)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    serve.add_argument(
        "--db", default=None, help="SQLite file for reviews (default: DATA/reviews.sqlite3)"
    )
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    import signal
    import sys

    from .server import ShopServer

    try:
        server = ShopServer(args.data, db_path=args.db, host=args.host, port=args.port)
    except (OSError, ValueError) as exc:  # DataError is a ValueError
        print(f"fints shop serve: {exc}", file=sys.stderr)
        return 2
    # `kill` stops the shop as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with server:
        print(f"shop serving {len(server.shop.catalog.products)} products at {server.url}/"
              f"  (API docs: {server.url}/docs; Ctrl-C stops)", flush=True)
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
    return 0
