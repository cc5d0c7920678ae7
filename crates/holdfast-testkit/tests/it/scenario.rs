//! [`Scenario::run`] on a real node: what it records is what happened.

use alloy_primitives::U256;
use holdfast_primitives::Asset;
use holdfast_testkit::{Anvil, Scenario, dev_account};

use crate::{eth, reserves, token_balance};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_effects_on_chain() {
    let node = Anvil::spawn().await.expect("anvil");
    let before = node.balance(dev_account(2)).await.expect("balance");
    let x = Scenario::new(&node).run().await.expect("scenario");
    // c received 0.3 (forward) + 0.5 (nested split) ETH; the swallowed 0.2 did not arrive.
    assert_eq!(
        node.balance(dev_account(2)).await.expect("balance") - before,
        eth(800)
    );
    assert_eq!(x.failed.len(), 1);
    assert!(!node.tx_succeeded(x.failed[0]).await.unwrap(), "status 0");
    assert!(x.transfers.iter().all(|t| t.0 != x.failed[0]));
    // Every recorded transaction but the failed one succeeded.
    for t in &x.transfers {
        assert!(node.tx_succeeded(t.0).await.unwrap(), "{t:?}");
    }
    assert_eq!(x.reverted_frames.len(), 2);
    assert!(x.last_block > 20);
    assert_eq!(node.block_number().await.unwrap(), x.last_block);
    // WETH: a wrapped 5 + 2, unwrapped 1 (as b), 1.1 went to the pair, 2 to b.
    let weth_supply = node.balance(x.weth).await.unwrap();
    assert_eq!(weth_supply, eth(6000));
    assert_eq!(
        token_balance(&node, x.weth, dev_account(1)).await,
        eth(1000)
    );
    // The pair: 1 WETH + 100000 tokens of liquidity, then 0.1 WETH in, tokens out to b.
    let (r0, r1) = reserves(&node, x.pair).await;
    let (r_weth, r_token) = if x.weth < x.token { (r0, r1) } else { (r1, r0) };
    assert_eq!(r_weth, eth(1100));
    let out = x
        .transfers
        .iter()
        .find(|t| t.1 == x.pair && t.3 == Asset::Erc20 { token: x.token })
        .expect("swap output")
        .4;
    assert_eq!(r_token, eth(100_000) - out);
    assert_eq!(token_balance(&node, x.token, dev_account(1)).await, out);
    assert!(out > U256::ZERO);
}
