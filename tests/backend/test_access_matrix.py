"""Every route x every role (admin, backoffice, auditor, own/other partner, no key) is allowed or denied as designed."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from api_support import Api

ROLES = ("admin", "backoffice", "auditor", "own", "other", "none")
STAFF = frozenset({"admin", "backoffice", "auditor"})
WRITERS = frozenset({"admin", "backoffice"})
ADMIN = frozenset({"admin"})
EVERYONE = STAFF | {"own", "other"}

LINE = {"description": "Work", "quantity": 1, "unit_amount_minor": 1000, "tax_bps": 0}


@dataclass
class Route:
    method: str
    template: str  # the route's path as FastAPI declares it
    path: Callable[[Api, dict[str, Any]], str]
    allowed: frozenset[str]
    body: Callable[[Api, dict[str, Any]], Any] | None = None
    # Object routes on customer A's data: a partner of customer B gets 404 (it does not exist for them).
    hidden_from_other: bool = False
    # List routes partners may call: each sees only its own customer's objects.
    partner_filtered_list: bool = False
    ok_status: frozenset[int] = field(default_factory=lambda: frozenset({200}))


def fresh_draft(api: Api, world: dict[str, Any]) -> str:
    return api.invoice(world["customer_a"])["id"]


def fresh_open(api: Api, world: dict[str, Any]) -> str:
    return api.invoice(world["customer_a"], finalize=True)["id"]


def fresh_payment(api: Api, world: dict[str, Any]) -> str:
    invoice = fresh_open(api, world)
    reply = api.post("/v1/payments", {"invoice": invoice, "amount_minor": 100, "currency": "usd", "method": "bank",
                                      "reference": f"ref-{invoice}"})  # fmt: skip
    return reply.json()["id"]


def fresh_key(api: Api, world: dict[str, Any]) -> str:
    return api.post("/v1/api_keys", {"role": "auditor"}).json()["id"]


# --- Settlement (issue 7): a registered token and a chain payment of customer A in suspense -------
def fresh_token(api: Api, world: dict[str, Any]) -> str:
    body = {"chain_id": 31337, "address": "0x" + secrets.token_hex(20), "currency": "usd", "decimals": 6,
            "is_default": False}  # fmt: skip
    return api.post("/v1/settlement_tokens", body).json()["id"]


def fresh_chain_payment(api: Api, world: dict[str, Any], booked: bool = False) -> str:
    from backend.db import transaction
    from backend.models import ChainPayment

    token = api.get(f"/v1/settlement_tokens/{fresh_token(api, world)}").json()["address"]
    row_id = f"cpm_{secrets.token_hex(12)}"
    with transaction(api.app.state.tally.sessions) as session:
        session.add(ChainPayment(
            id=row_id, chain_id=31337, tx_hash=secrets.token_bytes(32), log_index=0, block_number=1,
            block_hash=secrets.token_bytes(32), block_timestamp=1, source="transfer", token=token,
            payer="0x" + "ab" * 20, payee="0x" + "cd" * 20, amount_token="1000000", status="suspense",
            currency="usd", amount_minor=100, customer_id=world["customer_a"], adjustment_minor=0, bookings=0,
            created_ms=1, updated_ms=1))  # fmt: skip
    if booked:
        api.post(f"/v1/chain_payments/{row_id}/apply", {"invoice": fresh_open(api, world)})
    return row_id


def const(path: str) -> Callable[[Api, dict[str, Any]], str]:
    return lambda api, world: path.format(**world)


ROUTES = [
    Route("POST", "/v1/customers", const("/v1/customers"), WRITERS, body=lambda a, w: {"name": "N", "currency": "usd"}),
    Route("GET", "/v1/customers", const("/v1/customers"), STAFF),
    Route("GET", "/v1/customers/{customer_id}", const("/v1/customers/{customer_a}"), STAFF | {"own"},
          hidden_from_other=True),
    Route("POST", "/v1/customers/{customer_id}", const("/v1/customers/{customer_a}"), WRITERS,
          body=lambda a, w: {"name": "Renamed"}),
    Route("POST", "/v1/invoices", const("/v1/invoices"), WRITERS,
          body=lambda a, w: {"customer": w["customer_a"], "lines": [LINE]}),
    Route("POST", "/v1/invoices/bulk", const("/v1/invoices/bulk"), WRITERS,
          body=lambda a, w: {"invoices": [{"customer": w["customer_a"], "lines": [LINE]}]}),
    Route("GET", "/v1/invoices", const("/v1/invoices"), EVERYONE, partner_filtered_list=True),
    Route("GET", "/v1/invoices/{invoice_id}", const("/v1/invoices/{invoice_a}"), STAFF | {"own"},
          hidden_from_other=True),
    Route("POST", "/v1/invoices/{invoice_id}", lambda a, w: f"/v1/invoices/{fresh_draft(a, w)}", WRITERS,
          body=lambda a, w: {"description": "changed"}),
    Route("DELETE", "/v1/invoices/{invoice_id}", lambda a, w: f"/v1/invoices/{fresh_draft(a, w)}", WRITERS),
    Route("POST", "/v1/invoices/{invoice_id}/finalize", lambda a, w: f"/v1/invoices/{fresh_draft(a, w)}/finalize",
          WRITERS),
    Route("POST", "/v1/invoices/{invoice_id}/void", lambda a, w: f"/v1/invoices/{fresh_open(a, w)}/void", WRITERS),
    Route("POST", "/v1/invoices/{invoice_id}/mark_uncollectible",
          lambda a, w: f"/v1/invoices/{fresh_open(a, w)}/mark_uncollectible", WRITERS),
    Route("GET", "/v1/invoices/{invoice_id}/receipt", const("/v1/invoices/{invoice_a}/receipt"), STAFF | {"own"},
          hidden_from_other=True, ok_status=frozenset({409})),  # not anchored yet (issue 6)
    Route("POST", "/v1/credit_notes", const("/v1/credit_notes"), WRITERS,
          body=lambda a, w: {"invoice": fresh_open(a, w), "lines": [LINE]}),
    Route("GET", "/v1/credit_notes", const("/v1/credit_notes"), EVERYONE, partner_filtered_list=True),
    Route("GET", "/v1/credit_notes/{note_id}", const("/v1/credit_notes/{credit_note_a}"), STAFF | {"own"},
          hidden_from_other=True),
    Route("POST", "/v1/debit_notes", const("/v1/debit_notes"), WRITERS,
          body=lambda a, w: {"invoice": fresh_open(a, w), "lines": [LINE]}),
    Route("GET", "/v1/debit_notes", const("/v1/debit_notes"), EVERYONE, partner_filtered_list=True),
    Route("GET", "/v1/debit_notes/{note_id}", const("/v1/debit_notes/{debit_note_a}"), STAFF | {"own"},
          hidden_from_other=True),
    Route("POST", "/v1/payments", const("/v1/payments"), WRITERS,
          body=lambda a, w: {"invoice": fresh_open(a, w), "amount_minor": 100, "currency": "usd", "method": "card",
                             "reference": f"card-{len(w)}-{id(a)}-{fresh_draft(a, w)}"}),
    Route("GET", "/v1/payments", const("/v1/payments"), EVERYONE, partner_filtered_list=True),
    Route("GET", "/v1/payments/{payment_id}", const("/v1/payments/{payment_a}"), STAFF | {"own"},
          hidden_from_other=True),
    Route("POST", "/v1/payments/{payment_id}/reverse", lambda a, w: f"/v1/payments/{fresh_payment(a, w)}/reverse",
          WRITERS),
    Route("GET", "/v1/ledger/entries", const("/v1/ledger/entries"), STAFF),
    Route("GET", "/v1/ledger/export", const("/v1/ledger/export"), STAFF),
    Route("GET", "/v1/ledger/entries/{entry}", const("/v1/ledger/entries/0"), STAFF),
    Route("GET", "/v1/ledger/entries/{entry}/proof", const("/v1/ledger/entries/0/proof"), STAFF),
    Route("GET", "/v1/ledger/entries/{entry}/receipt", const("/v1/ledger/entries/0/receipt"), STAFF | {"own"},
          hidden_from_other=True, ok_status=frozenset({409})),  # not anchored: no chain in this test
    Route("GET", "/v1/ledger/head", const("/v1/ledger/head"), EVERYONE),
    Route("GET", "/v1/ledger/heads/{tree_size}", const("/v1/ledger/heads/1"), EVERYONE),
    Route("GET", "/v1/ledger/consistency", const("/v1/ledger/consistency?first=1"), EVERYONE),
    Route("GET", "/v1/journal/balances", const("/v1/journal/balances"), STAFF),
    Route("GET", "/v1/anchors", const("/v1/anchors"), EVERYONE),
    Route("GET", "/v1/invoices/{invoice_id}/payment", const("/v1/invoices/{invoice_a}/payment"), STAFF | {"own"},
          hidden_from_other=True, ok_status=frozenset({409})),  # not anchored: no chain in this test
    Route("GET", "/v1/settlement_tokens", const("/v1/settlement_tokens"), EVERYONE),
    Route("POST", "/v1/settlement_tokens", const("/v1/settlement_tokens"), ADMIN,
          body=lambda a, w: {"chain_id": 31337, "address": "0x" + "ee" * 20, "currency": "usd", "decimals": 6,
                             "is_default": False}),
    Route("GET", "/v1/settlement_tokens/{token_id}", lambda a, w: f"/v1/settlement_tokens/{fresh_token(a, w)}",
          EVERYONE),
    Route("POST", "/v1/settlement_tokens/{token_id}", lambda a, w: f"/v1/settlement_tokens/{fresh_token(a, w)}",
          ADMIN, body=lambda a, w: {"symbol": "X"}),
    Route("DELETE", "/v1/settlement_tokens/{token_id}", lambda a, w: f"/v1/settlement_tokens/{fresh_token(a, w)}",
          ADMIN),
    Route("GET", "/v1/chain_payments", const("/v1/chain_payments"), EVERYONE, partner_filtered_list=True),
    Route("GET", "/v1/chain_payments/{chain_payment_id}",
          lambda a, w: f"/v1/chain_payments/{fresh_chain_payment(a, w)}", STAFF | {"own"}, hidden_from_other=True),
    Route("GET", "/v1/suspense", const("/v1/suspense"), STAFF),
    Route("POST", "/v1/chain_payments/{chain_payment_id}/apply",
          lambda a, w: f"/v1/chain_payments/{fresh_chain_payment(a, w)}/apply", WRITERS,
          body=lambda a, w: {"invoice": fresh_open(a, w)}),
    Route("POST", "/v1/chain_payments/{chain_payment_id}/unapply",
          lambda a, w: f"/v1/chain_payments/{fresh_chain_payment(a, w, booked=True)}/unapply", WRITERS),
    Route("POST", "/v1/api_keys", const("/v1/api_keys"), ADMIN, body=lambda a, w: {"role": "auditor"}),
    Route("GET", "/v1/api_keys", const("/v1/api_keys"), ADMIN),
    Route("GET", "/v1/api_keys/{key_id}", const("/v1/api_keys/{key_admin}"), ADMIN),
    Route("POST", "/v1/api_keys/{key_id}/revoke", lambda a, w: f"/v1/api_keys/{fresh_key(a, w)}/revoke", ADMIN),
]  # fmt: skip


def build_world(api: Api) -> tuple[dict[str, Any], dict[str, str | None]]:
    customer_a = api.customer(name="A")["id"]
    customer_b = api.customer(name="B")["id"]
    world: dict[str, Any] = {"customer_a": customer_a, "customer_b": customer_b}
    world["invoice_a"] = api.invoice(customer_a, finalize=True)["id"]
    world["invoice_b"] = api.invoice(customer_b, finalize=True)["id"]
    world["credit_note_a"] = api.post("/v1/credit_notes", {"invoice": world["invoice_a"], "lines": [LINE]}).json()["id"]
    world["debit_note_a"] = api.post("/v1/debit_notes", {"invoice": world["invoice_a"], "lines": [LINE]}).json()["id"]
    payment = {"invoice": world["invoice_a"], "amount_minor": 500, "currency": "usd", "method": "bank",
               "reference": "world-a"}  # fmt: skip
    world["payment_a"] = api.post("/v1/payments", payment).json()["id"]
    world["key_admin"] = api.get("/v1/api_keys").json()["data"][-1]["id"]
    keys: dict[str, str | None] = {
        "admin": api.admin,
        "backoffice": api.key("backoffice"),
        "auditor": api.key("auditor"),
        "own": api.key("partner", customer_a),
        "other": api.key("partner", customer_b),
        "none": None,
    }
    return world, keys


def expected_status(route: Route, role: str) -> set[int]:
    if role == "none":
        return {401}
    if role in route.allowed:
        return set(route.ok_status)
    if role == "other" and route.hidden_from_other:
        return {404}
    return {403}


def call(api: Api, route: Route, world: dict[str, Any], secret: str | None) -> Any:
    path = route.path(api, world)
    body = route.body(api, world) if route.body else None
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return api.client.request(route.method, path, json=body, headers=headers)


def test_matrix_covers_every_route(api: Api) -> None:
    declared = {
        (method.upper(), path)
        for path, operations in api.app.openapi()["paths"].items()
        if path.startswith("/v1/")
        for method in operations
    }
    covered = {(route.method, route.template) for route in ROUTES}
    assert declared - covered == set(), "routes missing from the access matrix"
    assert covered - declared == set(), "matrix rows for routes that do not exist"


def test_every_route_every_role(api: Api) -> None:
    world, keys = build_world(api)
    mismatches = []
    for route in ROUTES:
        for role in ROLES:
            reply = call(api, route, world, keys[role])
            wanted = expected_status(route, role)
            if reply.status_code not in wanted:
                mismatches.append(f"{route.method} {route.template} as {role}: {reply.status_code} not in {wanted}")
                continue
            if reply.status_code >= 400:
                error = reply.json()["error"]
                if set(error) != {"type", "code", "message", "param"}:
                    mismatches.append(f"{route.method} {route.template} as {role}: error shape {error}")
            if route.partner_filtered_list and role in ("own", "other"):
                customers = {item["customer"] for item in reply.json()["data"]}
                mine = world["customer_a"] if role == "own" else world["customer_b"]
                if customers - {mine}:
                    mismatches.append(f"{route.template} as {role} shows other customers' objects: {customers}")
    assert not mismatches, "\n".join(mismatches)


def test_partner_sees_own_objects_but_not_drafts(api: Api) -> None:
    world, keys = build_world(api)
    draft = api.invoice(world["customer_a"])["id"]
    own = api.get("/v1/invoices", key=keys["own"]).json()["data"]
    assert world["invoice_a"] in {item["id"] for item in own}
    assert draft not in {item["id"] for item in own}
    assert api.get(f"/v1/invoices/{draft}", key=keys["own"]).status_code == 404
    assert api.get(f"/v1/invoices/{world['invoice_b']}", key=keys["own"]).status_code == 404
    assert api.get(f"/v1/payments/{world['payment_a']}", key=keys["own"]).json()["customer"] == world["customer_a"]


def test_revoked_key_is_refused_at_once(api: Api) -> None:
    created = api.post("/v1/api_keys", {"role": "backoffice", "name": "temp"}).json()
    secret = created["secret"]
    assert secret.startswith("tally_sk_") and created["secret_prefix"] == secret[:13]
    assert api.get("/v1/customers", key=secret).status_code == 200
    assert api.post(f"/v1/api_keys/{created['id']}/revoke").json()["revoked_at"] is not None
    reply = api.get("/v1/customers", key=secret)
    assert reply.status_code == 401 and reply.json()["error"]["code"] == "api_key_invalid"
    assert (
        "secret" not in api.get(f"/v1/api_keys/{created['id']}").json()
        or api.get(f"/v1/api_keys/{created['id']}").json()["secret"] is None
    )
