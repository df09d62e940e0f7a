"""LedgerAnchor over web3 for the anchorer: reads, EIP-1559 fees, signed `anchor()` transactions.

Every failure to reach the endpoint surfaces as `ChainUnavailable` (the worker backs off on it);
a call the contract refuses surfaces as `AnchorRefused` with the custom error's name, so nothing
that would revert is ever sent. web3's own retry loop is switched off (`connect_rpc`): the worker
has its own bounded back-off, and a retried `eth_sendRawTransaction` must stay our decision.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import (
    BlockNotFound,
    ContractCustomError,
    ContractLogicError,
    RequestTimedOut,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)

from backend.anchoring.config import AnchorerConfig
from backend.chain.client import decode_revert, load_artifact

T = TypeVar("T")
HEAD_ANCHORED_TOPIC = keccak(text="HeadAnchored(uint64,bytes32,uint64)")
_ALREADY_KNOWN = ("already known", "known transaction", "alreadyknown", "already imported")
_NONCE_TOO_LOW = ("nonce too low", "noncetoolow", "nonce is too low")


class ChainUnavailable(RuntimeError):
    """The RPC endpoint did not answer (connection refused, timeout, 5xx)."""


class AnchorRefused(RuntimeError):
    """The contract would revert this call; `reason` is the custom error's name."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class NonceConsumed(RuntimeError):
    """The node says our nonce is already used: a sibling transaction (or another sender with
    this key) took it."""


def connect_rpc(rpc_url: str, timeout_s: float) -> Web3:
    """A Web3 over HTTP with no automatic retries (the caller owns retrying)."""
    provider = Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}, exception_retry_configuration=None)
    return Web3(provider)


_UNAVAILABLE: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
    RequestTimedOut,
    TimeExhausted,
)


def rpc(call: Callable[[], T]) -> T:
    """Run one RPC call; map transport failures to ChainUnavailable."""
    try:
        return call()
    except _UNAVAILABLE as error:
        raise ChainUnavailable(f"{type(error).__name__}: {str(error)[:200]}") from error


@dataclass(frozen=True)
class Fees:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int


@dataclass(frozen=True)
class SignedAnchor:
    raw: bytes
    tx_hash: bytes
    nonce: int
    gas_limit: int
    fees: Fees


@dataclass(frozen=True)
class MinedReceipt:
    block_number: int
    block_hash: bytes
    status: int
    gas_used: int
    effective_gas_price: int


@dataclass(frozen=True)
class AnchoredEvent:
    tree_size: int
    root: bytes
    previous_size: int
    tx_hash: bytes
    block_number: int
    block_hash: bytes


class AnchorChain:
    """The anchorer's view of one LedgerAnchor on one chain, signing with one account."""

    def __init__(self, w3: Web3, contract_address: str, account: LocalAccount, config: AnchorerConfig):
        self.w3 = w3
        self.account = account
        self.config = config
        self.contract: Contract = w3.eth.contract(
            address=Web3.to_checksum_address(contract_address), abi=load_artifact("LedgerAnchor")["abi"]
        )
        self.contract_address = contract_address.lower()
        self.sender = account.address.lower()
        self.chain_id: int = rpc(lambda: w3.eth.chain_id)

    # --- reads ---------------------------------------------------------------------------------

    def latest(self) -> tuple[int, bytes]:
        size, root = rpc(lambda: self.contract.functions.latest().call())
        return int(size), bytes(root)

    def root_at(self, tree_size: int) -> bytes:
        return bytes(rpc(lambda: self.contract.functions.rootAt(tree_size).call()))

    def block_number(self) -> int:
        return int(rpc(lambda: self.w3.eth.block_number))

    def block_hash(self, number: int) -> bytes | None:
        try:
            return bytes(rpc(lambda: self.w3.eth.get_block(number))["hash"])
        except BlockNotFound:
            return None

    def nonce(self, block: str = "latest") -> int:
        address = self.account.address
        return int(rpc(lambda: self.w3.eth.get_transaction_count(address, block)))  # type: ignore[arg-type]

    def receipt(self, tx_hash: bytes) -> MinedReceipt | None:
        try:
            found = rpc(lambda: self.w3.eth.get_transaction_receipt(tx_hash))  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        if found.get("blockNumber") is None:
            return None
        return MinedReceipt(
            block_number=int(found["blockNumber"]),
            block_hash=bytes(found["blockHash"]),
            status=int(found["status"]),
            gas_used=int(found["gasUsed"]),
            effective_gas_price=int(found.get("effectiveGasPrice") or 0),
        )

    def transaction_known(self, tx_hash: bytes) -> bool:
        """True when the node knows the transaction (pending in its pool, or mined)."""
        try:
            rpc(lambda: self.w3.eth.get_transaction(tx_hash))  # type: ignore[arg-type]
        except TransactionNotFound:
            return False
        return True

    def transaction(self, tx_hash: bytes) -> Any:
        return rpc(lambda: self.w3.eth.get_transaction(tx_hash))  # type: ignore[arg-type]

    def find_anchored(self, tree_size: int, *, from_block: int = 0) -> AnchoredEvent | None:
        """The HeadAnchored event of `tree_size` (treeSize is indexed), scanning back from the
        head in bounded block ranges."""
        head = self.block_number()
        lowest = max(from_block, head - self.config.log_lookback_blocks_max)
        topic = "0x" + tree_size.to_bytes(32, "big").hex()
        end = head
        while end >= lowest:
            start = max(lowest, end - self.config.log_block_range_max + 1)
            params: Any = {
                "address": self.contract.address,
                "fromBlock": start,
                "toBlock": end,
                "topics": ["0x" + HEAD_ANCHORED_TOPIC.hex(), topic],
            }
            logs = rpc(lambda params=params: self.w3.eth.get_logs(params))
            if logs:
                log = logs[-1]
                root, previous = abi_decode(["bytes32", "uint64"], bytes(log["data"]))
                return AnchoredEvent(
                    tree_size,
                    bytes(root),
                    int(previous),
                    bytes(log["transactionHash"]),
                    int(log["blockNumber"]),
                    bytes(log["blockHash"]),
                )
            end = start - 1
        return None

    # --- fees and transactions -----------------------------------------------------------------

    def fees(self) -> Fees:
        """EIP-1559 fees for the next block, within the configured bounds: a tip from the node's
        suggestion (clamped), and a max fee of twice the base fee plus the tip (capped)."""
        config = self.config
        block = rpc(lambda: self.w3.eth.get_block("latest"))
        base_fee = int(block.get("baseFeePerGas") or 0)
        try:
            suggested = int(rpc(lambda: self.w3.eth.max_priority_fee))
        except (Web3RPCError, ValueError):
            suggested = config.priority_fee_min
        tip = min(max(suggested, config.priority_fee_min), config.priority_fee_max)
        max_fee = min(2 * base_fee + tip, config.max_fee_per_gas_max)
        return Fees(max_fee_per_gas=max(max_fee, tip), max_priority_fee_per_gas=tip)

    def bumped(self, old: Fees) -> Fees | None:
        """Fees for a replacement: at least the bump over `old` and at least the current fees,
        within the cap; None when the cap leaves no room for a valid replacement."""
        config = self.config
        now = self.fees()

        def bump(value: int) -> int:
            return -(-value * config.replacement_bump_numerator // config.replacement_bump_denominator) + 1

        tip = max(bump(old.max_priority_fee_per_gas), now.max_priority_fee_per_gas)
        max_fee = max(bump(old.max_fee_per_gas), now.max_fee_per_gas, tip)
        if max_fee > config.max_fee_per_gas_max:
            return None
        return Fees(max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip)

    def _call(
        self, new_size: int, new_root: bytes, proof: Sequence[bytes], updates: Sequence[tuple[bytes, int]]
    ) -> Any:
        return self.contract.functions.anchor(new_size, new_root, list(proof), [tuple(u) for u in updates])

    def build_anchor(
        self,
        *,
        new_size: int,
        new_root: bytes,
        proof: Sequence[bytes],
        updates: Sequence[tuple[bytes, int]],
        nonce: int,
        fees: Fees,
        gas_limit: int | None = None,
    ) -> SignedAnchor:
        """Sign `anchor(newSize, newRoot, proof, updates)`. The gas estimate doubles as a dry run:
        a call the contract would refuse raises AnchorRefused and nothing is signed."""
        call = self._call(new_size, new_root, proof, updates)
        if gas_limit is None:
            try:
                estimate = rpc(lambda: call.estimate_gas({"from": self.account.address}))
            except ContractCustomError as error:
                revert = decode_revert(error.data)
                raise AnchorRefused(revert.name, str(revert)) from error
            except ContractLogicError as error:
                raise AnchorRefused("reverted", str(error)[:200]) from error
            gas_limit = min(estimate * 5 // 4 + 10_000, self.config.gas_limit_max)
        transaction = call.build_transaction(
            {
                "from": self.account.address,
                "chainId": self.chain_id,
                "nonce": nonce,
                "gas": gas_limit,
                "maxFeePerGas": fees.max_fee_per_gas,
                "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
            }
        )
        signed = self.account.sign_transaction(transaction)
        return SignedAnchor(bytes(signed.raw_transaction), bytes(signed.hash), nonce, gas_limit, fees)

    def send_raw(self, raw: bytes) -> None:
        """Broadcast a signed transaction; sending one the node already has is not an error."""
        try:
            rpc(lambda: self.w3.eth.send_raw_transaction(raw))
        except Web3RPCError as error:
            text = str(error).lower().replace(" ", "")
            if any(marker.replace(" ", "") in text for marker in _ALREADY_KNOWN):
                return
            if any(marker.replace(" ", "") in text for marker in _NONCE_TOO_LOW):
                raise NonceConsumed(str(error)[:200]) from error
            raise
