//! A 3-of-3 Safe 1.4.1 whose owners are Holdfast and two people: nothing executes without
//! Holdfast's signature, and Holdfast signs only what its policy allows — at once, after a
//! hold nobody cancelled, or after two EIP-712 approvals.

use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::sol_types::SolCall;
use holdfast_gate::Role;
use holdfast_guard::approval::{ApprovalAction, SignedApproval};
use holdfast_guard::safe::Operation;
use holdfast_store::gate::{RequestState, verify};
use holdfast_testkit::{Anvil, deploy, dev_account, dev_signer, safe};

use crate::support::{self, R, eth, execute, safe_tx, sts, who};

fn policy(safe: Address, dests: &[Address], approvers: &[Address]) -> String {
    let list = |v: &[Address]| {
        v.iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"
[policy]
name = "vault"
[wallets.vault]
address = "{safe}"
safe_version = "1.4.1"
[assets.ETH]
native = true
decimals = 18
usd = "3000"
[lists]
dest = [{d}]
dc = ["safe:multisend-call-only"]
[groups.approvers]
members = [{a}]
[[rule]]
name = "integrity"
when = {{ finding = ["safe_tx_hash_mismatch", "contract_hash_mismatch", "bad_signature", "wrong_chain", "code_hash_mismatch", "stale_nonce", "undecodable"] }}
action = "deny"
[[rule]]
name = "screening"
when = {{ counterparty_risk = "high" }}
action = "deny"
[[rule]]
name = "foreign delegatecall"
when = {{ delegatecall_to_unlisted = "dc" }}
action = "deny"
[[rule]]
name = "hidden critical write"
when = {{ hidden_critical_write = true }}
action = "deny"
[[rule]]
name = "simulation failed"
when = {{ simulation = ["failed", "timed_out", "reverted", "inner_failed", "unavailable"] }}
action = "deny"
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
hold = "2s"
[[rule]]
name = "ok"
when = {{ destination_in = "dest" }}
action = "allow"
"#,
        d = list(dests),
        a = list(approvers)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn holdfast_cosigns_only_what_the_policy_allows() -> R {
    let node = Anvil::spawn().await?;
    let holdfast = dev_signer(7)?;
    let (a, b) = (dev_signer(0)?, dev_signer(1)?);
    let infra = deploy::safe_141(&node, a.address()).await?;
    let vault = infra
        .create_safe(
            &node,
            a.address(),
            &[holdfast.address(), a.address(), b.address()],
            3,
        )
        .await?;
    node.call_ok(a.address(), vault, eth(1000), Bytes::new())
        .await?;
    let chain_id = node.chain_id().await?;
    let dest = dev_account(5);
    let approvers = [dev_account(2), dev_account(3), dev_account(4)];
    let dir = tempfile::tempdir()?;
    let store = support::embedded(dir.path());
    let gate = support::gate(
        &node,
        &policy(vault, &[dest], &approvers),
        holdfast.clone(),
        store.clone(),
    )
    .await?;
    let initiator = who("treasury-bot", &[Role::Initiator]);
    let ops = who("on-call", &[Role::Operator]);
    let approver = who("approvals-desk", &[Role::Approver]);
    let start = node.balance(dest).await?;

    // 1. Allowed at once: Holdfast signs the safeTxHash; with the two owners it executes.
    let nonce = safe::nonce(&node, vault).await?;
    let tx = safe_tx(dest, eth(5), Bytes::new(), Operation::Call, nonce);
    let o = gate.submit(&sts(vault, chain_id, &tx), &initiator).await?;
    assert_eq!(o.state, RequestState::Signed, "{:?}", o.reasons);
    let hash = safe::transaction_hash(&node, vault, &testkit_tx(&tx), nonce).await?;
    assert_eq!(
        o.payload_hash, hash,
        "Holdfast signs the hash the Safe checks"
    );
    let sig = o.signature.clone().expect("signature");
    execute(
        &node,
        vault,
        &tx,
        hash,
        (holdfast.address(), sig),
        &[a.clone(), b.clone()],
    )
    .await?;
    assert_eq!(node.balance(dest).await? - start, eth(5));

    // Without Holdfast the other owners cannot reach the threshold.
    let nonce = safe::nonce(&node, vault).await?;
    let tx2 = safe_tx(dest, eth(1), Bytes::new(), Operation::Call, nonce);
    let hash2 = safe::transaction_hash(&node, vault, &testkit_tx(&tx2), nonce).await?;
    let forged = holdfast_testkit::safe::sign(hash2, &[dev_signer(8)?])?;
    assert!(
        execute(
            &node,
            vault,
            &tx2,
            hash2,
            (dev_account(8), forged),
            &[a.clone(), b.clone()]
        )
        .await
        .is_err()
    );

    // 2. The Bybit pattern: denied, never signed.
    let swap = deploy::holdfast(&node, dev_account(9), "MasterCopySwap").await?;
    let data: Bytes = holdfast_guard::abi::erc20::transferCall {
        to: dev_account(9),
        amount: U256::ZERO,
    }
    .abi_encode()
    .into();
    let bybit = safe_tx(swap, U256::ZERO, data, Operation::DelegateCall, nonce);
    let o = gate
        .submit(&sts(vault, chain_id, &bybit), &initiator)
        .await?;
    assert_eq!(o.state, RequestState::Denied);
    assert!(o.signature.is_none());
    assert_eq!(o.rule.as_deref(), Some("foreign delegatecall"));

    // 3. Held: signed only after the window, by the background task.
    let held_tx = safe_tx(dest, eth(20), Bytes::new(), Operation::Call, nonce);
    let o = gate
        .submit(&sts(vault, chain_id, &held_tx), &initiator)
        .await?;
    assert_eq!(o.state, RequestState::Held);
    assert!(o.signature.is_none());
    gate.tick().await?;
    assert_eq!(
        gate.status(&o.id).await?.state,
        RequestState::Held,
        "not before the window ends"
    );
    let released = support::wait_until(
        &gate,
        &o.id,
        |x| x.state == RequestState::Signed,
        Duration::from_secs(10),
    )
    .await?;
    let h = safe::transaction_hash(&node, vault, &testkit_tx(&held_tx), nonce).await?;
    execute(
        &node,
        vault,
        &held_tx,
        h,
        (holdfast.address(), released.signature.expect("sig")),
        &[a.clone(), b.clone()],
    )
    .await?;

    // 4. Held then cancelled: never signed, also after the window.
    let nonce = safe::nonce(&node, vault).await?;
    let cancel_tx = safe_tx(dest, eth(30), Bytes::new(), Operation::Call, nonce);
    let o = gate
        .submit(&sts(vault, chain_id, &cancel_tx), &initiator)
        .await?;
    assert_eq!(o.state, RequestState::Held);
    assert!(
        gate.cancel(&o.id, "not ours", &initiator).await.is_err(),
        "an initiator cannot cancel"
    );
    let c = gate.cancel(&o.id, "not expected", &ops).await?;
    assert_eq!(c.state, RequestState::Cancelled);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    gate.tick().await?;
    let after = gate.status(&o.id).await?;
    assert_eq!(after.state, RequestState::Cancelled);
    assert!(after.signature.is_none());
    assert!(gate.cancel(&o.id, "again", &ops).await.is_err());

    // 5. 2-of-3 approvals with real EIP-712 signatures.
    let big = safe_tx(dest, eth(60), Bytes::new(), Operation::Call, nonce);
    let o = gate.submit(&sts(vault, chain_id, &big), &initiator).await?;
    assert_eq!(o.state, RequestState::AwaitingApprovals);
    let id: B256 = o.id.parse()?;
    let deadline = holdfast_gate::service::now() + 600;
    let approve = |i: usize, payload: B256| {
        SignedApproval::sign(
            &dev_signer(i).expect("key"),
            id,
            payload,
            chain_id,
            ApprovalAction::Approve,
            deadline,
        )
        .expect("sign")
    };
    // Foreign, replayed and non-member approvals are refused.
    assert!(
        gate.approve(&o.id, approve(2, B256::repeat_byte(1)), &approver)
            .await
            .is_err(),
        "another payload"
    );
    assert!(
        gate.approve(&o.id, approve(6, o.payload_hash), &approver)
            .await
            .is_err(),
        "not a member"
    );
    assert!(
        gate.approve(&o.id, approve(2, o.payload_hash), &initiator)
            .await
            .is_err(),
        "the token lacks the approver role"
    );
    let one = gate
        .approve(&o.id, approve(2, o.payload_hash), &approver)
        .await?;
    assert_eq!(one.state, RequestState::AwaitingApprovals);
    assert_eq!(one.approvals.as_ref().map(|a| a.have.len()), Some(1));
    assert!(
        gate.approve(&o.id, approve(2, o.payload_hash), &approver)
            .await
            .is_err(),
        "a replay counts once"
    );
    let two = gate
        .approve(&o.id, approve(3, o.payload_hash), &approver)
        .await?;
    assert_eq!(two.state, RequestState::Signed, "{:?}", two.reasons);
    let h = safe::transaction_hash(&node, vault, &testkit_tx(&big), nonce).await?;
    execute(
        &node,
        vault,
        &big,
        h,
        (holdfast.address(), two.signature.expect("sig")),
        &[a.clone(), b.clone()],
    )
    .await?;
    assert_eq!(node.balance(dest).await? - start, eth(5 + 20 + 60));

    // 6. Emergency freeze: nothing is signed until a quorum lifts it.
    let nonce = safe::nonce(&node, vault).await?;
    gate.freeze(Some(vault), "incident", &ops).await?;
    let small = safe_tx(dest, eth(1), Bytes::new(), Operation::Call, nonce);
    let o = gate
        .submit(&sts(vault, chain_id, &small), &initiator)
        .await?;
    assert_eq!(o.state, RequestState::Denied);
    assert_eq!(o.rule.as_deref(), Some("emergency freeze"));
    let admin = who("admin", &[Role::Admin]);
    let uh = gate.unfreeze_hash(Some(vault)).await?.expect("frozen");
    let unfreeze = |i: usize| {
        SignedApproval::sign(
            &dev_signer(i).expect("key"),
            uh,
            uh,
            chain_id,
            ApprovalAction::Unfreeze,
            deadline,
        )
        .expect("sign")
    };
    assert!(
        gate.unfreeze(Some(vault), &[unfreeze(2)], &admin)
            .await
            .is_err(),
        "one approval is not a quorum"
    );
    assert!(
        gate.unfreeze(Some(vault), &[unfreeze(2), unfreeze(2)], &admin)
            .await
            .is_err(),
        "the same approver twice"
    );
    gate.unfreeze(Some(vault), &[unfreeze(2), unfreeze(4)], &admin)
        .await?;
    let o = gate
        .submit(&sts(vault, chain_id, &small), &initiator)
        .await?;
    assert_eq!(o.state, RequestState::Signed);

    // Everything is in one verifiable audit chain.
    let chain = store.audit(1, 100_000)?;
    assert_eq!(verify(&chain), Ok(chain.len() as u64));
    let kinds: std::collections::BTreeSet<&str> = chain.iter().map(|e| e.kind.name()).collect();
    for k in [
        "request",
        "decision",
        "hold",
        "release",
        "cancel",
        "approval",
        "approval_rejected",
        "signature",
        "freeze",
        "unfreeze",
    ] {
        if k == "hold" {
            continue; // holds are the decision entry's release_at
        }
        assert!(kinds.contains(k), "no {k} entry in {kinds:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_node_signs_nothing() -> R {
    let mut node = Anvil::spawn().await?;
    let holdfast = dev_signer(7)?;
    let a = dev_signer(0)?;
    let infra = deploy::safe_141(&node, a.address()).await?;
    let vault = infra
        .create_safe(&node, a.address(), &[holdfast.address(), a.address()], 2)
        .await?;
    let chain_id = node.chain_id().await?;
    let dir = tempfile::tempdir()?;
    let gate = support::gate(
        &node,
        &policy(vault, &[dev_account(5)], &[dev_account(2), dev_account(3)]),
        holdfast,
        support::embedded(dir.path()),
    )
    .await?;
    node.kill();
    let tx = safe_tx(
        dev_account(5),
        eth(1),
        Bytes::new(),
        Operation::Call,
        U256::ZERO,
    );
    let o = gate
        .submit(&sts(vault, chain_id, &tx), &who("bot", &[Role::Initiator]))
        .await?;
    assert_eq!(o.state, RequestState::Denied, "{:?}", o.reasons);
    assert!(o.signature.is_none());
    assert_eq!(o.rule.as_deref(), Some("simulation failed"));
    Ok(())
}

/// The testkit's form of a Safe transaction (for the contract's own hash).
fn testkit_tx(tx: &holdfast_guard::safe::SafeTx) -> holdfast_testkit::safe::SafeTx {
    holdfast_testkit::safe::SafeTx {
        to: tx.to,
        value: tx.value,
        data: tx.data.clone(),
        operation: match tx.operation {
            Operation::Call => holdfast_testkit::safe::Operation::Call,
            Operation::DelegateCall => holdfast_testkit::safe::Operation::DelegateCall,
        },
        safe_tx_gas: tx.safe_tx_gas,
    }
}
