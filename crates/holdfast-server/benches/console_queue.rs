//! The console's request queue with 100,000 stored requests (docs/BENCHMARKS.md, "Console"):
//! server time of a queue page (`holdfast_server::router` through `oneshot`, a signed-in
//! session), first pages and pages deep in the index, for holds and for decided requests.
//!
//! The store is the embedded one, filled by `--threads` writers (each insert is a durable
//! commit; concurrent writers share fsyncs). Then `--pages` page loads, each at a random
//! position of its state's index (`after` = a stored request), are timed.
//!
//! `cargo bench -p holdfast-server --bench console_queue [-- --requests 100000 --pages 2000]`

// The binary's allocator, so that the figures are what `holdfast` runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256};
use axum::body::Body;
use axum::http::Request;
use holdfast_gate::config::{Token, token_digest};
use holdfast_gate::{Gate, GateConfig, Role};
use holdfast_guard::{Guard, Policy};
use holdfast_server::AppState;
use holdfast_store::gate::{
    DecisionKind, EmbeddedGateStore, GateRequest, GateStore, RequestMode, RequestState,
};
use http_body_util::BodyExt;
use tower::ServiceExt;

type R<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn request(i: usize) -> GateRequest {
    let state = if i.is_multiple_of(2) {
        RequestState::Held
    } else {
        RequestState::Signed
    };
    GateRequest {
        id: format!("{:#x}", B256::from(alloy::primitives::U256::from(i))),
        payload_hash: B256::repeat_byte(7),
        chain_id: 1,
        wallet: Address::repeat_byte(0xaa),
        initiator: "svc".into(),
        kind: RequestMode::Safe,
        request: "{\"safe\":\"0xaa\"}".into(),
        decision: DecisionKind::Hold,
        rule: Some("medium".into()),
        reasons: vec!["1.5 ETH leaves vault, above 1 ETH".into()],
        state,
        created_at: 1_700_000_000 + (i as u64) / 10,
        updated_at: 1_700_000_000,
        release_at: Some(1_900_000_000),
        need_approvals: 0,
        group: None,
        nonce: None,
        signature: None,
        tx_hash: None,
        error: None,
        outflows: Vec::new(),
        report: None,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> R {
    let n = arg("--requests", 100_000);
    let pages = arg("--pages", 2_000);
    let threads = arg("--threads", 64);
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn GateStore> = Arc::new(EmbeddedGateStore::open(&dir.path().join("gate"))?);
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let store = store.clone();
            s.spawn(move || {
                for i in (t..n).step_by(threads) {
                    store.insert(&request(i), Vec::new()).expect("insert");
                }
            });
        }
    });
    eprintln!(
        "stored {n} requests in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let intel = Arc::new(holdfast_intel::load(None)?.index);
    let guard = Guard::new(
        Arc::new(Policy::parse(
            "bench.toml",
            "[policy]\nname = \"bench\"\n[assets.ETH]\nnative = true\ndecimals = 18\n",
        )?),
        intel,
    );
    let gate = Arc::new(Gate::new(
        store.clone(),
        guard,
        None,
        None,
        GateConfig {
            tokens: vec![Token {
                name: "ops".into(),
                sha256: token_digest("bench-token"),
                roles: vec![Role::Operator],
                address: None,
            }],
            ..GateConfig::default()
        },
    ));
    let loader: Arc<holdfast_server::Loader> = Arc::new(|| holdfast_intel::load(None));
    let state = AppState::new(loader, None)?.with_gate(gate, 1e9);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let session = rt
        .block_on(state.sessions.open("bench-token"))
        .map_err(|e| e.message)?;
    let router = holdfast_server::router(state);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut times = Vec::with_capacity(pages);
    rt.block_on(async {
        for _ in 0..pages {
            let i = (next() % n as u64) as usize;
            let r = request(i);
            let view = if r.state == RequestState::Held {
                "view=held".to_owned()
            } else {
                "view=decided&state=signed".to_owned()
            };
            // A quarter of the loads are first pages.
            let uri = if next().is_multiple_of(4) {
                format!("/console/requests?{view}")
            } else {
                format!("/console/requests?{view}&after={}%3A{}", r.created_at, r.id)
            };
            let req = Request::get(&uri)
                .header("cookie", format!("holdfast_session={session}"))
                .body(Body::empty())
                .expect("request");
            let t = Instant::now();
            let resp = router.clone().oneshot(req).await.expect("infallible");
            let status = resp.status();
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            times.push(t.elapsed());
            assert!(status.is_success(), "{uri}: {status}");
            assert!(body.len() > 1000, "{uri}");
        }
    });
    times.sort();
    println!(
        "console queue, {n} stored requests, {pages} page loads: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
    Ok(())
}
