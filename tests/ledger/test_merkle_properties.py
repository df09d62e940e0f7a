"""Every ledger.merkle proof equals the naive RFC 9162 reference and verifies; bit flips fail."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from merkle_reference import ref_leaf, ref_mth, ref_path, ref_proof

from ledger import limits
from ledger.errors import InvalidTreeRange, LogCorrupted, NodeMissing
from ledger.merkle import (
    MemoryNodeStore,
    MerkleLog,
    append,
    append_batch,
    consistency_proof,
    frontier_keys,
    inclusion_proof,
    leaf_hash,
    root_at,
    root_from_frontier,
    runs_to_nodes,
    verify_consistency,
    verify_inclusion,
)

SIZE_MAX = 300


def _leaves(size: int) -> list[bytes]:
    return [index.to_bytes(4, "big") for index in range(size)]


_LOG = MerkleLog()
_LOG.append_many(_leaves(SIZE_MAX))
_HASHES = [ref_leaf(leaf) for leaf in _leaves(SIZE_MAX)]
_ROOTS = [ref_mth(_HASHES[:size]) for size in range(SIZE_MAX + 1)]


def _flip(data: bytes, bit: int) -> bytes:
    position = bit % (len(data) * 8)
    flipped = bytearray(data)
    flipped[position // 8] ^= 1 << (position % 8)
    return bytes(flipped)


class CountingStore(MemoryNodeStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def get_nodes(self, keys):  # type: ignore[no-untyped-def]
        self.calls.append(len(keys))
        return super().get_nodes(keys)


@settings(deadline=None)  # no per-example deadline: shared CI machines stall
@given(st.integers(1, SIZE_MAX).flatmap(lambda n: st.tuples(st.integers(0, n - 1), st.just(n))))
def test_inclusion_matches_reference_and_verifies(pair: tuple[int, int]) -> None:
    index, size = pair
    proof = _LOG.inclusion_proof(index, size)
    assert proof == ref_path(index, _HASHES[:size])
    assert len(proof) <= limits.inclusion_proof_hashes_max
    assert verify_inclusion(_HASHES[index], index, size, proof, _ROOTS[size])


@settings(deadline=None)  # no per-example deadline: shared CI machines stall
@given(st.integers(1, SIZE_MAX).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_consistency_matches_reference_and_verifies(pair: tuple[int, int]) -> None:
    old, new = pair
    proof = _LOG.consistency_proof(old, new)
    assert proof == ref_proof(old, _HASHES[:new])
    assert verify_consistency(old, new, _ROOTS[old], _ROOTS[new], proof)


@settings(deadline=None)  # no per-example deadline: shared CI machines stall
@given(st.integers(0, SIZE_MAX))
def test_root_at_every_size(size: int) -> None:
    assert _LOG.root(size) == _ROOTS[size]


@settings(deadline=None)  # no per-example deadline: shared CI machines stall
@given(
    st.integers(2, SIZE_MAX).flatmap(lambda n: st.tuples(st.integers(0, n - 1), st.just(n))),
    st.integers(0, 2**16),
    # Not "size": RFC 9162 inclusion proofs do not bind the tree size (leaf 0 of a 5-leaf tree
    # has the same proof under size 7); the size is bound by the anchored head (size, root).
    st.sampled_from(["proof", "leaf", "root", "index"]),
)
def test_inclusion_bit_flip_fails(pair: tuple[int, int], bit: int, target: str) -> None:
    index, size = pair
    proof = _LOG.inclusion_proof(index, size)
    leaf, root = _HASHES[index], _ROOTS[size]
    if target == "proof":
        position = bit % len(proof)
        proof[position] = _flip(proof[position], bit // len(proof))
    elif target == "leaf":
        leaf = _flip(leaf, bit)
    elif target == "root":
        root = _flip(root, bit)
    else:
        index ^= 1 << (bit % 64)
    assert not verify_inclusion(leaf, index, size, proof, root)


@settings(deadline=None)  # no per-example deadline: shared CI machines stall
@given(
    st.integers(2, SIZE_MAX).flatmap(lambda n: st.tuples(st.integers(1, n - 1), st.just(n))),
    st.integers(0, 2**16),
    st.sampled_from(["proof", "old_root", "new_root", "old_size"]),
)
def test_consistency_bit_flip_fails(pair: tuple[int, int], bit: int, target: str) -> None:
    old, new = pair
    proof = _LOG.consistency_proof(old, new)
    old_root, new_root = _ROOTS[old], _ROOTS[new]
    if target == "proof":
        position = bit % len(proof)
        proof[position] = _flip(proof[position], bit // len(proof))
    elif target == "old_root":
        old_root = _flip(old_root, bit)
    elif target == "new_root":
        new_root = _flip(new_root, bit)
    else:
        old ^= 1 << (bit % 64)
    assert not verify_consistency(old, new, old_root, new_root, proof)


@settings(deadline=None)  # no per-example deadline: shared CI machines stall
@given(st.lists(st.integers(0, SIZE_MAX // 8), max_size=8))  # at most SIZE_MAX leaves: _ROOTS ends there
def test_batches_equal_single_appends(batch_sizes: list[int]) -> None:
    single, batched = MerkleLog(), MerkleLog()
    frontier: list[bytes] = []
    size = 0
    for batch in batch_sizes:
        leaves = _leaves(size + batch)[size:]
        for leaf in leaves:
            single.append(leaf)
        batched.append_many(leaves)
        new_frontier, runs = append_batch(frontier, size, [leaf_hash(leaf) for leaf in leaves])
        pure_nodes = runs_to_nodes(runs)
        for leaf in leaves:
            frontier, nodes = append(frontier, size, leaf_hash(leaf))
            size += 1
            assert all(node in pure_nodes for node in nodes)
        assert new_frontier == frontier
        assert single.frontier == batched.frontier == tuple(frontier)
        assert single.root() == batched.root() == root_from_frontier(frontier) == _ROOTS[size]


def test_proofs_read_once_and_logarithmically() -> None:
    store = CountingStore()
    log = MerkleLog(store)
    log.append_many(_leaves(5000))
    rng = random.Random(7)
    for _ in range(200):
        size = rng.randint(1, 5000)
        index = rng.randrange(size)
        store.calls.clear()
        inclusion_proof(store, index, size)
        consistency_proof(store, rng.randint(1, size), size)
        root_at(store, size)
        assert len(store.calls) == 3
        assert all(count <= 2 * 13 for count in store.calls)


def test_reload_from_store_gives_same_head() -> None:
    store = MemoryNodeStore()
    log = MerkleLog(store)
    log.append_many(_leaves(77))
    again = MerkleLog(store, size=77)
    assert again.frontier == log.frontier
    assert store.get_nodes(frontier_keys(77)) == list(log.frontier)
    again.append(b"x")
    log.append(b"x")
    assert again.root() == log.root()


def test_store_refuses_rewrites_and_gaps() -> None:
    store = MemoryNodeStore()
    store.put_nodes([(0, 0, b"a" * 32)])
    store.put_nodes([(0, 0, b"a" * 32)])  # idempotent
    with pytest.raises(LogCorrupted):
        store.put_nodes([(0, 0, b"b" * 32)])
    with pytest.raises(LogCorrupted):
        store.put_nodes([(0, 5, b"b" * 32)])
    with pytest.raises(NodeMissing):
        store.get_nodes([(3, 0)])
    with pytest.raises(NodeMissing):
        store.get_nodes([(0, -1)])


def test_ranges_refused() -> None:
    with pytest.raises(InvalidTreeRange):
        _LOG.inclusion_proof(5, 5)
    with pytest.raises(InvalidTreeRange):
        _LOG.inclusion_proof(0, SIZE_MAX + 1)
    with pytest.raises(InvalidTreeRange):
        _LOG.consistency_proof(0, 5)
    with pytest.raises(InvalidTreeRange):
        _LOG.consistency_proof(6, 5)
    with pytest.raises(LogCorrupted):
        append([], 1, b"\x00" * 32)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 2**64 - 2).flatmap(lambda n: st.tuples(st.integers(0, n - 1), st.just(n))))
def test_proof_lengths_fit_the_limits_for_uint64_sizes(pair: tuple[int, int]) -> None:
    from ledger.merkle import consistency_ranges, inclusion_ranges

    index, size = pair
    assert len(inclusion_ranges(index, size)) <= limits.inclusion_proof_hashes_max
    assert len(consistency_ranges(index + 1, size)) <= limits.consistency_proof_hashes_max
