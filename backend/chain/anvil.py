"""Start and stop a local anvil chain from node_modules, owned by this process.

The process is started in its own session so Ctrl-C in a terminal reaches Tally first; Tally then
stops anvil by its own PID (SIGTERM, then SIGKILL after a bound), which lets anvil dump its state.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from backend.settings import REPO_ROOT

START_TIMEOUT_S_MAX = 20.0
STOP_TIMEOUT_S_MAX = 10.0


class AnvilNotInstalled(RuntimeError):
    pass


class AnvilFailed(RuntimeError):
    pass


def anvil_binary(root: Path = REPO_ROOT) -> Path:
    candidates = sorted((root / "node_modules" / "@foundry-rs").glob("anvil-*/bin/anvil"))
    candidates.append(root / "node_modules" / ".bin" / "anvil")
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise AnvilNotInstalled("anvil is not installed: run `make bootstrap` (npm ci installs @foundry-rs/anvil)")


def _die_with_parent() -> None:
    # Linux: if Tally itself is killed (even by SIGKILL), the kernel sends anvil SIGTERM,
    # so no chain is left running behind a dead parent.
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rpc_call(url: str, method: str, params: list[object] | None = None, timeout_s: float = 2.0) -> object:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (loopback URL we built)
        reply = json.loads(response.read())
    if "error" in reply:
        raise AnvilFailed(f"{method}: {reply['error']}")
    return reply["result"]


@dataclass
class Anvil:
    """A running anvil process on 127.0.0.1:port."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path | None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S_MAX)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S_MAX)


def start_anvil(
    port: int | None = None,
    *,
    state_file: Path | None = None,
    log_path: Path | None = None,
    block_time_s: float | None = None,
    extra_args: tuple[str, ...] = (),
) -> Anvil:
    """Start anvil and return once it answers eth_chainId; raise AnvilFailed otherwise."""
    port = port or free_port()
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise AnvilFailed(f"port {port} is already in use: set TALLY_ANVIL_PORT to a free port")
    args = [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(port), "--silent"]
    if state_file is not None:
        state_file.parent.mkdir(parents=True, exist_ok=True)
        # --state loads the file if present and dumps to it on exit and every interval, so a
        # second `make run` finds its invoices' anchors where it left them.
        args += ["--state", str(state_file), "--state-interval", "5"]
    if block_time_s is not None:
        args += ["--block-time", str(block_time_s)]
    args += list(extra_args)
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # owned by Popen
    process = subprocess.Popen(  # noqa: S603 (our own binary, fixed arguments)
        args, stdout=log, stderr=log, start_new_session=True, preexec_fn=_die_with_parent
    )
    anvil = Anvil(process=process, port=port, log_path=log_path)
    deadline = time.monotonic() + START_TIMEOUT_S_MAX
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AnvilFailed(f"anvil exited with status {process.returncode} (log: {log_path})")
        with contextlib.suppress(OSError, AnvilFailed):
            rpc_call(anvil.url, "eth_chainId", timeout_s=0.5)
            return anvil
        time.sleep(0.05)
    anvil.stop()
    raise AnvilFailed(f"anvil did not answer on port {port} within {START_TIMEOUT_S_MAX} s")


@contextlib.contextmanager
def running_anvil(port: int | None = None, **kwargs: object) -> Iterator[Anvil]:
    anvil = start_anvil(port, **kwargs)  # type: ignore[arg-type]
    try:
        yield anvil
    finally:
        anvil.stop()
