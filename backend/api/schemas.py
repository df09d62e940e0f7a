"""Request and response shapes (separate create, update and public models; STYLE.md).

Requests are `Strict`: unknown fields are refused and nothing is coerced. Responses carry
`object` and `created`, amounts as integers in minor units (`*_minor`) with a lowercase currency.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backend.api.fields import (
    Address,
    AmountMinor,
    Bps,
    Currency,
    CustomerId,
    InvoiceId,
    Metadata,
    Strict,
    Timestamp,
    text,
)
from backend.services.common import bulk_invoices_max, series_chars_max, wallet_addresses_max
from ledger import limits

Name = text(200, 1)
Description = text(limits.text_chars_max)
Reference = text(200, 1)
Email = Annotated[str, Field(max_length=254, pattern=r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+$")]
ExternalId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-.:]+$")]
Series = Annotated[str, Field(min_length=1, max_length=series_chars_max, pattern=r"^[A-Z0-9][A-Z0-9\-]*$")]
Hex32 = Annotated[str, Field(pattern=r"^0x[0-9a-f]{64}$", examples=["0x" + "ab" * 32])]
HexBytes = Annotated[str, Field(pattern=r"^0x(?:[0-9a-f]{2})*$")]


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- Customers ---------------------------------------------------------------------------------
class CustomerCreate(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Acme GmbH",
                    "currency": "eur",
                    "email": "ap@acme.example",
                    "external_id": "crm-1042",
                    "wallet_addresses": ["0x70997970c51812dc3a010c7d01b50e0d17dc79c8"],
                    "payee_address": "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc",
                    "credit_limit_minor": 5000000,
                }
            ]
        }
    )

    name: Name  # type: ignore[valid-type]
    currency: Currency
    email: Email | None = None
    external_id: ExternalId | None = Field(default=None, description="Your CRM's id; unique.")
    wallet_addresses: list[Address] = Field(default_factory=list, max_length=wallet_addresses_max)
    payee_address: Address | None = Field(
        default=None, description="Where this customer's invoices are paid (overrides the default)."
    )
    credit_limit_minor: AmountMinor | None = Field(
        default=None, description="Most this customer may owe on open invoices; none = no limit."
    )
    metadata: Metadata = Field(default_factory=dict)


class CustomerUpdate(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"credit_limit_minor": 7500000}]})

    name: Name | None = None  # type: ignore[valid-type]
    email: Email | None = None
    external_id: ExternalId | None = None
    wallet_addresses: list[Address] | None = Field(default=None, max_length=wallet_addresses_max)
    payee_address: Address | None = None
    credit_limit_minor: AmountMinor | None = None
    credit_limit_reason: Description | None = None  # type: ignore[valid-type]
    metadata: Metadata | None = None


class CustomerOut(Response):
    id: str = Field(examples=["cus_4Hh2kQm0s5V7pX9rT1uWyZ3b"])
    object: Literal["customer"]
    name: str
    email: str | None
    external_id: str | None
    currency: str
    wallet_addresses: list[str]
    payee_address: str | None
    credit_limit_minor: int | None
    credit_balance_minor: int
    metadata: dict[str, str]
    created: int


# --- Invoices ----------------------------------------------------------------------------------
class LineItemIn(Strict):
    description: Description  # type: ignore[valid-type]
    quantity: Annotated[int, Field(ge=1, le=limits.line_quantity_max, strict=True)] = 1
    unit_amount_minor: AmountMinor
    tax_bps: Bps = 0


class LineItemOut(Response):
    description: str
    quantity: int
    unit_amount_minor: int
    tax_bps: int
    net_minor: int
    tax_minor: int


class SettlementIn(Strict):
    """How the invoice is paid on-chain (a token registry replaces this in issue 7)."""

    chain_id: Annotated[int, Field(ge=1, le=limits.json_integer_max, strict=True)] = Field(examples=[31337])
    token: Address = Field(description="ERC-20 token; the zero address means the native coin.")
    token_decimals: Annotated[int, Field(ge=0, le=limits.token_decimals_max, strict=True)] = Field(examples=[6])
    payee: Address | None = Field(default=None, description="Overrides the customer's payee.")


class TermsOptionsIn(Strict):
    """Optional settlement-terms features (formats.md "Settlement terms")."""

    discount_bps: Annotated[int, Field(ge=0, le=limits.discount_bps_max, strict=True)] = 0
    discount_deadline: Timestamp = 0
    late_fee_bps: Annotated[int, Field(ge=0, le=2**16 - 1, strict=True)] = 0
    late_fee_period_s: Annotated[int, Field(ge=0, le=2**32 - 1, strict=True)] = 0
    late_fee_periods_max: Annotated[int, Field(ge=0, le=2**16 - 1, strict=True)] = 0
    partial_allowed: bool = False
    payer: Address | None = Field(default=None, description="Only this address may pay.")


class InvoiceCreate(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "customer": "cus_4Hh2kQm0s5V7pX9rT1uWyZ3b",
                    "currency": "usd",
                    "lines": [
                        {
                            "description": "Consulting, March",
                            "quantity": 10,
                            "unit_amount_minor": 15000,
                            "tax_bps": 1900,
                        }
                    ],
                    "days_until_due": 30,
                    "settlement": {
                        "chain_id": 31337,
                        "token": "0x5fbdb2315678afecb367f032d93f642f64180aa3",
                        "token_decimals": 6,
                    },
                    "finalize": False,
                }
            ]
        }
    )

    customer: CustomerId  # type: ignore[valid-type]
    currency: Currency | None = Field(default=None, description="Defaults to the customer's currency.")
    series: Series = Field(default="INV", description="Number series; numbers run per series.")
    description: Description | None = None  # type: ignore[valid-type]
    lines: list[LineItemIn] = Field(default_factory=list, max_length=limits.invoice_lines_max)
    due_date: Timestamp | None = Field(default=None, description="Unix seconds; or days_until_due.")
    days_until_due: Annotated[int, Field(ge=0, le=3650, strict=True)] | None = None
    settlement: SettlementIn | None = None
    terms: TermsOptionsIn | None = None
    metadata: Metadata = Field(default_factory=dict)
    finalize: bool = Field(default=False, description="Finalize in the same request.")

    @model_validator(mode="after")
    def _one_due(self) -> InvoiceCreate:
        if self.due_date is not None and self.days_until_due is not None:
            raise ValueError("give due_date or days_until_due, not both")
        return self


class InvoiceUpdate(Strict):
    """Drafts only. Omitted fields keep their value; `lines` replaces all lines."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"description": "Consulting, March (revised)"}]})

    description: Description | None = None  # type: ignore[valid-type]
    lines: list[LineItemIn] | None = Field(default=None, max_length=limits.invoice_lines_max)
    due_date: Timestamp | None = None
    days_until_due: Annotated[int, Field(ge=0, le=3650, strict=True)] | None = None
    settlement: SettlementIn | None = None
    terms: TermsOptionsIn | None = None
    metadata: Metadata | None = None


class BulkInvoices(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "invoices": [
                        {
                            "customer": "cus_4Hh2kQm0s5V7pX9rT1uWyZ3b",
                            "lines": [{"description": "Subscription", "unit_amount_minor": 4900}],
                        }
                    ]
                }
            ]
        }
    )

    invoices: list[InvoiceCreate] = Field(min_length=1, max_length=bulk_invoices_max)


class ReasonIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "issued in error"}]})

    reason: Description = ""  # type: ignore[valid-type]


class InvoiceOut(Response):
    id: str = Field(examples=["inv_0aB1cD2eF3gH4iJ5kL6mN7oP"])
    object: Literal["invoice"]
    customer: str
    status: Literal["draft", "open", "partially_paid", "paid", "void", "uncollectible"]
    currency: str
    series: str
    number: str | None = Field(description="Assigned at finalize, e.g. INV-000042.")
    description: str | None
    lines: list[LineItemOut]
    subtotal_minor: int
    tax_minor: int
    total_minor: int
    credited_minor: int
    debited_minor: int
    paid_minor: int
    paid_onchain_minor: int
    written_off_minor: int = Field(description="Balance written off (mark uncollectible); still owed.")
    amount_due_minor: int = Field(description="The balance: total - credited + debited - paid.")
    due_date: int | None
    days_until_due: int | None
    settlement: dict[str, Any] | None
    terms_options: dict[str, Any]
    terms: dict[str, Any] | None = Field(description="The current settlement terms (formats.md).")
    terms_version: int
    token_decimals: int | None
    invoice_key: str | None
    salt: str | None
    issued_entry: int | None = Field(description="Ledger sequence of the invoice_issued entry.")
    metadata: dict[str, str]
    created: int
    finalized_at: int | None
    voided_at: int | None
    marked_uncollectible_at: int | None
    paid_at: int | None


class BulkInvoicesOut(Response):
    object: Literal["list"]
    data: list[InvoiceOut]
    has_more: Literal[False]
    url: str


# --- Credit and debit notes --------------------------------------------------------------------
class NoteCreate(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "invoice": "inv_0aB1cD2eF3gH4iJ5kL6mN7oP",
                    "lines": [{"description": "Goodwill discount", "unit_amount_minor": 5000, "tax_bps": 1900}],
                    "reason": "late delivery",
                }
            ]
        }
    )

    invoice: InvoiceId  # type: ignore[valid-type]
    lines: list[LineItemIn] = Field(min_length=1, max_length=limits.invoice_lines_max)
    reason: Description = ""  # type: ignore[valid-type]
    currency: Currency | None = Field(default=None, description="Must equal the invoice's, if given.")
    allow_customer_credit: bool = Field(
        default=False,
        description="Credit notes: book a credit beyond the balance as customer credit (else 409 "
        "`credit_exceeds_balance`).",
    )
    metadata: Metadata = Field(default_factory=dict)


class NoteOut(Response):
    id: str
    object: Literal["credit_note", "debit_note"]
    invoice: str
    customer: str
    currency: str
    lines: list[LineItemOut]
    subtotal_minor: int
    tax_minor: int
    total_minor: int
    excess_to_credit_minor: int = Field(description="Credit-note part beyond the balance, to customer credit.")
    reason: str | None
    terms_version: int
    entry: int
    metadata: dict[str, str]
    created: int


# --- Payments ----------------------------------------------------------------------------------
class PaymentCreate(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "invoice": "inv_0aB1cD2eF3gH4iJ5kL6mN7oP",
                    "amount_minor": 178500,
                    "currency": "usd",
                    "method": "bank",
                    "reference": "SEPA-2026-03-0042",
                }
            ]
        }
    )

    invoice: InvoiceId  # type: ignore[valid-type]
    amount_minor: AmountMinor
    currency: Currency
    method: Literal["bank", "card"]
    reference: Reference = Field(description="The bank's or card processor's id; unique per method.")  # type: ignore[valid-type]
    received_at: Timestamp | None = None
    description: Description | None = None  # type: ignore[valid-type]
    metadata: Metadata = Field(default_factory=dict)


class PaymentOut(Response):
    id: str
    object: Literal["payment"]
    customer: str
    invoice: str | None
    method: str
    reference: str
    currency: str
    amount_minor: int
    applied_minor: int
    to_credit_minor: int
    status: Literal["succeeded", "reversed"]
    description: str | None
    received_at: int | None
    entry: int
    reversal_entry: int | None
    metadata: dict[str, str]
    created: int
    reversed_at: int | None


# --- Ledger ------------------------------------------------------------------------------------
class EntryOut(Response):
    id: str
    object: Literal["ledger_entry"]
    sequence: int
    kind: str
    kind_code: int
    subject: str
    document: dict[str, Any]
    document_hash: str
    leaf_input: str
    leaf_hash: str
    terms_version: int | None
    customer: str | None
    invoice: str | None
    created: int


class HeadOut(Response):
    object: Literal["ledger_head"]
    ledger_id: str
    ledger_key: str
    tree_size: int
    root: str
    updated: int | None


class InclusionProofOut(Response):
    object: Literal["inclusion_proof"]
    ledger_id: str
    leaf_index: int
    tree_size: int
    leaf_hash: str
    root: str
    inclusion_proof: list[str]


class ConsistencyProofOut(Response):
    object: Literal["consistency_proof"]
    ledger_id: str
    first: int
    second: int
    first_root: str
    second_root: str
    consistency_proof: list[str]


class JournalBalanceOut(Response):
    account: str
    currency: str
    balance_minor: int = Field(description="Debits positive, credits negative.")


class JournalBalancesOut(Response):
    object: Literal["journal_balances"]
    data: list[JournalBalanceOut]
    unbalanced: dict[str, int] = Field(description="Currencies whose lines do not sum to zero.")


# --- API keys ----------------------------------------------------------------------------------
class ApiKeyCreate(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"role": "partner", "customer": "cus_4Hh2kQm0s5V7pX9rT1uWyZ3b", "name": "Acme portal"}]
        }
    )

    role: Literal["admin", "backoffice", "auditor", "partner"]
    customer: CustomerId | None = Field(default=None, description="Required for (and only for) partner keys.")  # type: ignore[valid-type]
    name: text(200) | None = None  # type: ignore[valid-type]


class ApiKeyOut(Response):
    id: str
    object: Literal["api_key"]
    role: str
    customer: str | None
    name: str | None
    secret_prefix: str
    secret: str | None = Field(default=None, description="Only in the creation response: keep it.")
    created: int
    revoked_at: int | None


# --- Lists -------------------------------------------------------------------------------------
def list_of(model: type[BaseModel], name: str) -> type[BaseModel]:
    from pydantic import create_model

    return create_model(  # type: ignore[call-overload, no-any-return]
        name,
        __base__=Response,
        object=(Literal["list"], ...),
        data=(list[model], ...),  # type: ignore[valid-type]
        has_more=(bool, ...),
        url=(str, ...),
    )


CustomerList = list_of(CustomerOut, "CustomerList")
InvoiceList = list_of(InvoiceOut, "InvoiceList")
NoteList = list_of(NoteOut, "NoteList")
PaymentList = list_of(PaymentOut, "PaymentList")
EntryList = list_of(EntryOut, "EntryList")
ApiKeyList = list_of(ApiKeyOut, "ApiKeyList")
