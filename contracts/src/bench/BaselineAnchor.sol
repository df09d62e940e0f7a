// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title BaselineAnchor (benchmark only): the least an anchor can do
/// @notice Stores a root under its tree size and emits an event, with no access control and no
/// consistency check. scripts/bench_gas.py measures LedgerAnchor against it. Never deploy it for use.
contract BaselineAnchor {
    mapping(uint64 treeSize => bytes32 root) private _roots;

    /// @notice A root was stored.
    event HeadAnchored(uint64 indexed treeSize, bytes32 root);

    /// @notice Stores `root` for `treeSize`.
    function anchor(uint64 treeSize, bytes32 root) external {
        _roots[treeSize] = root;
        emit HeadAnchored(treeSize, root);
    }

    /// @notice The root stored for `treeSize`.
    function rootAt(uint64 treeSize) external view returns (bytes32) {
        return _roots[treeSize];
    }
}
