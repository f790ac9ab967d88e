"""`fints keys create | revoke | list`: the API keys both servers check (tools/auth.py)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

KEYS_HELP = "the key file (default: $FINTS_KEYS, then <user config dir>/fints/keys.json)"


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    """Add `fints keys ...` to the `fints` parser."""
    keys = groups["keys"]
    create = keys.add_parser("create", help="a new key bound to users (or a service key for a tenant)",
                             description="Print a new API key (shown once; only its hash is stored).")
    create.add_argument("--users", nargs="+", default=[],
                        help="the users the key may act for, separated by spaces or commas")
    create.add_argument("--service", action="store_true",
                        help="a front end's key: it names the end user of each request in X-Fints-User")
    create.add_argument("--tenant", help="service keys: every user whose id starts with this prefix ('*': all)")
    create.add_argument("--label", default="", help="a note saying whose key this is")
    create.set_defaults(func=_create)

    revoke = keys.add_parser("revoke", help="revoke a key (running servers refuse it at once)")
    revoke.add_argument("key_id", help="the key's id (`fints keys list`)")
    revoke.set_defaults(func=_revoke)

    listing = keys.add_parser("list", help="every key's id, scope and state (never the secret)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=_list)
    for parser in (create, revoke, listing):
        parser.add_argument("--keys", help=KEYS_HELP)


def _create(args: argparse.Namespace) -> int:
    from common.users import split_users
    from tools.auth import KeyRing

    keys = KeyRing(args.keys)
    key, record = keys.create(split_users(args.users), tenant=args.tenant, service=args.service, label=args.label)
    scope = ", ".join([*record.users, *([f"tenant {record.tenant}"] if record.tenant else [])])
    kind = "service key" if record.service else "key"
    print(f"created {kind} {record.key_id} for {scope} in {keys.path}")
    print(key)
    print("(shown once: only its hash is stored)")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from tools.auth import KeyRing

    keys = KeyRing(args.keys)
    record = keys.revoke(args.key_id)
    print(f"revoked key {record.key_id} in {keys.path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from tools.auth import KeyRing

    records = KeyRing(args.keys).records()
    if args.json:
        print(json.dumps([{k: v for k, v in asdict(r).items() if k != "digest"} for r in records], indent=2))
        return 0
    for r in records:
        state = "revoked" if r.revoked else "live"
        scope = ",".join(r.users) + (f" tenant={r.tenant}" if r.tenant else "")
        print(f"{r.key_id}  {'service' if r.service else 'user   '}  {state:7s}  {scope}  {r.label}")
    return 0
