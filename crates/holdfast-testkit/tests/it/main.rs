//! The harness itself: the committed artifacts (no node), the anvil process, and every
//! scenario's effects on a real anvil.

mod artifacts;
mod node;
mod safe;
mod scenario;
mod uniswap;

use alloy::sol_types::SolCall;
use alloy_primitives::{Address, U256};
use holdfast_testkit::Anvil;

alloy::sol! {
    function balanceOf(address who) external view returns (uint256);
    function getReserves() external view returns (uint112 reserve0, uint112 reserve1, uint32 blockTimestampLast);
}

/// `milli` thousandths of an ether (or of an 18-decimal token), in wei.
fn eth(milli: u64) -> U256 {
    U256::from(milli) * U256::from(10u64).pow(U256::from(15))
}

async fn token_balance(node: &Anvil, token: Address, who: Address) -> U256 {
    let out = node
        .call(token, balanceOfCall { who }.abi_encode().into())
        .await
        .expect("balanceOf");
    balanceOfCall::abi_decode_returns(&out).expect("balanceOf returns a uint256")
}

/// (reserve0, reserve1) of a Uniswap V2 pair.
async fn reserves(node: &Anvil, pair: Address) -> (U256, U256) {
    let out = node
        .call(pair, getReservesCall {}.abi_encode().into())
        .await
        .expect("getReserves");
    let r = getReservesCall::abi_decode_returns(&out).expect("getReserves returns");
    (U256::from(r.reserve0), U256::from(r.reserve1))
}
