// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title ReentrantToken (tests only): calls back into a target during transferFrom
/// @notice Armed with a target and calldata (e.g. InvoiceSettlement.pay of another invoice), every
/// transferFrom first makes that call and bubbles up its revert, so a reentrancy guard that works
/// makes the whole payment revert with ReentrancyGuardReentrantCall.
contract ReentrantToken is ERC20 {
    address private _target;
    bytes private _callData;

    constructor() ERC20("Reentrant", "REN") {}

    /// @notice Anyone may mint: this token exists only in tests.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Sets the call to make from inside transferFrom; an empty callData disarms it.
    function arm(address target, bytes calldata callData) external {
        _target = target;
        _callData = callData;
    }

    /// @notice Makes the armed call, then transfers as usual.
    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        if (_callData.length != 0) {
            (bool ok, bytes memory returned) = _target.call(_callData);
            if (!ok) {
                assembly ("memory-safe") {
                    revert(add(returned, 0x20), mload(returned))
                }
            }
        }
        return super.transferFrom(from, to, value);
    }
}
