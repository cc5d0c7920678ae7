//! The web console in a real browser (issue 15): Debian's Chromium driven by playwright-core
//! (`tests/console/*.mjs`) against a real `holdfast serve --guard-config` on anvil, with a
//! real Safe 1.4.1 that Holdfast co-signs. Wallets are injected EIP-1193 providers whose
//! signatures are made by viem with real keys. Screenshots of each page go to docs/console/.
//!
//! Skipped, saying so, only when Chromium is absent (`scripts/test` installs it).

use std::path::PathBuf;
use std::process::Command;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::sol_types::SolCall;
use holdfast_testkit::{Anvil, deploy, dev_account, dev_key, dev_signer, workspace_root};
use serde_json::{Value, json};

use crate::gate::{R, Service, holdfast_keystore};

/// Debian's Chromium, or `None` (the test is skipped with a message).
fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The holders of the console's tokens: (name, token, roles, dev account of its key).
const USERS: [(&str, &str, &str, Option<usize>); 5] = [
    ("alice", "tok-alice", "\"initiator\", \"approver\"", Some(2)),
    ("bob", "tok-bob", "\"approver\"", Some(3)),
    ("carol", "tok-carol", "\"approver\"", Some(4)),
    ("ops", "tok-ops", "\"operator\"", None),
    ("root", "tok-root", "\"admin\"", None),
];

struct World {
    node: Anvil,
    safe: Address,
    chain_id: u64,
    dir: tempfile::TempDir,
    service: Service,
}

/// Anvil, a funded 2-of-2 Safe (Holdfast's key and dev account 0), a policy: above 2 ETH
/// two approvals of group `approvers` (dev accounts 2, 3, 4), above 1 ETH a one-hour hold;
/// the guard service serving the console.
async fn world(simulate: bool) -> R<World> {
    let node = Anvil::spawn().await?;
    let a = dev_account(0);
    let infra = deploy::safe_141(&node, a).await?;
    let safe = infra.create_safe(&node, a, &[dev_account(7), a], 2).await?;
    node.rpc(
        "anvil_setBalance",
        json!([
            safe,
            format!(
                "{:#x}",
                U256::from(100u64) * U256::from(10u64).pow(U256::from(18))
            )
        ]),
    )
    .await?;
    let chain_id = node.chain_id().await?;
    let dir = tempfile::tempdir()?;
    holdfast_keystore(dir.path())?;
    let members = [2usize, 3, 4]
        .iter()
        .map(|i| format!("\"{}\"", dev_account(*i)))
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::write(
        dir.path().join("policy.toml"),
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
[groups.approvers]
members = [{members}]
[[rule]]
name = "big"
when = {{ asset_in = ["ETH"], amount_above = "2" }}
action = "require_approvals"
approvals = 2
group = "approvers"
[[rule]]
name = "medium"
when = {{ asset_in = ["ETH"], amount_above = "1" }}
action = "hold"
hold = "1h"
"#
        ),
    )?;
    let tokens: String = USERS
        .iter()
        .map(|(name, tok, roles, key)| {
            let address = key
                .map(|k| format!("address = \"{}\"\n", dev_account(k)))
                .unwrap_or_default();
            format!(
                "[[token]]\nname = \"{name}\"\nsha256 = \"{}\"\nroles = [{roles}]\n{address}",
                holdfast_gate::config::token_hash(tok)
            )
        })
        .collect();
    let config = dir.path().join("gate.toml");
    std::fs::write(
        &config,
        format!(
            "[gate]\npolicy = \"policy.toml\"\nrpc = \"{}\"\nsimulate = {simulate}\nrelease_interval = \"1s\"\n[signer]\nkeystore = \"keys/holdfast\"\npassword_file = \"keys/password\"\n{tokens}",
            node.http_url()
        ),
    )?;
    let service = Service::start(&dir.path().join("data"), &config, None)?;
    service.wait_ready(&reqwest::Client::new()).await?;
    Ok(World {
        node,
        safe,
        chain_id,
        dir,
        service,
    })
}

impl World {
    /// Submits a Safe transaction as `token`; returns the service's answer.
    async fn submit(
        &self,
        token: &str,
        to: Address,
        value: U256,
        data: &str,
        operation: u8,
    ) -> R<Value> {
        let r = reqwest::Client::new()
            .post(format!("{}/v1/guard/requests", self.service.url()))
            .bearer_auth(token)
            .json(&json!({"safe": self.safe, "chainId": self.chain_id, "to": to, "value": value.to_string(), "data": data, "operation": operation, "nonce": 0}))
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await?;
        if !status.is_success() {
            return Err(format!("submit answered {status}: {v}").into());
        }
        Ok(v)
    }

    async fn status(&self, id: &str) -> R<Value> {
        Ok(reqwest::Client::new()
            .get(format!("{}/v1/guard/requests/{id}", self.service.url()))
            .bearer_auth("tok-root")
            .send()
            .await?
            .json()
            .await?)
    }
}

/// Runs `script` (tests/console/) in Node with `plan`; returns what it printed last (JSON).
fn drive(script: &str, plan: Value) -> R<Value> {
    let root = workspace_root();
    let path = root.join("crates/holdfast-cli/tests/console").join(script);
    let out = Command::new("node")
        .arg(&path)
        .env("HOLDFAST_CONSOLE_PLAN", plan.to_string())
        .current_dir(&root)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{script} failed ({}): {stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let last = stdout.lines().last().unwrap_or("");
    Ok(serde_json::from_str(last).map_err(|e| format!("{script} printed {last:?}: {e}"))?)
}

fn screenshots() -> String {
    workspace_root().join("docs/console").display().to_string()
}

fn eth(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

/// Executes Safe transaction `(to, value, data, CALL)` with Holdfast's co-signature
/// `holdfast_sig` and dev account 0's own, as an owner would.
async fn execute(w: &World, to: Address, value: U256, hash: B256, holdfast_sig: &Bytes) -> R<B256> {
    let owner = dev_signer(0)?;
    let own = holdfast_testkit::safe::sign(hash, std::slice::from_ref(&owner))?;
    let mut sigs = [
        (dev_account(7), holdfast_sig.to_vec()),
        (dev_account(0), own.to_vec()),
    ];
    sigs.sort_by_key(|(a, _)| *a);
    let signatures: Vec<u8> = sigs.into_iter().flat_map(|(_, s)| s).collect();
    let call = holdfast_guard::abi::safe::execTransactionCall {
        to,
        value,
        data: Bytes::new(),
        operation: 0,
        safeTxGas: U256::ZERO,
        baseGas: U256::ZERO,
        gasPrice: U256::ZERO,
        gasToken: Address::ZERO,
        refundReceiver: Address::ZERO,
        signatures: signatures.into(),
    };
    Ok(w.node
        .call_ok(dev_account(0), w.safe, U256::ZERO, call.abi_encode().into())
        .await?)
}

fn users(names: &[&str]) -> Vec<Value> {
    names
        .iter()
        .filter_map(|n| USERS.iter().find(|u| u.0 == *n))
        .map(|(name, tok, _, key)| json!({"name": name, "token": tok, "key": key.map(|k| dev_key(k).to_string())}))
        .collect()
}

macro_rules! need_chromium {
    () => {
        match chromium() {
            Some(c) => c,
            None => {
                eprintln!(
                    "SKIPPED: Chromium is not installed (scripts/install-chromium installs Debian's chromium); the console's browser tests did not run"
                );
                return Ok(());
            }
        }
    };
}

/// Must hold (a): a request needing two approvals is created through the API; its
/// initiator, although a member of the group, is refused and sees why; two approvers sign
/// in and approve through their wallets; Holdfast co-signs, and the Safe transaction runs on
/// anvil with that co-signature.
#[tokio::test(flavor = "multi_thread")]
async fn two_approvers_approve_in_the_browser_and_the_safe_transaction_executes() -> R {
    let chromium = need_chromium!();
    let w = world(false).await?;
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
    assert_eq!(out["csp"], json!([]), "no CSP violation: {out}");
    assert_eq!(out["errors"], json!([]), "no script error: {out}");

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
