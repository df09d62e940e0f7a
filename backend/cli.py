"""The `tally` command line: run the service, manage the chain and keys, verify, audit."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import typer
from rich.console import Console

from backend.settings import Settings, get_settings

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    # Tracebacks must never print local variables: they can hold the anchorer's key.
    pretty_exceptions_show_locals=False,
    help="Tally: a billing ledger whose history cannot be rewritten.",
)
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


@contextlib.contextmanager
def local_chain(settings: Settings) -> Iterator[str]:
    """Yield the RPC URL: the configured one, or a local anvil started here and stopped on exit."""
    if not settings.local_chain:
        yield settings.rpc_url
        return
    from backend.chain.anvil import AnvilFailed, AnvilNotInstalled, start_anvil

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        anvil = start_anvil(
            settings.anvil_port,
            state_file=settings.anvil_state_file,
            log_path=settings.data_dir / "anvil.log",
        )
    except (AnvilFailed, AnvilNotInstalled) as error:
        raise fail(str(error)) from error
    try:
        yield anvil.url
    finally:
        anvil.stop()


def deploy_contracts(settings: Settings, rpc_url: str, *, redeploy: bool = False) -> dict[str, str]:
    from backend.chain.client import Deployments, connect
    from backend.chain.deploy import DeploymentError, deploy_or_reuse
    from backend.chain.signer import SignerRefused, anchorer_account

    w3 = connect(rpc_url, settings.rpc_timeout_s)
    try:
        chain_id = w3.eth.chain_id
    except Exception as error:
        raise fail(f"chain at {rpc_url} does not answer: {type(error).__name__}") from error
    try:
        account = anchorer_account(settings, chain_id)
        return deploy_or_reuse(w3, account, Deployments(settings.deployments_file), redeploy=redeploy)
    except (DeploymentError, SignerRefused) as error:
        raise fail(str(error)) from error


@app.command()
def run() -> None:
    """Run Tally: migrate, start the local chain if no RPC_URL, deploy, serve the API and workers."""
    import uvicorn

    from backend.app import create_app, freeze_heap
    from backend.db import migrate

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings.effective_database_url)
    with local_chain(settings) as rpc_url:
        addresses = deploy_contracts(settings, rpc_url)
        app_settings = settings.model_copy(update={"rpc_url": rpc_url})
        api = create_app(app_settings)
        admin_key = _first_admin_key(api)
        base = f"http://{settings.api_host}:{settings.api_port}"
        console.print(f"[bold green]Tally[/] is running at {base}")
        console.print(f"  API docs     {base}/docs")
        console.print(f"  health       {base}/healthz")
        console.print(f"  database     {settings.effective_database_url}")
        console.print(f"  chain        {rpc_url}")
        for name, address in sorted(addresses.items()):
            console.print(f"  {name:<18} {address}")
        if admin_key:
            console.print(f"  admin key    [bold]{admin_key}[/]  (shown once: keep it)")
        console.print("Press Ctrl-C to stop.")
        server = uvicorn.Server(
            uvicorn.Config(api, host=settings.api_host, port=settings.api_port, log_level="warning")
        )
        freeze_heap()
        # uvicorn shuts down gracefully on Ctrl-C, then re-raises the signal; that is our normal stop.
        with _workers(api), contextlib.suppress(KeyboardInterrupt):
            server.run()
    console.print("Tally stopped.")


def _first_admin_key(api: object) -> str | None:
    from backend.services.keys import ensure_admin_key

    return ensure_admin_key(api.state.tally.sessions)  # type: ignore[attr-defined]


@contextlib.contextmanager
def _workers(api: object) -> Iterator[None]:
    """Start the background workers (anchorer, reconciler), and stop them on exit."""
    from backend.workers import start_workers

    stop = start_workers(api.state.tally)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        stop()


@app.command()
def deploy(
    redeploy: bool = typer.Option(False, help="Deploy fresh contracts even if some are recorded."),
) -> None:
    """Deploy the contracts (or reuse the recorded ones) on RPC_URL, or on a local anvil."""
    settings = get_settings()
    with local_chain(settings) as rpc_url:
        addresses = deploy_contracts(settings, rpc_url, redeploy=redeploy)
    for name, address in sorted(addresses.items()):
        console.print(f"{name:<18} {address}")


@app.command()
def chain() -> None:
    """Run only the local anvil chain (with Tally's state file) until Ctrl-C."""
    import time

    settings = get_settings()
    if not settings.local_chain:
        raise fail("RPC_URL is set: Tally does not own that chain")
    with local_chain(settings) as rpc_url:
        console.print(f"anvil at {rpc_url} (state: {settings.anvil_state_file}); Ctrl-C stops it")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


@app.command()
def migrate() -> None:
    """Bring the database schema to the newest migration."""
    from backend.db import migrate as run_migrations

    settings = get_settings()
    run_migrations(settings.effective_database_url)
    console.print(f"database at {settings.effective_database_url} is up to date")


def _add_commands(sub: typer.Typer) -> None:
    """Top-level commands (and groups) that live in another module's typer `app`."""
    app.registered_commands.extend(sub.registered_commands)
    app.registered_groups.extend(sub.registered_groups)


# The sub-command modules import their heavy dependencies inside the commands, so `tally verify`
# and `tally --help` stay quick and need no database.
from backend import cli_keys, cli_ops, cli_settlement  # noqa: E402 (they import `app` helpers above)

app.add_typer(cli_keys.app, name="keys")
_add_commands(cli_ops.app)
_add_commands(cli_settlement.app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
