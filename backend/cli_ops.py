"""`tally verify`, `tally audit`, `tally export`, `tally worker anchor|reconcile` (registered at the top
level by backend.cli). Imports stay light here; each command loads what it needs, so `verify`
never touches the database layer."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperCommand

try:  # typer >= 0.20 vendors click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import UsageError

app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)
worker_app = typer.Typer(no_args_is_help=True, help="Run one background worker in the foreground.")
app.add_typer(worker_app, name="worker")
console = Console()
err_console = Console(stderr=True)

EXIT_USAGE = 4


class _UsageExit4(TyperCommand):
    """Usage errors exit 4, so they never look like `verify`'s 2 (not anchored)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except UsageError as error:
            error.exit_code = EXIT_USAGE
            raise


# --- tally verify -------------------------------------------------------------------------------


@app.command(cls=_UsageExit4)
def verify(
    receipt: Path = typer.Argument(..., help="The receipt JSON file (from GET /v1/invoices/{id}/receipt)."),
    rpc_url: str = typer.Option(..., "--rpc-url", envvar="RPC_URL", help="JSON-RPC endpoint of the receipt's chain."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    timeout_s: float = typer.Option(10.0, "--timeout", min=0.1, max=300, help="RPC timeout in seconds."),
) -> None:
    """Check a receipt against the chain, with no database and no Tally server.

    Exit status: 0 valid, 1 invalid, 2 not anchored, 3 chain unreachable, 4 unreadable file or usage.
    """
    from backend.verify import EXIT_USAGE as USAGE
    from backend.verify import Verification, load_receipt, verify_receipt

    try:
        data = load_receipt(receipt)
    except ValueError as error:
        result = Verification().finish(USAGE, "unreadable", str(error))
    else:
        result = verify_receipt(data, rpc_url, timeout_s)
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        _print_verification(result, receipt)
    raise typer.Exit(result.exit_code)


def _print_verification(result: Any, path: Path) -> None:
    styles = {
        "valid": "bold green",
        "invalid": "bold red",
        "not_anchored": "bold yellow",
        "chain_unreachable": "bold magenta",
        "unreadable": "bold red",
    }
    table = Table(title=f"Receipt {path}", show_header=True, header_style="bold")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for name, ok, detail in result.checks:
        table.add_row(name, "[green]ok[/]" if ok else "[red]FAILED[/]", detail)
    if result.checks:
        console.print(table)
    facts = result.facts
    if facts:
        console.print(f"  entry        {facts.get('leaf_index')} ({facts.get('kind')})")
        console.print(f"  head         size {facts.get('tree_size')}, root {facts.get('root')}")
        console.print(f"  anchored on  chain {facts.get('chain_id')}, contract {facts.get('contract')}")
        console.print(f"  transaction  {facts.get('tx_hash')} (block {facts.get('block_number')})")
    console.print(f"[{styles[result.outcome]}]{result.outcome.upper().replace('_', ' ')}[/]: {result.message}")


# --- tally export -------------------------------------------------------------------------------


@app.command()
def export(
    directory: Path = typer.Argument(..., help="Directory to write the bundle into (created if needed)."),
    database_url: str = typer.Option("", "--database-url", help="Default: the configured database."),
) -> None:
    """Write the ledger's export bundle: entries, anchors, invoices, journal and a manifest."""
    from rich.progress import Progress

    from backend.anchoring.export import write_bundle
    from backend.db import create_engine, session_factory
    from backend.settings import get_settings

    settings = get_settings()
    engine = create_engine(database_url or settings.effective_database_url)
    try:
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task("exporting entries", total=None)
            result = write_bundle(
                session_factory(engine),
                settings.ledger_id,
                directory,
                progress=lambda count: progress.advance(task, count),
            )
    finally:
        engine.dispose()
    counts = ", ".join(f"{count} {name}" for name, count in result["counts"].items())
    console.print(f"exported {counts} to {directory} (head {result['head']['tree_size']}, {result['head']['root']})")


# --- tally audit --------------------------------------------------------------------------------


@app.command()
def audit(
    bundle: Path | None = typer.Argument(
        None, help="An export bundle (directory or NDJSON file); default: the database."
    ),
    database_url: str = typer.Option("", "--database-url", help="Audit this database (default: the configured one)."),
    rpc_url: str = typer.Option("", "--rpc-url", envvar="RPC_URL", help="Chain to check anchored heads on."),
    contract: str = typer.Option("", "--contract", help="LedgerAnchor address (default: from the anchors)."),
    from_block: int = typer.Option(0, "--from-block", min=0, help="First block to scan for HeadAnchored events."),
    receipts: list[Path] = typer.Option([], "--receipt", help="Also check this receipt against the ledger."),
    offline: bool = typer.Option(False, "--offline", help="Skip the chain (anchored heads unchecked)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Replay the ledger: every leaf, every anchored head, every balance; name what does not match.

    Exit status: 0 clean, 1 findings, 4 unreadable input or usage.
    """
    from backend import audit as auditing
    from backend.anchoring.export import BundleUnreadable
    from backend.settings import get_settings
    from backend.verify import load_receipt

    settings = get_settings()
    loaded: list[tuple[str, Any]] = []
    for path in receipts:
        try:
            loaded.append((str(path), load_receipt(path)))
        except ValueError as error:
            err_console.print(f"[bold red]error:[/] {error}")
            raise typer.Exit(EXIT_USAGE) from error
    engine = None
    try:
        if bundle is not None:
            source = auditing.bundle_input(bundle)
        else:
            from backend.db import create_engine, session_factory

            engine = create_engine(database_url or settings.effective_database_url)
            source = auditing.database_input(session_factory(engine), settings.ledger_id)
        report = _run_with_progress(auditing, source, settings, rpc_url, contract, from_block, offline, loaded)
    except BundleUnreadable as error:
        err_console.print(f"[bold red]error:[/] {error}")
        raise typer.Exit(EXIT_USAGE) from error
    finally:
        if engine is not None:
            engine.dispose()
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        _print_report(report)
    raise typer.Exit(0 if report.ok else 1)


def _run_with_progress(
    auditing: Any,
    source: Any,
    settings: Any,
    rpc_url: str,
    contract: str,
    from_block: int,
    offline: bool,
    receipts: list[tuple[str, Any]],
) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    chain_problem: str | None = None
    chain = None
    with Progress(
        TextColumn("auditing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("entries", total=source.expected_entries)
        if not offline:
            chain, chain_problem = _chain_view(auditing, source, settings, rpc_url, contract, from_block)
        report = auditing.run_audit(
            source, chain=chain, receipts=receipts, progress=lambda count: progress.advance(task, count)
        )
    if offline:
        report.chain = {"checked": False, "reason": "--offline"}
    elif chain_problem is not None:
        report.chain = {"checked": False, "reason": chain_problem}
        if chain_problem.startswith("unreachable"):
            report.add("chain_unreachable", "chain", chain_problem)
    return report


def _chain_view(
    auditing: Any, source: Any, settings: Any, rpc_url: str, contract: str, from_block: int
) -> tuple[Any, str | None]:
    """A ChainView on the LedgerAnchor the anchors name (or --contract, or the deployments file)."""
    from backend.verify import ChainUnreachable, JsonRpc, LedgerAnchorReader, RpcError

    rpc = JsonRpc(rpc_url or settings.effective_rpc_url, settings.rpc_timeout_s)
    try:
        chain_id = int(rpc.call("eth_chainId", []), 16)
    except (ChainUnreachable, RpcError) as error:
        return None, f"unreachable: {error}"
    address = contract
    if not address:
        anchors = source.anchors() if source.source.startswith("database") else []
        address = anchors[0].contract if anchors else ""
    if not address:
        from backend.chain.client import Deployments

        address = Deployments(settings.deployments_file).for_chain(chain_id).get("LedgerAnchor", "")
    if not address:
        return None, f"no LedgerAnchor known for chain {chain_id} (pass --contract)"
    return auditing.ChainView(LedgerAnchorReader(rpc, address), from_block=from_block), None


def _print_report(report: Any) -> None:
    table = Table(title="Audit", show_header=False)
    table.add_row("source", report.source)
    table.add_row("entries checked", str(report.entries))
    table.add_row("anchored heads checked", str(report.heads))
    table.add_row("invoices checked", str(report.invoices))
    table.add_row("journal postings checked", str(report.postings))
    table.add_row("rebuilt root", report.root)
    table.add_row("chain", json.dumps(report.chain) if report.chain else "-")
    table.add_row("time", f"{report.duration_s:.2f} s")
    console.print(table)
    if report.ok:
        console.print("[bold green]CLEAN[/]: every leaf, anchored head, balance and posting matches.")
        return
    findings = Table(title=f"{report.findings_total} finding(s)", header_style="bold red")
    findings.add_column("code")
    findings.add_column("subject")
    findings.add_column("what does not match", overflow="fold")
    for finding in report.findings:
        findings.add_row(finding.code, finding.subject, finding.message)
    console.print(findings)


# --- tally worker anchor ------------------------------------------------------------------------


def _run_worker(name: str, build: Callable[..., Any]) -> None:
    """Build one worker from the settings and run it in the foreground until Ctrl-C or SIGTERM."""
    import logging
    import signal
    import threading

    from backend.chain.client import Deployments
    from backend.db import create_engine, session_factory
    from backend.settings import get_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    settings = get_settings()
    engine = create_engine(settings.effective_database_url)
    worker = build(settings, engine, session_factory(engine), Deployments(settings.deployments_file))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    console.print(f"{name} for ledger {settings.ledger_id} on {settings.effective_rpc_url}; Ctrl-C stops it")
    try:
        worker.run(stop)
    except KeyboardInterrupt:
        stop.set()
    finally:
        engine.dispose()


@worker_app.command("anchor")
def worker_anchor() -> None:
    """Run the anchorer until Ctrl-C (one per deployment is active; others stand by)."""
    from backend.workers.anchorer import build_anchorer

    _run_worker("anchorer", build_anchorer)


@worker_app.command("reconcile")
def worker_reconcile() -> None:
    """Run the reconciler until Ctrl-C: books on-chain payments (one active per chain; others stand by)."""
    from backend.workers.reconciler import build_reconciler

    _run_worker("reconciler", build_reconciler)
