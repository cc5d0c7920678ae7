//! Block-detail benchmark (docs/BENCHMARKS.md, "Watch: block detail"): a local anvil mines
//! blocks of 200 transactions (half ETH sends, half ERC-20 transfers), then
//! 1. latency: for each new block, from the head announcement over WebSocket
//!    (`subscribe_heads`, `Head::seen_at`) to `fetch_detail` returning, in geth mode
//!    (callTracer + prestateTracer) and in parity mode (`trace_replayBlockTransactions`);
//!    then, for where the time goes, the node alone answering the detail's trace calls
//!    (through the test harness's plain client, into untyped JSON) and `fetch_block` of the
//!    same block;
//! 2. throughput: `fetch_block` against `fetch_detail` over those blocks, 8 in flight,
//!    several runs, in both modes (geth mode over the first `--geth-blocks` only: anvil's
//!    `debug_traceBlockByNumber` takes seconds per block of 200 transactions).
//!
//! The CPU time this process (Holdfast) spends in each `fetch_detail` is read from the
//! process CPU clock. Plain binary: `cargo bench -p holdfast-chain --bench detail
//! [-- --blocks N --txs-per-block M --runs R --geth-blocks G --only geth|parity]`.

// The binary's allocator, so that the figures are what `holdfast` runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use alloy::sol_types::SolCall;
use alloy_primitives::{Address, Bytes, U256};
use futures_util::StreamExt;
use holdfast_chain::{ChainSource, SourceConfig, TraceMode};
use holdfast_testkit::{Anvil, deploy, dev_account};
use serde_json::json;

alloy::sol! {
    function transfer(address to, uint256 amount) external returns (bool);
    function mint(address to, uint256 amount) external;
}

/// `--name N` from the command line, or `default`.
fn option(name: &str, default: usize) -> usize {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time used by this process so far.
fn cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The `p`-quantile (0..=1) of `samples`, nearest rank.
fn quantile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let rank = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

async fn connect(url: String, mode: TraceMode) -> ChainSource {
    let mut config = SourceConfig::new(url);
    config.trace_mode = Some(mode);
    config.requests_per_second = 100_000;
    config.poll_interval = Duration::from_millis(20);
    // Eight geth-mode traces of 200-transaction blocks at once take anvil minutes.
    config.timeout = Duration::from_secs(600);
    let source = ChainSource::connect(config).await.expect("source");
    assert!(
        source.serves_state_diff(),
        "{mode:?}: anvil serves state diffs"
    );
    source
}

/// Sends `count` transactions into the pending pool: even ones ETH, odd ones `token`.
async fn fill(node: &Anvil, token: Address, block: usize, count: usize) {
    for i in 0..count {
        let from = dev_account(i % 10);
        let to = dev_account((i + 3) % 10);
        let tx = if i % 2 == 0 {
            json!({"from": from, "to": to, "value": U256::from(1_000 + block * count + i)})
        } else {
            let data = transferCall {
                to,
                amount: U256::from(7 + i),
            };
            json!({"from": from, "to": token, "data": Bytes::from(data.abi_encode())})
        };
        node.rpc("eth_sendTransaction", json!([tx]))
            .await
            .expect("send");
    }
}

/// Blocks per second of `fetch` over `blocks`, 8 in flight.
async fn rate<F, Fut, T>(blocks: std::ops::RangeInclusive<u64>, fetch: F) -> f64
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<T, holdfast_chain::ChainError>>,
{
    let count = blocks.clone().count() as f64;
    let started = Instant::now();
    let mut stream = futures_util::stream::iter(blocks).map(fetch).buffered(8);
    while let Some(b) = stream.next().await {
        b.expect("block");
    }
    count / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let blocks = option("--blocks", 30);
    let per_block = option("--txs-per-block", 200);
    let runs = option("--runs", 3);
    let geth_blocks = option("--geth-blocks", 4) as u64;
    let only = std::env::args()
        .skip_while(|a| a != "--only")
        .nth(1)
        .unwrap_or_default();
    let wanted =
        |mode: TraceMode| only.is_empty() || only.eq_ignore_ascii_case(&format!("{mode:?}"));
    let node = Anvil::spawn_with(&["--no-mining"]).await.expect("anvil");
    node.rpc("evm_setAutomine", json!([true]))
        .await
        .expect("automine on");
    let minter = dev_account(0);
    let token = deploy::erc20(&node, minter, "Bench", "BNC")
        .await
        .expect("token");
    for i in 0..10 {
        let mint = mintCall {
            to: dev_account(i),
            amount: U256::from(10u64).pow(U256::from(24)),
        };
        node.call_ok(minter, token, U256::ZERO, mint.abi_encode().into())
            .await
            .expect("mint");
    }
    node.rpc("evm_setAutomine", json!([false]))
        .await
        .expect("automine off");

    // 1. Latency at the head, half the blocks in each mode.
    let first = node.block_number().await.expect("head") + 1;
    for mode in [TraceMode::Geth, TraceMode::Parity] {
        if !wanted(mode) {
            continue;
        }
        // Both modes: half the blocks each.
        let count = match (only.is_empty(), mode) {
            (false, _) => blocks,
            (true, TraceMode::Geth) => blocks / 2,
            (true, _) => blocks - blocks / 2,
        };
        let source = connect(node.ws_url(), mode).await;
        let mut heads = source.subscribe_heads();
        let mut last = heads.next().await.expect("current head").number;
        let (mut announce, mut detail, mut block) = (Vec::new(), Vec::new(), Vec::new());
        let (mut traces, mut holdfast) = (Vec::new(), Vec::new());
        for b in 0..count {
            fill(&node, token, b, per_block).await;
            let mined = Instant::now();
            node.rpc("evm_mine", json!([])).await.expect("mine");
            let head = heads.next().await.expect("head");
            assert_eq!(head.number, last + 1, "one block mined");
            last = head.number;
            let cpu_before = cpu();
            let d = source.fetch_detail(head.number).await.expect("detail");
            detail.push(millis(head.seen_at.elapsed()));
            holdfast.push(millis(cpu() - cpu_before));
            announce.push(millis(head.seen_at.saturating_duration_since(mined)));
            assert_eq!(d.txs.len(), per_block, "every transaction in the block");
            let tag = format!("{:#x}", head.number);
            let t = Instant::now();
            if mode == TraceMode::Geth {
                for tracer in [
                    json!({"tracer": "callTracer"}),
                    json!({"tracer": "prestateTracer", "tracerConfig": {"diffMode": true}}),
                ] {
                    let params = json!([tag, tracer]);
                    node.rpc("debug_traceBlockByNumber", params)
                        .await
                        .expect("trace");
                }
            } else {
                let params = json!([tag, ["trace", "stateDiff"]]);
                node.rpc("trace_replayBlockTransactions", params)
                    .await
                    .expect("replay");
            }
            traces.push(millis(t.elapsed()));
            let t = Instant::now();
            source.fetch_block(head.number).await.expect("block");
            block.push(millis(t.elapsed()));
        }
        println!(
            "latency {mode:?} ({count} blocks of {per_block} txs, ws): announcement to fetch_detail returned p50 {:.1} ms, p99 {:.1} ms (Holdfast CPU in it p50 {:.1} ms, p99 {:.1} ms); the node alone answering the trace calls p50 {:.1} ms, p99 {:.1} ms; fetch_block alone p50 {:.1} ms, p99 {:.1} ms; evm_mine sent to announcement p50 {:.1} ms",
            quantile(&mut detail, 0.5),
            quantile(&mut detail, 0.99),
            quantile(&mut holdfast, 0.5),
            quantile(&mut holdfast, 0.99),
            quantile(&mut traces, 0.5),
            quantile(&mut traces, 0.99),
            quantile(&mut block, 0.5),
            quantile(&mut block, 0.99),
            quantile(&mut announce, 0.5),
        );
    }
    let last = node.block_number().await.expect("head");

    // 2. Throughput over the same blocks, over HTTP.
    for (mode, last) in [
        (TraceMode::Geth, last.min(first + geth_blocks - 1)),
        (TraceMode::Parity, last),
    ]
    .into_iter()
    .filter(|(m, _)| wanted(*m))
    {
        let source = connect(node.http_url(), mode).await;
        let (mut block_rates, mut detail_rates) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            block_rates.push(rate(first..=last, |n| source.fetch_block(n)).await);
            detail_rates.push(rate(first..=last, |n| source.fetch_detail(n)).await);
        }
        let (b, d) = (
            quantile(&mut block_rates, 0.5),
            quantile(&mut detail_rates, 0.5),
        );
        println!(
            "throughput {mode:?} ({} blocks of {per_block} txs, 8 in flight, median of {runs}): fetch_block {b:.2} blocks/s, fetch_detail {d:.2} blocks/s, ratio {:.2}; runs: {block_rates:.2?} / {detail_rates:.2?}",
            last + 1 - first,
            d / b,
        );
    }
}
