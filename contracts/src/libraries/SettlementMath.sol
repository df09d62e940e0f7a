// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Terms} from "../Terms.sol";

/// @title What an invoice asks to be paid at a given time (docs/formats.md, "Terms math")
/// @notice Integers only; the only rounding is the floor of the two divisions below: the discount
/// is rounded down (payee's favour) and the late fee is rounded down (payer's favour). Late fees are
/// simple, charged per started period after the due date, capped at lateFeePeriodsMax periods.
/// `ledger.terms.amount_due_at` in Python computes the same integers; tests compare them.
/// @dev With amountDue < 2**200 (the documented range) every product fits in 256 bits; above it
/// checked arithmetic reverts rather than wrapping.
library SettlementMath {
    /// @notice Basis points in one whole.
    uint256 internal constant BPS_DENOMINATOR = 10_000;

    /// @notice The discount exceeds 100 %.
    error SettlementMathDiscountTooLarge(uint16 discountBps);
    /// @notice A late fee is charged per period but the period is zero seconds.
    error SettlementMathZeroLateFeePeriod();

    /// @notice The amount due at unix time `t`, before deducting anything already paid.
    function amountDueAt(Terms memory terms, uint256 t) internal pure returns (uint256) {
        uint256 base = terms.amountDue;
        if (terms.discountBps > 0 && t <= terms.discountDeadline) {
            if (terms.discountBps > BPS_DENOMINATOR) revert SettlementMathDiscountTooLarge(terms.discountBps);
            return base - (base * terms.discountBps) / BPS_DENOMINATOR;
        }
        if (terms.lateFeeBps > 0 && t > terms.dueDate) {
            if (terms.lateFeePeriod == 0) revert SettlementMathZeroLateFeePeriod();
            uint256 elapsed = t - terms.dueDate;
            // Ceiling division: a started period counts in full. elapsed > 0, so no underflow.
            uint256 periods = (elapsed - 1) / terms.lateFeePeriod + 1;
            if (periods > terms.lateFeePeriodsMax) periods = terms.lateFeePeriodsMax;
            return base + (base * terms.lateFeeBps * periods) / BPS_DENOMINATOR;
        }
        return base;
    }

    /// @notice What is left to pay at time `t` after `paid` was paid: zero once paid covers it.
    function remainingAt(Terms memory terms, uint256 t, uint256 paid) internal pure returns (uint256) {
        uint256 due = amountDueAt(terms, t);
        // The subtraction runs only when due > paid, so it cannot underflow.
        unchecked {
            return due > paid ? due - paid : 0;
        }
    }
}
