// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title TestStablecoin: a 6-decimal dollar token for local chains and tests
/// @notice Worthless by construction: only its owner (the deployer of a local or test chain) mints.
/// Never deploy it where real value moves.
contract TestStablecoin is ERC20, Ownable {
    /// @param initialOwner The only address that may mint.
    constructor(address initialOwner) ERC20("Tally Test Dollar", "tUSD") Ownable(initialOwner) {}

    /// @notice Six decimals, like the common dollar stablecoins.
    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /// @notice Creates `amount` tokens for `to`. Only the owner.
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}
