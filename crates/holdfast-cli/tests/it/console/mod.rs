//! The web console in a real browser (issue 15): Debian's Chromium driven by playwright-core
//! (`tests/console/*.mjs`) against a real `holdfast serve --guard-config` on anvil, with a
//! real Safe 1.4.1 that Holdfast co-signs. Wallets are injected EIP-1193 providers whose
//! signatures are made by viem with real keys. Screenshots of each page: see [`screenshots`].
//!
//! Skipped, saying so, only when Chromium is absent (`scripts/test` installs it).
//!
//! - [`guard`]: approvals, the Bybit pattern, cancel, freeze and unfreeze.
//! - [`hostile`]: hostile data, CSRF, origin and expiry; the live alerts feed.
//! - [`trace`]: the trace page on the testkit's laundering: freeze targets, graph, exports.

use std::path::PathBuf;
use std::process::Command;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::sol_types::SolCall;
use holdfast_testkit::{Anvil, deploy, dev_account, dev_key, dev_signer, workspace_root};
use serde_json::{Value, json};

use crate::gate::{R, Service, holdfast_keystore};

/// The issue's first-load budget: bytes transferred, compressed, document and assets.
pub(super) const FIRST_LOAD_BYTES: u64 = 300_000;

/// Checks every page's first load a script measured (`first_load`: page name → `lib.mjs`'s
/// `firstLoad`, the browser's cache disabled): at most [`FIRST_LOAD_BYTES`] transferred, the
/// bodies compressed by the server (sent smaller than they decode to), and, unless
/// `timed` is false, interactive within 1 s. Prints each, for docs/BENCHMARKS.md.
pub(super) fn first_loads(out: &Value, timed: bool) -> R<()> {
    let loads = out["first_load"].as_object().ok_or("no first_load")?;
    assert!(!loads.is_empty(), "{out}");
    for (page, load) in loads {
        let n = |k: &str| load[k].as_u64().unwrap_or(u64::MAX);
        eprintln!(
            "console first load of {page}: {} bytes transferred, bodies {} bytes encoded / {} decoded, {} resources, interactive after {} ms",
            n("bytes"),
            n("encoded"),
            n("decoded"),
            n("resources"),
            n("interactive_ms"),
        );
        assert!(n("bytes") <= FIRST_LOAD_BYTES, "{page}: {load}");
        assert!(
            n("encoded") < n("decoded"),
            "{page}: the server compressed the page and its assets: {load}"
        );
        assert!(
            n("resources") >= 2,
            "{page}: the stylesheet and scripts: {load}"
        );
        if timed {
            assert!(n("interactive_ms") <= 1_000, "{page}: {load}");
        }
    }
    Ok(())
}

/// Debian's Chromium, or `None` (the test is skipped with a message).
pub(super) fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The holders of the console's tokens: (name, token, roles, dev account of its key).
pub(super) const USERS: [(&str, &str, &str, Option<usize>); 5] = [
    ("alice", "tok-alice", "\"initiator\", \"approver\"", Some(2)),
    ("bob", "tok-bob", "\"approver\"", Some(3)),
    ("carol", "tok-carol", "\"approver\"", Some(4)),
    ("ops", "tok-ops", "\"operator\"", None),
    ("root", "tok-root", "\"admin\"", None),
];

/// The policy's hold: short, so that a hold nobody cancels is released within the test.
pub(super) const HOLD_SECS: u64 = 12;

pub(super) struct World {
    pub(super) node: Anvil,
    pub(super) safe: Address,
    pub(super) chain_id: u64,
    pub(super) dir: tempfile::TempDir,
    pub(super) service: Service,
}

/// Anvil, a funded 2-of-2 Safe (Holdfast's key and dev account 0), a policy: a DELEGATECALL
/// outside a one-address list denied, payments to [`HOSTILE_DEST`] held an hour (a rule named
/// with hostile text), above 2 ETH two approvals of group `approvers` (dev accounts 2, 3, 4;
/// also the unfreeze group, 2 needed), above 1 ETH a hold of [`HOLD_SECS`], other ETH
/// payments allowed; the guard service serving the console.
pub(super) async fn world(simulate: bool) -> R<World> {
    world_with(simulate, &[], false).await
}

/// A destination whose label, and the rule that holds payments to it, carry hostile text.
pub(super) const HOSTILE_DEST: Address = Address::repeat_byte(0xba);
/// Script, markup, a direction override and a look-alike (Cyrillic а) in one string.
pub(super) const HOSTILE: &str = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\"> \u{202E}tnuocca-dlo\u{202C} pаypal";

/// A TagPack labelling [`HOSTILE_DEST`] with [`HOSTILE`] text (YAML double-quoted).
fn hostile_tagpack() -> String {
    let yaml = HOSTILE.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "title: \"{yaml}\"\ncreator: \"{yaml}\"\nconfidence: service_data\ndescription: \"{yaml}\"\nabuse: service_hack\ncurrency: ETH\nlabel: \"{yaml}\"\nlastmod: 2025-02-21\nsource: https://example.org/<script>\ntags:\n- address: \"{HOSTILE_DEST}\"\n"
    )
}

/// The same; `serve_args` are passed to `serve`; `watch`: the watch runs in the server,
/// alerting on critical storage changes of the Safe from the next block on.
pub(super) async fn world_with(simulate: bool, serve_args: &[&str], watch: bool) -> R<World> {
    world_on(Anvil::spawn().await?, simulate, serve_args, watch, &|_| {
        Ok(())
    })
    .await
}

/// The same on `node`; `prepare` runs on the data directory just before `serve` starts
/// (the Safe deployed, intel imported).
pub(super) async fn world_on(
    node: Anvil,
    simulate: bool,
    serve_args: &[&str],
    watch: bool,
    prepare: &(dyn Fn(&std::path::Path) -> R + Sync),
) -> R<World> {
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
    prepare(&data)?;
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
    pub(super) async fn submit(
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

    pub(super) async fn status(&self, id: &str) -> R<Value> {
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
pub(super) fn drive(script: &str, plan: Value) -> R<Value> {
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

/// Where the pages' screenshots go: `HOLDFAST_CONSOLE_SCREENSHOTS` when set (the
/// committed ones in docs/console/ are refreshed with
/// `HOLDFAST_CONSOLE_SCREENSHOTS=docs/console`, relative to the workspace), else the
/// target directory, so a test run leaves the work tree as it was.
pub(super) fn screenshots() -> String {
    let root = workspace_root();
    let dir = match std::env::var_os("HOLDFAST_CONSOLE_SCREENSHOTS") {
        Some(dir) => root.join(dir),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root.join("target"), std::path::PathBuf::from)
            .join("console-screenshots"),
    };
    std::fs::create_dir_all(&dir).expect("the screenshots' directory");
    dir.display().to_string()
}

pub(super) fn eth(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

/// Executes Safe transaction `(to, value, data, CALL)` with Holdfast's co-signature
/// `holdfast_sig` and dev account 0's own, as an owner would.
pub(super) async fn execute(
    w: &World,
    to: Address,
    value: U256,
    hash: B256,
    holdfast_sig: &Bytes,
) -> R<B256> {
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

pub(super) fn users(names: &[&str]) -> Vec<Value> {
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

mod guard;
mod hostile;
mod trace;
