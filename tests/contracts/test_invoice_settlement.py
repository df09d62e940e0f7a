"""InvoiceSettlement pays only anchored, current terms, exactly what is due, straight to the payee."""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest
from contract_kit import (
    CANCELLED,
    ZERO_ADDRESS,
    Book,
    artifact,
    checksum,
    deploy,
    expect_revert,
    latest_timestamp,
    make_terms,
    send,
    set_next_timestamp,
    terms_tuple,
)
from web3.logs import DISCARD

from ledger.entries import EntryKind
from ledger.terms import amount_due_at

UNIT = 10**6
DAY_S = 86_400


@pytest.fixture
def setup(fresh):
    """A book with an invoice of 100 tUSD among filler entries, anchored."""
    book = Book()
    book.add_filler(7)
    due_date = latest_timestamp(fresh.w3) + 30 * DAY_S
    invoice = book.add_invoice(make_terms(fresh.payee, fresh.token.address, 100 * UNIT, due_date))
    book.add_filler(4)
    book.anchor(fresh.w3, fresh.anchor, fresh.anchorer)
    return fresh, book, invoice


def balance(token, owner) -> int:
    return token.functions.balanceOf(owner).call()


def test_pays_in_full_straight_to_the_payee_and_emits_invoice_paid(setup) -> None:
    d, book, invoice = setup
    payer_before, payee_before = balance(d.token, d.payer), balance(d.token, d.payee)
    receipt = send(d.w3, d.settlement.functions.pay(book.request(invoice, 100 * UNIT)), d.payer)
    assert balance(d.token, d.payer) == payer_before - 100 * UNIT
    assert balance(d.token, d.payee) == payee_before + 100 * UNIT
    assert balance(d.token, d.settlement.address) == 0
    (event,) = d.settlement.events.InvoicePaid().process_receipt(receipt, errors=DISCARD)
    assert dict(event.args) == {
        "invoiceKey": invoice.key,
        "payer": d.payer,
        "token": d.token.address,
        "payee": d.payee,
        "amount": 100 * UNIT,
        "totalPaid": 100 * UNIT,
        "termsVersion": 1,
    }
    assert d.settlement.functions.paidOf(invoice.key).call() == 100 * UNIT


def test_a_replayed_payment_is_refused(setup) -> None:
    d, book, invoice = setup
    request = book.request(invoice, 100 * UNIT)
    send(d.w3, d.settlement.functions.pay(request), d.payer)
    expect_revert(
        d.settlement.functions.pay(request), {"from": d.payer}, "InvoiceSettlementAlreadyPaid", invoice.key, 100 * UNIT
    )


def test_partial_payment_only_where_the_terms_allow_it_and_never_more_than_remains(setup) -> None:
    d, book, invoice = setup
    expect_revert(
        d.settlement.functions.pay(book.request(invoice, 40 * UNIT)),
        {"from": d.payer},
        "InvoiceSettlementPartialNotAllowed",
        invoice.key,
        40 * UNIT,
        100 * UNIT,
    )
    expect_revert(
        d.settlement.functions.pay(book.request(invoice, 100 * UNIT + 1)),
        {"from": d.payer},
        "InvoiceSettlementOverpayment",
        invoice.key,
        100 * UNIT + 1,
        100 * UNIT,
    )
    partial = book.add_invoice(replace(invoice.terms, partial_allowed=True))
    book.anchor(d.w3, d.anchor, d.anchorer)
    send(d.w3, d.settlement.functions.pay(book.request(partial, 40 * UNIT)), d.payer)
    assert d.settlement.functions.remainingNow(partial.key, terms_tuple(partial.terms)).call() == 60 * UNIT
    expect_revert(
        d.settlement.functions.pay(book.request(partial, 61 * UNIT)),
        {"from": d.payer},
        "InvoiceSettlementOverpayment",
        partial.key,
        61 * UNIT,
        60 * UNIT,
    )
    receipt = send(d.w3, d.settlement.functions.pay(book.request(partial, 60 * UNIT)), d.payer)
    (event,) = d.settlement.events.InvoicePaid().process_receipt(receipt, errors=DISCARD)
    assert (event.args.amount, event.args.totalPaid) == (60 * UNIT, 100 * UNIT)
    expect_revert(
        d.settlement.functions.pay(book.request(partial, 1)),
        {"from": d.payer},
        "InvoiceSettlementAlreadyPaid",
        partial.key,
        100 * UNIT,
    )


def test_zero_amount_is_refused(setup) -> None:
    d, book, invoice = setup
    expect_revert(
        d.settlement.functions.pay(book.request(invoice, 0)),
        {"from": d.payer},
        "InvoiceSettlementZeroAmount",
        invoice.key,
    )


def test_discount_and_late_fee_follow_the_block_time_exactly_as_python_computes(fresh) -> None:
    d = fresh
    now = latest_timestamp(d.w3)
    terms = make_terms(
        d.payee,
        d.token.address,
        1_234_567_891,
        now + 10 * DAY_S,
        discount_bps=250,
        discount_deadline=now + 2 * DAY_S,
        late_fee_bps=150,
        late_fee_period=7 * DAY_S,
        late_fee_periods_max=3,
    )
    book = Book()
    early, late = book.add_invoice(terms), book.add_invoice(terms)
    book.anchor(d.w3, d.anchor, d.anchorer)

    t_early = now + DAY_S
    discounted = amount_due_at(terms, t_early)
    assert discounted == 1_234_567_891 - 1_234_567_891 * 250 // 10_000
    set_next_timestamp(d.w3, t_early)
    send(d.w3, d.settlement.functions.pay(book.request(early, discounted)), d.payer)

    t_late = now + 10 * DAY_S + 8 * DAY_S  # two started periods after the due date
    with_fee = amount_due_at(terms, t_late)
    assert with_fee == 1_234_567_891 + 1_234_567_891 * 150 * 2 // 10_000
    set_next_timestamp(d.w3, t_late)
    d.w3.provider.make_request("evm_mine", [])
    assert d.settlement.functions.amountDueNow(terms_tuple(terms)).call() == with_fee
    # The next block is one second later; still inside the second period.
    expect_revert(
        d.settlement.functions.pay(book.request(late, with_fee - 1)),
        {"from": d.payer},
        "InvoiceSettlementPartialNotAllowed",
    )
    send(d.w3, d.settlement.functions.pay(book.request(late, with_fee)), d.payer)
    assert d.settlement.functions.paidOf(late.key).call() == with_fee


def test_terms_changed_in_any_field_are_not_in_the_log(setup) -> None:
    """Wrong payee, wrong token, another amount, document, index or kind: no such leaf."""
    d, book, invoice = setup
    amount, tx = 100 * UNIT, {"from": d.payer}
    size = book.anchored_size
    tampered = [
        book.request(invoice, amount, terms=replace(invoice.terms, payee=d.other.lower())),
        book.request(invoice, amount, terms=replace(invoice.terms, token=ZERO_ADDRESS)),
        book.request(invoice, amount, terms=replace(invoice.terms, amount_due=50 * UNIT)),
        book.request(invoice, amount, kind=int(EntryKind.CREDIT_NOTE)),
    ]
    for request in tampered:
        value = amount if request[3][1] == ZERO_ADDRESS else 0  # the native-coin variant sends value
        expect_revert(
            d.settlement.functions.pay(request),
            {**tx, "value": value},
            "InvoiceSettlementNotIncluded",
            invoice.key,
            invoice.index,
            size,
        )
    # Another version number is refused before the proof is even looked at.
    expect_revert(
        d.settlement.functions.pay(book.request(invoice, amount, terms=replace(invoice.terms, version=2))),
        tx,
        "InvoiceSettlementTermsSuperseded",
        invoice.key,
        2,
        1,
    )
    request = list(book.request(invoice, amount))
    request[2] = secrets.token_bytes(32)  # another document hash
    expect_revert(d.settlement.functions.pay(tuple(request)), tx, "InvoiceSettlementNotIncluded")
    request = list(book.request(invoice, amount))
    request[4] = invoice.index + 1  # the proof for one index presented for its neighbour
    expect_revert(d.settlement.functions.pay(tuple(request)), tx, "InvoiceSettlementNotIncluded")
    request = list(book.request(invoice, amount))
    request[7] = request[7][:-1]
    expect_revert(d.settlement.functions.pay(tuple(request)), tx, "InvoiceSettlementNotIncluded")
    request[7] = [secrets.token_bytes(32)] * 65
    expect_revert(d.settlement.functions.pay(tuple(request)), tx, "MerkleLogProofTooLong", 65, 64)


def test_kinds_without_terms_and_unanchored_sizes_are_refused(setup) -> None:
    d, book, invoice = setup
    tx = {"from": d.payer}
    for kind in (0, 4, 5, 9, 11, 12):
        expect_revert(
            d.settlement.functions.pay(book.request(invoice, 100 * UNIT, kind=kind)),
            tx,
            "InvoiceSettlementKindWithoutTerms",
            kind,
        )
    proof = book.log.inclusion_proof(invoice.index, invoice.index + 1)
    expect_revert(
        d.settlement.functions.pay(book.request(invoice, 100 * UNIT, tree_size=invoice.index + 1, proof=proof)),
        tx,
        "InvoiceSettlementTreeSizeNotAnchored",
        invoice.index + 1,
    )


def test_an_earlier_anchored_head_still_proves_the_invoice(setup) -> None:
    d, book, invoice = setup
    first_size = book.anchored_size
    book.add_filler(30)
    book.anchor(d.w3, d.anchor, d.anchorer)
    send(d.w3, d.settlement.functions.pay(book.request(invoice, 100 * UNIT, tree_size=first_size)), d.payer)


def test_superseded_and_cancelled_terms_are_refused(setup) -> None:
    d, book, invoice = setup
    tx = {"from": d.payer}
    credited = book.add_invoice(
        replace(invoice.terms, amount_due=70 * UNIT, version=2), key=invoice.key, kind=EntryKind.CREDIT_NOTE
    )
    book.anchor(d.w3, d.anchor, d.anchorer, [(invoice.key, 2)])
    # The stale version 1 no longer pays, even though its leaf is still in the log.
    expect_revert(
        d.settlement.functions.pay(book.request(invoice, 100 * UNIT)),
        tx,
        "InvoiceSettlementTermsSuperseded",
        invoice.key,
        1,
        2,
    )
    send(d.w3, d.settlement.functions.pay(book.request(credited, 70 * UNIT)), d.payer)

    other = book.add_invoice(replace(invoice.terms, amount_due=5 * UNIT))
    book.anchor(d.w3, d.anchor, d.anchorer)
    book.add_filler(1)  # the void entry
    book.anchor(d.w3, d.anchor, d.anchorer, [(other.key, CANCELLED)])
    expect_revert(
        d.settlement.functions.pay(book.request(other, 5 * UNIT)), tx, "InvoiceSettlementInvoiceCancelled", other.key
    )


def test_a_newer_version_pays_only_once_its_terms_update_is_anchored(setup) -> None:
    d, book, invoice = setup
    tx = {"from": d.payer}
    credited = book.add_invoice(
        replace(invoice.terms, amount_due=70 * UNIT, version=2), key=invoice.key, kind=EntryKind.CREDIT_NOTE
    )
    book.anchor(d.w3, d.anchor, d.anchorer)  # the v2 leaf is anchored, its TermsUpdate not yet
    expect_revert(
        d.settlement.functions.pay(book.request(credited, 70 * UNIT)),
        tx,
        "InvoiceSettlementTermsSuperseded",
        invoice.key,
        2,
        1,
    )
    send(d.w3, d.settlement.functions.pay(book.request(invoice, 100 * UNIT)), d.payer)


def test_a_payer_the_terms_exclude_is_refused(setup) -> None:
    d, book, _ = setup
    restricted = book.add_invoice(make_terms(d.payee, d.token.address, 9 * UNIT, 2**40, payer=d.other.lower()))
    book.anchor(d.w3, d.anchor, d.anchorer)
    expect_revert(
        d.settlement.functions.pay(book.request(restricted, 9 * UNIT)),
        {"from": d.payer},
        "InvoiceSettlementPayerExcluded",
        restricted.key,
        d.other,
    )
    send(d.w3, d.token.functions.transfer(d.other, 9 * UNIT), d.payer)
    send(d.w3, d.token.functions.approve(d.settlement.address, 9 * UNIT), d.other)
    send(d.w3, d.settlement.functions.pay(book.request(restricted, 9 * UNIT)), d.other)


def test_native_coin_goes_to_the_payee_and_value_must_match(fresh) -> None:
    d = fresh
    book = Book()
    invoice = book.add_invoice(make_terms(d.payee, ZERO_ADDRESS, 3 * 10**18, 2**40))
    erc20 = book.add_invoice(make_terms(d.payee, d.token.address, UNIT, 2**40))
    # A payee that cannot receive the native coin: a contract without receive().
    stuck = book.add_invoice(make_terms(d.harness.address, ZERO_ADDRESS, 10**18, 2**40))
    book.anchor(d.w3, d.anchor, d.anchorer)
    pay = d.settlement.functions.pay
    expect_revert(
        pay(book.request(invoice, 3 * 10**18)),
        {"from": d.payer, "value": 10**18},
        "InvoiceSettlementValueMismatch",
        10**18,
        3 * 10**18,
    )
    expect_revert(pay(book.request(erc20, UNIT)), {"from": d.payer, "value": 1}, "InvoiceSettlementValueMismatch", 1, 0)
    expect_revert(
        pay(book.request(stuck, 10**18)),
        {"from": d.payer, "value": 10**18},
        "InvoiceSettlementNativeTransferFailed",
        d.harness.address,
        10**18,
    )
    before = d.w3.eth.get_balance(d.payee)
    send(d.w3, pay(book.request(invoice, 3 * 10**18)), d.payer, value=3 * 10**18)
    assert d.w3.eth.get_balance(d.payee) == before + 3 * 10**18
    assert d.w3.eth.get_balance(d.settlement.address) == 0


def _hostile_invoice(d, name: str):
    token = deploy(d.w3, name, sender=d.admin)
    send(d.w3, token.functions.mint(d.payer, 1000 * UNIT), d.admin)
    send(d.w3, token.functions.approve(d.settlement.address, 1000 * UNIT), d.payer)
    book = Book()
    invoice = book.add_invoice(make_terms(d.payee, token.address, 10 * UNIT, 2**40))
    book.anchor(d.w3, d.anchor, d.anchorer)
    return token, book, invoice


def test_fee_on_transfer_token_is_refused(fresh) -> None:
    token, book, invoice = _hostile_invoice(fresh, "FeeOnTransferToken")
    expect_revert(
        fresh.settlement.functions.pay(book.request(invoice, 10 * UNIT)),
        {"from": fresh.payer},
        "InvoiceSettlementTransferMismatch",
        token.address,
        10 * UNIT,
        10 * UNIT - UNIT // 10,
    )


def test_token_returning_false_is_refused(fresh) -> None:
    token, book, invoice = _hostile_invoice(fresh, "ReturnsFalseToken")
    expect_revert(
        fresh.settlement.functions.pay(book.request(invoice, 10 * UNIT)),
        {"from": fresh.payer},
        "SafeERC20FailedOperation",
        token.address,
    )


def test_token_calling_back_into_pay_is_refused_by_the_reentrancy_guard(fresh) -> None:
    d = fresh
    token, book, invoice = _hostile_invoice(d, "ReentrantToken")
    second = book.add_invoice(make_terms(d.payee, token.address, 10 * UNIT, 2**40))
    book.anchor(d.w3, d.anchor, d.anchorer)
    for entry in ("pay", "payBatch"):
        args = [book.request(second, 10 * UNIT)]
        callback = d.settlement.encode_abi(entry, args=[args] if entry == "payBatch" else args)
        send(d.w3, token.functions.arm(d.settlement.address, callback), d.admin)
        expect_revert(
            d.settlement.functions.pay(book.request(invoice, 10 * UNIT)),
            {"from": d.payer},
            "ReentrancyGuardReentrantCall",
        )
        expect_revert(
            d.settlement.functions.payBatch([book.request(invoice, 10 * UNIT)]),
            {"from": d.payer},
            "ReentrancyGuardReentrantCall",
        )
    assert d.settlement.functions.paidOf(second.key).call() == 0


def test_batch_pays_many_invoices_and_groups_transfers_per_payee(fresh) -> None:
    d = fresh
    book = Book()
    book.add_filler(3)
    to_payee = [book.add_invoice(make_terms(d.payee, d.token.address, (i + 1) * UNIT, 2**40)) for i in range(4)]
    to_other = book.add_invoice(make_terms(d.other, d.token.address, 7 * UNIT, 2**40))
    native = book.add_invoice(make_terms(d.other, ZERO_ADDRESS, 10**15, 2**40))
    last = book.add_invoice(make_terms(d.payee, d.token.address, 11 * UNIT, 2**40))
    book.anchor(d.w3, d.anchor, d.anchorer)
    invoices = [*to_payee, to_other, native, last]
    requests = [book.request(invoice, invoice.terms.amount_due) for invoice in invoices]
    payee_before, other_before = balance(d.token, d.payee), balance(d.token, d.other)
    eth_before = d.w3.eth.get_balance(d.other)
    receipt = send(d.w3, d.settlement.functions.payBatch(requests), d.payer, value=10**15)
    events = d.settlement.events.InvoicePaid().process_receipt(receipt, errors=DISCARD)
    assert [e.args.invoiceKey for e in events] == [invoice.key for invoice in invoices]
    assert balance(d.token, d.payee) == payee_before + (1 + 2 + 3 + 4 + 11) * UNIT
    assert balance(d.token, d.other) == other_before + 7 * UNIT
    assert d.w3.eth.get_balance(d.other) == eth_before + 10**15
    transfers = d.token.events.Transfer().process_receipt(receipt, errors=DISCARD)
    assert [t.args.value for t in transfers] == [10 * UNIT, 7 * UNIT, 11 * UNIT]  # one per run


def test_batch_limits_value_and_cumulative_overpayment(fresh) -> None:
    d = fresh
    book = Book()
    invoice = book.add_invoice(make_terms(d.payee, d.token.address, 5 * UNIT, 2**40, partial_allowed=True))
    native = book.add_invoice(make_terms(d.payee, ZERO_ADDRESS, 10**15, 2**40))
    book.anchor(d.w3, d.anchor, d.anchorer)
    batch, tx = d.settlement.functions.payBatch, {"from": d.payer}
    expect_revert(batch([]), tx, "InvoiceSettlementBatchSize", 0, 64)
    expect_revert(batch([book.request(invoice, 1)] * 65), tx, "InvoiceSettlementBatchSize", 65, 64)
    # Two payments of one invoice in one batch count together against what is due.
    expect_revert(
        batch([book.request(invoice, 3 * UNIT), book.request(invoice, 3 * UNIT)]),
        tx,
        "InvoiceSettlementOverpayment",
        invoice.key,
        3 * UNIT,
        2 * UNIT,
    )
    expect_revert(
        batch([book.request(native, 10**15)]),
        {**tx, "value": 10**15 - 1},
        "InvoiceSettlementValueMismatch",
        10**15 - 1,
        10**15,
    )
    # One bad request sinks the whole batch.
    expect_revert(
        batch([book.request(native, 10**15), book.request(invoice, 0)]),
        {**tx, "value": 10**15},
        "InvoiceSettlementZeroAmount",
        invoice.key,
    )
    send(d.w3, batch([book.request(invoice, 2 * UNIT), book.request(invoice, 3 * UNIT)]), d.payer)
    assert d.settlement.functions.paidOf(invoice.key).call() == 5 * UNIT


def test_views_rebuild_the_same_leaf_hash_as_ledger(setup) -> None:
    d, book, invoice = setup
    assert d.settlement.functions.leafHashOf(
        int(invoice.kind), invoice.index, invoice.key, invoice.document_hash, terms_tuple(invoice.terms)
    ).call() == book.leaf_hash(invoice)
    assert book.leaf_hash(invoice) == book.log.store.get_nodes([(0, invoice.index)])[0]
    assert d.settlement.functions.ledgerAnchor().call() == d.anchor.address
    assert d.settlement.functions.amountDueNow(terms_tuple(invoice.terms)).call() == 100 * UNIT


def test_constructor_refuses_a_zero_anchor(fresh) -> None:
    data = artifact("InvoiceSettlement")
    factory = fresh.w3.eth.contract(abi=data["abi"], bytecode=data["bytecode"])
    expect_revert(factory.constructor(ZERO_ADDRESS), {"from": fresh.admin}, "InvoiceSettlementZeroAddress")
    assert checksum(fresh.anchor.address) == fresh.anchor.address
