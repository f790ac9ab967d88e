"""Who is looking at the shop's pages: a signed-in session, or (with --insecure) whoever
the `?user=` parameter names.

With keys, a person signs in once on /login with their user id and their own key
(`fints keys create --users U`); the shop keeps a session (a random token in an
HttpOnly, SameSite=Strict cookie) bound to that user and key, and every form carries the
session's CSRF token, so another site cannot post a review in the user's name. A
session ends when its key is revoked, after `SESSION_TTL_S`, or at sign-out; the table
is bounded (least recently used dropped first).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from ..auth import KeyRecord, KeyRing

COOKIE = "fints_session"
SESSION_TTL_S = 12 * 3600
MAX_SESSIONS = 10_000


@dataclass(frozen=True)
class Session:
    user_id: str
    key_id: str
    csrf: str
    started: float


@dataclass(frozen=True)
class Viewer:
    """The pages' idea of the visitor: `user` ("" when nobody is signed in), what they
    may see, and the CSRF token their forms must send back."""

    user: str
    record: KeyRecord | None = None
    csrf: str = ""

    def may_see(self, user_id: str) -> bool:
        """Another user's id is shown only to a visitor whose key may act for them."""
        return user_id == self.user or (self.record is not None and self.record.covers(user_id))

    def csrf_matches(self, token: str) -> bool:
        return bool(self.csrf) and hmac.compare_digest(self.csrf, token)


class Sessions:
    """Session token -> Session, bounded and checked against the key file on each use."""

    def __init__(self, keys: KeyRing, max_sessions: int = MAX_SESSIONS, ttl_s: float = SESSION_TTL_S) -> None:
        self.keys = keys
        self.max_sessions = max_sessions
        self.ttl_s = ttl_s
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def sign_in(self, user_id: str, key: str) -> str:
        """A new session token for `user_id`, or ValueError saying why not."""
        record = self.keys.verify(key.strip())
        if record is None:
            raise ValueError("the key is not valid (unknown, mistyped or revoked)")
        if record.service:
            raise ValueError("a service key cannot sign in to the pages: sign in with your own key")
        if not record.covers(user_id):
            raise ValueError(f"this key may not act for user {user_id!r}")
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[token] = Session(user_id, record.key_id, secrets.token_urlsafe(32), time.time())
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return token

    def viewer(self, token: str | None) -> Viewer:
        """The signed-in visitor of a cookie, or an anonymous one."""
        if not token:
            return Viewer("")
        with self._lock:
            session = self._sessions.get(token)
            if session is not None:
                self._sessions.move_to_end(token)
        if session is None:
            return Viewer("")
        record = next((r for r in self.keys.active() if r.key_id == session.key_id), None)
        if record is None or time.time() - session.started > self.ttl_s:
            self.sign_out(token)
            return Viewer("")
        return Viewer(session.user_id, record, session.csrf)

    def sign_out(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)
