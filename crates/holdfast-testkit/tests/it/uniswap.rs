//! [`Scenario::uniswap_router`] on a real node: pairs found by the router, reserves moved by
//! the swaps, the trader paid what the record says, the slippage failure mined and failed.

use alloy_primitives::{Address, U256};
use holdfast_primitives::{Asset, ConversionKind};
use holdfast_testkit::{Anvil, Scenario};

use crate::{eth, reserves, token_balance};

/// (reserve of `token`, reserve of the other) of `pair`.
async fn reserves_of(node: &Anvil, pair: Address, token: Address, other: Address) -> (U256, U256) {
    let (r0, r1) = reserves(node, pair).await;
    if token < other { (r0, r1) } else { (r1, r0) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_liquidity_and_swaps() {
    let node = Anvil::spawn().await.unwrap();
    let u = Scenario::new(&node).uniswap_router().await.unwrap();
    let weth = u.uniswap.weth;
    let x = &u.record;
    assert_eq!(u.swaps.len(), 3);
    for tx in &u.swaps {
        assert!(node.tx_succeeded(*tx).await.unwrap());
    }
    assert_eq!(x.failed.len(), 1);
    assert!(!node.tx_succeeded(x.failed[0]).await.unwrap());
    assert!(x.transfers.iter().all(|t| t.0 != x.failed[0]));

    // What the trader received, per the record.
    let received = |asset: Asset| -> U256 {
        x.transfers
            .iter()
            .filter(|t| t.2 == u.trader && t.3 == asset && t.1 != Address::ZERO)
            .map(|t| t.4)
            .sum()
    };
    let out_a = received(Asset::Erc20 { token: u.token_a });
    let out_b = received(Asset::Erc20 { token: u.token_b });
    let out_eth = received(Asset::Native);
    assert!(out_a > U256::ZERO && out_b > U256::ZERO && out_eth > U256::ZERO);
    // Minted 10000 each; paid 100 A and 50 B.
    assert_eq!(
        token_balance(&node, u.token_a, u.trader).await,
        eth(10_000_000) + out_a - eth(100_000)
    );
    assert_eq!(
        token_balance(&node, u.token_b, u.trader).await,
        eth(10_000_000) + out_b - eth(50_000)
    );

    // Reserves moved as the swaps say, and equal the pairs' balances.
    let hop_a = x
        .transfers
        .iter()
        .find(|t| t.1 == u.pair_ab && t.2 == u.pair_weth_a)
        .expect("two-hop middle leg")
        .4;
    let (ab_a, ab_b) = reserves_of(&node, u.pair_ab, u.token_a, u.token_b).await;
    assert_eq!(ab_a, eth(4_000_000) + eth(100_000) - hop_a);
    assert_eq!(ab_b, eth(1_000_000) - out_b + eth(50_000));
    let (wa_w, wa_a) = reserves_of(&node, u.pair_weth_a, weth, u.token_a).await;
    assert_eq!(wa_w, eth(100_000) + eth(1000) - out_eth);
    assert_eq!(wa_a, eth(10_000_000) - out_a + hop_a);
    assert_eq!(token_balance(&node, u.token_a, u.pair_ab).await, ab_a);
    assert_eq!(token_balance(&node, weth, u.pair_weth_a).await, wa_w);

    // LP tokens: sqrt(k) - 1000 to the provider, 1000 locked at the zero address.
    assert_eq!(
        token_balance(&node, u.pair_ab, u.provider).await,
        eth(2_000_000) - U256::from(1000)
    );
    assert_eq!(
        token_balance(&node, u.pair_weth_a, Address::ZERO).await,
        U256::from(1000)
    );

    // Conversions: 2 wraps, 4 pair swaps, 1 unwrap, all by the router.
    let count = |k: ConversionKind| x.conversions.iter().filter(|c| c.1 == k).count();
    assert_eq!(count(ConversionKind::Wrap), 2);
    assert_eq!(count(ConversionKind::UniswapV2Swap), 4);
    assert_eq!(count(ConversionKind::Unwrap), 1);
    assert!(x.conversions.iter().all(|c| c.3 == u.uniswap.router));
}
