"""Online updates: the agent hands over a finished episode and goes on serving.

`OnlineWriter` runs one background thread fed by a queue; `submit` only enqueues, so
the next request never waits for extraction or a Chroma write. The entry is made by the
writer's `Learner`, the same way as every other entry of the store; then each of the
writer's `also` callables gets the episode (the agent's prompt memory learns the same
interactions, so its past calls and the user's voice grow too). Failures are logged
and counted, never raised into the agent. An episode that waited longer than the time
budget is dropped (stale work must not pile up behind a slow extractor); `flush` waits
for the queue to drain, up to a timeout.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from memory.learner import Learner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Episode:
    """A completed interaction; only an `accepted` one is learned from."""

    user_id: str
    request: str
    tool: str
    arguments: dict
    outcome: str = "accepted"
    timestamp: float | str | None = None
    queued_at: float = field(default_factory=time.monotonic)


@dataclass
class WriterStats:
    written: int = 0
    failed: int = 0
    dropped: int = 0
    ignored: int = 0


class OnlineWriter:
    """Background writer of online entries: `submit`, `flush(timeout)`, `close()`."""

    def __init__(self, learner: Learner, *, budget_s: float = 60.0, max_pending: int = 256,
                 also: Sequence[Callable[[Episode], None]] = ()) -> None:
        self.learner = learner
        self.also = tuple(also)
        self.budget_s = budget_s
        self.stats = WriterStats()
        self._queue: queue.Queue[Episode | None] = queue.Queue(maxsize=max_pending)
        self._thread = threading.Thread(target=self._run, name="memory-writer", daemon=True)
        self._thread.start()
    def submit(self, episode: Episode) -> bool:
        """Queue an episode; False (and a log line) if the queue is full."""
        try:
            self._queue.put_nowait(episode)
            return True
        except queue.Full:
            self.stats.dropped += 1
            log.warning("memory: online queue full, episode of %s dropped", episode.user_id)
            return False

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued episode is handled; True if it drained in time."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 30.0) -> None:
        self.flush(timeout)
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            episode = self._queue.get()
            try:
                if episode is None:
                    return
                self._handle(episode)
            except Exception:  # never into the caller: log, count, carry on
                self.stats.failed += 1
                log.exception("memory: online entry for %s failed", episode.user_id)
            finally:
                self._queue.task_done()

    def _handle(self, episode: Episode) -> None:
        if episode.outcome != "accepted":
            self.stats.ignored += 1
            return
        if time.monotonic() - episode.queued_at > self.budget_s:
            self.stats.dropped += 1
            log.warning("memory: episode of %s waited past the budget; dropped", episode.user_id)
            return
        self.learner.learn(episode.user_id, episode.request, episode.tool, episode.arguments,
                           timestamp=episode.timestamp)
        for learn in self.also:
            learn(episode)
        self.stats.written += 1
