"""Without a chain: the token registry and finalize (exact or refused), log parsing and the pairing of settlement transfers, the reconciler's bounds, the payer's key rules, and the settlement tables match their migration."""  # noqa: E501

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from api_support import Api
from eth_account import Account
from web3 import Web3

from backend.db import Base, create_engine, session_factory, transaction
from backend.services.common import Conflict
from backend.settings import ANVIL_DEV_KEYS, LOCAL_CHAIN_ID
from backend.settlement import tokens as registry
from backend.settlement.chainlogs import INVOICE_PAID_TOPIC, TRANSFER_TOPIC, PaymentLog, parse_log, plain_transfers
from backend.settlement.config import ReconcilerConfig
from backend.settlement.instructions import eip681_transfer
from backend.settlement.payer import PayerKeyRefused, load_account

TOKEN = "0x" + "a1" * 20
SETTLEMENT = "0x" + "5e" * 20
PAYER, PAYEE = "0x" + "01" * 20, "0x" + "02" * 20


def test_settlement_tables_match_their_migration(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    ours = ("settlement_tokens", "chain_cursors", "chain_blocks", "chain_payments", "suspense_suggestions")
    assert [item for item in differences if any(name in str(item) for name in ours)] == []


def test_registry_defaults_conflicts_and_disable(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        first = registry.register_token(session, chain_id=1, address=TOKEN, currency="USD", decimals=6)
        second = registry.register_token(session, chain_id=1, address="0x" + "b2" * 20, currency="usd", decimals=18)
        assert (first.is_default, second.is_default, first.currency) == (True, False, "usd")
        registry.update_token(session, token_id=second.id, is_default=True)
        session.flush()
        session.refresh(first)
        assert (first.is_default, second.is_default) == (False, True)
        assert registry.register_token(session, chain_id=1, address=TOKEN.upper().replace("0X", "0x"),
                                       currency="usd", decimals=6).id == first.id  # fmt: skip
        with pytest.raises(Conflict) as refused:
            registry.register_token(session, chain_id=1, address=TOKEN, currency="usd", decimals=18)
        assert refused.value.code == "token_already_registered"
    with transaction(sessions) as session:
        registry.register_token(session, chain_id=10, address=TOKEN, currency="usd", decimals=6)
        with pytest.raises(Conflict) as ambiguous:
            registry.default_tokens(session, ["usd"])
        assert ambiguous.value.code == "token_ambiguous"
        registry.disable_token(session, token_id=registry.token_at(session, 10, TOKEN).id)
        assert registry.token_at(session, 10, TOKEN) is None
        assert registry.default_tokens(session, ["usd"])["usd"].decimals == 18
    engine.dispose()


def test_finalize_takes_the_registry_token_exactly_or_refuses(any_api: Api) -> None:
    token = any_api.post("/v1/settlement_tokens", {"chain_id": LOCAL_CHAIN_ID, "address": TOKEN, "currency": "usd",
                                                   "decimals": 6, "symbol": "tUSD"}).json()  # fmt: skip
    assert token["is_default"] is True
    customer = any_api.customer()["id"]
    invoice = any_api.invoice(customer, finalize=True)
    assert (invoice["terms"]["token"], invoice["token_decimals"]) == (TOKEN, 6)
    assert invoice["terms"]["amount_due"] == str(invoice["total_minor"] * 10_000)
    assert invoice["settlement"]["chain_id"] == LOCAL_CHAIN_ID
    # A whole-unit token cannot hold cents: finalize refuses rather than round.
    whole = "0x" + "c3" * 20
    any_api.post("/v1/settlement_tokens", {"chain_id": LOCAL_CHAIN_ID, "address": whole, "currency": "usd",
                                           "decimals": 0, "is_default": True})  # fmt: skip
    odd = {"description": "Odd", "quantity": 1, "unit_amount_minor": 150, "tax_bps": 0}
    refused = any_api.post("/v1/invoices", {"customer": customer, "lines": [odd], "finalize": True})
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "inexact_conversion")
    any_api.delete(f"/v1/settlement_tokens/{token['id']}")
    listed = any_api.get("/v1/settlement_tokens").json()["data"]
    assert [item["address"] for item in listed] == [whole]


def _log(source: str, tx: int, index: int, amount: int, payer: str = PAYER, **extra: object) -> PaymentLog:
    return PaymentLog(source=source, block_number=7, block_hash=b"\x07" * 32, tx_hash=bytes([tx]) * 32,
                      log_index=index, token=TOKEN, payer=payer, payee=PAYEE, amount=amount, **extra)  # type: ignore[arg-type]  # fmt: skip


def test_transfers_made_by_the_settlement_contract_are_not_plain_transfers() -> None:
    paid = {"invoice_key": b"\x01" * 32, "total_paid": 0, "terms_version": 1}
    logs = [  # one block: log indexes run across its transactions
        _log("settlement", 1, 0, 100, **paid), _log("transfer", 1, 1, 100),  # pay(): pair absorbed
        _log("settlement", 2, 2, 50, **paid), _log("settlement", 2, 3, 70, **paid),
        _log("transfer", 2, 4, 120),  # payBatch: one transfer for the run
        _log("settlement", 3, 5, 10, **paid), _log("transfer", 3, 6, 10, payer="0x" + "09" * 20),  # someone else
        _log("transfer", 4, 7, 5),  # a plain transfer
    ]  # fmt: skip
    kept = plain_transfers(logs)
    assert [(item.tx_hash[0], item.source, item.amount) for item in kept] == [
        (1, "settlement", 100), (2, "settlement", 50), (2, "settlement", 70), (3, "settlement", 10),
        (3, "transfer", 10), (4, "transfer", 5)]  # fmt: skip


def test_parse_log_reads_events_and_skips_what_is_not_a_payment() -> None:
    word = lambda value: f"{value:064x}"  # noqa: E731
    base = {"blockNumber": "0x7", "blockHash": "0x" + "07" * 32, "transactionHash": "0x" + "01" * 32, "logIndex": "0x3"}
    topics = [INVOICE_PAID_TOPIC, "0x" + "ab" * 32, "0x" + word(int(PAYER, 16)), "0x" + word(int(TOKEN, 16))]
    data = "0x" + word(int(PAYEE, 16)) + word(5) + word(9) + word(2)
    paid = {**base, "address": SETTLEMENT, "topics": topics, "data": data}
    event = parse_log(paid, SETTLEMENT)
    assert event is not None
    assert (event.source, event.payer, event.token, event.payee, event.amount, event.total_paid, event.terms_version,
            event.log_index) == ("settlement", PAYER, TOKEN, PAYEE, 5, 9, 2, 3)  # fmt: skip
    assert parse_log({**paid, "address": "0x" + "99" * 20}, SETTLEMENT) is None  # another contract's event
    transfer = {**base, "address": TOKEN, "topics": [TRANSFER_TOPIC, "0x" + word(int(PAYER, 16)),
                "0x" + word(int(PAYEE, 16))], "data": "0x" + word(42)}  # fmt: skip
    assert parse_log(transfer, SETTLEMENT).amount == 42  # type: ignore[union-attr]
    assert parse_log({**transfer, "removed": True}, SETTLEMENT) is None
    nft = {**transfer, "topics": [*transfer["topics"], "0x" + word(1)], "data": "0x"}
    assert parse_log(nft, SETTLEMENT) is None


def test_reconciler_bounds_are_checked() -> None:
    assert ReconcilerConfig().confirmations == 1
    for bad in ({"confirmations": -1}, {"block_range_max": 0}, {"reorg_depth_max": 0},
                {"reorg_depth_max": 10, "blocks_kept_max": 5}, {"backoff_min_s": 0}):  # fmt: skip
        with pytest.raises(ValueError):
            ReconcilerConfig(**bad)  # type: ignore[arg-type]


def test_raw_keys_are_for_the_local_chain_and_anvil_keys_never_leave_it(tmp_path) -> None:
    assert load_account(keystore=None, password=None, private_key=ANVIL_DEV_KEYS[1], chain_id=LOCAL_CHAIN_ID)
    with pytest.raises(PayerKeyRefused):
        load_account(keystore=None, password=None, private_key=Account.create().key.hex(), chain_id=1)
    keystore = tmp_path / "anvil.json"
    keystore.write_text(__import__("json").dumps(Account.encrypt(ANVIL_DEV_KEYS[1], "pw", kdf="pbkdf2",
                                                                 iterations=1_000)))  # fmt: skip
    with pytest.raises(PayerKeyRefused):
        load_account(keystore=keystore, password="pw", private_key=None, chain_id=1)


def test_eip681_uri_of_a_token_transfer() -> None:
    uri = eip681_transfer(TOKEN, 31337, PAYEE, 1_500_000)
    token, payee = Web3.to_checksum_address(TOKEN), Web3.to_checksum_address(PAYEE)
    assert uri == f"ethereum:{token}@31337/transfer?address={payee}&uint256=1500000"


def test_a_chunk_with_a_transfer_locks_the_candidate_invoices_before_any_booking(api: Api) -> None:
    """Lock order: invoices before the ledger head, as the API takes them (no deadlock with it)."""
    from psycopg.errors import LockNotAvailable
    from sqlalchemy import select
    from sqlalchemy.exc import OperationalError

    from backend.models import Invoice
    from backend.settlement import booking

    customer = api.customer(wallet_addresses=[PAYER])["id"]
    invoice = api.invoice(customer, finalize=True)["id"]
    other = api.invoice(api.customer()["id"], finalize=True)["id"]  # another customer's: not a candidate
    sessions = api.app.state.tally.sessions
    with transaction(sessions) as session:
        booking.Context(ledger_id="test-ledger", chain_id=LOCAL_CHAIN_ID).prefetch(session, [_log("transfer", 1, 0, 5)])
        with transaction(sessions) as rival:
            with pytest.raises(OperationalError) as locked:
                rival.execute(select(Invoice.id).where(Invoice.id == invoice).with_for_update(nowait=True))
            assert isinstance(locked.value.orig, LockNotAvailable)
        with transaction(sessions) as rival:
            rival.execute(select(Invoice.id).where(Invoice.id == other).with_for_update(nowait=True))
