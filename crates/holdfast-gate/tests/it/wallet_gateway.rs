//! The hot-wallet gateway: Holdfast holds the hot wallet's key, takes withdrawal requests,
//! builds, signs and broadcasts them with nonces it allocates, reports inclusion, and stops a
//! drained-key burst with the policy's velocity limit.

use std::time::Duration;

use alloy::primitives::Address;
use holdfast_gate::Role;
use holdfast_store::gate::RequestState;
use holdfast_testkit::{Anvil, dev_account, dev_signer};
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
usd = "3000"
[[rule]]
name = "screening"
when = {{ counterparty_risk = "high" }}
action = "deny"
[[rule]]
name = "simulation failed"
when = {{ simulation = ["failed", "timed_out", "reverted"] }}
action = "deny"
[[rule]]
name = "burst"
when = {{ velocity = {{ window = "1h", amount_above = "10", asset = "ETH" }} }}
action = "deny"
[[rule]]
name = "withdrawal"
when = {{ asset_in = ["ETH"] }}
action = "allow"
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn withdrawals_are_signed_sent_and_included_and_a_burst_is_stopped() -> R {
    let node = Anvil::spawn().await?;
    let key = dev_signer(6)?;
    let hot = key.address();
    let dir = tempfile::tempdir()?;
    let gate = support::gate(&node, &policy(hot), key, support::embedded(dir.path())).await?;
    let service = who("withdrawals", &[Role::Initiator]);
    let chain_id = node.chain_id().await?;
    let withdraw = |to: Address, amount: &str, n: u32| {
        json!({"wallet": "hot", "asset": "ETH", "amount": amount, "destination": to, "chainId": chain_id, "id": format!("w{n}")}).to_string().into_bytes()
    };
    let dest = dev_account(5);
    let before = node.balance(dest).await?;
    let mut nonces = Vec::new();
    let mut ids = Vec::new();
    for n in 0..3 {
        let o = gate.submit(&withdraw(dest, "2", n), &service).await?;
        assert_eq!(
            o.state,
            RequestState::Broadcast,
            "{:?} {:?}",
            o.reasons,
            o.error
        );
        nonces.push(o.nonce.expect("nonce"));
        ids.push(o.id.clone());
    }
    assert_eq!(nonces, vec![0, 1, 2], "consecutive nonces from the store");
    for id in &ids {
        let o = support::wait_until(
            &gate,
            id,
            |o| o.state == RequestState::Included,
            Duration::from_secs(10),
        )
        .await?;
        assert!(o.error.is_none(), "{:?}", o.error);
    }
    assert_eq!(node.balance(dest).await? - before, eth(6));

    // The burst: 6 ETH are out this hour; 4 more is within the limit of 10, 2 more is not.
    let o = gate
        .submit(&withdraw(dev_account(4), "4", 10), &service)
        .await?;
    assert_eq!(o.state, RequestState::Broadcast, "{:?}", o.reasons);
    let o = gate
        .submit(&withdraw(dev_account(3), "2", 11), &service)
        .await?;
    assert_eq!(o.state, RequestState::Denied);
    assert_eq!(o.rule.as_deref(), Some("burst"));
    assert!(
        o.reasons.iter().any(|r| r.contains("12 ETH")),
        "{:?}",
        o.reasons
    );

    // A wallet whose key Holdfast does not hold is never sent from.
    let other = json!({"from": dev_account(2), "to": dest, "value": "1", "chainId": chain_id})
        .to_string()
        .into_bytes();
    let o = gate.submit(&other, &service).await?;
    assert_eq!(o.state, RequestState::Failed, "{:?}", o);
    assert!(
        o.error
            .as_deref()
            .is_some_and(|e| e.contains("not the key")),
        "{:?}",
        o.error
    );
    Ok(())
}
