"""Fixtures for the contract tests: one anvil per session, the contracts deployed once, and a
chain snapshot reverted after every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from web3 import Web3
from web3.contract import Contract

REPO_ROOT = Path(__file__).resolve().parents[2]
# Ape (and py-solc-x) find "solc 0.8.28" here: the solcjs stand-in, since no native solc
# can be downloaded on these machines (TOOLCHAIN.md).
os.environ.setdefault("SOLCX_BINARY_PATH", str(REPO_ROOT / "contracts" / ".solcx"))

from contract_kit import deploy, fast_web3, running_anvil, send, snapshot  # noqa: E402

TOKEN_UNIT = 10**6  # TestStablecoin has 6 decimals
PAYER_FUNDS = 10**12 * TOKEN_UNIT


@dataclass
class Deployment:
    """The deployed contracts and the named accounts of one anvil session."""

    w3: Web3
    admin: str
    anchorer: str
    payer: str
    payee: str
    other: str
    anchor: Contract
    settlement: Contract
    token: Contract
    harness: Contract


@pytest.fixture(scope="session")
def contracts_w3() -> Iterator[Web3]:
    with running_anvil() as url:
        yield fast_web3(url)


@pytest.fixture(scope="session")
def deployment(contracts_w3: Web3) -> Deployment:
    """LedgerAnchor, InvoiceSettlement, TestStablecoin (payer funded and approved), the harness."""
    w3 = contracts_w3
    admin, anchorer, payer, payee, other = w3.eth.accounts[:5]
    anchor = deploy(w3, "LedgerAnchor", admin, anchorer, sender=admin)
    settlement = deploy(w3, "InvoiceSettlement", anchor.address, sender=admin)
    token = deploy(w3, "TestStablecoin", admin, sender=admin)
    harness = deploy(w3, "SettlementMathHarness", sender=admin)
    send(w3, token.functions.mint(payer, PAYER_FUNDS), admin)
    send(w3, token.functions.mint(payee, TOKEN_UNIT), admin)  # payee already holds some
    send(w3, token.functions.approve(settlement.address, PAYER_FUNDS), payer)
    return Deployment(w3, admin, anchorer, payer, payee, other, anchor, settlement, token, harness)


@pytest.fixture
def fresh(deployment: Deployment) -> Iterator[Deployment]:
    """The session deployment, with everything a test does undone afterwards."""
    with snapshot(deployment.w3):
        yield deployment
