"""Helpers for the anchoring, verify and audit tests: deployed contracts, entries, a driven anchorer,
and an HTTP proxy that can play a dead RPC endpoint."""

from __future__ import annotations

import http.server
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from backend.anchoring.config import AnchorerConfig
from backend.chain.client import Deployments, connect, contract_at
from backend.chain.deploy import deploy_or_reuse
from backend.chain.signer import anchorer_account
from backend.db import create_engine, session_factory, transaction
from backend.models import AnchorTransaction
from backend.services import ledger as ledger_service
from backend.settings import Settings
from backend.workers.anchorer import Anchorer, chain_connector
from ledger.entries import EntryKind, build_document
from ledger.terms import Terms

LEDGER_ID = "anchor-test"
PAYEE = "0x" + "11" * 20
TOKEN = "0x" + "22" * 20
CREATED = 1_767_225_600
FAST = {"poll_s": 0.02, "backoff_min_s": 0.05, "backoff_max_s": 0.2, "interval_s": 0.2, "entries_max": 1000}


@dataclass
class Setup:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    deployments: Deployments
    addresses: dict[str, str]

    def anchorer(
        self, rpc_url: str | None = None, fault: Callable[[str], None] | None = None, **config: Any
    ) -> Anchorer:
        merged = AnchorerConfig.from_settings(self.settings, **{**FAST, **config})
        return Anchorer(
            sessions=self.sessions,
            engine=self.engine,
            ledger_id=LEDGER_ID,
            config=merged,
            connect_chain=chain_connector(self.settings, self.deployments, merged, rpc_url),
            fault=fault,
        )

    def anchor_contract(self, rpc_url: str | None = None) -> Any:
        return contract_at(connect(rpc_url or self.settings.rpc_url), "LedgerAnchor", self.addresses["LedgerAnchor"])

    def rows(self) -> list[AnchorTransaction]:
        with transaction(self.sessions) as session:
            return list(session.scalars(select(AnchorTransaction).order_by(AnchorTransaction.pk)))

    def head_size(self) -> int:
        with transaction(self.sessions) as session:
            return ledger_service.read_head(session, LEDGER_ID).size


def make_setup(database_url: str, rpc_url: str, data_dir: Path, **settings: Any) -> Setup:
    """Fresh contracts on the chain at `rpc_url`, recorded in `data_dir`; an engine on the DB."""
    config = Settings(
        database_url=database_url, rpc_url=rpc_url, ledger_id=LEDGER_ID, data_dir=data_dir, confirmations=1, **settings
    )
    w3 = connect(rpc_url)
    deployments = Deployments(config.deployments_file)
    addresses = deploy_or_reuse(w3, anchorer_account(config, w3.eth.chain_id), deployments, redeploy=True)
    engine = create_engine(database_url)
    return Setup(config, engine, session_factory(engine), deployments, addresses)


def customer_document(number: int) -> dict[str, Any]:
    return build_document(
        EntryKind.CUSTOMER_CREATED,
        ledger_id=ledger_service.ledger_key(LEDGER_ID),
        created=CREATED + number,
        customer_id=f"cus_{number:06d}",
        currency="usd",
    )


def append_customers(setup: Setup, count: int, start: int = 0) -> None:
    with transaction(setup.sessions) as session:
        ledger_service.append_entries(
            session,
            ledger_id=LEDGER_ID,
            entries=[ledger_service.NewEntry(customer_document(start + i)) for i in range(count)],
        )


def terms(version: int, amount_due: int = 11_000) -> Terms:
    return Terms(payee=PAYEE, token=TOKEN, amount_due=amount_due, due_date=CREATED + 86_400 * 30, version=version)


def invoice_documents(invoice_id: str, salt: bytes, *, credit: bool = True, void: bool = False) -> list[dict[str, Any]]:
    """invoice_issued (v1), optionally a credit note (v2), optionally a void."""
    common = {"ledger_id": ledger_service.ledger_key(LEDGER_ID), "created": CREATED}
    envelope = {"invoice_id": invoice_id, "salt": salt}
    documents = [
        build_document(
            EntryKind.INVOICE_ISSUED,
            **common,
            **envelope,
            customer_id="cus_000001",
            currency="usd",
            lines=[
                {
                    "description": "Work",
                    "quantity": 1,
                    "unit_amount_minor": 10_000,
                    "tax_bps": 1_000,
                    "net_minor": 10_000,
                    "tax_minor": 1_000,
                }
            ],
            subtotal_minor=10_000,
            tax_minor=1_000,
            total_minor=11_000,
            due_date=CREATED + 86_400 * 30,
            token_decimals=2,
            terms=terms(1),
        )
    ]
    if credit:
        documents.append(
            build_document(
                EntryKind.CREDIT_NOTE,
                **common,
                **envelope,
                credit_note_id=f"cn_{invoice_id}",
                currency="usd",
                amount_minor=1_000,
                applied_minor=1_000,
                to_customer_credit_minor=0,
                reason="discount",
                terms=terms(2, 10_000),
            )
        )
    if void:
        documents.append(build_document(EntryKind.INVOICE_VOIDED, **common, **envelope, reason="cancelled"))
    return documents


def append_documents(setup: Setup, documents: list[dict[str, Any]], invoice_id: str | None = None) -> list[Any]:
    with transaction(setup.sessions) as session:
        return ledger_service.append_entries(
            session,
            ledger_id=LEDGER_ID,
            entries=[
                ledger_service.NewEntry(document, customer_id="cus_000001", invoice_id=invoice_id)
                for document in documents
            ],
        )


def tick_until(anchorer: Anchorer, done: Callable[[], bool], timeout_s: float = 20.0, pause_s: float = 0.02) -> None:
    """Tick (swallowing failures like the real loop does) until `done()`, or fail after the bound."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not done after {timeout_s} s; anchorer state: {anchorer.last_state}")
        anchorer._step()
        time.sleep(pause_s)


def anchored_size(setup: Setup, rpc_url: str | None = None) -> int:
    return int(setup.anchor_contract(rpc_url).functions.latest().call()[0])


def head_anchored_events(setup: Setup, rpc_url: str | None = None) -> list[Any]:
    contract = setup.anchor_contract(rpc_url)
    return list(contract.events.HeadAnchored().get_logs(from_block=0))


def rpc(url: str, method: str, params: list[Any]) -> Any:
    return connect(url).provider.make_request(method, params)  # type: ignore[arg-type]


class RpcProxy:
    """A loopback HTTP proxy in front of an RPC endpoint; `down()` makes it drop every request
    (the connection is closed unanswered), `up()` forwards again. Plays an RPC outage without
    stopping the chain behind it."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.available = threading.Event()
        self.available.set()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if not proxy.available.is_set():
                    self.close_connection = True
                    self.connection.close()
                    return
                request = urllib.request.Request(proxy.target, body, {"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=10) as reply:
                    data = reply.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def down(self) -> None:
        self.available.clear()

    def up(self) -> None:
        self.available.set()


@contextmanager
def rpc_proxy(target: str) -> Iterator[RpcProxy]:
    proxy = RpcProxy(target)
    proxy.thread.start()
    try:
        yield proxy
    finally:
        proxy.server.shutdown()
        proxy.server.server_close()


# --- A small real ledger built through the API, anchored --------------------------------------

LINE = {"description": "Work", "quantity": 2, "unit_amount_minor": 5000, "tax_bps": 1000}


@dataclass
class World:
    """Ids of what `build_world` made: customers A and B, and invoices in several states."""

    ids: dict[str, str]
    admin: str
    partner_a: str


def api_app(setup: Setup) -> Any:
    from backend.app import create_app

    return create_app(setup.settings, engine=setup.engine)


def build_world(setup: Setup, client: Any) -> World:
    """Customers A and B; invoices: plain (A), credited + partly paid (A), voided (B), plain (B)."""
    from backend.services.keys import create_key

    with transaction(setup.sessions) as session:
        admin = create_key(session, role="admin")[1]
    headers = {"Authorization": f"Bearer {admin}"}

    def post(path: str, body: Any = None) -> dict[str, Any]:
        reply = client.post(path, json=body, headers=headers)
        assert reply.status_code == 200, reply.text
        return dict(reply.json())

    ids: dict[str, str] = {}
    for name in ("a", "b"):
        ids[f"customer_{name}"] = post(
            "/v1/customers", {"name": name.upper(), "currency": "usd", "payee_address": PAYEE}
        )["id"]
    for name, customer in (("plain_a", "a"), ("credited_a", "a"), ("voided_b", "b"), ("plain_b", "b")):
        ids[name] = post("/v1/invoices", {"customer": ids[f"customer_{customer}"], "lines": [LINE], "finalize": True})[
            "id"
        ]
    post("/v1/credit_notes", {"invoice": ids["credited_a"], "lines": [{**LINE, "quantity": 1}]})
    post(
        "/v1/payments",
        {
            "invoice": ids["credited_a"],
            "amount_minor": 1000,
            "currency": "usd",
            "method": "bank",
            "reference": "wire-1",
        },
    )
    post(f"/v1/invoices/{ids['voided_b']}/void", {"reason": "duplicate"})
    with transaction(setup.sessions) as session:
        partner_a = create_key(session, role="partner", customer_id=ids["customer_a"])[1]
    return World(ids, admin, partner_a)


def anchor_everything(setup: Setup, timeout_s: float = 30.0) -> None:
    anchorer = setup.anchorer(entries_max=1)
    size = setup.head_size()
    tick_until(anchorer, lambda: anchored_size(setup) == size and anchorer.tick() == "idle", timeout_s)
    anchorer.close()


def create_database(admin_url: str, template: str | None = None) -> str:
    """A new, uniquely named PostgreSQL database (empty, or a copy of `template`)."""
    import uuid

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    name = f"tally_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_size=1)
    with admin.connect() as connection:
        suffix = f' TEMPLATE "{make_url(template).database}"' if template else ""
        connection.execute(text(f'CREATE DATABASE "{name}"{suffix}'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_size=1)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()
