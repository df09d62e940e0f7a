"""Every bound the ledger package enforces, in one place (STYLE.md: "put a limit on everything").

Names end in `_max` (or `_min`) and carry their unit. Other packages import these instead of
repeating the numbers, so an API page size or a proof check never disagrees with the domain.
"""

from __future__ import annotations

# --- Merkle log -------------------------------------------------------------------------------
# Tree sizes and leaf indices are uint64 on-chain (LedgerAnchor.rootAt(uint64), verifyInclusion).
tree_size_max = 2**64 - 1
# A leaf in a tree of at most 2**64 - 1 leaves sits at most 64 levels deep: one sibling per level.
inclusion_proof_hashes_max = 64
# RFC 9162 2.1.4.2 walks at most 64 levels for uint64 sizes, plus the seed hash of the old tree.
consistency_proof_hashes_max = 65
hash_bytes = 32

# --- Money ------------------------------------------------------------------------------------
# Document amounts must survive RFC 8785 (IEEE-754 doubles): |amount| <= 2**53 - 1 minor units.
json_integer_max = 2**53 - 1
amount_minor_abs_max = json_integer_max
# Token amounts are uint256 on-chain.
token_amount_max = 2**256 - 1
# Settlement terms keep products of amountDue * bps * periods inside 256 bits (formats.md).
terms_amount_due_max = 2**200 - 1
# ERC-20 decimals() is a uint8; ISO 4217 exponents are at most 4 today.
token_decimals_max = 255
currency_exponent_max = 18
# Longest decimal string accepted by the money parser (digits, sign and point).
decimal_string_chars_max = 64

# --- Basis points -----------------------------------------------------------------------------
bps_denominator = 10_000
discount_bps_max = 10_000
tax_bps_max = 10_000

# --- Documents and entries --------------------------------------------------------------------
document_bytes_max = 64 * 1024  # canonical JSON of one entry document
document_depth_max = 16  # nesting of objects and arrays
identifier_chars_max = 64  # invoice_id, customer_id, payment_id, ...
text_chars_max = 1_000  # free text: descriptions, reasons
invoice_lines_max = 500
line_quantity_max = 10**9

# --- Receipts ---------------------------------------------------------------------------------
receipt_version = 1
receipt_bytes_max = 256 * 1024
