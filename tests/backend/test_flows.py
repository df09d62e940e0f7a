"""Business flows through the API behave the same on PostgreSQL and SQLite: books balance, entries verify."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from api_support import PAYEE, TOKEN, Api
from typer.testing import CliRunner

from backend import cli_keys
from backend.audit import database_input, run_audit
from backend.services.keys import ensure_admin_key
from ledger import merkle
from ledger.canonical import canonical_json
from ledger.entries import Entry

LINES = [
    {"description": "Consulting", "quantity": 3, "unit_amount_minor": 3333, "tax_bps": 1950},  # tax 1949.805 -> 1950
    {"description": "Travel", "quantity": 1, "unit_amount_minor": 1001, "tax_bps": 0},
]


def entries_of(api: Api, invoice: str) -> list[dict[str, Any]]:
    return list(api.get(f"/v1/ledger/entries?invoice={invoice}&limit=100").json()["data"])


def assert_books_balance(api: Api) -> dict[tuple[str, str], int]:
    balances = api.get("/v1/journal/balances").json()
    assert balances["unbalanced"] == {}
    return {(row["account"], row["currency"]): row["balance_minor"] for row in balances["data"]}


def test_invoice_lifecycle_terms_and_ledger(any_api: Api) -> None:
    customer = any_api.customer()["id"]
    draft = any_api.post("/v1/invoices", {"customer": customer, "lines": LINES[:1]}).json()
    assert draft["status"] == "draft" and draft["number"] is None and draft["total_minor"] == 9999 + 1950
    updated = any_api.post(f"/v1/invoices/{draft['id']}", {"lines": LINES, "description": "March"}).json()
    assert (updated["subtotal_minor"], updated["tax_minor"], updated["total_minor"]) == (11000, 1950, 12950)
    doomed = any_api.invoice(customer)["id"]
    assert any_api.delete(f"/v1/invoices/{doomed}").json() == {"id": doomed, "object": "invoice", "deleted": True}
    assert any_api.get(f"/v1/invoices/{doomed}").status_code == 404

    issued = any_api.post(f"/v1/invoices/{draft['id']}/finalize").json()
    assert issued["status"] == "open" and issued["number"] == "INV-000001" and issued["terms_version"] == 1
    terms = issued["terms"]
    assert terms["payee"] == PAYEE and terms["amount_due"] == "12950" and terms["version"] == 1
    assert terms["token"] == "0x" + "00" * 20 and issued["token_decimals"] == 2  # no settlement: minor units
    assert any_api.post("/v1/invoices", {"customer": customer, "lines": LINES, "finalize": True}).json()["number"] == (
        "INV-000002"
    )
    (entry,) = entries_of(any_api, issued["id"])
    assert entry["kind"] == "invoice_issued" and entry["sequence"] == issued["issued_entry"]
    assert "0x" + hashlib.sha256(canonical_json(entry["document"])).hexdigest() == entry["document_hash"]
    checked = Entry(entry["sequence"], entry["document"])
    assert (
        "0x" + checked.leaf_input().hex() == entry["leaf_input"]
        and "0x" + checked.subject.hex() == issued["invoice_key"]
    )
    books = assert_books_balance(any_api)
    assert books[("accounts_receivable", "usd")] == 2 * 12950
    assert books[("revenue", "usd")] == -2 * 11000 and books[("tax_payable", "usd")] == -2 * 1950


def test_notes_payments_reversal_and_customer_credit(any_api: Api) -> None:
    customer = any_api.customer()["id"]
    invoice = any_api.invoice(customer, finalize=True)  # 2 x 5000 + 10% tax = 11000
    discount = [{"description": "Discount", "unit_amount_minor": 1000}]
    credit = any_api.post("/v1/credit_notes", {"invoice": invoice["id"], "reason": "late", "lines": discount})
    assert credit.status_code == 200 and credit.json()["terms_version"] == 2
    shipping = [{"description": "Shipping", "unit_amount_minor": 500}]
    debit = any_api.post("/v1/debit_notes", {"invoice": invoice["id"], "lines": shipping}).json()
    assert debit["object"] == "debit_note" and debit["id"].startswith("dn_") and debit["terms_version"] == 3
    current = any_api.get(f"/v1/invoices/{invoice['id']}").json()
    assert current["amount_due_minor"] == 11000 - 1000 + 500 and current["terms"]["amount_due"] == "10500"

    def pay(amount: int, reference: str) -> dict[str, Any]:
        reply = any_api.post("/v1/payments", {"invoice": invoice["id"], "amount_minor": amount, "currency": "usd",
                                              "method": "bank", "reference": reference})  # fmt: skip
        assert reply.status_code == 200, reply.text
        return dict(reply.json())

    first = pay(4000, "bank-1")
    assert any_api.get(f"/v1/invoices/{invoice['id']}").json()["status"] == "partially_paid"
    second = pay(7000, "bank-2")  # 6500 due: 500 over
    assert (second["applied_minor"], second["to_credit_minor"]) == (6500, 500)
    paid = any_api.get(f"/v1/invoices/{invoice['id']}").json()
    assert paid["status"] == "paid" and paid["amount_due_minor"] == 0 and paid["paid_at"] is not None
    assert any_api.get(f"/v1/customers/{customer}").json()["credit_balance_minor"] == 500
    kinds = [entry["kind"] for entry in entries_of(any_api, invoice["id"])]
    assert kinds == ["invoice_issued", "credit_note", "debit_note", "payment_booked", "terms_updated",
                     "payment_booked", "terms_updated"]  # fmt: skip

    reversed_ = any_api.post(f"/v1/payments/{second['id']}/reverse", {"reason": "chargeback"}).json()
    assert reversed_["status"] == "reversed" and reversed_["reversal_entry"] is not None
    again = any_api.get(f"/v1/invoices/{invoice['id']}").json()
    assert again["status"] == "partially_paid" and again["amount_due_minor"] == 6500
    assert any_api.get(f"/v1/customers/{customer}").json()["credit_balance_minor"] == 0
    assert any_api.post(f"/v1/payments/{second['id']}/reverse").json()["error"]["code"] == "payment_already_reversed"
    assert first["entry"] < second["entry"]
    books = assert_books_balance(any_api)
    assert books[("accounts_receivable", "usd")] == 6500 and books[("cash", "usd")] == 4000

    over_credit = {"invoice": invoice["id"], "allow_customer_credit": True,
                   "lines": [{"description": "Refund", "unit_amount_minor": 7000}]}  # fmt: skip
    note = any_api.post("/v1/credit_notes", over_credit).json()
    assert note["excess_to_credit_minor"] == 500
    assert any_api.get(f"/v1/invoices/{invoice['id']}").json()["status"] == "paid"
    assert assert_books_balance(any_api)[("customer_credit", "usd")] == -500


def test_void_and_write_off(any_api: Api) -> None:
    customer = any_api.customer()["id"]
    voided = any_api.invoice(customer, finalize=True)["id"]
    assert any_api.post(f"/v1/invoices/{voided}/void", {"reason": "wrong customer"}).json()["status"] == "void"
    assert entries_of(any_api, voided)[-1]["kind"] == "invoice_voided"
    draft = any_api.invoice(customer)["id"]
    assert any_api.post(f"/v1/invoices/{draft}/void").json()["status"] == "void"  # a draft leaves no entry
    assert entries_of(any_api, draft) == []
    books = assert_books_balance(any_api)
    assert books.get(("accounts_receivable", "usd"), 0) == 0 and books.get(("revenue", "usd"), 0) == 0

    bad = any_api.invoice(customer, finalize=True)["id"]
    written = any_api.post(f"/v1/invoices/{bad}/mark_uncollectible").json()
    assert written["status"] == "uncollectible" and written["written_off_minor"] == 11000
    assert assert_books_balance(any_api)[("bad_debt", "usd")] == 11000
    any_api.post("/v1/payments", {"invoice": bad, "amount_minor": 11000, "currency": "usd", "method": "card",
                                  "reference": "late-recovery"})  # fmt: skip
    assert any_api.get(f"/v1/invoices/{bad}").json()["status"] == "paid"
    books = assert_books_balance(any_api)
    assert books[("bad_debt", "usd")] == 0 and books[("cash", "usd")] == 11000


def test_a_payment_reversed_after_the_write_off_goes_to_bad_debt_and_the_audit_agrees(any_api: Api) -> None:
    """Pay 40, write off 60, reverse the 40, recover 100: the receivable ends at zero and so does
    bad debt (nothing was lost), `written_off_minor` says 100, and the audit replays it all."""
    customer = any_api.customer()["id"]
    lines = [{"description": "Work", "unit_amount_minor": 100}]
    invoice = any_api.post("/v1/invoices", {"customer": customer, "finalize": True, "lines": lines}).json()

    def pay(amount_minor: int, reference: str) -> str:
        body = {"invoice": invoice["id"], "amount_minor": amount_minor, "currency": "usd", "method": "bank",
                "reference": reference}  # fmt: skip
        reply = any_api.post("/v1/payments", body)
        assert reply.status_code == 200, reply.text
        return str(reply.json()["id"])

    early = pay(40, "wire-40")
    assert any_api.post(f"/v1/invoices/{invoice['id']}/mark_uncollectible").json()["written_off_minor"] == 60
    reply = any_api.post(f"/v1/payments/{early}/reverse", {"reason": "returned by the bank"})
    assert reply.status_code == 200, reply.text
    after = any_api.get(f"/v1/invoices/{invoice['id']}").json()
    assert (after["status"], after["written_off_minor"], after["amount_due_minor"]) == ("uncollectible", 100, 100)
    books = assert_books_balance(any_api)
    assert (books.get(("accounts_receivable", "usd"), 0), books[("bad_debt", "usd")]) == (0, 100)
    kinds = [entry["kind"] for entry in entries_of(any_api, invoice["id"])]
    assert kinds == ["invoice_issued", "payment_booked", "terms_updated", "write_off", "payment_reversed", "write_off"]

    pay(100, "wire-100")
    assert any_api.get(f"/v1/invoices/{invoice['id']}").json()["status"] == "paid"
    books = assert_books_balance(any_api)
    assert (books.get(("accounts_receivable", "usd"), 0), books.get(("bad_debt", "usd"), 0)) == (0, 0)
    assert books[("cash", "usd")] == 100
    report = run_audit(database_input(any_api.app.state.tally.sessions, "test-ledger"), chain=None)
    assert (report.ok, report.findings, report.invoices) == (True, [], 1)


def test_settlement_terms_in_token_units(any_api: Api) -> None:
    customer = any_api.customer(currency="eur")["id"]
    settlement = {"chain_id": 31337, "token": TOKEN.upper().replace("0X", "0x"), "token_decimals": 6}
    options = {"discount_bps": 200, "discount_deadline": 1_900_000_000, "partial_allowed": True}
    invoice = any_api.post("/v1/invoices", {"customer": customer, "currency": "eur", "lines": LINES, "finalize": True,
                                            "settlement": settlement, "terms": options}).json()  # fmt: skip
    terms = invoice["terms"]
    assert terms["token"] == TOKEN and terms["amount_due"] == str(12950 * 10**4) and terms["discount_bps"] == 200
    assert terms["partial_allowed"] is True and invoice["token_decimals"] == 6


def test_lists_page_with_starting_after(any_api: Api) -> None:
    created = [any_api.customer(name=f"C{n}", external_id=f"crm-{n}")["id"] for n in range(5)]
    seen, cursor = [], None
    while True:
        page = any_api.get("/v1/customers?limit=2" + (f"&starting_after={cursor}" if cursor else "")).json()
        assert page["object"] == "list" and page["url"] == "/v1/customers" and len(page["data"]) <= 2
        seen += [item["id"] for item in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["data"][-1]["id"]
    assert seen == list(reversed(created))  # newest first, each once
    found = any_api.get("/v1/customers?external_id=crm-3").json()["data"]
    assert [item["id"] for item in found] == [created[3]]
    duplicate = any_api.post("/v1/customers", {"name": "X", "currency": "usd", "external_id": "crm-3"})
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "external_id_taken"


def test_credit_limit_change_is_an_entry(any_api: Api) -> None:
    customer = any_api.customer(credit_limit_minor=1000)["id"]
    changed = any_api.post(f"/v1/customers/{customer}", {"credit_limit_minor": 5000, "credit_limit_reason": "review"})
    assert changed.json()["credit_limit_minor"] == 5000
    kinds = [e["kind"] for e in any_api.get(f"/v1/ledger/entries?customer={customer}").json()["data"]]
    assert kinds == ["customer_created", "credit_limit_changed", "credit_limit_changed"]


def test_proofs_and_export_verify(any_api: Api) -> None:
    customer = any_api.customer()["id"]
    for _ in range(6):
        any_api.invoice(customer, finalize=True)
    head = any_api.get("/v1/ledger/head").json()
    assert head["tree_size"] == 7
    for index in range(7):
        proof = any_api.get(f"/v1/ledger/entries/{index}/proof?tree_size=5" if index < 5 else
                            f"/v1/ledger/entries/{index}/proof").json()  # fmt: skip
        assert merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"][2:]), index, proof["tree_size"],
                                       [bytes.fromhex(h[2:]) for h in proof["inclusion_proof"]],
                                       bytes.fromhex(proof["root"][2:]))  # fmt: skip
    for first in range(1, 8):
        proof = any_api.get(f"/v1/ledger/consistency?first={first}").json()
        assert merkle.verify_consistency(first, 7, bytes.fromhex(proof["first_root"][2:]),
                                         bytes.fromhex(head["root"][2:]),
                                         [bytes.fromhex(h[2:]) for h in proof["consistency_proof"]])  # fmt: skip
        assert proof["first_root"] == any_api.get(f"/v1/ledger/heads/{first}").json()["root"]
    exported = [json.loads(line) for line in any_api.get("/v1/ledger/export").text.splitlines()]
    entries = [item for item in exported if item.get("object") == "ledger_entry"]
    assert [item["sequence"] for item in entries] == list(range(7))
    log = merkle.MerkleLog()
    log.append_many(bytes.fromhex(item["leaf_input"][2:]) for item in entries)
    assert "0x" + log.root().hex() == head["root"]
    (tail,) = [item for item in exported if item.get("object") == "ledger_head"]
    assert (tail["tree_size"], tail["root"]) == (7, head["root"])


def test_idempotent_replay_on_both_backends(any_api: Api) -> None:
    customer = any_api.customer()["id"]
    body = {"customer": customer, "lines": LINES, "finalize": True}
    first = any_api.post("/v1/invoices", body, headers={"Idempotency-Key": "same"})
    second = any_api.post("/v1/invoices", body, headers={"Idempotency-Key": "same"})
    assert first.content == second.content and second.headers["Idempotent-Replayed"] == "true"
    reused = any_api.post("/v1/invoices", {**body, "finalize": False}, headers={"Idempotency-Key": "same"})
    assert reused.status_code == 400 and reused.json()["error"]["code"] == "idempotency_key_reused"
    failed = any_api.post("/v1/invoices", {**body, "currency": "eur"}, headers={"Idempotency-Key": "retry-me"})
    assert failed.status_code == 400
    retried = any_api.post("/v1/invoices", body, headers={"Idempotency-Key": "retry-me"})
    assert retried.status_code == 200  # a failed request releases its key
    assert len(any_api.get("/v1/invoices").json()["data"]) == 2


def test_keys_cli_and_first_admin_key(database_url: str, monkeypatch: Any) -> None:
    from backend.app import create_app
    from backend.settings import Settings, get_settings

    monkeypatch.setenv("TALLY_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        app = create_app(Settings(database_url=database_url, rpc_url="http://127.0.0.1:9"))
        first = ensure_admin_key(app.state.tally.sessions)
        assert first is not None and first.startswith("tally_sk_")
        assert ensure_admin_key(app.state.tally.sessions) is None
        runner = CliRunner()
        created = runner.invoke(cli_keys.app, ["create", "--role", "auditor", "--name", "books"])
        assert created.exit_code == 0, created.output
        key_id, secret = created.output.split()[0], created.output.split()[-1]
        assert key_id.startswith("key_") and secret.startswith("tally_sk_")
        listed = runner.invoke(cli_keys.app, ["list"])
        assert key_id in listed.output and secret not in listed.output
        refused = runner.invoke(cli_keys.app, ["create", "--role", "partner"])
        assert refused.exit_code == 1
        assert runner.invoke(cli_keys.app, ["revoke", key_id]).exit_code == 0
        app.state.tally.engine.dispose()
    finally:
        get_settings.cache_clear()
