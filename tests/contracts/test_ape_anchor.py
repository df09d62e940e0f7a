"""Ape compiles the sources offline and drives LedgerAnchor on its local test network."""

from __future__ import annotations

import ape
import pytest

ROOT_A = b"\x11" * 32


@pytest.fixture
def ape_anchor(accounts, project):
    admin, anchorer = accounts[0], accounts[1]
    return admin.deploy(project.LedgerAnchor, admin, anchorer), admin, anchorer


def test_ape_anchors_first_head_and_refuses_zero_root(ape_anchor) -> None:
    anchor, admin, anchorer = ape_anchor
    anchor.anchor(1, ROOT_A, [], [], sender=anchorer)
    assert anchor.latest() == (1, ROOT_A)
    assert anchor.rootAt(1) == ROOT_A
    with ape.reverts(anchor.LedgerAnchorZeroRoot):
        anchor.anchor(2, b"\x00" * 32, [], [], sender=anchorer)
    with ape.reverts(anchor.AccessControlUnauthorizedAccount):
        anchor.anchor(2, ROOT_A, [], [], sender=admin)
