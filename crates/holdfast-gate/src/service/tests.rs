//! The transitions on a real embedded store, with no node, a throwaway key and a manual
//! clock: holds expire, approvals lapse and freezes are lifted without sleeping.

use std::sync::Arc;

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use holdfast_guard::approval::{ApprovalAction, SignedApproval};
use holdfast_guard::{Guard, Policy};
use holdfast_store::gate::{DecisionKind, EmbeddedGateStore, RequestState};
use serde_json::json;

use super::Gate;
use crate::clock::ManualClock;
use crate::config::{GateConfig, Principal, Role};
use crate::signer::LocalKeySigner;

const SAFE: Address = Address::repeat_byte(0x5a);
const DEST: Address = Address::repeat_byte(0xde);
const T0: u64 = 1_800_000_000;

fn key(i: u8) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(i)).expect("key")
}

fn policy() -> String {
    format!(
        r#"
[policy]
name = "unit"
[wallets.vault]
address = "{SAFE}"
safe_version = "1.4.1"
[assets.ETH]
native = true
decimals = 18
[groups.approvers]
members = ["{a}", "{b}"]
[[rule]]
name = "big"
when = {{ asset_in = ["ETH"], amount_above = "50" }}
action = "require_approvals"
approvals = 2
group = "approvers"
[[rule]]
name = "medium"
when = {{ asset_in = ["ETH"], amount_above = "10" }}
action = "hold"
hold = "1h"
[[rule]]
name = "small"
when = {{ asset_in = ["ETH"] }}
action = "allow"
"#,
        a = key(2).address(),
        b = key(3).address(),
    )
}

struct World {
    gate: Gate,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedGateStore::open(&dir.path().join("gate")).expect("open"));
    let policy = Policy::parse("unit.toml", &policy()).expect("policy");
    let intel = Arc::new(holdfast_intel::IndexBuilder::default().finish());
    let guard = Guard::new(Arc::new(policy), intel);
    let config = GateConfig {
        simulate: false,
        unfreeze_group: Some("approvers".into()),
        unfreeze_approvals: 2,
        ..GateConfig::default()
    };
    let clock = Arc::new(ManualClock::at(T0));
    let gate = Gate::new(
        store,
        guard,
        None,
        Some(Arc::new(LocalKeySigner::new(key(9)))),
        config,
    )
    .with_clock(clock.clone());
    World {
        gate,
        clock,
        _dir: dir,
    }
}

fn who(name: &str, roles: &[Role]) -> Principal {
    Principal {
        name: name.into(),
        roles: roles.to_vec(),
        address: None,
    }
}

/// A Safe transaction paying `eth` ETH to `DEST`, at Safe nonce `nonce`.
fn safe_request(eth: u64, nonce: u64) -> Vec<u8> {
    let value = U256::from(eth) * U256::from(10u64).pow(U256::from(18));
    json!({"safe": SAFE, "chainId": 1, "to": DEST, "value": value.to_string(), "data": "0x",
           "operation": 0, "nonce": nonce.to_string(), "safeTxGas": 0, "baseGas": 0, "gasPrice": "0"})
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn an_allowed_safe_transaction_is_recorded_co_signed_over_holdfasts_own_hash() {
    let w = world();
    let o = w
        .gate
        .submit(&safe_request(1, 0), &who("ops", &[Role::Initiator]))
        .await
        .expect("submit");
    assert_eq!(
        (o.state, o.decision),
        (RequestState::Signed, DecisionKind::Allow)
    );
    let sig = alloy::primitives::Signature::try_from(o.signature.expect("signature").as_ref())
        .expect("65 bytes");
    assert_eq!(
        sig.recover_address_from_prehash(&o.payload_hash)
            .expect("recovers"),
        key(9).address()
    );
}

#[tokio::test]
async fn a_hold_is_released_when_its_window_ends_and_a_cancelled_one_never() {
    let w = world();
    let initiator = who("ops", &[Role::Initiator]);
    let held = w
        .gate
        .submit(&safe_request(20, 0), &initiator)
        .await
        .expect("submit");
    let cancelled = w
        .gate
        .submit(&safe_request(30, 1), &initiator)
        .await
        .expect("submit");
    assert_eq!(held.state, RequestState::Held);
    assert_eq!(held.release_at, Some(T0 + 3600));
    w.gate
        .cancel(&cancelled.id, "not ours", &who("sec", &[Role::Operator]))
        .await
        .expect("cancel");
    w.clock.advance(3599);
    w.gate.tick().await.expect("tick");
    assert_eq!(
        w.gate.status(&held.id).await.expect("status").state,
        RequestState::Held
    );
    w.clock.advance(1);
    w.gate.tick().await.expect("tick");
    assert_eq!(
        w.gate.status(&held.id).await.expect("status").state,
        RequestState::Signed
    );
    let c = w.gate.status(&cancelled.id).await.expect("status");
    assert_eq!(c.state, RequestState::Cancelled);
    assert!(c.signature.is_none());
}

#[tokio::test]
async fn approvals_count_until_their_deadline_and_a_quorum_signs() {
    let w = world();
    let o = w
        .gate
        .submit(&safe_request(60, 0), &who("ops", &[Role::Initiator]))
        .await
        .expect("submit");
    assert_eq!(o.state, RequestState::AwaitingApprovals);
    let approver = who("approver", &[Role::Approver]);
    let approve = |i: u8, deadline: u64| {
        SignedApproval::sign(
            &key(i),
            o.id.parse().expect("id"),
            o.payload_hash,
            1,
            ApprovalAction::Approve,
            deadline,
        )
        .expect("sign")
    };
    let one = w
        .gate
        .approve(&o.id, approve(2, T0 + 60), &approver)
        .await
        .expect("approve");
    assert_eq!(one.approvals.map(|a| a.have), Some(vec![key(2).address()]));
    w.clock.advance(61);
    let lapsed = w.gate.status(&o.id).await.expect("status");
    assert_eq!(
        lapsed.approvals.map(|a| a.have),
        Some(vec![]),
        "expired: not counted"
    );
    w.gate
        .approve(&o.id, approve(3, T0 + 3600), &approver)
        .await
        .expect("approve");
    assert_eq!(
        w.gate.status(&o.id).await.expect("status").state,
        RequestState::AwaitingApprovals
    );
    let done = w
        .gate
        .approve(&o.id, approve(2, T0 + 3600), &approver)
        .await
        .expect("renewed");
    assert_eq!(done.state, RequestState::Signed);
}

#[tokio::test]
async fn a_freeze_denies_new_requests_and_keeps_due_holds_until_a_quorum_lifts_it() {
    let w = world();
    let initiator = who("ops", &[Role::Initiator]);
    let held = w
        .gate
        .submit(&safe_request(20, 0), &initiator)
        .await
        .expect("submit");
    w.gate
        .freeze(Some(SAFE), "incident", &who("sec", &[Role::Operator]))
        .await
        .expect("freeze");
    let o = w
        .gate
        .submit(&safe_request(1, 1), &initiator)
        .await
        .expect("submit");
    assert_eq!(
        (o.state, o.rule.as_deref()),
        (RequestState::Denied, Some("emergency freeze"))
    );
    w.clock.advance(3600);
    w.gate.tick().await.expect("tick");
    assert_eq!(
        w.gate.status(&held.id).await.expect("status").state,
        RequestState::Held
    );
    let hash = w
        .gate
        .unfreeze_hash(Some(SAFE))
        .await
        .expect("hash")
        .expect("frozen");
    let lift: Vec<SignedApproval> = [2, 3]
        .iter()
        .map(|i| {
            SignedApproval::sign(&key(*i), hash, hash, 1, ApprovalAction::Unfreeze, T0 + 7200)
                .expect("sign")
        })
        .collect();
    let admin = who("admin", &[Role::Admin]);
    assert!(
        w.gate
            .unfreeze(Some(SAFE), &lift[..1], &admin)
            .await
            .is_err(),
        "one is not a quorum"
    );
    w.gate
        .unfreeze(Some(SAFE), &lift, &admin)
        .await
        .expect("lifted");
    w.gate.tick().await.expect("tick");
    assert_eq!(
        w.gate.status(&held.id).await.expect("status").state,
        RequestState::Signed
    );
}
