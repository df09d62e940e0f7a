"""ledger.merkle reproduces the RFC 6962/9162 reference vectors of Certificate Transparency."""

from __future__ import annotations

import pytest

from ledger.merkle import (
    EMPTY_ROOT,
    MerkleLog,
    leaf_hash,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

# The 8 test leaves of certificate-transparency / transparency-dev (facts, copied as data).
LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]

# MTH(D[0:size]) for size 0..8.
ROOTS = [
    bytes.fromhex(h)
    for h in [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]

# (leaf index, tree size, proof)
INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (0, 2, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"]),
    (1, 2, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"]),
]

# (old size, new size, proof)
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


@pytest.fixture(scope="module")
def log() -> MerkleLog:
    log = MerkleLog()
    for leaf in LEAVES:
        log.append(leaf)
    return log


def test_empty_root() -> None:
    assert EMPTY_ROOT == ROOTS[0]
    assert MerkleLog().root() == ROOTS[0]


def test_roots_at_every_size_one_leaf_at_a_time() -> None:
    log = MerkleLog()
    for size, leaf in enumerate(LEAVES, start=1):
        log.append(leaf)
        assert log.root() == ROOTS[size]


def test_roots_at_every_earlier_size(log: MerkleLog) -> None:
    for size in range(9):
        assert log.root(size) == ROOTS[size]


def test_roots_when_appended_in_batches() -> None:
    for cut in range(9):
        log = MerkleLog()
        log.append_many(LEAVES[:cut])
        log.append_many(LEAVES[cut:])
        assert [log.root(size) for size in range(9)] == ROOTS


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_vectors(log: MerkleLog, index: int, size: int, proof: list[str]) -> None:
    expected = [bytes.fromhex(h) for h in proof]
    assert log.inclusion_proof(index, size) == expected
    hashed = leaf_hash(LEAVES[index])
    assert root_from_inclusion_proof(hashed, index, size, expected) == ROOTS[size]
    assert verify_inclusion(hashed, index, size, expected, ROOTS[size])
    assert not verify_inclusion(hashed, index, size, expected, ROOTS[0])
    assert not verify_inclusion(hashed, index ^ 1, size, expected, ROOTS[size]) or size == 1
    assert not verify_inclusion(hashed, index, size * 2, expected, ROOTS[size])
    assert not verify_inclusion(hashed, index, size, [*expected, ROOTS[size]], ROOTS[size])
    if expected:
        assert not verify_inclusion(hashed, index, size, expected[:-1], ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_vectors(log: MerkleLog, old: int, new: int, proof: list[str]) -> None:
    expected = [bytes.fromhex(h) for h in proof]
    assert log.consistency_proof(old, new) == expected
    assert verify_consistency(old, new, ROOTS[old], ROOTS[new], expected)
    if expected:
        assert not verify_consistency(old, new, ROOTS[new], ROOTS[old], expected)
        assert not verify_consistency(old, new, ROOTS[old], ROOTS[new], expected[:-1])
        assert not verify_consistency(old, new, ROOTS[old], ROOTS[new], [*expected, ROOTS[old]])
        assert not verify_consistency(old - 1, new, ROOTS[old], ROOTS[new], expected)
        assert not verify_consistency(old, new, ROOTS[old], ROOTS[new], [])


def test_degenerate_consistency_cases() -> None:
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert verify_consistency(0, 5, EMPTY_ROOT, ROOTS[5], [])
    assert not verify_consistency(0, 5, EMPTY_ROOT, ROOTS[5], [ROOTS[1]])
    assert not verify_consistency(0, 5, ROOTS[1], ROOTS[5], [])
    assert not verify_consistency(3, 3, ROOTS[3], ROOTS[4], [])
    assert not verify_consistency(3, 3, ROOTS[3], ROOTS[3], [ROOTS[3]])
    assert not verify_consistency(2, 1, ROOTS[2], ROOTS[1], [])


def test_invalid_inclusion_inputs() -> None:
    leaf = leaf_hash(LEAVES[0])
    assert not verify_inclusion(leaf, 0, 0, [], EMPTY_ROOT)
    assert not verify_inclusion(leaf, 1, 1, [], leaf)
    assert not verify_inclusion(b"\x01", 0, 1, [], b"\x01")
    assert not verify_inclusion(leaf, 0, 1, [b""], leaf)
