"""`fints shop serve` (the shop as a web service) and `fints bench shop` (its latency and
the R. Acc of gold calls); see agent/cli.py for the dispatcher."""

from __future__ import annotations

import argparse

from ..auth import add_auth_arguments


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
    add_auth_arguments(serve)
    serve.set_defaults(func=_serve)

    bench = groups["bench"].add_parser(
        "shop",
        help="shop latency per transport and R. Acc of the gold calls",
        description="Start the shop in-process, replay the data set's gold search and "
        "recommend calls through the HTTP (and optionally browser) transport, and write "
        "latencies and the R. Acc those calls reach to a JSON file.",
    )
    bench.add_argument("--data", required=True, help="data set directory")
    bench.add_argument("--out", default="out/bench_shop.json", help="JSON file to write")
    bench.add_argument("--tasks", type=int, default=200, help="at most this many gold calls")
    bench.add_argument("--browser", action="store_true", help="also time the browser")
    bench.set_defaults(func=_bench)


def _serve(args: argparse.Namespace) -> int:
    import signal
    import sys

    from ..auth import server_keys
    from .server import ShopServer

    try:
        keys = server_keys(args.keys, args.insecure)
        server = ShopServer(args.data, db_path=args.db, host=args.host, port=args.port, keys=keys)
    except (OSError, ValueError) as exc:  # DataError is a ValueError
        print(f"fints shop serve: {exc}", file=sys.stderr)
        return 2
    # `kill` stops the shop as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with server:
        auth = f"{len(keys.active())} API keys from {keys.path}" if keys else "NO AUTHENTICATION (--insecure)"
        print(f"shop serving {len(server.shop.catalog.products)} products at {server.url}/"
              f"  (API docs: {server.url}/docs; {auth}; Ctrl-C stops)", flush=True)
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import main

    return main(args.data, args.out, args.tasks, args.browser)
