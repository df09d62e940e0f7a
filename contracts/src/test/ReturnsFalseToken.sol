// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title ReturnsFalseToken (tests only): transferFrom returns false and moves nothing
/// @notice Stands for the old tokens that signal failure by a false return instead of a revert;
/// SafeERC20 must turn that into a revert.
contract ReturnsFalseToken is ERC20 {
    constructor() ERC20("Returns False", "RF") {}

    /// @notice Anyone may mint: this token exists only in tests.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Moves nothing and reports failure.
    function transferFrom(address, address, uint256) public pure override returns (bool) {
        return false;
    }
}
