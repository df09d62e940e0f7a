"""Settlement (DESIGN.md flows 4 and 5): customers pay on-chain; Tally books what the chain says.

Modules: `config` (every bound of the reconciler), `tokens` (the token registry: which token on
which chain stands for which currency), `instructions` (what a payer needs to call
`InvoiceSettlement.pay`), `chainlogs` (reading InvoicePaid and Transfer logs and block headers
over JSON-RPC), `store` (cursor, blocks and chain-payment rows), `booking` (applying a chain
payment to an invoice, suspense, manual apply/unapply, reversal after a reorg), `reconciler` (the
scan loop: ranges, confirmations, reorg detection), `payer` (the payer's side: approve and pay
from a wallet) and `demo` (`tally demo`). The worker loop is `backend.workers.reconciler`.

Every booking goes through `backend.services.payments.book_payment` / `reverse_payment`, the same
path as off-chain payments, so each one appends a ledger entry and balanced journal lines.
"""
