"""`tally demo`: the whole of Tally in one command, on a throw-away local setup.

A temporary data directory, its own anvil chain, a SQLite database, the contracts deployed, the
HTTP API served by uvicorn on a free port, and the anchorer and reconciler running as under
`tally run`. Then, through the API and the chain only, as a back office and a customer would:
create a customer, issue an invoice, wait for the anchor, fetch and verify its receipt (what
`tally verify` does), pay it on-chain from the customer's wallet (what `tally pay` does), watch
the reconciler book it, issue a credit note on a second invoice and pay the rest, run the audit.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.table import Table

WAIT_S_MAX = 40.0
POLL_S = 0.1
DEMO_ANCHOR_INTERVAL_S = 1.0  # anchor a new head at most a second after the first unanchored entry


class DemoFailed(RuntimeError):
    pass


@dataclass
class Stage:
    console: Console
    client: httpx.Client
    rpc_url: str
    data_dir: Path
    settings: Any
    started: float

    def step(self, title: str) -> None:
        self.console.print()
        self.console.rule(f"[bold]{title}[/]  [dim]{time.monotonic() - self.started:5.1f} s[/]", align="left")

    def say(self, text: str) -> None:
        self.console.print(f"  {text}")

    def api(self, method: str, path: str, body: Any = None, *, ok: tuple[int, ...] = (200,)) -> Any:
        reply = self.client.request(method, path, json=body)
        if reply.status_code not in ok:
            raise DemoFailed(f"{method} {path} answered {reply.status_code}: {reply.text[:300]}")
        return reply


def wait_for(what: str, probe: Callable[[], Any], timeout_s: float = WAIT_S_MAX) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoFailed(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(POLL_S)


def money(amount_minor: int) -> str:
    return f"${amount_minor // 100:,}.{amount_minor % 100:02d}"


@contextmanager
def local_tally(data_dir: Path) -> Iterator[tuple[Any, str, str, dict[str, str]]]:
    """Anvil, contracts, database, API server and workers; yields (app state, API URL, admin key,
    contract addresses) and tears it all down."""
    import uvicorn

    from backend.app import create_app
    from backend.chain.anvil import free_port, start_anvil
    from backend.chain.client import Deployments, connect
    from backend.chain.deploy import deploy_or_reuse
    from backend.chain.signer import anchorer_account
    from backend.db import migrate, transaction
    from backend.services.keys import create_key
    from backend.settings import Settings
    from backend.settlement.tokens import ensure_local_tokens
    from backend.workers import start_workers

    anvil = start_anvil(free_port(), log_path=data_dir / "anvil.log")
    stop_workers: Callable[[], None] | None = None
    server: Any = None
    try:
        payee = Account.create().address.lower()
        settings = Settings(
            data_dir=data_dir,
            rpc_url=anvil.url,
            database_url=f"sqlite:///{data_dir / 'tally.sqlite'}",
            ledger_id="demo",
            anchor_interval_s=DEMO_ANCHOR_INTERVAL_S,
            payee_address=payee,
            api_port=free_port(),
        )
        migrate(settings.effective_database_url)
        w3 = connect(anvil.url)
        addresses = deploy_or_reuse(
            w3, anchorer_account(settings, w3.eth.chain_id), Deployments(settings.deployments_file)
        )
        app = create_app(settings)
        state = app.state.tally
        with transaction(state.sessions) as session:
            ensure_local_tokens(session, w3.eth.chain_id, addresses)
            admin = create_key(session, role="admin", name="demo")[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.api_port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True, name="tally-demo-api")
        thread.start()
        wait_for("the API to start", lambda: server.started, 20)
        stop_workers = start_workers(state)
        yield state, f"http://127.0.0.1:{settings.api_port}", admin, addresses
    finally:
        if stop_workers is not None:
            stop_workers()
        if server is not None:
            server.should_exit = True
        anvil.stop()


def run_demo(console: Console, *, keep: bool = False) -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="tally-demo-"))
    started = time.monotonic()
    console.print("[bold]Tally demo[/]: a billing ledger whose history cannot be rewritten, paid on-chain.")
    console.print(f"[dim]Everything runs locally in {data_dir} and is thrown away afterwards.[/]")
    try:
        with local_tally(data_dir) as (state, api_url, admin, addresses):
            with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {admin}"}, timeout=30) as client:
                stage = Stage(console, client, state.settings.effective_rpc_url, data_dir, state.settings, started)
                _story(stage, state, addresses)
        console.print()
        console.rule(f"[bold green]Done in {time.monotonic() - started:.1f} s[/]", align="left")
        return 0
    except DemoFailed as error:
        console.print(f"[bold red]demo failed:[/] {error}")
        return 1
    finally:
        if keep:
            console.print(f"[dim]kept {data_dir}[/]")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def _story(stage: Stage, state: Any, addresses: dict[str, str]) -> None:
    stage.step("1. A local chain with Tally's contracts")
    for name in ("LedgerAnchor", "InvoiceSettlement", "TestStablecoin"):
        stage.say(f"{name:<18} {addresses[name]}")
    stage.say(f"API                {stage.client.base_url}  (anchorer and reconciler running)")
    payer = _funded_wallet(stage, state, addresses)

    stage.step("2. A customer, and an invoice issued to them")
    customer = stage.api(
        "POST", "/v1/customers", {"name": "Acme GmbH", "currency": "usd", "wallet_addresses": [payer.address.lower()]}
    ).json()
    stage.say(f"customer {customer['id']}, paying from the wallet above")
    lines = [
        {"description": "Consulting, March", "quantity": 8, "unit_amount_minor": 15_000, "tax_bps": 1_900},
        {"description": "Travel", "quantity": 1, "unit_amount_minor": 42_000, "tax_bps": 0},
    ]
    invoice = stage.api(
        "POST",
        "/v1/invoices",
        {"customer": customer["id"], "lines": lines, "finalize": True, "terms": {"partial_allowed": True}},
    ).json()
    terms = invoice["terms"]
    stage.say(
        f"invoice {invoice['number']} ({invoice['id']}): {money(invoice['total_minor'])} "
        f"incl. {money(invoice['tax_minor'])} tax, due {time.strftime('%Y-%m-%d', time.gmtime(terms['due_date']))}"
    )
    stage.say(
        f"settlement terms v{terms['version']}: pay {int(terms['amount_due']) / 10**6:,.2f} tUSD to {terms['payee']}"
    )
    stage.say(f"ledger entry {invoice['issued_entry']} (invoice_issued) commits to these terms")

    _receipt_verified(stage, "3", f"/v1/invoices/{invoice['id']}/receipt", "the invoice")
    _pay_and_watch(stage, payer, invoice["id"])
    entry = _payment_entry(stage, invoice["id"])
    _receipt_verified(stage, "5", f"/v1/ledger/entries/{entry}/receipt", f"the payment (entry {entry})")

    stage.step("6. A second invoice, a credit note, and the rest paid")
    second = stage.api(
        "POST",
        "/v1/invoices",
        {
            "customer": customer["id"],
            "finalize": True,
            "lines": [{"description": "Support plan, Q2", "quantity": 1, "unit_amount_minor": 90_000, "tax_bps": 0}],
        },
    ).json()
    stage.say(f"invoice {second['number']}: {money(second['total_minor'])}")
    note = stage.api(
        "POST",
        "/v1/credit_notes",
        {
            "invoice": second["id"],
            "reason": "two days of downtime",
            "lines": [{"description": "Service credit", "quantity": 1, "unit_amount_minor": 15_000, "tax_bps": 0}],
        },
    ).json()
    updated = stage.api("GET", f"/v1/invoices/{second['id']}").json()
    stage.say(
        f"credit note {note['id']}: -{money(note['total_minor'])}; terms v{note['terms_version']} ask "
        f"{int(updated['terms']['amount_due']) / 10**6:,.2f} tUSD"
    )
    _pay_and_watch(stage, payer, second["id"], numbered=False)
    _audit(stage, state)


def _funded_wallet(stage: Stage, state: Any, addresses: dict[str, str]) -> LocalAccount:
    from backend.chain.client import contract_at
    from backend.chain.signer import anchorer_account

    w3 = state.w3
    payer: LocalAccount = Account.create()
    w3.provider.make_request("anvil_setBalance", [payer.address, hex(10**19)])
    owner = anchorer_account(stage.settings, w3.eth.chain_id)
    token = contract_at(w3, "TestStablecoin", addresses["TestStablecoin"])
    call = token.functions.mint(payer.address, 5_000 * 10**6)
    signed = owner.sign_transaction(
        call.build_transaction({"from": owner.address, "nonce": w3.eth.get_transaction_count(owner.address, "pending")})
    )
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction), poll_latency=0.02)
    stage.say(f"customer wallet    {payer.address}  (5,000 tUSD)")
    return payer


def _receipt_verified(stage: Stage, number: str, path: str, what: str) -> dict[str, Any]:
    from backend.verify import verify_receipt

    stage.step(f"{number}. Anchored: the receipt of {what}")
    started = time.monotonic()
    receipt = wait_for("the anchor", lambda: (r := stage.client.get(path)).status_code == 200 and r.json())
    stage.say(
        f"anchored after {time.monotonic() - started:.1f} s: head of size {receipt['tree_size']}, tx "
        f"{receipt['anchor']['tx_hash'][:18]}... in block {receipt['anchor']['block_number']}"
    )
    result = verify_receipt(receipt, stage.rpc_url)
    if result.exit_code != 0:
        raise DemoFailed(f"the receipt did not verify: {result.reason} {result.message}")
    stage.say("tally verify: hash, leaf, inclusion proof, rootAt() on-chain: [bold green]valid[/]")
    return dict(receipt)


def _pay_and_watch(stage: Stage, payer: LocalAccount, invoice_id: str, numbered: bool = True) -> None:
    from backend.chain.client import connect
    from backend.settlement.instructions import request_from_json
    from backend.settlement.payer import Payer

    if numbered:
        stage.step("4. Paid on-chain from the customer's wallet, and reconciled")
    instructions = wait_for(
        "payment instructions (terms anchored)",
        lambda: (r := stage.client.get(f"/v1/invoices/{invoice_id}/payment")).status_code == 200 and r.json(),
    )
    amount = int(instructions["amount_token"])
    stage.say(
        f"instructions: pay {amount / 10**6:,.2f} tUSD via InvoiceSettlement.pay() with an inclusion proof "
        f"against anchored size {instructions['request']['tree_size']}"
    )
    stage.say(f"or as a plain transfer: {instructions['eip681']}")
    # What `tally pay` does: from here on only the chain and the payer's key.
    wallet = Payer(connect(stage.rpc_url), payer, instructions["settlement_contract"])
    result = wallet.pay(request_from_json(instructions["request"]))
    mined = time.monotonic()
    stage.say(
        f"approve tx {str(result.approve_tx)[:18]}..., pay tx {result.pay_tx[:18]}... (block {result.block_number})"
    )
    invoice = wait_for(
        "the reconciler", lambda: (r := stage.client.get(f"/v1/invoices/{invoice_id}").json())["status"] == "paid" and r
    )
    stage.say(
        f"reconciled {time.monotonic() - mined:.2f} s after mining: invoice [bold green]{invoice['status']}"
        f"[/], paid {money(invoice['paid_minor'])} on-chain"
    )
    (chain_payment,) = stage.api("GET", f"/v1/chain_payments?invoice={invoice_id}").json()["data"]
    stage.say(
        f"chain payment {chain_payment['id']}: {chain_payment['source']} log "
        f"{chain_payment['tx_hash'][:18]}...:{chain_payment['log_index']} -> payment {chain_payment['payment']}"
    )


def _payment_entry(stage: Stage, invoice_id: str) -> int:
    payments = stage.api("GET", f"/v1/payments?invoice={invoice_id}").json()["data"]
    return int(payments[0]["entry"])


def _audit(stage: Stage, state: Any) -> None:
    from backend import audit as auditing
    from backend.cli_ops import _chain_view

    stage.step("7. tally audit: the ledger replayed against the chain")
    wait_for("the last entries to be anchored", lambda: _all_anchored(stage), WAIT_S_MAX)
    source = auditing.database_input(state.sessions, stage.settings.ledger_id)
    chain, problem = _chain_view(auditing, source, stage.settings, stage.rpc_url, "", 0)
    if problem:
        raise DemoFailed(f"the audit cannot reach the chain: {problem}")
    report = auditing.run_audit(source, chain=chain, receipts=[])
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_row("entries replayed", str(report.entries))
    table.add_row("anchored heads checked on-chain", str(report.heads))
    table.add_row("invoices checked", str(report.invoices))
    table.add_row("journal postings checked", str(report.postings))
    table.add_row("root", report.root)
    stage.console.print(table)
    if not report.ok:
        for finding in report.findings[:10]:
            stage.say(f"[red]{finding.code}[/] {finding.subject}: {finding.message}")
        raise DemoFailed(f"the audit found {report.findings_total} problem(s)")
    stage.say("[bold green]CLEAN[/]: every leaf, anchored head, balance and posting matches")


def _all_anchored(stage: Stage) -> bool:
    head = stage.api("GET", "/v1/ledger/head").json()
    anchors = stage.api("GET", "/v1/anchors?limit=1").json()["data"]
    newest = anchors[0] if anchors else {}
    return bool(newest.get("status") == "confirmed" and newest.get("tree_size") == head.get("tree_size"))
