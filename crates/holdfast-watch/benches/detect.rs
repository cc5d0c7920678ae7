//! Detector throughput (docs/BENCHMARKS.md, "Watch: detectors"): generated blocks of 200
//! transactions (each a call frame and a nested one, a `Transfer` log, an ERC-20 transfer, a
//! native transfer, a state diff with balances and a storage slot; one in five touches a
//! watched address, one in twenty an `approve`), 10,000 watched addresses in 100 sets, 1,000
//! rules (200 per detector 1–5), labels for 1,000 addresses. Runs `Detectors::run` block after
//! block with the state carried, and reports blocks/s, transactions/s and the per-block p50
//! and p99. Run: `cargo bench -p holdfast-watch --bench detect` (`HOLDFAST_BENCH_BLOCKS`,
//! default 2,000).
//!
//! The repository's benches are plain `harness = false` programs (no criterion in the
//! workspace): this one prints its figures the same way.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

// The binary's allocator, so that the figures are what `holdfast` runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Instant;

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use holdfast_chain::{
    BlockDetail, BlockTransfers, CallDetail, CallKind, LogDetail, SlotChange, StateDiff, TxDetail,
};
use holdfast_primitives::{Asset, BlockRef, Category, Position, Transfer};
use holdfast_watch::config::validate;
use holdfast_watch::detect::{AddressLabel, Context, DetectorState, Detectors, NoHistory};

const TXS: usize = 200;
const WATCHED: usize = 10_000;
const SETS: usize = 100;
const RULES_PER_DETECTOR: usize = 200;

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

const TOKEN: Address = Address::new([0xcc; 20]);

fn config() -> holdfast_watch::WatchConfig {
    let mut t = String::from(
        "[[chain]]\nname = \"eth\"\nrpc = \"http://127.0.0.1:8545\"\nexplorer = \"https://etherscan.io\"\n\n\
         [[asset]]\nsymbol = \"ETH\"\nchain = \"eth\"\nkind = \"native\"\n\n",
    );
    writeln!(
        t,
        "[[asset]]\nsymbol = \"USDC\"\nchain = \"eth\"\ntoken = \"{TOKEN}\"\ndecimals = 6\n"
    )
    .unwrap();
    for s in 0..SETS {
        let addrs: Vec<String> = (0..WATCHED / SETS)
            .map(|i| format!("\"{}\"", watched(s * (WATCHED / SETS) + i)))
            .collect();
        writeln!(
            t,
            "[[set]]\nname = \"s{s}\"\naddresses = [{}]\n",
            addrs.join(", ")
        )
        .unwrap();
    }
    for i in 0..RULES_PER_DETECTOR {
        let set = format!("s{}", i % SETS);
        writeln!(t, "[[rule]]\nname = \"storage{i}\"\ndetector = \"critical_storage\"\ntargets = [\"{set}\"]\n").unwrap();
        writeln!(
            t,
            "[[rule]]\nname = \"outflow{i}\"\ndetector = \"outflow\"\ntargets = [\"{set}\"]\namount_above = {{ ETH = \"1000\", USDC = \"1000000\" }}\nvelocity = {{ window = \"1h\", count_above = 1000 }}\ndrain = {{ percent = 90, blocks = 10 }}\n"
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
    validate("bench.toml", &t, std::path::Path::new("."))
        .unwrap()
        .config
}

fn block(n: u64, rng: &mut Rng) -> BlockDetail {
    let b = BlockRef {
        number: n,
        hash: B256::left_padding_from(&n.to_be_bytes()),
        parent_hash: B256::left_padding_from(&(n - 1).to_be_bytes()),
        timestamp: 1_700_000_000 + n * 12,
    };
    let (mut txs, mut logs, mut calls, mut state, mut transfers) =
        (vec![], vec![], vec![], vec![], vec![]);
    let transfer_topic = keccak256("Transfer(address,address,uint256)");
    let approve = keccak256("approve(address,uint256)");
    for i in 0..TXS {
        let from = if rng.next().is_multiple_of(5) {
            watched((rng.next() % WATCHED as u64) as usize)
        } else {
            rng.addr()
        };
        let to = rng.addr();
        let hash = B256::from(keccak256((n * 1000 + i as u64).to_be_bytes()));
        let idx = i as u32;
        let mut input = vec![0u8; 68];
        if rng.next().is_multiple_of(20) {
            input[..4].copy_from_slice(&approve[..4]);
            input[16..36].copy_from_slice(to.as_slice());
            input[36..68].copy_from_slice(&[0xff; 32]);
        }
        let input = Bytes::from(input);
        txs.push(TxDetail {
            hash,
            index: idx,
            from,
            to: Some(TOKEN),
            created: None,
            value: U256::ZERO,
            input: input.clone(),
            success: true,
        });
        calls.push(CallDetail {
            tx_index: idx,
            trace_address: vec![],
            kind: CallKind::Call,
            from,
            to: TOKEN,
            value: U256::ZERO,
            input: input.clone(),
            input_len: 68,
            reverted: false,
        });
        calls.push(CallDetail {
            tx_index: idx,
            trace_address: vec![0],
            kind: CallKind::StaticCall,
            from: TOKEN,
            to: rng.addr(),
            value: U256::ZERO,
            input: Bytes::new(),
            input_len: 0,
            reverted: false,
        });
        let li = logs.len() as u32;
        let amount = U256::from(rng.next() % 10_000_000_000);
        logs.push(LogDetail {
            tx_index: idx,
            log_index: li,
            address: TOKEN,
            topics: vec![transfer_topic, from.into_word(), to.into_word()],
            data: B256::from(amount).to_vec().into(),
        });
        state.push(StateDiff {
            tx_index: idx,
            address: from,
            balance: Some((
                U256::from(10u64.pow(20)),
                U256::from(10u64.pow(20) - 10u64.pow(15)),
            )),
            code_changed: false,
            storage: vec![],
        });
        state.push(StateDiff {
            tx_index: idx,
            address: TOKEN,
            balance: None,
            code_changed: false,
            storage: vec![SlotChange {
                slot: keccak256(from.into_word()),
                before: B256::from(amount + amount),
                after: B256::from(amount),
            }],
        });
        let t = |position, to, asset, amount| Transfer {
            chain_id: 1,
            block_number: n,
            block_hash: b.hash,
            timestamp: b.timestamp,
            tx_hash: hash,
            tx_index: idx,
            position,
            from,
            to,
            asset,
            amount,
        };
        transfers.push(t(
            Position::Log {
                log_index: li,
                item: 0,
            },
            to,
            Asset::Erc20 { token: TOKEN },
            amount,
        ));
        transfers.push(t(
            Position::Call {
                trace_address: vec![],
            },
            rng.addr(),
            Asset::Native,
            U256::from(10u64.pow(15)),
        ));
    }
    BlockDetail {
        transfers: BlockTransfers {
            chain_id: 1,
            block: b,
            transfers,
            conversions: vec![],
            incomplete: 0,
            undecodable: 0,
        },
        txs,
        logs,
        calls,
        calls_complete: true,
        state: Some(state),
    }
}

fn main() {
    let blocks: u64 = std::env::var("HOLDFAST_BENCH_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let t0 = Instant::now();
    let cfg = config();
    let d = Detectors::new(&cfg);
    println!(
        "config: {} sets, {} rules, {} watched addresses, validated and indexed in {:?}",
        cfg.sets.len(),
        cfg.rules.len(),
        WATCHED,
        t0.elapsed()
    );
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let labels: HashMap<Address, Vec<AddressLabel>> = (0..1000)
        .map(|_| {
            (
                rng.addr(),
                vec![AddressLabel {
                    category: Category::Sanctioned,
                    text: "bench (sanctioned)".into(),
                }],
            )
        })
        .collect();
    let generated: Vec<BlockDetail> = (1..=blocks).map(|n| block(n + 1, &mut rng)).collect();
    let cx = Context {
        chain: "eth",
        confirmations: 0,
        labels: &labels,
        history: &NoHistory,
    };
    let mut state = DetectorState::default();
    let mut times = Vec::with_capacity(generated.len());
    let mut alerts = 0usize;
    let start = Instant::now();
    for b in &generated {
        let t = Instant::now();
        alerts += d.run(b, &mut state, &cx).unwrap().len();
        times.push(t.elapsed());
    }
    let total = start.elapsed();
    times.sort();
    let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    // The engine's path: `FileRules` with the state as JSON carried from block to block
    // (encoded every block; decoded only when it is not the JSON the rules returned).
    let intel: std::sync::Arc<dyn holdfast_watch::IntelView> = std::sync::Arc::new(
        arc_swap::ArcSwap::from_pointee(holdfast_intel::IndexBuilder::with_capacity(0).finish()),
    );
    let rules = holdfast_watch::detect::FileRules::new(&cfg, intel, std::sync::Arc::new(NoHistory));
    let chain = holdfast_watch::ChainInfo {
        chain_id: 1,
        name: "eth".into(),
        explorer: None,
    };
    let mut value = serde_json::Value::Null;
    let mut engine_times = Vec::with_capacity(generated.len());
    let start = Instant::now();
    for b in &generated {
        let t = Instant::now();
        rules.try_detect(&chain, b, &mut value).unwrap();
        engine_times.push(t.elapsed());
    }
    let engine_total = start.elapsed();
    engine_times.sort();
    let q = |q: f64| {
        engine_times[((engine_times.len() as f64 * q) as usize).min(engine_times.len() - 1)]
    };
    println!(
        "through FileRules (state as JSON): {blocks} blocks in {engine_total:.2?}; per block p50 {:?}, p99 {:?}, max {:?}",
        q(0.5),
        q(0.99),
        engine_times[engine_times.len() - 1]
    );
    let state_bytes = serde_json::to_vec(&state).unwrap().len();
    let cs = &state.chains["eth"];
    let kib = |v: serde_json::Value| serde_json::to_vec(&v).unwrap().len() / 1024;
    println!(
        "state parts (KiB): velocity {}, balances {}, episodes {}, dynamic {}",
        kib(serde_json::to_value(&cs.velocity).unwrap()),
        kib(serde_json::to_value(&cs.balances).unwrap()),
        kib(serde_json::to_value(&cs.episodes).unwrap()),
        kib(serde_json::to_value(&cs.dynamic).unwrap()),
    );
    let t = Instant::now();
    let json = serde_json::to_vec(&state).unwrap();
    let ser = t.elapsed();
    let t = Instant::now();
    let _back: DetectorState = serde_json::from_slice(&json).unwrap();
    println!("state to JSON {ser:?}, from JSON {:?}", t.elapsed());
    println!(
        "{blocks} blocks of {TXS} txs in {total:.2?}: {:.0} blocks/s, {:.0} txs/s; per block p50 {:?}, p99 {:?}, max {:?}; {alerts} alerts; state {} KiB as JSON",
        blocks as f64 / total.as_secs_f64(),
        (blocks as f64 * TXS as f64) / total.as_secs_f64(),
        p(0.5),
        p(0.99),
        times[times.len() - 1],
        state_bytes / 1024,
    );
}
