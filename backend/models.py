"""SQLAlchemy models. Every table is registered on backend.db.Base.metadata.

Conventions (same on PostgreSQL and SQLite):
- Public ids are prefixed strings (`cus_...`); an integer `pk` gives lists a stable order for
  `starting_after` paging.
- Amounts are integers in minor units (`*_minor`, BIGINT): ledger documents cap them at 2**53 - 1.
- Times are unix seconds (`created`, `*_at`), as the API shows them.
- Hashes and keys are raw 32-byte blobs; the API renders them as 0x-hex.

The ledger proper is three tables: `ledger_entries` (one row per leaf), `merkle_nodes` (the node
store behind `ledger.merkle.NodeStore`) and `ledger_heads` (one row per ledger: size, root, compact
frontier), locked FOR UPDATE by every append.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias), never a BIGINT one.
PrimaryKeyInt = BigInteger().with_variant(Integer(), "sqlite")
Hash32 = LargeBinary(32)


class Customer(Base):
    __tablename__ = "customers"

    pk: Mapped[int] = mapped_column(PrimaryKeyInt, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    # Addresses the customer pays from (plain-transfer matching, issue 7), lowercase 0x hex.
    wallet_addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Where this customer's invoices are paid to (overrides the default payee), lowercase 0x hex.
    payee_address: Mapped[str | None] = mapped_column(String(42))
    credit_limit_minor: Mapped[int | None] = mapped_column(BigInteger)
    # Customer credit (overpayments, credit-note excess) available to apply, in `currency`.
    credit_balance_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    # A key of the customer for ledger subjects: keccak256(abi.encode(ledger_id, customer_id)).
    subject: Mapped[bytes] = mapped_column(Hash32)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSON, default=dict)
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)


class InvoiceSeries(Base):
    """One counter per invoice number series; finalize takes its row lock (upsert ... RETURNING)."""

    __tablename__ = "invoice_series"

    series: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_number: Mapped[int] = mapped_column(BigInteger)


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("series", "number_in_series"),
        CheckConstraint("status IN ('draft','open','partially_paid','paid','void','uncollectible')", name="status"),
        Index(None, "customer_id", "pk"),
    )

    pk: Mapped[int] = mapped_column(PrimaryKeyInt, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    status: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    series: Mapped[str] = mapped_column(String(32))
    number_in_series: Mapped[int | None] = mapped_column(BigInteger)
    number: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    # Line items as the API accepted them: [{description, quantity, unit_amount_minor, tax_bps}].
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    subtotal_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    tax_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    total_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    credited_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    debited_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    # Payments applied to the invoice, net of reversals; the part paid through the contract.
    paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_onchain_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    written_off_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    due_date: Mapped[int | None] = mapped_column(BigInteger)
    days_until_due: Mapped[int | None] = mapped_column(Integer)
    # {chain_id, token, token_decimals, payee} as given at create time (token registry: issue 7).
    settlement: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Token decimals of the terms' amount (set at finalize).
    token_decimals: Mapped[int | None] = mapped_column(Integer)
    # Optional settlement-terms options (discount, late fee, partial, payer).
    terms_options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The current settlement terms (as in the latest terms-carrying entry) and their version.
    terms: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    terms_version: Mapped[int] = mapped_column(Integer, default=0)
    invoice_key: Mapped[bytes | None] = mapped_column(Hash32, unique=True)
    salt: Mapped[bytes | None] = mapped_column(Hash32)
    issued_sequence: Mapped[int | None] = mapped_column(BigInteger)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSON, default=dict)
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)
    finalized_at: Mapped[int | None] = mapped_column(BigInteger)
    voided_at: Mapped[int | None] = mapped_column(BigInteger)
    marked_uncollectible_at: Mapped[int | None] = mapped_column(BigInteger)
    paid_at: Mapped[int | None] = mapped_column(BigInteger)


class InvoiceNote(Base):
    """Credit notes (`cn_`) and debit notes (`dn_`): each one a new settlement-terms version."""

    __tablename__ = "invoice_notes"
    __table_args__ = (
        CheckConstraint("type IN ('credit_note','debit_note')", name="type"),
        Index(None, "invoice_id", "pk"),
    )

    pk: Mapped[int] = mapped_column(PrimaryKeyInt, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(16))
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    currency: Mapped[str] = mapped_column(String(3))
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    subtotal_minor: Mapped[int] = mapped_column(BigInteger)
    tax_minor: Mapped[int] = mapped_column(BigInteger)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    # Part of a credit note beyond the invoice balance, booked as customer credit.
    excess_to_credit_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    reason: Mapped[str | None] = mapped_column(Text)
    terms_version: Mapped[int] = mapped_column(Integer)
    entry_sequence: Mapped[int] = mapped_column(BigInteger)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSON, default=dict)
    created: Mapped[int] = mapped_column(BigInteger)


class Payment(Base):
    """A payment booked against a customer (and usually an invoice), off-chain or on-chain."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("method", "reference"),
        CheckConstraint("status IN ('succeeded','reversed')", name="status"),
        Index(None, "customer_id", "pk"),
        Index(None, "invoice_id"),
    )

    pk: Mapped[int] = mapped_column(PrimaryKeyInt, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    invoice_id: Mapped[str | None] = mapped_column(ForeignKey("invoices.id"))
    # bank | card (this API); onchain (the reconciler, issue 7).
    method: Mapped[str] = mapped_column(String(16))
    # The outside world's reference (bank transfer id, card charge id, chain:tx:log): unique per
    # method, so one outside payment is never booked twice.
    reference: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    applied_minor: Mapped[int] = mapped_column(BigInteger)
    to_credit_minor: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[int | None] = mapped_column(BigInteger)
    entry_sequence: Mapped[int] = mapped_column(BigInteger)
    reversal_entry_sequence: Mapped[int | None] = mapped_column(BigInteger)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSON, default=dict)
    created: Mapped[int] = mapped_column(BigInteger)
    reversed_at: Mapped[int | None] = mapped_column(BigInteger)


class JournalLine(Base):
    """One line of a balanced double-entry posting: `amount_minor` > 0 debits, < 0 credits."""

    __tablename__ = "journal_lines"
    __table_args__ = (
        Index(None, "posting_id"),
        Index(None, "invoice_id"),
        Index(None, "account", "currency"),
    )

    pk: Mapped[int] = mapped_column(PrimaryKeyInt, primary_key=True, autoincrement=True)
    ledger_id: Mapped[str] = mapped_column(String(64))
    posting_id: Mapped[str] = mapped_column(String(40))
    entry_sequence: Mapped[int | None] = mapped_column(BigInteger)
    account: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    customer_id: Mapped[str | None] = mapped_column(String(40))
    invoice_id: Mapped[str | None] = mapped_column(String(40))
    payment_id: Mapped[str | None] = mapped_column(String(40))
    created: Mapped[int] = mapped_column(BigInteger)


class LedgerEntry(Base):
    """One leaf of the Merkle log: leaf index = sequence, from 0, without gaps."""

    __tablename__ = "ledger_entries"
    __table_args__ = (Index(None, "invoice_id"), Index(None, "customer_id"))

    ledger_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[int] = mapped_column(SmallInteger)
    subject: Mapped[bytes] = mapped_column(Hash32)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    document_hash: Mapped[bytes] = mapped_column(Hash32)
    leaf_input: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(Hash32)
    # The terms version this entry carries (kinds with terms), for the anchorer's TermsUpdate list.
    terms_version: Mapped[int | None] = mapped_column(BigInteger)
    # What the entry is about, for partner scoping and receipts (not part of the leaf).
    customer_id: Mapped[str | None] = mapped_column(String(40))
    invoice_id: Mapped[str | None] = mapped_column(String(40))
    created: Mapped[int] = mapped_column(BigInteger)


class MerkleNode(Base):
    """A complete subtree's hash: level 0 = leaf hashes; (level, index) covers leaves
    [index * 2**level, (index + 1) * 2**level)."""

    __tablename__ = "merkle_nodes"

    ledger_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    node_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(Hash32)


class LedgerHead(Base):
    """The log's current head; every append locks this row (FOR UPDATE) and moves it by one."""

    __tablename__ = "ledger_heads"

    ledger_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[bytes] = mapped_column(Hash32)
    # The compact frontier: the roots of the perfect subtrees, left to right, concatenated.
    frontier: Mapped[bytes] = mapped_column(LargeBinary)
    updated: Mapped[int] = mapped_column(BigInteger)


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("role IN ('admin','backoffice','auditor','partner')", name="role"),
        CheckConstraint("(role = 'partner') = (customer_id IS NOT NULL)", name="partner_customer"),
    )

    pk: Mapped[int] = mapped_column(PrimaryKeyInt, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"))
    # SHA-256 of the whole secret: the secret is 256 random bits, so a fast hash is enough.
    secret_hash: Mapped[bytes] = mapped_column(Hash32, unique=True)
    # The first characters of the secret, to recognise a key in lists ("tally_sk_AbCd").
    secret_prefix: Mapped[str] = mapped_column(String(24))
    name: Mapped[str | None] = mapped_column(String(200))
    created: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)


class IdempotencyRecord(Base):
    """A mutating request seen under an Idempotency-Key: in flight, or done with its response."""

    __tablename__ = "idempotency_keys"

    api_key_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[bytes] = mapped_column(Hash32)
    status: Mapped[str] = mapped_column(String(16))
    response_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created: Mapped[int] = mapped_column(BigInteger)
    locked_at: Mapped[int] = mapped_column(BigInteger)


__all__ = [
    "ApiKey",
    "Base",
    "Customer",
    "IdempotencyRecord",
    "Invoice",
    "InvoiceNote",
    "InvoiceSeries",
    "JournalLine",
    "LedgerEntry",
    "LedgerHead",
    "MerkleNode",
    "Payment",
]


# --- Anchoring (issue 6; owner: anchoring) ------------------------------------------------------
# Kept at the end of the file so the anchoring tables stay one self-contained section.

ANCHOR_TX_STATUSES = ("built", "sent", "mined", "confirmed", "dropped", "replaced", "reverted")


class AnchorTransaction(Base):
    """One `LedgerAnchor.anchor()` transaction and where it is in its life.

    built (signed and stored, before the first send) -> sent -> mined -> confirmed; a stuck `sent`
    is `replaced` by a row with the same nonce and higher fees; a reorg that removes a mined
    transaction makes it `dropped` (the head is then anchored again by a new row); `reverted` is
    mined with status 0. Written before each send, so a crash never loses a transaction.
    """

    __tablename__ = "anchor_transactions"
    __table_args__ = (
        CheckConstraint(
            "status IN ('built','sent','mined','confirmed','dropped','replaced','reverted')",
            name="status",
        ),
        Index(None, "ledger_id", "status"),
        Index(None, "ledger_id", "tree_size"),
    )

    pk: Mapped[int] = mapped_column(PrimaryKeyInt, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    ledger_id: Mapped[str] = mapped_column(String(64))
    chain_id: Mapped[int] = mapped_column(BigInteger)
    contract: Mapped[str] = mapped_column(String(42))  # lowercase 0x hex
    sender: Mapped[str] = mapped_column(String(42))  # lowercase 0x hex
    tree_size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[bytes] = mapped_column(Hash32)
    # The on-chain latest size the consistency proof starts from.
    previous_size: Mapped[int] = mapped_column(BigInteger)
    # TermsUpdate[] sent with the head: [[invoice_key 0x-hex, version], ...].
    updates: Mapped[list[list[Any]]] = mapped_column(JSON, default=list)
    nonce: Mapped[int] = mapped_column(BigInteger)
    gas_limit: Mapped[int] = mapped_column(BigInteger)
    max_fee_per_gas: Mapped[int] = mapped_column(BigInteger)
    max_priority_fee_per_gas: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[bytes] = mapped_column(Hash32, unique=True)
    # The signed transaction, to send again after a crash; None when recorded from the chain.
    raw_transaction: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16))
    replaces_id: Mapped[str | None] = mapped_column(String(40))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    block_hash: Mapped[bytes | None] = mapped_column(Hash32)
    gas_used: Mapped[int | None] = mapped_column(BigInteger)
    effective_gas_price: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    # Unix milliseconds: anchoring latency is a second or less on a local chain.
    created_ms: Mapped[int] = mapped_column(BigInteger)
    sent_ms: Mapped[int | None] = mapped_column(BigInteger)
    mined_ms: Mapped[int | None] = mapped_column(BigInteger)
    confirmed_ms: Mapped[int | None] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class WorkerLease(Base):
    """A named lease one worker process holds at a time (the anchorer's lock on SQLite; on
    PostgreSQL an advisory lock is taken as well). `expires_ms` bounds how long a dead holder
    keeps it."""

    __tablename__ = "worker_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(80))
    expires_ms: Mapped[int] = mapped_column(BigInteger)
    acquired_ms: Mapped[int] = mapped_column(BigInteger)


__all__ += ["AnchorTransaction", "WorkerLease"]


# --- Settlement and reconciliation (issue 7; owner: settlement) ---------------------------------
# Kept at the end of the file so the settlement tables stay one self-contained section.

CHAIN_PAYMENT_STATUSES = ("booked", "suspense", "reversed")


class SettlementToken(Base):
    """The token registry: which token on which chain stands for which currency, with its decimals.

    Invoices in a currency are issued with the chain's default token for it; a payment in any
    token that is not registered for the invoice's currency goes to suspense, never to an invoice.
    """

    __tablename__ = "settlement_tokens"
    __table_args__ = (UniqueConstraint("chain_id", "address"), Index(None, "currency", "chain_id"))

    pk: Mapped[int] = mapped_column(PrimaryKeyInt, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    address: Mapped[str] = mapped_column(String(42))  # lowercase 0x hex
    currency: Mapped[str] = mapped_column(String(3))
    decimals: Mapped[int] = mapped_column(Integer)
    symbol: Mapped[str | None] = mapped_column(String(16))
    # The token new invoices in `currency` are issued in on this chain (one per chain and currency).
    is_default: Mapped[bool] = mapped_column(default=False)
    created: Mapped[int] = mapped_column(BigInteger)
    disabled_at: Mapped[int | None] = mapped_column(BigInteger)


class ChainCursor(Base):
    """How far the reconciler has read a chain: every log in blocks <= `block_number` is processed."""

    __tablename__ = "chain_cursors"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[bytes | None] = mapped_column(Hash32)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class ChainBlock(Base):
    """A block the reconciler read (range ends and blocks holding payments): the chain of parent
    hashes a reorg is detected and located by."""

    __tablename__ = "chain_blocks"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(Hash32)
    parent_hash: Mapped[bytes] = mapped_column(Hash32)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    seen_ms: Mapped[int] = mapped_column(BigInteger)


class ChainPayment(Base):
    """One payment log seen on-chain, kept once by (chain_id, tx_hash, log_index).

    `source` is `settlement` (an InvoicePaid event: bound to an invoice key) or `transfer` (a plain
    ERC-20 Transfer into a payee address). `booked`: a payment row (`payment_id`) carries it;
    `suspense`: parked until someone applies it; `reversed`: its block left the chain (a reorg)
    and whatever it booked was reversed. Token amounts are decimal strings (uint256).
    """

    __tablename__ = "chain_payments"
    __table_args__ = (
        UniqueConstraint("chain_id", "tx_hash", "log_index"),
        CheckConstraint("status IN ('booked','suspense','reversed')", name="status"),
        CheckConstraint("source IN ('settlement','transfer')", name="source"),
        Index(None, "status", "pk"),
        Index(None, "chain_id", "block_number"),
        Index(None, "invoice_id"),
    )

    pk: Mapped[int] = mapped_column(PrimaryKeyInt, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[bytes] = mapped_column(Hash32)
    log_index: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[bytes] = mapped_column(Hash32)
    block_timestamp: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(16))
    token: Mapped[str] = mapped_column(String(42))
    payer: Mapped[str] = mapped_column(String(42))
    payee: Mapped[str] = mapped_column(String(42))
    amount_token: Mapped[str] = mapped_column(String(78))
    invoice_key: Mapped[bytes | None] = mapped_column(Hash32)
    terms_version: Mapped[int | None] = mapped_column(BigInteger)
    total_paid_token: Mapped[str | None] = mapped_column(String(78))
    status: Mapped[str] = mapped_column(String(16))
    # Why it is in suspense (a stable code) and a human explanation.
    reason: Mapped[str | None] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(Text)
    currency: Mapped[str | None] = mapped_column(String(3))
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    customer_id: Mapped[str | None] = mapped_column(String(40))
    invoice_id: Mapped[str | None] = mapped_column(String(40))
    payment_id: Mapped[str | None] = mapped_column(String(40))
    # Late fee (> 0, a debit note) or early-payment discount (< 0, a credit note) booked with it.
    adjustment_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    adjustment_note_id: Mapped[str | None] = mapped_column(String(40))
    # The journal posting that parked it in suspense (clearing / suspense), while it is there.
    suspense_posting_id: Mapped[str | None] = mapped_column(String(40))
    # How many times it was booked (a payment mined again after a reorg is booked again).
    bookings: Mapped[int] = mapped_column(Integer, default=0)
    applied_by: Mapped[str | None] = mapped_column(String(16))  # reconciler | manual
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class SuspenseSuggestion(Base):
    """An invoice a suspense payment may belong to, best first."""

    __tablename__ = "suspense_suggestions"
    __table_args__ = (Index(None, "chain_payment_id", "rank"),)

    pk: Mapped[int] = mapped_column(PrimaryKeyInt, primary_key=True, autoincrement=True)
    chain_payment_id: Mapped[str] = mapped_column(ForeignKey("chain_payments.id"))
    invoice_id: Mapped[str] = mapped_column(String(40))
    customer_id: Mapped[str] = mapped_column(String(40))
    rank: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(200))


__all__ += ["ChainBlock", "ChainCursor", "ChainPayment", "SettlementToken", "SuspenseSuggestion"]
