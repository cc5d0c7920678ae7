//! Safe gas refunds (issue 13, item 1). `execTransaction` with `gasPrice > 0` pays
//! `(gasUsed + baseGas) × min(gasPrice, tx.gasprice)` out of the Safe to `refundReceiver`:
//! on real Safes 1.4.1 and 1.1.1 on anvil, a transaction that "pays 1 ETH to an exchange"
//! moves 900 ETH to the refund receiver when executed at a high gas price. Holdfast counts
//! the refund as a movement of at most its bound, screens the receiver, simulates at the
//! refund's gas price, and the policies deny it.

use std::sync::Arc;

use alloy::primitives::{Address, Bytes, U256, address};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use holdfast_guard::facts::Source;
use holdfast_guard::policy::Decision;
use holdfast_guard::safe::{Operation, SafeTx, SafeVersion};
use holdfast_guard::simulate::Outcome;
use holdfast_primitives::Asset;
use holdfast_testkit::{Anvil, deploy, dev_account, dev_signer, safe};
use serde_json::json;

use crate::support::{self, R, check, eth};

const EXCHANGE: Address = address!("0xF977814e90dA44bFA03b6295A0616a897441aceC");
const LAZARUS: Address = address!("0x098B716B8Aaf21512996dC57EB0615e2383E2f96");

struct Vault {
    node: Anvil,
    safe: Address,
    owners: Vec<PrivateKeySigner>,
    chain_id: u64,
    version: SafeVersion,
}

/// A 2-of-2 Safe holding 1,000 ETH.
async fn vault(version: safe::SafeVersion) -> R<Vault> {
    let node = Anvil::spawn().await?;
    let owners = vec![dev_signer(0)?, dev_signer(1)?];
    let infra = match version {
        safe::SafeVersion::V1_1_1 => deploy::safe_111(&node, owners[0].address()).await?,
        _ => deploy::safe_141(&node, owners[0].address()).await?,
    };
    let addrs: Vec<Address> = owners.iter().map(|o| o.address()).collect();
    let safe = infra.create_safe(&node, addrs[0], &addrs, 2).await?;
    node.call_ok(addrs[0], safe, eth(1000), Bytes::new())
        .await?;
    let chain_id = node.chain_id().await?;
    Ok(Vault {
        node,
        safe,
        owners,
        chain_id,
        version: match version {
            safe::SafeVersion::V1_1_1 => SafeVersion::V1_1_1,
            _ => SafeVersion::V1_4_1,
        },
    })
}

/// 1 ETH to the exchange, with a refund of `base_gas` at `gas_price` to `receiver`.
fn refund_tx(base_gas: u64, gas_price: u64, receiver: Address, nonce: U256) -> SafeTx {
    SafeTx {
        to: EXCHANGE,
        value: eth(1),
        data: Bytes::new(),
        operation: Operation::Call,
        safe_tx_gas: U256::ZERO,
        base_gas: U256::from(base_gas),
        gas_price: U256::from(gas_price),
        gas_token: Address::ZERO,
        refund_receiver: receiver,
        nonce,
    }
}

fn sts(v: &Vault, tx: &SafeTx) -> serde_json::Value {
    json!({
        "safe": v.safe, "chainId": v.chain_id, "to": tx.to, "value": tx.value.to_string(),
        "data": tx.data, "operation": tx.operation.as_u8(), "safeTxGas": tx.safe_tx_gas.to_string(),
        "baseGas": tx.base_gas.to_string(), "gasPrice": tx.gas_price.to_string(),
        "gasToken": tx.gas_token, "refundReceiver": tx.refund_receiver,
        "nonce": tx.nonce.to_string(),
    })
}

/// Executes `tx` with both owners' signatures, sent by `executor` at `gas_price`.
async fn execute(v: &Vault, tx: &SafeTx, executor: Address, gas_price: u128) -> R<bool> {
    let hash = tx.safe_tx_hash(v.version, v.chain_id, v.safe);
    let sigs = safe::sign(hash, &v.owners)?;
    let call = tx.exec_call(sigs).abi_encode();
    let receipt =
        safe::send_at_gas_price(&v.node, executor, v.safe, call.into(), 500_000, gas_price).await?;
    Ok(receipt["status"] == "0x1")
}

/// The drain as the issue reports it: baseGas 1e9 at gasPrice 1,000 gwei to the refund
/// receiver, executed at 900 gwei. Before executing, Holdfast (default policy, simulating on
/// the same state) denies it: by screening when the receiver is the Lazarus Group, as a
/// refund when it is clean.
async fn drain_reproduced_then_refused(version: safe::SafeVersion) -> R {
    let v = vault(version).await?;
    let guard = support::default_guard();
    let sim = Arc::new(support::simulator(&v.node).await?);
    let nonce = safe::nonce(&v.node, v.safe).await?;
    let attacker = dev_account(9);

    let lazarus = refund_tx(1_000_000_000, 1_000_000_000_000, LAZARUS, nonce);
    let r = check(
        &guard,
        &support::env(&sts(&v, &lazarus)),
        Some(sim.clone()),
        vec![],
    )
    .await?;
    assert_eq!(r.evaluation.decision, Decision::Deny, "{:#?}", r.evaluation);
    assert_eq!(
        r.evaluation.rule.as_deref(),
        Some("screening: high-risk counterparty")
    );
    assert!(
        r.evaluation
            .reasons
            .iter()
            .any(|x| x.contains("gas refund receiver")),
        "{:?}",
        r.evaluation.reasons
    );

    let clean = refund_tx(1_000_000_000, 1_000_000_000_000, attacker, nonce);
    let r = check(
        &guard,
        &support::env(&sts(&v, &clean)),
        Some(sim.clone()),
        vec![],
    )
    .await?;
    assert_eq!(r.evaluation.decision, Decision::Deny, "{:#?}", r.evaluation);
    assert_eq!(r.evaluation.rule.as_deref(), Some("Safe gas refund"));
    let refund = r
        .movements
        .iter()
        .find(|m| m.gas_refund && m.source == Source::Decoded)
        .expect("the refund is a movement");
    assert_eq!((refund.to, refund.asset), (attacker, Asset::Native));
    assert!(refund.amount > eth(1000), "at most {}", refund.amount);
    // At gasPrice the Safe cannot pay: the simulation says so.
    let sim_out = &r.simulation.simulation().expect("simulated").outcome;
    assert!(
        matches!(sim_out, Outcome::Reverted { .. }),
        "{sim_out:?}: the refund at the signed gasPrice exceeds the Safe's balance"
    );

    // The reproduction: executed at 900 gwei, the refund moves about 900 ETH.
    let (safe_before, attacker_before) = (
        v.node.balance(v.safe).await?,
        v.node.balance(attacker).await?,
    );
    assert!(execute(&v, &clean, dev_account(3), 900_000_000_000).await?);
    let gained = v.node.balance(attacker).await? - attacker_before;
    let lost = safe_before - v.node.balance(v.safe).await?;
    assert!(gained >= eth(900), "the refund receiver got {gained}");
    assert_eq!(lost, gained + eth(1), "the Safe paid 1 ETH and the refund");
    assert!(
        gained <= refund.amount,
        "the bound holds: {gained} > {}",
        refund.amount
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_on_safe_1_4_1_is_reproduced_and_refused() -> R {
    drain_reproduced_then_refused(safe::SafeVersion::V1_4_1).await
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_on_safe_1_1_1_is_reproduced_and_refused() -> R {
    drain_reproduced_then_refused(safe::SafeVersion::V1_1_1).await
}

/// A refund the Safe can pay at its full gasPrice: the simulation runs at that price and
/// shows the payment; the real execution at that price pays no more than the bound; the
/// coinbase's fee is not mistaken for a movement.
#[tokio::test(flavor = "multi_thread")]
async fn the_simulation_pays_the_refund_at_its_gas_price_within_the_bound() -> R {
    let v = vault(safe::SafeVersion::V1_4_1).await?;
    let receiver = dev_account(8);
    let nonce = safe::nonce(&v.node, v.safe).await?;
    // safeTxGas 0 with gasPrice > 0: the refund is still paid (1.3.0 and later).
    let tx = refund_tx(500_000_000, 1_000_000_000_000, receiver, nonce);
    let sim = Arc::new(support::simulator(&v.node).await?);
    let r = check(
        &support::default_guard(),
        &support::env(&sts(&v, &tx)),
        Some(sim),
        vec![],
    )
    .await?;
    let s = r.simulation.simulation().expect("simulated");
    assert_eq!(s.outcome, Outcome::Success, "{:?}", s.outcome);
    let bound = r.refunds[0].max_amount.expect("bounded");
    let simulated = r
        .movements
        .iter()
        .find(|m| m.source == Source::Simulated && m.to == receiver)
        .expect("the simulation shows the refund")
        .amount;
    assert!(
        simulated >= eth(500) && simulated <= bound,
        "{simulated} vs {bound}"
    );
    let block = v
        .node
        .rpc("eth_getBlockByNumber", json!(["latest", false]))
        .await?;
    let coinbase: Address = serde_json::from_value(block["miner"].clone())?;
    assert!(
        s.deltas.iter().all(|d| d.holder != coinbase),
        "the fee is not a delta: {:?}",
        s.deltas
    );
    assert_eq!(r.refunds.len(), 1);

    let before = v.node.balance(receiver).await?;
    assert!(execute(&v, &tx, dev_account(3), 1_000_000_000_000).await?);
    let paid = v.node.balance(receiver).await? - before;
    assert!(
        paid >= eth(500) && paid <= bound,
        "paid {paid}, bound {bound}"
    );
    Ok(())
}

/// The refund in a gas token the Safe holds: a movement of that token, the token called,
/// the full gasPrice paid whatever the executor's price.
#[tokio::test(flavor = "multi_thread")]
async fn a_gas_token_refund_moves_the_token() -> R {
    let v = vault(safe::SafeVersion::V1_4_1).await?;
    let token = deploy::erc20(&v.node, v.owners[0].address(), "Dollar", "USD").await?;
    alloy::sol! { function mint(address to, uint256 amount) external; }
    v.node
        .call_ok(
            v.owners[0].address(),
            token,
            U256::ZERO,
            mintCall {
                to: v.safe,
                amount: eth(2_000_000),
            }
            .abi_encode()
            .into(),
        )
        .await?;
    let receiver = dev_account(8);
    let nonce = safe::nonce(&v.node, v.safe).await?;
    let mut tx = refund_tx(0, 1, receiver, nonce);
    tx.base_gas = eth(1_000_000);
    tx.gas_token = token;
    let sim = Arc::new(support::simulator(&v.node).await?);
    let r = check(
        &support::default_guard(),
        &support::env(&sts(&v, &tx)),
        Some(sim),
        vec![],
    )
    .await?;
    assert_eq!(r.evaluation.decision, Decision::Deny);
    assert_eq!(r.evaluation.rule.as_deref(), Some("Safe gas refund"));
    let asset = Asset::Erc20 { token };
    assert!(r.movements.iter().any(|m| m.gas_refund
        && m.asset == asset
        && m.to == receiver
        && m.amount > eth(1_000_000)));
    assert!(
        r.movements
            .iter()
            .any(|m| m.source == Source::Simulated && m.asset == asset && m.to == receiver),
        "{:?}",
        r.movements
    );
    assert!(
        r.counterparties
            .iter()
            .any(|c| c.address == token && c.roles.iter().any(|x| x.contains("gas token"))),
        "{:?}",
        r.counterparties
    );
    Ok(())
}

/// Without a node: the drain as published in `policies/requests/` is denied naming the
/// refund, the refund counts against amount limits even to an allowlisted receiver, and a
/// refund to whoever executes is to no listed destination.
#[test]
fn without_a_node_the_refund_is_a_movement_limits_and_lists_see() {
    let text = std::fs::read_to_string(
        holdfast_testkit::workspace_root().join("policies/requests/safe-gas-refund-drain.json"),
    )
    .expect("request");
    let env = holdfast_guard::request::parse(text.as_bytes()).expect("parses");
    let opts = holdfast_guard::CheckOptions {
        safe_version: Some(SafeVersion::V1_4_1),
        now: 1_780_000_000,
        ..Default::default()
    };
    let r = support::default_guard().check(&env, &opts).expect("checks");
    assert_eq!(r.evaluation.decision, Decision::Deny);
    assert!(
        r.evaluation
            .reasons
            .iter()
            .any(|x| x.contains(&LAZARUS.to_string()) && x.contains("gas refund receiver")),
        "{:?}",
        r.evaluation.reasons
    );

    let safe = address!("0x1Db92e2EeBC8E0c075a02BeA49a2935BcD2dFCF4");
    let policy = support::anvil_policy(
        safe,
        &[EXCHANGE, dev_account(9)],
        &[dev_account(1)],
        Address::repeat_byte(0x42),
    );
    let guard = support::guard(&policy);
    let mut json: serde_json::Value = serde_json::from_str(&text).expect("json");
    json["refundReceiver"] = json!(dev_account(9));
    let r = guard.check(&support::env(&json), &opts).expect("checks");
    assert!(
        matches!(r.evaluation.decision, Decision::RequireApprovals { .. }),
        "1 ETH plus a refund of up to 1,000 ETH is over the 50 ETH line: {:#?}",
        r.evaluation
    );
    assert_eq!(r.evaluation.rule.as_deref(), Some("over 50 ETH"));

    json["refundReceiver"] = json!(Address::ZERO);
    json["baseGas"] = json!(0);
    json["gasPrice"] = json!("1");
    let r = guard.check(&support::env(&json), &opts).expect("checks");
    assert_eq!(
        r.evaluation.decision,
        Decision::Deny,
        "a refund to the unknown executor is to no allowlisted destination: {:#?}",
        r.evaluation
    );
    assert!(r.movements.iter().any(|m| m.to_unknown()));

    // A gasPrice whose product with the gas has no 256-bit bound: unbounded, said so, and
    // counted as everything.
    json["gasPrice"] = json!(U256::MAX.to_string());
    json["refundReceiver"] = json!(dev_account(9));
    let r = support::default_guard()
        .check(&support::env(&json), &opts)
        .expect("checks");
    assert_eq!(r.evaluation.decision, Decision::Deny);
    assert_eq!(r.evaluation.rule.as_deref(), Some("Safe gas refund"));
    assert!(
        r.evaluation.reasons.iter().any(|x| x.contains("unbounded")),
        "{:?}",
        r.evaluation.reasons
    );
    assert!(
        r.movements
            .iter()
            .any(|m| m.gas_refund && m.amount == U256::MAX)
    );
}

/// An account executing a fully signed Safe transaction whose refund goes to `tx.origin`:
/// the executor is known (the request's sender), the transaction's gas limit caps the bound,
/// and the simulation, sent at the refund's price, shows the sender paid the refund and
/// nothing of its own fee.
#[tokio::test(flavor = "multi_thread")]
async fn an_executor_refunding_itself_is_known_and_capped_by_its_gas_limit() -> R {
    let v = vault(safe::SafeVersion::V1_4_1).await?;
    let executor = dev_account(3);
    let nonce = safe::nonce(&v.node, v.safe).await?;
    let tx = refund_tx(100_000_000, 1_000_000_000_000, Address::ZERO, nonce);
    let hash = tx.safe_tx_hash(v.version, v.chain_id, v.safe);
    let call = tx.exec_call(safe::sign(hash, &v.owners)?).abi_encode();
    let request = json!({
        "from": executor, "to": v.safe, "data": Bytes::from(call), "gas": 300_000,
        "chainId": v.chain_id,
    });
    let sim = Arc::new(support::simulator(&v.node).await?);
    let r = check(
        &support::default_guard(),
        &support::env(&request),
        Some(sim),
        vec![],
    )
    .await?;
    assert_eq!(r.wallet, v.safe, "the Safe's funds are at stake");
    assert_eq!(r.refunds.len(), 1, "{:?}", r.refunds);
    let refund = &r.refunds[0];
    assert_eq!(
        (refund.receiver, refund.to_executor),
        (Some(executor), true)
    );
    assert_eq!(
        refund.max_gas,
        holdfast_guard::refund::gas_bound(&tx).min(U256::from(300_000)),
        "the smaller of the bound and the gas limit"
    );
    // (The rule that decides is the DELEGATECALL one: in a plain transaction's simulation
    // the proxy's delegation to its singleton is not told apart; a denial either way.)
    assert_eq!(r.evaluation.decision, Decision::Deny);
    let s = r.simulation.simulation().expect("simulated");
    assert_eq!(s.outcome, Outcome::Success, "{:?}", s.outcome);
    let paid = s
        .deltas
        .iter()
        .find(|d| d.holder == executor)
        .expect("the executor is paid")
        .delta;
    assert!(
        paid.is_positive(),
        "the fee is not counted against the executor: {paid}"
    );
    let paid = paid.unsigned_abs();
    assert!(
        paid >= eth(100) && Some(paid) <= refund.max_amount,
        "{paid} vs {:?}",
        refund.max_amount
    );
    Ok(())
}
