// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title RFC 9162 Merkle-log proof verification with SHA-256
/// @notice Verifies inclusion proofs (RFC 9162 section 2.1.3.2) and consistency proofs
/// (section 2.1.4.2) exactly as the RFC states the algorithms, so proofs made by any RFC 6962/9162
/// implementation (and by ledger/merkle.py) verify unchanged.
/// Leaf hash: SHA-256(0x00 || leafInput). Node hash: SHA-256(0x01 || left || right).
/// @dev Proof lengths are bounded: a tree of fewer than 2**64 leaves has depth at most 64, so an
/// inclusion proof never has more than 64 nodes and a consistency proof never more than 65
/// (its path plus the old subtree root). Longer proofs are refused before any hashing.
library MerkleLog {
    /// @notice Most nodes an inclusion proof for a tree of fewer than 2**64 leaves can have.
    uint256 internal constant INCLUSION_PROOF_LENGTH_MAX = 64;
    /// @notice Most nodes a consistency proof between trees of fewer than 2**64 leaves can have.
    uint256 internal constant CONSISTENCY_PROOF_LENGTH_MAX = 65;
    /// @notice The empty tree's hash, SHA-256("").
    bytes32 internal constant EMPTY_ROOT = 0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855;

    /// @notice A proof is longer than any valid proof can be.
    error MerkleLogProofTooLong(uint256 length, uint256 lengthMax);

    /// @notice SHA-256(0x00 || leafInput), the RFC 9162 leaf hash.
    function hashLeaf(bytes memory leafInput) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x00), leafInput));
    }

    /// @notice SHA-256(0x01 || left || right), the RFC 9162 interior node hash.
    /// @dev Equal to `sha256(abi.encodePacked(bytes1(0x01), left, right))`, written against the
    /// precompile directly because proofs hash up to 65 times per call and abi.encodePacked
    /// allocates fresh memory on every one. The 65 bytes go to free memory without moving the
    /// free-memory pointer (scratch use, which the memory-safe rules allow).
    function hashNode(bytes32 left, bytes32 right) internal view returns (bytes32 node) {
        assembly ("memory-safe") {
            let buffer := mload(0x40)
            mstore8(buffer, 0x01)
            mstore(add(buffer, 0x01), left)
            mstore(add(buffer, 0x21), right)
            // The SHA-256 precompile only fails when it runs out of gas.
            if iszero(staticcall(gas(), 0x02, buffer, 0x41, 0x00, 0x20)) { revert(0x00, 0x00) }
            node := mload(0x00)
        }
    }

    /// @notice The root an inclusion proof leads to, per RFC 9162 section 2.1.3.2.
    /// @return wellFormed False when `leafIndex >= treeSize` or the proof has the wrong number of
    /// nodes for that index and size; `root` is then meaningless.
    /// @return root The tree head the proof claims; compare it with a trusted root.
    /// @dev The loop is the RFC's step 4 in assembly: a hash costs 196 gas at the precompile and the
    /// Solidity form spent about as much again around it. fn and sn are as the RFC names them.
    function rootFromInclusionProof(uint256 leafIndex, uint256 treeSize, bytes32 leafHash, bytes32[] calldata proof)
        internal
        view
        returns (bool wellFormed, bytes32 root)
    {
        uint256 length = proof.length;
        if (length > INCLUSION_PROOF_LENGTH_MAX) revert MerkleLogProofTooLong(length, INCLUSION_PROOF_LENGTH_MAX);
        if (leafIndex >= treeSize) return (false, bytes32(0));
        uint256 fn = leafIndex;
        uint256 sn = treeSize - 1;
        bool complete = true;
        root = leafHash;
        assembly ("memory-safe") {
            // 0x01 || left || right is assembled in free memory (scratch, the pointer is not moved).
            let buffer := mload(0x40)
            mstore8(buffer, 0x01)
            // The ABI decoder has checked the array lies inside calldata; length <= 64.
            for {
                let offset := proof.offset
                let end := add(offset, shl(5, length))
            } lt(offset, end) { offset := add(offset, 0x20) } {
                if iszero(sn) {
                    complete := 0
                    break
                }
                let node := calldataload(offset)
                switch or(and(fn, 1), eq(fn, sn))
                case 0 {
                    mstore(add(buffer, 0x01), root)
                    mstore(add(buffer, 0x21), node)
                }
                default {
                    mstore(add(buffer, 0x01), node)
                    mstore(add(buffer, 0x21), root)
                    // On the right edge (fn == sn, fn even) skip the levels without a sibling.
                    for {} and(iszero(and(fn, 1)), iszero(iszero(fn))) {} {
                        fn := shr(1, fn)
                        sn := shr(1, sn)
                    }
                }
                // The SHA-256 precompile only fails when it runs out of gas.
                if iszero(staticcall(gas(), 0x02, buffer, 0x41, 0x00, 0x20)) { revert(0x00, 0x00) }
                root := mload(0x00)
                fn := shr(1, fn)
                sn := shr(1, sn)
            }
        }
        return (complete && sn == 0, root);
    }

    /// @notice Whether `proof` shows the leaf hash at `leafIndex` in the tree of `treeSize` leaves
    /// whose head is `root`.
    function verifyInclusion(
        uint256 leafIndex,
        uint256 treeSize,
        bytes32 leafHash,
        bytes32[] calldata proof,
        bytes32 root
    ) internal view returns (bool) {
        (bool wellFormed, bytes32 computed) = rootFromInclusionProof(leafIndex, treeSize, leafHash, proof);
        return wellFormed && computed == root;
    }

    /// @notice Whether `proof` shows the tree of `newSize` leaves with head `newRoot` extends the
    /// tree of `oldSize` leaves with head `oldRoot`, per RFC 9162 section 2.1.4.2.
    /// @dev The empty tree (size 0, root SHA-256("")) is consistent with everything (empty proof);
    /// equal sizes need equal roots and an empty proof; a smaller new size is never consistent.
    function verifyConsistency(
        uint256 oldSize,
        uint256 newSize,
        bytes32 oldRoot,
        bytes32 newRoot,
        bytes32[] calldata proof
    ) internal view returns (bool) {
        uint256 length = proof.length;
        if (length > CONSISTENCY_PROOF_LENGTH_MAX) revert MerkleLogProofTooLong(length, CONSISTENCY_PROOF_LENGTH_MAX);
        if (oldSize > newSize) return false;
        if (oldSize == 0) return length == 0 && oldRoot == EMPTY_ROOT;
        if (oldSize == newSize) return length == 0 && oldRoot == newRoot;
        if (length == 0) return false;

        uint256 fn = oldSize - 1;
        uint256 sn = newSize - 1;
        // When the old tree is a complete subtree (size a power of two) the proof omits its root,
        // which the verifier already holds: seed with oldRoot instead of proof[0] (RFC step 2).
        bool seededWithOldRoot = (oldSize & (oldSize - 1)) == 0;
        bool complete = true;
        bytes32 fr;
        bytes32 sr;
        // RFC steps 3-6 in assembly, for the same reason as in rootFromInclusionProof.
        assembly ("memory-safe") {
            let offset := proof.offset
            let end := add(offset, shl(5, length))
            switch seededWithOldRoot
            case 0 {
                fr := calldataload(offset)
                offset := add(offset, 0x20)
            }
            default { fr := oldRoot }
            sr := fr
            for {} and(fn, 1) {} {
                fn := shr(1, fn)
                sn := shr(1, sn)
            }
            let buffer := mload(0x40)
            mstore8(buffer, 0x01)
            for {} lt(offset, end) { offset := add(offset, 0x20) } {
                if iszero(sn) {
                    complete := 0
                    break
                }
                let c := calldataload(offset)
                switch or(and(fn, 1), eq(fn, sn))
                case 0 {
                    mstore(add(buffer, 0x01), sr)
                    mstore(add(buffer, 0x21), c)
                    if iszero(staticcall(gas(), 0x02, buffer, 0x41, 0x00, 0x20)) { revert(0x00, 0x00) }
                    sr := mload(0x00)
                }
                default {
                    mstore(add(buffer, 0x01), c)
                    mstore(add(buffer, 0x21), fr)
                    if iszero(staticcall(gas(), 0x02, buffer, 0x41, 0x00, 0x20)) { revert(0x00, 0x00) }
                    fr := mload(0x00)
                    mstore(add(buffer, 0x21), sr)
                    if iszero(staticcall(gas(), 0x02, buffer, 0x41, 0x00, 0x20)) { revert(0x00, 0x00) }
                    sr := mload(0x00)
                    for {} and(iszero(and(fn, 1)), iszero(iszero(fn))) {} {
                        fn := shr(1, fn)
                        sn := shr(1, sn)
                    }
                }
                fn := shr(1, fn)
                sn := shr(1, sn)
            }
        }
        return complete && sn == 0 && fr == oldRoot && sr == newRoot;
    }
}
