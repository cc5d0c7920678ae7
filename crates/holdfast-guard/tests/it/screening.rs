//! Transfers to sanctioned or DPRK-attributed addresses are denied, directly and nested
//! in a MultiSend, even when someone put the address on the policy's allowlist.

use std::sync::Arc;

use alloy::primitives::{Address, Bytes, U256, address};
use alloy::sol_types::SolCall;
use holdfast_guard::abi::erc20;
use holdfast_guard::decode::pack_multisend;
use holdfast_guard::policy::Decision;
use holdfast_guard::safe::Operation;
use holdfast_primitives::RiskLevel;
use holdfast_testkit::safe::{self, SafeTx};
use holdfast_testkit::{Anvil, deploy, dev_account};
use serde_json::json;

use crate::support::{self, R, call, check, eth, sts_json};

/// OFAC SDN: LAZARUS GROUP (the Ronin bridge exploiter).
const OFAC_LAZARUS: Address = address!("0x098B716B8Aaf21512996dC57EB0615e2383E2f96");
/// FBI, 2023-09-06: Stake.com theft, Lazarus Group.
const FBI_STAKE: Address = address!("0x3130662aece32f05753d00a7b95c0444150bcd3c");

#[tokio::test(flavor = "multi_thread")]
async fn transfers_to_sanctioned_and_dprk_addresses_are_denied_also_inside_a_multisend() -> R {
    let node = Anvil::spawn().await?;
    let owner = dev_account(0);
    let infra = deploy::safe_141(&node, owner).await?;
    let safe = infra.create_safe(&node, owner, &[owner], 1).await?;
    node.call_ok(owner, safe, eth(100), Bytes::new()).await?;
    let token = deploy::erc20(&node, owner, "Dollar", "USD").await?;
    alloy::sol! { function mint(address to, uint256 amount) external; }
    node.call_ok(
        owner,
        token,
        U256::ZERO,
        mintCall {
            to: safe,
            amount: eth(1000),
        }
        .abi_encode()
        .into(),
    )
    .await?;
    let chain_id = node.chain_id().await?;
    let nonce = safe::nonce(&node, safe).await?;
    let friend = dev_account(5);
    // The bad addresses are on the allowlist: screening must still win.
    let guard = support::guard(&support::anvil_policy(
        safe,
        &[friend, OFAC_LAZARUS, FBI_STAKE],
        &[owner],
        infra.multisend,
    ));
    let sim = Arc::new(support::simulator(&node).await?);
    let transfer = |to, amount| -> Bytes { erc20::transferCall { to, amount }.abi_encode().into() };
    for bad in [OFAC_LAZARUS, FBI_STAKE] {
        let direct_eth = call(bad, eth(1), Bytes::new());
        let direct_token = call(token, U256::ZERO, transfer(bad, eth(5)));
        let nested = SafeTx::delegatecall(
            infra.multisend,
            pack_multisend(&[
                (Operation::Call, token, U256::ZERO, transfer(friend, eth(1))),
                (Operation::Call, friend, eth(1), Bytes::new()),
                (Operation::Call, token, U256::ZERO, transfer(bad, eth(5))),
            ]),
        );
        for (what, tx) in [
            ("ETH", direct_eth),
            ("ERC-20", direct_token),
            ("ERC-20 in a MultiSend", nested),
        ] {
            for sim in [None, Some(sim.clone())] {
                let simulated = sim.is_some();
                let r = check(
                    &guard,
                    &support::env(&sts_json(safe, chain_id, &tx, nonce)),
                    sim,
                    vec![],
                )
                .await?;
                assert_eq!(
                    r.evaluation.decision,
                    Decision::Deny,
                    "{what} to {bad} (simulated: {simulated}): {:?}",
                    r.evaluation
                );
                assert_eq!(r.evaluation.rule.as_deref(), Some("screening"), "{what}");
                let c = r
                    .counterparties
                    .iter()
                    .find(|c| c.address == bad)
                    .expect("screened");
                assert_eq!(c.risk, RiskLevel::Severe, "{what}: {:?}", c.reasons);
                assert!(c.roles.contains(&"destination"), "{:?}", c.roles);
                assert!(
                    r.evaluation
                        .reasons
                        .iter()
                        .any(|x| x.contains(&bad.to_string()))
                );
            }
        }
    }
    // The same batch without the bad entry is allowed.
    let clean = SafeTx::delegatecall(
        infra.multisend,
        pack_multisend(&[(Operation::Call, token, U256::ZERO, transfer(friend, eth(1)))]),
    );
    let r = check(
        &guard,
        &support::env(&sts_json(safe, chain_id, &clean, nonce)),
        Some(sim),
        vec![],
    )
    .await?;
    assert_eq!(r.evaluation.decision, Decision::Allow, "{:?}", r.evaluation);

    // An EOA hot wallet's withdrawal request and a raw transaction to the same addresses.
    let hot = support::guard(&support::policy_file("exchange-hot-wallet.toml"));
    let w = json!({"wallet": "hot", "asset": "USDT", "amount": "10", "destination": FBI_STAKE, "chainId": 1});
    let r = check(&hot, &support::env(&w), None, vec![]).await?;
    assert_eq!(r.evaluation.decision, Decision::Deny);
    Ok(())
}
