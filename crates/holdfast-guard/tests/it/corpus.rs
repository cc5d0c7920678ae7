//! The false-deny rate on benign traffic: 10 000 generated requests that each example
//! policy is meant to let through (allowed, or held / sent for approval as the policy
//! says), none of which may be denied. Then 300 simulated on anvil against a treasury Safe.

use std::sync::Arc;

use alloy::primitives::{Address, Bytes, U256};
use holdfast_guard::decode::pack_multisend;
use holdfast_guard::policy::Decision;
use holdfast_guard::safe::Operation;
use holdfast_testkit::safe::{self, SafeTx};
use holdfast_testkit::{Anvil, dev_account};

#[path = "../../benches/support/corpus.rs"]
mod generated;

use crate::support::{self, R, check, eth, sts_json};
use generated::{MSCO, Rng, corpus, transfer};

#[tokio::test(flavor = "multi_thread")]
async fn no_benign_request_of_the_generated_corpus_is_denied() -> R {
    let names = [
        "exchange-hot-wallet.toml",
        "defi-treasury.toml",
        "safe-cold-wallet.toml",
    ];
    let guards: Vec<_> = names
        .iter()
        .map(|n| (*n, support::guard(&support::policy_file(n))))
        .collect();
    let corpus = corpus(10_000, 7);
    let mut denied = Vec::new();
    let mut by_decision = std::collections::BTreeMap::new();
    for (name, json) in &corpus {
        let guard = &guards.iter().find(|(n, _)| n == name).expect("guard").1;
        let r = check(guard, &support::env(json), None, vec![]).await?;
        *by_decision
            .entry((*name, r.evaluation.decision.name()))
            .or_insert(0) += 1;
        if r.evaluation.decision == Decision::Deny {
            denied.push((
                name,
                r.evaluation.rule.clone(),
                r.evaluation.reasons.clone(),
            ));
        }
    }
    eprintln!(
        "decode-only corpus: {} requests, {} denied, by decision: {by_decision:?}",
        corpus.len(),
        denied.len()
    );
    assert!(
        denied.is_empty(),
        "false denies: {:#?}",
        &denied[..denied.len().min(5)]
    );
    assert!(by_decision.keys().any(|(_, d)| *d == "allow"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn no_benign_request_is_denied_with_simulation_on_anvil() -> R {
    let node = Anvil::spawn().await?;
    let owner = dev_account(0);
    let (treasury, token) = generated::funded_safe(&node, &[owner, dev_account(1)], 2).await?;
    let chain_id = node.chain_id().await?;
    let nonce = safe::nonce(&node, treasury).await?;
    let mut rng = Rng(11);
    let dests: Vec<Address> = (0..20).map(|_| rng.address()).collect();
    let guard = support::guard(&support::anvil_policy(
        treasury,
        &dests,
        &[owner, dev_account(1)],
        MSCO,
    ));
    let sim = Arc::new(support::simulator(&node).await?);
    let mut denied = 0;
    let n = 300;
    for _ in 0..n {
        let one = |rng: &mut Rng| -> (Address, U256, Bytes) {
            if rng.below(2) == 0 {
                (*rng.pick(&dests), eth(1 + rng.below(5)), Bytes::new())
            } else {
                (
                    token,
                    U256::ZERO,
                    transfer(*rng.pick(&dests), eth(1 + rng.below(10_000))),
                )
            }
        };
        let tx = if rng.below(3) == 0 {
            let calls: Vec<_> = (0..1 + rng.below(4))
                .map(|_| {
                    let (t, v, d) = one(&mut rng);
                    (Operation::Call, t, v, d)
                })
                .collect();
            SafeTx::delegatecall(MSCO, pack_multisend(&calls))
        } else {
            let (t, v, d) = one(&mut rng);
            SafeTx::call(t, v, d)
        };
        let r = check(
            &guard,
            &support::env(&sts_json(treasury, chain_id, &tx, nonce)),
            Some(sim.clone()),
            vec![],
        )
        .await?;
        if r.evaluation.decision == Decision::Deny {
            denied += 1;
            eprintln!(
                "denied: {:?} {:?} {:?}",
                r.evaluation, r.findings, r.simulation
            );
        }
    }
    eprintln!(
        "simulated corpus: {n} requests, {denied} denied, {} state reads from the node",
        sim.fork().fetches()
    );
    assert_eq!(denied, 0);
    Ok(())
}
