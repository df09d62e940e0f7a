"""web3 connections and the record of deployed contracts per chain id."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.contract import Contract

from backend.settings import REPO_ROOT

ARTIFACTS_DIR = REPO_ROOT / "contracts" / "artifacts"


def connect(rpc_url: str, timeout_s: float = 10.0) -> Web3:
    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))


def load_artifact(name: str) -> dict[str, Any]:
    path = ARTIFACTS_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no compiled artifact {path}: run `make contracts`")
    artifact: dict[str, Any] = json.loads(path.read_text())
    return artifact


def contract_at(w3: Web3, name: str, address: str) -> Contract:
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_artifact(name)["abi"])


class Deployments:
    """Addresses of Tally's contracts, per chain id, in one JSON file: {"31337": {"LedgerAnchor": ...}}."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read_all(self) -> dict[str, dict[str, str]]:
        if not self.path.is_file():
            return {}
        data: dict[str, dict[str, str]] = json.loads(self.path.read_text())
        return data

    def for_chain(self, chain_id: int) -> dict[str, str]:
        return dict(self.read_all().get(str(chain_id), {}))

    def record(self, chain_id: int, addresses: dict[str, str]) -> None:
        data = self.read_all()
        data[str(chain_id)] = dict(sorted(addresses.items()))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(temporary, self.path)  # atomic: a crash never leaves half a file
