//! The watch end to end (docs/BENCHMARKS.md, "Watch: detection latency", "Watch: catch-up",
//! "Watch: replay"), with the watch file of the `detect` bench (10,000 watched addresses in
//! 100 sets, 1,000 rules, 200 per detector 1–5), one of whose sets also holds a hot wallet
//! (an anvil dev account) and one of whose outflow rules alerts above 1 ETH:
//! 1. latency: a local anvil over WebSocket mines blocks of 200 transactions (ETH sends and
//!    ERC-20 transfers between dev accounts, `--hits` of them 2-ETH sends from the hot wallet
//!    that the rule alerts on); a `Runner` follows the head at 0 confirmations with a webhook
//!    sink to a receiver in this process. Per block: the engine's `BlockTiming` (announcement
//!    to commit: fetch, store, detect, commit) and commit to the receiver holding the block's
//!    last alert (delivery);
//! 2. catch-up: `--catchup-blocks` more blocks pre-mined, then, alternately, a `Runner` from
//!    the first of them to the last (`stop_after`, prefetch 8) and the node alone
//!    (`fetch_detail` in parity mode, 8 in flight) over the same blocks; blocks/s of each;
//! 3. replay: `--transfers` synthetic transfers (blocks of 250, one sender in five watched)
//!    written to an embedded store with `apply_blocks`, then the store scan alone
//!    (`replay::scan_blocks`: the pages replay reads, cut into blocks) and `replay::replay`
//!    (scan and rules), on this thread.
//!
//! Plain binary: `cargo bench -p holdfast-watch --bench watch [-- --only latency|catchup|replay
//! --blocks N --hits H --catchup-blocks C --runs R --transfers T --mix rare|storm --replay-from B
//! --takeovers K]`.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

// The binary's allocator, so that the figures are what `holdfast` runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, U256, keccak256};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use futures_util::StreamExt;
use holdfast_chain::{ChainSource, SourceConfig, TraceMode};
use holdfast_intel::IntelIndex;
use holdfast_primitives::{Asset, BlockRef, Position, Transfer};
use holdfast_store::watch::EmbeddedWatchStore;
use holdfast_store::{
    AddressQuery, BlockData, Direction, EmbeddedStore, MAX_LIMIT, Store, TransferQuery,
};
use holdfast_testkit::{Anvil, deploy, dev_account, safe};
use holdfast_watch::config::validate;
use holdfast_watch::detect::{FileRules, StoreHistory};
use holdfast_watch::replay::{replay, scan_blocks};
use holdfast_watch::{
    BlockTiming, ChainInfo, ChainOptions, DeliveryConfig, IntelView, Responder, Runner, RunnerDeps,
    Start, Units, WatchState,
};
use serde_json::json;

const TXS: usize = 200;
const WATCHED: usize = 10_000;
const SETS: usize = 100;
const RULES_PER_DETECTOR: usize = 200;
const CHAIN_ID: u64 = 31_337;
/// The hot wallet: a dev account in set `s0`, the set of rule `outflow0` (above 1 ETH).
const HOT: usize = 9;

fn option(name: &str, default: usize) -> usize {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn addr(&mut self) -> Address {
        let mut b = [0u8; 20];
        for c in b.chunks_mut(8) {
            let v = self.next().to_be_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
        Address::from(b)
    }
}

fn watched(i: usize) -> Address {
    Address::left_padding_from(&(0x1_0000_0000u64 + i as u64).to_be_bytes())
}

/// The `detect` bench's watch file (copied generator), with a chain, a webhook sink, and the
/// hot wallet in set `s0` whose rule `outflow0` alerts above 1 ETH.
fn config(
    rpc: &str,
    token: Address,
    safe: Address,
    start_block: Option<u64>,
    hook: &str,
) -> String {
    let mut t = format!(
        "[[chain]]\nname = \"anvil\"\nrpc = \"{rpc}\"\nchain_id = {CHAIN_ID}\nconfirmations = 0\nexplorer = \"https://etherscan.io\"\n"
    );
    if let Some(b) = start_block {
        writeln!(t, "start_block = {b}").unwrap();
    }
    t.push_str("\n[[asset]]\nsymbol = \"ETH\"\nchain = \"anvil\"\nkind = \"native\"\n\n");
    writeln!(
        t,
        "[[asset]]\nsymbol = \"USDC\"\nchain = \"anvil\"\ntoken = \"{token}\"\ndecimals = 6\n"
    )
    .unwrap();
    for s in 0..SETS {
        let mut addrs: Vec<String> = (0..WATCHED / SETS)
            .map(|i| format!("\"{}\"", watched(s * (WATCHED / SETS) + i)))
            .collect();
        if s == 0 {
            addrs[0] = format!("\"{}\"", dev_account(HOT));
            addrs[1] = format!("\"{safe}\"");
        }
        writeln!(
            t,
            "[[set]]\nname = \"s{s}\"\naddresses = [{}]\n",
            addrs.join(", ")
        )
        .unwrap();
    }
    for i in 0..RULES_PER_DETECTOR {
        let set = format!("s{}", i % SETS);
        let eth = if i == 0 { "1" } else { "1000" };
        writeln!(t, "[[rule]]\nname = \"storage{i}\"\ndetector = \"critical_storage\"\ntargets = [\"{set}\"]\n").unwrap();
        writeln!(
            t,
            "[[rule]]\nname = \"outflow{i}\"\ndetector = \"outflow\"\ntargets = [\"{set}\"]\namount_above = {{ ETH = \"{eth}\", USDC = \"1000000\" }}\nvelocity = {{ window = \"1h\", count_above = 1000 }}\ndrain = {{ percent = 90, blocks = 10 }}\n"
        )
        .unwrap();
        writeln!(
            t,
            "[[rule]]\nname = \"grant{i}\"\ndetector = \"grant\"\ntargets = [\"{set}\"]\n"
        )
        .unwrap();
        writeln!(
            t,
            "[[rule]]\nname = \"cp{i}\"\ndetector = \"counterparty\"\ntargets = [\"{set}\"]\n"
        )
        .unwrap();
        writeln!(t, "[[rule]]\nname = \"poison{i}\"\ndetector = \"poisoning\"\ntargets = [\"{set}\"]\nprefix = 5\nsuffix = 5\n").unwrap();
    }
    writeln!(
        t,
        "[[sink]]\nkind = \"webhook\"\nname = \"soc\"\nurl = \"{hook}\"\n"
    )
    .unwrap();
    t
}

fn parse(text: &str) -> holdfast_watch::WatchConfig {
    validate("bench.toml", text, std::path::Path::new("."))
        .expect("valid watch file")
        .config
}

struct Intel(Arc<IntelIndex>);
impl IntelView for Intel {
    fn index(&self) -> Arc<IntelIndex> {
        self.0.clone()
    }
}

fn intel() -> Arc<IntelIndex> {
    Arc::new(holdfast_intel::load(None).expect("intel").index)
}

/// `selector(address, uint256)` calldata.
fn call(signature: &str, to: Address, amount: U256) -> String {
    let mut d = keccak256(signature)[..4].to_vec();
    d.extend_from_slice(to.into_word().as_slice());
    d.extend_from_slice(&amount.to_be_bytes::<32>());
    format!("0x{}", hex::encode(d))
}

/// `count` transactions into the pending pool: `hits` 2-ETH sends from the hot wallet to
/// fresh addresses, then ETH sends and ERC-20 transfers between the other dev accounts.
async fn fill(
    node: &Anvil,
    token: Address,
    block: usize,
    count: usize,
    hits: usize,
    takeover: Option<Address>,
) {
    if let Some(safe) = takeover {
        // The watched Safe (owner: the hot wallet, threshold 1) sets a new fallback handler:
        // a critical slot written, the shape of a takeover's configuration change.
        let handler = Address::left_padding_from(&((0x7000_0000 + block) as u64).to_be_bytes());
        let data = safe::exec_data(
            &safe::SafeTx::call(safe, U256::ZERO, safe::set_fallback_handler(handler)),
            safe::prevalidated(&[dev_account(HOT)]),
        );
        node.rpc(
            "eth_sendTransaction",
            json!([{"from": dev_account(HOT), "to": safe, "data": data, "gas": "0x30d40"}]),
        )
        .await
        .expect("takeover");
    }
    for i in 0..count.saturating_sub(usize::from(takeover.is_some())) {
        let tx = if i < hits {
            let to = Address::left_padding_from(
                &((0x1_0000_0000_0000 + block * 1000 + i) as u64).to_be_bytes(),
            );
            json!({"from": dev_account(HOT), "to": to, "value": U256::from(2u64) * U256::from(10u64).pow(U256::from(18))})
        } else {
            let from = dev_account(i % HOT);
            let to = dev_account((i + 3) % HOT);
            if i % 2 == 0 {
                json!({"from": from, "to": to, "value": U256::from(1_000 + block * count + i)})
            } else {
                json!({"from": from, "to": token, "data": call("transfer(address,uint256)", to, U256::from(7 + i))})
            }
        };
        node.rpc("eth_sendTransaction", json!([tx]))
            .await
            .expect("send");
    }
}

/// The receiver: when each raised alert's key first arrived, and its block.
#[derive(Default)]
struct Arrivals {
    /// Key → (arrival, block, detector).
    at: Mutex<HashMap<String, (Instant, u64, String)>>,
}

async fn receive(State(arrivals): State<Arc<Arrivals>>, body: Bytes) -> StatusCode {
    let at = Instant::now();
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    if v["event"] == "raised" {
        let key = v["key"].as_str().unwrap_or_default().to_owned();
        let block = v["alert"]["block_number"].as_u64().unwrap_or_default();
        let detector = v["alert"]["detector"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        arrivals
            .at
            .lock()
            .unwrap()
            .entry(key)
            .or_insert((at, block, detector));
    }
    StatusCode::NO_CONTENT
}

async fn receiver() -> (String, Arc<Arrivals>) {
    let arrivals = Arc::new(Arrivals::default());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, arrivals)
}

type Commits = Arc<Mutex<Vec<(BlockTiming, Instant)>>>;

async fn runner(
    text: &str,
    dir: &std::path::Path,
    options: ChainOptions,
    intel: Arc<IntelIndex>,
) -> (Runner, Commits) {
    let commits: Commits = Arc::default();
    let c = commits.clone();
    let deps = RunnerDeps {
        transfers: Arc::new(EmbeddedStore::open(&dir.join("t")).expect("store")),
        watch: Arc::new(EmbeddedWatchStore::open(&dir.join("w")).expect("watch store")),
        intel: Arc::new(Intel(intel)),
        responder: Responder {
            freezer: None,
            labeler: None,
            notify_dir: None,
        },
        owner: "bench".into(),
        on_alert: None,
        on_block: Some(Arc::new(move |t: &BlockTiming| {
            c.lock().unwrap().push((*t, Instant::now()));
        })),
        env: Box::new(|_| None),
        chain_options: Some(options),
        delivery: DeliveryConfig::default(),
    };
    let r = Runner::start(&parse(text), deps).await.expect("starts");
    (r, commits)
}

fn ms_row(name: &str, xs: &mut [f64]) -> String {
    let (p50, p99) = (quantile(xs, 0.5), quantile(xs, 0.99));
    format!(
        "  {name:<28} p50 {p50:>8.1} ms  p99 {p99:>8.1} ms  max {:>8.1} ms",
        quantile(xs, 1.0)
    )
}

async fn setup() -> (Anvil, Address, Address) {
    let node = Anvil::spawn_with(&["--no-mining"]).await.expect("anvil");
    node.rpc("evm_setAutomine", json!([true])).await.unwrap();
    let minter = dev_account(0);
    let token = deploy::erc20(&node, minter, "Bench", "BNC")
        .await
        .expect("token");
    for i in 0..HOT {
        let data = call(
            "mint(address,uint256)",
            dev_account(i),
            U256::from(10u64).pow(U256::from(24)),
        );
        node.rpc(
            "eth_sendTransaction",
            json!([{"from": minter, "to": token, "data": data}]),
        )
        .await
        .expect("mint");
    }
    let infra = safe::SafeInfra::deploy(&node, safe::SafeVersion::V1_1_1, minter)
        .await
        .expect("Safe 1.1.1");
    let safe = infra
        .create_safe(&node, minter, &[dev_account(HOT)], 1)
        .await
        .expect("Safe");
    node.rpc("evm_setAutomine", json!([false])).await.unwrap();
    (node, token, safe)
}

async fn latency(node: &Anvil, token: Address, safe: Address, intel: Arc<IntelIndex>) {
    let blocks = option("--blocks", 40);
    let hits = option("--hits", 2);
    // Every `takeovers`-th block also carries a critical-slot write on a watched Safe.
    let takeovers = option("--takeovers", 1);
    let dir = tempfile::tempdir().unwrap();
    let (hook, arrivals) = receiver().await;
    let text = config(&node.ws_url(), token, safe, None, &hook);
    let (r, commits) = runner(
        &text,
        dir.path(),
        ChainOptions {
            start: Start::Head,
            ..ChainOptions::default()
        },
        intel,
    )
    .await;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(r.run(rx));
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("latency: load average before: {}", load());
    let (mut total, mut fetch, mut store, mut detect, mut commit) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut delivery, mut to_receiver, mut alerts) = (vec![], vec![], 0usize);
    let (mut first_look, mut early_delivery) = (vec![], vec![]);
    let mut storage_latency = vec![];
    for b in 0..blocks {
        fill(
            node,
            token,
            b,
            TXS,
            hits,
            (takeovers > 0 && b % takeovers == 0).then_some(safe),
        )
        .await;
        node.rpc("evm_mine", json!([])).await.expect("mine");
        let number = node.block_number().await.unwrap();
        let waited = Instant::now();
        let (timing, committed) = loop {
            let found = commits
                .lock()
                .unwrap()
                .iter()
                .find(|(t, _)| t.number == number)
                .cloned();
            if let Some(f) = found {
                break f;
            }
            assert!(
                waited.elapsed() < Duration::from_secs(60),
                "block {number} committed"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let last = loop {
            let at: Vec<(Instant, bool)> = arrivals
                .at
                .lock()
                .unwrap()
                .values()
                .filter(|(_, n, _)| *n == number)
                .map(|(at, _, d)| (*at, d == "critical_storage"))
                .collect();
            if at.len() >= timing.alerts {
                let announced = committed - timing.total;
                for (t, storage) in &at {
                    if *storage {
                        storage_latency.push(millis(t.saturating_duration_since(announced)));
                    }
                }
                break at.into_iter().map(|(t, _)| t).max();
            }
            assert!(
                waited.elapsed() < Duration::from_secs(60),
                "block {number}'s alerts delivered"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let announced = committed - timing.total;
        total.push(millis(timing.total));
        fetch.push(millis(timing.fetch));
        store.push(millis(timing.store));
        detect.push(millis(timing.detect));
        commit.push(millis(timing.commit));
        alerts += timing.alerts;
        if let Some(last) = last {
            to_receiver.push(millis(last.saturating_duration_since(announced)));
            match timing.first_look {
                Some(raised) => {
                    first_look.push(millis(raised));
                    early_delivery.push(millis(last.saturating_duration_since(announced + raised)));
                }
                None => delivery.push(millis(last.saturating_duration_since(committed))),
            }
        }
    }
    println!("latency: load average after: {}", load());
    println!(
        "latency: {blocks} blocks of {TXS} txs ({hits} alerting sends each), {alerts} alerts; {} blocks with alerts",
        to_receiver.len()
    );
    println!("{}", ms_row("announcement -> receiver", &mut to_receiver));
    if !storage_latency.is_empty() {
        println!(
            "{}",
            ms_row("  critical storage alerts", &mut storage_latency)
        );
    }
    if !first_look.is_empty() {
        println!(
            "  first look (detail without state diffs, rules, early raise): {} of {} blocks with alerts",
            first_look.len(),
            to_receiver.len()
        );
        println!(
            "{}",
            ms_row("  announcement -> raised early", &mut first_look)
        );
        println!(
            "{}",
            ms_row("  raised early -> receiver", &mut early_delivery)
        );
    }
    println!("{}", ms_row("announcement -> commit", &mut total));
    println!("{}", ms_row("  fetch (detail)", &mut fetch));
    println!("{}", ms_row("  store (transfers)", &mut store));
    println!("{}", ms_row("  detect", &mut detect));
    println!("{}", ms_row("  commit (outbox+checkpoint)", &mut commit));
    if !delivery.is_empty() {
        println!("{}", ms_row("commit -> receiver", &mut delivery));
    }
    stop.send(true).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
}

async fn catchup(node: &Anvil, token: Address, safe: Address, intel: Arc<IntelIndex>) {
    let count = option("--catchup-blocks", 40);
    let runs = option("--runs", 3);
    let first = node.block_number().await.unwrap() + 1;
    for b in 0..count {
        fill(node, token, 10_000 + b, TXS, 2, None).await;
        node.rpc("evm_mine", json!([])).await.expect("mine");
    }
    let last = node.block_number().await.unwrap();
    let blocks = (last + 1 - first) as f64;
    println!(
        "catch-up: {blocks} blocks {first}..={last} pre-mined; load average: {}",
        load()
    );
    let (hook, _arrivals) = receiver().await;
    let mut config = SourceConfig::new(node.ws_url());
    config.trace_mode = Some(TraceMode::Parity);
    config.requests_per_second = 100_000;
    config.timeout = Duration::from_secs(600);
    let source = ChainSource::connect(config).await.expect("source");
    let (mut node_rates, mut watch_rates) = (vec![], vec![]);
    for run in 0..runs {
        let started = Instant::now();
        let mut stream = futures_util::stream::iter(first..=last)
            .map(|n| source.fetch_detail(n))
            .buffered(8);
        while let Some(b) = stream.next().await {
            b.expect("detail");
        }
        node_rates.push(blocks / started.elapsed().as_secs_f64());

        let dir = tempfile::tempdir().unwrap();
        let text = config_text(node, token, safe, first, &hook);
        let (r, commits) = runner(
            &text,
            dir.path(),
            ChainOptions {
                start: Start::Block(first),
                stop_after: Some(last),
                prefetch: 8,
                ..ChainOptions::default()
            },
            intel.clone(),
        )
        .await;
        let (_stop, rx) = tokio::sync::watch::channel(false);
        let started = Instant::now();
        r.run(rx).await.expect("runs");
        let commits = commits.lock().unwrap();
        let end = commits.iter().map(|(_, at)| *at).max().unwrap();
        assert_eq!(commits.len() as f64, blocks, "every block committed");
        watch_rates.push(blocks / end.duration_since(started).as_secs_f64());
        println!(
            "catch-up run {run}: node alone {:.2} blocks/s, watch {:.2} blocks/s; load {}",
            node_rates[run],
            watch_rates[run],
            load()
        );
    }
    let (n, w) = (
        quantile(&mut node_rates, 0.5),
        quantile(&mut watch_rates, 0.5),
    );
    println!(
        "catch-up ({blocks} blocks of {TXS} txs, 8 in flight, median of {runs}): node alone (fetch_detail, parity) {n:.2} blocks/s, watch {w:.2} blocks/s, ratio {:.3}",
        w / n
    );
}

fn config_text(node: &Anvil, token: Address, safe: Address, first: u64, hook: &str) -> String {
    config(&node.ws_url(), token, safe, Some(first), hook)
}

const PER_BLOCK: usize = 250;
const TOKEN: Address = Address::new([0xcc; 20]);

/// A block of synthetic transfers: one sender in five watched; one watched payment in
/// `alert_every` is above every outflow threshold (2,000 ETH or 2,000,000 USDC), the others
/// below all of them (under 0.5 ETH or 500 USDC).
fn synthetic(n: u64, rng: &mut Rng, alert_every: u64) -> BlockData {
    let block = BlockRef {
        number: n,
        hash: B256::left_padding_from(&n.to_be_bytes()),
        parent_hash: B256::left_padding_from(&(n - 1).to_be_bytes()),
        timestamp: 1_700_000_000 + n * 12,
    };
    let transfers = (0..PER_BLOCK)
        .map(|i| {
            let is_watched = rng.next().is_multiple_of(5);
            let from = if is_watched {
                watched((rng.next() % WATCHED as u64) as usize)
            } else {
                rng.addr()
            };
            let native = i % 2 == 0;
            let unit: u64 = if native {
                1_000_000_000_000_000_000
            } else {
                1_000_000
            };
            let amount = if !is_watched {
                U256::from(rng.next() % 10_000) * U256::from(unit)
            } else if rng.next().is_multiple_of(alert_every) {
                U256::from(2_000u64) * U256::from(unit) * U256::from(if native { 1 } else { 1_000 })
            } else {
                U256::from(rng.next() % (unit / 2)) * U256::from(if native { 1 } else { 1_000 })
            };
            Transfer {
                chain_id: CHAIN_ID,
                block_number: n,
                block_hash: block.hash,
                timestamp: block.timestamp,
                tx_hash: keccak256((n * 1000 + i as u64).to_be_bytes()),
                tx_index: i as u32,
                position: if native {
                    Position::Call {
                        trace_address: vec![],
                    }
                } else {
                    Position::Log {
                        log_index: i as u32,
                        item: 0,
                    }
                },
                from,
                to: rng.addr(),
                asset: if native {
                    Asset::Native
                } else {
                    Asset::Erc20 { token: TOKEN }
                },
                amount,
            }
        })
        .collect();
    BlockData {
        block,
        transfers,
        conversions: vec![],
    }
}

fn replay_bench(intel: Arc<IntelIndex>) {
    // Alerts rare (one watched payment in 1,000 above a threshold: a rule being backtested),
    // then an alert storm (every watched payment above one).
    let only = std::env::args()
        .skip_while(|a| a != "--mix")
        .nth(1)
        .unwrap_or_default();
    for (mix, alert_every) in [("alerts rare", 1_000), ("alert storm", 1)] {
        if only.is_empty() || mix.ends_with(&only) {
            replay_mix(intel.clone(), mix, alert_every);
        }
    }
}

fn replay_mix(intel: Arc<IntelIndex>, mix: &str, alert_every: u64) {
    let transfers = option("--transfers", 1_000_000) as u64;
    let runs = option("--runs", 3);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("t")).expect("store"));
    let blocks = transfers.div_ceil(PER_BLOCK as u64);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t = Instant::now();
    let mut n = 1;
    while n <= blocks {
        let batch: Vec<BlockData> = (n..(n + 40).min(blocks + 1))
            .map(|i| synthetic(i, &mut rng, alert_every))
            .collect();
        store.apply_blocks(CHAIN_ID, &batch).expect("write");
        n += batch.len() as u64;
    }
    let stored = blocks * PER_BLOCK as u64;
    if std::env::args().any(|a| a == "--settle") {
        let t = Instant::now();
        store.settle().expect("settle");
        println!(
            "replay, {mix}: store settled (index written out, compactions done) in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    println!(
        "replay, {mix}: {stored} transfers in {blocks} blocks written in {:.1} s; load average: {}",
        t.elapsed().as_secs_f64(),
        load()
    );
    {
        // One address query per watched wallet (what the history's first read of a wallet
        // costs): over the whole store, and over an empty range (the seek alone).
        for (what, from_block) in [("whole past", 0u64), ("empty range", blocks + 1)] {
            let t = Instant::now();
            let mut rows = 0usize;
            for i in 0..WATCHED {
                rows += store
                    .transfers(
                        CHAIN_ID,
                        TransferQuery::From {
                            address: watched(i),
                            from_block,
                        },
                        MAX_LIMIT,
                    )
                    .expect("address query")
                    .len();
            }
            let e = t.elapsed();
            println!(
                "replay, {mix}: address queries ({what}): {WATCHED} wallets, {rows} rows, {:.1} µs per wallet, {:.2} µs per row",
                e.as_secs_f64() * 1e6 / WATCHED as f64,
                e.as_secs_f64() * 1e6 / rows.max(1) as f64
            );
            // The same through the index alone (what the history reads).
            let t = Instant::now();
            let mut rows = 0usize;
            for i in 0..WATCHED {
                let query = AddressQuery {
                    address: watched(i),
                    direction: Direction::Out,
                    from_block,
                    to_block: u64::MAX,
                };
                rows += store
                    .address_entries(CHAIN_ID, query, MAX_LIMIT)
                    .expect("address entries")
                    .len();
            }
            let e = t.elapsed();
            println!(
                "replay, {mix}: address entries, index only ({what}): {WATCHED} wallets, {rows} rows, {:.1} µs per wallet, {:.2} µs per row",
                e.as_secs_f64() * 1e6 / WATCHED as f64,
                e.as_secs_f64() * 1e6 / rows.max(1) as f64
            );
        }
    }
    let text = config(
        "ws://127.0.0.1:1",
        TOKEN,
        Address::repeat_byte(0x5a),
        None,
        "http://127.0.0.1:1/hook",
    );
    let cfg = parse(&text);
    let rules = FileRules::new(
        &cfg,
        Arc::new(Intel(intel.clone())),
        Arc::new(StoreHistory::new(store.clone())),
    );
    let units = Units::new()
        .with_native(CHAIN_ID, "ETH")
        .tap_token(CHAIN_ID, TOKEN);
    let chain = ChainInfo {
        chain_id: CHAIN_ID,
        name: "anvil".into(),
        explorer: None,
    };
    let (mut scan_rates, mut replay_rates) = (vec![], vec![]);
    let mut last_alerts = 0u64;
    let mut cpu_rates = vec![];
    for run in 0..runs {
        // The scan alone: the pages replay reads, cut into blocks (`replay::scan_blocks`).
        let t = Instant::now();
        let mut seen = 0u64;
        scan_blocks(&*store, CHAIN_ID, 1, blocks, &mut |_| {}, &mut |b| {
            seen += b.len() as u64;
            Ok(())
        })
        .expect("scan");
        assert_eq!(seen, stored, "the scan read every transfer");
        scan_rates.push(seen as f64 / t.elapsed().as_secs_f64());

        // `--replay-from B`: only blocks B.. are replayed, the watched wallets' earlier
        // payments are history in the store (read once per wallet when first asked).
        let from = (option("--replay-from", 1) as u64).clamp(1, blocks);
        let (t, cpu) = (Instant::now(), thread_cpu());
        let mut state = WatchState::default();
        let mut alerts = 0u64;
        let s = replay(
            &*store,
            &rules,
            &*intel,
            &units,
            &chain,
            from,
            blocks,
            &mut state,
            &mut |_| alerts += 1,
            &mut |_| {},
        )
        .expect("replay");
        let dt = t.elapsed().as_secs_f64();
        let on_cpu = thread_cpu() - cpu;
        assert_eq!(
            s.transfers,
            (blocks + 1 - from) * PER_BLOCK as u64,
            "replay read every transfer of its blocks"
        );
        replay_rates.push(s.transfers as f64 / dt);
        cpu_rates.push(s.transfers as f64 / on_cpu);
        last_alerts = alerts;
        println!(
            "replay, {mix}, run {run}: scan alone {:.0} transfers/s; scan + rules {:.0} transfers/s, {:.0} per second on the CPU ({} blocks, {alerts} alerts, {dt:.2} s, {on_cpu:.2} s on the CPU); load {}",
            scan_rates[run],
            replay_rates[run],
            cpu_rates[run],
            s.blocks,
            load()
        );
    }
    let (s, r, c) = (
        quantile(&mut scan_rates, 0.5),
        quantile(&mut replay_rates, 0.5),
        quantile(&mut cpu_rates, 0.5),
    );
    println!(
        "replay, {mix} ({stored} transfers, {last_alerts} alerts, median of {runs}, one thread): scan alone {s:.0} transfers/s, scan + rules {r:.0} transfers/s wall clock, {c:.0} transfers per second of the thread's CPU time"
    );
}

/// The calling thread's time on the CPU, in seconds (Linux `schedstat`: the replay's one
/// core, whatever else the machine runs).
fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(f64::NAN, |ns| ns as f64 / 1e9)
}

trait TapToken {
    fn tap_token(self, chain_id: u64, token: Address) -> Self;
}
impl TapToken for Units {
    fn tap_token(mut self, chain_id: u64, token: Address) -> Self {
        self.add_token(chain_id, token, "USDC", 6);
        self
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let only = std::env::args()
        .skip_while(|a| a != "--only")
        .nth(1)
        .unwrap_or_default();
    let wanted = |s: &str| only.is_empty() || only == s;
    let intel = intel();
    if wanted("replay") {
        let i = intel.clone();
        tokio::task::spawn_blocking(move || replay_bench(i))
            .await
            .unwrap();
    }
    if wanted("latency") || wanted("catchup") {
        let (node, token, safe) = setup().await;
        if wanted("latency") {
            latency(&node, token, safe, intel.clone()).await;
        }
        if wanted("catchup") {
            catchup(&node, token, safe, intel.clone()).await;
        }
    }
}
