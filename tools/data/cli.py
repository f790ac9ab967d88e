"""`fints shop generate | stats | import-pwab`: make, inspect and import data sets.

Heavy imports (bm25s, pydantic models) happen inside the handlers so that `fints --help`
stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    """Add this package's subcommands to the `fints` parser."""
    shop = groups["shop"]

    gen = shop.add_parser("generate", help="generate a synthetic PersonalWAB-format data set")
    gen.add_argument("--users", type=_positive, default=200, help="number of users (200)")
    gen.add_argument("--seed", type=int, default=0, help="random seed (0)")
    gen.add_argument("--out", required=True, help="directory to write the data set to")
    gen.set_defaults(func=_generate)

    stats = shop.add_parser("stats", help="counts and personalization numbers of a data set")
    stats.add_argument("--data", required=True, help="data set directory")
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(func=_stats)

    imp = shop.add_parser("import-pwab", help="convert real PersonalWAB files to our layout")
    imp.add_argument("source", help="directory with PersonalWAB JSON files")
    imp.add_argument("--out", required=True, help="directory to write the data set to")
    imp.set_defaults(func=_import)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _generate(args: argparse.Namespace) -> int:
    from tools.data.generate import generate_dataset
    from tools.data.store import MANIFEST, read_json

    out = generate_dataset(args.out, users=args.users, seed=args.seed, progress=True)
    counts = read_json(out / MANIFEST)["counts"]
    print(f"wrote {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def _stats(args: argparse.Namespace) -> int:
    from tools.data.stats import dataset_stats
    from tools.data.store import DataError, load_dataset

    try:
        stats = dataset_stats(load_dataset(args.data))
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(stats, indent=1, sort_keys=True))
        return 0
    rows = {**stats["counts"], **{k: v for k, v in stats.items() if k != "counts"}}
    for key, value in rows.items():
        print(f"{key:>28}: {value:.3f}" if isinstance(value, float) else f"{key:>28}: {value}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from tools.data.importer import import_pwab
    from tools.data.store import DataError

    try:
        out, counts = import_pwab(args.source, args.out)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0
