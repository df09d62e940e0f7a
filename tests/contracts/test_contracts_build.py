"""The committed artifacts are exactly what the pinned compiler makes of the sources today."""

from __future__ import annotations

import json

import pytest

from scripts import build_contracts


@pytest.fixture(scope="module")
def rebuilt() -> dict[str, str]:
    """One fresh compilation (about 5 s with solcjs), shared by this module's tests."""
    return build_contracts.build()


def test_rebuild_matches_committed_artifacts_byte_for_byte(rebuilt) -> None:
    assert build_contracts.differences(rebuilt) == []


def test_artifacts_pin_compiler_and_settings_and_hash_every_source(rebuilt) -> None:
    for text in rebuilt.values():
        artifact = json.loads(text)
        assert artifact["compiler"] == {"name": "solc", "version": "0.8.28+commit.7893614a"}
        assert artifact["settings"]["evmVersion"] == "cancun"
        assert artifact["settings"]["metadata"] == {"bytecodeHash": "none"}
        assert artifact["sourceName"] in artifact["sourceHashes"]
        assert all(h.startswith("sha256:") and len(h) == 71 for h in artifact["sourceHashes"].values())
        assert text == json.dumps(artifact, indent=2, sort_keys=True) + "\n"


def test_check_names_a_changed_artifact(rebuilt, tmp_path) -> None:
    expected = rebuilt
    build_contracts.write(expected, tmp_path)
    (tmp_path / "LedgerAnchor.json").write_text("{}\n")
    (tmp_path / "Gone.json").write_text("{}\n")
    assert build_contracts.differences(expected, tmp_path) == [
        "LedgerAnchor.json: differs",
        "Gone.json: stale (no such contract)",
    ]
