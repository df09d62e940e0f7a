"""Background workers started by `tally run` (each also runs alone: `tally worker NAME`).

`start_workers(state)` starts each worker in a daemon thread with a shared stop Event and returns
the function that stops and joins them. The anchorer is the first; the reconciler (issue 7) is
added to `_WORKERS` the same way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("tally.workers")
JOIN_TIMEOUT_S_MAX = 15.0


class Worker:
    """Anything with `run(stop: threading.Event)` and `close()`."""

    def run(self, stop: threading.Event) -> None: ...  # pragma: no cover

    def close(self) -> None: ...  # pragma: no cover


def _anchorer(state: Any) -> Any:
    from backend.workers.anchorer import build_anchorer

    return build_anchorer(state.settings, state.engine, state.sessions, state.deployments)


def _reconciler(state: Any) -> Any:
    from backend.workers.reconciler import build_reconciler

    return build_reconciler(state.settings, state.engine, state.sessions, state.deployments)


_WORKERS: dict[str, Callable[[Any], Any]] = {"anchorer": _anchorer, "reconciler": _reconciler}


def start_workers(state: Any, names: tuple[str, ...] | None = None) -> Callable[[], None]:
    """Start the named workers (default: all) over the app's state; return `stop()`."""
    stop = threading.Event()
    threads: list[threading.Thread] = []
    for name in names or tuple(_WORKERS):
        worker = _WORKERS[name](state)
        thread = threading.Thread(target=worker.run, args=(stop,), name=f"tally-{name}", daemon=True)
        thread.start()
        threads.append(thread)
        log.info("started worker %s", name)

    def stop_all() -> None:
        stop.set()
        for thread in threads:
            thread.join(timeout=JOIN_TIMEOUT_S_MAX)
            if thread.is_alive():
                log.warning("worker thread %s did not stop within %.0f s", thread.name, JOIN_TIMEOUT_S_MAX)

    return stop_all
