"""Sample documents and entries shared by the ledger tests (fixed values, no randomness)."""

from __future__ import annotations

from typing import Any

from ledger.entries import EntryKind, build_document
from ledger.terms import Terms

LEDGER_ID = bytes.fromhex("a1" * 32)
SALT = bytes.fromhex("5a" * 32)
PAYEE = "0x" + "11" * 20
TOKEN = "0x" + "22" * 20
CREATED = 1_767_225_600  # 2026-01-01T00:00:00Z


def sample_terms(**overrides: Any) -> Terms:
    fields: dict[str, Any] = {
        "payee": PAYEE,
        "token": TOKEN,
        "amount_due": 11_000_000,
        "due_date": CREATED + 30 * 86_400,
        "discount_bps": 200,
        "discount_deadline": CREATED + 10 * 86_400,
        "late_fee_bps": 100,
        "late_fee_period": 30 * 86_400,
        "late_fee_periods_max": 6,
        "partial_allowed": True,
    }
    fields.update(overrides)
    return Terms(**fields)


def invoice_issued_document(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "invoice_id": "inv_0001",
        "salt": SALT,
        "customer_id": "cus_0001",
        "currency": "usd",
        "lines": [
            {
                "description": "Widgets",
                "quantity": 4,
                "unit_amount_minor": 2_500,
                "tax_bps": 1_000,
                "net_minor": 10_000,
                "tax_minor": 1_000,
            }
        ],
        "subtotal_minor": 10_000,
        "tax_minor": 1_000,
        "total_minor": 11_000,
        "due_date": CREATED + 30 * 86_400,
        "token_decimals": 6,
        "terms": sample_terms(),
    }
    fields.update(overrides)
    return build_document(EntryKind.INVOICE_ISSUED, ledger_id=LEDGER_ID, created=CREATED, **fields)


def payment_booked_document(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "invoice_id": "inv_0001",
        "salt": SALT,
        "payment_id": "pay_0001",
        "currency": "usd",
        "amount_minor": 5_000,
        "source": "offchain",
        "reference": "bank transfer 42",
    }
    fields.update(overrides)
    return build_document(EntryKind.PAYMENT_BOOKED, ledger_id=LEDGER_ID, created=CREATED, **fields)
