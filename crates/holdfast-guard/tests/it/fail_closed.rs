//! A simulation that cannot run is a fact the policy sees, never an allow.

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::Bytes;
use holdfast_guard::policy::Decision;
use holdfast_guard::rpc::RpcState;
use holdfast_guard::simulate::{Fork, SimOptions, SimStatus, Simulator};
use holdfast_testkit::safe;
use holdfast_testkit::{Anvil, deploy, dev_account};

use crate::support::{self, R, call, check, eth, sts_json};

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_node_or_an_exhausted_budget_denies() -> R {
    let mut node = Anvil::spawn().await?;
    let owner = dev_account(0);
    let infra = deploy::safe_141(&node, owner).await?;
    let safe = infra.create_safe(&node, owner, &[owner], 1).await?;
    node.call_ok(owner, safe, eth(10), Bytes::new()).await?;
    let chain_id = node.chain_id().await?;
    let nonce = safe::nonce(&node, safe).await?;
    let request = support::env(&sts_json(
        safe,
        chain_id,
        &call(dev_account(5), eth(1), Bytes::new()),
        nonce,
    ));
    let guard = support::guard(&support::anvil_policy(
        safe,
        &[dev_account(5)],
        &[owner],
        infra.multisend,
    ));

    // A budget too small for the first state read.
    let state = RpcState::connect(&node.http_url(), None).await?;
    let tiny = Arc::new(Simulator::new(
        Fork::new(Arc::new(state))?,
        SimOptions {
            budget: Duration::from_micros(1),
        },
    ));
    let r = check(&guard, &request, Some(tiny), vec![]).await?;
    assert!(
        matches!(r.simulation, SimStatus::TimedOut { .. }),
        "{:?}",
        r.simulation
    );
    assert_eq!(r.evaluation.decision, Decision::Deny);
    assert_eq!(r.evaluation.rule.as_deref(), Some("simulation failed"));

    // The node goes away after the fork was pinned: the cold reads fail.
    let sim = Arc::new(support::simulator(&node).await?);
    node.kill();
    let r = check(&guard, &request, Some(sim), vec![]).await?;
    assert!(
        matches!(&r.simulation, SimStatus::Failed { error } if error.contains("node")),
        "{:?}",
        r.simulation
    );
    assert_eq!(r.evaluation.decision, Decision::Deny);

    // A node that cannot be reached at all (no simulator could be built): `guard check`
    // passes the reason on, and the policy sees a failed simulation.
    let refused = RpcState::connect("http://127.0.0.1:9", None)
        .await
        .expect_err("nothing listens on port 9");
    let opts = holdfast_guard::CheckOptions {
        sim_failure: Some(refused.to_string()),
        now: 1_780_000_000,
        ..Default::default()
    };
    let r = guard.check(&request, &opts)?;
    assert!(
        matches!(&r.simulation, SimStatus::Failed { .. }),
        "{:?}",
        r.simulation
    );
    assert_eq!(r.evaluation.decision, Decision::Deny);
    Ok(())
}
