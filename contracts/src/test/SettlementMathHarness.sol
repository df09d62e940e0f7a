// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Terms} from "../Terms.sol";
import {MerkleLog} from "../libraries/MerkleLog.sol";
import {SettlementMath} from "../libraries/SettlementMath.sol";

/// @title SettlementMathHarness (tests only): the internal libraries as external views
/// @notice Lets tests compare SettlementMath and MerkleLog with ledger/ on random inputs by eth_call,
/// at any timestamp and any pair of sizes, without sending transactions.
contract SettlementMathHarness {
    /// @notice SettlementMath.amountDueAt.
    function amountDueAt(Terms calldata terms, uint256 t) external pure returns (uint256) {
        return SettlementMath.amountDueAt(terms, t);
    }

    /// @notice SettlementMath.remainingAt.
    function remainingAt(Terms calldata terms, uint256 t, uint256 paid) external pure returns (uint256) {
        return SettlementMath.remainingAt(terms, t, paid);
    }

    /// @notice MerkleLog.verifyConsistency.
    function verifyConsistency(
        uint256 oldSize,
        uint256 newSize,
        bytes32 oldRoot,
        bytes32 newRoot,
        bytes32[] calldata proof
    ) external view returns (bool) {
        return MerkleLog.verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof);
    }

    /// @notice MerkleLog.rootFromInclusionProof.
    function rootFromInclusionProof(uint256 leafIndex, uint256 treeSize, bytes32 leafHash, bytes32[] calldata proof)
        external
        view
        returns (bool wellFormed, bytes32 root)
    {
        return MerkleLog.rootFromInclusionProof(leafIndex, treeSize, leafHash, proof);
    }
}
