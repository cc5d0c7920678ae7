//! Real Safe 1.4.1 activity on anvil: benign payouts and MultiSendCallOnly batches are
//! allowed; owner, threshold, module and guard changes and proxy upgrades are denied or
//! need approvals under every example policy, and the simulation shows what they write.

use std::sync::Arc;

use alloy::primitives::{Address, Bytes, U256, address};
use alloy::sol_types::SolCall;
use holdfast_guard::abi::{erc20, proxy, safe as safe_abi};
use holdfast_guard::facts::FindingKind;
use holdfast_guard::policy::Decision;
use holdfast_guard::simulate::{CriticalSlot, Outcome};
use holdfast_testkit::safe::{self, SafeTx};
use holdfast_testkit::{Anvil, deploy, dev_account};
use serde_json::json;

use crate::support::{self, R, call, check, eth, sts_json};

/// Safe's canonical MultiSendCallOnly 1.4.1 (`data/safe-deployments`).
const MULTISEND_CALL_ONLY: Address = address!("0x9641d764fc13c8B624c04430C7356C1C7C8102e2");

struct World {
    node: Anvil,
    safe: Address,
    token: Address,
    chain_id: u64,
    owners: [Address; 3],
}

/// A 2-of-3 Safe 1.4.1 holding ETH and an OpenZeppelin ERC-20, and MultiSendCallOnly at its
/// canonical address (the npm artifact's runtime code is byte-identical to the deployment's).
async fn world() -> R<World> {
    let node = Anvil::spawn().await?;
    let owners = [dev_account(0), dev_account(1), dev_account(2)];
    let infra = deploy::safe_141(&node, owners[0]).await?;
    let safe = infra.create_safe(&node, owners[0], &owners, 2).await?;
    node.call_ok(owners[0], safe, eth(500), Bytes::new())
        .await?;
    let token = deploy::erc20(&node, owners[0], "Dollar", "USD").await?;
    node.call_ok(
        owners[0],
        token,
        U256::ZERO,
        holdfast_testkit_mint(safe, eth(1_000_000)),
    )
    .await?;
    let code = node
        .rpc("eth_getCode", json!([infra.multisend, "latest"]))
        .await?;
    node.rpc("anvil_setCode", json!([MULTISEND_CALL_ONLY, code]))
        .await?;
    let chain_id = node.chain_id().await?;
    Ok(World {
        node,
        safe,
        token,
        chain_id,
        owners,
    })
}

fn holdfast_testkit_mint(to: Address, amount: U256) -> Bytes {
    alloy::sol! { function mint(address to, uint256 amount) external; }
    mintCall { to, amount }.abi_encode().into()
}

fn transfer(to: Address, amount: U256) -> Bytes {
    erc20::transferCall { to, amount }.abi_encode().into()
}

fn multisend(calls: &[(Address, U256, Bytes)]) -> SafeTx {
    let packed: Vec<_> = calls
        .iter()
        .map(|(to, v, d)| (holdfast_guard::safe::Operation::Call, *to, *v, d.clone()))
        .collect();
    SafeTx::delegatecall(
        MULTISEND_CALL_ONLY,
        holdfast_guard::decode::pack_multisend(&packed),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn benign_payouts_and_multisend_call_only_batches_are_allowed() -> R {
    let w = world().await?;
    let (dest1, dest2) = (dev_account(5), dev_account(6));
    let guard = support::guard(&support::anvil_policy(
        w.safe,
        &[dest1, dest2],
        &w.owners,
        MULTISEND_CALL_ONLY,
    ));
    let sim = Arc::new(support::simulator(&w.node).await?);
    let nonce = safe::nonce(&w.node, w.safe).await?;
    for tx in [
        call(dest1, eth(10), Bytes::new()),
        call(w.token, U256::ZERO, transfer(dest2, eth(2500))),
        multisend(&[
            (w.token, U256::ZERO, transfer(dest1, eth(100))),
            (dest2, eth(3), Bytes::new()),
            (w.token, U256::ZERO, transfer(dest2, eth(7))),
        ]),
    ] {
        let r = check(
            &guard,
            &support::env(&sts_json(w.safe, w.chain_id, &tx, nonce)),
            Some(sim.clone()),
            vec![],
        )
        .await?;
        assert_eq!(
            r.evaluation.decision,
            Decision::Allow,
            "{:#?}\n{:#?}",
            r.evaluation,
            r.findings
        );
        assert!(r.findings.is_empty(), "{:?}", r.findings);
        let s = r.simulation.simulation().expect("simulated");
        assert_eq!(s.outcome, Outcome::Success);
        assert!(s.critical_writes.is_empty(), "{:?}", s.critical_writes);
        assert!(
            s.deltas
                .iter()
                .any(|d| d.holder == w.safe && d.delta.is_negative()),
            "the Safe pays: {:?}",
            s.deltas
        );
    }
    // Over the limit: approvals, with the simulated outflow as the amount.
    let big = call(dest1, eth(60), Bytes::new());
    let r = check(
        &guard,
        &support::env(&sts_json(w.safe, w.chain_id, &big, nonce)),
        Some(sim.clone()),
        vec![],
    )
    .await?;
    assert!(
        matches!(
            r.evaluation.decision,
            Decision::RequireApprovals { need: 2, .. }
        ),
        "{:?}",
        r.evaluation
    );
    // Not allowlisted: default deny.
    let elsewhere = call(dev_account(7), eth(1), Bytes::new());
    let r = check(
        &guard,
        &support::env(&sts_json(w.safe, w.chain_id, &elsewhere, nonce)),
        Some(sim),
        vec![],
    )
    .await?;
    assert_eq!(r.evaluation.decision, Decision::Deny);
    assert_eq!(r.evaluation.rule, None, "denied by default");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn configuration_changes_and_upgrades_are_denied_or_need_approvals_under_every_example_policy()
-> R {
    let w = world().await?;
    let sim = Arc::new(support::simulator(&w.node).await?);
    let nonce = safe::nonce(&w.node, w.safe).await?;
    let newcomer = dev_account(8);
    let module = deploy::holdfast(&w.node, dev_account(8), "Forwarder").await?;
    let changes: Vec<(&str, Bytes, CriticalSlot)> = vec![
        (
            "add owner",
            safe_abi::addOwnerWithThresholdCall {
                owner: newcomer,
                _threshold: U256::from(1),
            }
            .abi_encode()
            .into(),
            CriticalSlot::SafeOwners,
        ),
        (
            "threshold",
            safe_abi::changeThresholdCall {
                _threshold: U256::from(1),
            }
            .abi_encode()
            .into(),
            CriticalSlot::SafeThreshold,
        ),
        (
            "module",
            safe_abi::enableModuleCall { module }.abi_encode().into(),
            CriticalSlot::SafeModules,
        ),
        (
            "fallback handler",
            safe_abi::setFallbackHandlerCall { handler: module }
                .abi_encode()
                .into(),
            CriticalSlot::SafeFallbackHandler,
        ),
    ];
    let policies = [
        "safe-cold-wallet.toml",
        "defi-treasury.toml",
        "exchange-hot-wallet.toml",
        "default.toml",
    ];
    for (what, data, slot) in &changes {
        let tx = call(w.safe, U256::ZERO, data.clone());
        let request = support::env(&sts_json(w.safe, w.chain_id, &tx, nonce));
        for p in policies {
            let guard = support::guard(&support::policy_file(p));
            let r = check(&guard, &request, Some(sim.clone()), vec![]).await?;
            assert!(
                matches!(
                    r.evaluation.decision,
                    Decision::Deny | Decision::RequireApprovals { .. }
                ),
                "{what} under {p}: {:?}",
                r.evaluation
            );
            let s = r.simulation.simulation().expect("simulated");
            assert_eq!(s.outcome, Outcome::Success, "{what}: {:?}", s.outcome);
            assert!(
                s.critical_writes.iter().any(|x| x.what == *slot),
                "{what}: {:?}",
                s.critical_writes
            );
            let after = s
                .safe
                .as_ref()
                .and_then(|x| x.after.as_ref())
                .expect("post-state read");
            match *what {
                "add owner" => assert!(after.owners.contains(&newcomer)),
                "threshold" => assert_eq!(after.threshold, U256::from(1)),
                "module" => assert_eq!(after.modules, vec![module]),
                _ => assert_eq!(after.fallback_handler, module),
            }
        }
    }
    // A guard needs a contract that implements the guard interface; decoding alone
    // classifies it, with or without a simulation.
    let tx = call(
        w.safe,
        U256::ZERO,
        safe_abi::setGuardCall { guard: module }.abi_encode(),
    );
    for p in policies {
        let guard = support::guard(&support::policy_file(p));
        let mut j = sts_json(w.safe, w.chain_id, &tx, nonce);
        j["version"] = "1.4.1".into();
        let r = check(&guard, &support::env(&j), None, vec![]).await?;
        assert!(
            matches!(
                r.evaluation.decision,
                Decision::Deny | Decision::RequireApprovals { .. }
            ),
            "setGuard under {p}: {:?}",
            r.evaluation
        );
    }

    // A transparent proxy's upgrade by its admin (an EOA wallet).
    let admin = dev_account(3);
    let impl1 = deploy::erc20(&w.node, admin, "Impl", "I1").await?;
    let impl2 = deploy::erc20(&w.node, admin, "Impl", "I2").await?;
    let proxy_addr = deploy::transparent_proxy(&w.node, admin, impl1, admin).await?;
    let sim = Arc::new(support::simulator(&w.node).await?);
    let upgrade: Bytes = proxy::upgradeToCall {
        newImplementation: impl2,
    }
    .abi_encode()
    .into();
    let request = support::env(
        &json!({"from": admin, "to": proxy_addr, "data": upgrade, "chainId": w.chain_id}),
    );
    for p in policies {
        let guard = support::guard(&support::policy_file(p));
        let r = check(&guard, &request, Some(sim.clone()), vec![]).await?;
        assert!(
            matches!(
                r.evaluation.decision,
                Decision::Deny | Decision::RequireApprovals { .. }
            ),
            "upgrade under {p}: {:?}",
            r.evaluation
        );
        let s = r.simulation.simulation().expect("simulated");
        let write = s
            .critical_writes
            .iter()
            .find(|x| x.what == CriticalSlot::Eip1967Implementation)
            .unwrap_or_else(|| {
                panic!(
                    "no implementation write: {:?} {:?}",
                    s.outcome, s.critical_writes
                )
            });
        assert_eq!(
            (
                Address::from_word(write.before),
                Address::from_word(write.after)
            ),
            (impl1, impl2)
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allowlisted_library_address_holding_other_code_is_a_finding() -> R {
    let w = world().await?;
    // Other code at MultiSendCallOnly's canonical address (a chain where it is not Safe's).
    let code = w
        .node
        .rpc("eth_getCode", json!([w.token, "latest"]))
        .await?;
    w.node
        .rpc("anvil_setCode", json!([MULTISEND_CALL_ONLY, code]))
        .await?;
    let guard = support::guard(&support::policy_file("safe-cold-wallet.toml"));
    let sim = Arc::new(support::simulator(&w.node).await?);
    let nonce = safe::nonce(&w.node, w.safe).await?;
    let tx = multisend(&[(dev_account(5), eth(1), Bytes::new())]);
    let r = check(
        &guard,
        &support::env(&sts_json(w.safe, w.chain_id, &tx, nonce)),
        Some(sim),
        vec![],
    )
    .await?;
    assert!(
        r.findings
            .iter()
            .any(|f| f.kind == FindingKind::CodeHashMismatch),
        "{:?}",
        r.findings
    );
    assert_eq!(r.evaluation.decision, Decision::Deny);
    assert_eq!(r.evaluation.rule.as_deref(), Some("request integrity"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn signatures_and_claimed_hashes_are_checked_against_holdfasts_own_hash() -> R {
    let w = world().await?;
    let guard = support::guard(&support::anvil_policy(
        w.safe,
        &[dev_account(5)],
        &w.owners,
        MULTISEND_CALL_ONLY,
    ));
    let sim = Arc::new(support::simulator(&w.node).await?);
    let nonce = safe::nonce(&w.node, w.safe).await?;
    let tx = call(dev_account(5), eth(1), Bytes::new());
    let hash = safe::transaction_hash(&w.node, w.safe, &tx, nonce).await?;
    let signers = [
        holdfast_testkit::dev_signer(0)?,
        holdfast_testkit::dev_signer(1)?,
    ];
    let sig = |i: usize, h| -> R<Bytes> { Ok(safe::sign(h, &signers[i..=i])?) };

    // Two owners' real signatures over the real hash: valid.
    let mut j = sts_json(w.safe, w.chain_id, &tx, nonce);
    j["safeTxHash"] = json!(hash);
    j["confirmations"] = json!([
        {"owner": w.owners[0], "signature": sig(0, hash)?, "signatureType": "EOA"},
        {"owner": w.owners[1], "signature": sig(1, hash)?, "signatureType": "EOA"},
    ]);
    let r = check(&guard, &support::env(&j), Some(sim.clone()), vec![]).await?;
    assert_eq!(
        r.evaluation.decision,
        Decision::Allow,
        "{:?} {:?}",
        r.evaluation,
        r.findings
    );
    let s = r.safe.expect("safe");
    assert_eq!(
        s.signatures
            .iter()
            .filter(|c| c.valid == Some(true))
            .count(),
        2
    );

    // The DMM pattern: the destination was altered after the owners signed. Their
    // signatures and the claimed hash belong to the original request.
    let altered = call(dev_account(7), eth(1), Bytes::new());
    let mut k = sts_json(w.safe, w.chain_id, &altered, nonce);
    k["safeTxHash"] = json!(hash);
    k["confirmations"] = j["confirmations"].clone();
    let r = check(&guard, &support::env(&k), Some(sim), vec![]).await?;
    assert_eq!(r.evaluation.decision, Decision::Deny);
    let kinds: Vec<_> = r.findings.iter().map(|f| f.kind).collect();
    assert!(
        kinds.contains(&FindingKind::SafeTxHashMismatch),
        "{kinds:?}"
    );
    assert!(kinds.contains(&FindingKind::BadSignature), "{kinds:?}");
    Ok(())
}
