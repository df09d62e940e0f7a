"""Deploying on anvil records addresses per chain id, reuses them, and names a stale record."""

from __future__ import annotations

import json

import pytest

from backend.chain.anvil import start_anvil
from backend.chain.client import Deployments, connect, contract_at
from backend.chain.deploy import DeploymentError, deploy_or_reuse
from backend.chain.signer import anchorer_account
from backend.settings import Settings


def test_deploy_records_reuses_and_detects_a_reset_chain(tmp_path) -> None:
    deployments = Deployments(tmp_path / "deployments.json")
    chain = start_anvil()
    try:
        w3 = connect(chain.url)
        account = anchorer_account(Settings(), w3.eth.chain_id)
        first = deploy_or_reuse(w3, account, deployments)
        assert set(first) == {"LedgerAnchor", "InvoiceSettlement", "TestStablecoin"}
        assert json.loads(deployments.path.read_text())["31337"] == first
        anchor = contract_at(w3, "LedgerAnchor", first["LedgerAnchor"])
        assert anchor.functions.latest().call() == [0, b"\x00" * 32]
        settlement = contract_at(w3, "InvoiceSettlement", first["InvoiceSettlement"])
        assert settlement.functions.ledgerAnchor().call() == first["LedgerAnchor"]

        block_before = w3.eth.block_number
        assert deploy_or_reuse(w3, account, deployments) == first
        assert w3.eth.block_number == block_before  # reused: nothing sent
    finally:
        chain.stop()

    fresh_chain = start_anvil()  # same chain id, no code at the recorded addresses
    try:
        w3 = connect(fresh_chain.url)
        with pytest.raises(DeploymentError, match="has no code"):
            deploy_or_reuse(w3, account, deployments)
        again = deploy_or_reuse(w3, account, deployments, redeploy=True)
        assert deployments.for_chain(31337) == again
    finally:
        fresh_chain.stop()
