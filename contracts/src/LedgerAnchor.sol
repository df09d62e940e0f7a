// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

import {ILedgerAnchor} from "./interfaces/ILedgerAnchor.sol";
import {MerkleLog} from "./libraries/MerkleLog.sol";

/// @title LedgerAnchor: the append-only anchor of Tally's Merkle log
/// @notice Stores the root of every anchored tree size and accepts a new head only with an
/// RFC 9162 consistency proof, verified here, that it extends the latest head. No function writes a
/// root twice, so not even the admin or the anchorer can rewrite anchored history: they can only
/// stop adding to it (pause, revoke the anchorer).
/// @dev Roles: DEFAULT_ADMIN_ROLE grants and revokes the others (rotating the anchorer is
/// revoke + grant); ANCHORER_ROLE anchors heads; PAUSER_ROLE pauses and unpauses anchoring.
/// Pausing stops `anchor` only: anchored roots stay readable, so payments against them go on.
contract LedgerAnchor is ILedgerAnchor, AccessControl, Pausable {
    /// @notice May call `anchor`.
    bytes32 public constant ANCHORER_ROLE = keccak256("ANCHORER_ROLE");
    /// @notice May pause and unpause anchoring.
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    /// @notice The terms version that marks an invoice as cancelled (voided or written off).
    uint32 public constant TERMS_VERSION_CANCELLED = type(uint32).max;
    /// @notice Most terms updates one `anchor` call may carry (bounds the gas of one call).
    uint256 public constant TERMS_UPDATES_MAX = 256;

    /// @dev Packs into the same storage slot as Pausable's `_paused`, so `anchor` reads both with
    /// one cold SLOAD.
    uint64 private _latestSize;
    mapping(uint64 treeSize => bytes32 root) private _roots;
    mapping(bytes32 invoiceKey => uint32 version) private _termsVersions;

    /// @notice An address argument was zero.
    error LedgerAnchorZeroAddress();
    /// @notice A head with a zero root was offered.
    error LedgerAnchorZeroRoot();
    /// @notice The new head is not larger than the latest anchored head.
    error LedgerAnchorSizeNotIncreasing(uint64 newSize, uint64 latestSize);
    /// @notice The first head came with a consistency proof (there is nothing to be consistent with).
    error LedgerAnchorUnexpectedProof(uint256 proofLength);
    /// @notice The consistency proof does not show the new head extends the latest one.
    error LedgerAnchorInconsistentHead(uint64 latestSize, uint64 newSize);
    /// @notice More terms updates than TERMS_UPDATES_MAX.
    error LedgerAnchorTooManyUpdates(uint256 count, uint256 countMax);
    /// @notice A terms update set version 0, which no terms version has.
    error LedgerAnchorZeroTermsVersion(bytes32 invoiceKey);
    /// @notice A terms update would lower the current version of an invoice key.
    error LedgerAnchorTermsVersionDecreased(bytes32 invoiceKey, uint32 currentVersion, uint32 newVersion);

    /// @param admin Receives DEFAULT_ADMIN_ROLE and PAUSER_ROLE.
    /// @param anchorer Receives ANCHORER_ROLE.
    constructor(address admin, address anchorer) {
        if (admin == address(0) || anchorer == address(0)) revert LedgerAnchorZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(PAUSER_ROLE, admin);
        _grantRole(ANCHORER_ROLE, anchorer);
    }

    /// @inheritdoc ILedgerAnchor
    /// @dev Only ANCHORER_ROLE, only while not paused. Reverts with LedgerAnchorZeroRoot,
    /// LedgerAnchorSizeNotIncreasing, LedgerAnchorUnexpectedProof, LedgerAnchorInconsistentHead,
    /// MerkleLogProofTooLong, or one of the terms-update errors.
    function anchor(
        uint64 newSize,
        bytes32 newRoot,
        bytes32[] calldata consistencyProof,
        TermsUpdate[] calldata updates
    ) external onlyRole(ANCHORER_ROLE) whenNotPaused {
        if (updates.length > TERMS_UPDATES_MAX) revert LedgerAnchorTooManyUpdates(updates.length, TERMS_UPDATES_MAX);
        if (newRoot == bytes32(0)) revert LedgerAnchorZeroRoot();
        uint64 previousSize = _latestSize;
        if (newSize <= previousSize) revert LedgerAnchorSizeNotIncreasing(newSize, previousSize);
        if (previousSize == 0) {
            if (consistencyProof.length != 0) revert LedgerAnchorUnexpectedProof(consistencyProof.length);
        } else if (
            !MerkleLog.verifyConsistency(previousSize, newSize, _roots[previousSize], newRoot, consistencyProof)
        ) {
            revert LedgerAnchorInconsistentHead(previousSize, newSize);
        }
        // newSize exceeds every size anchored so far, so this slot has never been written.
        _roots[newSize] = newRoot;
        _latestSize = newSize;
        emit HeadAnchored(newSize, newRoot, previousSize);
        _applyTermsUpdates(updates);
    }

    /// @notice Stops `anchor` until `unpause`. Only PAUSER_ROLE.
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @notice Lets `anchor` run again. Only PAUSER_ROLE.
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    /// @inheritdoc ILedgerAnchor
    function rootAt(uint64 treeSize) external view returns (bytes32) {
        return _roots[treeSize];
    }

    /// @inheritdoc ILedgerAnchor
    function latest() external view returns (uint64 size, bytes32 root) {
        size = _latestSize;
        root = _roots[size];
    }

    /// @inheritdoc ILedgerAnchor
    /// @dev Reverts with MerkleLogProofTooLong for a proof of more than 64 nodes.
    function verifyInclusion(uint64 treeSize, uint64 leafIndex, bytes32 leafHash, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        bytes32 root = _roots[treeSize];
        if (root == bytes32(0)) return false;
        return MerkleLog.verifyInclusion(leafIndex, treeSize, leafHash, proof, root);
    }

    /// @inheritdoc ILedgerAnchor
    function termsVersion(bytes32 invoiceKey) external view returns (uint32) {
        return _termsVersions[invoiceKey];
    }

    /// @inheritdoc ILedgerAnchor
    function rootAndTermsVersion(uint64 treeSize, bytes32 invoiceKey)
        external
        view
        returns (bytes32 root, uint32 version)
    {
        return (_roots[treeSize], _termsVersions[invoiceKey]);
    }

    /// @dev Versions only go up (equal is a no-op that still emits, so re-sending an update after a
    /// reorg is harmless); a cancelled invoice stays cancelled because nothing exceeds the maximum.
    function _applyTermsUpdates(TermsUpdate[] calldata updates) private {
        uint256 count = updates.length;
        for (uint256 i = 0; i < count; ++i) {
            bytes32 invoiceKey = updates[i].invoiceKey;
            uint32 version = updates[i].version;
            if (version == 0) revert LedgerAnchorZeroTermsVersion(invoiceKey);
            uint32 current = _termsVersions[invoiceKey];
            if (version < current) revert LedgerAnchorTermsVersionDecreased(invoiceKey, current, version);
            _termsVersions[invoiceKey] = version;
            emit TermsVersionSet(invoiceKey, version);
        }
    }
}
