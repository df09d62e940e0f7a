"""Reading the chain for the reconciler: block headers, InvoicePaid and ERC-20 Transfer logs.

Raw JSON-RPC (one batch per step: the logs of a range plus the headers around it), parsed here
without web3's formatters: thousands of logs per range, so every microsecond per log counts. A
transport failure is `ChainUnavailable` (the worker backs off); a node refusing a range as too
large is `RangeTooLarge` (the reconciler halves the range).

Logs of a settlement payment come in pairs: `InvoicePaid` from InvoiceSettlement and the token's
`Transfer` from the payer to the payee in the same transaction (`payBatch` moves a run of payments
with one transfer). `plain_transfers` drops the transfers a transaction's InvoicePaid events
account for, so only money that reached a payee outside the contract is left.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils.crypto import keccak
from web3 import Web3

from backend.anchoring.chain import ChainUnavailable, connect_rpc, rpc

INVOICE_PAID_TOPIC = "0x" + keccak(text="InvoicePaid(bytes32,address,address,address,uint256,uint256,uint32)").hex()
TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
_TOO_LARGE = ("more than", "too many", "limit exceeded", "range", "too large", "response size")


class RangeTooLarge(RuntimeError):
    """The node refused the block range (too many results or too wide)."""


@dataclass(frozen=True, slots=True)
class Header:
    number: int
    hash: bytes
    parent_hash: bytes
    timestamp: int


@dataclass(frozen=True, slots=True)
class PaymentLog:
    """One InvoicePaid (`source="settlement"`) or Transfer (`source="transfer"`) log."""

    source: str
    block_number: int
    block_hash: bytes
    tx_hash: bytes
    log_index: int
    token: str  # lowercase 0x hex
    payer: str
    payee: str
    amount: int
    invoice_key: bytes | None = None
    total_paid: int | None = None
    terms_version: int | None = None


def _address_of_topic(topic: str) -> str:
    return "0x" + topic[-40:].lower()


def topic_of_address(address: str) -> str:
    return "0x" + "0" * 24 + address[2:].lower()


def _word(data: str, index: int) -> int:
    start = 2 + 64 * index
    return int(data[start : start + 64], 16)


def parse_log(raw: dict[str, Any], settlement: str) -> PaymentLog | None:
    """A PaymentLog, or None for a log that is not one (removed, ERC-721, malformed)."""
    if raw.get("removed"):
        return None
    topics = raw.get("topics") or []
    data = raw.get("data") or "0x"
    common = {
        "block_number": int(raw["blockNumber"], 16),
        "block_hash": bytes.fromhex(raw["blockHash"][2:]),
        "tx_hash": bytes.fromhex(raw["transactionHash"][2:]),
        "log_index": int(raw["logIndex"], 16),
    }
    address = str(raw["address"]).lower()
    if topics and topics[0] == INVOICE_PAID_TOPIC and address == settlement and len(topics) == 4:
        if len(data) != 2 + 64 * 4:
            return None
        return PaymentLog(
            source="settlement", token=_address_of_topic(topics[3]), payer=_address_of_topic(topics[2]),
            payee="0x" + data[2 + 24 : 2 + 64].lower(), amount=_word(data, 1),
            invoice_key=bytes.fromhex(topics[1][2:]), total_paid=_word(data, 2), terms_version=_word(data, 3),
            **common,
        )  # fmt: skip
    # ERC-20 Transfer: two indexed addresses and the value in data (ERC-721 indexes a third topic).
    if topics and topics[0] == TRANSFER_TOPIC and len(topics) == 3 and len(data) == 2 + 64:
        return PaymentLog(source="transfer", token=address, payer=_address_of_topic(topics[1]),
                          payee=_address_of_topic(topics[2]), amount=_word(data, 0), **common)  # fmt: skip
    return None


def plain_transfers(logs: Iterable[PaymentLog]) -> list[PaymentLog]:
    """Settlement logs, and the transfers no InvoicePaid of the same transaction accounts for.

    Per transaction, InvoicePaid amounts are pooled by (token, payer, payee); each Transfer with
    the same (token, from, to) draws from its pool; one the pool cannot cover is a plain transfer.
    """
    by_tx: dict[bytes, list[PaymentLog]] = defaultdict(list)
    for log in logs:
        by_tx[log.tx_hash].append(log)
    kept: list[PaymentLog] = []
    for group in by_tx.values():
        pool: dict[tuple[str, str, str], int] = defaultdict(int)
        for log in group:
            if log.source == "settlement":
                pool[(log.token, log.payer, log.payee)] += log.amount
        for log in sorted(group, key=lambda item: item.log_index):
            if log.source == "transfer":
                key = (log.token, log.payer, log.payee)
                if pool.get(key, 0) >= log.amount:
                    pool[key] -= log.amount
                    continue
            kept.append(log)
    kept.sort(key=lambda item: (item.block_number, item.log_index))
    return kept


def _header(raw: dict[str, Any] | None) -> Header | None:
    if not raw:
        return None
    return Header(int(raw["number"], 16), bytes.fromhex(raw["hash"][2:]), bytes.fromhex(raw["parentHash"][2:]),
                  int(raw["timestamp"], 16))  # fmt: skip


class ChainReader:
    """The reconciler's view of one chain and one InvoiceSettlement contract."""

    def __init__(self, w3: Web3, settlement: str, *, headers_per_batch_max: int = 500) -> None:
        self.w3 = w3
        self.settlement = settlement.lower()
        self.chain_id = int(rpc(lambda: w3.eth.chain_id))
        self._headers_per_batch_max = headers_per_batch_max

    @classmethod
    def connect(cls, rpc_url: str, settlement: str, timeout_s: float, **kwargs: Any) -> ChainReader:
        return cls(connect_rpc(rpc_url, timeout_s), settlement, **kwargs)

    def deployed_at(self, head: int) -> int:
        """The first block at which the settlement contract has code (bisection: O(log head) calls)."""
        address = Web3.to_checksum_address(self.settlement)
        if not rpc(lambda: self.w3.eth.get_code(address, head)):
            raise ChainUnavailable(f"no code at {self.settlement} on chain {self.chain_id}")
        low, high = 0, head
        while low < high:
            middle = (low + high) // 2
            if rpc(lambda block=middle: self.w3.eth.get_code(address, block)):
                high = middle
            else:
                low = middle + 1
        return low

    def head(self) -> int:
        return int(rpc(lambda: self.w3.eth.block_number))

    def _batch(self, requests: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Send one JSON-RPC batch; results in request order. A node error on a getLogs request
        that names the range or result size is RangeTooLarge; other errors ChainUnavailable."""
        if not requests:
            return []
        replies = rpc(lambda: self.w3.provider.make_batch_request(list(requests)))  # type: ignore[arg-type]
        if isinstance(replies, dict):  # the whole batch was refused
            raise ChainUnavailable(f"batch refused: {str(replies.get('error'))[:200]}")
        by_id = sorted(replies, key=lambda reply: int(reply.get("id", 0)))
        if len(by_id) != len(requests):
            raise ChainUnavailable(f"batch of {len(requests)} answered with {len(by_id)} replies")
        results = []
        for (method, _params), reply in zip(requests, by_id, strict=True):
            error = reply.get("error")
            if error:
                message = str(error.get("message", error) if isinstance(error, dict) else error)
                if method == "eth_getLogs" and any(word in message.lower() for word in _TOO_LARGE):
                    raise RangeTooLarge(message[:200])
                raise ChainUnavailable(f"{method}: {message[:200]}")
            results.append(reply.get("result"))
        return results

    def headers(self, numbers: Iterable[int]) -> dict[int, Header]:
        """Headers by number (a number beyond the head is missing from the result)."""
        wanted = sorted(set(numbers))
        found: dict[int, Header] = {}
        for start in range(0, len(wanted), self._headers_per_batch_max):
            chunk = wanted[start : start + self._headers_per_batch_max]
            replies = self._batch([("eth_getBlockByNumber", [hex(number), False]) for number in chunk])
            for raw in replies:
                header = _header(raw)
                if header is not None:
                    found[header.number] = header
        return found

    def scan(
        self, first: int, last: int, payees: Sequence[str], *, payees_per_filter_max: int
    ) -> tuple[list[PaymentLog], dict[int, Header]]:
        """Every payment log in blocks [first, last] (settlement events and transfers into
        `payees`), and the headers of `first` and `last`, in one batch."""
        span = {"fromBlock": hex(first), "toBlock": hex(last)}
        requests: list[tuple[str, list[Any]]] = [
            ("eth_getBlockByNumber", [hex(first), False]),
            ("eth_getBlockByNumber", [hex(last), False]),
            ("eth_getLogs", [{**span, "address": Web3.to_checksum_address(self.settlement),
                              "topics": [INVOICE_PAID_TOPIC]}]),
        ]  # fmt: skip
        for start in range(0, len(payees), payees_per_filter_max):
            topics = [topic_of_address(payee) for payee in payees[start : start + payees_per_filter_max]]
            requests.append(("eth_getLogs", [{**span, "topics": [TRANSFER_TOPIC, None, topics]}]))
        replies = self._batch(requests)
        headers = {header.number: header for header in map(_header, replies[:2]) if header is not None}
        logs = [log for reply in replies[2:] for raw in reply or [] if (log := parse_log(raw, self.settlement))]
        return plain_transfers(logs), headers
