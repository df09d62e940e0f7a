"""The reconciler books each payment exactly once: an anvil_reorg of depth 3 reverses a payment and it is booked again when mined again; redelivered logs change nothing; a worker killed mid-scan leaves no gap and no double; two workers never double-book."""  # noqa: E501

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from settlement_kit import World, make_world
from sqlalchemy import select, update
from web3.exceptions import TransactionNotFound

from backend.audit import database_input, run_audit
from backend.chain.client import contract_at
from backend.db import transaction
from backend.models import ChainCursor, Payment
from backend.services.journal import journal_totals
from backend.settings import REPO_ROOT
from backend.settlement import booking
from backend.settlement.chainlogs import ChainReader
from backend.settlement.instructions import request_from_json


class SimulatedCrash(Exception):
    pass


@pytest.fixture
def world(postgres_url: str, tmp_path: Path) -> Iterator[World]:
    with make_world(postgres_url, tmp_path) as made:
        yield made


def _open_invoices(world: World, count: int) -> tuple[object, list[dict]]:
    payer = world.wallet(tokens=10_000)
    customer = world.customer([payer.address])
    invoices = [world.invoice(customer, 1_000 + index) for index in range(count)]
    world.anchor()
    return payer, invoices


def _booked_once(world: World, invoices: list[dict]) -> None:
    payments = [row for row in world.payments() if row.status == "succeeded"]
    assert sorted(row.invoice_id for row in payments) == sorted(invoice["id"] for invoice in invoices)
    assert all(world.get_invoice(invoice["id"])["status"] == "paid" for invoice in invoices)
    assert [row.bookings for row in world.chain_payments()] == [1] * len(invoices)
    assert world.journal_balanced()


def test_reorg_of_depth_3_reverses_the_payment_and_books_it_again_when_mined_again(world: World) -> None:
    payer, (invoice,) = _open_invoices(world, 1)
    instructions = world.instructions(invoice["id"])
    amount = int(instructions["amount_token"])
    world.send(payer, world.token().functions.approve(world.w3.to_checksum_address(instructions["approval"]["spender"]),
                                                      amount))  # fmt: skip
    world.rpc("anvil_mine", [2])
    world.reconcile()  # the worker has read up to here: a stored block below the payment
    w3 = world.w3
    settlement = contract_at(w3, "InvoiceSettlement", instructions["settlement_contract"])
    call = settlement.functions.pay(request_from_json(instructions["request"]))
    raw = payer.sign_transaction(call.build_transaction(
        {"from": payer.address, "nonce": w3.eth.get_transaction_count(payer.address)})).raw_transaction  # fmt: skip
    mined = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw), poll_latency=0.01)
    world.rpc("anvil_mine", [2])
    world.reconcile()
    assert world.get_invoice(invoice["id"])["status"] == "paid"

    world.rpc("anvil_reorg", [3, []])  # the payment's block and the two after it are replaced
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction_receipt(mined["transactionHash"])
    world.reconcile()
    after = world.get_invoice(invoice["id"])
    assert (after["status"], after["paid_minor"]) == ("open", 0)
    (row,) = world.chain_payments()
    assert (row.status, row.reason) == ("reversed", "reorged")
    assert [payment.status for payment in world.payments()] == ["reversed"]
    assert [entry.document["kind"] for entry in world.entries(invoice["id"])][-2:] == ["payment_booked",
                                                                                       "payment_reversed"]  # fmt: skip

    again = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw), poll_latency=0.01)
    assert again["blockHash"] != mined["blockHash"]
    world.reconcile()
    assert world.get_invoice(invoice["id"])["status"] == "paid"
    (row,) = world.chain_payments()
    assert (row.status, row.bookings, bytes(row.block_hash)) == ("booked", 2, bytes(again["blockHash"]))
    assert [payment.status for payment in world.payments()] == ["reversed", "succeeded"]
    assert world.journal_balanced()
    world.anchor()  # the reversal and the second booking are anchored like everything else


def _pay_where_a_reorg_of_3_reaches(world: World, payer: Any, invoice_id: str, amount: int | None = None) -> None:
    """Pay through InvoiceSettlement in a block that `anvil_reorg [3, []]` removes, and book it (the
    reconciler has stored a block below it, so it repairs the reorg instead of starting over)."""
    instructions = world.instructions(invoice_id)
    amount = int(instructions["amount_token"]) if amount is None else amount
    world.send(payer, world.token().functions.approve(world.w3.to_checksum_address(instructions["approval"]["spender"]),
                                                      amount))  # fmt: skip
    world.rpc("anvil_mine", [2])
    world.reconcile()
    w3 = world.w3
    settlement = contract_at(w3, "InvoiceSettlement", instructions["settlement_contract"])
    call = settlement.functions.pay(request_from_json(instructions["request"], amount))
    raw = payer.sign_transaction(call.build_transaction(
        {"from": payer.address, "nonce": w3.eth.get_transaction_count(payer.address)})).raw_transaction  # fmt: skip
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw), poll_latency=0.01)
    assert receipt["status"] == 1, f"pay reverted: {receipt}"  # say so here, not as an unbooked invoice later
    world.rpc("anvil_mine", [2])
    world.reconcile()


def test_a_payment_reorged_away_after_the_write_off_is_written_off_too(world: World) -> None:
    """Pay 40 on-chain, write off 60, a reorg takes the 40 away: all 100 is bad debt, nothing stays
    in the receivable; a full recovery then brings bad debt back to zero, and the audit agrees."""
    payer = world.wallet()
    invoice = world.invoice(world.customer([payer.address]), 10_000, terms={"partial_allowed": True})
    world.anchor()
    _pay_where_a_reorg_of_3_reaches(world, payer, invoice["id"], 40 * 10**6)
    assert world.get_invoice(invoice["id"])["paid_minor"] == 4_000
    world.api("POST", f"/v1/invoices/{invoice['id']}/mark_uncollectible")

    world.rpc("anvil_reorg", [3, []])
    world.reconcile()
    after = world.get_invoice(invoice["id"])
    assert (after["status"], after["paid_minor"], after["written_off_minor"]) == ("uncollectible", 0, 10_000)
    assert [row.status for row in world.chain_payments()] == ["reversed"]
    books = _books(world)
    assert (books.get("accounts_receivable", 0), books["bad_debt"]) == (0, 10_000)

    world.api("POST", "/v1/payments", {"invoice": invoice["id"], "amount_minor": 10_000, "currency": "usd",
                                       "method": "bank", "reference": "recovered"})  # fmt: skip
    assert world.get_invoice(invoice["id"])["status"] == "paid"
    books = _books(world)
    assert (books.get("accounts_receivable", 0), books.get("bad_debt", 0)) == (0, 0)
    assert world.journal_balanced()
    report = run_audit(database_input(world.sessions, world.settings.ledger_id), chain=None)
    assert (report.ok, report.findings) == (True, [])


def _books(world: World) -> dict[str, int]:
    with transaction(world.sessions) as session:
        return {account: total for (account, _), total in journal_totals(session).items()}


def test_a_reorged_late_payment_gives_the_late_fee_back_to_the_terms(world: World) -> None:
    """The late-fee note's terms version charges no fee; when a reorg takes the payment (and so the
    fee) away, the next version charges the original late fee again."""
    payer = world.wallet()
    now = world.block_timestamp()
    options = {"late_fee_bps": 500, "late_fee_period_s": 86_400, "late_fee_periods_max": 1}
    invoice = world.invoice(world.customer([payer.address]), 10_000, terms=options, due_date=now + 86_400)
    world.anchor()
    world.rpc("evm_increaseTime", [2 * 86_400])
    world.rpc("anvil_mine", [1])
    assert world.instructions(invoice["id"])["amount_token"] == str(105 * 10**6)
    _pay_where_a_reorg_of_3_reaches(world, payer, invoice["id"])
    charged = world.get_invoice(invoice["id"])
    assert (charged["status"], charged["debited_minor"], charged["terms"]["late_fee_bps"]) == ("paid", 500, 0)

    world.rpc("anvil_reorg", [3, []])
    world.reconcile()
    after = world.get_invoice(invoice["id"])
    assert (after["status"], after["paid_minor"], after["debited_minor"], after["credited_minor"]) == (
        "open", 0, 500, 500)  # fmt: skip
    assert after["terms"] == {**invoice["terms"], "version": 3}  # the issued terms, late fee and all
    world.anchor()
    assert world.instructions(invoice["id"])["amount_token"] == str(105 * 10**6)
    assert world.journal_balanced()


def test_a_reorged_discounted_payment_gives_the_discount_back_to_the_terms(world: World) -> None:
    """The discount note's terms version grants no discount; when a reorg takes the payment (and so
    the discount) away, the next version grants the original discount again."""
    payer = world.wallet()
    now = world.block_timestamp()
    options = {"discount_bps": 250, "discount_deadline": now + 5 * 86_400}
    invoice = world.invoice(world.customer([payer.address]), 12_000, terms=options, due_date=now + 30 * 86_400)
    world.anchor()
    instructions = world.instructions(invoice["id"])
    assert instructions["amount_token"] == str(117 * 10**6)
    world.send(payer, world.token().functions.approve(world.w3.to_checksum_address(instructions["approval"]["spender"]),
                                                      117 * 10**6))  # fmt: skip
    world.rpc("anvil_mine", [2])
    world.reconcile()
    w3 = world.w3
    settlement = contract_at(w3, "InvoiceSettlement", instructions["settlement_contract"])
    call = settlement.functions.pay(request_from_json(instructions["request"]))
    raw = payer.sign_transaction(call.build_transaction(
        {"from": payer.address, "nonce": w3.eth.get_transaction_count(payer.address)})).raw_transaction  # fmt: skip
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw), poll_latency=0.01)
    assert receipt["status"] == 1, f"pay reverted: {receipt}"  # say so here, not as an unbooked invoice later
    world.rpc("anvil_mine", [2])
    world.reconcile()
    taken = world.get_invoice(invoice["id"])
    assert (taken["status"], taken["credited_minor"], taken["terms"]["discount_bps"]) == ("paid", 300, 0)

    world.rpc("anvil_reorg", [3, []])
    world.reconcile()
    after = world.get_invoice(invoice["id"])
    assert (after["status"], after["paid_minor"], after["credited_minor"], after["debited_minor"]) == (
        "open", 0, 300, 300)  # fmt: skip
    assert after["terms"] == {**invoice["terms"], "version": 3}  # the issued terms, discount and all
    world.anchor()
    assert world.instructions(invoice["id"])["amount_token"] == str(117 * 10**6)
    assert world.journal_balanced()


def test_redelivered_logs_are_idempotent(world: World) -> None:
    payer, invoices = _open_invoices(world, 2)
    for invoice in invoices:
        world.pay(invoice["id"], payer)
    world.reconcile()
    _booked_once(world, invoices)
    # The same logs again: the cursor set back to the start, and each log handed over directly.
    with transaction(world.sessions) as session:
        session.execute(update(ChainCursor).values(block_number=world.reconciler.start_block - 1,
                                                   block_hash=None))  # fmt: skip
    world.reconcile()
    reader = ChainReader.connect(world.anvil.url, world.addresses["InvoiceSettlement"], 5)
    head = reader.head()
    logs, _ = reader.scan(world.reconciler.start_block, head, [world.payee], payees_per_filter_max=10)
    headers = reader.headers(item.block_number for item in logs)
    with transaction(world.sessions) as session:
        context = booking.Context(ledger_id=world.settings.ledger_id, chain_id=reader.chain_id)
        for item in logs + logs:
            booking.record(session, context, item, headers[item.block_number])
    _booked_once(world, invoices)


def test_worker_crashing_before_commit_leaves_no_gap_and_no_double(world: World) -> None:
    payer, invoices = _open_invoices(world, 6)
    for invoice in invoices:
        world.pay(invoice["id"], payer)  # one block each
    commits = {"count": 0}

    def crash_on_third_chunk(point: str) -> None:
        commits["count"] += 1
        if point == "before_commit" and commits["count"] == 3:
            raise SimulatedCrash("killed between booking and commit")

    doomed = world.new_reconciler(fault=crash_on_third_chunk, logs_per_transaction_max=1)
    with pytest.raises(SimulatedCrash):
        for _ in range(10):
            doomed.tick()
    doomed.close()
    booked_before = len([row for row in world.payments() if row.status == "succeeded"])
    assert booked_before == 2  # two chunks committed, the third rolled back with its cursor move
    world.reconcile(world.new_reconciler(logs_per_transaction_max=1))
    _booked_once(world, invoices)


def test_worker_killed_by_sigkill_mid_scan_leaves_no_gap_and_no_double(world: World, postgres_url: str) -> None:
    payer, invoices = _open_invoices(world, 12)
    for invoice in invoices:
        world.pay(invoice["id"], payer)
    environment = {**os.environ, "TALLY_DATABASE_URL": postgres_url, "TALLY_RPC_URL": world.anvil.url,
                   "TALLY_DATA_DIR": str(world.settings.data_dir),
                   "TALLY_LEDGER_ID": world.settings.ledger_id}  # fmt: skip
    environment.pop("DATABASE_URL", None)
    environment.pop("RPC_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "backend.cli", "worker", "reconcile"], cwd=REPO_ROOT,
                               env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not [row for row in world.payments() if row.status == "succeeded"]:
            assert time.monotonic() < deadline and process.poll() is None, "the worker booked nothing"
            time.sleep(0.005)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    world.reconcile(world.new_reconciler())
    _booked_once(world, invoices)


def test_two_workers_at_once_never_double_book(world: World) -> None:
    payer, invoices = _open_invoices(world, 8)
    for invoice in invoices:
        world.pay(invoice["id"], payer)
    workers = [world.new_reconciler(logs_per_transaction_max=1) for _ in range(2)]
    states: list[list[str]] = [[], []]

    def drive(index: int) -> None:
        for _ in range(200):
            workers[index].step()
            states[index].append(workers[index].last_state)
            if workers[index].last_state == "idle":
                return

    threads = [threading.Thread(target=drive, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for worker in workers:
        worker.close()
    assert any("standby" in seen for seen in states), states
    world.reconcile(world.new_reconciler())
    _booked_once(world, invoices)
    with transaction(world.sessions) as session:
        references = list(session.scalars(select(Payment.reference)))
    assert len(references) == len(set(references)) == len(invoices)
