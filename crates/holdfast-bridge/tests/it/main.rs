//! THORChain's real router (version 5.0, `contracts/src/THORChain_Router.sol`) on anvil: a
//! deposit with a swap memo to Bitcoin is decoded from the receipt's logs into the vault,
//! the amount the router forwarded and the memo's destination; THORChain's payout on the
//! EVM side (`transferOut` with `OUT:<inbound>`) names the deposit's transaction. Across
//! chains (`cross_chain`): a deposit on anvil and its `OUT:` payout on a litecoind regtest
//! node, linked by `find_payouts` from the blocks as the UTXO ingestion reads them.

mod cross_chain;

use alloy::sol_types::SolCall;
use alloy_primitives::{Address, B256, Bytes, Log, U256};
use holdfast_bridge::thorchain::{Memo, RouterEvent};
use holdfast_testkit::{Anvil, deploy, dev_account};
use serde_json::Value;

alloy::sol! {
    #[derive(Debug)]
    function depositWithExpiry(address vault, address asset, uint amount, string memo, uint expiration);
    function transferOut(address to, address asset, uint amount, string memo);
}

/// The receipt's logs as alloy logs.
pub(crate) fn logs(receipt: &Value) -> Vec<Log> {
    receipt["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .map(|l| {
            let address: Address = serde_json::from_value(l["address"].clone()).expect("address");
            let topics: Vec<B256> = serde_json::from_value(l["topics"].clone()).expect("topics");
            let data: Bytes = serde_json::from_value(l["data"].clone()).expect("data");
            Log::new(address, topics, data).expect("at most 4 topics")
        })
        .collect()
}

pub(crate) fn router_events(receipt: &Value) -> Vec<RouterEvent> {
    logs(receipt)
        .iter()
        .filter_map(RouterEvent::decode)
        .map(|e| e.expect("decodes"))
        .collect()
}

#[tokio::test]
async fn a_swap_to_bitcoin_through_the_real_router_and_its_payout_are_decoded() {
    let node = Anvil::spawn().await.expect("anvil");
    let (thief, vault, payee) = (dev_account(1), dev_account(5), dev_account(6));
    let router = deploy::holdfast(&node, dev_account(0), "THORChain_Router")
        .await
        .expect("deploy the router");
    let memo = "=:b:bc1q3a2le4lazts64u8mqte5vuxvug25z5w6rhs95g:5855757/1/0:t:30";
    let amount = U256::from(12_345_000_000_000_000_000u128);
    let vault_before = node.balance(vault).await.expect("balance");
    let call = depositWithExpiryCall {
        vault,
        asset: Address::ZERO,
        amount: U256::ZERO,
        memo: memo.into(),
        expiration: U256::from(u64::MAX),
    };
    let (deposit_tx, receipt) = node
        .send(thief, Some(router), amount, call.abi_encode().into(), None)
        .await
        .expect("deposit");
    assert_eq!(
        node.balance(vault).await.expect("balance") - vault_before,
        amount,
        "the router forwarded the ETH to the vault"
    );
    let events = router_events(&receipt);
    let [RouterEvent::Deposit(d)] = events.as_slice() else {
        panic!("one Deposit: {events:?}")
    };
    assert_eq!(
        (d.router, d.vault, d.asset, d.amount),
        (router, vault, None, amount)
    );
    assert_eq!(d.memo, memo);
    let parsed = events[0].memo().expect("memo");
    let (asset, to) = parsed.exit().expect("a swap out of THORChain");
    assert_eq!(asset.to_string(), "BTC.BTC");
    assert_eq!(to, "bc1q3a2le4lazts64u8mqte5vuxvug25z5w6rhs95g");

    // THORChain's vault pays a (refund-like) ETH outbound through the router, naming the
    // inbound as THORChain writes ids: upper-case hex without 0x.
    let out_memo = format!("OUT:{}", alloy_primitives::hex::encode_upper(deposit_tx));
    let call = transferOutCall {
        to: payee,
        asset: Address::ZERO,
        amount: U256::ZERO,
        memo: out_memo.clone(),
    };
    let paid = U256::from(1_000_000_000_000_000u64);
    let (_, receipt) = node
        .send(vault, Some(router), paid, call.abi_encode().into(), None)
        .await
        .expect("transferOut");
    let events = router_events(&receipt);
    let [RouterEvent::TransferOut(t)] = events.as_slice() else {
        panic!("one TransferOut: {events:?}")
    };
    assert_eq!((t.vault, t.to, t.amount), (vault, payee, paid));
    let Memo::Outbound { inbound } = events[0].memo().expect("memo") else {
        panic!("an outbound memo")
    };
    assert_eq!(
        inbound.hash(),
        Some(deposit_tx),
        "the payout names the deposit"
    );

    // An expired deposit reverts in the router: no transaction, no event to follow.
    let expired = depositWithExpiryCall {
        vault,
        asset: Address::ZERO,
        amount: U256::ZERO,
        memo: memo.into(),
        expiration: U256::from(1u64),
    };
    assert!(
        node.send(
            thief,
            Some(router),
            amount,
            expired.abi_encode().into(),
            None
        )
        .await
        .is_err(),
        "an expired deposit is refused by the router"
    );
}
