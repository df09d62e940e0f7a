// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title Settlement terms of one invoice version (docs/formats.md, "Settlement terms").
/// @notice Field order and types are normative: the ABI encoding of this struct (12 static words)
/// is appended to the leaf input of every entry kind that carries terms, so any change here is a
/// format version bump in ledger/ and docs/formats.md at the same time.
struct Terms {
    /// @dev Receives the tokens.
    address payee;
    /// @dev ERC-20 token; address(0) means the chain's native coin.
    address token;
    /// @dev Face amount to be paid on-chain in total under this version, in token units.
    uint256 amountDue;
    /// @dev Unix seconds.
    uint64 dueDate;
    /// @dev Early-payment discount in basis points, 0 = none (<= 10000).
    uint16 discountBps;
    /// @dev The discount applies while block.timestamp <= discountDeadline.
    uint64 discountDeadline;
    /// @dev Late fee in basis points per started period, 0 = none.
    uint16 lateFeeBps;
    /// @dev Seconds per late-fee period (> 0 when lateFeeBps > 0).
    uint32 lateFeePeriod;
    /// @dev Cap on the number of late-fee periods charged.
    uint16 lateFeePeriodsMax;
    /// @dev Whether a payment may be less than what is due now.
    bool partialAllowed;
    /// @dev Only this address may pay; address(0) = anyone.
    address payer;
    /// @dev Terms version: 1 for the issued invoice, +1 per new version.
    uint32 version;
}
