"""Episode threads of the service: one owner each, and a bound on what memory keeps.

A thread id comes from the caller, so it proves nothing: U2 naming U1's "session-1"
resumed U1's conversation and learned from it. Two walls keep threads apart:

- the graph's thread key is `user/thread` (user ids cannot contain "/"), so one user's
  request can never load another's checkpoint, even after a restart or on another
  worker sharing the database;
- the service remembers who started each thread and refuses (403) another user's
  request on it before anything is read.

Without a persistent checkpointer, LangGraph's `InMemorySaver` keeps every episode's
state for the life of the process; here the least recently used threads beyond
`max_threads` are deleted from it. With a checkpointer (SQLite, PostgreSQL) state is
kept by design, and only the owner table is bounded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


class ThreadOwnedError(PermissionError):
    """The thread id was started by another user."""


def thread_key(user_id: str, thread_id: str) -> str:
    """The checkpoint key of a user's thread: no two users can share one."""
    return f"{user_id}/{thread_id}"


class EpisodeThreads:
    """`claim(user, thread, checkpointer) -> key`: the owner table, least recently used last."""

    def __init__(self, max_threads: int, *, keep_state: bool) -> None:
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        self.max_threads = max_threads
        self.keep_state = keep_state
        # thread -> (user, the checkpointers holding its state: one per method's graph)
        self._owners: OrderedDict[str, tuple[str, list[Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._owners)

    def claim(self, user_id: str, thread_id: str, checkpointer: Any) -> str:
        """The key to run `thread_id` under for `user_id`; raises `ThreadOwnedError`
        (reading nothing) when another user started it."""
        with self._lock:
            owner = self._owners.get(thread_id)
            if owner is not None and owner[0] != user_id:
                raise ThreadOwnedError(f"thread {thread_id!r} belongs to another user; "
                                       "start a new thread (omit thread_id) or use one of your own")
            savers = owner[1] if owner is not None else []
            if all(saver is not checkpointer for saver in savers):
                savers.append(checkpointer)
            self._owners[thread_id] = (user_id, savers)
            self._owners.move_to_end(thread_id)
            evicted = [self._owners.popitem(last=False) for _ in range(len(self._owners) - self.max_threads)]
        if not self.keep_state:
            for old_thread, (old_user, savers) in evicted:
                for saver in savers:
                    saver.delete_thread(thread_key(old_user, old_thread))
        return thread_key(user_id, thread_id)
