//! The guard service as it runs: `holdfast serve --guard-config`, killed with SIGKILL at
//! random points during 1 000 operations mixing submissions, holds, cancels, approvals and
//! releases. After the last restart nothing acknowledged is lost, no hold is released
//! twice, no request is signed twice, every signature is Holdfast's over the request's own
//! safeTxHash, and `holdfast audit verify` passes. Then the same with two instances sharing
//! one PostgreSQL, killed in turn.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, Bytes, Signature, U256};
use holdfast_guard::approval::{ApprovalAction, SignedApproval};
use holdfast_testkit::{Anvil, deploy, dev_account, dev_key, dev_signer, workspace_root};
use serde_json::{Value, json};

pub(crate) type R<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn eth_milli(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(15))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

pub(crate) struct Service {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
}

impl Service {
    pub(crate) fn start(data: &Path, config: &Path, store: Option<&str>) -> R<Service> {
        Service::start_with(data, config, store, &[])
    }

    /// The same with more arguments for `serve`.
    pub(crate) fn start_with(
        data: &Path,
        config: &Path,
        store: Option<&str>,
        extra: &[&str],
    ) -> R<Service> {
        let port = free_port();
        let mut args = vec![
            "--data-dir".to_owned(),
            data.display().to_string(),
            "serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--guard-config".into(),
            config.display().to_string(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        if let Some(s) = store {
            args.splice(0..0, ["--store".to_owned(), s.to_owned()]);
        }
        let mut s = Service {
            child: None,
            port,
            args,
        };
        s.spawn()?;
        Ok(s)
    }

    fn spawn(&mut self) -> R {
        // `HOLDFAST_SERVE_BIN`: another build of `holdfast` to serve (a release build, for
        // the console's benchmarks); the test's own build otherwise.
        let bin = std::env::var_os("HOLDFAST_SERVE_BIN")
            .map_or_else(|| env!("CARGO_BIN_EXE_holdfast").into(), PathBuf::from);
        let child = Command::new(bin)
            .args(&self.args)
            .env("HOLDFAST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    pub(crate) async fn wait_ready(&self, client: &reqwest::Client) -> R {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if client
                .get(format!("{}/healthz", self.url()))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err("the service did not come up".into())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

struct World {
    /// Kept alive for the test's duration.
    _node: Anvil,
    safe: Address,
    chain_id: u64,
    dests: Vec<Address>,
    dir: tempfile::TempDir,
    config: PathBuf,
    holdfast: Address,
}

const TOKENS: [(&str, &str); 4] = [
    ("initiator", "tok-init"),
    ("operator", "tok-ops"),
    ("approver", "tok-appr"),
    ("admin", "tok-admin"),
];

/// Holdfast's key (dev account 7) in an encrypted keystore under `dir/keys` (`holdfast`,
/// password in `password`), as an operator would set it up (cast).
pub(crate) fn holdfast_keystore(dir: &Path) -> R {
    let cast = workspace_root().join("node_modules/@foundry-rs/cast-linux-amd64/bin/cast");
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys)?;
    let out = Command::new(&cast)
        .args([
            "wallet",
            "import",
            "holdfast",
            "--private-key",
            &dev_key(7).to_string(),
            "--unsafe-password",
            "correct horse",
            "--keystore-dir",
        ])
        .arg(&keys)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "cast wallet import: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    std::fs::write(keys.join("password"), "correct horse\n")?;
    Ok(())
}

async fn world() -> R<World> {
    let node = Anvil::spawn().await?;
    let holdfast = dev_account(7);
    let a = dev_account(0);
    let infra = deploy::safe_141(&node, a).await?;
    let safe = infra.create_safe(&node, a, &[holdfast, a], 2).await?;
    let chain_id = node.chain_id().await?;
    let dests: Vec<Address> = (10..30u8).map(Address::repeat_byte).collect();
    let dir = tempfile::tempdir()?;
    holdfast_keystore(dir.path())?;
    let list = dests
        .iter()
        .map(|d| format!("\"{d}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let approvers = [dev_account(2), dev_account(3), dev_account(4)]
        .iter()
        .map(|d| format!("\"{d}\""))
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
[lists]
dest = [{list}]
[groups.approvers]
members = [{approvers}]
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
hold = "1s"
[[rule]]
name = "ok"
when = {{ destination_in = "dest" }}
action = "allow"
"#
        ),
    )?;
    let tokens: String = TOKENS
        .iter()
        .map(|(role, tok)| {
            format!(
                "[[token]]\nname = \"{role}\"\nsha256 = \"{}\"\nroles = [\"{role}\"]\n",
                holdfast_gate::config::token_hash(tok)
            )
        })
        .collect();
    let config = dir.path().join("gate.toml");
    std::fs::write(
        &config,
        format!(
            "[gate]\npolicy = \"policy.toml\"\nrpc = \"{}\"\nsimulate = false\nrelease_interval = \"1s\"\n[signer]\nkeystore = \"keys/holdfast\"\npassword_file = \"keys/password\"\n{tokens}",
            node.http_url()
        ),
    )?;
    Ok(World {
        _node: node,
        safe,
        chain_id,
        dests,
        dir,
        config,
        holdfast,
    })
}

/// What the driver was told by the service (acknowledged), per request id.
#[derive(Debug, Default, Clone)]
struct Known {
    kind: &'static str,
    cancelled: bool,
    approvals: u32,
}

async fn call(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let req = match body {
        Some(b) => client.post(url).json(&b),
        None => client.get(url),
    };
    let r = req
        .bearer_auth(token)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.ok()?))
}

/// Drives `ops` operations against the services, killing one of them at random points.
async fn drive(
    w: &World,
    services: &mut [Service],
    ops: usize,
    seed: u64,
) -> R<HashMap<String, Known>> {
    let client = reqwest::Client::new();
    for s in services.iter() {
        s.wait_ready(&client).await?;
    }
    let mut rng = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut known: HashMap<String, Known> = HashMap::new();
    let mut held: Vec<String> = Vec::new();
    let mut awaiting: Vec<(String, B256)> = Vec::new();
    let mut kills = 0;
    let mut i = 0;
    while i < ops {
        let which = (next() % services.len() as u64) as usize;
        // Kill -9 one instance at a random point (about every 60 operations).
        if next() % 60 == 0 {
            services[which].kill();
            kills += 1;
            services[which].spawn()?;
            services[which].wait_ready(&client).await?;
        }
        let base = services[which].url();
        let op = next() % 10;
        let acknowledged = if op < 6 || (held.is_empty() && awaiting.is_empty()) {
            let dest = w.dests[(next() % w.dests.len() as u64) as usize];
            let (kind, amount) = match next() % 3 {
                0 => ("allow", eth_milli(100 + next() % 800)),
                1 => ("hold", eth_milli(1100 + next() % 800)),
                _ => ("approvals", eth_milli(2100 + next() % 800)),
            };
            let body = json!({"safe": w.safe, "chainId": w.chain_id, "to": dest, "value": amount.to_string(), "data": "0x", "operation": 0, "nonce": 0});
            match call(
                &client,
                &format!("{base}/v1/guard/requests"),
                "tok-init",
                Some(body),
            )
            .await
            {
                Some((200, v)) => {
                    let id = v["id"].as_str().unwrap_or_default().to_owned();
                    match v["state"].as_str() {
                        Some("held") => held.push(id.clone()),
                        Some("awaiting_approvals") => awaiting.push((
                            id.clone(),
                            v["payload_hash"]
                                .as_str()
                                .unwrap_or_default()
                                .parse()
                                .unwrap_or_default(),
                        )),
                        _ => {}
                    }
                    known.insert(
                        id,
                        Known {
                            kind,
                            ..Known::default()
                        },
                    );
                    true
                }
                Some((s, v)) => return Err(format!("submit answered {s}: {v}").into()),
                None => false,
            }
        } else if op < 8 && !held.is_empty() {
            let id = held.swap_remove((next() % held.len() as u64) as usize);
            match call(
                &client,
                &format!("{base}/v1/guard/requests/{id}/cancel"),
                "tok-ops",
                Some(json!({"reason": "drill"})),
            )
            .await
            {
                Some((200, _)) => {
                    if let Some(k) = known.get_mut(&id) {
                        k.cancelled = true;
                    }
                    true
                }
                // Already released by the background task: fine.
                Some((409, _)) => true,
                Some((s, v)) => return Err(format!("cancel answered {s}: {v}").into()),
                None => {
                    held.push(id);
                    false
                }
            }
        } else if !awaiting.is_empty() {
            let k = (next() % awaiting.len() as u64) as usize;
            let (id, payload) = awaiting[k].clone();
            let n = known.get(&id).map_or(0, |k| k.approvals);
            let approver = 2 + n as usize;
            let a = SignedApproval::sign(
                &dev_signer(approver)?,
                id.parse()?,
                payload,
                w.chain_id,
                ApprovalAction::Approve,
                holdfast_gate::service::now() + 3600,
            )?;
            match call(
                &client,
                &format!("{base}/v1/guard/requests/{id}/approvals"),
                "tok-appr",
                Some(serde_json::to_value(&a)?),
            )
            .await
            {
                Some((200, _)) => {
                    let entry = known.get_mut(&id).ok_or("unknown request")?;
                    entry.approvals += 1;
                    if entry.approvals >= 2 {
                        awaiting.swap_remove(k);
                    }
                    true
                }
                // Acknowledged before a kill, then replayed: counted once.
                Some((409, _)) => {
                    let entry = known.get_mut(&id).ok_or("unknown request")?;
                    entry.approvals += 1;
                    if entry.approvals >= 2 {
                        awaiting.swap_remove(k);
                    }
                    true
                }
                Some((s, v)) => return Err(format!("approve answered {s}: {v}").into()),
                None => false,
            }
        } else {
            true
        };
        if acknowledged {
            i += 1;
        }
    }
    assert!(
        kills >= 3,
        "the run must kill the service several times ({kills})"
    );
    // Let every hold expire and be released.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(known)
}

/// Reads every request and the audit log through the admin API and checks the invariants.
async fn check(w: &World, base: &str, known: &HashMap<String, Known>) -> R {
    let client = reqwest::Client::new();
    // Wait until nothing is left held or signing.
    let start = Instant::now();
    let states = loop {
        let mut states = BTreeMap::new();
        for id in known.keys() {
            let (status, v) = call(
                &client,
                &format!("{base}/v1/guard/requests/{id}"),
                "tok-admin",
                None,
            )
            .await
            .ok_or("status")?;
            assert_eq!(status, 200, "acknowledged request {id} is lost: {v}");
            states.insert(id.clone(), v);
        }
        let pending = states
            .values()
            .filter(|v| matches!(v["state"].as_str(), Some("held" | "signing")))
            .count();
        if pending == 0 || start.elapsed() > Duration::from_secs(60) {
            break states;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for (id, v) in &states {
        let k = &known[id];
        let state = v["state"].as_str().unwrap_or_default();
        match (k.kind, k.cancelled) {
            (_, true) => assert_eq!(state, "cancelled", "{id}: {v}"),
            ("allow" | "hold", false) => assert_eq!(state, "signed", "{id}: {v}"),
            (_, false) if k.approvals >= 2 => assert_eq!(state, "signed", "{id}: {v}"),
            _ => assert_eq!(state, "awaiting_approvals", "{id}: {v}"),
        }
        if state == "signed" {
            let sig: Bytes = serde_json::from_value(v["signature"].clone())?;
            let payload: B256 = serde_json::from_value(v["payload_hash"].clone())?;
            let sig = Signature::try_from(sig.as_ref())?;
            assert_eq!(
                sig.recover_address_from_prehash(&payload)?,
                w.holdfast,
                "{id}: signed by Holdfast over its own hash"
            );
        } else {
            assert!(
                v["signature"].is_null(),
                "{id} is {state} yet has a signature"
            );
        }
    }
    let (_, audit) = call(
        &client,
        &format!("{base}/v1/guard/audit?limit=10000"),
        "tok-admin",
        None,
    )
    .await
    .ok_or("audit")?;
    let entries = audit.as_array().ok_or("audit is not an array")?;
    let mut per: HashMap<(String, String), u32> = HashMap::new();
    for e in entries {
        let id = e["request_id"].as_str().unwrap_or_default().to_owned();
        *per.entry((id, e["kind"].as_str().unwrap_or_default().to_owned()))
            .or_default() += 1;
    }
    for ((id, kind), n) in &per {
        if kind == "release" || kind == "signature" {
            assert_eq!(*n, 1, "request {id} has {n} {kind} entries");
        }
    }
    let signed = states.values().filter(|v| v["state"] == "signed").count();
    let signatures = per.iter().filter(|((_, k), _)| k == "signature").count();
    assert_eq!(signed, signatures, "one signature entry per signed request");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_1000_operations_loses_nothing_and_signs_nothing_twice() -> R {
    let w = world().await?;
    let data = w.dir.path().join("data");
    let mut svc = vec![Service::start(&data, &w.config, None)?];
    let known = drive(&w, &mut svc, 1000, 0x9E37_79B9_7F4A_7C15).await?;
    let base = svc[0].url();
    check(&w, &base, &known).await?;
    // The embedded store is the running service's (one process at a time): verify after.
    svc[0].kill();
    audit_verify(&data, None)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_on_one_postgresql_killed_in_turn() -> R {
    if std::env::var_os("HOLDFAST_TEST_SKIP_PG").is_some_and(|v| v == "1") {
        return Ok(());
    }
    let pg = holdfast_store::testing::TempPostgres::start(false)?;
    let w = world().await?;
    let url = pg.url().to_owned();
    let mut svc = vec![
        Service::start(&w.dir.path().join("a"), &w.config, Some(&url))?,
        Service::start(&w.dir.path().join("b"), &w.config, Some(&url))?,
    ];
    let known = drive(&w, &mut svc, 1000, 0xD1B5_4A32_D192_ED03).await?;
    let base = svc[1].url();
    check(&w, &base, &known).await?;
    audit_verify(&w.dir.path().join("a"), Some(&url))?;
    // Someone with write access to the database edits one entry: `audit verify` names it.
    drop(svc);
    let u = url.clone();
    tokio::task::spawn_blocking(move || -> R {
        let mut c = postgres::Client::connect(&u, postgres::NoTls)?;
        let n = c.execute("UPDATE gate_audit SET body = replace(body, '\"actor\":\"operator\"', '\"actor\":\"nobody\"') WHERE seq = (SELECT min(seq) FROM gate_audit WHERE body LIKE '%\"actor\":\"operator\"%')", &[])?;
        assert_eq!(n, 1, "one entry edited");
        Ok(())
    })
    .await??;
    let out = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["--store", &url, "--data-dir"])
        .arg(w.dir.path().join("a"))
        .args(["audit", "verify"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("BROKEN") && text.contains("was edited"),
        "{text}"
    );
    Ok(())
}

/// `holdfast audit verify` on the store itself.
fn audit_verify(data: &Path, store: Option<&str>) -> R {
    let mut args = vec![
        "--data-dir".to_owned(),
        data.display().to_string(),
        "audit".into(),
        "verify".into(),
    ];
    if let Some(s) = store {
        args.splice(0..0, ["--store".to_owned(), s.to_owned()]);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(&args)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("intact"),
        "audit verify: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
