// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// Test contract for Holdfast's chain tests: every call to it reverts, with or without
/// value, so a transaction to it fails and a call to it inside another transaction is a
/// reverted frame.
contract Reverter {
    fallback() external payable {
        revert("Reverter: always reverts");
    }
}
