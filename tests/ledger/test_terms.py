"""Settlement terms check every range, round-trip through ABI and JSON, follow formats.md math."""

from __future__ import annotations

import dataclasses

import pytest
from eth_abi.abi import decode, encode
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import FloatNotAllowed, InvalidAddress, InvalidTerms
from ledger.terms import TERMS_ABI_TYPE, Terms, amount_due_at, remaining_at

PAYEE = "0x" + "11" * 20
TOKEN = "0x" + "22" * 20


def make(**overrides: object) -> Terms:
    fields: dict[str, object] = {
        "payee": PAYEE,
        "token": TOKEN,
        "amount_due": 10_000,
        "due_date": 1_000,
    }
    fields.update(overrides)
    return Terms(**fields)  # type: ignore[arg-type]


terms_strategy = st.builds(
    Terms,
    payee=st.just(PAYEE),
    token=st.sampled_from([TOKEN, "0x" + "00" * 20]),
    amount_due=st.integers(0, 2**200 - 1),
    due_date=st.integers(0, 2**64 - 1),
    discount_bps=st.integers(0, 10_000),
    discount_deadline=st.integers(0, 2**64 - 1),
    late_fee_bps=st.integers(0, 2**16 - 1),
    late_fee_period=st.integers(1, 2**32 - 1),
    late_fee_periods_max=st.integers(0, 2**16 - 1),
    partial_allowed=st.booleans(),
    payer=st.sampled_from(["0x" + "00" * 20, "0x" + "33" * 20]),
    version=st.integers(1, 2**32 - 2),
)


def test_abi_type_string_is_the_contract() -> None:
    assert TERMS_ABI_TYPE == ("(address,address,uint256,uint64,uint16,uint64,uint16,uint32,uint16,bool,address,uint32)")


@settings(deadline=None)  # no per-example deadline: shared CI machines stall
@given(terms_strategy)
def test_abi_and_document_round_trip(terms: Terms) -> None:
    encoded = encode([TERMS_ABI_TYPE], [terms.abi_tuple()])
    assert len(encoded) == 12 * 32
    assert Terms.from_abi_tuple(decode([TERMS_ABI_TYPE], encoded)[0]) == terms
    assert Terms.from_document(terms.to_document()) == terms
    assert isinstance(terms.to_document()["amount_due"], str)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount_due", 2**200),
        ("amount_due", -1),
        ("due_date", 2**64),
        ("discount_bps", 10_001),
        ("late_fee_bps", 2**16),
        ("late_fee_period", 2**32),
        ("late_fee_periods_max", 2**16),
        ("version", 0),
        ("version", 2**32 - 1),
        ("partial_allowed", 1),
        ("amount_due", True),
        ("amount_due", "5"),
    ],
)
def test_ranges_refused(field: str, value: object) -> None:
    with pytest.raises(InvalidTerms):
        make(**{field: value})


def test_other_refusals() -> None:
    with pytest.raises(FloatNotAllowed):
        make(amount_due=1.0)
    with pytest.raises(InvalidTerms):
        make(late_fee_bps=100, late_fee_period=0)
    with pytest.raises(InvalidTerms):
        make(payee="0x" + "00" * 20)
    with pytest.raises(InvalidAddress):
        make(token="0x" + "AB" * 20)  # upper case: terms hold lowercase only
    with pytest.raises(InvalidAddress):
        make(token="0x1234")
    with pytest.raises(InvalidTerms):
        Terms.from_document({**make().to_document(), "amount_due": "007"})


def test_worked_math_examples() -> None:
    terms = make(
        amount_due=1_000_001,
        discount_bps=250,
        discount_deadline=500,
        late_fee_bps=150,
        late_fee_period=100,
        late_fee_periods_max=3,
    )
    assert amount_due_at(terms, 0) == 1_000_001 - 25_000  # floor(1_000_001 * 250 / 10_000)
    assert amount_due_at(terms, 500) == 975_001
    assert amount_due_at(terms, 501) == 1_000_001
    assert amount_due_at(terms, 1_000) == 1_000_001  # t == dueDate is not late
    assert amount_due_at(terms, 1_001) == 1_000_001 + 15_000  # one started period
    assert amount_due_at(terms, 1_100) == 1_015_001
    assert amount_due_at(terms, 1_101) == 1_000_001 + 30_000
    assert amount_due_at(terms, 10**9) == 1_000_001 + 45_000  # capped at 3 periods
    assert remaining_at(terms, 0, 900_000) == 75_001
    assert remaining_at(terms, 0, 2_000_000) == 0


@settings(deadline=None)  # no per-example deadline: shared CI machines stall
@given(terms_strategy, st.integers(0, 2**64 - 1))
def test_amount_due_properties(terms: Terms, t: int) -> None:
    due = amount_due_at(terms, t)
    base = terms.amount_due
    assert 0 <= due < 2**256
    if terms.discount_bps and t <= terms.discount_deadline:
        assert due <= base
        assert due == base - base * terms.discount_bps // 10_000
    elif terms.late_fee_bps and t > terms.due_date:
        assert base <= due <= base + base * terms.late_fee_bps * terms.late_fee_periods_max // 10_000
    else:
        assert due == base
    without_fees = dataclasses.replace(terms, discount_bps=0, late_fee_bps=0)
    assert amount_due_at(without_fees, t) == base


@settings(deadline=None)  # no per-example deadline: shared CI machines stall
@given(terms_strategy, st.integers(0, 2**63), st.integers(0, 2**63))
def test_late_fee_never_decreases_with_time(terms: Terms, t1: int, t2: int) -> None:
    terms = dataclasses.replace(terms, discount_bps=0)
    early, late = sorted((t1, t2))
    assert amount_due_at(terms, early) <= amount_due_at(terms, late)


@settings(deadline=None)  # no per-example deadline: shared CI machines stall
@given(terms_strategy, st.integers(0, 2**64 - 1), st.integers(0, 2**256 - 1))
def test_remaining_is_due_minus_paid_floored(terms: Terms, t: int, paid: int) -> None:
    assert remaining_at(terms, t, paid) == max(amount_due_at(terms, t) - paid, 0)


def test_time_and_paid_ranges_refused() -> None:
    with pytest.raises(InvalidTerms):
        amount_due_at(make(), 2**64)
    with pytest.raises(FloatNotAllowed):
        amount_due_at(make(), 1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidTerms):
        remaining_at(make(), 0, -1)


def test_next_version() -> None:
    terms = make()
    following = terms.next_version(amount_due=5)
    assert (following.version, following.amount_due, following.payee) == (2, 5, PAYEE)
    with pytest.raises(InvalidTerms):
        make(version=2**32 - 2).next_version(amount_due=1)
