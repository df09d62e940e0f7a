"""`tally pay` and `tally demo` (registered at the top level by backend.cli).

`tally pay` is the payer's side: it needs a JSON-RPC endpoint and the payer's key, plus either an
invoice id and the API (`--api-url`, `--api-key`: a partner key sees its own invoices), or a file
with saved payment instructions, or a receipt with `--settlement ADDRESS`. No database.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)
console = Console()
err_console = Console(stderr=True)
API_TIMEOUT_S = 30.0


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def _instructions_from_api(invoice_id: str, api_url: str, api_key: str) -> dict[str, Any]:
    import httpx

    if not api_url or not api_key:
        raise _fail("an invoice id needs --api-url and --api-key (or TALLY_API_URL / TALLY_API_KEY)")
    try:
        reply = httpx.get(f"{api_url.rstrip('/')}/v1/invoices/{invoice_id}/payment",
                          headers={"Authorization": f"Bearer {api_key}"}, timeout=API_TIMEOUT_S)  # fmt: skip
    except httpx.HTTPError as error:
        raise _fail(f"the API at {api_url} does not answer: {error}") from error
    if reply.status_code != 200:
        try:
            detail = reply.json()["error"]
            message = f"{detail['code']}: {detail['message']}"
        except (ValueError, KeyError, TypeError):
            message = reply.text[:300]
        raise _fail(f"the API refused ({reply.status_code}) {message}")
    return dict(reply.json())


def _load(target: str, api_url: str, api_key: str, settlement: str) -> tuple[tuple[Any, ...], str, int | None]:
    """(payment request, settlement address, expected chain id) from an invoice id or a file."""
    from backend.settlement.instructions import request_from_json, request_from_receipt

    if target.startswith("inv_"):
        data = _instructions_from_api(target, api_url, api_key)
    else:
        try:
            data = json.loads(Path(target).read_text())
        except (OSError, ValueError) as error:
            raise _fail(f"{target} is neither an invoice id nor a readable JSON file: {error}") from error
    if isinstance(data, dict) and data.get("object") == "payment_instructions":
        return request_from_json(data["request"]), settlement or data["settlement_contract"], int(data["chain_id"])
    if isinstance(data, dict) and "leaf_input" in data and "document" in data:
        if not settlement:
            raise _fail("paying from a receipt needs --settlement (the InvoiceSettlement address)")
        return request_from_receipt(data, 0), settlement, int(data["anchor"]["chain_id"])
    raise _fail(f"{target} holds neither payment instructions nor a receipt")


@app.command()
def pay(
    target: str = typer.Argument(
        ...,
        metavar="RECEIPT_OR_INVOICE",
        help="An invoice id (with --api-url), or a payment-instructions or receipt JSON file.",
    ),
    keystore: Path | None = typer.Option(None, "--keystore", help="The payer's encrypted JSON keystore."),
    password: str | None = typer.Option(
        None, "--password", envvar="TALLY_PAYER_PASSWORD", help="Keystore password (prompted when not given)."
    ),
    private_key: str | None = typer.Option(
        None, "--private-key", envvar="TALLY_PAYER_PRIVATE_KEY", help="A raw key: the local chain only."
    ),
    rpc_url: str = typer.Option(..., "--rpc-url", envvar="RPC_URL", help="JSON-RPC endpoint of the chain."),
    api_url: str = typer.Option("", "--api-url", envvar="TALLY_API_URL", help="Tally API base URL."),
    api_key: str = typer.Option("", "--api-key", envvar="TALLY_API_KEY", help="API key (a partner key will do)."),
    settlement: str = typer.Option("", "--settlement", help="InvoiceSettlement address (with a receipt)."),
    amount_token: int | None = typer.Option(
        None, "--amount-token", min=1, help="Pay this many token base units (default: all due now)."
    ),
) -> None:
    """Pay an invoice on-chain from the payer's wallet: approve the settlement contract if the
    allowance is short, then call `pay()` (each dry-run first; a refusal is named, nothing sent)."""
    from backend.anchoring.chain import ChainUnavailable, connect_rpc, rpc
    from backend.settlement.payer import Payer, PayerKeyRefused, PaymentRefused, load_account

    request, settlement_address, chain_id = _load(target, api_url, api_key, settlement)
    w3 = connect_rpc(rpc_url, API_TIMEOUT_S)
    try:
        actual_chain = int(rpc(lambda: w3.eth.chain_id))
    except ChainUnavailable as error:
        raise _fail(f"the chain at {rpc_url} does not answer: {error}", 3) from error
    if chain_id is not None and actual_chain != chain_id:
        raise _fail(f"{rpc_url} serves chain {actual_chain}, the invoice is payable on chain {chain_id}")
    if keystore is not None and password is None:
        password = typer.prompt("keystore password", hide_input=True)
    try:
        account = load_account(keystore=keystore, password=password, private_key=private_key, chain_id=actual_chain)
        payer = Payer(w3, account, settlement_address)
        result = payer.pay(request, amount_token)
    except (PayerKeyRefused, ValueError) as error:
        raise _fail(str(error)) from error
    except PaymentRefused as error:
        raise _fail(f"the contract refuses this payment: {error.reason}", 2) from error
    if result.approve_tx:
        console.print(f"approved   {result.amount} token units for {settlement_address}  tx {result.approve_tx}")
    console.print(f"[bold green]paid[/]       {result.amount} token units from {account.address}  tx {result.pay_tx} "
                  f"(block {result.block_number}, gas {result.gas_used})")  # fmt: skip


@app.command()
def demo(
    keep: bool = typer.Option(False, "--keep", help="Keep the temporary data directory (database, logs)."),
) -> None:
    """The whole story on a throw-away local setup: customer, invoice, anchor, receipt verified,
    on-chain payment reconciled, credit note and payment of the rest, audit. Takes ~20 s."""
    from backend.settlement.demo import run_demo

    raise typer.Exit(run_demo(console, keep=keep))
