"""Benchmark scenario `merkle` (issue 3): append time against bare SHA-256, and proofs per second.

(a) Append n leaves (160-byte leaf inputs, the size of a leaf without terms) to a `MerkleLog` over
`MemoryNodeStore` and take the root; time the same 2n-1 bare `hashlib.sha256(...).digest()` calls
on inputs of the same lengths (prepared beforehand) in the same run. The ratio is the figure
(goal <= 1.5). Machines shared with other work drift by tens of percent from one second to the
next, so the two are interleaved: the leaves go in chunks, each chunk's append is followed by the
bare hashes for that chunk, and the ratio of the sums is taken; the whole is repeated and the
median ratio printed.
(b) Generate random inclusion proofs at size n (and consistency proofs), report proofs per second.

Run: `python -m scripts.bench_merkle [--quick]`, or through `scripts/bench.py` (`make bench`).
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from hashlib import sha256

from ledger.merkle import MerkleLog, leaf_hash, verify_inclusion

LEAF_INPUT_BYTES = 160
REPEATS = 3
CHUNKS = 20


def _leaf_inputs(count: int) -> list[bytes]:
    filler = b"\x5a" * (LEAF_INPUT_BYTES - 8)
    return [filler + index.to_bytes(8, "big") for index in range(count)]


def _bare_sha256(prefixed_leaves: list[bytes], node_calls: int, node_input: bytes) -> float:
    """Time bare SHA-256 calls: one per (0x00-prefixed) leaf input, `node_calls` over 65 bytes."""
    hash_ = sha256
    started = time.perf_counter()
    for data in prefixed_leaves:
        hash_(data).digest()
    for _ in range(node_calls):
        hash_(node_input).digest()
    return time.perf_counter() - started


def _interleaved_round(leaves: list[bytes], prefixed: list[bytes]) -> tuple[float, float, bytes]:
    """One full append of `leaves` in CHUNKS chunks, each followed by its bare-hash twin."""
    node_input = b"\x01" + b"\x33" * 64
    chunk = -(-len(leaves) // CHUNKS)
    log = MerkleLog()
    append_s = bare_s = 0.0
    gc.collect()
    for start in range(0, len(leaves), chunk):
        part = leaves[start : start + chunk]
        started = time.perf_counter()
        log.append_many(part)
        append_s += time.perf_counter() - started
        node_calls = len(part) - (1 if start == 0 else 0)  # 2n-1 calls in total
        bare_s += _bare_sha256(prefixed[start : start + chunk], node_calls, node_input)
    started = time.perf_counter()
    root = log.root()
    append_s += time.perf_counter() - started
    return append_s, bare_s, root


def _proofs(log: MerkleLog, leaves: list[bytes], count: int) -> tuple[float, float]:
    rng = random.Random(20_260_101)
    size = log.size
    indices = [rng.randrange(size) for _ in range(count)]
    started = time.perf_counter()
    proofs = [log.inclusion_proof(index, size) for index in indices]
    inclusion_s = time.perf_counter() - started
    root = log.root()
    for position in rng.sample(range(count), 100):  # wrong proofs would measure nothing
        index = indices[position]
        if not verify_inclusion(leaf_hash(leaves[index]), index, size, proofs[position], root):
            raise RuntimeError("benchmark produced an invalid proof")
    pairs = [(rng.randrange(1, size + 1), size) for _ in range(count // 10)]
    started = time.perf_counter()
    for old_size, new_size in pairs:
        log.consistency_proof(old_size, new_size)
    consistency_s = time.perf_counter() - started
    return count / inclusion_s, len(pairs) / consistency_s


def run(quick: bool = False) -> list[tuple[str, str]]:
    leaf_count = 100_000 if quick else 1_000_000
    proof_count = 10_000 if quick else 100_000
    leaves = _leaf_inputs(leaf_count)
    prefixed = [b"\x00" + leaf for leaf in leaves]
    rounds = [_interleaved_round(leaves, prefixed) for _ in range(REPEATS)]
    del prefixed
    if len({root for _, _, root in rounds}) != 1:
        raise RuntimeError("appends of the same leaves gave different roots")
    ratios = [append_s / bare_s for append_s, bare_s, _ in rounds]
    append_s = min(append_s for append_s, _, _ in rounds)
    bare_s = min(bare_s for _, bare_s, _ in rounds)
    log = MerkleLog()
    log.append_many(leaves)
    inclusion_per_s, consistency_per_s = _proofs(log, leaves, proof_count)
    return [
        (f"append {leaf_count:,} leaves + root (best of {REPEATS})", f"{append_s:.3f} s"),
        (f"bare hashlib.sha256 x {2 * leaf_count - 1:,} (best of {REPEATS})", f"{bare_s:.3f} s"),
        (
            "append / bare sha256 ratio, median (goal <= 1.5)",
            f"{statistics.median(ratios):.2f} (rounds: {', '.join(f'{r:.2f}' for r in ratios)})",
        ),
        (f"inclusion proofs/s ({proof_count:,} random, size {leaf_count:,})", f"{inclusion_per_s:,.0f}"),
        (f"consistency proofs/s ({proof_count // 10:,} random)", f"{consistency_per_s:,.0f}"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100,000 leaves, 10,000 proofs")
    for label, figure in run(quick=parser.parse_args().quick):
        print(f"merkle     {label:<58} {figure}", flush=True)


if __name__ == "__main__":
    main()
