"""The anchorer anchors by count and by time, sends TermsUpdates, survives crashes and refuses foreign chain heads."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from anchoring_kit import (
    LEDGER_ID,
    Setup,
    anchored_size,
    append_customers,
    append_documents,
    head_anchored_events,
    invoice_documents,
    make_setup,
    tick_until,
)
from sqlalchemy import delete, update

from backend.chain.anvil import Anvil
from backend.db import transaction
from backend.models import AnchorTransaction, MerkleNode
from backend.services.ledger import ledger_key
from ledger.entries import invoice_key
from ledger.terms import CANCELLED_VERSION


class SimulatedCrash(Exception):
    pass


@pytest.fixture
def setup(postgres_url: str, anvil: Anvil, tmp_path) -> Iterator[Setup]:
    made = make_setup(postgres_url, anvil.url, tmp_path)
    yield made
    made.engine.dispose()


def test_anchors_when_entries_max_is_reached_and_confirms(setup: Setup) -> None:
    anchorer = setup.anchorer(entries_max=5, interval_s=3600)
    append_customers(setup, 4)
    assert anchorer.tick() == "waiting"
    append_customers(setup, 1, start=4)
    assert anchorer.tick() == "sent"
    tick_until(anchorer, lambda: [row.status for row in setup.rows()] == ["confirmed"])
    row = setup.rows()[0]
    assert (row.tree_size, row.previous_size, row.nonce >= 0) == (5, 0, True)
    assert row.block_number and row.block_hash and row.confirmed_ms and row.sent_ms
    assert anchored_size(setup) == 5
    assert anchorer.tick() == "idle"
    append_customers(setup, 5, start=5)
    tick_until(anchorer, lambda: anchored_size(setup) == 10 and setup.rows()[-1].status == "confirmed")
    assert [(row.previous_size, row.tree_size) for row in setup.rows()] == [(0, 5), (5, 10)]


def test_anchors_after_the_interval_with_few_entries(setup: Setup) -> None:
    anchorer = setup.anchorer(entries_max=1000, interval_s=0.3)
    append_customers(setup, 2)
    assert anchorer.tick() == "waiting"
    tick_until(anchorer, lambda: anchored_size(setup) == 2)


def test_terms_updates_are_sent_with_the_head_and_split_past_the_bound(setup: Setup) -> None:
    key_of = {}
    for name, credit, void in (
        ("inv_a", True, False),
        ("inv_b", True, True),
        ("inv_c", False, False),
        ("inv_d", True, False),
    ):
        salt = secrets.token_bytes(32)
        key_of[name] = invoice_key(ledger_key(LEDGER_ID), name, salt)
        append_documents(setup, invoice_documents(name, salt, credit=credit, void=void), invoice_id=name)
    anchorer = setup.anchorer(entries_max=1, updates_max=2)
    tick_until(anchorer, lambda: anchored_size(setup) == setup.head_size() and anchorer.tick() == "idle")
    contract = setup.anchor_contract()
    versions = {name: contract.functions.termsVersion(key).call() for name, key in key_of.items()}
    assert versions == {"inv_a": 2, "inv_b": CANCELLED_VERSION, "inv_c": 0, "inv_d": 2}
    rows = setup.rows()
    assert len(rows) == 2  # three keys need updates, two fit in one anchor
    assert [len(row.updates) for row in rows] == [2, 1]
    assert all(row.status == "confirmed" for row in rows)


def test_crash_between_sending_and_recording_does_not_anchor_twice(setup: Setup) -> None:
    append_customers(setup, 3)

    def crash(point: str) -> None:
        if point == "after_send":
            raise SimulatedCrash(point)

    first = setup.anchorer(entries_max=1, fault=crash)
    with pytest.raises(SimulatedCrash):
        first.tick()
    first.close()  # the process died: its database session (and lock) went with it
    assert [row.status for row in setup.rows()] == ["built"]  # sent, but never recorded as sent
    restarted = setup.anchorer(entries_max=1)
    tick_until(restarted, lambda: setup.rows()[-1].status == "confirmed")
    assert restarted.tick() == "idle"
    assert len(setup.rows()) == 1 and restarted.sent_count == 0
    assert [event["args"]["treeSize"] for event in head_anchored_events(setup)] == [3]


def test_crash_before_the_first_send_sends_the_stored_transaction(setup: Setup) -> None:
    append_customers(setup, 2)

    def crash(point: str) -> None:
        if point == "after_persist":
            raise SimulatedCrash(point)

    crashed = setup.anchorer(entries_max=1, fault=crash)
    with pytest.raises(SimulatedCrash):
        crashed.tick()
    crashed.close()  # the process died: its database session (and lock) went with it
    stored = setup.rows()[0]
    restarted = setup.anchorer(entries_max=1)
    tick_until(restarted, lambda: setup.rows()[-1].status == "confirmed")
    assert [row.tx_hash for row in setup.rows()] == [stored.tx_hash]
    assert anchored_size(setup) == 2


def test_a_head_the_chain_has_but_the_database_lost_is_recorded_not_resent(setup: Setup) -> None:
    append_customers(setup, 4)
    anchorer = setup.anchorer(entries_max=1)
    tick_until(anchorer, lambda: bool(setup.rows()) and setup.rows()[-1].status == "confirmed")
    lost = setup.rows()[0]
    anchorer.close()
    with transaction(setup.sessions) as session:
        session.execute(delete(AnchorTransaction))
    restarted = setup.anchorer(entries_max=1)
    assert restarted.tick() == "idle"
    recorded = setup.rows()
    assert [(row.tree_size, row.status, row.tx_hash) for row in recorded] == [(4, "confirmed", lost.tx_hash)]
    assert restarted.sent_count == 0


def test_a_ledger_that_no_longer_extends_the_anchored_head_is_never_anchored(setup: Setup) -> None:
    append_customers(setup, 3)
    anchorer = setup.anchorer(entries_max=1)
    tick_until(anchorer, lambda: bool(setup.rows()) and setup.rows()[-1].status == "confirmed")
    with transaction(setup.sessions) as session:  # rewrite history under the anchored head
        session.execute(
            update(MerkleNode).where(MerkleNode.level == 1, MerkleNode.node_index == 0).values(hash=b"\x66" * 32)
        )
    append_customers(setup, 2, start=3)
    for _ in range(3):
        anchorer._step()
        assert anchorer.last_state == "error: LogCorrupted"
    assert len(setup.rows()) == 1 and anchored_size(setup) == 3


def test_a_chain_ahead_of_the_ledger_stops_the_anchorer(setup: Setup) -> None:
    append_customers(setup, 3)
    anchorer = setup.anchorer(entries_max=1)
    tick_until(anchorer, lambda: bool(setup.rows()) and setup.rows()[-1].status == "confirmed")
    anchorer.close()
    other = setup.anchorer(entries_max=1)
    other.ledger_id = "another-ledger"  # a ledger with fewer entries pointed at the same contract
    other._step()
    assert other.last_state == "error: LedgerBehindChain" and other.sent_count == 0
