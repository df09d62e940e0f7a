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
        root = leafHash;
        for (uint256 i = 0; i < length; ++i) {
            if (sn == 0) return (false, bytes32(0));
            if ((fn & 1) == 1 || fn == sn) {
                root = hashNode(proof[i], root);
                // On the right edge (fn == sn, fn even) skip the levels where the node has no sibling.
                while ((fn & 1) == 0 && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            } else {
                root = hashNode(root, proof[i]);
            }
            fn >>= 1;
            sn >>= 1;
        }
        return (sn == 0, root);
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
        // which the verifier already holds: start from oldRoot instead of proof[0].
        uint256 start = (oldSize & (oldSize - 1)) == 0 ? 0 : 1;
        bytes32 seed = start == 0 ? oldRoot : proof[0];
        while ((fn & 1) == 1) {
            fn >>= 1;
            sn >>= 1;
        }
        bytes32 fr = seed;
        bytes32 sr = seed;
        for (uint256 i = start; i < length; ++i) {
            if (sn == 0) return false;
            bytes32 c = proof[i];
            if ((fn & 1) == 1 || fn == sn) {
                fr = hashNode(c, fr);
                sr = hashNode(c, sr);
                while ((fn & 1) == 0 && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            } else {
                sr = hashNode(sr, c);
            }
            fn >>= 1;
            sn >>= 1;
        }
        return sn == 0 && fr == oldRoot && sr == newRoot;
    }
}
