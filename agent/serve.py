"""`fints serve` and `fints bench serve`: the command line of the HTTP service.

Cheap to import (argparse only): the service itself is `agent.serve_app` and the
benchmark's measurements `agent.serve_bench`, both loaded by the handlers (the
benchmark does not import this module: the imports run one way). `open_agent` builds
the agent from the flags, with a shared PostgreSQL checkpointer when `--checkpoint` is
a postgresql:// URL (several workers, one database).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from agent.methods import DEFAULT_METHOD
from agent.serve_batcher import DEFAULT_MAX_WAIT_S
from tools.auth import add_auth_arguments


def register_serve(groups: dict[str, argparse._SubParsersAction]) -> None:
    """`fints serve` and `fints bench serve` (called by agent/commands.py)."""
    parser = groups[""].add_parser("serve", help="serve the agent over HTTP (batched, steered per user; "
                                   "also an OpenAI-compatible /v1/chat/completions)")
    add_agent_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8700)
    add_auth_arguments(parser)
    parser.add_argument("--no-steering-texts", action="store_true",
                        help="leave the matched past request texts out of the steering explanation")
    parser.set_defaults(func=_serve)

    bench = groups["bench"].add_parser("serve", help="throughput/latency of fints serve at 1, 4, 8 clients")
    bench.add_argument("--out", required=True, help="directory for bench_serve.json")
    add_agent_arguments(bench, data_required=False)
    bench.add_argument("--requests", type=int, default=16, help="requests per concurrency level")
    bench.add_argument("--levels", default="1,4,8", help="comma-separated client counts")
    bench.add_argument("--users", type=int, default=10, help="users of the generated set (without --data)")
    bench.set_defaults(func=_bench)


def add_agent_arguments(parser: argparse.ArgumentParser, data_required: bool = True) -> None:
    parser.add_argument("--data", required=data_required, help="data set directory (fints shop generate)")
    parser.add_argument("--store", default=None, help="memory store dir or http://host:port of `chroma run`")
    parser.add_argument("--model", default=None, help="model path (default: bundled Gemma 3 270M)")
    parser.add_argument("--method", default=DEFAULT_METHOD, help=f"default method ({DEFAULT_METHOD})")
    parser.add_argument("--checkpoint", default=None, help="SQLite path or postgresql:// URL for checkpoints")
    parser.add_argument("--shop-url", default=None, help="a running shop (default: start one in-process)")
    parser.add_argument("--max-batch", type=int, default=8, help="requests decided in one generate")
    parser.add_argument("--max-wait-ms", type=float, default=DEFAULT_MAX_WAIT_S * 1000,
                        help="how long a batch waits to fill")
    parser.add_argument("--max-queue", type=int, default=64, help="waiting requests before 429")
    parser.add_argument("--max-episodes", type=int, default=1000,
                        help="episode threads kept in memory without --checkpoint (least recently used dropped)")


def settings_from(args: argparse.Namespace) -> Any:
    from agent.serve_app import ServeSettings

    return ServeSettings(max_batch=args.max_batch, max_wait_s=args.max_wait_ms / 1000, max_queue=args.max_queue,
                         max_episodes=args.max_episodes)


@contextmanager
def open_agent(args: argparse.Namespace) -> Iterator[Any]:
    """The agent for the CLI's arguments; a postgresql:// checkpoint is shared by workers."""
    from agent.runtime import AgentConfig, FintsAgent

    postgres = bool(args.checkpoint and str(args.checkpoint).startswith(("postgres://", "postgresql://")))
    config = AgentConfig(data_dir=Path(args.data), model=args.model, store=args.store, method=args.method,
                         shop_url=args.shop_url, checkpoint=None if postgres else args.checkpoint)
    with ExitStack() as stack:
        agent = stack.enter_context(FintsAgent.open(config))
        if postgres:
            agent.checkpointer = stack.enter_context(postgres_checkpointer(args.checkpoint))
        yield agent


@contextmanager
def postgres_checkpointer(url: str) -> Iterator[Any]:
    """LangGraph's Postgres checkpointer over one connection, its tables created if missing."""
    from langgraph.checkpoint.postgres import PostgresSaver

    with PostgresSaver.from_conn_string(url) as saver:
        saver.setup()
        yield saver


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from agent.serve_app import AgentService, create_app
    from tools.auth import server_keys

    keys = server_keys(args.keys, args.insecure)  # before the model loads: a missing key fails fast
    with open_agent(args) as agent:
        settings = settings_from(args).model_copy(update={"steering_texts": not args.no_steering_texts})
        service = AgentService(agent, settings)
        try:
            auth = f"{len(keys.active())} API keys from {keys.path}" if keys else "NO AUTHENTICATION (--insecure)"
            print(f"fints serve: http://{args.host}:{args.port}/v1/act, and OpenAI's /v1/chat/completions for "
                  f"model {agent.loaded.model_id!r} (OpenAPI at /docs; {auth})", flush=True)
            uvicorn.run(create_app(service, keys), host=args.host, port=args.port, log_level="warning")
        finally:
            service.close()
    return 0


def _bench(args: argparse.Namespace) -> int:
    """`fints bench serve`: the agent from the flags (without --data a generated set,
    without --store a scratch store), measured by `agent.serve_bench`."""
    import tempfile

    from agent.serve_bench import measure, write_report

    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    if not levels or min(levels) < 1 or args.requests < 1:
        print("fints bench serve: --levels are client counts >= 1 and --requests >= 1")
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # before the model loads: an unwritable --out fails fast
    with tempfile.TemporaryDirectory(prefix="fints-bench-serve-") as scratch:
        if args.data is None:
            from tools.data import generate_dataset

            args.data = str(generate_dataset(Path(scratch) / "data", users=args.users, seed=0))
        if args.store is None:
            args.store = str(Path(scratch) / "memory")
        with open_agent(args) as agent:
            settings = settings_from(args).model_copy(update={"remember": False})
            report = measure(agent, settings, levels, args.requests)
    write_report(report, out)
    return 0 if report["errors"] == 0 else 1
