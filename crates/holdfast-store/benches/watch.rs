//! Watch store benchmark (docs/STORE.md), a plain binary: `commit_block` latency of one-alert
//! blocks, one chain paced and four chains committing at once (the outbox append is
//! serialized across chains), and `outbox_since` reads of 100 events; on the embedded store
//! (fsynced) and on PostgreSQL (a throwaway server with its default durability) side by side.
//!
//! `cargo bench -p holdfast-store --bench watch [-- --blocks N] [--no-pg]`

// The binary's allocator, so that the figures are what `holdfast` runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::Instant;

use alloy_primitives::B256;
use holdfast_primitives::BlockRef;
use holdfast_store::testing::TempPostgres;
use holdfast_store::watch::{BlockCommit, EmbeddedWatchStore, NewAlert, PgWatchStore, WatchStore};

fn percentile(xs: &mut [f64], p: f64) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[((xs.len() as f64 - 1.0) * p) as usize]
}

fn ms(mut lat: Vec<f64>) -> String {
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&mut lat, 0.5),
        percentile(&mut lat, 0.99),
        percentile(&mut lat, 1.0)
    )
}

fn block(chain: u64, n: u64) -> BlockRef {
    let h = |n: u64| {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&chain.to_be_bytes());
        b[24..].copy_from_slice(&n.to_be_bytes());
        B256::from(b)
    };
    BlockRef {
        number: n,
        hash: h(n),
        parent_hash: h(n.wrapping_sub(1)),
        timestamp: n,
    }
}

/// A block with one alert of a realistic size (about 1.5 KB of JSON) and 4 KB of state.
fn commit(chain: u64, n: u64) -> BlockCommit {
    let body = serde_json::json!({
        "id": format!("hf-{chain}-{n}"), "rule": "drain", "severity": "high",
        "summary": "Watched wallet 0x1db92e2eebc8e0c075a02bea49a2935bcd2dfcf4 lost 98% of its ETH in 3 blocks",
        "facts": (0..12).map(|i| serde_json::json!({"name": format!("fact {i}"), "value": "401,346.000000 ETH to 0x47666fab8bd0ac7003bce3f5c3585383f09486e2 (fresh address)"})).collect::<Vec<_>>(),
    });
    BlockCommit {
        chain_id: chain,
        block: block(chain, n),
        state: vec![7; 4096],
        alerts: vec![NewAlert {
            id: format!("hf-{chain}-{n}"),
            rule: "drain".into(),
            severity: 3,
            raised_at_ms: n,
            body: body.to_string().into_bytes(),
        }],
        confirm: Vec::new(),
        forget_below: n.saturating_sub(64),
        fence: None,
    }
}

fn run(name: &str, make: &dyn Fn() -> Arc<dyn WatchStore>, blocks: u64) {
    let s = make();
    // One chain, paced.
    let mut lat = Vec::new();
    for n in 1..=blocks {
        let c = commit(1, n);
        let t = Instant::now();
        s.commit_block(&c).expect("commit");
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!("{name}: one chain, {blocks} commits: {}", ms(lat));
    // Four chains at once, each its own instance (PostgreSQL: its own connection).
    let t = Instant::now();
    let lat: Vec<f64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (10..14u64)
            .map(|chain| {
                let s = make();
                scope.spawn(move || {
                    (1..=blocks)
                        .map(|n| {
                            let c = commit(chain, n);
                            let t = Instant::now();
                            s.commit_block(&c).expect("commit");
                            t.elapsed().as_secs_f64() * 1e3
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("writer"))
            .collect()
    });
    let rate = (4 * blocks) as f64 / t.elapsed().as_secs_f64();
    println!(
        "{name}: four chains at once, {} commits: {rate:.0} commits/s, {}",
        4 * blocks,
        ms(lat)
    );
    // The same without alerts (most blocks): no outbox append, so nothing shared.
    let t = Instant::now();
    std::thread::scope(|scope| {
        for chain in 20..24u64 {
            let s = make();
            scope.spawn(move || {
                for n in 1..=blocks {
                    let c = BlockCommit {
                        alerts: Vec::new(),
                        ..commit(chain, n)
                    };
                    s.commit_block(&c).expect("commit");
                }
            });
        }
    });
    let rate = (4 * blocks) as f64 / t.elapsed().as_secs_f64();
    println!("{name}: four chains at once, no alerts: {rate:.0} commits/s");
    // Reads of 100 events from places spread over the outbox.
    let head = s.outbox_head().expect("head");
    let mut lat = Vec::new();
    for i in 0..200u64 {
        let after = (i * 7919) % head.saturating_sub(100).max(1);
        let t = Instant::now();
        let events = s.outbox_since(after, 100).expect("read");
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(events.len(), 100);
    }
    println!("{name}: outbox_since, 100 events: {}", ms(lat));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let blocks = args
        .iter()
        .position(|a| a == "--blocks")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", load.trim());
    let dir = tempfile::tempdir().expect("tempdir");
    let embedded: Arc<dyn WatchStore> =
        Arc::new(EmbeddedWatchStore::open(&dir.path().join("watch")).expect("open"));
    run("embedded", &|| embedded.clone(), blocks);
    if !args.iter().any(|a| a == "--no-pg") {
        let pg = TempPostgres::start(true).expect("postgres");
        let url = pg.url().to_owned();
        run(
            "postgres",
            &|| Arc::new(PgWatchStore::connect(&url, 1).expect("connect")) as Arc<dyn WatchStore>,
            blocks,
        );
    }
}
