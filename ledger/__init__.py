"""Tally's domain, pure Python: no database, HTTP or web3 (DESIGN.md). Everything depends on it.

Modules (their names are a contract other parts code against):

- `money`, `currencies`: integer minor units, ISO 4217 exponents, exact token conversion.
- `canonical`: RFC 8785 canonical JSON and `document_hash`.
- `documents`, `entries`: entry kinds, per-kind documents, leaf input, invoice key.
- `terms`: settlement terms and the normative terms math.
- `merkle`: the RFC 9162 log over perfect (level, index) nodes; proofs and verification.
- `receipts`: receipts for trading partners and their offline verification.
- `invoices`: invoice lifecycle, tax, notes, payments, balance identity.
- `errors`, `limits`: named errors with stable codes; every bound in one place.
"""
