"""Named errors of the ledger domain.

Every error derives from `LedgerError` and has a stable `code` string; the API maps the code to its
error shape (`{"error": {"type", "code", "message", "param"}}`), so codes never change once shipped.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every domain error; `code` is stable and machine-readable."""

    code: str = "ledger_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


# --- Money ------------------------------------------------------------------------------------
class FloatNotAllowed(LedgerError, TypeError):
    """A float reached a place where only integers (minor units) or decimal strings are allowed."""

    code = "float_not_allowed"


class InvalidAmount(LedgerError, ValueError):
    code = "invalid_amount"


class AmountOutOfRange(InvalidAmount):
    code = "amount_out_of_range"


class UnknownCurrency(LedgerError, ValueError):
    code = "unknown_currency"


class CurrencyMismatch(LedgerError, ValueError):
    code = "currency_mismatch"


class InexactConversion(LedgerError, ValueError):
    """A currency <-> token conversion would have to round; we refuse instead."""

    code = "inexact_conversion"


# --- Terms, documents, entries ----------------------------------------------------------------
class InvalidTerms(LedgerError, ValueError):
    code = "invalid_terms"


class InvalidAddress(LedgerError, ValueError):
    code = "invalid_address"


class InvalidDocument(LedgerError, ValueError):
    code = "invalid_document"


class InvalidEntry(LedgerError, ValueError):
    code = "invalid_entry"


class InvalidLeafInput(LedgerError, ValueError):
    code = "invalid_leaf_input"


# --- Merkle log -------------------------------------------------------------------------------
class InvalidTreeRange(LedgerError, ValueError):
    """A size, index or (m, n) pair outside what the tree (or uint64) allows."""

    code = "invalid_tree_range"


class InvalidProof(LedgerError, ValueError):
    """A proof is malformed (wrong length, not 32-byte hashes) or does not verify."""

    code = "invalid_proof"


class NodeMissing(LedgerError, LookupError):
    """The node store lacks a node that the log's size says must exist."""

    code = "node_missing"


class LogCorrupted(LedgerError):
    """An invariant of the append-only log failed: sequence gap, frontier/size mismatch, ..."""

    code = "log_corrupted"


# --- Receipts ---------------------------------------------------------------------------------
class ReceiptInvalid(LedgerError, ValueError):
    """A receipt failed offline verification; `reason` names the failed check."""

    code = "receipt_invalid"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}", param=reason)
        self.reason = reason


# --- Invoices ---------------------------------------------------------------------------------
class InvoiceError(LedgerError, ValueError):
    code = "invoice_error"


class IllegalTransition(InvoiceError):
    """The invoice's status does not allow this operation."""

    code = "illegal_transition"


class CreditExceedsBalance(InvoiceError):
    """A credit note larger than the balance, with no customer credit allowed for the excess."""

    code = "credit_exceeds_balance"


class ReversalExceedsPayments(InvoiceError):
    code = "reversal_exceeds_payments"


class InvalidLineItem(InvoiceError):
    code = "invalid_line_item"
