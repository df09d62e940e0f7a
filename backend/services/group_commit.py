"""Group commit: concurrent writers in one process share one transaction.

Every append to a ledger is serialized by its head row (backend.services.ledger), and every
invoice number by its series row, from the moment they are taken until COMMIT. One request per
transaction therefore pays, inside that critical section, for its own round trips and its own
WAL flush, and throughput stops at one critical section per request whatever the cores do.

`GroupCommit.submit` queues a job and returns a future. One writer thread per process (started
by a job when none runs, ending after `writer_idle_s_max` without one) takes every job queued by
the time it is free, up to `batch_max`, and writes them with one call of `write`: one
transaction, one lock of the head and series, one flush. Jobs that queue while it writes form
the next group; a lone job is a group of one (no waiting for company). Callers wait on their
future: an async route awaits it without holding a thread of the server's pool.

`write(jobs)` must finish every job it is given: `job.succeed(value)`, `job.fail(error)` for a
refusal that concerns that job alone, or `job.alone()` for a job that must be run on its own
(its future then holds `ALONE`, and the caller runs its ordinary one-request path). If `write`
raises, every job it left unfinished is sent to run alone: one bad job never fails the others,
and no outcome of a group differs from what the same requests would get one at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

log = logging.getLogger("tally.group_commit")

Payload = TypeVar("Payload")
ALONE: Any = object()  # a job's value when its group sent it back to run on its own
group_jobs_max = 100  # a group's size; enough that 2 cores never wait on a flush
writer_idle_s_max = 2.0  # a writer thread with nothing to do this long ends (a quiet app holds none)
# When the last group had company, the writer waits this long before taking the next one, so the
# requests arriving meanwhile join it (PostgreSQL's commit_delay, for the same reason): a group's
# cost is mostly per group, and on 2 cores the wait lets the event loop take in more requests.
# A lone request on a quiet server is written at once.
group_wait_s = 0.001


class Job(Generic[Payload]):
    """One caller's part of a group: its payload, and its outcome (a future) once written."""

    __slots__ = ("future", "payload")

    def __init__(self, payload: Payload) -> None:
        self.payload = payload
        self.future: Future[Any] = Future()

    @property
    def done(self) -> bool:
        return self.future.done()

    def succeed(self, value: Any) -> None:
        self.future.set_result(value)

    def fail(self, error: BaseException) -> None:
        self.future.set_exception(error)

    def alone(self) -> None:
        self.succeed(ALONE)


class GroupCommit(Generic[Payload]):
    def __init__(self, write: Callable[[Sequence[Job[Payload]]], None], batch_max: int = group_jobs_max) -> None:
        if batch_max < 1:
            raise ValueError("batch_max must be at least 1")
        self._write = write
        self._batch_max = batch_max
        self._queue: deque[Job[Payload]] = deque()
        self._ready = threading.Condition()  # guards the queue and the thread
        self._write_lock = threading.Lock()  # held by the writer from taking a group to finishing it
        self._thread: threading.Thread | None = None
        self.groups = 0  # groups written by this process, and the jobs in them (for tests and stats)
        self.jobs = 0

    def submit(self, payload: Payload) -> Future[Any]:
        """Queue `payload` to be written with whatever else is queued. The future holds its value,
        its refusal (as the exception), or `ALONE`."""
        job = Job(payload)
        with self._ready:
            self._queue.append(job)
            if self._thread is None:
                self._start_writer()
            self._ready.notify()
        return job.future

    def _start_writer(self) -> None:  # with self._ready held
        self._thread = threading.Thread(target=self._serve, name="tally-group-commit", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        """Jobs waiting for the writer."""
        with self._ready:
            return len(self._queue)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep the writer from taking jobs: jobs submitted meanwhile queue up and are written as
        one group when it ends (tests use it to make a group deterministically)."""
        with self._write_lock:
            yield

    def _serve(self) -> None:
        try:
            self._serve_until_idle()
        except BaseException:  # _run finished its group's jobs; the queue must not be stranded
            log.exception("the group-commit writer stopped; starting another")
            with self._ready:
                self._thread = None
                if self._queue:
                    self._start_writer()

    def _serve_until_idle(self) -> None:
        busy = False  # the last group had company: more requests are likely on their way
        while True:
            with self._ready:
                if not self._queue:
                    self._ready.wait(writer_idle_s_max)
                if not self._queue:  # idle: end; the next submit starts a writer again
                    self._thread = None
                    return
            if busy:
                time.sleep(group_wait_s)
            with self._write_lock:
                with self._ready:
                    group = [self._queue.popleft() for _ in range(min(self._batch_max, len(self._queue)))]
                self._run(group)
            busy = len(group) > 1

    def _run(self, group: list[Job[Payload]]) -> None:
        self.groups += 1
        self.jobs += len(group)
        try:
            self._write(group)
        except Exception:  # each job gets its own run, and its own error if it has one
            log.warning("a group of %d writes failed; running them one by one", len(group), exc_info=True)
        finally:  # no caller may wait for a job nobody will finish
            for job in group:
                if not job.done:
                    job.alone()
