//! Guard service throughput through the HTTP API (docs/BENCHMARKS.md, "Guard service"):
//! decisions per second sustained with durable state, and the decision latency under that
//! load, on the embedded store and on PostgreSQL.
//!
//! The server (`holdfast_server::router` with a `Gate`: the safe-cold-wallet-like policy
//! below, Holdfast co-signing, no simulation) runs in this process on a loopback port;
//! `--connections` client tasks (reqwest, keep-alive) post Safe transactions for
//! `--seconds`: 80% allowed (recorded, signed, fsynced), 10% held, 10% denied. Latency is
//! measured by the client from send to the full answer.
//!
//! Two load shapes: closed loop (each connection sends its next request when the last one is
//! answered: the throughput ceiling), and with `--rate R` open loop (requests scheduled at R
//! per second in all, spread over the connections; latency counts from the scheduled send
//! time, so a stalled server is charged for the requests it delayed, not only the one it
//! stalled on).
//!
//! With `--velocity` the policy has a velocity rule (one that never fires): every decision
//! then reads the wallet's outflows and reservations under the wallet's lock, so the
//! decisions of the one bench wallet are serialized and read a history that grows with the
//! run.
//!
//! `cargo bench -p holdfast-server --bench guard_http [-- --seconds 10 --connections 16 --rate 2000 --no-pg --velocity]`

// The binary's allocator, so that the figures are what `holdfast` runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use alloy::primitives::Address;
use holdfast_gate::signer::LocalKeySigner;
use holdfast_gate::{Gate, GateConfig};
use holdfast_guard::{Guard, Policy};
use holdfast_server::AppState;
use holdfast_store::gate::{EmbeddedGateStore, GateStore, PgGateStore};

type R<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const SAFE: &str = "0x1Db92e2EeBC8E0c075a02BeA49a2935BcD2dFCF4";

/// The bench policy; with `velocity`, a velocity rule that never fires but makes every
/// decision read the wallet's history under its lock (the cost of velocity rules).
fn policy(dests: &[Address], velocity: bool) -> String {
    let list = dests
        .iter()
        .map(|d| format!("\"{d}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[policy]
name = "bench"
[wallets.vault]
address = "{SAFE}"
chain_id = 1
safe_version = "1.4.1"
[assets.ETH]
native = true
decimals = 18
usd = "3000"
[lists]
dest = [{list}]
dc = ["safe:multisend-call-only"]
[[rule]]
name = "integrity"
when = {{ finding = ["safe_tx_hash_mismatch", "bad_signature", "wrong_chain", "undecodable"] }}
action = "deny"
[[rule]]
name = "screening"
when = {{ counterparty_risk = "high" }}
action = "deny"
[[rule]]
name = "foreign delegatecall"
when = {{ delegatecall_to_unlisted = "dc" }}
action = "deny"
{velocity_rule}[[rule]]
name = "medium"
when = {{ asset_in = ["ETH"], amount_above = "100" }}
action = "hold"
hold = "24h"
[[rule]]
name = "ok"
when = {{ destination_in = "dest" }}
action = "allow"
"#,
        velocity_rule = if velocity {
            "[[rule]]\nname = \"velocity\"\nwhen = { velocity = { window = \"24h\", usd_above = \"1000000000000\" } }\naction = \"deny\"\n"
        } else {
            ""
        }
    )
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run(
    name: &str,
    store: Arc<dyn GateStore>,
    seconds: u64,
    connections: usize,
    rate: u64,
) -> R<(f64, Duration, Duration)> {
    let dests: Vec<Address> = (1..=50u8).map(Address::repeat_byte).collect();
    let intel = Arc::new(holdfast_intel::load(None)?.index);
    let guard = Guard::new(
        Arc::new(Policy::parse(
            "bench.toml",
            &policy(&dests, std::env::args().any(|a| a == "--velocity")),
        )?),
        intel,
    );
    let token = "bench-token";
    let config = GateConfig {
        simulate: false,
        tokens: vec![holdfast_gate::config::Token {
            name: "bench".into(),
            sha256: alloy::primitives::hex::decode(holdfast_gate::config::token_hash(token))?
                .try_into()
                .map_err(|_| "hash")?,
            roles: vec![holdfast_gate::Role::Initiator],
            address: None,
        }],
        ..GateConfig::default()
    };
    let signer = LocalKeySigner::new(alloy::signers::local::PrivateKeySigner::random());
    let gate = Arc::new(Gate::new(
        store,
        guard,
        None,
        Some(Arc::new(signer)),
        config,
    ));
    let dir = tempfile::tempdir()?;
    let loader: Arc<holdfast_server::Loader> = Arc::new(|| holdfast_intel::load(None));
    let _ = &dir;
    let state = AppState::new(loader, None)?.with_gate(gate, 1e9);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // Server-side latency: from the request reaching the router to its response being ready
    // (what the service itself adds; the client's figure adds the loopback and its own
    // scheduling on the same two cores).
    let served = Arc::new(std::sync::Mutex::new(Vec::<Duration>::new()));
    let record = served.clone();
    let app = holdfast_server::router(state).layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let record = record.clone();
            async move {
                let t = Instant::now();
                let res = next.run(req).await;
                record
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(t.elapsed());
                res
            }
        },
    ));
    // Served as `holdfast serve` serves it: the server's own accept loop with its limits.
    let server = tokio::spawn(holdfast_server::serve::serve_router(
        listener,
        app,
        holdfast_server::Limits::default(),
        holdfast_server::error::head_error_body,
        std::future::pending(),
    ));
    let url = format!("http://{addr}/v1/guard/requests");
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let warmup = Duration::from_secs(2);
    let started = Instant::now();
    for c in 0..connections {
        let (url, stop) = (url.clone(), stop.clone());
        let dests = dests.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut lat = Vec::new();
            let mut i = c as u64;
            // Open loop: this connection's share of the rate, offset so connections interleave.
            let period = (rate > 0).then(|| Duration::from_secs_f64(connections as f64 / rate as f64));
            let mut due = tokio::time::Instant::now()
                + period.map_or(Duration::ZERO, |p| p.mul_f64(c as f64 / connections as f64));
            while !stop.load(Ordering::Relaxed) {
                i += connections as u64;
                let t = match period {
                    Some(p) => {
                        tokio::time::sleep_until(due).await;
                        let t = due.into_std();
                        due += p;
                        t
                    }
                    None => Instant::now(),
                };
                let (to, value) = match i % 10 {
                    0 => (dests[(i % 50) as usize], "200000000000000000000"), // held
                    1 => (Address::repeat_byte(0xee), "1000"),                  // default deny
                    _ => (dests[(i % 50) as usize], "1000000000000000000"),   // allowed
                };
                let body = format!(
                    "{{\"safe\":\"{SAFE}\",\"chainId\":1,\"to\":\"{to}\",\"value\":\"{value}\",\"data\":\"0x\",\"operation\":0,\"nonce\":{i}}}"
                );
                let r = client.post(&url).bearer_auth(token).header("content-type", "application/json").body(body).send().await;
                let ok = match r {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if !ok {
                    return Err("a request failed".to_owned());
                }
                if started.elapsed() > warmup {
                    lat.push(t.elapsed());
                }
            }
            Ok(lat)
        }));
    }
    tokio::time::sleep(warmup).await;
    served
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clear();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let mut server_side = std::mem::take(
        &mut *served
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?.map_err(|e| e.to_owned())?);
    }
    server.abort();
    all.sort();
    let done = all.len() as f64 / seconds as f64;
    let p50 = all[all.len() / 2];
    let p99 = all[(all.len() * 99 / 100).min(all.len() - 1)];
    let shape = if rate > 0 {
        format!("open loop at {rate}/s")
    } else {
        "closed loop".to_owned()
    };
    println!(
        "{name}: {} decisions in {seconds} s = {done:.0}/s, {shape}, {connections} connections; latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        all.len(),
        p50.as_secs_f64() * 1e3,
        all[all.len() * 9 / 10].as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        all[all.len() - 1].as_secs_f64() * 1e3
    );
    server_side.sort();
    let n = server_side.len().max(1);
    let at = |q: usize| {
        server_side
            .get((n * q / 100).min(n - 1))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "{name}: in the server: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
        at(50),
        at(90),
        at(99)
    );
    Ok((done, p50, p99))
}

fn main() -> R {
    let seconds = arg("--seconds", 10);
    let connections = arg("--connections", 16) as usize;
    let rate = arg("--rate", 0);
    let no_pg = std::env::args().any(|a| a == "--no-pg");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average at start: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let embedded: Arc<dyn GateStore> = Arc::new(EmbeddedGateStore::open(&dir.path().join("gate"))?);
    rt.block_on(run(
        "embedded store (fsync per commit, group commit)",
        embedded,
        seconds,
        connections,
        rate,
    ))?;
    if !no_pg {
        let pg = holdfast_store::testing::TempPostgres::start(true)?;
        let store: Arc<dyn GateStore> = Arc::new(PgGateStore::connect(pg.url(), 16)?);
        rt.block_on(run(
            "PostgreSQL 15 (fsync on, synchronous_commit on, 16 connections)",
            store,
            seconds,
            connections,
            rate,
        ))?;
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average at end: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}
