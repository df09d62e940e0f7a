"""On anvil and PostgreSQL, payments are booked exactly as the contract computed them: partial, early-payment discount and late fee (each taken once), fractions of a cent, after a credit note, off-chain then on-chain; plain transfers matched, overpaid to credit, or parked."""  # noqa: E501

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from settlement_kit import DAY_S, USDC, World, make_world
from sqlalchemy import select

from backend.db import transaction
from backend.models import ChainPayment
from backend.settlement import booking
from ledger.terms import Terms, amount_due_at


@pytest.fixture
def world(postgres_url: str, tmp_path: Path) -> Iterator[World]:
    with make_world(postgres_url, tmp_path) as made:
        yield made


def test_partial_payments_then_the_rest(world: World) -> None:
    payer = world.wallet()
    invoice = world.invoice(world.customer([payer.address]), 10_000, terms={"partial_allowed": True})
    world.anchor()
    world.pay(invoice["id"], payer, 40 * USDC)
    world.reconcile()
    assert (world.get_invoice(invoice["id"])["status"], world.get_invoice(invoice["id"])["paid_minor"]) == (
        "partially_paid",
        4_000,
    )
    assert world.instructions(invoice["id"])["amount_token"] == str(60 * USDC)
    world.pay(invoice["id"], payer)
    world.reconcile()
    after = world.get_invoice(invoice["id"])
    assert (after["status"], after["paid_minor"], after["paid_onchain_minor"]) == ("paid", 10_000, 10_000)
    assert [row.total_paid_token for row in world.chain_payments()] == [str(40 * USDC), str(100 * USDC)]
    assert world.journal_balanced()


def test_early_payment_discount_is_a_credit_note_of_exactly_what_the_contract_took_off(world: World) -> None:
    payer = world.wallet()
    now = world.block_timestamp()
    terms = {"discount_bps": 250, "discount_deadline": now + 5 * DAY_S}
    invoice = world.invoice(world.customer([payer.address]), 12_000, terms=terms, due_date=now + 30 * DAY_S)
    world.anchor()
    instructions = world.instructions(invoice["id"])
    discounted = 120 * USDC - 120 * USDC * 250 // 10_000
    assert instructions["amount_token"] == str(discounted)
    world.pay(invoice["id"], payer)
    world.reconcile()
    after = world.get_invoice(invoice["id"])
    paid_minor = discounted // 10_000
    assert (after["status"], after["paid_minor"], after["credited_minor"]) == ("paid", paid_minor, 12_000 - paid_minor)
    (row,) = world.chain_payments()
    assert row.adjustment_minor == -(12_000 - paid_minor) == -300 and row.adjustment_note_id.startswith("cn_")
    kinds = [entry.document["kind"] for entry in world.entries(invoice["id"])]
    assert kinds == ["invoice_issued", "credit_note", "payment_booked"]
    assert world.journal_balanced()


def test_a_taken_discount_is_never_granted_again_by_the_next_terms(world: World) -> None:
    """A debit note inside the discount window, after a discounted payment: the contract asks the
    whole debit, since the discount note's terms version (v2) grants no discount any more."""
    payer = world.wallet()
    now = world.block_timestamp()
    terms = {"discount_bps": 250, "discount_deadline": now + 5 * DAY_S}
    invoice = world.invoice(world.customer([payer.address]), 12_000, terms=terms, due_date=now + 30 * DAY_S)
    world.anchor()
    world.pay(invoice["id"], payer)  # $117.00: $3.00 off
    world.settle()
    taken = world.get_invoice(invoice["id"])["terms"]
    assert (taken["version"], taken["discount_bps"], taken["discount_deadline"]) == (2, 0, 0)
    line = {"description": "Extra work", "quantity": 1, "unit_amount_minor": 2_000, "tax_bps": 0}
    world.api("POST", "/v1/debit_notes", {"invoice": invoice["id"], "lines": [line]})
    world.anchor()
    # With v2 still at 2.5 %, v3 ($137.00) would ask $133.575: $16.575 left instead of the $20.00 owed.
    assert world.contract_view(invoice["id"]) == (3, 137 * USDC, 20 * USDC)
    assert world.instructions(invoice["id"])["amount_token"] == str(20 * USDC)
    world.pay(invoice["id"], payer)
    world.settle()
    after = world.get_invoice(invoice["id"])
    assert (after["status"], after["paid_minor"], after["credited_minor"]) == ("paid", 13_700, 300)
    assert [row.adjustment_minor for row in world.chain_payments()] == [-300, 0]
    assert world.contract_view(invoice["id"]) == (3, 137 * USDC, 0)
    assert world.journal_balanced()


def test_late_fee_is_a_debit_note_of_exactly_what_the_contract_added(world: World) -> None:
    payer = world.wallet()
    now = world.block_timestamp()
    options = {"late_fee_bps": 150, "late_fee_period_s": DAY_S, "late_fee_periods_max": 6}
    invoice = world.invoice(world.customer([payer.address]), 20_000, terms=options, due_date=now + DAY_S)
    world.anchor()
    world.rpc("evm_increaseTime", [3 * DAY_S + 600])  # 2 days and 10 minutes late: 3 periods started
    world.rpc("anvil_mine", [1])
    terms = Terms.from_document(invoice["terms"])
    instructions = world.instructions(invoice["id"])
    # The next block is at least one second later; pin it so the contract and the test agree.
    moment = int(instructions["as_of"]["timestamp"]) + 1
    world.rpc("evm_setNextBlockTimestamp", [moment])
    due = amount_due_at(terms, moment)
    assert due == 200 * USDC + 200 * USDC * 150 * 3 // 10_000
    world.pay(invoice["id"], payer, due)
    world.reconcile()
    after = world.get_invoice(invoice["id"])
    fee_minor = (due - 200 * USDC) // 10_000
    assert (after["status"], after["paid_minor"], after["debited_minor"]) == ("paid", 20_000 + fee_minor, fee_minor)
    assert world.customer_row(invoice["customer"]).credit_balance_minor == 0
    (row,) = world.chain_payments()
    assert row.adjustment_minor == fee_minor and row.adjustment_note_id.startswith("dn_")
    assert world.journal_balanced()


def _late_invoice(world: World, payer: object, **terms: object) -> dict[str, object]:
    """$100 due tomorrow, 5 % late fee charged once (one period of a day, at most one), now two
    days late: the contract asks $105 whatever the exact block time."""
    now = world.block_timestamp()
    options = {"late_fee_bps": 500, "late_fee_period_s": DAY_S, "late_fee_periods_max": 1, **terms}
    invoice = world.invoice(world.customer([payer.address]), 10_000, terms=options,  # type: ignore[attr-defined]
                            due_date=now + DAY_S)  # fmt: skip
    world.anchor()
    world.rpc("evm_increaseTime", [2 * DAY_S])
    world.rpc("anvil_mine", [1])
    return invoice


def test_a_booked_late_fee_is_never_charged_again_by_the_next_terms(world: World) -> None:
    payer = world.wallet()
    invoice = _late_invoice(world, payer)
    assert world.instructions(invoice["id"])["amount_token"] == str(105 * USDC)
    world.pay(invoice["id"], payer)
    world.settle()  # the late-fee debit note's terms version 2 is anchored: the contract now checks v2
    after = world.get_invoice(invoice["id"])
    assert (after["status"], after["paid_minor"], after["debited_minor"]) == ("paid", 10_500, 500)
    terms = after["terms"]
    assert (terms["version"], terms["amount_due"]) == (2, str(105 * USDC))
    assert (terms["late_fee_bps"], terms["late_fee_period"], terms["late_fee_periods_max"]) == (0, 0, 0)
    # v2 kept the 5 %, the contract would ask $110.25 and see $5.25 left on a paid invoice.
    assert world.contract_view(invoice["id"]) == (2, 105 * USDC, 0)
    assert world.customer_row(invoice["customer"]).credit_balance_minor == 0
    assert world.journal_balanced()


def test_a_late_payment_of_the_principal_books_the_whole_fee_and_the_contract_asks_just_that(world: World) -> None:
    payer = world.wallet()
    invoice = _late_invoice(world, payer, partial_allowed=True)
    world.pay(invoice["id"], payer, 100 * USDC)  # the balance, not the fee
    world.settle()
    after = world.get_invoice(invoice["id"])
    assert (after["status"], after["paid_minor"], after["debited_minor"]) == ("partially_paid", 10_000, 500)
    assert world.contract_view(invoice["id"]) == (2, 105 * USDC, 5 * USDC)
    assert world.instructions(invoice["id"])["amount_token"] == str(5 * USDC)  # the ledger's $5.00 balance
    world.pay(invoice["id"], payer)
    world.settle()
    after = world.get_invoice(invoice["id"])
    assert (after["status"], after["paid_minor"], after["debited_minor"]) == ("paid", 10_500, 500)
    assert world.contract_view(invoice["id"]) == (2, 105 * USDC, 0)
    assert [row.adjustment_minor for row in world.chain_payments()] == [500, 0]
    assert world.journal_balanced()


def test_credit_note_then_payment_of_the_rest(world: World) -> None:
    payer = world.wallet()
    invoice = world.invoice(world.customer([payer.address]), 10_000)
    line = {"description": "Goodwill", "quantity": 1, "unit_amount_minor": 2_500, "tax_bps": 0}
    world.api("POST", "/v1/credit_notes", {"invoice": invoice["id"], "lines": [line]})
    world.anchor()
    instructions = world.instructions(invoice["id"])
    assert (instructions["terms_version"], instructions["amount_token"]) == (2, str(75 * USDC))
    world.pay(invoice["id"], payer)
    world.reconcile()
    after = world.get_invoice(invoice["id"])
    assert (after["status"], after["paid_minor"], after["credited_minor"]) == ("paid", 7_500, 2_500)


def test_offchain_payment_then_onchain_rest_follow_one_booking_path(world: World) -> None:
    payer = world.wallet()
    invoice = world.invoice(world.customer([payer.address]), 10_000)
    world.api("POST", "/v1/payments", {"invoice": invoice["id"], "amount_minor": 3_000, "currency": "usd",
                                       "method": "bank", "reference": "wire-1"})  # fmt: skip
    world.anchor()
    assert world.instructions(invoice["id"])["amount_token"] == str(70 * USDC)
    world.pay(invoice["id"], payer)
    world.reconcile()
    payments = world.payments(invoice["id"])
    assert [(row.method, row.amount_minor) for row in payments] == [("bank", 3_000), ("onchain", 7_000)]
    assert world.get_invoice(invoice["id"])["status"] == "paid"
    refused = world.api("POST", f"/v1/payments/{payments[1].id}/reverse", {}, ok=False)
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "payment_onchain")
    assert world.journal_balanced()


def test_plain_transfer_is_matched_by_wallet_and_amount(world: World) -> None:
    payer = world.wallet()
    customer = world.customer([payer.address])
    small = world.invoice(customer, 5_000)
    exact = world.invoice(customer, 7_700)
    world.transfer(payer, world.payee, 77 * USDC)
    world.reconcile()
    (row,) = world.chain_payments()
    assert (row.status, row.source, row.invoice_id) == ("booked", "transfer", exact["id"])
    assert world.get_invoice(exact["id"])["status"] == "paid"
    assert world.get_invoice(small["id"])["status"] == "open"
    # A plain transfer is not counted under the invoice key: the terms get a new version.
    kinds = [entry.document["kind"] for entry in world.entries(exact["id"])]
    assert kinds == ["invoice_issued", "payment_booked", "terms_updated"]
    assert world.get_invoice(exact["id"])["terms"]["amount_due"] == "0"


def test_overpayment_by_transfer_goes_to_customer_credit(world: World) -> None:
    payer = world.wallet()
    customer = world.customer([payer.address])
    invoice = world.invoice(customer, 5_000)
    world.transfer(payer, world.payee, 80 * USDC)
    world.reconcile()
    payment = world.payments(invoice["id"])[0]
    assert (payment.applied_minor, payment.to_credit_minor) == (5_000, 3_000)
    assert world.customer_row(customer).credit_balance_minor == 3_000
    assert world.get_invoice(invoice["id"])["status"] == "paid"
    assert world.journal_balanced()


def test_unknown_token_goes_to_suspense_never_to_an_invoice(world: World) -> None:
    payer = world.wallet()
    customer = world.customer([payer.address])
    invoice = world.invoice(customer, 5_000)
    stranger = world.other_token()
    world.send(world.owner, world.token(stranger).functions.mint(payer.address, 50 * USDC))
    world.transfer(payer, world.payee, 50 * USDC, token=stranger)
    world.reconcile()
    (row,) = world.chain_payments()
    assert (row.status, row.reason, row.token, row.invoice_id) == ("suspense", "token_not_registered", stranger, None)
    assert world.payments() == [] and world.get_invoice(invoice["id"])["status"] == "open"
    listed = world.api("GET", "/v1/suspense")["data"]
    assert [item["id"] for item in listed] == [row.id]
    refused = world.api("POST", f"/v1/chain_payments/{row.id}/apply", {"invoice": invoice["id"]}, ok=False)
    assert refused.json()["error"]["code"] == "token_not_registered"


def test_ambiguous_transfer_parks_with_suggestions_then_manual_apply_and_unapply(world: World) -> None:
    payer = world.wallet()
    customer = world.customer([payer.address])
    first, second = world.invoice(customer, 4_000), world.invoice(customer, 4_000)
    world.transfer(payer, world.payee, 40 * USDC)
    world.reconcile()
    (row,) = world.chain_payments()
    assert (row.status, row.reason) == ("suspense", "ambiguous_invoice")
    shown = world.api("GET", f"/v1/chain_payments/{row.id}")
    assert [item["invoice"] for item in shown["suggestions"]] == [first["id"], second["id"]]
    applied = world.api("POST", f"/v1/chain_payments/{row.id}/apply", {"invoice": second["id"]})
    assert (applied["status"], applied["invoice"], applied["applied_by"]) == ("booked", second["id"], "manual")
    assert world.get_invoice(second["id"])["status"] == "paid"
    back = world.api("POST", f"/v1/chain_payments/{row.id}/unapply", {"reason": "wrong invoice"})
    assert (back["status"], back["reason"]) == ("suspense", "unapplied")
    assert world.get_invoice(second["id"])["status"] == "open"
    world.api("POST", f"/v1/chain_payments/{row.id}/apply", {"invoice": first["id"]})
    assert world.get_invoice(first["id"])["status"] == "paid"
    assert world.journal_balanced()
    balances = {(item["account"], item["currency"]): item for item in world.api("GET", "/v1/journal/balances")["data"]}
    assert balances.get(("suspense", "usd"), {}).get("balance_minor", 0) == 0


def test_a_discount_of_a_fraction_of_a_cent_is_booked_and_settles_the_invoice(world: World) -> None:
    """$1.23 at 2.5 %: the contract asks 1,199,250 token units ($1.19925). Paid in full, the invoice
    is paid: $1.19 booked, a $0.04 discount note, the $0.00925 remainder kept on the chain payment."""
    payer = world.wallet()
    now = world.block_timestamp()
    terms = {"discount_bps": 250, "discount_deadline": now + 5 * DAY_S}
    invoice = world.invoice(world.customer([payer.address]), 123, terms=terms, due_date=now + 30 * DAY_S)
    world.anchor()
    assert world.instructions(invoice["id"])["amount_token"] == "1199250"
    world.pay(invoice["id"], payer)
    world.settle()
    after = world.get_invoice(invoice["id"])
    assert (after["status"], after["paid_minor"], after["credited_minor"]) == ("paid", 119, 4)
    (row,) = world.chain_payments()
    assert (row.status, row.amount_token, row.amount_minor, row.adjustment_minor) == ("booked", "1199250", 119, -4)
    assert int(row.amount_token) - row.amount_minor * 10**4 == 9_250  # under one cent, on the row
    assert world.contract_view(invoice["id"])[2] == 0  # the contract agrees nothing is left
    assert world.journal_balanced()
    assert world.api("GET", "/v1/suspense")["data"] == []


def test_a_late_fee_of_a_fraction_of_a_cent_is_booked_and_settles_the_invoice(world: World) -> None:
    payer = world.wallet()
    now = world.block_timestamp()
    options = {"late_fee_bps": 500, "late_fee_period_s": DAY_S, "late_fee_periods_max": 1}
    invoice = world.invoice(world.customer([payer.address]), 123, terms=options, due_date=now + DAY_S)
    world.anchor()
    world.rpc("evm_increaseTime", [2 * DAY_S])
    world.rpc("anvil_mine", [1])
    assert world.instructions(invoice["id"])["amount_token"] == "1291500"  # $1.2915
    world.pay(invoice["id"], payer)
    world.settle()
    after = world.get_invoice(invoice["id"])
    assert (after["status"], after["paid_minor"], after["debited_minor"]) == ("paid", 129, 6)
    assert world.contract_view(invoice["id"]) == (2, 1_290_000, 0)
    assert world.journal_balanced()


def test_a_parked_payment_of_what_the_contract_asked_can_be_applied(world: World) -> None:
    """A bound InvoicePaid in suspense (as earlier versions parked inexact amounts) is applied by
    the back office exactly as the reconciler books it: discount note, floor, invoice paid."""
    payer = world.wallet()
    now = world.block_timestamp()
    terms = {"discount_bps": 250, "discount_deadline": now + 5 * DAY_S}
    invoice = world.invoice(world.customer([payer.address]), 123, terms=terms, due_date=now + 30 * DAY_S)
    world.anchor()
    world.pay(invoice["id"], payer)
    world.reconcile()
    (row,) = world.chain_payments()
    with transaction(world.sessions) as session:
        parked = session.scalars(select(ChainPayment).where(ChainPayment.id == row.id)).one()
        context = booking.Context(ledger_id=world.settings.ledger_id, chain_id=parked.chain_id)
        booking.orphan(session, context, parked, "test: undo the booking")
        parked.amount_minor = None
        booking._park(session, context, parked, booking.Parked("inexact_amount", "1199250 is not whole cents"))
    assert world.get_invoice(invoice["id"])["status"] == "open"
    applied = world.api("POST", f"/v1/chain_payments/{row.id}/apply", {"invoice": invoice["id"]})
    assert (applied["status"], applied["amount_minor"], applied["adjustment_minor"]) == ("booked", 119, -4)
    after = world.get_invoice(invoice["id"])
    assert (after["status"], after["paid_minor"]) == ("paid", 119)
    assert world.journal_balanced()


def test_an_onchain_amount_that_is_not_whole_cents_is_parked_never_rounded(world: World) -> None:
    payer = world.wallet()
    invoice = world.invoice(world.customer([payer.address]), 10_000, terms={"partial_allowed": True})
    world.anchor()
    world.pay(invoice["id"], payer, 12 * USDC + 1)  # $12.000001
    world.reconcile()
    (row,) = world.chain_payments()
    assert (row.status, row.reason, row.invoice_id, row.amount_minor) == ("suspense", "inexact_amount",
                                                                          invoice["id"], None)  # fmt: skip
    assert world.payments() == [] and world.get_invoice(invoice["id"])["paid_minor"] == 0
    assert world.journal_balanced()
