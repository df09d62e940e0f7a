"""Helpers for the settlement and reconciliation tests: a world with its own anvil chain, the real
contracts, the API over a database, an anchorer and a reconciler driven tick by tick, payers with
funded wallets, and shortcuts for invoices, instructions and payments."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.anchoring.config import AnchorerConfig
from backend.app import create_app
from backend.chain.anvil import Anvil, start_anvil
from backend.chain.client import Deployments, connect, contract_at
from backend.chain.deploy import deploy_contract, deploy_or_reuse
from backend.chain.signer import anchorer_account
from backend.db import create_engine, session_factory, transaction
from backend.models import AnchorTransaction, ChainPayment, Customer, Invoice, LedgerEntry, Payment
from backend.services.journal import unbalanced_currencies
from backend.services.keys import create_key
from backend.settings import Settings
from backend.settlement import tokens as registry
from backend.settlement.instructions import request_from_json
from backend.settlement.payer import Payer
from backend.settlement.reconciler import Reconciler
from backend.workers.anchorer import Anchorer, chain_connector
from backend.workers.reconciler import build_reconciler
from ledger.terms import Terms

LEDGER_ID = "settle-test"
USDC = 10**6  # one token (6 decimals)
FAST_ANCHOR = {"poll_s": 0.02, "backoff_min_s": 0.05, "backoff_max_s": 0.2, "interval_s": 0.05, "entries_max": 1}
FAST_RECONCILE = {"poll_s": 0.02, "backoff_min_s": 0.05, "backoff_max_s": 0.2}
DAY_S = 86_400


@dataclass
class World:
    anvil: Anvil
    settings: Settings
    client: TestClient
    admin: str
    addresses: dict[str, str]
    payee: str
    owner: LocalAccount
    anchorer: Anchorer
    reconciler: Reconciler
    deployments: Deployments
    engine: Any
    sessions: Any
    extra_reconcilers: list[Reconciler] = field(default_factory=list)

    # --- chain ---------------------------------------------------------------------------------

    @property
    def w3(self) -> Any:
        return connect(self.anvil.url)

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        reply = self.w3.provider.make_request(method, params or [])  # type: ignore[arg-type]
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result")

    def token(self, address: str | None = None) -> Any:
        return contract_at(self.w3, "TestStablecoin", address or self.addresses["TestStablecoin"])

    def send(self, account: LocalAccount, call: Any) -> Any:
        w3 = self.w3
        nonce = w3.eth.get_transaction_count(account.address, "pending")
        transaction = call.build_transaction({"from": account.address, "nonce": nonce})
        tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(transaction).raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, poll_latency=0.01)
        if receipt["status"] != 1:
            raise RuntimeError(f"transaction reverted: {tx_hash.to_0x_hex()}")
        return receipt

    def wallet(self, tokens: int = 1_000) -> LocalAccount:
        """A fresh payer with gas money and `tokens` whole test dollars."""
        account: LocalAccount = Account.create()
        self.rpc("anvil_setBalance", [account.address, hex(10**20)])
        if tokens:
            self.send(self.owner, self.token().functions.mint(account.address, tokens * USDC))
        return account

    def transfer(self, account: LocalAccount, to: str, amount_token: int, token: str | None = None) -> Any:
        return self.send(account, self.token(token).functions.transfer(self.w3.to_checksum_address(to), amount_token))

    def other_token(self) -> str:
        return deploy_contract(self.w3, self.owner, "TestStablecoin", [self.owner.address]).lower()

    def block_timestamp(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    # --- API -----------------------------------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None, *, key: str | None = None, ok: bool = True) -> Any:
        reply = self.client.request(method, path, json=body, headers={"Authorization": f"Bearer {key or self.admin}"})
        if ok and reply.status_code != 200:
            raise AssertionError(f"{method} {path}: {reply.status_code} {reply.text}")
        return reply.json() if ok else reply

    def customer(self, wallets: list[str] = (), **fields: Any) -> str:  # type: ignore[assignment]
        body = {"name": "Acme", "currency": "usd", "payee_address": self.payee,
                "wallet_addresses": [address.lower() for address in wallets], **fields}  # fmt: skip
        return str(self.api("POST", "/v1/customers", body)["id"])

    def invoice(self, customer: str, amount_minor: int, **fields: Any) -> dict[str, Any]:
        body = {"customer": customer, "finalize": True,
                "lines": [{"description": "Work", "quantity": 1, "unit_amount_minor": amount_minor, "tax_bps": 0}],
                **fields}  # fmt: skip
        return dict(self.api("POST", "/v1/invoices", body))

    def get_invoice(self, invoice_id: str) -> dict[str, Any]:
        return dict(self.api("GET", f"/v1/invoices/{invoice_id}"))

    def instructions(self, invoice_id: str, key: str | None = None) -> dict[str, Any]:
        return dict(self.api("GET", f"/v1/invoices/{invoice_id}/payment", key=key))

    def pay(self, invoice_id: str, account: LocalAccount, amount: int | None = None) -> Any:
        instructions = self.instructions(invoice_id)
        payer = Payer(self.w3, account, instructions["settlement_contract"])
        return payer.pay(request_from_json(instructions["request"]), amount)

    def contract_view(self, invoice_id: str) -> tuple[int, int, int]:
        """What the chain holds for the invoice's current terms: (the terms version LedgerAnchor has
        for its key, `amountDueNow`, `remainingNow`) from InvoiceSettlement itself."""
        invoice = self.get_invoice(invoice_id)
        key = bytes.fromhex(invoice["invoice_key"][2:])
        terms = list(Terms.from_document(invoice["terms"]).abi_tuple())
        for position in (0, 1, 10):  # payee, token, payer: web3 wants checksummed addresses
            terms[position] = self.w3.to_checksum_address(terms[position])
        settlement = contract_at(self.w3, "InvoiceSettlement", self.addresses["InvoiceSettlement"])
        anchor = contract_at(self.w3, "LedgerAnchor", self.addresses["LedgerAnchor"])
        return (int(anchor.functions.termsVersion(key).call()), int(settlement.functions.amountDueNow(terms).call()),
                int(settlement.functions.remainingNow(key, terms).call()))  # fmt: skip

    # --- workers -------------------------------------------------------------------------------

    def anchor(self, timeout_s: float = 20.0) -> None:
        """Tick the anchorer until a confirmed anchor covers the whole ledger."""

        def done() -> bool:
            with transaction(self.sessions) as session:
                from backend.services.ledger import read_head

                size = read_head(session, LEDGER_ID).size
                top = session.scalar(select(AnchorTransaction.tree_size).where(AnchorTransaction.status == "confirmed")
                                     .order_by(AnchorTransaction.tree_size.desc()).limit(1))  # fmt: skip
            return size == 0 or top == size

        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"not anchored after {timeout_s} s: {self.anchorer.last_state}")
            self.anchorer._step()
            time.sleep(0.01)

    def reconcile(self, reconciler: Reconciler | None = None, timeout_s: float = 20.0) -> None:
        """Step the reconciler until it has read up to the chain's head."""
        worker = reconciler or self.reconciler
        deadline = time.monotonic() + timeout_s
        while True:
            worker.step()
            if worker.last_state == "idle":
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"reconciler not idle after {timeout_s} s: {worker.last_state}")

    def settle(self) -> None:
        """Reconcile, then anchor what the reconciler booked."""
        self.reconcile()
        self.anchor()

    # --- database ------------------------------------------------------------------------------

    def chain_payments(self) -> list[ChainPayment]:
        with transaction(self.sessions) as session:
            return list(session.scalars(select(ChainPayment).order_by(ChainPayment.pk)))

    def payments(self, invoice_id: str | None = None) -> list[Payment]:
        with transaction(self.sessions) as session:
            statement = select(Payment).order_by(Payment.pk)
            if invoice_id:
                statement = statement.where(Payment.invoice_id == invoice_id)
            return list(session.scalars(statement))

    def entries(self, invoice_id: str) -> list[LedgerEntry]:
        with transaction(self.sessions) as session:
            return list(session.scalars(select(LedgerEntry).where(LedgerEntry.invoice_id == invoice_id)
                                        .order_by(LedgerEntry.sequence)))  # fmt: skip

    def customer_row(self, customer_id: str) -> Customer:
        with transaction(self.sessions) as session:
            return session.scalars(select(Customer).where(Customer.id == customer_id)).one()

    def invoice_row(self, invoice_id: str) -> Invoice:
        with transaction(self.sessions) as session:
            return session.scalars(select(Invoice).where(Invoice.id == invoice_id)).one()

    def journal_balanced(self) -> bool:
        with transaction(self.sessions) as session:
            return not unbalanced_currencies(session)

    def new_reconciler(self, fault: Callable[[str], None] | None = None, **config: Any) -> Reconciler:
        return build_reconciler(self.settings, self.engine, self.sessions, self.deployments, fault=fault,
                                **{**FAST_RECONCILE, **config})  # fmt: skip


@contextmanager
def serve(world: World) -> Iterator[str]:
    """The world's API on a real uvicorn (for clients that speak HTTP, like `tally pay`)."""
    import threading

    import uvicorn

    from backend.chain.anvil import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(world.client.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def make_world(database_url: str, data_dir: Path, **settings: Any) -> Iterator[World]:
    """A world on its own anvil (tests that move time or reorg the chain stay isolated)."""
    anvil = start_anvil()
    payee = Account.create().address.lower()
    config = Settings(database_url=database_url, rpc_url=anvil.url, ledger_id=LEDGER_ID, data_dir=data_dir,
                      confirmations=1, **settings)  # fmt: skip
    w3 = connect(anvil.url)
    owner = anchorer_account(config, w3.eth.chain_id)
    deployments = Deployments(config.deployments_file)
    addresses = deploy_or_reuse(w3, owner, deployments, redeploy=True)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        registry.ensure_local_tokens(session, w3.eth.chain_id, addresses)
        admin = create_key(session, role="admin")[1]
    app = create_app(config, engine=engine)
    anchor_config = AnchorerConfig.from_settings(config, **FAST_ANCHOR)
    anchorer = Anchorer(sessions=sessions, engine=engine, ledger_id=LEDGER_ID, config=anchor_config,
                        connect_chain=chain_connector(config, deployments, anchor_config))  # fmt: skip
    reconciler = build_reconciler(config, engine, sessions, deployments, **FAST_RECONCILE)
    try:
        with TestClient(app) as client:
            yield World(anvil, config, client, admin, addresses, payee, owner, anchorer, reconciler, deployments,
                        engine, sessions)  # fmt: skip
    finally:
        anchorer.close()
        reconciler.close()
        engine.dispose()
        anvil.stop()
