//! `holdfast watch` as a process: `watch check`, and the outbox's promise under kill -9 —
//! a 1,000-block run killed at random instants, with its webhook receiver down for 30 s in
//! the middle, delivers every alert, and a receiver that dedups by id sees each once. The
//! same with two instances on PostgreSQL, the chain's owner killed. Stale sink cursors:
//! `cursors`.

mod cursors;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, Bytes, U256};
use holdfast_testkit::{Anvil, dev_account};

use crate::{holdfast, stderr, stdout};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

#[test]
fn watch_check_names_file_line_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    for example in ["safe-treasury", "hot-wallet", "protocol-admin"] {
        let path = holdfast_testkit::workspace_root().join(format!("watch/{example}.toml"));
        let o = holdfast(
            dir.path(),
            &["watch", "check", path.to_str().expect("utf-8")],
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "{example}: {}{}",
            stdout(&o),
            stderr(&o)
        );
    }
    let bad = write(
        dir.path(),
        "bad.toml",
        r#"[[chain]]
name = "eth"
rpc = "http://127.0.0.1:1"

[[set]]
name = "hot"
addresses = ["0x098b716B8Aaf21512996dC57EB0615e2383E2f96"]

[[rule]]
name = "x"
detector = "drainer"
targets = ["hot"]
"#,
    );
    let o = holdfast(
        dir.path(),
        &["watch", "check", bad.to_str().expect("utf-8")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("bad.toml:"), "{out}");
    assert!(out.contains("drainer"), "unknown detector named: {out}");
    let o = holdfast(
        dir.path(),
        &["watch", "check", "--json", bad.to_str().expect("utf-8")],
    );
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("json");
    assert_eq!(v["ok"], false);
    // Running it refuses to start, with the same errors.
    let o = holdfast(
        dir.path(),
        &["watch", "--config", bad.to_str().expect("utf-8")],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("drainer"), "{}", stderr(&o));
}

/// A webhook receiver that records every key it accepted (duplicates counted), and can be
/// stopped and started again on the same port (a sink outage).
#[derive(Clone, Default)]
struct Keys(Arc<Mutex<BTreeMap<String, usize>>>);

async fn hook(
    axum::extract::State(keys): axum::extract::State<Keys>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let v: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    match (key, v) {
        (Some(k), Some(_)) => {
            *keys.0.lock().expect("lock").entry(k).or_default() += 1;
            axum::http::StatusCode::OK
        }
        _ => axum::http::StatusCode::BAD_REQUEST,
    }
}

fn start_receiver(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    keys: Keys,
) -> tokio::task::JoinHandle<()> {
    rt.spawn(async move {
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(keys);
        let _ = axum::serve(listener, app).await;
    })
}

/// 1,000 blocks; every 5th carries a 1 ETH payment from the watched wallet (one alert each).
async fn chain_of_1000(node: &Anvil, wallet: Address) -> (u64, BTreeSet<B256>) {
    let mut payments = BTreeSet::new();
    for i in 0..200u64 {
        node.mine(4).await.expect("mine");
        let (tx, _) = node
            .send(
                wallet,
                Some(Address::from_word(B256::from(U256::from(0x1_0000 + i)))),
                U256::from(10u64).pow(U256::from(18)),
                Bytes::new(),
                None,
            )
            .await
            .expect("pay");
        payments.insert(tx);
    }
    (node.block_number().await.expect("head"), payments)
}

fn watch_file(rpc: &str, wallet: Address, hook: &str) -> String {
    format!(
        r#"[[chain]]
name = "anvil"
rpc = "{rpc}"
chain_id = 31337
confirmations = 3
start_block = 1

[[asset]]
symbol = "ETH"
chain = "anvil"
kind = "native"

[[set]]
name = "hot"
addresses = ["{wallet}"]

[[rule]]
name = "hot-large"
detector = "outflow"
targets = ["hot"]
severity = "high"
amount_above = {{ ETH = "0.5" }}

[[sink]]
kind = "webhook"
name = "soc"
url = "{hook}"
"#
    )
}

fn spawn_watch(
    data: &Path,
    config: &Path,
    store: Option<&str>,
    instance: &str,
    last: u64,
) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_holdfast"));
    c.arg("--data-dir").arg(data);
    if let Some(s) = store {
        c.arg("--store").arg(s);
    }
    c.args(["watch", "--config"])
        .arg(config)
        .args([
            "--instance",
            instance,
            "--lease-secs",
            "2",
            "--stop-after-block",
        ])
        .arg(last.to_string())
        .env("HOLDFAST_LOG", "warn,watch::alert=off")
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(data.join("stderr.log"))
                .expect("log file"),
        )
        .spawn()
        .expect("spawns holdfast watch")
}

/// A pseudo-random delay in `lo..hi` ms (xorshift; deterministic per seed, no extra crate).
fn jitter(seed: &mut u64, lo: u64, hi: u64) -> Duration {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    Duration::from_millis(lo + *seed % (hi - lo))
}

/// The alert ids the watch store holds (the raised ones), read with the binary's own store.
fn stored_ids(data: &Path, store: Option<&str>) -> BTreeSet<String> {
    use holdfast_store::watch::{AlertQuery, EmbeddedWatchStore, PgWatchStore, WatchStore};
    let s: Box<dyn WatchStore> = match store {
        Some(url) => Box::new(PgWatchStore::connect(url, 1).expect("pg")),
        None => Box::new(EmbeddedWatchStore::open(&data.join("store/watch")).expect("open")),
    };
    s.alerts(&AlertQuery {
        limit: 10_000,
        ..AlertQuery::default()
    })
    .expect("alerts")
    .into_iter()
    .map(|a| a.id)
    .collect()
}

/// Runs the kill -9 scenario; `instances` processes share `store` (one when embedded).
fn killed_run(store: Option<&str>, instances: usize) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let node = rt.block_on(Anvil::spawn()).expect("anvil");
    let wallet = dev_account(1);
    let (head, payments) = rt.block_on(chain_of_1000(&node, wallet));
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let keys = Keys::default();
    let receiver = start_receiver(&rt, port, keys.clone());
    let config = write(
        dir.path(),
        "watch.toml",
        &watch_file(&node.ws_url(), wallet, &format!("http://{port}/hook")),
    );
    let datas: Vec<_> = (0..instances)
        .map(|i| {
            let d = dir.path().join(format!("data{i}"));
            std::fs::create_dir_all(&d).expect("mkdir");
            d
        })
        .collect();
    let mut children: Vec<Option<Child>> = (0..instances)
        .map(|i| {
            Some(spawn_watch(
                &datas[i],
                &config,
                store,
                &format!("i{i}"),
                head,
            ))
        })
        .collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let started = Instant::now();
    let mut kills = 0;
    let mut done = vec![false; instances];
    // The sink is down from 2 s to 32 s into the run, while the kills go on.
    let outage = {
        let handle = rt.handle().clone();
        let keys = keys.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            receiver.abort();
            handle.block_on(async {
                let _ = receiver.await;
            });
            std::thread::sleep(Duration::from_secs(30));
            handle.spawn(async move {
                let listener = loop {
                    match tokio::net::TcpListener::bind(port).await {
                        Ok(l) => break l,
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                };
                let app = axum::Router::new()
                    .route("/hook", axum::routing::post(hook))
                    .with_state(keys);
                let _ = axum::serve(listener, app).await;
            })
        })
    };
    // Kill a random instance at random instants and restart it.
    while done.iter().any(|d| !d) {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "the run does not finish"
        );
        std::thread::sleep(jitter(&mut seed, 200, 1500));
        for (i, c) in children.iter_mut().enumerate() {
            if let Some(child) = c
                && let Ok(Some(status)) = child.try_wait()
            {
                assert!(
                    status.success(),
                    "instance {i} failed: {status}: {}",
                    std::fs::read_to_string(datas[i].join("stderr.log")).unwrap_or_default()
                );
                done[i] = true;
                *c = None;
            }
        }
        let i = (seed as usize) % instances;
        if kills < 20
            && started.elapsed() < Duration::from_secs(40)
            && let Some(child) = children[i].as_mut()
        {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
            kills += 1;
            children[i] = Some(spawn_watch(
                &datas[i],
                &config,
                store,
                &format!("i{i}"),
                head,
            ));
        }
    }
    if let Some(url) = store {
        use holdfast_store::watch::{PgWatchStore, WatchStore};
        let lease = PgWatchStore::connect(url, 1)
            .expect("pg")
            .lease(31337)
            .expect("lease")
            .expect("taken");
        assert!(
            lease.token >= 2,
            "the chain changed owner at least once (token {})",
            lease.token
        );
    }
    let ids = stored_ids(&datas[0], store);
    assert_eq!(
        ids.len(),
        payments.len(),
        "one alert per payment, none lost or doubled in the store"
    );
    let got = keys.0.lock().expect("lock").clone();
    let raised: BTreeSet<String> = got.keys().filter(|k| !k.contains(':')).cloned().collect();
    assert_eq!(
        raised, ids,
        "every alert reached the receiver (deduped by id)"
    );
    let duplicates: usize = got.values().map(|n| n - 1).sum();
    eprintln!(
        "{kills} kills, 30 s sink outage: {} events received, {duplicates} redeliveries (same key) in {:?}",
        got.len(),
        started.elapsed()
    );
    let restarted = outage.join().expect("outage thread");
    restarted.abort();
    drop(node);
}

#[test]
fn kill_9_and_a_sink_outage_lose_no_alert_embedded() {
    killed_run(None, 1);
}

#[test]
fn kill_9_of_the_owner_on_postgres_loses_no_alert() {
    let pg = holdfast_store::testing::TempPostgres::start(true).expect("postgres");
    killed_run(Some(pg.url()), 2);
}

/// A guard configuration for the heist's Safe (policy, initiator and operator tokens
/// `tok-init` / `tok-ops`), written into `dir`; returns the configuration's path.
fn guard_files(dir: &Path, safe: Address, rpc: &str) -> std::path::PathBuf {
    let tokens: String = [("initiator", "tok-init"), ("operator", "tok-ops")]
        .iter()
        .map(|(role, tok)| {
            format!(
                "[[token]]\nname = \"{role}\"\nsha256 = \"{}\"\nroles = [\"{role}\"]\n",
                holdfast_gate::config::token_hash(tok)
            )
        })
        .collect();
    write(
        dir,
        "policy.toml",
        &format!(
            "[policy]\nname = \"treasury\"\n[wallets.treasury]\naddress = \"{safe}\"\nchain_id = 31337\nsafe_version = \"1.1.1\"\n"
        ),
    );
    write(
        dir,
        "gate.toml",
        &format!("[gate]\npolicy = \"policy.toml\"\nrpc = \"{rpc}\"\nsimulate = false\n{tokens}"),
    )
}

/// `holdfast serve --guard-config --watch-config` on anvil after the Bybit heist: the
/// takeover alert is served at /v1/alerts and on the live stream, acknowledged by an
/// operator; its `freeze` response froze the guard (in-process) so a request for the Safe is
/// denied; its `label` response made the running server's screening flag the new singleton.
#[test]
fn serve_runs_the_watch_with_alerts_api_freeze_and_labels() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let node = Anvil::spawn().await.expect("anvil");
        let heist = holdfast_testkit::Scenario::new(&node)
            .safe_heist()
            .await
            .expect("heist");
        let dir = tempfile::tempdir().expect("tempdir");
        let gate = guard_files(dir.path(), heist.safe_111, &node.http_url());
        let watch = write(
            dir.path(),
            "watch.toml",
            &format!(
                r#"[[chain]]
name = "anvil"
rpc = "{}"
chain_id = 31337
confirmations = 0
start_block = 1

[[set]]
name = "treasury"
addresses = ["{}"]

[[rule]]
name = "treasury-takeover"
detector = "critical_storage"
targets = ["treasury"]
severity = "critical"
responses = ["freeze", "label"]
"#,
                node.ws_url(),
                heist.safe_111
            ),
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let data = dir.path().join("data");
        let mut child = Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .arg("--data-dir")
            .arg(&data)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--guard-config"])
            .arg(&gate)
            .arg("--watch-config")
            .arg(&watch)
            .env("HOLDFAST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(dir.path().join("serve.log")).expect("log"),
            )
            .spawn()
            .expect("serve");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let log = || std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
        // The alert appears in the API.
        let started = Instant::now();
        let alert = loop {
            assert!(started.elapsed() < Duration::from_secs(60), "no alert: {}", log());
            if let Ok(r) = client
                .get(format!("{base}/v1/alerts?rule=treasury-takeover"))
                .bearer_auth("tok-init")
                .send()
                .await
                && r.status().is_success()
            {
                let v: serde_json::Value = r.json().await.expect("json");
                if let Some(a) = v["alerts"].as_array().and_then(|a| a.first()).cloned() {
                    break a;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let id = alert["id"].as_str().expect("id").to_owned();
        assert_eq!(alert["alert"]["tx_hash"], serde_json::json!(heist.delegatecall_tx), "{alert}");
        // The live stream replays it from the start.
        let mut stream = client
            .get(format!("{base}/v1/alerts/stream"))
            .bearer_auth("tok-init")
            .header("last-event-id", "0")
            .send()
            .await
            .expect("stream");
        let mut seen = String::new();
        let until = Instant::now() + Duration::from_secs(10);
        while !seen.contains(&id) && Instant::now() < until {
            match tokio::time::timeout(Duration::from_secs(5), stream.chunk()).await {
                Ok(Ok(Some(c))) => seen.push_str(&String::from_utf8_lossy(&c)),
                _ => break,
            }
        }
        assert!(seen.contains(&id), "the stream carries the alert: {seen}");
        // An operator acknowledges it.
        let r = client
            .post(format!("{base}/v1/alerts/{id}/ack"))
            .bearer_auth("tok-ops")
            .send()
            .await
            .expect("ack");
        assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
        // The freeze: a request for the Safe is denied by the emergency freeze.
        let body = serde_json::json!({
            "safe": heist.safe_111, "chainId": 31337, "to": heist.attacker, "value": "1",
            "data": "0x", "operation": 0, "nonce": "3", "safeTxGas": 0, "baseGas": 0, "gasPrice": "0",
        });
        let until = Instant::now() + Duration::from_secs(20);
        let decision = loop {
            let r = client
                .post(format!("{base}/v1/guard/requests"))
                .bearer_auth("tok-init")
                .json(&body)
                .send()
                .await
                .expect("submit");
            let v: serde_json::Value = r.json().await.expect("json");
            if v["rule"] == "emergency freeze" || Instant::now() > until {
                break v;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(decision["rule"], "emergency freeze", "{decision}");
        // The label: the running server now screens the new singleton as tainted.
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let v: serde_json::Value = client
                .get(format!("{base}/v1/addresses/ethereum/{}", heist.sweeper))
                .send()
                .await
                .expect("screen")
                .json()
                .await
                .expect("json");
            if v.to_string().contains("tainted") {
                break;
            }
            assert!(Instant::now() < until, "the sweeper is not labelled: {v}\n{}", log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    });
}

/// `watch record` then `watch test`: the Bybit blocks recorded from anvil, a case expecting
/// the takeover and the drain passes; a case missing the drain fails naming the unexpected
/// alert, and one expecting what did not happen fails naming it.
#[test]
fn recorded_blocks_test_a_watch_file_exactly() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (node, heist) = rt.block_on(async {
        let node = Anvil::spawn().await.expect("anvil");
        let heist = holdfast_testkit::Scenario::new(&node)
            .safe_heist()
            .await
            .expect("heist");
        (node, heist)
    });
    let head = rt.block_on(node.block_number()).expect("head");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let blocks = dir.path().join("bybit.jsonl");
    let o = holdfast(
        &data,
        &[
            "watch",
            "record",
            "--rpc",
            &node.http_url(),
            "--from-block",
            "1",
            "--to-block",
            &head.to_string(),
            "--output",
            blocks.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let file = write(
        dir.path(),
        "watch.toml",
        &format!(
            r#"[[chain]]
name = "anvil"
rpc = "http://127.0.0.1:1"
chain_id = 31337

[[asset]]
symbol = "ETH"
chain = "anvil"
kind = "native"

[[set]]
name = "treasury"
addresses = ["{}"]

[[rule]]
name = "takeover"
detector = "critical_storage"
targets = ["treasury"]
severity = "critical"

[[rule]]
name = "drain"
detector = "outflow"
targets = ["treasury"]
severity = "critical"
drain = {{ percent = 20, blocks = 50, assets = ["ETH"] }}
"#,
            heist.safe_111
        ),
    );
    let case =
        |expect: &str| format!("[[case]]\nname = \"bybit\"\nblocks = \"bybit.jsonl\"\n{expect}");
    let good = write(
        dir.path(),
        "good.cases.toml",
        &case(&format!(
            "[[case.expect]]\nrule = \"takeover\"\ntx = \"{}\"\n[[case.expect]]\nrule = \"drain\"\ntx = \"{}\"\n",
            heist.delegatecall_tx, heist.sweep_tx
        )),
    );
    let run = |cases: &Path| {
        holdfast(
            &data,
            &[
                "watch",
                "test",
                file.to_str().expect("utf-8"),
                cases.to_str().expect("utf-8"),
            ],
        )
    };
    let o = run(&good);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("ok    bybit"), "{}", stdout(&o));
    let missing = write(
        dir.path(),
        "missing.cases.toml",
        &case(&format!(
            "[[case.expect]]\nrule = \"takeover\"\ntx = \"{}\"\n",
            heist.delegatecall_tx
        )),
    );
    let o = run(&missing);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("unexpected alert of rule drain"),
        "{}",
        stdout(&o)
    );
    let wrong = write(
        dir.path(),
        "wrong.cases.toml",
        &case(&format!(
            "[[case.expect]]\nrule = \"takeover\"\ntx = \"{}\"\n[[case.expect]]\nrule = \"drain\"\ntx = \"{}\"\n[[case.expect]]\nrule = \"takeover\"\nblock = 1\n",
            heist.delegatecall_tx, heist.sweep_tx
        )),
    );
    let o = run(&wrong);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("expected 1 alert of rule takeover in block 1, got 0"),
        "{}",
        stdout(&o)
    );
    drop(node);
}

/// `holdfast watch` alone, with `--guard-url`: the `freeze` response goes through the guard
/// service's API with an operator token, and the running service denies the Safe.
#[test]
fn standalone_watch_freezes_through_the_guard_api() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let node = Anvil::spawn().await.expect("anvil");
        let heist = holdfast_testkit::Scenario::new(&node)
            .safe_heist()
            .await
            .expect("heist");
        let head = node.block_number().await.expect("head");
        let dir = tempfile::tempdir().expect("tempdir");
        let gate = guard_files(dir.path(), heist.safe_111, &node.http_url());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let mut serve = Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .arg("--data-dir")
            .arg(dir.path().join("serve-data"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--guard-config"])
            .arg(&gate)
            .env("HOLDFAST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let started = Instant::now();
        while !client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(started.elapsed() < Duration::from_secs(60), "serve did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let watch = write(
            dir.path(),
            "watch.toml",
            &format!(
                "[[chain]]\nname = \"anvil\"\nrpc = \"{}\"\nchain_id = 31337\nconfirmations = 0\nstart_block = 1\n\n[[set]]\nname = \"treasury\"\naddresses = [\"{}\"]\n\n[[rule]]\nname = \"takeover\"\ndetector = \"critical_storage\"\ntargets = [\"treasury\"]\nseverity = \"critical\"\nresponses = [\"freeze\"]\n",
                node.http_url(),
                heist.safe_111
            ),
        );
        let token = write(dir.path(), "ops.token", "tok-ops\n");
        // Without a guard service, a rule with `freeze` refuses to start.
        let o = holdfast(
            &dir.path().join("watch-data"),
            &["watch", "--config", watch.to_str().expect("utf-8")],
        );
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("freeze"), "{}", stderr(&o));
        let o = holdfast(
            &dir.path().join("watch-data"),
            &[
                "watch",
                "--config",
                watch.to_str().expect("utf-8"),
                "--guard-url",
                &base,
                "--guard-token-file",
                token.to_str().expect("utf-8"),
                "--stop-after-block",
                &head.to_string(),
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let body = serde_json::json!({
            "safe": heist.safe_111, "chainId": 31337, "to": heist.attacker, "value": "1",
            "data": "0x", "operation": 0, "nonce": "3", "safeTxGas": 0, "baseGas": 0, "gasPrice": "0",
        });
        let v: serde_json::Value = client
            .post(format!("{base}/v1/guard/requests"))
            .bearer_auth("tok-init")
            .json(&body)
            .send()
            .await
            .expect("submit")
            .json()
            .await
            .expect("json");
        assert_eq!(v["rule"], "emergency freeze", "{v}");
        let _ = serve.kill();
        let _ = serve.wait();
    });
}
