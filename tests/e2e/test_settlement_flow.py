"""End to end: finalize, anchor, pay via the contract, reconciled, paid, payment entry anchored, receipt verifies."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "backend"))

from settlement_kit import World, make_world

from backend.verify import verify_receipt


@pytest.fixture
def world(postgres_url: str, tmp_path: Path) -> Iterator[World]:
    with make_world(postgres_url, tmp_path) as made:
        yield made


def test_invoice_paid_onchain_is_booked_anchored_and_its_receipt_verifies(world: World) -> None:
    payer = world.wallet()
    customer = world.customer(wallets=[payer.address])
    invoice = world.invoice(customer, 12_345)
    assert invoice["terms"]["token"] == world.addresses["TestStablecoin"].lower()
    assert invoice["terms"]["amount_due"] == str(123_450_000)
    world.anchor()

    instructions = world.instructions(invoice["id"])
    assert instructions["amount_token"] == str(123_450_000)
    assert instructions["approval"]["spender"] == world.addresses["InvoiceSettlement"].lower()
    assert instructions["eip681"].startswith("ethereum:")
    assert instructions["calldata"].startswith("0x")
    paid = world.pay(invoice["id"], payer)
    assert paid.amount == 123_450_000

    world.reconcile()
    after = world.get_invoice(invoice["id"])
    assert (after["status"], after["paid_minor"], after["paid_onchain_minor"]) == ("paid", 12_345, 12_345)
    (chain_payment,) = world.chain_payments()
    assert (chain_payment.status, chain_payment.source, chain_payment.amount_minor) == ("booked", "settlement", 12_345)
    assert world.token().functions.balanceOf(world.w3.to_checksum_address(world.payee)).call() == 123_450_000

    world.anchor()
    entry = next(row for row in world.entries(invoice["id"]) if row.kind == 5)
    assert entry.document["chain"]["tx_hash"] == paid.pay_tx
    receipt = world.api("GET", f"/v1/ledger/entries/{entry.sequence}/receipt")
    assert receipt["document"]["kind"] == "payment_booked"
    result = verify_receipt(receipt, world.anvil.url)
    assert result.exit_code == 0, result
    assert world.journal_balanced()
