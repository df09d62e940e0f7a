"""Rows -> public JSON objects (the shapes in backend.api.schemas)."""

from __future__ import annotations

from typing import Any

from backend.models import ApiKey, Customer, Invoice, InvoiceNote, LedgerEntry, Payment
from backend.services.invoices import amount_due
from ledger.entries import EntryKind
from ledger.hexutil import to_hex


def _hex(data: bytes | None) -> str | None:
    return None if data is None else to_hex(bytes(data))


def customer(row: Customer) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "customer",
        "name": row.name,
        "email": row.email,
        "external_id": row.external_id,
        "currency": row.currency,
        "wallet_addresses": list(row.wallet_addresses or []),
        "payee_address": row.payee_address,
        "credit_limit_minor": row.credit_limit_minor,
        "credit_balance_minor": row.credit_balance_minor,
        "metadata": dict(row.metadata_ or {}),
        "created": row.created,
    }


def invoice(row: Invoice) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "invoice",
        "customer": row.customer_id,
        "status": row.status,
        "currency": row.currency,
        "series": row.series,
        "number": row.number,
        "description": row.description,
        "lines": list(row.lines or []),
        "subtotal_minor": row.subtotal_minor,
        "tax_minor": row.tax_minor,
        "total_minor": row.total_minor,
        "credited_minor": row.credited_minor,
        "debited_minor": row.debited_minor,
        "paid_minor": row.paid_minor,
        "paid_onchain_minor": row.paid_onchain_minor,
        "written_off_minor": row.written_off_minor,
        "amount_due_minor": amount_due(row),
        "due_date": row.due_date,
        "days_until_due": row.days_until_due,
        "settlement": row.settlement,
        "terms_options": dict(row.terms_options or {}),
        "terms": row.terms,
        "terms_version": row.terms_version,
        "token_decimals": row.token_decimals,
        "invoice_key": _hex(row.invoice_key),
        "salt": _hex(row.salt),
        "issued_entry": row.issued_sequence,
        "metadata": dict(row.metadata_ or {}),
        "created": row.created,
        "finalized_at": row.finalized_at,
        "voided_at": row.voided_at,
        "marked_uncollectible_at": row.marked_uncollectible_at,
        "paid_at": row.paid_at,
    }


def note(row: InvoiceNote) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": row.type,
        "invoice": row.invoice_id,
        "customer": row.customer_id,
        "currency": row.currency,
        "lines": list(row.lines or []),
        "subtotal_minor": row.subtotal_minor,
        "tax_minor": row.tax_minor,
        "total_minor": row.total_minor,
        "excess_to_credit_minor": row.excess_to_credit_minor,
        "reason": row.reason,
        "terms_version": row.terms_version,
        "entry": row.entry_sequence,
        "metadata": dict(row.metadata_ or {}),
        "created": row.created,
    }


def payment(row: Payment) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "payment",
        "customer": row.customer_id,
        "invoice": row.invoice_id,
        "method": row.method,
        "reference": row.reference,
        "currency": row.currency,
        "amount_minor": row.amount_minor,
        "applied_minor": row.applied_minor,
        "to_credit_minor": row.to_credit_minor,
        "status": row.status,
        "description": row.description,
        "received_at": row.received_at,
        "entry": row.entry_sequence,
        "reversal_entry": row.reversal_entry_sequence,
        "metadata": dict(row.metadata_ or {}),
        "created": row.created,
        "reversed_at": row.reversed_at,
    }


def entry(row: LedgerEntry) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "ledger_entry",
        "sequence": row.sequence,
        "kind": EntryKind(row.kind).document_kind,
        "kind_code": row.kind,
        "subject": to_hex(bytes(row.subject)),
        "document": row.document,
        "document_hash": to_hex(bytes(row.document_hash)),
        "leaf_input": to_hex(bytes(row.leaf_input)),
        "leaf_hash": to_hex(bytes(row.leaf_hash)),
        "terms_version": row.terms_version,
        "customer": row.customer_id,
        "invoice": row.invoice_id,
        "created": row.created,
    }


def api_key(row: ApiKey, secret: str | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "api_key",
        "role": row.role,
        "customer": row.customer_id,
        "name": row.name,
        "secret_prefix": row.secret_prefix,
        "secret": secret,
        "created": row.created,
        "revoked_at": row.revoked_at,
    }
