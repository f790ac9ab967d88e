"""The `fints memory` subcommands (see agent/cli.py): the application over the memory
package, building with the agent's own learner (`agent.runtime.make_learner`).

`fints memory build|stats|forget|audit|export|import|expire` and `fints bench memory`.
Registration imports nothing heavy; chromadb, torch and the embedder load in handlers.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from functools import wraps

from common.users import split_users
from memory.learner import DEFAULT_NEGATIVES, NEGATIVE_POLICIES

STORE_HELP = "store directory or http://host:port of a `chroma run` server " \
    "(default: $FINTS_MEMORY_DIR, then the user data dir)"


def parse_layers(text: str) -> list[int]:
    """`6,10,14` or `0-14` (or both mixed) as layer indices; anything else is refused."""
    from memory.entry import MemoryInputError

    layers: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        low, dash, high = part.partition("-")
        if not (low.isdigit() and (not dash or high.isdigit())) or (dash and int(high) < int(low)):
            raise MemoryInputError(f"--layers takes whole numbers and ranges like 6,10,14 or 0-14, not {text!r}")
        layers += range(int(low), int(high) + 1) if dash else [int(low)]
    return sorted(set(layers))


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    """Add this package's subcommands to the `fints` parser."""
    memory = groups["memory"]

    build = memory.add_parser("build", help="build users' dictionaries from their past")
    build.add_argument("--data", required=True, help="data set directory (fints shop generate)")
    build.add_argument("--users", nargs="+", help="only these users, separated by spaces or commas (default: all)")
    build.add_argument("--model", help="steering model (default: the bundled Gemma 3 270M)")
    build.add_argument("--sites", default="whole,attn,mlp", help="comma-separated sites")
    build.add_argument("--layers", help="layer indices, comma-separated, ranges allowed: 14 or 0-14 "
                                        "(default: the layers the default steering method reads, "
                                        "agent/defaults.json)")
    build.add_argument("--negatives", default=None, choices=NEGATIVE_POLICIES,
                       help="negative policy: what each accepted call is contrasted with (recorded "
                            "in every entry; default: the one the store's entries record, "
                            f"{DEFAULT_NEGATIVES} for a new store; see docs/memory.md)")
    build.add_argument("--max-history", type=int, default=None,
                       help="latest history items per user that become entries (default: all; "
                            "retrieval finds a user's way of asking among enough past requests)")
    build.add_argument("--batch", type=int, default=8, help="pairs per extraction call")
    build.set_defaults(func=_build)

    stats = memory.add_parser("stats", help="entries per user, duplicate/superseded rate")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.set_defaults(func=_stats)

    forget = memory.add_parser("forget", help="delete every entry of a user, verified on disk")
    forget.add_argument("--user", required=True)
    forget.add_argument("--server-path", help="in server mode: the server's --path, to check it")
    forget.set_defaults(func=_forget)

    audit = memory.add_parser("audit", help="list a user's entries with provenance")
    audit.add_argument("--user", required=True)
    audit.add_argument("--json", action="store_true", help="machine-readable output")
    audit.set_defaults(func=_audit)

    export = memory.add_parser("export", help="write a user's dictionary to a safetensors file")
    export.add_argument("--user", required=True)
    export.add_argument("--out", required=True, help="file to write (.safetensors)")
    export.set_defaults(func=_export)

    load = memory.add_parser("import", help="validate and add a dictionary file")
    load.add_argument("file", help="a file written by `fints memory export`")
    whom = load.add_mutually_exclusive_group(required=True)
    whom.add_argument("--user", help="the user the entries are for: must be the user the file holds")
    whom.add_argument("--as", dest="as_user", metavar="USER",
                      help="store the file's entries as USER instead (recorded in the store's audit log)")
    load.add_argument("--model", help="model id for a new store (default: the file's)")
    load.add_argument("--server-path", help="in server mode: the server's --path, for the audit log")
    load.set_defaults(func=_import)

    old = memory.add_parser("expire", help="forget entries older than an age")
    old.add_argument("--max-age", required=True, help="e.g. 30d, 12h, 90m, 2w")
    old.add_argument("--server-path", help="in server mode: the server's --path, to check it")
    old.set_defaults(func=_expire)

    for parser in (build, stats, forget, audit, export, load, old):
        parser.add_argument("--store", help=STORE_HELP)

    bench = groups["bench"].add_parser("memory", help="store add rate and retrieval latency")
    bench.add_argument("--out", required=True, help="directory for bench_memory.json")
    bench.add_argument("--entries", type=int, default=10_000)
    bench.add_argument("--users", type=int, default=100)
    bench.add_argument("--hidden", type=int, default=640)
    bench.add_argument("--queries", type=int, default=500)
    bench.set_defaults(func=_bench)


def _clear_errors(handler):
    """Known failures (bad input, busy, unreachable or mismatched store) print one
    line and exit 1; an embedded store this command created is removed again."""

    @wraps(handler)
    def run(args: argparse.Namespace) -> int:
        from memory.entry import MemoryInputError
        from memory.location import resolve_location
        from memory.store import StoreError

        path = resolve_location(args.store).path
        existed = path is None or path.exists()
        try:
            return handler(args)
        except (MemoryInputError, StoreError, OSError) as error:
            print(f"fints memory: {' '.join(str(error).split())}", file=sys.stderr)
            if not existed:
                _remove_new_store(path)
            return 1

    return run


def _remove_new_store(path) -> None:
    """A failed command leaves no store behind where there was none (only Chroma's files)."""
    import shutil

    if path is not None and path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def _open(args: argparse.Namespace, read_only: bool = False, must_exist: bool = True, **kwargs):
    """The store named by --store; one that does not exist is an error unless the
    command creates stores (build, import), and an unreadable one is a StoreError."""
    from memory.entry import MemoryInputError
    from memory.location import resolve_location
    from memory.store import MemoryStore, StoreError

    location = resolve_location(args.store)
    if must_exist and location.path is not None and not (location.path / "chroma.sqlite3").is_file():
        raise StoreError(f"no memory store at {location.path}: build one with `fints memory build`")
    try:
        return MemoryStore(location, read_only=read_only, **kwargs)
    except (StoreError, MemoryInputError):
        raise
    except Exception as error:  # chromadb: server unreachable, a corrupt database
        raise StoreError(f"cannot open the memory store {location}: {type(error).__name__}: {error}") from None


def _unknown_users(users: list[str], known: set[str] | list[str], where: str) -> None:
    from memory.entry import MemoryInputError

    unknown = [u for u in users if u not in known]
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise MemoryInputError(f"unknown user(s) {shown}: not in {where}")


@_clear_errors
def _build(args: argparse.Namespace) -> int:
    from agent.interactions import past_interactions
    from agent.methods import load_defaults
    from agent.runtime import intent_keys, make_learner
    from common.embedding import load_embedder
    from memory.entry import MemoryInputError, check_vector_key
    from steering.model import load_model
    from tools.data import DataError, load_dataset

    try:
        dataset = load_dataset(args.data)
    except DataError as error:
        print(f"fints memory build: {error}", file=sys.stderr)
        return 1
    users = split_users(args.users)
    if users is not None:
        _unknown_users(users, dataset.profiles, f"the data set {args.data}")
    sites = [s.strip() for s in args.sites.split(",") if s.strip()]
    layers = parse_layers(args.layers) if args.layers else list(load_defaults()["layers"])
    if not sites:
        raise MemoryInputError("--sites are whole, attn, mlp, comma-separated")
    for site in sites:
        check_vector_key(f"{site}.0")
    embedder = load_embedder()
    loaded = load_model(args.model)
    with _open(args, must_exist=False, model_id=loaded.model_id, hidden_size=loaded.hidden_size,
               embedder=embedder, keys=intent_keys(dataset)) as store:
        learner = make_learner(loaded, store, dataset, layers=layers, sites=sites,
                               negatives=args.negatives, embedder=embedder)
        report = learner.learn_batch(past_interactions(dataset, users, args.max_history),
                                     batch_size=args.batch)
        print(json.dumps(asdict(report) | {"store": str(store.location), "negatives": learner.negatives.name,
                                           "entries_in_store": store.count()}))
    return 0


@_clear_errors
def _stats(args: argparse.Namespace) -> int:
    with _open(args, read_only=True) as store:
        per_user = {user: asdict(s) for user, s in sorted(store.stats().items())}
        info = asdict(store.info)
    total = sum(s["entries"] for s in per_user.values())
    superseded = sum(s["superseded"] for s in per_user.values())
    summary = {
        "store": info, "users": len(per_user), "entries": total, "superseded": superseded,
        "superseded_rate": round(superseded / total, 4) if total else 0.0, "per_user": per_user,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{info['location']} ({info['mode']}): model {info['model_id']}, "
          f"hidden size {info['hidden_size']}")
    print(f"{total} entries, {len(per_user)} users, superseded rate "
          f"{summary['superseded_rate']:.1%}")
    for user, s in per_user.items():
        print(f"  {user:30s} {s['entries']:6d} entries  {s['superseded']:5d} superseded")
    return 0


@_clear_errors
def _forget(args: argparse.Namespace) -> int:
    from pathlib import Path

    from memory.governance import forget_user

    with _open(args) as store:
        if store.count(args.user) + store.count_vectors(args.user) == 0:
            _unknown_users([args.user], [], f"the memory store {store.location} (nothing to forget)")
        server_path = Path(args.server_path) if args.server_path else None
        report = forget_user(store, args.user, server_path)
    return _print_report(report, f"forgot user {args.user!r}")


def _print_report(report, what: str) -> int:
    print(f"{what}: {report.deleted} entries deleted, {report.remaining} left")
    if report.disk_checked:
        print(f"disk scan before: {report.residue_before or 'clean'}")
        print(f"disk scan after: {report.residue_after or 'clean'}")
    for action in report.actions:
        print(f"  {action}")
    return 0 if report.remaining == 0 and not report.residue_after else 1


@_clear_errors
def _audit(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from memory.governance import logged_actions

    with _open(args, read_only=True) as store:
        rows = store.audit(args.user)
        actions = logged_actions(store.location.path, args.user)
    if not rows and not actions:
        _unknown_users([args.user], [], f"the memory store {store.location}")
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        when = datetime.fromtimestamp(row["timestamp"], timezone.utc).isoformat(timespec="seconds")
        state = f"superseded by {row['superseded_by']}" if row["superseded_by"] else "live"
        print(f"{row['entry_id']}  {when}  {row['source']:9s} {row['tool']:32s} "
              f"{state}  {row['key']!r}")
    for action in actions:
        when = datetime.fromtimestamp(action["time"], timezone.utc).isoformat(timespec="seconds")
        print(f"log {when}  " + "  ".join(f"{k}={v}" for k, v in sorted(action.items()) if k != "time"))
    return 0


@_clear_errors
def _export(args: argparse.Namespace) -> int:
    from memory.transfer import export_user

    with _open(args, read_only=True) as store:
        count = export_user(store, args.user, args.out)
    print(f"wrote {count} entries of {args.user!r} to {args.out}")
    return 0


@_clear_errors
def _import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from memory.entry import MemoryInputError
    from memory.governance import log_action
    from memory.location import resolve_location
    from memory.transfer import check_import_user, import_user, read_header

    header = read_header(args.file)  # the whole file is checked before a store is touched
    target = check_import_user(header, args.user, args.as_user)
    location = resolve_location(args.store)
    log_dir = location.path or (Path(args.server_path) if args.server_path else None)
    if args.as_user is not None and log_dir is None:
        raise MemoryInputError("--as on a server store needs --server-path (the server's --path) for the audit log")
    with _open(args, must_exist=False, model_id=args.model or header.model_id,
               hidden_size=header.hidden_size) as store:
        report = import_user(store, args.file, args.user, as_user=args.as_user)
    if log_dir is not None:
        log_action(log_dir, action="import", user_id=target, from_user=header.user_id,
                   file=str(Path(args.file).resolve()), added=report.added, rewritten=target != header.user_id)
    print(f"imported {report.added} entries for {target!r} ({report.skipped} already present)"
          + (f", rewritten from {header.user_id!r}" if target != header.user_id else ""))
    return 0


@_clear_errors
def _expire(args: argparse.Namespace) -> int:
    from pathlib import Path

    from memory.governance import expire, parse_age

    max_age = parse_age(args.max_age)
    server_path = Path(args.server_path) if args.server_path else None
    with _open(args) as store:
        report = expire(store, max_age, server_path=server_path)
    return _print_report(report, f"expired entries older than {args.max_age}")


def _bench(args: argparse.Namespace) -> int:
    from memory.bench import run_bench

    result = run_bench(args.out, entries=args.entries, users=args.users, hidden=args.hidden,
                       queries=args.queries)
    print(json.dumps({mode: result[mode] for mode in ("embedded", "server")}, indent=2))
    return 0
