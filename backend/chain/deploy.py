"""Deploy Tally's contracts, or reuse the ones recorded for this chain id.

Order: LedgerAnchor(admin, anchorer), InvoiceSettlement(ledgerAnchor), and on the local chain a
TestStablecoin(owner) to settle in. Each address is recorded as soon as its contract is mined, so a
deploy interrupted half-way resumes instead of starting over.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from backend.chain.client import Deployments, load_artifact
from backend.settings import LOCAL_CHAIN_ID

RECEIPT_TIMEOUT_S_MAX = 120
RECEIPT_POLL_S = 0.05


class DeploymentError(RuntimeError):
    pass


def contract_plan(chain_id: int) -> list[tuple[str, Callable[[dict[str, str], str], list[Any]]]]:
    """(contract name, constructor arguments from (addresses so far, deployer)) in deploy order."""
    plan: list[tuple[str, Callable[[dict[str, str], str], list[Any]]]] = [
        ("LedgerAnchor", lambda _addresses, deployer: [deployer, deployer]),
        ("InvoiceSettlement", lambda addresses, _deployer: [addresses["LedgerAnchor"]]),
    ]
    if chain_id == LOCAL_CHAIN_ID:
        plan.append(("TestStablecoin", lambda _addresses, deployer: [deployer]))
    return plan


def deploy_or_reuse(
    w3: Web3, account: LocalAccount, deployments: Deployments, *, redeploy: bool = False
) -> dict[str, str]:
    chain_id = w3.eth.chain_id
    addresses = {} if redeploy else deployments.for_chain(chain_id)
    for name, address in addresses.items():
        if not w3.eth.get_code(Web3.to_checksum_address(address)):
            raise DeploymentError(
                f"the recorded {name} at {address} on chain {chain_id} has no code (was the chain "
                f"reset?). Run `tally deploy --redeploy` to deploy fresh contracts, or remove "
                f"{deployments.path}"
            )
    for name, constructor_arguments in contract_plan(chain_id):
        if name in addresses:
            continue
        addresses[name] = deploy_contract(w3, account, name, constructor_arguments(addresses, account.address))
        deployments.record(chain_id, addresses)
    return addresses


def deploy_contract(w3: Web3, account: LocalAccount, name: str, arguments: list[Any]) -> str:
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    transaction = factory.constructor(*arguments).build_transaction(
        {"from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending")}
    )
    signed = account.sign_transaction(transaction)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S_MAX, poll_latency=RECEIPT_POLL_S)
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise DeploymentError(f"deploying {name} failed in transaction {tx_hash.to_0x_hex()}")
    return str(receipt["contractAddress"])
