// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title The anchor of Tally's append-only ledger log (interface names fixed by DESIGN.md)
/// @notice Outside verifiers are written against this interface: a receipt is checked by
/// recomputing its root from the inclusion proof and comparing it with `rootAt(treeSize)`.
interface ILedgerAnchor {
    /// @notice Sets the current terms version of one invoice key, applied with an anchored head.
    /// @param invoiceKey The invoice key (docs/formats.md, "Invoice key").
    /// @param version The new current terms version; `type(uint32).max` cancels the invoice.
    struct TermsUpdate {
        bytes32 invoiceKey;
        uint32 version;
    }

    /// @notice A new tree head was anchored; `previousSize` is 0 for the first head.
    event HeadAnchored(uint64 indexed treeSize, bytes32 root, uint64 previousSize);

    /// @notice The current terms version of `invoiceKey` became `version`.
    event TermsVersionSet(bytes32 indexed invoiceKey, uint32 version);

    /// @notice Anchors a new tree head that extends the latest one, and applies terms updates.
    /// @param newSize Number of leaves of the new head; must exceed the latest anchored size.
    /// @param newRoot RFC 9162 root of the new head; never zero.
    /// @param consistencyProof RFC 9162 consistency proof from `latest()` to the new head; empty
    /// for the first head.
    /// @param updates Terms versions that become current with this head (versions never go down).
    function anchor(
        uint64 newSize,
        bytes32 newRoot,
        bytes32[] calldata consistencyProof,
        TermsUpdate[] calldata updates
    ) external;

    /// @notice The root anchored for `treeSize` leaves, or zero when that size was never anchored.
    function rootAt(uint64 treeSize) external view returns (bytes32);

    /// @notice The latest anchored head; (0, 0) before the first anchor.
    function latest() external view returns (uint64 size, bytes32 root);

    /// @notice Whether `proof` shows `leafHash` at `leafIndex` in the anchored tree of `treeSize`
    /// leaves. False when that size was never anchored or the proof does not lead to its root.
    function verifyInclusion(uint64 treeSize, uint64 leafIndex, bytes32 leafHash, bytes32[] calldata proof)
        external
        view
        returns (bool);

    /// @notice The current terms version of `invoiceKey`: 0 when never set (any anchored version is
    /// current), `type(uint32).max` when the invoice is cancelled.
    function termsVersion(bytes32 invoiceKey) external view returns (uint32);

    /// @notice `rootAt(treeSize)` and `termsVersion(invoiceKey)` in one call (for settlement).
    function rootAndTermsVersion(uint64 treeSize, bytes32 invoiceKey)
        external
        view
        returns (bytes32 root, uint32 version);
}
