//! Ingestion benchmark (docs/BENCHMARKS.md): a local anvil with dense activity (blocks of
//! many transactions: ETH sends, WETH wraps and transfers), then
//! 1. the node alone: fetching every block's batch (block, receipts, traces) with
//!    `ChainSource::fetch_block`, which includes extraction (microseconds per block);
//! 2. full ingestion into the embedded store.
//!
//! The difference is Holdfast's own cost (storing). Each phase also reports the CPU time
//! of this process (Holdfast) and of anvil (`/proc/<pid>/stat`), to show where the time
//! goes. Plain binary:
//! `cargo bench -p holdfast-ingest --bench ingest [-- --blocks N --txs-per-block M]`.

// The binary's allocator, so that the figures are what `holdfast` runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::Instant;

use alloy::sol_types::SolCall;
use alloy_primitives::{Bytes, U256};
use futures_util::StreamExt;
use holdfast_chain::{ChainSource, SourceConfig};
use holdfast_ingest::{IngestOptions, Ingestor, Quiet};
use holdfast_store::EmbeddedStore;
use holdfast_testkit::{Anvil, Artifact, dev_account};
use serde_json::json;

alloy::sol! {
    function deposit() external payable;
    function transfer(address to, uint256 amount) external returns (bool);
}

/// CPU seconds (user + system) used so far by process `pid` ("self" for this one).
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // Clock ticks: 100 per second on Linux.
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// CPU of Holdfast and of the node over a phase of `wall` seconds, as shares of one core.
fn cpu_line(phase: &str, wall: f64, holdfast: f64, node: f64) -> String {
    format!(
        "{phase}: {wall:.1} s wall; CPU: Holdfast {holdfast:.1} s ({:.0}% of a core), anvil {node:.1} s ({:.0}% of a core)",
        100.0 * holdfast / wall,
        100.0 * node / wall
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let blocks = arg("--blocks", 200);
    let per_block = arg("--txs-per-block", 50);
    let node = Anvil::spawn_with(&["--no-mining"]).await.expect("anvil");
    // WETH, and every sender holds some.
    node.rpc("evm_setAutomine", json!([true]))
        .await
        .expect("automine on");
    let weth = node
        .deploy(
            dev_account(0),
            &Artifact::load("uniswap-v2-periphery", "WETH9")
                .expect("artifact")
                .bytecode,
            &[],
        )
        .await
        .expect("weth");
    for i in 0..10 {
        node.call_ok(
            dev_account(i),
            weth,
            U256::from(10u64).pow(U256::from(21)),
            depositCall {}.abi_encode().into(),
        )
        .await
        .expect("deposit");
    }
    node.rpc("evm_setAutomine", json!([false]))
        .await
        .expect("automine off");
    let started = Instant::now();
    for b in 0..blocks {
        for i in 0..per_block {
            let from = dev_account((i % 10) as usize);
            let to = dev_account(((i + 3) % 10) as usize);
            let tx = if i % 2 == 0 {
                json!({"from": from, "to": to, "value": U256::from(1_000 + b * per_block + i)})
            } else {
                json!({"from": from, "to": weth, "data": Bytes::from(transferCall { to, amount: U256::from(7 + i) }.abi_encode())})
            };
            node.rpc("eth_sendTransaction", json!([tx]))
                .await
                .expect("send");
        }
        node.rpc("evm_mine", json!([])).await.expect("mine");
    }
    let head = node.block_number().await.expect("head");
    eprintln!(
        "activity: {blocks} blocks x {per_block} txs sent and mined in {:.1} s; head {head}",
        started.elapsed().as_secs_f64()
    );

    let mut config = SourceConfig::new(node.http_url());
    config.requests_per_second = 100_000;
    let source = Arc::new(ChainSource::connect(config).await.expect("source"));
    // 1. The node: fetch every block (with extraction), 8 in flight, three runs.
    let anvil = node.pid().to_string();
    let mut fetch_rates = Vec::new();
    let mut transfers = 0;
    let (c0, n0, w0) = (cpu_secs("self"), cpu_secs(&anvil), Instant::now());
    for _ in 0..3 {
        let t = Instant::now();
        let mut stream = futures_util::stream::iter(0..=head)
            .map(|n| source.fetch_block(n))
            .buffered(8);
        transfers = 0;
        while let Some(b) = stream.next().await {
            transfers += b.expect("block").transfers.len();
        }
        fetch_rates.push((head + 1) as f64 / t.elapsed().as_secs_f64());
    }
    println!(
        "{}",
        cpu_line(
            "node phase, 3 runs",
            w0.elapsed().as_secs_f64(),
            cpu_secs("self") - c0,
            cpu_secs(&anvil) - n0
        )
    );
    fetch_rates.sort_by(|a, b| a.total_cmp(b));
    println!(
        "node: fetch + extract {} blocks ({transfers} transfers): median {:.0} blocks/s ({:.0} transfers/s) over 3 runs, traces via {}",
        head + 1,
        fetch_rates[1],
        fetch_rates[1] * transfers as f64 / (head + 1) as f64,
        source.trace_mode().name()
    );
    // 2. Full ingestion into the embedded store, three fresh stores.
    let mut rates = Vec::new();
    let (c0, n0, w0) = (cpu_secs("self"), cpu_secs(&anvil), Instant::now());
    for _ in 0..3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(EmbeddedStore::open(&dir.path().join("s")).expect("store"));
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let t = Instant::now();
        let summary = Ingestor::new(source.clone(), store, IngestOptions::default())
            .run(&Quiet, rx)
            .await
            .expect("ingest");
        let secs = t.elapsed().as_secs_f64();
        rates.push((
            summary.blocks as f64 / secs,
            summary.transfers as f64 / secs,
        ));
    }
    println!(
        "{}",
        cpu_line(
            "ingest phase, 3 runs",
            w0.elapsed().as_secs_f64(),
            cpu_secs("self") - c0,
            cpu_secs(&anvil) - n0
        )
    );
    rates.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!(
        "ingest: {} blocks into the embedded store: median {:.0} blocks/s, {:.0} transfers/s over 3 runs",
        head + 1,
        rates[1].0,
        rates[1].1
    );
    println!(
        "share of ingestion time spent waiting on the node (fetch + extract): {:.0}%",
        100.0 * rates[1].0 / fetch_rates[1]
    );
}
