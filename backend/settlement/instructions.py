"""Payment instructions for an open invoice: everything a payer needs to call
`InvoiceSettlement.pay` (or to send a plain token transfer), built from the invoice's current
terms entry, its receipt against the latest confirmed anchor, and the chain's view right now.

The amount due now is the terms math (`ledger.terms.remaining_at`) at the latest block's timestamp,
minus what the contract already counts as paid under the invoice key: the next block is at
least that late, so within a discount window the figure holds until the deadline passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session
from web3 import Web3

from backend.anchoring.chain import ChainUnavailable, rpc
from backend.anchoring.receipts import NotAnchored, current_invoice_entry, receipt_for
from backend.chain.client import contract_at
from backend.services.common import Conflict
from backend.services.invoices import amount_due, get_invoice
from backend.settlement import tokens as registry
from ledger.entries import KINDS_WITH_TERMS, EntryKind
from ledger.errors import LedgerError
from ledger.hexutil import from_hex
from ledger.terms import Terms, remaining_at

PAYABLE_STATUSES = ("open", "partially_paid")
UINT256_MAX = 2**256 - 1


@dataclass(frozen=True)
class ChainView:
    """The chain as the API sees it: a connection and the contracts recorded for its chain id."""

    w3: Web3
    chain_id: int
    addresses: dict[str, str]

    @classmethod
    def of(cls, w3: Web3, deployments: Any) -> ChainView:
        chain_id = int(rpc(lambda: w3.eth.chain_id))
        return cls(w3, chain_id, deployments.for_chain(chain_id))


def payment_request(terms: Terms, *, invoice_key: bytes, kind: int, document_hash: bytes, leaf_index: int,
                    tree_size: int, amount: int, proof: list[bytes]) -> tuple[Any, ...]:  # fmt: skip
    """`InvoiceSettlement.PaymentRequest` as web3 encodes it (checksummed addresses)."""
    values = list(terms.abi_tuple())
    for position in (0, 1, 10):
        values[position] = Web3.to_checksum_address(values[position])
    return (invoice_key, kind, document_hash, tuple(values), leaf_index, tree_size, amount, list(proof))


def request_from_receipt(receipt: dict[str, Any], amount: int) -> tuple[Any, ...]:
    """The PaymentRequest a receipt of a terms-carrying entry proves (a partner's own path)."""
    document = receipt["document"]
    terms = Terms.from_document(document["terms"])
    kind = EntryKind.from_document_kind(document["kind"])
    if kind not in KINDS_WITH_TERMS:
        raise Conflict(f"a {document['kind']} entry carries no terms: nothing to pay", code="invoice_not_payable")
    leaf = from_hex(receipt["leaf_input"], error=LedgerError)
    return payment_request(
        terms, invoice_key=leaf[96:128], kind=int(kind), document_hash=from_hex(receipt["document_hash"],
        error=LedgerError), leaf_index=int(receipt["leaf_index"]), tree_size=int(receipt["tree_size"]), amount=amount,
        proof=[from_hex(item, error=LedgerError) for item in receipt["inclusion_proof"]],
    )  # fmt: skip


def eip681_transfer(token: str, chain_id: int, payee: str, amount: int) -> str:
    """EIP-681 URI of an ERC-20 `transfer(payee, amount)` (a plain transfer, matched by wallet)."""
    token_address, payee_address = Web3.to_checksum_address(token), Web3.to_checksum_address(payee)
    return f"ethereum:{token_address}@{chain_id}/transfer?address={payee_address}&uint256={amount}"


def payment_instructions(
    session: Session,
    *,
    ledger_id: str,
    invoice_id: str,
    settings: Any,
    chain_view: Callable[[], ChainView],
    partner_of: str | None = None,
) -> dict[str, Any]:
    """The instructions (see the module docstring). The chain is reached only once the invoice is
    known to be visible, payable and anchored (`chain_view` is called then)."""
    invoice = get_invoice(session, invoice_id=invoice_id, partner_of=partner_of)
    if invoice.status not in PAYABLE_STATUSES:
        raise Conflict(f"invoice {invoice.id} is {invoice.status}: nothing to pay", code="invoice_not_payable")
    entry = current_invoice_entry(session, ledger_id, invoice.id)
    if entry is None or entry.kind not in {int(kind) for kind in KINDS_WITH_TERMS}:
        raise Conflict(f"invoice {invoice.id} has no payable terms", code="invoice_not_payable")
    try:
        receipt = receipt_for(session, ledger_id=ledger_id, row=entry, settings=settings)
    except NotAnchored as pending:
        raise Conflict(f"terms version {entry.terms_version} of {invoice.id} are not anchored yet: "
                       f"{pending.message()}", code="not_anchored") from pending  # fmt: skip
    chain = chain_view()
    settlement_address = chain.addresses.get("InvoiceSettlement")
    if not settlement_address or int(receipt["anchor"]["chain_id"]) != chain.chain_id:
        raise Conflict(f"no InvoiceSettlement is recorded for chain {chain.chain_id}", code="settlement_unavailable")
    terms = Terms.from_document(entry.document["terms"])
    key = bytes(invoice.invoice_key or b"")
    onchain = _onchain_state(chain, settlement_address, receipt["anchor"]["contract"], key)
    if onchain["terms_version"] != terms.version:
        raise Conflict(f"terms version {terms.version} of {invoice.id} is anchored but the chain still has version "
                       f"{onchain['terms_version']}: its update is on its way", code="not_anchored")  # fmt: skip
    remaining = remaining_at(terms, onchain["timestamp"], onchain["paid"])
    if remaining == 0:
        raise Conflict(f"the contract has nothing left to collect on {invoice.id}; the payment is being booked",
                       code="nothing_due_onchain")  # fmt: skip
    request = payment_request(
        terms, invoice_key=key, kind=int(entry.kind), document_hash=bytes(entry.document_hash),
        leaf_index=int(entry.sequence), tree_size=int(receipt["tree_size"]), amount=remaining,
        proof=[from_hex(item, error=LedgerError) for item in receipt["inclusion_proof"]],
    )  # fmt: skip
    settlement = contract_at(chain.w3, "InvoiceSettlement", settlement_address)
    token_row = registry.token_at(session, chain.chain_id, terms.token)
    return {
        "object": "payment_instructions",
        "invoice": invoice.id,
        "status": invoice.status,
        "currency": invoice.currency,
        "amount_due_minor": amount_due(invoice),
        "chain_id": chain.chain_id,
        "settlement_contract": settlement_address.lower(),
        "ledger_anchor": receipt["anchor"]["contract"],
        "token": terms.token,
        "token_symbol": token_row.symbol if token_row else None,
        "token_decimals": invoice.token_decimals,
        "payee": terms.payee,
        "payer": terms.payer,
        "partial_allowed": terms.partial_allowed,
        "terms_version": terms.version,
        "terms": entry.document["terms"],
        "amount_token": str(remaining),
        "amount_due_now_token": str(remaining + onchain["paid"]),
        "paid_onchain_token": str(onchain["paid"]),
        "as_of": {"block_number": onchain["block_number"], "timestamp": onchain["timestamp"]},
        "request": _request_json(request),
        "calldata": settlement.encode_abi("pay", args=[request]),
        "approval": {"token": terms.token, "spender": settlement_address.lower(), "amount": str(remaining)},
        "eip681": eip681_transfer(terms.token, chain.chain_id, terms.payee, remaining),
        "receipt": receipt,
    }


def _onchain_state(chain: ChainView, settlement_address: str, anchor_address: str, key: bytes) -> dict[str, int]:
    settlement = contract_at(chain.w3, "InvoiceSettlement", settlement_address)
    anchor = contract_at(chain.w3, "LedgerAnchor", anchor_address)
    try:
        block = rpc(lambda: chain.w3.eth.get_block("latest"))
        paid = int(rpc(lambda: settlement.functions.paidOf(key).call(block_identifier=block["number"])))
        version = int(rpc(lambda: anchor.functions.termsVersion(key).call(block_identifier=block["number"])))
    except ChainUnavailable as error:
        raise Conflict(f"the chain does not answer: {error}", code="chain_unavailable") from error
    return {"block_number": int(block["number"]), "timestamp": int(block["timestamp"]), "paid": paid,
            "terms_version": version or 1}  # fmt: skip


def _request_json(request: tuple[Any, ...]) -> dict[str, Any]:
    key, kind, document_hash, terms, leaf_index, tree_size, amount, proof = request
    return {
        "invoice_key": "0x" + key.hex(), "kind": kind, "document_hash": "0x" + document_hash.hex(),
        "terms": [value.lower() if isinstance(value, str) else value for value in terms],
        "leaf_index": leaf_index, "tree_size": tree_size, "amount": str(amount),
        "proof": ["0x" + item.hex() for item in proof],
    }  # fmt: skip


def request_from_json(data: dict[str, Any], amount: int | None = None) -> tuple[Any, ...]:
    """Inverse of `_request_json` (what `tally pay` reads from saved instructions)."""
    terms = Terms.from_abi_tuple(tuple(data["terms"]))
    return payment_request(
        terms, invoice_key=from_hex(data["invoice_key"], error=LedgerError), kind=int(data["kind"]),
        document_hash=from_hex(data["document_hash"], error=LedgerError), leaf_index=int(data["leaf_index"]),
        tree_size=int(data["tree_size"]), amount=int(amount if amount is not None else data["amount"]),
        proof=[from_hex(item, error=LedgerError) for item in data["proof"]],
    )  # fmt: skip
