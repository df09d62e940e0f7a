"""Anchoring (DESIGN.md flows 2, 3 and 6): the anchorer's chain side, its transaction records,
receipts built from anchored heads, the ledger export bundle.

Modules: `config` (every bound of the anchorer), `chain` (LedgerAnchor over web3: reads, fees,
signed transactions), `plan` (which head to anchor and its TermsUpdate list), `store` (the
`anchor_transactions` rows and the worker lock), `receipts`, `export`. The worker loop itself is
`backend.workers.anchorer`; the partner-side verifier is `backend.verify` (no database).
"""
