"""Compile every contract in contracts/src into committed, byte-for-byte reproducible artifacts.

    python -m scripts.build_contracts           # write contracts/artifacts/<Name>.json
    python -m scripts.build_contracts --check   # compile in memory; exit 1 naming any difference

One standard-JSON compilation with pinned settings. The input holds every source it needs
(our sources and the OpenZeppelin files they import, read from node_modules), so no compiler
resolves paths on its own and the result cannot depend on where the repository sits. A native
solc 0.8.28 known to py-solc-x is used when one is installed; otherwise the pinned npm solcjs
through scripts/solc_standard_json.js (solcjs and native solc of one version emit the same bytecode).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_ROOT = REPO_ROOT / "contracts" / "src"
ARTIFACT_ROOT = REPO_ROOT / "contracts" / "artifacts"
NODE_MODULES = REPO_ROOT / "node_modules"
NODE_DRIVER = REPO_ROOT / "scripts" / "solc_standard_json.js"

SOLC_VERSION = "0.8.28"
# Pinned compiler settings. bytecodeHash "none" keeps the metadata hash (which covers source paths
# and comments) out of the bytecode, so the bytecode depends on the code alone. viaIR costs about
# 15 s of solcjs time per build and saves gas on every call (scripts/bench_gas.py: about 3,500 per
# payment, 1,000 per anchor; it brings the anchor under its 1.6x goal at 1,000,000 leaves).
SETTINGS: dict[str, Any] = {
    "evmVersion": "cancun",
    "metadata": {"bytecodeHash": "none"},
    "optimizer": {"enabled": True, "runs": 200},
    "viaIR": True,
}
OUTPUT_SELECTION = {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "metadata"]}}
COMPILE_TIMEOUT_S_MAX = 300
IMPORT_PATTERN = re.compile(r'^\s*import\s+(?:[^;]*?\bfrom\s+)?"([^"]+)"\s*;', re.MULTILINE)


class BuildError(Exception):
    """The compiler refused the sources or could not be run."""


def _source_unit_name(path: Path) -> str:
    if path.is_relative_to(NODE_MODULES):
        return path.relative_to(NODE_MODULES).as_posix()
    return path.relative_to(REPO_ROOT).as_posix()


def _resolve_import(importer: str, imported: str) -> tuple[str, Path]:
    """The source unit name and file of `imported` as written in `importer` (solc's rules)."""
    if imported.startswith("./") or imported.startswith("../"):
        name = (Path(importer).parent / imported).as_posix()
        # Normalise a/b/../c without touching the file system (solc does the same).
        parts: list[str] = []
        for part in name.split("/"):
            if part == "..":
                parts.pop()
            elif part not in ("", "."):
                parts.append(part)
        name = "/".join(parts)
    else:
        name = imported
    for root in (REPO_ROOT, NODE_MODULES):
        if (root / name).is_file():
            return name, root / name
    raise BuildError(f"{importer}: cannot resolve import {imported!r}")


def collect_sources() -> dict[str, str]:
    """Every source the build needs, by source unit name, sorted: ours and their imports."""
    pending = [_source_unit_name(path) for path in sorted(SOURCE_ROOT.rglob("*.sol"))]
    if not pending:
        raise BuildError(f"no Solidity sources under {SOURCE_ROOT}")
    files = {name: REPO_ROOT / name for name in pending}
    sources: dict[str, str] = {}
    while pending:
        name = pending.pop()
        if name in sources:
            continue
        content = files[name].read_text(encoding="utf-8")
        sources[name] = content
        for imported in IMPORT_PATTERN.findall(content):
            imported_name, imported_file = _resolve_import(name, imported)
            if imported_name not in sources:
                files[imported_name] = imported_file
                pending.append(imported_name)
    return dict(sorted(sources.items()))


def standard_json_input(sources: dict[str, str]) -> dict[str, Any]:
    return {
        "language": "Solidity",
        "sources": {name: {"content": content} for name, content in sources.items()},
        "settings": {**SETTINGS, "outputSelection": OUTPUT_SELECTION},
    }


def _native_solc() -> Path | None:
    """A solc 0.8.28 that py-solc-x knows about, or None (the usual case on these machines)."""
    try:
        import solcx
        from packaging.version import Version

        if Version(SOLC_VERSION) in solcx.get_installed_solc_versions():
            return Path(solcx.install.get_executable(SOLC_VERSION))
    except Exception:  # noqa: BLE001 - any trouble finding a native solc means: use solcjs.
        return None
    return None


def run_compiler(compiler_input: dict[str, Any]) -> dict[str, Any]:
    """Standard-JSON output of solc 0.8.28 for `compiler_input`."""
    native = _native_solc()
    command = [str(native), "--standard-json"] if native else ["node", str(NODE_DRIVER), "--standard-json"]
    try:
        completed = subprocess.run(
            command,
            input=json.dumps(compiler_input),
            capture_output=True,
            text=True,
            timeout=COMPILE_TIMEOUT_S_MAX,
            check=False,
            cwd=REPO_ROOT,
        )
    except FileNotFoundError as error:
        raise BuildError(f"cannot run {command[0]}: install Node.js 18+ (apt-get install nodejs)") from error
    if completed.returncode != 0:
        raise BuildError(f"{' '.join(command)} exited {completed.returncode}: {completed.stderr.strip()}")
    try:
        output: dict[str, Any] = json.loads(completed.stdout)
    except json.JSONDecodeError as error:
        raise BuildError(f"compiler output is not JSON ({len(completed.stdout)} bytes)") from error
    problems = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if problems:
        raise BuildError("\n".join(e.get("formattedMessage", e.get("message", "")) for e in problems))
    for warning in output.get("errors", []):
        # OpenZeppelin's own warnings (e.g. the known EIP-1153 note on TransientSlot) are not ours
        # to fix; ours are shown in full.
        where = warning.get("sourceLocation", {}).get("file", "")
        if not where.startswith("@openzeppelin/"):
            print(warning.get("formattedMessage", warning.get("message", "")).rstrip(), file=sys.stderr)
    return output


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def artifacts_from_output(sources: dict[str, str], output: dict[str, Any]) -> dict[str, str]:
    """Artifact file name -> exact file text, for every contract declared in contracts/src."""
    own_prefix = _source_unit_name(SOURCE_ROOT) + "/"
    artifacts: dict[str, str] = {}
    for source_name, contracts in sorted(output.get("contracts", {}).items()):
        if not source_name.startswith(own_prefix):
            continue
        for contract_name, compiled in sorted(contracts.items()):
            file_name = f"{contract_name}.json"
            if file_name in artifacts:
                raise BuildError(f"two contracts named {contract_name}: artifact names must be unique")
            metadata = json.loads(compiled["metadata"])
            used_sources = sorted(metadata["sources"])
            artifact = {
                "abi": compiled["abi"],
                "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
                "compiler": {"name": "solc", "version": metadata["compiler"]["version"]},
                "contractName": contract_name,
                "deployedBytecode": "0x" + compiled["evm"]["deployedBytecode"]["object"],
                "metadata": compiled["metadata"],
                "settings": SETTINGS,
                "sourceHashes": {name: "sha256:" + _sha256(sources[name]) for name in used_sources},
                "sourceName": source_name,
            }
            artifacts[file_name] = json.dumps(artifact, indent=2, sort_keys=True) + "\n"
    return artifacts


def build() -> dict[str, str]:
    """Compile everything; return artifact file name -> exact file text. Writes nothing."""
    sources = collect_sources()
    return artifacts_from_output(sources, run_compiler(standard_json_input(sources)))


def differences(expected: dict[str, str], artifact_root: Path = ARTIFACT_ROOT) -> list[str]:
    """Names of artifacts on disk that differ from `expected`, are missing, or are stale extras."""
    found: list[str] = []
    for file_name, text in sorted(expected.items()):
        path = artifact_root / file_name
        if not path.is_file():
            found.append(f"{file_name}: missing")
        elif path.read_bytes() != text.encode("utf-8"):
            found.append(f"{file_name}: differs")
    on_disk = {path.name for path in artifact_root.glob("*.json")} if artifact_root.is_dir() else set()
    found.extend(f"{name}: stale (no such contract)" for name in sorted(on_disk - set(expected)))
    return found


def write(expected: dict[str, str], artifact_root: Path = ARTIFACT_ROOT) -> None:
    artifact_root.mkdir(parents=True, exist_ok=True)
    for file_name, text in expected.items():
        (artifact_root / file_name).write_bytes(text.encode("utf-8"))
    for stale in sorted(artifact_root.glob("*.json")):
        if stale.name not in expected:
            stale.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compile in memory and compare; write nothing")
    arguments = parser.parse_args(argv)
    try:
        expected = build()
    except BuildError as error:
        print(f"build_contracts: {error}", file=sys.stderr)
        return 2
    if arguments.check:
        found = differences(expected)
        for line in found:
            print(f"build_contracts: {line}", file=sys.stderr)
        if found:
            return 1
        print(f"build_contracts: {len(expected)} artifacts match the sources")
        return 0
    write(expected)
    print(f"build_contracts: wrote {len(expected)} artifacts to {ARTIFACT_ROOT.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
