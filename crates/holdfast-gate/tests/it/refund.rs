//! The Safe gas-refund drain (issue 13, item 1) against the co-signer: a 3-of-3 Safe 1.4.1
//! holding 1,000 ETH, Holdfast one of its owners. A transaction paying 1 ETH to an
//! allowlisted destination, with `baseGas` 10^9 at `gasPrice` 1,000 gwei refunded to the
//! attacker, moves 900 ETH when executed at 900 gwei (reproduced with the owners' keys);
//! Holdfast does not co-sign it.

use alloy::primitives::{Address, B256, Bytes, U256, address};
use alloy::sol_types::SolCall;
use holdfast_gate::Role;
use holdfast_guard::approval::{ApprovalAction, SignedApproval};
use holdfast_guard::safe::{Operation, SafeTx, SafeVersion};
use holdfast_store::gate::{HistoryQuery, RequestState};
use holdfast_testkit::{Anvil, deploy, dev_account, dev_signer, safe};
use serde_json::json;

use crate::support::{self, R, eth, who};

const LAZARUS: Address = address!("0x098B716B8Aaf21512996dC57EB0615e2383E2f96");

fn policy(safe: Address, dests: &[Address]) -> String {
    let dests = dests
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ");
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
dest = [{dests}]
[groups.approvers]
members = ["{a1}", "{a2}"]
[[rule]]
name = "screening"
when = {{ counterparty_risk = "high" }}
action = "deny"
[[rule]]
name = "simulation failed"
when = {{ simulation = ["failed", "timed_out", "unavailable"] }}
action = "deny"
[[rule]]
name = "big"
when = {{ asset_in = ["ETH"], amount_above = "50" }}
action = "require_approvals"
approvals = 2
group = "approvers"
[[rule]]
name = "ok"
when = {{ destination_in = "dest" }}
action = "allow"
"#,
        a1 = dev_account(2),
        a2 = dev_account(3),
    )
}

fn refund_tx(to: Address, receiver: Address, nonce: U256) -> SafeTx {
    SafeTx {
        to,
        value: eth(1),
        data: Bytes::new(),
        operation: Operation::Call,
        safe_tx_gas: U256::ZERO,
        base_gas: U256::from(1_000_000_000u64),
        gas_price: U256::from(1_000_000_000_000u64),
        gas_token: Address::ZERO,
        refund_receiver: receiver,
        nonce,
    }
}

fn sts(safe: Address, chain_id: u64, tx: &SafeTx) -> Vec<u8> {
    json!({
        "safe": safe, "chainId": chain_id, "to": tx.to, "value": tx.value.to_string(),
        "data": tx.data, "operation": tx.operation.as_u8(), "nonce": tx.nonce.to_string(),
        "safeTxGas": tx.safe_tx_gas.to_string(), "baseGas": tx.base_gas.to_string(),
        "gasPrice": tx.gas_price.to_string(), "gasToken": tx.gas_token,
        "refundReceiver": tx.refund_receiver,
    })
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn holdfast_does_not_cosign_a_gas_refund_drain() -> R {
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
    let (dest, attacker) = (dev_account(5), dev_account(9));
    let dir = tempfile::tempdir()?;
    let store = support::embedded(dir.path());
    // The attacker's address is even on the destination list: the refund still counts.
    let gate = support::gate(
        &node,
        &policy(vault, &[dest, attacker]),
        holdfast.clone(),
        store.clone(),
    )
    .await?;
    let initiator = who("treasury-bot", &[Role::Initiator]);
    let nonce = safe::nonce(&node, vault).await?;

    // A plain 1 ETH payout is co-signed: the gate is not refusing everything.
    let plain = support::safe_tx(dest, eth(1), Bytes::new(), Operation::Call, nonce);
    let o = gate
        .submit(&support::sts(vault, chain_id, &plain), &initiator)
        .await?;
    assert_eq!(o.state, RequestState::Signed, "{:?}", o.reasons);

    // The refund to the Lazarus Group: denied by screening, not signed.
    let to_lazarus = refund_tx(dest, LAZARUS, nonce);
    let o = gate
        .submit(&sts(vault, chain_id, &to_lazarus), &initiator)
        .await?;
    assert_eq!(o.state, RequestState::Denied, "{:?}", o.reasons);
    assert!(o.signature.is_none());
    assert_eq!(o.rule.as_deref(), Some("screening"));
    assert!(
        o.reasons.iter().any(|r| r.contains("gas refund receiver")),
        "{:?}",
        o.reasons
    );

    // The refund to a listed address: up to 1,000 ETH leaves the Safe, above the 50 ETH
    // line, so it waits for approvals and is not signed.
    let drain = refund_tx(dest, attacker, nonce);
    let o = gate
        .submit(&sts(vault, chain_id, &drain), &initiator)
        .await?;
    assert_eq!(o.state, RequestState::AwaitingApprovals, "{:?}", o.reasons);
    assert!(o.signature.is_none());
    assert_eq!(o.rule.as_deref(), Some("big"));

    // Approved by two approvers, it is signed, and its recorded outflows carry the refund
    // at its bound, so velocity limits see it afterwards.
    let id: B256 = o.id.parse()?;
    let deadline = holdfast_gate::service::now() + 600;
    for i in [2, 3] {
        let approval = SignedApproval::sign(
            &dev_signer(i)?,
            id,
            o.payload_hash,
            chain_id,
            ApprovalAction::Approve,
            deadline,
        )?;
        gate.approve(&o.id, approval, &who("desk", &[Role::Approver]))
            .await?;
    }
    assert_eq!(gate.status(&o.id).await?.state, RequestState::Signed);
    let recorded = store.history(&HistoryQuery {
        wallet: vault,
        since: Some(0),
        now: deadline,
        destinations: Vec::new(),
        exclude: None,
        max_records: 10_000,
    })?;
    let refund = recorded
        .outflows
        .iter()
        .map(|(_, f)| f)
        .find(|f| f.to == attacker)
        .expect("the refund is a recorded outflow");
    assert!(refund.amount > eth(1000), "{:?}", refund);

    // What Holdfast refused: with every owner's signature (Holdfast's key used directly),
    // executed at 900 gwei, the refund moves about 900 ETH to the attacker.
    let hash = drain.safe_tx_hash(SafeVersion::V1_4_1, chain_id, vault);
    let sigs = safe::sign(hash, &[holdfast, a.clone(), b])?;
    let call = drain.exec_call(sigs).abi_encode();
    let (vault_before, attacker_before) =
        (node.balance(vault).await?, node.balance(attacker).await?);
    let receipt = safe::send_at_gas_price(
        &node,
        dev_account(4),
        vault,
        call.into(),
        500_000,
        900_000_000_000,
    )
    .await?;
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    let gained = node.balance(attacker).await? - attacker_before;
    assert!(gained >= eth(900), "the attacker got {gained}");
    assert_eq!(vault_before - node.balance(vault).await?, gained + eth(1));
    Ok(())
}
