//! Issue 13, item 8, on anvil with the hot-wallet gateway: a full quorum left undecided by a
//! crash (the approval stored, the process killed before it decided again) is signed by the
//! background task, and the approver's retry is answered, not refused; an expired approval
//! neither shows as counted nor blocks its approver; unfreeze approvals over one freeze do
//! not lift the next, even within the same second.

use std::time::Duration;

use alloy::primitives::{Address, B256};
use holdfast_gate::{Gate, Role};
use holdfast_guard::approval::{ApprovalAction, SignedApproval};
use holdfast_store::gate::{ApprovalKind, AuditKind, NewAudit, RequestState, StoredApproval};
use holdfast_testkit::{Anvil, dev_account, dev_signer};
use serde_json::json;

use crate::support::{self, R, who};

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
[groups.approvers]
members = ["{a}", "{b}"]
[[rule]]
name = "large"
when = {{ asset_in = ["ETH"], amount_above = "1" }}
action = "require_approvals"
approvals = 2
group = "approvers"
[[rule]]
name = "small"
when = {{ asset_in = ["ETH"] }}
action = "allow"
"#,
        a = dev_account(2),
        b = dev_account(3),
    )
}

/// Signed and sent (the background task may already have seen it included).
fn sent(s: RequestState) -> bool {
    matches!(s, RequestState::Broadcast | RequestState::Included)
}

fn approval(i: usize, id: &str, payload: B256, chain_id: u64, deadline: u64) -> SignedApproval {
    SignedApproval::sign(
        &dev_signer(i).expect("key"),
        id.parse().expect("id"),
        payload,
        chain_id,
        ApprovalAction::Approve,
        deadline,
    )
    .expect("sign")
}

/// What `Gate::approve` stores before it decides again: written alone, as a process killed
/// between the two steps leaves it.
async fn store_only(gate: &Gate, id: &str, a: &SignedApproval) -> R {
    let v = a.verify(holdfast_gate::service::now())?;
    let stored = StoredApproval {
        request_id: id.to_owned(),
        approver: v.approver,
        action: ApprovalKind::Approve,
        approval: serde_json::to_string(a)?,
        at: holdfast_gate::service::now(),
    };
    let entry = NewAudit {
        at: stored.at,
        kind: AuditKind::Approval,
        request_id: Some(id.to_owned()),
        actor: "approver".into(),
        details: json!({"approver": v.approver}).to_string(),
    };
    let store = gate.store().clone();
    assert!(tokio::task::spawn_blocking(move || store.add_approval(&stored, entry, false)).await??);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quorum_interrupted_by_a_crash_is_signed_and_expired_approvals_do_not_count() -> R {
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
    let chain_id = node.chain_id().await?;
    let initiator = who("withdrawals", &[Role::Initiator]);
    let approver = who("approver", &[Role::Approver]);
    let submit = |n: u32| {
        let gate = gate.clone();
        let initiator = initiator.clone();
        async move {
            let body = json!({"wallet": "hot", "asset": "ETH", "amount": "2", "destination": dev_account(5), "chainId": chain_id, "id": format!("w{n}")});
            gate.submit(body.to_string().as_bytes(), &initiator).await
        }
    };
    let later = holdfast_gate::service::now() + 600;

    // 1. The second approval stored, then the process died: the background task decides.
    let o = submit(1).await?;
    assert_eq!(o.state, RequestState::AwaitingApprovals);
    let one = gate
        .approve(
            &o.id,
            approval(2, &o.id, o.payload_hash, chain_id, later),
            &approver,
        )
        .await?;
    assert_eq!(one.approvals.as_ref().map(|a| a.have.len()), Some(1));
    store_only(
        &gate,
        &o.id,
        &approval(3, &o.id, o.payload_hash, chain_id, later),
    )
    .await?;
    assert_eq!(
        gate.status(&o.id).await?.state,
        RequestState::AwaitingApprovals
    );
    gate.tick().await?;
    let after = gate.status(&o.id).await?;
    assert!(sent(after.state), "{after:?}");

    // 2. The same, and the approver retries before the background task ran: answered with
    //    the signed request, not a conflict.
    let o = submit(2).await?;
    store_only(
        &gate,
        &o.id,
        &approval(2, &o.id, o.payload_hash, chain_id, later),
    )
    .await?;
    let a3 = approval(3, &o.id, o.payload_hash, chain_id, later);
    store_only(&gate, &o.id, &a3).await?;
    let retried = gate.approve(&o.id, a3.clone(), &approver).await?;
    assert!(sent(retried.state), "{retried:?}");

    // 3. A replay while the quorum is not complete still counts once.
    let o = submit(3).await?;
    let a2 = approval(2, &o.id, o.payload_hash, chain_id, later);
    gate.approve(&o.id, a2.clone(), &approver).await?;
    assert!(
        matches!(
            gate.approve(&o.id, a2, &approver).await,
            Err(holdfast_gate::GateError::Conflict(_))
        ),
        "a replay counts once"
    );
    assert_eq!(
        gate.status(&o.id).await?.approvals.map(|a| a.have.len()),
        Some(1)
    );

    // 4. An expired approval is not shown as counted and does not block its approver.
    let o = submit(4).await?;
    let soon = holdfast_gate::service::now() + 1;
    gate.approve(
        &o.id,
        approval(2, &o.id, o.payload_hash, chain_id, soon),
        &approver,
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let status = gate.status(&o.id).await?;
    assert_eq!(
        status.approvals.map(|a| a.have),
        Some(vec![]),
        "an expired approval is not counted"
    );
    let renewed = gate
        .approve(
            &o.id,
            approval(2, &o.id, o.payload_hash, chain_id, later),
            &approver,
        )
        .await?;
    assert_eq!(
        renewed.approvals.map(|a| a.have),
        Some(vec![dev_account(2)])
    );
    let done = gate
        .approve(
            &o.id,
            approval(3, &o.id, o.payload_hash, chain_id, later),
            &approver,
        )
        .await?;
    assert!(sent(done.state), "{done:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn unfreeze_approvals_lift_only_the_freeze_they_name() -> R {
    let node = Anvil::spawn().await?;
    let key = dev_signer(6)?;
    let hot = key.address();
    let dir = tempfile::tempdir()?;
    let gate = support::gate(&node, &policy(hot), key, support::embedded(dir.path())).await?;
    let chain_id = node.chain_id().await?;
    let ops = who("ops", &[Role::Operator]);
    let admin = who("admin", &[Role::Admin]);
    let lift = |hash: B256| {
        [2, 3]
            .map(|i| {
                SignedApproval::sign(
                    &dev_signer(i).expect("key"),
                    hash,
                    hash,
                    chain_id,
                    ApprovalAction::Unfreeze,
                    holdfast_gate::service::now() + 600,
                )
                .expect("sign")
            })
            .to_vec()
    };
    gate.freeze(Some(hot), "incident", &ops).await?;
    let first = gate.unfreeze_hash(Some(hot)).await?.expect("frozen");
    let approvals = lift(first);
    gate.unfreeze(Some(hot), &approvals, &admin).await?;
    // A new freeze, within the same second as the first as a rule.
    gate.freeze(Some(hot), "incident again", &ops).await?;
    let second = gate.unfreeze_hash(Some(hot)).await?.expect("frozen");
    assert_ne!(first, second, "each freeze has its own unfreeze hash");
    assert!(
        gate.unfreeze(Some(hot), &approvals, &admin).await.is_err(),
        "approvals over the first freeze do not lift the second"
    );
    gate.unfreeze(Some(hot), &lift(second), &admin).await?;
    Ok(())
}
