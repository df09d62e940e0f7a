"""The append-only Merkle log: RFC 9162 section 2.1 with SHA-256, exactly (formats.md).

Storage model. Only *perfect* subtrees are stored: node `(level, index)` is the hash of leaves
`[index * 2**level, (index + 1) * 2**level)`; level 0 holds the leaf hashes. Such a node never
changes once its last leaf is appended, so a store can be append-only and keyed by
`(level, index)`. The head of a log is `(size, frontier)`, the *compact frontier* being the roots
of the perfect subtrees of the binary decomposition of `size`, largest (leftmost) first.

Every RFC 9162 subtree hash `MTH(D[a:b])` used by a proof is either one perfect node or (at most
once per proof) a right edge `[a, size)` that splits into at most log2(size) perfect nodes. So a
proof or an earlier root costs O(log n) node reads, made in one batched `get_nodes` call, and no
recursion over the tree. Appending costs amortized two SHA-256 calls per leaf.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from hashlib import sha256
from typing import Protocol

from ledger import limits
from ledger.errors import InvalidProof, InvalidTreeRange, LogCorrupted, NodeMissing

EMPTY_ROOT = sha256(b"").digest()
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

NodeKey = tuple[int, int]  # (level, index)
NewNode = tuple[int, int, bytes]  # (level, index, hash)


def leaf_hash(leaf_input: bytes) -> bytes:
    """`SHA-256(0x00 || leaf_input)`."""
    return sha256(_LEAF_PREFIX + leaf_input).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """`SHA-256(0x01 || left || right)`."""
    return sha256(_NODE_PREFIX + left + right).digest()


class NodeStore(Protocol):
    """Read side of a node store: the backend implements it over its database."""

    def get_nodes(self, keys: Sequence[NodeKey]) -> list[bytes]:
        """The hashes of the perfect nodes `keys`, in the same order; raise NodeMissing if any
        is absent."""
        ...


class WritableNodeStore(NodeStore, Protocol):
    def put_nodes(self, nodes: Sequence[NewNode]) -> None:
        """Store new perfect nodes (as returned by `append`). Nodes are immutable."""
        ...


class MemoryNodeStore:
    """In-memory node store: one list per level, node index = list position."""

    def __init__(self) -> None:
        self._levels: list[list[bytes]] = []

    def get_nodes(self, keys: Sequence[NodeKey]) -> list[bytes]:
        levels = self._levels
        nodes: list[bytes] = []
        try:
            for level, index in keys:
                if level < 0 or index < 0:  # Python would read from the end of the list
                    raise IndexError
                nodes.append(levels[level][index])
        except IndexError:
            raise NodeMissing(f"node store lacks one of {list(keys)[:8]}") from None
        return nodes

    def put_nodes(self, nodes: Sequence[NewNode]) -> None:
        levels = self._levels
        for level, index, hash_ in nodes:
            while len(levels) <= level:
                levels.append([])
            row = levels[level]
            if index == len(row):
                row.append(hash_)
            elif index > len(row):
                raise LogCorrupted(f"node ({level}, {index}) written before its predecessors")
            elif row[index] != hash_:
                raise LogCorrupted(f"node ({level}, {index}) is immutable and differs")

    def put_level_run(self, level: int, start: int, hashes: list[bytes]) -> None:
        """Fast path for `MerkleLog.append_many`: consecutive nodes of one level."""
        levels = self._levels
        while len(levels) <= level:
            levels.append([])
        row = levels[level]
        if start != len(row):
            raise LogCorrupted(f"level {level} run starts at {start}, store has {len(row)}")
        row.extend(hashes)


# --- Pure functions over the compact frontier --------------------------------------------------


def frontier_keys(size: int) -> list[NodeKey]:
    """Keys of the perfect subtrees of `size`'s binary decomposition, largest first."""
    return subtree_keys(0, size)


def subtree_keys(start: int, end: int) -> list[NodeKey]:
    """The perfect nodes whose hashes make up `MTH(D[start:end])`, left to right.

    `[start, end)` must be a subtree of the RFC 9162 split: `start` aligned to the largest power
    of two not above `end - start`. Greedy largest-power-first is exactly the RFC split.
    """
    keys: list[NodeKey] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start & ((1 << level) - 1):
            raise InvalidTreeRange(f"[{start}, {end}) is not a subtree of the log")
        keys.append((level, start >> level))
        start += 1 << level
    return keys


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """Combine perfect-subtree hashes (left to right) into their RFC 9162 subtree hash."""
    if not hashes:
        return EMPTY_ROOT
    result = hashes[-1]
    for position in range(len(hashes) - 2, -1, -1):
        result = sha256(_NODE_PREFIX + hashes[position] + result).digest()
    return result


def root_from_frontier(frontier: Sequence[bytes]) -> bytes:
    """The tree head hash from a compact frontier (EMPTY_ROOT for the empty tree)."""
    return fold_right(frontier)


def _check_frontier(frontier: Sequence[bytes], size: int) -> None:
    if not 0 <= size < limits.tree_size_max:
        raise InvalidTreeRange(f"size {size} out of range")
    if len(frontier) != size.bit_count():
        raise LogCorrupted(f"frontier has {len(frontier)} hashes, size {size} needs popcount")


def append(frontier: Sequence[bytes], size: int, leaf_hash: bytes) -> tuple[list[bytes], list[NewNode]]:
    """Append one leaf hash to a head `(frontier, size)`.

    Returns the new frontier and the perfect nodes completed by this leaf (the leaf itself at
    level 0 and each merged parent), for the caller to store in the same transaction.
    """
    _check_frontier(frontier, size)
    if not isinstance(leaf_hash, bytes) or len(leaf_hash) != limits.hash_bytes:
        raise LogCorrupted("leaf hash must be 32 bytes")
    new_frontier = list(frontier)
    nodes: list[NewNode] = [(0, size, leaf_hash)]
    hash_, level, index = leaf_hash, 0, size
    while index & 1:  # the subtree just completed has a left sibling in the frontier: merge
        hash_ = sha256(_NODE_PREFIX + new_frontier.pop() + hash_).digest()
        level += 1
        index >>= 1
        nodes.append((level, index, hash_))
    new_frontier.append(hash_)
    return new_frontier, nodes


NodeRun = tuple[int, int, list[bytes]]  # (level, first index, consecutive hashes)


def append_batch(
    frontier: Sequence[bytes], size: int, leaf_hashes: Sequence[bytes]
) -> tuple[list[bytes], list[NodeRun]]:
    """Append many leaf hashes at once, level by level; same result as repeated `append`.

    Returns the new frontier and, per level, the run of perfect nodes completed: at level L
    they are consecutive, from index `size >> L` (node (L, i) completes when the size reaches
    (i + 1) * 2**L). Pairing a whole level in one comprehension is what keeps this close to
    the cost of the bare SHA-256 calls.
    """
    _check_frontier(frontier, size)
    new_size = size + len(leaf_hashes)
    if new_size >= limits.tree_size_max:
        raise InvalidTreeRange("log is full")
    old_levels = [level for level in range(size.bit_length() - 1, -1, -1) if size >> level & 1]
    old_by_level = dict(zip(old_levels, frontier, strict=True))
    sha, node_prefix = sha256, _NODE_PREFIX
    runs: list[NodeRun] = []
    frontier_by_level: dict[int, bytes] = {}
    run = list(leaf_hashes)
    for level in range(new_size.bit_length()):
        first = size >> level
        if run:
            runs.append((level, first, run))
        # Pair from an even index: an odd `first` means the left sibling is in the old frontier.
        row = [old_by_level[level], *run] if first & 1 else run
        if len(row) & 1:
            frontier_by_level[level] = row[-1]
        lefts, rights = row[::2], row[1::2]  # an odd last node stays behind, in the frontier
        run = [sha(node_prefix + left + right).digest() for left, right in zip(lefts, rights, strict=False)]
    new_frontier = [frontier_by_level[level] for level in sorted(frontier_by_level, reverse=True)]
    _check_frontier(new_frontier, new_size)
    return new_frontier, runs


def runs_to_nodes(runs: Sequence[NodeRun]) -> list[NewNode]:
    """Flatten `append_batch` runs into `(level, index, hash)` rows for a node store."""
    return [(level, first + offset, hash_) for level, first, hashes in runs for offset, hash_ in enumerate(hashes)]


# --- Proof shapes (which subtree hashes a proof lists) -----------------------------------------


def _check_size(size: int, name: str) -> None:
    if not isinstance(size, int) or isinstance(size, bool):
        raise InvalidTreeRange(f"{name} must be an int", param=name)
    if not 0 <= size <= limits.tree_size_max:
        raise InvalidTreeRange(f"{name} {size} outside [0, 2**64)", param=name)


def _split(width: int) -> int:
    """The largest power of two strictly below `width` (width >= 2)."""
    return 1 << ((width - 1).bit_length() - 1)


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges `[a, b)` whose `MTH` make up `PATH(index, D[0:size])`, in proof order
    (bottom up). Iterative form of RFC 9162 2.1.3.1."""
    _check_size(size, "size")
    _check_size(index, "index")
    if index >= size:
        raise InvalidTreeRange(f"leaf {index} not in a tree of size {size}", param="index")
    ranges: list[tuple[int, int]] = []
    low, high = 0, size
    while high - low > 1:
        middle = low + (1 << ((high - low - 1).bit_length() - 1))  # RFC split: largest 2**k < n
        if index < middle:
            ranges.append((middle, high))
            high = middle
        else:
            ranges.append((low, middle))
            low = middle
    ranges.reverse()
    return ranges


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose `MTH` make up `PROOF(m, D[0:n])`, in proof order.
    Iterative form of RFC 9162 2.1.4.1 (SUBPROOF)."""
    _check_size(old_size, "old_size")
    _check_size(new_size, "new_size")
    if not 0 < old_size <= new_size:
        raise InvalidTreeRange(f"need 0 < m <= n, got m={old_size}, n={new_size}")
    head: list[tuple[int, int]] = []
    tail: list[tuple[int, int]] = []
    low, high, complete = 0, new_size, True  # `complete`: SUBPROOF's flag b
    while old_size != high:
        middle = low + _split(high - low)
        if old_size <= middle:
            tail.append((middle, high))
            high = middle
        else:
            tail.append((low, middle))
            low, complete = middle, False
    if not complete:
        head.append((low, high))
    tail.reverse()
    return head + tail


def _hashes_for_ranges(store: NodeStore, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    """MTH of each range, with a single batched read of all the perfect nodes involved."""
    keys: list[NodeKey] = []
    counts: list[int] = []  # how many perfect nodes make up each range
    for start, end in ranges:
        width = end - start
        if width & (width - 1) == 0 and start & (width - 1) == 0:  # one perfect node
            level = width.bit_length() - 1
            keys.append((level, start >> level))
            counts.append(1)
        else:
            group = subtree_keys(start, end)
            keys.extend(group)
            counts.append(len(group))
    nodes = store.get_nodes(keys) if keys else []
    if len(nodes) != len(keys):
        raise NodeMissing(f"node store returned {len(nodes)} nodes for {len(keys)} keys")
    for node in nodes:
        if len(node) != limits.hash_bytes:
            raise NodeMissing("node store returned a hash that is not 32 bytes")
    result: list[bytes] = []
    position = 0
    for count in counts:
        result.append(nodes[position] if count == 1 else fold_right(nodes[position : position + count]))
        position += count
    return result


def root_at(store: NodeStore, size: int) -> bytes:
    """`MTH(D[0:size])` from at most popcount(size) node reads."""
    _check_size(size, "size")
    return fold_right(_hashes_for_ranges(store, [(0, size)])) if size else EMPTY_ROOT


def inclusion_proof(store: NodeStore, index: int, size: int) -> list[bytes]:
    """RFC 9162 inclusion proof of leaf `index` in the tree of `size` leaves."""
    return _hashes_for_ranges(store, inclusion_ranges(index, size))


def consistency_proof(store: NodeStore, old_size: int, new_size: int) -> list[bytes]:
    """RFC 9162 consistency proof between tree sizes `0 < old_size <= new_size`."""
    return _hashes_for_ranges(store, consistency_ranges(old_size, new_size))


# --- Verification (RFC 9162 2.1.3.2 and 2.1.4.2) -----------------------------------------------


def _check_hashes(proof: Sequence[bytes], hashes_max: int) -> None:
    if len(proof) > hashes_max:
        raise InvalidProof(f"proof has {len(proof)} hashes, at most {hashes_max} allowed")
    for hash_ in proof:
        if not isinstance(hash_, bytes) or len(hash_) != limits.hash_bytes:
            raise InvalidProof("every proof element must be a 32-byte hash")


def root_from_inclusion_proof(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that `proof` yields for `leaf_hash` at `index` in a tree of `size`, or
    InvalidProof if the proof's length does not fit (index, size)."""
    _check_size(size, "size")
    _check_size(index, "index")
    _check_hashes([leaf_hash], 1)
    _check_hashes(proof, limits.inclusion_proof_hashes_max)
    if index >= size:
        raise InvalidProof(f"leaf index {index} not below tree size {size}")
    fn, sn, result = index, size - 1, leaf_hash
    for sibling in proof:
        if sn == 0:
            raise InvalidProof("inclusion proof is too long")
        if fn & 1 or fn == sn:
            result = sha256(_NODE_PREFIX + sibling + result).digest()
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = sha256(_NODE_PREFIX + result + sibling).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof("inclusion proof is too short")
    return result


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """True iff `proof` shows `leaf_hash` at `index` in the tree of `size` with head `root`."""
    try:
        return root_from_inclusion_proof(leaf_hash, index, size, proof) == root
    except (InvalidProof, InvalidTreeRange):
        return False


def _consistency_roots(old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]) -> tuple[bytes, bytes]:
    """RFC 9162 2.1.4.2 steps 2-7 for 0 < m < n: the (old, new) roots the proof yields."""
    if not proof:
        raise InvalidProof("empty consistency proof for m < n")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # m is a power of two: the old root is the seed
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    old_result = new_result = path[0]
    for hash_ in path[1:]:
        if sn == 0:
            raise InvalidProof("consistency proof is too long")
        if fn & 1 or fn == sn:
            old_result = sha256(_NODE_PREFIX + hash_ + old_result).digest()
            new_result = sha256(_NODE_PREFIX + hash_ + new_result).digest()
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            new_result = sha256(_NODE_PREFIX + new_result + hash_).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof("consistency proof is too short")
    return old_result, new_result


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """True iff `proof` shows the tree `(new_size, new_root)` extends `(old_size, old_root)`."""
    try:
        _check_size(old_size, "old_size")
        _check_size(new_size, "new_size")
        _check_hashes([old_root, new_root], 2)
        _check_hashes(proof, limits.consistency_proof_hashes_max)
        if old_size > new_size:
            return False
        if old_size == new_size:
            return not proof and old_root == new_root
        if old_size == 0:
            return not proof and old_root == EMPTY_ROOT
        return _consistency_roots(old_size, new_size, old_root, proof) == (old_root, new_root)
    except (InvalidProof, InvalidTreeRange):
        return False


# --- A log over a store ------------------------------------------------------------------------


class MerkleLog:
    """An append-only log over a writable node store; the head is kept in memory.

    The backend keeps its head in the database and uses the pure functions above; this class is
    the reference composition (and what tests and the benchmark drive).
    """

    def __init__(self, store: WritableNodeStore | None = None, *, size: int = 0) -> None:
        self._store: WritableNodeStore = store if store is not None else MemoryNodeStore()
        _check_size(size, "size")
        self._size = size
        self._frontier: list[bytes] = self._store.get_nodes(frontier_keys(size)) if size else []
        _check_frontier(self._frontier, size)

    @property
    def store(self) -> WritableNodeStore:
        return self._store

    @property
    def size(self) -> int:
        return self._size

    @property
    def frontier(self) -> tuple[bytes, ...]:
        return tuple(self._frontier)

    def append(self, leaf_input: bytes) -> int:
        """Append one leaf input; return its index."""
        return self.append_leaf_hash(leaf_hash(leaf_input))

    def append_leaf_hash(self, hash_: bytes) -> int:
        index = self._size
        frontier, nodes = append(self._frontier, index, hash_)
        self._store.put_nodes(nodes)
        self._frontier, self._size = frontier, index + 1
        return index

    def append_many(self, leaf_inputs: Iterable[bytes]) -> int:
        """Append leaf inputs in order; return the new size. The hot path: one comprehension
        hashes the leaves, `append_batch` builds each level, the store gets one batch."""
        sha, leaf_prefix = sha256, _LEAF_PREFIX
        hashes = [sha(leaf_prefix + data).digest() for data in leaf_inputs]
        frontier, runs = append_batch(self._frontier, self._size, hashes)
        store = self._store
        if isinstance(store, MemoryNodeStore):
            for level, first, run in runs:
                store.put_level_run(level, first, run)
        else:
            store.put_nodes(runs_to_nodes(runs))
        self._frontier, self._size = frontier, self._size + len(hashes)
        return self._size

    def root(self, size: int | None = None) -> bytes:
        """The head hash at the current size, or at an earlier `size` (O(log n) reads)."""
        if size is None or size == self._size:
            return root_from_frontier(self._frontier)
        self._check_within(size)
        return root_at(self._store, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = self._size if size is None else size
        self._check_within(size)
        return inclusion_proof(self._store, index, size)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        new_size = self._size if new_size is None else new_size
        self._check_within(new_size)
        return consistency_proof(self._store, old_size, new_size)

    def _check_within(self, size: int) -> None:
        _check_size(size, "size")
        if size > self._size:
            raise InvalidTreeRange(f"size {size} beyond the log's size {self._size}")
