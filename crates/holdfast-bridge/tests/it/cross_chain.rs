//! One swap followed across chains on real nodes: the thief deposits ETH into THORChain's
//! router on anvil with a memo swapping to Litecoin (THORChain's `LTC.LTC`, short code `l`;
//! Litecoin Core is the Bitcoin-family node packaged here) at an `rltc1…` address; THORChain's
//! vault pays that address on litecoind in a transaction whose OP_RETURN is
//! `OUT:<deposit hash>`. Beside it, payments that must not be taken for the payout: the same
//! address paid without a memo, and another inbound's payout to it. `find_payouts`, given the
//! transactions paying the address as the regtest blocks decode (holdfast-bitcoin's
//! `RpcSource`, what ingestion reads), picks THORChain's payout and the amount that arrived.

use std::time::Duration;

use alloy::sol_types::SolCall;
use alloy_primitives::{Address, B256, U256};
use holdfast_bitcoin::{RpcAuth, RpcConfig, RpcSource, ScriptKind};
use holdfast_bridge::thorchain::{Candidate, CandidateOutput, Memo, RouterEvent, find_payouts};
use holdfast_testkit::{Anvil, Litecoind, deploy, dev_account};

use crate::{depositWithExpiryCall, router_events};

/// Pays `to` `amount` LTC from wallet `w`, with `memo` in an OP_RETURN if given; the txid.
async fn pay(node: &Litecoind, to: &str, amount: &str, memo: Option<&str>) -> String {
    match memo {
        Some(m) => {
            node.send_with_data("w", to, amount, m.as_bytes())
                .await
                .expect("pay")
                .0
        }
        None => node.send("w", to, amount).await.expect("pay"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deposit_on_ethereum_is_linked_to_its_payout_on_a_utxo_chain() {
    // Bitcoin-family side first: the destination address the memo will name.
    let ltc = Litecoind::spawn().await.expect("litecoind");
    ltc.create_wallet("w").await.expect("wallet");
    let miner = ltc.new_address("w", "bech32").await.expect("address");
    let dest = ltc.new_address("w", "bech32").await.expect("address");
    ltc.mine(101, &miner).await.expect("mine");

    // Ethereum side: the deposit through THORChain's real router.
    let eth = Anvil::spawn().await.expect("anvil");
    let router = deploy::holdfast(&eth, dev_account(0), "THORChain_Router")
        .await
        .expect("router");
    let memo = format!("=:l:{dest}:1e6/1/0");
    let call = depositWithExpiryCall {
        vault: dev_account(5),
        asset: Address::ZERO,
        amount: U256::ZERO,
        memo: memo.clone(),
        expiration: U256::from(u64::MAX),
    };
    let (deposit, receipt) = eth
        .send(
            dev_account(1),
            Some(router),
            U256::from(10u64).pow(U256::from(18u64)),
            call.abi_encode().into(),
            None,
        )
        .await
        .expect("deposit");
    let events = router_events(&receipt);
    let [RouterEvent::Deposit(d)] = events.as_slice() else {
        panic!("one Deposit: {events:?}")
    };
    let parsed = Memo::parse(&d.memo).expect("memo");
    let (asset, to) = parsed.exit().expect("leaves THORChain");
    assert_eq!((asset.to_string().as_str(), to), ("LTC.LTC", dest.as_str()));

    // THORChain's payout, between a plain payment and another inbound's payout.
    let other = B256::repeat_byte(0x42);
    pay(&ltc, &dest, "0.5", None).await;
    let payout = pay(
        &ltc,
        &dest,
        "1.23456789",
        Some(&format!(
            "OUT:{}",
            alloy_primitives::hex::encode_upper(deposit)
        )),
    )
    .await;
    pay(
        &ltc,
        &dest,
        "2",
        Some(&format!(
            "OUT:{}",
            alloy_primitives::hex::encode_upper(other)
        )),
    )
    .await;
    ltc.mine(1, &miner).await.expect("mine");

    // The block as ingestion reads it; the transactions paying the memo's address.
    let auth = match ltc.user_password() {
        Some((user, password)) => RpcAuth::UserPass {
            user: user.into(),
            password: password.into(),
        },
        None => RpcAuth::Cookie(ltc.cookie_path()),
    };
    let mut config = RpcConfig::new(ltc.rpc_url(), auth);
    config.timeout = Duration::from_secs(20);
    let source = RpcSource::connect(config).await.expect("connect");
    let block = source
        .block_at(ltc.height().await.expect("height"))
        .await
        .expect("block");
    let candidates = block
        .txs
        .iter()
        .filter(|tx| {
            tx.outputs
                .iter()
                .any(|o| o.address.as_deref() == Some(&dest))
        })
        .map(|tx| Candidate {
            id: tx.txid.to_string(),
            outputs: tx
                .outputs
                .iter()
                .map(|o| CandidateOutput {
                    address: o.address.as_deref(),
                    value: o.value,
                    op_return: match &o.kind {
                        ScriptKind::OpReturn { data } => Some(data.as_slice()),
                        _ => None,
                    },
                })
                .collect(),
        });
    let found = find_payouts(deposit, &dest, candidates);
    let [found] = found.as_slice() else {
        panic!("one payout: {found:?}")
    };
    assert_eq!(
        found.id, payout,
        "THORChain's payout, not another payment to the address"
    );
    assert_eq!(found.amount, 123_456_789, "what arrived, in litoshis");
    assert!(!found.refund);
}
