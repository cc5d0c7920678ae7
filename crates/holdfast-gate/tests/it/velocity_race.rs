//! Issue 13, item 3: velocity limits raced by concurrent requests. Ten 5 ETH withdrawals
//! sent at once against a 20 ETH/hour limit: each decision is made under the wallet's lock
//! in the store and reserves its outflows before the next one reads them, so at most 20 ETH
//! is signed and sent — on the embedded store, and with two instances sharing PostgreSQL.
//! Before the fix, all ten were signed and broadcast.

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use holdfast_gate::{Gate, Role};
use holdfast_store::gate::{GateStore, PgGateStore, RequestState};
use holdfast_testkit::{Anvil, dev_signer};
use serde_json::json;

use crate::support::{self, R, eth, who};

fn policy(hot: Address) -> String {
    format!(
        r#"
[policy]
name = "hot"
[wallets.hot]
address = "{hot}"
[assets.ETH]
native = true
decimals = 18
[[rule]]
name = "burst"
when = {{ velocity = {{ window = "1h", amount_above = "20", asset = "ETH" }} }}
action = "deny"
[[rule]]
name = "withdrawal"
when = {{ asset_in = ["ETH"] }}
action = "allow"
"#
    )
}

/// Sends ten 5 ETH withdrawals at once, spread over `gates`, to ten fresh addresses, and
/// returns how many were sent and what arrived on chain.
async fn burst(node: &Anvil, gates: &[Arc<Gate>]) -> R<(usize, U256)> {
    let chain_id = node.chain_id().await?;
    let dests: Vec<Address> = (0..10u8).map(|i| Address::repeat_byte(0x40 + i)).collect();
    let mut tasks = Vec::new();
    for (n, dest) in dests.iter().enumerate() {
        let gate = gates[n % gates.len()].clone();
        let body = json!({"wallet": "hot", "asset": "ETH", "amount": "5", "destination": dest, "chainId": chain_id, "id": format!("w{n}")})
            .to_string()
            .into_bytes();
        tasks.push(tokio::spawn(async move {
            gate.submit(&body, &who("withdrawals", &[Role::Initiator]))
                .await
        }));
    }
    let mut sent = Vec::new();
    for t in tasks {
        let o = t.await??;
        match o.state {
            RequestState::Broadcast => sent.push(o.id),
            RequestState::Denied => assert_eq!(o.rule.as_deref(), Some("burst"), "{o:?}"),
            s => panic!("unexpected state {s:?}: {o:?}"),
        }
    }
    for id in &sent {
        support::wait_until(
            &gates[0],
            id,
            |o| o.state == RequestState::Included,
            Duration::from_secs(20),
        )
        .await?;
    }
    let mut arrived = U256::ZERO;
    for d in &dests {
        arrived += node.balance(*d).await?;
    }
    Ok((sent.len(), arrived))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn ten_concurrent_withdrawals_never_pass_a_velocity_limit_embedded() -> R {
    let node = Anvil::spawn().await?;
    let key = dev_signer(6)?;
    let dir = tempfile::tempdir()?;
    let gate = support::gate(
        &node,
        &policy(key.address()),
        key,
        support::embedded(dir.path()),
    )
    .await?;
    let (sent, arrived) = burst(&node, &[gate]).await?;
    assert_eq!(sent, 4, "four 5 ETH withdrawals fit 20 ETH an hour");
    assert_eq!(arrived, eth(20));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn ten_concurrent_withdrawals_never_pass_a_velocity_limit_two_instances_on_postgresql() -> R {
    if std::env::var_os("HOLDFAST_TEST_SKIP_PG").is_some_and(|v| v == "1") {
        return Ok(());
    }
    let pg = holdfast_store::testing::TempPostgres::start(false)?;
    let node = Anvil::spawn().await?;
    let key = dev_signer(6)?;
    let mut gates = Vec::new();
    for _ in 0..2 {
        let url = pg.url().to_owned();
        let store: Arc<dyn GateStore> =
            Arc::new(tokio::task::spawn_blocking(move || PgGateStore::connect(&url, 4)).await??);
        gates.push(support::gate(&node, &policy(key.address()), key.clone(), store).await?);
    }
    let (sent, arrived) = burst(&node, &gates).await?;
    assert_eq!(sent, 4, "four 5 ETH withdrawals fit 20 ETH an hour");
    assert_eq!(arrived, eth(20));
    Ok(())
}
