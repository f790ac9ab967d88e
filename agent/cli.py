"""The `fints` command line.

One dispatcher; each package registers its own subcommands in its `cli` module, so
the commands live next to the code they drive. Registration must stay cheap (no torch,
no chromadb at import time): `fints --help` should answer instantly. A command that
fails on its input (a bad file, an unreachable store: ValueError, OSError, RuntimeError)
says so in one line and exits 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules exposing `register(groups: dict[str, argparse._SubParsersAction]) -> None`.
# `groups[""]` is the top level; "model", "shop", "memory", "bench" and "keys" are groups.
COMMAND_MODULES = (
    "steering.cli",
    "tools.data.cli",
    "tools.shop.cli",
    "tools.keys_cli",
    "agent.memory_cli",
    "agent.commands",
    "evals.cli",
)
GROUPS = {
    "model": "inspect the local language model",
    "shop": "generate, import and serve the simulated shop",
    "memory": "build, inspect and govern users' steering memory",
    "bench": "benchmarks that write JSON results",
    "keys": "create, revoke and list the API keys of fints serve and fints shop serve",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fints",
        description="Personalized web function calling with per-user, per-request steering.",
    )
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {"": top}
    for name, help_text in GROUPS.items():
        group = top.add_parser(name, help=help_text)
        groups[name] = group.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")
        group.set_defaults(func=_usage(group))
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(groups)
    return parser


def _usage(parser: argparse.ArgumentParser):
    def show(_: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return show


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as error:  # bad input, files, stores: one line
        name = " ".join(filter(None, ["fints", args.command, *(getattr(args, f"{g}_command", None) or "" for g in GROUPS)]))
        print(f"{name}: error: {' '.join(str(error).split()) or type(error).__name__}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
