"""Bad input (amounts, currencies, ids, addresses, sizes, transitions): a 4xx in the error shape, nothing written."""

from __future__ import annotations

from typing import Any

import pytest
from api_support import Api, auth
from sqlalchemy import func, select

from backend.db import Base, transaction

LINE = {"description": "Work", "quantity": 1, "unit_amount_minor": 1000, "tax_bps": 0}
CHECKSUMMED = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def snapshot(api: Api) -> dict[str, int]:
    """Row counts of every table (idempotency records included)."""
    with transaction(api.app.state.tally.sessions) as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table)) for table in Base.metadata.sorted_tables
        }


def assert_refused(api: Api, reply: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert set(error) == {"type", "code", "message", "param"}
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


@pytest.fixture
def world(any_api: Api) -> dict[str, Any]:
    customer = any_api.customer()
    return {
        "customer": customer["id"],
        "draft": any_api.invoice(customer["id"])["id"],
        "open": any_api.invoice(customer["id"], finalize=True)["id"],
    }


def invoice_with_line(world: dict[str, Any], **line: Any) -> dict[str, Any]:
    return {"customer": world["customer"], "lines": [{**LINE, **line}]}


AMOUNT_CASES = [
    ("negative", -1, "parameter_out_of_range"),
    ("fraction", 1.5, "parameter_invalid_integer"),
    ("integral float", 100.0, "parameter_invalid_integer"),
    ("decimal string", "1.5", "parameter_invalid_integer"),
    ("digit string", "100", "parameter_invalid_integer"),
    ("boolean", True, "parameter_invalid_integer"),
    ("above uint256", 2**256, "parameter_out_of_range"),
    ("uint256 max, above a document's range", 2**256 - 1, "invalid_line_item"),
    ("above 2**53", 2**53, "invalid_line_item"),
]


@pytest.mark.parametrize(("case", "amount", "code"), AMOUNT_CASES, ids=[case[0] for case in AMOUNT_CASES])
def test_bad_amounts(any_api: Api, world: dict[str, Any], case: str, amount: Any, code: str) -> None:
    before = snapshot(any_api)
    reply = any_api.post("/v1/invoices", invoice_with_line(world, unit_amount_minor=amount))
    assert_refused(any_api, reply, 400, code)
    payment = {"invoice": world["open"], "amount_minor": amount, "currency": "usd", "method": "bank", "reference": "r"}
    assert_refused(any_api, any_api.post("/v1/payments", payment), 400)
    assert snapshot(any_api) == before


def test_zero_payment_refused(any_api: Api, world: dict[str, Any]) -> None:
    before = snapshot(any_api)
    payment = {"invoice": world["open"], "amount_minor": 0, "currency": "usd", "method": "bank", "reference": "r"}
    assert_refused(any_api, any_api.post("/v1/payments", payment), 400)
    assert snapshot(any_api) == before


CURRENCY_CASES = [
    ("customer", "/v1/customers", lambda w: {"name": "X", "currency": "xyz"}, 400, "unknown_currency"),
    ("no minor unit", "/v1/customers", lambda w: {"name": "X", "currency": "xau"}, 400, "unknown_currency"),
    ("not letters", "/v1/customers", lambda w: {"name": "X", "currency": "u$d"}, 400, "unknown_currency"),
    ("too long", "/v1/customers", lambda w: {"name": "X", "currency": "usdd"}, 400, None),
    ("invoice vs customer", "/v1/invoices", lambda w: {**invoice_with_line(w), "currency": "eur"}, 400,
     "currency_mismatch"),
    ("payment vs invoice", "/v1/payments", lambda w: {"invoice": w["open"], "amount_minor": 5, "currency": "eur",
                                                      "method": "bank", "reference": "r"}, 400, "currency_mismatch"),
    ("credit note vs invoice", "/v1/credit_notes", lambda w: {"invoice": w["open"], "lines": [LINE],
                                                              "currency": "jpy"}, 400, "currency_mismatch"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "path", "body", "status", "code"), CURRENCY_CASES, ids=[c[0] for c in CURRENCY_CASES])
def test_bad_currencies(any_api: Api, world: dict[str, Any], case: str, path: str, body: Any, status: int,
                        code: str | None) -> None:  # fmt: skip
    before = snapshot(any_api)
    assert_refused(any_api, any_api.post(path, body(world)), status, code)
    assert snapshot(any_api) == before


ID_AND_ADDRESS_CASES = [
    ("customer id too short", "/v1/invoices", lambda w: {"customer": "cus_123", "lines": [LINE]}, 400),
    ("customer id wrong prefix", "/v1/invoices", lambda w: {"customer": "inv_" + w["customer"][4:], "lines": []}, 400),
    ("unknown customer", "/v1/invoices", lambda w: {"customer": "cus_" + "0" * 24, "lines": []}, 404),
    ("invoice id with quote", "/v1/payments", lambda w: {"invoice": "inv_'; drop table x;--", "amount_minor": 1,
                                                         "currency": "usd", "method": "bank", "reference": "r"}, 400),
    ("short wallet", "/v1/customers", lambda w: {"name": "X", "currency": "usd", "wallet_addresses": ["0x1234"]}, 400),
    ("bad checksum", "/v1/customers", lambda w: {"name": "X", "currency": "usd",
                                                 "wallet_addresses": [CHECKSUMMED[:-1] + "c"]}, 400),
    ("non-hex payee", "/v1/customers", lambda w: {"name": "X", "currency": "usd", "payee_address": "0x" + "g" * 40},
     400),
    ("token not an address", "/v1/invoices", lambda w: {**invoice_with_line(w), "settlement": {
        "chain_id": 1, "token": "usdc", "token_decimals": 6}}, 400),
    ("unknown field", "/v1/customers", lambda w: {"name": "X", "currency": "usd", "colour": "red"}, 400),
    ("nested unknown field", "/v1/invoices", lambda w: invoice_with_line(w, discount=5), 400),
    ("control character", "/v1/customers", lambda w: {"name": "A\x00B", "currency": "usd"}, 400),
    ("wrong role", "/v1/api_keys", lambda w: {"role": "root"}, 400),
    ("partner key without customer", "/v1/api_keys", lambda w: {"role": "partner"}, 400),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "path", "body", "status"), ID_AND_ADDRESS_CASES, ids=[c[0] for c in ID_AND_ADDRESS_CASES]
)
def test_bad_ids_addresses_and_fields(any_api: Api, world: dict[str, Any], case: str, path: str, body: Any,
                                      status: int) -> None:  # fmt: skip
    before = snapshot(any_api)
    assert_refused(any_api, any_api.post(path, body(world)), status)
    assert snapshot(any_api) == before


def test_malformed_path_ids_are_404(any_api: Api) -> None:
    for path in ("/v1/invoices/inv_bad", "/v1/customers/123", "/v1/payments/pay_" + "x" * 30,
                 "/v1/credit_notes/dn_" + "0" * 24, "/v1/ledger/entries/ent_zz", "/v1/ledger/entries/99"):  # fmt: skip
        assert_refused(any_api, any_api.get(path), 404)
    assert_refused(any_api, any_api.get("/v1/invoices?limit=0"), 400, "parameter_out_of_range")
    assert_refused(any_api, any_api.get("/v1/invoices?limit=101"), 400, "parameter_out_of_range")
    assert_refused(any_api, any_api.get("/v1/invoices?starting_after=inv_" + "0" * 24), 404)
    assert_refused(any_api, any_api.get("/v1/ledger/heads/5"), 400, "invalid_tree_range")
    assert_refused(any_api, any_api.get("/v1/ledger/consistency?first=3&second=1"), 400, "invalid_tree_range")
    assert_refused(any_api, any_api.get("/v1/nothing-here"), 404, "route_not_found")


def test_oversize_and_malformed_bodies(any_api: Api, world: dict[str, Any]) -> None:
    before = snapshot(any_api)
    huge = {"name": "X" * 2_000_000, "currency": "usd"}
    assert_refused(any_api, any_api.post("/v1/customers", huge), 413, "body_too_large")

    def chunks() -> Any:  # no Content-Length: counted as it streams in
        yield b'{"name": "'
        for _ in range(40):
            yield b"y" * 50_000
        yield b'", "currency": "usd"}'

    reply = any_api.client.post("/v1/customers", content=chunks(),
                                headers={**auth(any_api.admin), "Content-Type": "application/json"})  # fmt: skip
    assert_refused(any_api, reply, 413, "body_too_large")
    reply = any_api.client.post("/v1/customers", content=b'{"name": "X", "currency": ',
                                headers={**auth(any_api.admin), "Content-Type": "application/json"})  # fmt: skip
    assert_refused(any_api, reply, 400, "body_invalid_json")
    # What `curl -d` sends: a form content type. Refused, saying the body must be JSON.
    form = {**auth(any_api.admin), "Content-Type": "application/x-www-form-urlencoded"}
    reply = any_api.client.post("/v1/customers", content=b'{"name": "X", "currency": "usd"}', headers=form)
    assert_refused(any_api, reply, 400, "body_invalid")
    assert "must be JSON" in reply.json()["error"]["message"]
    many = {"invoices": [invoice_with_line(world)] * 1001}
    assert_refused(any_api, any_api.post("/v1/invoices/bulk", many), 400)
    assert snapshot(any_api) == before


def test_illegal_transitions(any_api: Api, world: dict[str, Any]) -> None:
    paid = any_api.invoice(world["customer"], finalize=True)
    any_api.post("/v1/payments", {"invoice": paid["id"], "amount_minor": paid["total_minor"], "currency": "usd",
                                  "method": "bank", "reference": "paid-in-full"})  # fmt: skip
    void = any_api.invoice(world["customer"], finalize=True)["id"]
    assert any_api.post(f"/v1/invoices/{void}/void").status_code == 200
    before = snapshot(any_api)
    cases = [
        ("POST", f"/v1/invoices/{world['open']}/finalize", None, "illegal_transition"),
        ("POST", f"/v1/invoices/{world['open']}", {"description": "x"}, "illegal_transition"),
        ("DELETE", f"/v1/invoices/{world['open']}", None, "illegal_transition"),
        ("POST", f"/v1/invoices/{paid['id']}/void", None, "illegal_transition"),
        ("POST", f"/v1/invoices/{void}/void", None, "illegal_transition"),
        ("POST", f"/v1/invoices/{void}/mark_uncollectible", None, "illegal_transition"),
        ("POST", f"/v1/invoices/{world['draft']}/mark_uncollectible", None, "illegal_transition"),
        ("POST", "/v1/credit_notes", {"invoice": world["draft"], "lines": [LINE]}, "illegal_transition"),
        ("POST", "/v1/debit_notes", {"invoice": void, "lines": [LINE]}, "illegal_transition"),
        ("POST", "/v1/payments", {"invoice": void, "amount_minor": 1, "currency": "usd", "method": "bank",
                                  "reference": "late"}, "illegal_transition"),
        ("POST", "/v1/credit_notes", {"invoice": world["open"], "lines": [{**LINE, "unit_amount_minor": 10**9}]},
         "credit_exceeds_balance"),
        ("POST", "/v1/payments", {"invoice": world["open"], "amount_minor": 1, "currency": "usd", "method": "bank",
                                  "reference": "paid-in-full"}, "payment_already_booked"),
        ("POST", f"/v1/invoices/{world['draft']}/receipt", None, None),
    ]  # fmt: skip
    for method, path, body, code in cases:
        reply = any_api.client.request(method, path, json=body, headers=auth(any_api.admin))
        status = 405 if path.endswith("/receipt") else 409
        assert_refused(any_api, reply, status, code)
    assert snapshot(any_api) == before


def test_finalize_refusals_write_nothing(any_api: Api, world: dict[str, Any]) -> None:
    no_payee = any_api.post("/v1/customers", {"name": "No payee", "currency": "usd"}).json()["id"]
    draft = any_api.invoice(no_payee)["id"]
    empty = any_api.post("/v1/invoices", {"customer": world["customer"]}).json()["id"]
    limited = any_api.customer(credit_limit_minor=15_000)["id"]
    first = any_api.invoice(limited, finalize=True)  # 11,000 of 15,000 used
    assert first["status"] == "open"
    over = any_api.invoice(limited)["id"]
    before = snapshot(any_api)
    assert_refused(any_api, any_api.post(f"/v1/invoices/{draft}/finalize"), 400, "payee_missing")
    assert_refused(any_api, any_api.post(f"/v1/invoices/{empty}/finalize"), 400, "invoice_empty")
    assert_refused(any_api, any_api.post(f"/v1/invoices/{over}/finalize"), 409, "credit_limit_exceeded")
    bulk = {"invoices": [invoice_with_line(world), {"customer": no_payee, "lines": [LINE]}]}
    assert_refused(any_api, any_api.post("/v1/invoices/bulk", bulk), 400, "payee_missing")
    assert snapshot(any_api) == before
