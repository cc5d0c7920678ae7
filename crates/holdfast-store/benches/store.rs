//! Store benchmark (docs/STORE.md, docs/BENCHMARKS.md), a plain binary printing medians and
//! percentiles: bulk write throughput, the same with one commit per block (how ingestion
//! writes), "transfers out of address A from block B" latency, transfers of a tx, and bytes
//! on disk per transfer; on the embedded store and on PostgreSQL (a throwaway server, as in
//! the tests) side by side.
//!
//! `cargo bench -p holdfast-store --bench store [-- --quick] [--no-pg] [--no-embedded]`:
//! 10 M transfers (1 M with `--quick`) in blocks of 250, written 40 blocks per commit.

// The binary's allocator, so that the figures are what `holdfast` runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use holdfast_store::testing::TempPostgres;
use holdfast_store::{BlockData, EmbeddedOptions, EmbeddedStore, PgStore, Store, TransferQuery};

#[allow(dead_code)]
#[path = "support/workload.rs"]
mod workload;
use workload::{BLOCKS_PER_WRITE, PER_BLOCK, Rng, block, sender, tx_hash};

/// Blocks written one commit each after the bulk load (the ingestion path).
const SINGLE_BLOCKS: u64 = 400;

fn percentile(xs: &mut [f64], p: f64) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[((xs.len() as f64 - 1.0) * p) as usize]
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Latencies in microseconds: p50, p99, max.
fn latencies(mut lat: Vec<f64>) -> String {
    format!(
        "p50 {:.0} us, p99 {:.0} us, max {:.0} us",
        percentile(&mut lat, 0.5),
        percentile(&mut lat, 0.99),
        percentile(&mut lat, 1.0)
    )
}

/// Random "out of A from block B" queries: A from the pool (hot or cold), B uniform.
fn out_of_a_from_b(
    name: &str,
    when: &str,
    store: &dyn Store,
    rng: &mut Rng,
    blocks: u64,
    n: usize,
) {
    let mut lat = Vec::with_capacity(n);
    let mut found = 0;
    for _ in 0..n {
        let a = sender(rng);
        let from_block = rng.next() % blocks;
        let t = Instant::now();
        found += store
            .transfers(
                1,
                TransferQuery::From {
                    address: a,
                    from_block,
                },
                100,
            )
            .expect("query")
            .len();
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!(
        "{name}: transfers out of A from block B, limit 100, {n} random queries ({when}): {} ({:.1} rows/query)",
        latencies(lat),
        found as f64 / n as f64
    );
}

fn run(
    name: &str,
    store: &dyn Store,
    transfers: u64,
    settle: &dyn Fn() -> String,
    disk: &dyn Fn() -> (u64, String),
) {
    println!("{name}: load average before: {}", load());
    let blocks = transfers / PER_BLOCK as u64;
    let mut rng = Rng(42);
    let mut rates = Vec::new();
    let mut in_store = Duration::ZERO;
    let mut n = 0;
    while n < blocks {
        let batch: Vec<BlockData> = (n..(n + BLOCKS_PER_WRITE as u64).min(blocks))
            .map(|i| block(i, &mut rng))
            .collect();
        let count: usize = batch.iter().map(|b| b.transfers.len()).sum();
        let t = Instant::now();
        store.apply_blocks(1, &batch).expect("write");
        let dt = t.elapsed();
        in_store += dt;
        rates.push(count as f64 / dt.as_secs_f64());
        n += batch.len() as u64;
    }
    let written = blocks * PER_BLOCK as u64;
    let median = percentile(&mut rates, 0.5);
    println!(
        "{name}: bulk write, {written} transfers in commits of {BLOCKS_PER_WRITE} blocks x {PER_BLOCK}: {:.0} transfers/s (total time in the store {:.1} s; median commit {median:.0} transfers/s)",
        written as f64 / in_store.as_secs_f64(),
        in_store.as_secs_f64(),
    );
    // The ingestion path: one commit per block, on top of the loaded store.
    let mut single = Vec::new();
    let t = Instant::now();
    for i in blocks..blocks + SINGLE_BLOCKS {
        let b = block(i, &mut rng);
        let s = Instant::now();
        store
            .apply_block(1, &b.block, &b.transfers, &b.conversions)
            .expect("write");
        single.push(s.elapsed().as_secs_f64() * 1e3);
    }
    let total = t.elapsed().as_secs_f64();
    let sum: f64 = single.iter().sum();
    println!(
        "{name}: one commit per block ({SINGLE_BLOCKS} blocks x {PER_BLOCK}): {:.0} transfers/s, median commit {:.2} ms ({total:.1} s incl. generating)",
        (SINGLE_BLOCKS * PER_BLOCK as u64) as f64 / (sum / 1e3),
        percentile(&mut single, 0.5),
    );
    let blocks = blocks + SINGLE_BLOCKS;
    let stored = blocks * PER_BLOCK as u64;
    out_of_a_from_b(
        name,
        "right after the writes",
        store,
        &mut rng,
        blocks,
        5_000,
    );
    let t = Instant::now();
    let what = settle();
    println!("{name}: {what}: {:.1} s", t.elapsed().as_secs_f64());
    out_of_a_from_b(
        name,
        &format!("settled, {stored} stored"),
        store,
        &mut rng,
        blocks,
        20_000,
    );
    let mut lat = Vec::new();
    for _ in 0..2_000 {
        let n = rng.next() % blocks;
        let tx = tx_hash(n, rng.next() % PER_BLOCK as u64);
        let t = Instant::now();
        let got = store
            .transfers(1, TransferQuery::Tx { tx_hash: tx }, 100)
            .expect("query");
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(got.len(), 1, "tx {tx} of block {n}");
    }
    println!(
        "{name}: transfers of a tx (2 000 random): {}",
        latencies(lat)
    );
    let (bytes, what) = disk();
    println!(
        "{name}: {:.1} MB on disk ({what}), {:.0} bytes per transfer",
        bytes as f64 / 1e6,
        bytes as f64 / stored as f64
    );
    println!("{name}: load average after: {}", load());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let transfers: u64 = if has("--quick") {
        1_000_000
    } else {
        10_000_000
    };
    if !has("--no-embedded") {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(&dir.path().join("store")).expect("open");
        let before = std::cell::Cell::new(0);
        run(
            "embedded",
            &store,
            transfers,
            &|| {
                before.set(store.disk_space().expect("disk"));
                store.settle().expect("settle");
                "flushing memtables and waiting for compactions".to_owned()
            },
            &|| {
                (
                    store.disk_space().expect("disk"),
                    format!(
                        "settled tables; {:.1} MB before settling, journal included",
                        before.get() as f64 / 1e6
                    ),
                )
            },
        );
        recovery(store, &dir.path().join("store"), transfers);
    }
    if !has("--no-pg") {
        let pg = TempPostgres::start(true).expect("PostgreSQL (scripts/install-postgres)");
        let store = PgStore::connect(pg.url()).expect("connect");
        run(
            "postgresql",
            &store,
            transfers,
            &|| {
                let mut c = postgres::Client::connect(pg.url(), postgres::NoTls).expect("connect");
                // Two statements: VACUUM cannot run inside the implicit transaction that a
                // multi-statement batch is.
                c.batch_execute("VACUUM ANALYZE").expect("vacuum");
                c.batch_execute("CHECKPOINT").expect("checkpoint");
                "VACUUM ANALYZE and CHECKPOINT".to_owned()
            },
            &|| {
                (
                    pg_size(pg.url()),
                    "tables and indexes, pg_total_relation_size".to_owned(),
                )
            },
        );
    }
}

/// Recovery after a kill: fills the index buffer (to just under a write-out), closes without
/// writing it out, as a kill would leave it, and times the reopen, which rebuilds the
/// buffer from the records; then checks that the buffered transfers answer.
fn recovery(store: EmbeddedStore, path: &std::path::Path, stored: u64) {
    let first = stored / PER_BLOCK as u64 + SINGLE_BLOCKS;
    let blocks = (EmbeddedOptions::default().index_buffer / PER_BLOCK - 1) as u64;
    let mut rng = Rng(7);
    let mut n = first;
    let mut last = None;
    while n < first + blocks {
        let batch: Vec<BlockData> = (n..(n + BLOCKS_PER_WRITE as u64).min(first + blocks))
            .map(|i| block(i, &mut rng))
            .collect();
        store.apply_blocks(1, &batch).expect("write");
        last = batch.last().map(|b| b.transfers[0].clone());
        n += batch.len() as u64;
    }
    store.keep_index_buffers_on_close();
    drop(store);
    let t = Instant::now();
    let store = EmbeddedStore::open(path).expect("reopen");
    let opened = t.elapsed().as_secs_f64();
    let last = last.expect("a block");
    let found = store
        .transfers(
            1,
            TransferQuery::From {
                address: last.from,
                from_block: last.block_number,
            },
            100,
        )
        .expect("query");
    let secs = t.elapsed().as_secs_f64();
    assert!(found.contains(&last), "the last buffered transfer answers");
    println!(
        "embedded: reopen after a kill with {} transfers in the index buffer: {secs:.1} s to the first answer ({opened:.1} s fjall's open and journal replay, {:.1} s rebuilding the buffer from the records on the chain's first use)",
        blocks * PER_BLOCK as u64,
        secs - opened
    );
}

fn pg_size(url: &str) -> u64 {
    let mut c = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    let row = c
        .query_one(
            "SELECT pg_total_relation_size('transfers') + pg_total_relation_size('blocks') + pg_total_relation_size('conversions')",
            &[],
        )
        .expect("size");
    row.get::<_, i64>(0) as u64
}
