"""Online updates: the agent hands over a finished episode and goes on serving.

`OnlineWriter` runs one background thread fed by a queue. `add_online` only enqueues,
so the next request never waits for extraction or a Chroma write. Failures are logged
and counted, never raised into the agent. An episode that waited longer than the time
budget is dropped (stale work must not pile up behind a slow extractor); `flush`
waits for the queue to drain, up to a timeout.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from collections.abc import Callable, Sequence

from memory.build import DEFAULT_NEGATIVES, Extractor, Formatter, Pair, format_call, mean_vectors
from memory.entry import MemoryEntry, digest_arguments, make_entry_id, to_epoch
from memory.store import MemoryStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Episode:
    """A completed interaction. `negative` is the unpersonalized call (tool, arguments)
    used for extraction when `vectors` is not given."""

    user_id: str
    request: str
    tool: str
    arguments: dict
    outcome: str = "accepted"
    timestamp: float | str | None = None
    vectors: dict[str, Any] | None = None
    negative: tuple[str, dict] | None = None
    queued_at: float = field(default_factory=time.monotonic)


@dataclass
class WriterStats:
    written: int = 0
    failed: int = 0
    dropped: int = 0
    ignored: int = 0


class OnlineWriter:
    """Background writer of online entries: `submit`, `flush(timeout)`, `close()`."""

    def __init__(
        self,
        store: MemoryStore,
        extract: Extractor | None = None,
        *,
        budget_s: float = 60.0,
        max_pending: int = 256,
        formatter: Formatter = format_call,
        negative_for: Callable[[str], tuple[str, dict]] | None = None,
        tools: Sequence[str] = (),
    ) -> None:
        """`formatter` renders (request, call) as the model sees it. An episode that
        brings no negative is contrasted by the bulk build's default policy when `tools`
        are given (`other-tools`: the same request with each other tool), else with
        `negative_for(request)` (it runs on the writer thread, so a generation there never
        delays the user)."""
        self.store = store
        self.extract = extract
        self.formatter = formatter
        self.negative_for = negative_for
        self.tools = tuple(tools)
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
        vectors, policy = episode.vectors, "given"
        if vectors is None:
            contrasts = [episode.negative] if episode.negative is not None else []
            if not contrasts and self.tools:
                contrasts, policy = [(t, {}) for t in self.tools if t != episode.tool], DEFAULT_NEGATIVES
            elif not contrasts and self.negative_for is not None:
                contrasts, policy = [self.negative_for(episode.request)], "model-call"
            if self.extract is None or not contrasts:
                raise ValueError("an episode without vectors needs an extractor and a negative")
            prompt, positive = self.formatter(episode.request, episode.tool, episode.arguments)
            pairs = [Pair(prompt, positive, self.formatter(episode.request, *c)[1]) for c in contrasts]
            vectors = mean_vectors(self.extract(pairs))
        timestamp = to_epoch(episode.timestamp)
        entry = MemoryEntry(
            user_id=episode.user_id,
            key=episode.request,
            vectors=vectors,
            tool=episode.tool,
            args_digest=digest_arguments(episode.arguments),
            timestamp=timestamp,
            source="online",
            entry_id=make_entry_id(episode.user_id, f"online:{timestamp}:{episode.request}"),
            negative=policy,
        )
        self.store.add([entry])
        self.stats.written += 1


def add_online(
    writer: OnlineWriter,
    user_id: str,
    request: str,
    tool: str,
    arguments: dict,
    outcome: str = "accepted",
    *,
    vectors: dict[str, Any] | None = None,
    negative: tuple[str, dict] | None = None,
    timestamp: float | str | None = None,
) -> bool:
    """Hand a completed episode to the background writer; returns at once."""
    return writer.submit(
        Episode(user_id, request, tool, arguments, outcome, timestamp, vectors, negative)
    )
