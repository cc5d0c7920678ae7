// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// Test contract for Holdfast's chain tests: moves ETH in internal calls, nested, and makes
/// internal calls that revert inside transactions that succeed.
contract Forwarder {
    /// Forwards the whole value to `to` in an internal call.
    function forward(address payable to) external payable {
        (bool ok, ) = to.call{value: msg.value}("");
        require(ok, "forward failed");
    }

    /// Sends the value on to `to` in a sub-call that then reverts; this call succeeds and the
    /// ETH stays here. Neither the sub-call's value nor its transfer to `to` took effect.
    function forwardAndSwallowRevert(address payable to) external payable {
        try this.sendThenRevert{value: msg.value}(to) {} catch {}
    }

    function sendThenRevert(address payable to) external payable {
        to.transfer(msg.value);
        revert("reverted on purpose");
    }

    /// Pays half to `a` directly and the rest to `b` through `via` (a nested internal transfer).
    function split(address payable a, Forwarder via, address payable b) external payable {
        uint256 half = msg.value / 2;
        a.transfer(half);
        via.forward{value: msg.value - half}(b);
    }

    /// Always reverts: a transaction calling it fails.
    function fail() external payable {
        revert("always fails");
    }
}
