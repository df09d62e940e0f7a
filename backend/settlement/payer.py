"""The payer's side (`tally pay`): approve the settlement contract if needed, then call `pay`,
from the payer's own wallet. Needs only a JSON-RPC endpoint and either payment instructions (from
the API) or a receipt plus the settlement contract's address; no database.

Every transaction is dry-run first (`eth_estimateGas`), so a payment the contract would refuse is
never sent; the refusal is named (`InvoiceSettlementTermsSuperseded(...)`, ...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError

from backend.chain.client import contract_at, decode_revert
from backend.settings import ANVIL_DEV_KEYS, LOCAL_CHAIN_ID

RECEIPT_TIMEOUT_S_MAX = 120.0


class PaymentRefused(RuntimeError):
    """The contract (or the token) would revert; `reason` names the custom error."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PayerKeyRefused(RuntimeError):
    pass


@dataclass(frozen=True)
class PaidResult:
    approve_tx: str | None
    pay_tx: str
    block_number: int
    amount: int
    gas_used: int


def load_account(
    *, keystore: Path | None, password: str | None, private_key: str | None, chain_id: int
) -> LocalAccount:
    """The payer's key: an encrypted keystore, or (local chain only) a raw private key."""
    if keystore is not None:
        account: LocalAccount = Account.from_key(Account.decrypt(json.loads(keystore.read_text()), password or ""))
    elif private_key:
        if chain_id != LOCAL_CHAIN_ID:
            raise PayerKeyRefused(
                f"--private-key is for the local chain only (this is chain {chain_id}): use --keystore"
            )
        account = Account.from_key(private_key)
    else:
        raise PayerKeyRefused("give --keystore FILE (or --private-key on the local chain)")
    if chain_id != LOCAL_CHAIN_ID and account.key.to_0x_hex().lower() in ANVIL_DEV_KEYS:
        raise PayerKeyRefused(f"a public anvil key is refused on chain {chain_id}")
    return account


class Payer:
    """One wallet paying through one InvoiceSettlement."""

    def __init__(self, w3: Web3, account: LocalAccount, settlement: str, *, poll_s: float = 0.01) -> None:
        self.w3 = w3
        self.account = account
        self.settlement = contract_at(w3, "InvoiceSettlement", settlement)
        self.poll_s = poll_s

    def remaining(self, request: tuple[Any, ...]) -> int:
        return int(self.settlement.functions.remainingNow(request[0], request[3]).call())

    def pay(self, request: tuple[Any, ...], amount: int | None = None) -> PaidResult:
        """Approve (if the allowance is short) and pay `amount` (default: all that is due now)."""
        amount = self.remaining(request) if amount is None else amount
        if amount <= 0:
            raise PaymentRefused("nothing is due on this invoice")
        request = (*request[:6], amount, request[7])
        token_address = request[3][1]
        approve_tx = None
        if int(token_address, 16) != 0:
            token = contract_at(self.w3, "TestStablecoin", token_address)  # any ERC-20 ABI
            allowance = int(token.functions.allowance(self.account.address, self.settlement.address).call())
            if allowance < amount:
                approve_tx, _ = self._send(token.functions.approve(self.settlement.address, amount))
        value = amount if int(token_address, 16) == 0 else 0
        pay_tx, receipt = self._send(self.settlement.functions.pay(request), value=value)
        return PaidResult(approve_tx, pay_tx, int(receipt["blockNumber"]), amount, int(receipt["gasUsed"]))

    def _send(self, call: Any, value: int = 0) -> tuple[str, Any]:
        params = {"from": self.account.address, "value": value,
                  "nonce": self.w3.eth.get_transaction_count(self.account.address, "pending")}  # fmt: skip
        try:
            transaction = call.build_transaction(params)  # estimates gas: refusals surface here
        except (ContractCustomError, ContractLogicError) as error:
            raise PaymentRefused(str(decode_revert(getattr(error, "data", None) or str(error)))) from error
        signed = self.account.sign_transaction(transaction)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S_MAX,
                                                           poll_latency=self.poll_s)  # fmt: skip
        if receipt["status"] != 1:
            raise PaymentRefused(f"transaction {tx_hash.to_0x_hex()} reverted")
        return tx_hash.to_0x_hex(), receipt


def wait_mined(w3: Web3, tx_hash: str, poll_s: float = 0.01) -> Any:
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S_MAX, poll_latency=poll_s)
