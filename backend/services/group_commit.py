"""Group commit: concurrent writers in one process share one transaction.

Every append to a ledger is serialized by its head row (backend.services.ledger), and every
invoice number by its series row, from the moment they are taken until COMMIT. One request per
transaction therefore pays, inside that critical section, for its own round trips and its own
WAL flush, and throughput stops at one critical section per request whatever the cores do.

`GroupCommit.submit` queues a job and waits for the write lock. Whoever gets it (the leader)
takes every job queued by then, up to `batch_max`, and writes them with one call of `write`:
one transaction, one lock of the head and series, one flush. Jobs that queued while a leader
was writing form the next group. The leader is an ordinary request thread: no thread of its own
to start, stop or lose, and a lone request is a group of one (no waiting for company).

`write(jobs)` must finish every job it is given: `job.succeed(value)`, `job.fail(error)` for a
refusal that concerns that job alone, or `job.alone()` for a job that must be run on its own
(`submit` then returns `ALONE`, and the caller runs its ordinary one-request path). If `write`
raises, every job it left unfinished is sent to run alone: one bad job never fails the others,
and no outcome of a group differs from what the same requests would get one at a time.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

log = logging.getLogger("tally.group_commit")

Payload = TypeVar("Payload")
ALONE: Any = object()  # what `submit` returns for a job its group sent back to run on its own
group_jobs_max = 100  # a group's size; enough that 2 cores never wait on a flush


class Job(Generic[Payload]):
    """One caller's part of a group: its payload, and its outcome once written."""

    __slots__ = ("_done", "_error", "_value", "payload")

    def __init__(self, payload: Payload) -> None:
        self.payload = payload
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self._done

    def succeed(self, value: Any) -> None:
        self._done, self._value = True, value

    def fail(self, error: BaseException) -> None:
        self._done, self._error = True, error

    def alone(self) -> None:
        self.succeed(ALONE)

    def outcome(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


class GroupCommit(Generic[Payload]):
    def __init__(self, write: Callable[[Sequence[Job[Payload]]], None], batch_max: int = group_jobs_max) -> None:
        if batch_max < 1:
            raise ValueError("batch_max must be at least 1")
        self._write = write
        self._batch_max = batch_max
        self._queue: deque[Job[Payload]] = deque()
        self._queue_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self.groups = 0  # groups written by this process, and the jobs in them (for tests and stats)
        self.jobs = 0

    def submit(self, payload: Payload) -> Any:
        """Write `payload` with whatever else is queued; its value, its error raised, or `ALONE`."""
        job = Job(payload)
        with self._queue_lock:
            self._queue.append(job)
        while not job.done:
            with self._write_lock:
                if job.done:  # a leader wrote it while this thread waited for the lock
                    break
                with self._queue_lock:
                    group = [self._queue.popleft() for _ in range(min(self._batch_max, len(self._queue)))]
                self._run(group)
        return job.outcome()

    @property
    def queued(self) -> int:
        """Jobs waiting for a leader."""
        with self._queue_lock:
            return len(self._queue)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the write lock: jobs submitted meanwhile queue up and are written as one group
        when it is released (tests use it to make a group deterministically)."""
        with self._write_lock:
            yield

    def _run(self, group: list[Job[Payload]]) -> None:
        self.groups += 1
        self.jobs += len(group)
        try:
            self._write(group)
        except Exception:  # each job gets its own run, and its own error if it has one
            log.warning("a group of %d writes failed; running them one by one", len(group), exc_info=True)
        finally:  # even on KeyboardInterrupt: no caller may wait for a job nobody will finish
            for job in group:
                if not job.done:
                    job.alone()
