"""The batcher: concurrent requests gathered into per-row steered batches.

One model decides for everyone, and a batched `generate` costs little more than a
single one on CPU, so requests that arrive together are decided together: a thread
takes the first waiting request, waits a few milliseconds for more (up to
`max_batch`), and hands them to ONE `decide_batch` call (each row steered by its own
user's vectors). The queue in front is bounded: when it is full, `submit` refuses at
once (the service answers 429 with a Retry-After hint) instead of queueing without end.
Every job gets an answer or an error on its future; nothing is dropped on shutdown. A
batch that fails is decided again row by row, so one row's bad input fails that row
only: the other users still get their answers.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# decide(items, group) -> one result per item, in order; `group` is what the batch shares
DecideFn = Callable[[Sequence[tuple[str, str]], Any], Sequence[Any]]
# How long the first request of a batch waits for company. A decision takes seconds on
# CPU, so 50 ms is ~1% of one; with 5 ms, clients arriving together in a burst still
# missed the first batch (fints bench serve: mean batch 5.0 of 8 clients).
DEFAULT_MAX_WAIT_S = 0.05


class QueueFullError(RuntimeError):
    """The service is at its queue bound; `retry_after_s` says when to try again."""

    def __init__(self, depth: int, retry_after_s: int) -> None:
        super().__init__(f"the service is busy ({depth} requests waiting); retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class ShuttingDownError(RuntimeError):
    """The batcher stopped before this request was decided."""


@dataclass
class Job:
    user_id: str
    request: str
    group: Any  # requests in one batch share it (the method); must be hashable
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class Batched:
    """What a job's future holds: the decision, the size of its batch, its wait in line."""

    value: Any
    batch_size: int
    queued_s: float


@dataclass
class BatcherStats:
    batches: int = 0
    decided: int = 0
    failed: int = 0
    refused: int = 0
    largest_batch: int = 0
    mean_batch_s: float = 0.0  # moving average, for the Retry-After hint


class Batcher:
    """`submit(user, request, group) -> Future`; a thread runs `decide` on gathered batches."""

    def __init__(
        self,
        decide: DecideFn,
        *,
        max_batch: int = 8,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        max_queue: int = 64,
    ) -> None:
        if max_batch < 1 or max_queue < 1:
            raise ValueError("max_batch and max_queue must be at least 1")
        self.decide = decide
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.stats = BatcherStats()
        self._queue: queue.Queue[Job] = queue.Queue(maxsize=max_queue)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="serve-batcher", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def submit(self, user_id: str, request: str, group: Hashable) -> Future:
        """Queue one request; raises `QueueFullError` (never blocks) at the bound."""
        if self._stopping.is_set():
            raise ShuttingDownError("the service is shutting down; the request was not queued")
        job = Job(user_id, request, group)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.stats.refused += 1
            raise QueueFullError(self.max_queue, self.retry_after_s()) from None
        return job.future

    def retry_after_s(self) -> int:
        """Seconds until the queue has likely drained: batches waiting x time per batch."""
        batches = math.ceil(self._queue.qsize() / self.max_batch) + 1
        return max(1, math.ceil(batches * (self.stats.mean_batch_s or 1.0)))

    def close(self, timeout: float = 60.0) -> None:
        """Decide what is queued, then stop; jobs still left get `ShuttingDownError`."""
        self._stopping.set()
        self._thread.join(timeout)
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            job.future.set_exception(ShuttingDownError("the service stopped before deciding this request"))

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=0.05)
            except queue.Empty:
                if self._stopping.is_set():
                    return
                continue
            batch = [first, *self._gather(self.max_batch - 1)]
            groups: dict[Any, list[Job]] = {}
            for job in batch:
                groups.setdefault(job.group, []).append(job)
            for group, jobs in groups.items():
                self._decide(group, jobs)

    def _gather(self, room: int) -> list[Job]:
        """More jobs, until `room` are taken or `max_wait_s` has passed since now."""
        jobs: list[Job] = []
        deadline = time.perf_counter() + self.max_wait_s
        while len(jobs) < room:
            left = deadline - time.perf_counter()
            try:
                jobs.append(self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        return jobs

    def _decide(self, group: Any, jobs: list[Job]) -> None:
        started = time.perf_counter()
        try:
            results = list(self.decide([(j.user_id, j.request) for j in jobs], group))
            if len(results) != len(jobs):
                raise RuntimeError(f"decide returned {len(results)} results for {len(jobs)} requests")
        except Exception as error:
            if len(jobs) > 1:  # find the row that failed: each decided alone fails alone
                log.warning("serve: a batch of %d failed (%s); deciding its rows one by one", len(jobs), error)
                for job in jobs:
                    self._decide(group, [job])
                return
            log.exception("serve: a request of %s failed", jobs[0].user_id)
            self.stats.failed += 1
            jobs[0].future.set_exception(error)
            return
        elapsed = time.perf_counter() - started
        stats = self.stats
        stats.batches += 1
        stats.decided += len(jobs)
        stats.largest_batch = max(stats.largest_batch, len(jobs))
        stats.mean_batch_s = elapsed if stats.batches == 1 else 0.8 * stats.mean_batch_s + 0.2 * elapsed
        for job, result in zip(jobs, results):
            job.future.set_result(Batched(result, len(jobs), started - job.enqueued))
