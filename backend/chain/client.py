"""web3 connections, compiled artifacts, the record of deployed contracts per chain id, reverts decoded."""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak
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


@dataclass(frozen=True)
class Revert:
    """A decoded revert: a custom error of any of Tally's contracts, Error(string) or Panic(uint256)."""

    name: str
    args: tuple[Any, ...]

    def __str__(self) -> str:
        shown = ", ".join(f"0x{value.hex()}" if isinstance(value, bytes) else str(value) for value in self.args)
        return f"{self.name}({shown})" if self.args else self.name


_ERROR_STRING = keccak(text="Error(string)")[:4]
_PANIC_UINT = keccak(text="Panic(uint256)")[:4]
REVERT_TEXT_CHARS_MAX = 300


@functools.cache
def custom_errors() -> dict[bytes, tuple[str, list[str]]]:
    """Selector -> (error name, argument types) over every compiled artifact's ABI."""
    table: dict[bytes, tuple[str, list[str]]] = {}
    for path in sorted(ARTIFACTS_DIR.glob("*.json")):
        for item in json.loads(path.read_text())["abi"]:
            if item.get("type") == "error":
                types = [_abi_type(component) for component in item["inputs"]]
                table[keccak(text=f"{item['name']}({','.join(types)})")[:4]] = (item["name"], types)
    return table


def _abi_type(component: dict[str, Any]) -> str:
    if component["type"].startswith("tuple"):
        inner = ",".join(_abi_type(part) for part in component["components"])
        return f"({inner}){component['type'][5:]}"
    return str(component["type"])


def decode_revert(data: object) -> Revert:
    """Name and arguments of revert data (0x-hex or bytes); anything else comes back as its text."""
    if isinstance(data, str) and data.startswith("0x"):
        try:
            raw = bytes.fromhex(data[2:])
        except ValueError:
            return Revert(data[:REVERT_TEXT_CHARS_MAX], ())
    elif isinstance(data, bytes):
        raw = data
    else:
        return Revert(str(data)[:REVERT_TEXT_CHARS_MAX] if data else "<empty revert>", ())
    if len(raw) < 4:
        return Revert("<empty revert>", ())
    selector, body = raw[:4], raw[4:]
    if selector == _ERROR_STRING:
        name, types = "Error", ["string"]
    elif selector == _PANIC_UINT:
        name, types = "Panic", ["uint256"]
    elif selector in custom_errors():
        name, types = custom_errors()[selector]
    else:
        return Revert(f"<unknown 0x{selector.hex()}>", (body,))
    try:
        values = abi_decode(types, body)
    except Exception:  # noqa: BLE001 (a malformed payload still has a name)
        return Revert(name, ())
    shown = (Web3.to_checksum_address(v) if t == "address" else v for t, v in zip(types, values, strict=True))
    return Revert(name, tuple(shown))
