"""`fints run`, `fints chat`, `fints demo` (and `fints serve` from agent/serve.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from agent.describe import describe_steering
from agent.methods import DEFAULT_METHOD

DATA_ENV = "FINTS_DATA_DIR"


def default_data_dir() -> Path:
    """The demo's data set: $FINTS_DATA_DIR, else <user data dir>/fints/data/default."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    import platformdirs

    return Path(platformdirs.user_data_dir("fints")) / "data" / "default"


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    """Add this package's subcommands to the `fints` parser."""
    from agent.serve import register_serve

    top = groups[""]
    run = top.add_parser("run", help="one request of one user: the call, the shop's result, the steering")
    _agent_flags(run)
    run.add_argument("--user", required=True, help="the user id (steering uses only this user's memory)")
    run.add_argument("request", help="what the user asks for")
    run.add_argument("--json", action="store_true", help="machine-readable output")
    run.set_defaults(func=_run)

    chat = top.add_parser("chat", help="multi-turn conversation with the agent in the terminal")
    _agent_flags(chat)
    chat.add_argument("--user", required=True)
    chat.set_defaults(func=_chat)

    demo = top.add_parser("demo", help="the main job: unsteered vs steered for two users, memory growing")
    demo.add_argument("--data", default=None, help=f"data set dir (default: ${DATA_ENV} or the user data dir)")
    demo.add_argument("--store", default=None, help="memory store (default: next to the data set)")
    demo.add_argument("--model", default=None)
    demo.add_argument("--users", type=int, default=200, help="users to generate when the data set is missing")
    demo.set_defaults(func=_demo)

    config = top.add_parser("config", help="the steering defaults in effect and the file each came from")
    config.add_argument("--model", help="a model id (default: the bundled model's)")
    config.add_argument("--config", help="the user's defaults file (default: $FINTS_CONFIG, "
                                         "else the user config dir's fints/defaults.json)")
    config.add_argument("--json", action="store_true", help="machine-readable output")
    config.set_defaults(func=_config_show)
    register_serve(groups)


def _agent_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, help=f"data set dir (default: ${DATA_ENV} or the demo's)")
    parser.add_argument("--store", default=None, help="memory store dir or http://host:port")
    parser.add_argument("--model", default=None, help="model path (default: bundled Gemma 3 270M)")
    parser.add_argument("--method", default=DEFAULT_METHOD,
                        help="zero-shot, prompt-k{1,3,5} or steer-{whole,attn,mlp,attn+mlp}-{mean,attentive}")
    parser.add_argument("--browser", action="store_true", help="run the tools in Chromium (Playwright)")
    parser.add_argument("--shop-url", default=None, help="a running shop (default: start one in-process)")
    parser.add_argument("--strict", action="store_true",
                        help="fail instead of answering unsteered when memory is unavailable")


def _config(args: argparse.Namespace):
    from agent.methods import parse_method
    from agent.runtime import AgentConfig

    data = Path(args.data) if args.data else default_data_dir()
    if not (data / "products.json").is_file():
        raise SystemExit(f"error: no data set at {data}; run `fints demo` or "
                         f"`fints shop generate --out {data}` first, or pass --data")
    parse_method(args.method)  # a bad name fails here, listing the valid ones
    return AgentConfig(data_dir=data, model=args.model, store=args.store or _store_next_to(data),
                       method=args.method, transport="browser" if args.browser else "http",
                       shop_url=args.shop_url, fail_closed=getattr(args, "strict", False))


def _store_next_to(data: Path) -> str:
    return str(data.parent / f"{data.name}-memory")


def _run(args: argparse.Namespace) -> int:
    from agent.runtime import FintsAgent

    if not args.request.strip():
        print("fints run: error: the request is empty: say what the user wants", file=sys.stderr)
        return 2
    try:
        config = _config(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with FintsAgent.open(config) as agent:
        result = agent.run(args.user, args.request)
        agent.flush_memory(timeout=120)
    if args.json:
        print(json.dumps({"call": result.call, "result": result.result_text, "asins": result.asins,
                          "steering": result.steering, "notices": result.notices,
                          "latency_s": round(result.latency_s, 3)}, indent=2))
        return 0
    for notice in result.notices:
        print(f"notice: {notice}")
    print(f"call:     {json.dumps(result.call)}")
    print(f"steering: {describe_steering(result.steering)}")
    print("result:")
    print("  " + result.result_text.replace("\n", "\n  "))
    return 0


def _chat(args: argparse.Namespace) -> int:
    from agent.runtime import FintsAgent

    with FintsAgent.open(_config(args)) as agent:
        print("Type a request (empty line or Ctrl-D to quit).")
        while True:
            try:
                line = input(f"{args.user}> ").strip()
            except EOFError:
                break
            if not line:
                break
            result = agent.run(args.user, line, track="multi")
            print(f"  call: {json.dumps(result.call)}")
            print(f"  steering: {describe_steering(result.steering)}")
            print("  " + result.result_text[:600].replace("\n", "\n  "))
        agent.flush_memory(timeout=60)
    return 0


def _config_show(args: argparse.Namespace) -> int:
    from agent.config import layered_defaults, packaged_path, user_config_path

    model_id = args.model
    if model_id is None:
        from steering.model import DEFAULT_MODEL_ID

        model_id = DEFAULT_MODEL_ID
    settings, sources = layered_defaults(model_id, args.config)
    user = user_config_path(args.config)
    if args.json:
        print(json.dumps({"model": model_id, "packaged": str(packaged_path()), "user": str(user),
                          "user_exists": user.exists(),
                          "settings": {k: {"value": v, "from": sources[k]} for k, v in settings.items()}},
                         indent=2))
        return 0
    print(f"model: {model_id}")
    print(f"packaged defaults: {packaged_path()}")
    print(f"user defaults: {user}" + ("" if user.exists() else " (none yet)"))
    for key, value in settings.items():
        print(f"  {key:15s} {json.dumps(value):24s} from {sources[key]}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from agent.demo import run_demo

    data = Path(args.data) if args.data else default_data_dir()
    return run_demo(data, store=args.store or _store_next_to(data), model=args.model, users=args.users)
