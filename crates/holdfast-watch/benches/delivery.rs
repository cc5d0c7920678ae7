//! Delivery latency benchmark (docs/BENCHMARKS.md, "Watch: delivery"): the time from an
//! outbox commit (`WatchStore::commit_block` returned, the engine's ping sent) to a webhook
//! receiver on loopback holding the event, through the real deliverer, a signed webhook sink
//! and the embedded watch store.
//!
//! Two runs of `--events N` (default 1000) one-alert blocks:
//! 1. paced: one commit, then wait until the receiver has it (latency without queueing);
//! 2. burst: every commit back to back, as fast as the store takes them (latency with the
//!    sink's queue: each event waits for those before it).
//!
//! Plain binary: `cargo bench -p holdfast-watch --bench delivery [-- --events N]`.

// The binary's allocator, so that the figures are what `holdfast` runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use holdfast_primitives::BlockRef;
use holdfast_store::watch::{BlockCommit, EmbeddedWatchStore, NewAlert, WatchStore};
use holdfast_watch::sink::SinkSpec;
use holdfast_watch::{
    AddressNote, Alert, Deliverer, DeliveryConfig, DeliveryMetrics, DetectorKind, Fact,
    Involvement, Link, Place, Severity, Sink, alert_id,
};
use prometheus_client::registry::Registry;
use tokio::sync::Notify;

/// When each key first arrived, and a ping per arrival (the bench waits without spinning).
#[derive(Default)]
struct Arrivals {
    at: Mutex<HashMap<String, Instant>>,
    ping: Notify,
}

async fn receive(
    State(arrivals): State<Arc<Arrivals>>,
    headers: HeaderMap,
    _body: Bytes,
) -> StatusCode {
    let at = Instant::now();
    if let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
        arrivals
            .at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_owned())
            .or_insert(at);
        arrivals.ping.notify_waiters();
    }
    StatusCode::NO_CONTENT
}

fn alert(number: u64, hash: B256) -> Alert {
    let place = Place::Tx { tx_index: 0 };
    Alert {
        id: alert_id(31_337, hash, "drain", &place),
        chain_id: 31_337,
        chain: "anvil".into(),
        block_number: number,
        block_hash: hash,
        block_timestamp: 1_700_000_000 + number,
        tx_hash: Some(B256::repeat_byte(0xaa)),
        place,
        rule: "drain".into(),
        detector: DetectorKind::Outflow,
        severity: Severity::Critical,
        title: format!("Hot wallet 0x11… lost 92% of its ETH in block {number}"),
        summary: "A burst of withdrawals to fresh addresses drained the hot wallet.".into(),
        facts: vec![Fact {
            name: "amount".into(),
            value: "1,204.5 ETH".into(),
        }],
        addresses: vec![AddressNote {
            address: Address::repeat_byte(0x11),
            role: "watched wallet".into(),
            involvement: Involvement::Watched,
            labels: vec!["Hot wallet".into()],
        }],
        links: vec![Link {
            name: "block".into(),
            url: format!("https://explorer.test/block/{number}"),
        }],
        confirmations: 0,
        responses: vec![],
        evidence: serde_json::Value::Null,
    }
}

struct Chain {
    store: Arc<dyn WatchStore>,
    number: u64,
    parent: B256,
}

impl Chain {
    /// Commits the next block with one alert; returns its key.
    fn commit(&mut self) -> String {
        self.number += 1;
        let mut h = [0x22u8; 32];
        h[24..].copy_from_slice(&self.number.to_be_bytes());
        let hash = B256::from(h);
        let a = alert(self.number, hash);
        let commit = BlockCommit {
            chain_id: 31_337,
            block: BlockRef {
                number: self.number,
                hash,
                parent_hash: self.parent,
                timestamp: 0,
            },
            state: vec![],
            alerts: vec![NewAlert {
                id: a.id.clone(),
                rule: a.rule.clone(),
                severity: a.severity.rank(),
                raised_at_ms: 0,
                body: serde_json::to_vec(&a).unwrap_or_default(),
            }],
            confirm: vec![],
            forget_below: self.number.saturating_sub(64),
            fence: None,
        };
        self.store
            .commit_block(&commit)
            .unwrap_or_else(|e| panic!("commit: {e}"));
        self.parent = hash;
        a.id
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut lat: Vec<Duration>, mut commits: Vec<Duration>) {
    lat.sort();
    commits.sort();
    println!(
        "{name:>6}: {} events; commit → receiver p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; commit_block itself p50 {:.2} ms, p99 {:.2} ms",
        lat.len(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3,
        percentile(&commits, 0.5).as_secs_f64() * 1e3,
        percentile(&commits, 0.99).as_secs_f64() * 1e3,
    );
}

async fn wait_for(arrivals: &Arrivals, key: &str) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pinged = arrivals.ping.notified();
        tokio::pin!(pinged);
        pinged.as_mut().enable();
        if let Some(at) = arrivals
            .at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            return *at;
        }
        assert!(Instant::now() < deadline, "{key} not received within 30 s");
        let _ = tokio::time::timeout(Duration::from_millis(100), pinged).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let events: usize = args
        .iter()
        .position(|a| a == "--events")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);

    let arrivals: Arc<Arrivals> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(arrivals.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store: Arc<dyn WatchStore> =
        Arc::new(EmbeddedWatchStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}")));
    let sink = Sink::from_spec(
        &SinkSpec::Webhook {
            name: "bench".into(),
            url: format!("http://{addr}/hook"),
            secret_env: Some("SECRET".into()),
            min_severity: None,
        },
        &|k| (k == "SECRET").then(|| "bench-secret".to_owned()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let wake = Arc::new(Notify::new());
    let metrics = DeliveryMetrics::register(&mut Registry::default());
    let deliverer = Deliverer::spawn(
        store.clone(),
        vec![sink],
        wake.clone(),
        metrics.clone(),
        DeliveryConfig::default(),
    );
    let mut chain = Chain {
        store,
        number: 0,
        parent: B256::ZERO,
    };

    // Warm-up: the connection, the allocator, the store's first writes.
    for _ in 0..50 {
        let key = chain.commit();
        wake.notify_waiters();
        wait_for(&arrivals, &key).await;
    }

    let mut lat = Vec::with_capacity(events);
    let mut commits = Vec::with_capacity(events);
    for _ in 0..events {
        let t0 = Instant::now();
        let key = chain.commit();
        let committed = Instant::now();
        wake.notify_waiters();
        let at = wait_for(&arrivals, &key).await;
        commits.push(committed - t0);
        lat.push(at.saturating_duration_since(committed));
    }
    report("paced", lat, commits);

    let mut sent = Vec::with_capacity(events);
    let mut commits = Vec::with_capacity(events);
    for _ in 0..events {
        let t0 = Instant::now();
        let key = chain.commit();
        let committed = Instant::now();
        wake.notify_waiters();
        commits.push(committed - t0);
        sent.push((key, committed));
    }
    let mut lat = Vec::with_capacity(events);
    for (key, committed) in &sent {
        lat.push(
            wait_for(&arrivals, key)
                .await
                .saturating_duration_since(*committed),
        );
    }
    report("burst", lat, commits);
    println!(
        "delivered {}, failed attempts {}",
        metrics.delivered("bench"),
        metrics.failed_attempts("bench")
    );
    deliverer.shutdown().await;
    server.abort();
}
