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

/// The policy's hold: short, so that a hold nobody cancels is released within the test.
const HOLD_SECS: u64 = 12;

struct World {
    node: Anvil,
    safe: Address,
    chain_id: u64,
    dir: tempfile::TempDir,
    service: Service,
}

/// Anvil, a funded 2-of-2 Safe (Holdfast's key and dev account 0), a policy: a DELEGATECALL
/// outside a one-address list denied, payments to [`HOSTILE_DEST`] held an hour (a rule named
/// with hostile text), above 2 ETH two approvals of group `approvers` (dev accounts 2, 3, 4;
/// also the unfreeze group, 2 needed), above 1 ETH a hold of [`HOLD_SECS`], other ETH
/// payments allowed; the guard service serving the console.
async fn world(simulate: bool) -> R<World> {
    world_with(simulate, &[], false).await
}

/// A destination whose label, and the rule that holds payments to it, carry hostile text.
const HOSTILE_DEST: Address = Address::repeat_byte(0xba);
/// Script, markup, a direction override and a look-alike (Cyrillic а) in one string.
const HOSTILE: &str = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\"> \u{202E}tnuocca-dlo\u{202C} pаypal";

/// A TagPack labelling [`HOSTILE_DEST`] with [`HOSTILE`] text (YAML double-quoted).
fn hostile_tagpack() -> String {
    let yaml = HOSTILE.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "title: \"{yaml}\"\ncreator: \"{yaml}\"\nconfidence: service_data\ndescription: \"{yaml}\"\nabuse: service_hack\ncurrency: ETH\nlabel: \"{yaml}\"\nlastmod: 2025-02-21\nsource: https://example.org/<script>\ntags:\n- address: \"{HOSTILE_DEST}\"\n"
    )
}

/// The same; `serve_args` are passed to `serve`; `watch`: the watch runs in the server,
/// alerting on critical storage changes of the Safe from the next block on.
async fn world_with(simulate: bool, serve_args: &[&str], watch: bool) -> R<World> {
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
    // The hostile text as a TOML basic string (its escapes are TOML's).
    let hostile_rule = format!(
        "\"{}\"",
        HOSTILE
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\u{202E}', "\\u202E")
            .replace('\u{202C}', "\\u202C")
    );
    let data = dir.path().join("data");
    let pack = dir.path().join("hostile.yaml");
    std::fs::write(&pack, hostile_tagpack())?;
    let o = crate::holdfast(&data, &["intel", "import", &pack.display().to_string()]);
    if !o.status.success() {
        return Err(format!("intel import: {}", crate::stderr(&o)).into());
    }
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
[lists]
delegatecall-targets = ["0x0000000000000000000000000000000000000001"]
hostile = ["{HOSTILE_DEST}"]
[[rule]]
name = "DELEGATECALL outside Safe's libraries"
when = {{ delegatecall_to_unlisted = "delegatecall-targets" }}
action = "deny"
[[rule]]
name = {hostile_rule}
when = {{ destination_in = "hostile" }}
action = "hold"
hold = "1h"
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
hold = "{HOLD_SECS}s"
[[rule]]
name = "small"
when = {{ asset_in = ["ETH"] }}
action = "allow"
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
            "[gate]\npolicy = \"policy.toml\"\nrpc = \"{}\"\nsimulate = {simulate}\nrelease_interval = \"1s\"\nunfreeze_group = \"approvers\"\nunfreeze_approvals = 2\n[signer]\nkeystore = \"keys/holdfast\"\npassword_file = \"keys/password\"\n{tokens}",
            node.http_url()
        ),
    )?;
    let mut args: Vec<String> = serve_args.iter().map(|a| (*a).to_owned()).collect();
    if watch {
        let path = dir.path().join("watch.toml");
        std::fs::write(
            &path,
            format!(
                "[[chain]]\nname = \"anvil\"\nrpc = \"{}\"\nchain_id = {chain_id}\nconfirmations = 0\nstart_block = {}\n\n[[set]]\nname = \"treasury\"\naddresses = [\"{safe}\"]\n\n[[rule]]\nname = \"treasury-takeover\"\ndetector = \"critical_storage\"\ntargets = [\"treasury\"]\nseverity = \"critical\"\n",
                node.ws_url(),
                node.block_number().await? + 1
            ),
        )?;
        args.extend(["--watch-config".to_owned(), path.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let service = Service::start_with(&data, &config, None, &args)?;
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
    // A page's load is small and quick (its assets are fetched again each time: they are
    // served `no-cache` without validators).
    for (page, load) in out["first_load"].as_object().ok_or("first_load")? {
        let bytes = load["bytes"].as_u64().unwrap_or(u64::MAX);
        let interactive = load["interactive_ms"].as_u64().unwrap_or(u64::MAX);
        eprintln!(
            "console first load of the {page} page: {bytes} bytes, interactive after {interactive} ms"
        );
        assert!(bytes <= 300_000, "{page}: {load}");
        assert!(interactive <= 1_000, "{page}: {load}");
    }
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

/// The console's session cookie and CSRF token for `token`, signed in as a script would.
async fn session(base: &str, token: &str) -> R<(String, String)> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let r = client
        .post(format!("{base}/console/sign-in"))
        .header("origin", base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await?;
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or("no session cookie")?
        .to_owned();
    let page = client
        .get(format!("{base}/console/requests"))
        .header("cookie", &cookie)
        .send()
        .await?
        .text()
        .await?;
    let csrf = page
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .ok_or("no csrf token on the page")?
        .to_owned();
    Ok((cookie, csrf))
}

/// Must hold (d): hostile labels (an imported TagPack) and a hostile rule name render as
/// text — no script runs, no element is made of them, 0 CSP violations; state changes
/// without the session's CSRF token, or from another origin, are refused and change
/// nothing; an expired session is sent back to sign-in.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_data_is_inert_and_csrf_origin_and_expiry_are_enforced() -> R {
    let chromium = need_chromium!();
    const SESSION_SECS: u64 = 5;
    let w = world_with(false, &["--console-session-ttl", "5s"], false).await?;
    let v = w
        .submit(
            "tok-alice",
            HOSTILE_DEST,
            eth(1) / U256::from(2u64),
            "0x",
            0,
        )
        .await?;
    assert_eq!(v["state"], "held", "{v}");
    let id = v["id"].as_str().ok_or("no id")?.to_owned();
    let out = drive(
        "hostile.mjs",
        json!({"chromium": chromium, "base": w.service.url(), "request": id, "token": "tok-ops", "session_secs": SESSION_SECS, "address": HOSTILE_DEST, "screenshots": screenshots()}),
    )?;
    assert_eq!(out["screen_risk"], "high", "{out}");
    for page in ["queue", "request", "screen"] {
        let p = &out[page];
        assert_eq!(
            p["pwned"],
            Value::Null,
            "no script ran on the {page}: {out}"
        );
        assert_eq!(p["imgs"], 0, "{page}: {out}");
        assert_eq!(p["inline_handlers"], 0, "{page}: {out}");
        assert_eq!(
            p["scripts"],
            json!(["/console/assets/console.js"]),
            "only the console's own script: {page}: {out}"
        );
        let text = p["text"].as_str().unwrap_or("");
        assert!(
            text.contains(
                "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">"
            ),
            "the hostile text is shown as text on the {page}: {text}"
        );
        assert!(
            text.contains("\u{27E6}U+202E\u{27E7}") && !text.contains('\u{202E}'),
            "the direction override is shown, not applied, on the {page}: {text}"
        );
        assert!(text.contains("pаypal"), "{page}: {text}");
    }
    assert!(
        out["request"]["text"]
            .as_str()
            .is_some_and(|t| t.matches("<script>window.__pwned=1</script>").count() >= 2),
        "the label (counterparties) and the rule name: {out}"
    );
    assert_eq!(out["dialogs"], json!([]), "{out}");
    assert_eq!(out["errors"], json!([]), "{out}");
    assert_eq!(out["csp"], json!([]), "0 CSP violations: {out}");
    assert_eq!(
        out["axe"],
        json!([]),
        "axe: no serious or critical violation"
    );
    assert_eq!(out["form_without_csrf"], 403, "{out}");
    assert_eq!(out["api_without_csrf"][0], 403, "{out}");
    assert_eq!(out["before_expiry"], "/console/requests", "{out}");
    assert_eq!(out["after_expiry"], "/console/sign-in", "{out}");

    // From another origin, with a valid session and CSRF token: refused.
    let base = w.service.url();
    let (cookie, csrf) = session(&base, "tok-ops").await?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let form = |origin: Option<&str>, path: &str| {
        let mut r = client
            .post(format!("{base}{path}"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}&reason=drill"));
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r
    };
    for (origin, path) in [
        (Some("http://evil.example"), "/console/freeze".to_owned()),
        (None, "/console/freeze".to_owned()),
        (
            Some("http://evil.example"),
            format!("/console/requests/{id}/cancel"),
        ),
    ] {
        let r = form(origin, &path).send().await?;
        assert_eq!(r.status(), 403, "{origin:?} {path}");
    }
    let r = client
        .post(format!("{base}/v1/guard/requests/{id}/cancel"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .header("origin", "http://evil.example")
        .json(&json!({"reason": "drill"}))
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    // Nothing changed: no freeze, no cancel in the audit log.
    let audit: Value = reqwest::Client::new()
        .get(format!("{base}/v1/guard/audit"))
        .bearer_auth("tok-root")
        .send()
        .await?
        .json()
        .await?;
    let kinds: Vec<&str> = audit
        .as_array()
        .ok_or("audit")?
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(
        !kinds.iter().any(|k| *k == "freeze" || *k == "cancel"),
        "{kinds:?}"
    );
    assert_eq!(w.status(&id).await?["state"], "held");
    // The same form from this origin is accepted (the token and cookie were good).
    let r = form(Some(&base), &format!("/console/requests/{id}/cancel"))
        .send()
        .await?;
    assert_eq!(r.status(), 303);
    assert_eq!(w.status(&id).await?["state"], "cancelled");
    Ok(())
}

/// Issue 15, alerts: a takeover of the Safe that bypasses the guard (its owners' keys, a
/// DELEGATECALL rewriting the singleton) is raised by the watch inside the server and
/// appears in the open console feed within 1 s of the block being mined; an operator
/// acknowledges it from the page.
#[tokio::test(flavor = "multi_thread")]
async fn a_takeover_alert_appears_in_the_live_feed_within_a_second_and_is_acknowledged() -> R {
    let chromium = need_chromium!();
    let w = world_with(false, &[], true).await?;
    let attacker = dev_account(9);
    let implementation = deploy::holdfast(&w.node, attacker, "BybitStyleImpl").await?;
    let data: Bytes = [
        &alloy::primitives::keccak256("transfer(address,uint256)")[..4],
        &implementation.into_word()[..],
        &[0u8; 32][..],
    ]
    .concat()
    .into();
    let ready = w.dir.path().join("feed-ready");
    let plan = json!({"chromium": chromium, "base": w.service.url(), "token": "tok-ops", "ready_file": ready, "screenshots": screenshots()});
    let driver =
        tokio::task::spawn_blocking(move || drive("alerts.mjs", plan).map_err(|e| e.to_string()));
    let start = std::time::Instant::now();
    while !ready.exists() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "the feed never opened"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(std::fs::read_to_string(&ready)?, "ready");
    // The takeover, signed by the Safe's owners' own keys (Holdfast's key among them: a
    // compromise of the keys, not of the guard's decision).
    let tx = holdfast_testkit::safe::SafeTx::delegatecall(implementation, data);
    let now_ms = || -> R<i64> {
        Ok(i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis(),
        )?)
    };
    // Measured from before the transaction is sent (anvil mines it at once): an upper bound
    // of the time from the block to the alert on the screen.
    let sent_at = now_ms()?;
    holdfast_testkit::safe::exec_signed(
        &w.node,
        w.safe,
        &tx,
        &[dev_signer(7)?, dev_signer(0)?],
        dev_account(0),
    )
    .await?;
    let mined_by = now_ms()?;
    let out = driver.await??;
    let received = out["received_at"].as_i64().ok_or("no arrival time")?;
    eprintln!(
        "console feed: the alert appeared at most {} ms after its block (the transaction was sent; its receipt came {} ms later)",
        received - sent_at,
        mined_by - sent_at
    );
    assert!(
        received - sent_at <= 1000,
        "the alert appeared {} ms after the transaction was sent: {out}",
        received - sent_at
    );
    let row = out["row"].as_str().unwrap_or("");
    assert!(
        row.contains("treasury-takeover") && row.contains("critical"),
        "{out}"
    );
    assert!(
        out["after_ack"]
            .as_str()
            .is_some_and(|t| t.contains("acknowledged by ops")),
        "{out}"
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
