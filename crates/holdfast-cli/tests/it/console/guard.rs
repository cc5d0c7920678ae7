//! Approvals through wallets, the Bybit pattern's page, cancel, freeze and unfreeze.

use alloy::primitives::{Address, B256, Bytes, U256};
use holdfast_testkit::{deploy, dev_account, dev_signer};
use serde_json::{Value, json};

use super::{HOLD_SECS, chromium, drive, eth, execute, screenshots, users, world};
use crate::gate::R;

/// Must hold (a): a request needing two approvals is created through the API; its
/// initiator, although a member of the group, is refused and sees why; two approvers sign
/// in and approve through their wallets (one with the keyboard alone); Holdfast co-signs,
/// and the Safe transaction runs on anvil with that co-signature. Every page visited passes
/// an axe-core scan without serious or critical violations.
#[tokio::test(flavor = "multi_thread")]
async fn two_approvers_approve_in_the_browser_and_the_safe_transaction_executes() -> R {
    let chromium = need_chromium!();
    let w = world(true).await?;
    let dest = Address::repeat_byte(0x5e);
    let v = w.submit("tok-alice", dest, eth(3), "0x", 0).await?;
    assert_eq!(v["state"], "awaiting_approvals", "{v}");
    let id = v["id"].as_str().ok_or("no id")?.to_owned();
    let out = drive(
        "approval.mjs",
        json!({
            "chromium": chromium,
            "base": w.service.url(),
            "request": id,
            "approvers": users(&["alice", "bob", "carol"]),
            "admin": "tok-root",
            "screenshots": screenshots(),
        }),
    )?;
    let answers = &out["answers"];
    let alice = answers["alice"].as_str().unwrap_or("");
    assert!(
        alice.starts_with("Refused:")
            && alice.contains("initiated this request and cannot approve it"),
        "the initiator is refused, and told why: {out}"
    );
    assert!(
        answers["bob"]
            .as_str()
            .is_some_and(|a| a.starts_with("Accepted") && a.contains("1 of 2")),
        "{out}"
    );
    assert!(
        answers["carol"]
            .as_str()
            .is_some_and(|a| a.starts_with("Accepted") && a.contains("signed")),
        "{out}"
    );
    assert_eq!(out["final_state"], "signed", "{out}");
    // Every page's first load is small and quick.
    super::first_loads(&out, true)?;
    // Amounts in the policy's units: the call sends 3 ETH; the simulation moves 3 ETH.
    assert!(
        out["calls"]
            .as_str()
            .is_some_and(|c| c.contains("sending 3 ETH")),
        "{out}"
    );
    let deltas = out["deltas"].as_str().unwrap_or("");
    assert!(
        deltas.contains("-3 ETH") && deltas.contains(&format!("{dest:#x}")),
        "{out}"
    );
    assert_eq!(out["csp"], json!([]), "no CSP violation: {out}");
    assert_eq!(out["errors"], json!([]), "no script error: {out}");
    assert_eq!(
        out["axe"],
        json!([]),
        "axe: no serious or critical violation"
    );

    // The audit log page: the whole chain verified, every entry on the page and exported.
    let log: Value = reqwest::Client::new()
        .get(format!("{}/v1/guard/audit", w.service.url()))
        .bearer_auth("tok-root")
        .send()
        .await?
        .json()
        .await?;
    let n = log.as_array().map_or(0, Vec::len);
    assert!(n >= 7, "{log}");
    assert!(
        out["verification"]
            .as_str()
            .is_some_and(|v| v.starts_with(&format!("Intact: all {n} entries verified"))),
        "{out}"
    );
    assert_eq!(out["audit_rows"], n, "{out}");
    assert_eq!(out["export_lines"], n, "{out}");

    let s = w.status(&id).await?;
    assert_eq!(s["state"], "signed", "{s}");
    assert_eq!(
        s["approvals"]["have"].as_array().map(Vec::len),
        Some(2),
        "{s}"
    );
    let sig: Bytes = serde_json::from_value(s["signature"].clone())?;
    let hash: B256 = serde_json::from_value(s["payload_hash"].clone())?;
    let before = w.node.balance(dest).await?;
    execute(&w, dest, eth(3), hash, &sig).await?;
    assert_eq!(
        w.node.balance(dest).await? - before,
        eth(3),
        "the Safe paid"
    );
    drop(w.dir);
    Ok(())
}

/// Must hold (b): the Bybit pattern — a token `transfer` run as a DELEGATECALL into code that
/// rewrites the Safe's singleton — shows on its page as a DELEGATECALL with the singleton
/// write from the simulation, and the domain hash, message hash and safeTxHash shown are
/// the ones the Safe contract itself computes on anvil.
#[tokio::test(flavor = "multi_thread")]
async fn the_bybit_pattern_page_shows_the_delegatecall_the_singleton_write_and_the_safes_own_hashes()
-> R {
    let chromium = need_chromium!();
    let w = world(true).await?;
    let attacker = dev_account(9);
    let implementation = deploy::holdfast(&w.node, attacker, "BybitStyleImpl").await?;
    // `transfer(implementation, 0)`: what the signers were shown as a token transfer.
    let data: Bytes = [
        &alloy::primitives::keccak256("transfer(address,uint256)")[..4],
        &implementation.into_word()[..],
        &[0u8; 32][..],
    ]
    .concat()
    .into();
    let v = w
        .submit(
            "tok-alice",
            implementation,
            U256::ZERO,
            &data.to_string(),
            1,
        )
        .await?;
    assert_eq!(v["decision"], "deny", "{v}");
    let id = v["id"].as_str().ok_or("no id")?.to_owned();
    let out = drive(
        "bybit.mjs",
        json!({"chromium": chromium, "base": w.service.url(), "request": id, "token": "tok-bob", "screenshots": screenshots()}),
    )?;
    super::first_loads(&out, true)?;
    let calls = out["calls"].as_str().unwrap_or("");
    assert!(calls.starts_with("DELEGATECALL"), "{out}");
    assert!(
        calls.contains(&implementation.to_string().to_lowercase()) && calls.contains("transfer"),
        "{out}"
    );
    let writes = out["critical_writes"].as_str().unwrap_or("");
    assert!(
        writes.contains("safe_singleton"),
        "the singleton write: {out}"
    );
    assert!(
        writes.contains(
            &format!("{:x}", implementation)
                .trim_start_matches("0x")
                .to_string()
        ),
        "the singleton becomes the attacker's code: {out}"
    );
    // The Safe's own hashes, on anvil.
    let tx = holdfast_testkit::safe::SafeTx::delegatecall(implementation, data);
    let nonce = holdfast_testkit::safe::nonce(&w.node, w.safe).await?;
    let contract_hash =
        holdfast_testkit::safe::transaction_hash(&w.node, w.safe, &tx, nonce).await?;
    let domain = B256::from_slice(
        &w.node
            .call(
                w.safe,
                alloy::primitives::keccak256("domainSeparator()")[..4]
                    .to_vec()
                    .into(),
            )
            .await?,
    );
    let shown = |k: &str| -> R<B256> { Ok(out[k].as_str().ok_or("missing")?.parse::<B256>()?) };
    assert_eq!(shown("domain_hash")?, domain, "{out}");
    assert_eq!(shown("safe_tx_hash")?, contract_hash, "{out}");
    let message = shown("message_hash")?;
    let rebuilt = alloy::primitives::keccak256(
        [&[0x19u8, 0x01][..], domain.as_slice(), message.as_slice()].concat(),
    );
    assert_eq!(
        rebuilt, contract_hash,
        "the message hash is the SafeTx struct hash: {out}"
    );
    assert_eq!(
        out["copy"],
        json!([domain, message, contract_hash]),
        "copy buttons copy the values shown"
    );
    assert_eq!(out["csp"], json!([]), "{out}");
    assert_eq!(out["errors"], json!([]), "{out}");
    assert_eq!(
        out["axe"],
        json!([]),
        "axe: no serious or critical violation"
    );
    Ok(())
}

/// Must hold (c): a hold cancelled from its page is never signed, even after its release
/// time; a freeze from the page stops the next co-signature (the quorum completed after it
/// signs nothing); the freeze is lifted from the console by a quorum of unfreeze approvals
/// signed with the members' wallets, and signing works again.
#[tokio::test(flavor = "multi_thread")]
async fn a_hold_cancelled_from_the_page_never_signs_and_a_freeze_from_the_page_stops_the_next_cosignature()
-> R {
    let chromium = need_chromium!();
    let w = world(false).await?;
    let dest = Address::repeat_byte(0x5e);
    let held = w
        .submit("tok-alice", dest, eth(1) + U256::from(1u64), "0x", 0)
        .await?;
    assert_eq!(held["state"], "held", "{held}");
    // A control hold, left alone: released and signed, so the cancelled one would have been.
    let control = w
        .submit("tok-alice", dest, eth(1) + U256::from(2u64), "0x", 0)
        .await?;
    let awaiting = w.submit("tok-alice", dest, eth(3), "0x", 0).await?;
    assert_eq!(awaiting["state"], "awaiting_approvals", "{awaiting}");
    let id = |v: &Value| v["id"].as_str().unwrap_or_default().to_owned();
    let plan = |step: &str| json!({"chromium": chromium, "base": w.service.url(), "token": "tok-ops", "step": step, "held": id(&held), "awaiting": id(&awaiting), "screenshots": screenshots()});
    let out = drive("cancel_freeze.mjs", plan("cancel"))?;
    assert_eq!(out["cancelled_state"], "cancelled", "{out}");
    assert_eq!(out["early_csp"], json!([]), "{out}");
    assert_eq!(
        out["cancel_focused"], "cancel",
        "cancelled by keyboard: {out}"
    );
    assert_eq!(
        out["axe"],
        json!([]),
        "axe: no serious or critical violation"
    );
    assert!(
        out["countdown"].as_str().is_some_and(|c| c.ends_with(" s")),
        "a live countdown: {out}"
    );
    assert_eq!(out["csp"], json!([]), "{out}");
    assert_eq!(out["errors"], json!([]), "{out}");
    // Past the holds' release time and a release round: the control hold is signed, the
    // cancelled one never is.
    let start = std::time::Instant::now();
    while w.status(&id(&control)).await?["state"] != "signed" {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(HOLD_SECS + 20),
            "the control hold was never released"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let c = w.status(&id(&held)).await?;
    assert_eq!(c["state"], "cancelled", "{c}");
    assert!(c.get("signature").is_none(), "{c}");

    let out = drive("cancel_freeze.mjs", plan("freeze"))?;
    assert_eq!(
        out["axe"],
        json!([]),
        "axe: no serious or critical violation"
    );
    assert!(
        out["frozen"].as_str().is_some_and(|f| f.contains("frozen")),
        "{out}"
    );
    assert_eq!(out["csp"], json!([]), "{out}");
    assert_eq!(out["errors"], json!([]), "{out}");
    // The freeze holds: the quorum completed after it signs nothing.
    let payload: B256 = serde_json::from_value(awaiting["payload_hash"].clone())?;
    let mut last = Value::Null;
    for approver in [3usize, 4] {
        let a = holdfast_guard::approval::SignedApproval::sign(
            &dev_signer(approver)?,
            id(&awaiting).parse()?,
            payload,
            w.chain_id,
            holdfast_guard::approval::ApprovalAction::Approve,
            holdfast_gate::service::now() + 3600,
        )?;
        last = reqwest::Client::new()
            .post(format!(
                "{}/v1/guard/requests/{}/approvals",
                w.service.url(),
                id(&awaiting)
            ))
            .bearer_auth("tok-bob")
            .json(&a)
            .send()
            .await?
            .json()
            .await?;
    }
    let a = w.status(&id(&awaiting)).await?;
    assert!(
        a.get("signature").is_none(),
        "frozen: not co-signed: {a} (answer {last})"
    );
    assert_ne!(a["state"], "signed", "{a}");

    // Lifting the freeze from the console: two members of the group sign unfreeze approvals
    // with their wallets, an admin lifts the freeze with them; signing works again.
    let small = |v: &Value| v["state"].as_str().unwrap_or_default().to_owned();
    let denied = w
        .submit("tok-alice", dest, eth(1) / U256::from(10u64), "0x", 0)
        .await?;
    assert_eq!(denied["rule"], "emergency freeze", "{denied}");
    let out = drive(
        "cancel_freeze.mjs",
        json!({"chromium": chromium, "base": w.service.url(), "step": "unfreeze", "wallet": w.safe, "members": users(&["bob", "carol"]), "admin": "tok-root", "screenshots": screenshots()}),
    )?;
    super::first_loads(&out, true)?;
    assert!(
        out["before"]
            .as_str()
            .is_some_and(|b| b.starts_with("Signing is frozen")),
        "{out}"
    );
    assert!(
        out["after"]
            .as_str()
            .is_some_and(|a| a.contains("Signing is not frozen")),
        "{out}"
    );
    assert_eq!(out["csp"], json!([]), "{out}");
    assert_eq!(out["errors"], json!([]), "{out}");
    assert_eq!(
        out["axe"],
        json!([]),
        "axe: no serious or critical violation"
    );
    let after = w
        .submit("tok-alice", dest, eth(1) / U256::from(10u64), "0x", 0)
        .await?;
    assert_eq!(small(&after), "signed", "{after}");
    Ok(())
}
