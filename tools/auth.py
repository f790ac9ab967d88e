"""API keys: who may act as whom, on the agent service and on the shop.

A user id in a request proves nothing: without keys any caller could act as any user,
read their past requests in the steering explanation and write their memory and
reviews. So every request carries a key (`Authorization: Bearer fints_<id>_<secret>`),
and each key is bound to what it may act for:

- a **user key** (`fints keys create --users U1,U2`) acts for those users only;
- a **service key** (`fints keys create --service --tenant acme-`) belongs to a trusted
  front end that signs its own users in and forwards the end user of every request in
  `X-Fints-User`; it may act for any user of its tenant (ids starting with the prefix;
  `--tenant '*'` is every user) or of its `--users`, and only for the one it names.

Keys are stored hashed (SHA-256 of a 256-bit random secret; the secret is shown once,
at creation) in one JSON file, `$FINTS_KEYS` or the user config dir, written whole
with mode 0600. Servers re-read the file when it changes, so `fints keys revoke` takes
effect at the next request. A request for a user the key may not act for is refused
(403) before anything is read or written.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common.users import USER_ID, USER_ID_PATTERN  # noqa: F401  (the service imports the pattern here)

KEYS_ENV = "FINTS_KEYS"
FORWARDED_USER = "X-Fints-User"
ALL_USERS = "*"
_KEY = re.compile(r"^fints_([0-9a-f]{12})_([A-Za-z0-9_\-]{43})$")
INSECURE_WARNING = ("WARNING: --insecure: no API keys are checked. Any caller can act as any user, "
                    "read their past requests and write their memory and reviews. Local trials only.")


class AuthError(PermissionError):
    """A request refused for who is asking: 401 (no valid key) or 403 (not for this user)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def default_keys_path() -> Path:
    """$FINTS_KEYS, else <user config dir>/fints/keys.json."""
    if os.environ.get(KEYS_ENV):
        return Path(os.environ[KEYS_ENV])
    import platformdirs

    return Path(platformdirs.user_config_dir("fints")) / "keys.json"


@dataclass(frozen=True)
class KeyRecord:
    """One key as stored: its id, the hash of its secret and what it may act for."""

    key_id: str
    digest: str
    users: tuple[str, ...] = ()
    tenant: str | None = None
    service: bool = False
    label: str = ""
    created: float = field(default_factory=time.time)
    revoked: float | None = None

    def covers(self, user_id: str) -> bool:
        if user_id in self.users:
            return True
        return self.tenant is not None and (self.tenant == ALL_USERS or user_id.startswith(self.tenant))


@dataclass(frozen=True)
class Caller:
    """Who sent a request: a verified key (`record`), or anyone when keys are off."""

    record: KeyRecord | None
    forwarded_user: str | None = None

    @property
    def key_id(self) -> str | None:
        return self.record.key_id if self.record is not None else None

    def check(self, user_id: str) -> None:
        """Raise 403 unless this caller may act for `user_id`: without keys (--insecure)
        anyone may; a key for the users it covers; a service key only for the end user
        it names in X-Fints-User."""
        if self.record is None:
            return
        if self.record.service and self.forwarded_user is None:
            raise AuthError(403, f"a service key must name the end user in {FORWARDED_USER}")
        if self.forwarded_user is not None and self.forwarded_user != user_id:
            raise AuthError(403, f"the request is for {user_id[:70]!r} but {FORWARDED_USER} names "
                                 f"{self.forwarded_user[:70]!r}; a front end acts for the user it forwards")
        if not self.record.covers(user_id):
            raise AuthError(403, f"key {self.key_id} may not act for user {user_id[:70]!r}")


OPEN = Caller(None)  # every caller, when the server runs with --insecure


def check_user_id(user_id: str) -> str:
    if not USER_ID.match(user_id):
        raise ValueError(f"user id {user_id[:70]!r} is not valid: use 1-64 letters, digits, _ . - "
                         "(starting with a letter or digit)")
    return user_id


class KeyRing:
    """The key file: create, revoke, list, and verify the keys that requests present."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_keys_path()
        self._records: dict[str, KeyRecord] = {}
        self._seen: tuple[int, int] | None = None
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- the file
    def records(self) -> list[KeyRecord]:
        """All keys (revoked ones too), re-read when the file changed."""
        with self._lock:
            self._refresh()
            return list(self._records.values())

    def _refresh(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._records, self._seen = {}, None
            return
        if self._seen == (stat.st_mtime_ns, stat.st_size):
            return
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            records = {r["key_id"]: KeyRecord(**{**r, "users": tuple(r.get("users", ()))}) for r in raw["keys"]}
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"the key file {self.path} is not a fints key file ({type(error).__name__}); "
                             "fix or remove it") from None
        self._records, self._seen = records, (stat.st_mtime_ns, stat.st_size)

    def _write(self, records: dict[str, KeyRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.partial")
        text = json.dumps({"keys": [asdict(r) for r in records.values()]}, indent=1) + "\n"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            partial.replace(self.path)
        finally:
            partial.unlink(missing_ok=True)
        self._records, self._seen = dict(records), None

    # ---------------------------------------------------------------- commands
    def create(self, users: list[str] = (), *, tenant: str | None = None, service: bool = False,
               label: str = "") -> tuple[str, KeyRecord]:
        """A new key: returns the secret key text (shown once) and its stored record."""
        users = list(dict.fromkeys(check_user_id(u) for u in users))
        if tenant is not None and not service:
            raise ValueError("--tenant is for service keys (--service): a user key names its users")
        if tenant is not None and tenant != ALL_USERS and not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", tenant):
            raise ValueError(f"tenant {tenant[:70]!r} is not a user-id prefix (letters, digits, _ . -) or '*'")
        if not users and tenant is None:
            raise ValueError("say whom the key may act for: --users U1,U2 (or --service --tenant PREFIX)")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        record = KeyRecord(key_id, _digest(secret), tuple(users), tenant, service, label[:200])
        with self._editing():
            self._write({**self._records, key_id: record})
        return f"fints_{key_id}_{secret}", record

    def revoke(self, key_id: str) -> KeyRecord:
        if not self.path.is_file():
            raise ValueError(f"no key file at {self.path}: there is no key to revoke")
        with self._editing():
            record = self._records.get(key_id)
            if record is None:
                raise ValueError(f"no key {key_id[:40]!r} in {self.path}; `fints keys list` shows the ids")
            if record.revoked is None:
                record = KeyRecord(**{**asdict(record), "revoked": time.time()})
                self._write({**self._records, key_id: record})
        return record

    @contextmanager
    def _editing(self) -> Iterator[None]:
        """Read-modify-write under a file lock: two `fints keys` at once lose no key."""
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path.with_name(f".{self.path.name}.lock")), timeout=30), self._lock:
            self._seen = None  # another process may have written since we last read
            self._refresh()
            yield

    def active(self) -> list[KeyRecord]:
        return [r for r in self.records() if r.revoked is None]

    # ---------------------------------------------------------------- requests
    def verify(self, key: str) -> KeyRecord | None:
        """The live record of a presented key, or None (unknown, wrong secret, revoked)."""
        match = _KEY.match(key)
        if not match:
            return None
        with self._lock:
            self._refresh()
            record = self._records.get(match.group(1))
        if record is None or record.revoked is not None:
            return None
        return record if hmac.compare_digest(record.digest, _digest(match.group(2))) else None

    def caller(self, headers: Mapping[str, str]) -> Caller:
        """The caller a request's headers prove, or AuthError 401 saying what is missing."""
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise AuthError(401, "an API key is required: send 'Authorization: Bearer <key>' "
                                 "(create one with `fints keys create`)")
        record = self.verify(key.strip())
        if record is None:
            raise AuthError(401, "the API key is not valid (unknown, mistyped or revoked)")
        forwarded = (headers.get(FORWARDED_USER.lower()) or "").strip()
        return Caller(record, forwarded or None)


def caller_for(keys: KeyRing | None, headers: Mapping[str, str]) -> Caller:
    """`keys.caller(headers)`, or `OPEN` when the server runs without keys (--insecure)."""
    return OPEN if keys is None else keys.caller(headers)


def add_auth_arguments(parser: argparse.ArgumentParser) -> None:
    """--keys and --insecure, the same on both servers."""
    parser.add_argument("--keys", default=None, help="API key file (default: $FINTS_KEYS, then "
                        "<user config dir>/fints/keys.json)")
    parser.add_argument("--insecure", action="store_true", help="check no keys (nor, on the shop, sessions): "
                        "any caller acts as any user; for local trials only, and says so at start")


def server_keys(path: str | None, insecure: bool) -> KeyRing | None:
    """The keys a server checks (None with --insecure, after the warning); a server
    with no live key would refuse everyone, so that is an error saying what to do."""
    import sys

    if insecure:
        print(INSECURE_WARNING, file=sys.stderr, flush=True)
        return None
    keys = KeyRing(path)
    if not keys.active():
        raise ValueError(f"no API keys in {keys.path}: create one with `fints keys create --users USER` "
                         "(or pass --insecure for a local trial without keys)")
    return keys


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
