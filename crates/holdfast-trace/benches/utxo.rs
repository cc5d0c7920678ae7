//! UTXO taint benchmark (docs/BENCHMARKS.md, "UTXO taint (issue 16)"): a generated UTXO graph
//! of `HOLDFAST_BENCH_UTXO_TXS` (default 10 M) transactions — a coinbase of two outputs opening
//! each block of 1,000; of the others half are payments with change (one input, two outputs),
//! three in ten spend two inputs into two outputs, two in ten consolidate two inputs into one;
//! inputs are picked at random among the newest 100,000 unspent outputs, each transaction pays
//! a fee of at most 1,000, one output in 97 pays an exchange (and is not spent again) — held in
//! memory behind the engine's `UtxoSource` (the spent-by index and the
//! batched reads the store gives), and 10-hop traces from `HOLDFAST_BENCH_UTXO_SEEDS` (default
//! 10) seed outputs under each policy
//! with the real engine (`trace_utxo`), `RUNS` times each, the median reported. Then the same
//! trace over the real embedded UTXO index holding the first `HOLDFAST_BENCH_UTXO_STORE_TXS`
//! (default 200,000) of those transactions, written block by block with `apply_block`, and
//! over the PostgreSQL index (a throwaway server; `HOLDFAST_BENCH_UTXO_NO_PG` skips it).
//! Run: `cargo bench -p holdfast-trace --bench utxo`.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

// The binary's allocator, so that the figures are what `holdfast` runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::time::Instant;

use alloy_primitives::B256;
use holdfast_primitives::{BlockRef, Category};
use holdfast_store::StoreError;
use holdfast_store::utxo::{
    EmbeddedUtxoStore, OutPointKey, PgUtxoStore, PlacedTx, Spender, TxInput, TxOutput, TxRecord,
    UtxoChanges, UtxoRecord, UtxoStore,
};
use holdfast_trace::utxo::{UtxoSeedAt, UtxoSource, trace_utxo};
use holdfast_trace::{Policy, Service, ServiceKind, TraceOptions};

const PER_BLOCK: u32 = 1_000;
const WINDOW: usize = 100_000;
const HOPS: u32 = 10;
const RUNS: usize = 5;
const NONE: u32 = u32::MAX;
const CHAIN: u64 = 1;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Transactions 0..n, one or two outputs each (output id = 2·tx + vout).
struct Graph {
    /// Per transaction: the spent output ids (`NONE` where there is none: a coinbase has none).
    ins: Vec<[u32; 2]>,
    /// Per transaction: its outputs, 1 or 2.
    outs: Vec<u8>,
    values: Vec<u64>,
    /// Per output id: the spending transaction and input, or `NONE`.
    spender: Vec<u32>,
    spender_vin: Vec<u8>,
}

fn txid(tx: u32) -> B256 {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&tx.to_be_bytes());
    b[31] = 0x77;
    B256::from(b)
}

fn tx_of(id: &B256) -> Option<u32> {
    (id[31] == 0x77).then(|| u32::from_be_bytes(id[..4].try_into().unwrap()))
}

fn is_service(output: u32) -> bool {
    output.is_multiple_of(97)
}

impl Graph {
    fn generate(n: u32) -> Graph {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut g = Graph {
            ins: Vec::with_capacity(n as usize),
            outs: Vec::with_capacity(n as usize),
            values: Vec::with_capacity(2 * n as usize),
            spender: vec![NONE; 2 * n as usize],
            spender_vin: vec![0; 2 * n as usize],
        };
        let mut pool: Vec<u32> = Vec::new();
        for tx in 0..n {
            if tx.is_multiple_of(PER_BLOCK) {
                g.ins.push([NONE, NONE]);
                g.outs.push(2);
                g.values.extend([25_0000_0000, 25_0000_0000]);
            } else {
                let kind = rng.next() % 10;
                let (n_in, n_out) = match kind {
                    _ if pool.len() < 2 => (1, 2),
                    0..=4 => (1, 2),
                    5..=7 => (2, 2),
                    _ => (2, 1),
                };
                let mut ins = [NONE; 2];
                let mut total = 0;
                for (vin, slot) in ins.iter_mut().enumerate().take(n_in) {
                    let lo = pool.len().saturating_sub(WINDOW);
                    let k = lo + (rng.next() as usize) % (pool.len() - lo);
                    let o = pool.swap_remove(k);
                    *slot = o;
                    total += g.values[o as usize];
                    g.spender[o as usize] = tx;
                    g.spender_vin[o as usize] = vin as u8;
                }
                g.ins.push(ins);
                let out = total - (total / 10).min(1_000);
                let n_out = if out < 2 { 1 } else { n_out };
                g.outs.push(n_out as u8);
                if n_out == 2 {
                    let a = out / 4 + rng.next() % (out / 2 + 1);
                    g.values.extend([a, out - a]);
                } else {
                    g.values.extend([out, 0]);
                }
            }
            // Service outputs are not spent again in the generated graph's pool (deposits
            // rest at the exchange).
            for v in 0..u32::from(g.outs[tx as usize]) {
                let o = 2 * tx + v;
                if !is_service(o) {
                    pool.push(o);
                }
            }
        }
        g
    }

    fn height(tx: u32) -> (u64, u32) {
        (u64::from(tx / PER_BLOCK), tx % PER_BLOCK)
    }

    fn record(&self, tx: u32) -> TxRecord {
        let ins = self.ins[tx as usize];
        let out = |o: u32| TxOutput {
            value: self.values[o as usize],
            script: vec![0x00, 0x14],
            address: is_service(o).then(|| "exchange".to_owned()),
        };
        TxRecord {
            txid: txid(tx),
            coinbase: ins[0] == NONE,
            inputs: ins
                .iter()
                .filter(|o| **o != NONE)
                .map(|&o| TxInput {
                    prevout: OutPointKey {
                        txid: txid(o / 2),
                        vout: o % 2,
                    },
                    value: self.values[o as usize],
                    address: is_service(o).then(|| "exchange".to_owned()),
                })
                .collect(),
            outputs: (0..u32::from(self.outs[tx as usize]))
                .map(|v| out(2 * tx + v))
                .collect(),
        }
    }

    fn output(op: &OutPointKey) -> Option<u32> {
        tx_of(&op.txid).map(|t| 2 * t + op.vout)
    }
}

impl UtxoSource for Graph {
    fn head(&self, _: u64) -> Result<Option<BlockRef>, StoreError> {
        let n = self.ins.len() as u32 - 1;
        Ok(Some(BlockRef {
            number: Graph::height(n).0,
            hash: B256::repeat_byte(1),
            parent_hash: B256::ZERO,
            timestamp: 0,
        }))
    }
    fn transactions(&self, _: u64, ids: &[B256]) -> Result<Vec<Vec<PlacedTx>>, StoreError> {
        Ok(ids
            .iter()
            .map(|id| match tx_of(id) {
                Some(t) if (t as usize) < self.ins.len() => {
                    let (h, p) = Graph::height(t);
                    vec![(h, p, self.record(t))]
                }
                _ => Vec::new(),
            })
            .collect())
    }
    fn spenders(&self, _: u64, ops: &[OutPointKey]) -> Result<Vec<Option<Spender>>, StoreError> {
        Ok(ops
            .iter()
            .map(|op| {
                let o = Graph::output(op)? as usize;
                let s = *self.spender.get(o)?;
                (s != NONE).then(|| {
                    let (height, position) = Graph::height(s);
                    Spender {
                        txid: txid(s),
                        vin: u32::from(self.spender_vin[o]),
                        height,
                        position,
                    }
                })
            })
            .collect())
    }
    fn unspent(&self, _: u64, ops: &[OutPointKey]) -> Result<Vec<bool>, StoreError> {
        Ok(ops
            .iter()
            .map(|op| Graph::output(op).is_some_and(|o| self.spender[o as usize] == NONE))
            .collect())
    }
    fn received(
        &self,
        _: u64,
        _: &str,
        _: u64,
    ) -> Result<Vec<(OutPointKey, u64, u32, u64)>, StoreError> {
        Ok(Vec::new())
    }
}

/// Seeds: outputs of ordinary transactions a tenth of the way into the graph.
fn seeds(n: u32, count: usize) -> Vec<UtxoSeedAt> {
    let mut rng = Rng(42);
    (0..count)
        .map(|_| {
            let mut tx = n / 10 + (rng.next() % u64::from(n / 100 + 1)) as u32;
            if tx.is_multiple_of(PER_BLOCK) {
                tx += 1;
            }
            UtxoSeedAt::Output {
                outpoint: OutPointKey {
                    txid: txid(tx),
                    vout: 0,
                },
                amount: None,
            }
        })
        .collect()
}

fn services() -> BTreeMap<String, Service> {
    BTreeMap::from([(
        "exchange".to_owned(),
        Service {
            kind: ServiceKind::Custodial,
            category: Category::Exchange,
            name: "Exchange".into(),
        },
    )])
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench<S: UtxoSource + ?Sized>(what: &str, src: &S, seeds: &[UtxoSeedAt], policies: &[Policy]) {
    let services = services();
    for &policy in policies {
        let mut opts = TraceOptions::with_policy(policy);
        opts.max_hops = HOPS;
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..RUNS {
            let t0 = Instant::now();
            let t = trace_utxo(src, &services, CHAIN, "bench", seeds, &opts).unwrap();
            times.push(t0.elapsed().as_secs_f64());
            last = Some(t);
        }
        let t = last.unwrap();
        println!(
            "{what}: {policy:<7} median {:>8.1} ms (runs {}), {} transactions, {} tainted outputs, {} freeze targets, {} reads",
            median(times.clone()) * 1e3,
            times
                .iter()
                .map(|s| format!("{:.0}", s * 1e3))
                .collect::<Vec<_>>()
                .join("/"),
            t.stats.transactions,
            t.stats.outputs,
            t.targets.len(),
            t.stats.reads
        );
    }
}

/// Writes the first `n` transactions of `g` to an index, block by block.
fn write_store(g: &Graph, n: u32, store: &dyn UtxoStore) {
    let mut unspent: std::collections::HashMap<OutPointKey, UtxoRecord> = Default::default();
    let blocks = n / PER_BLOCK;
    for b in 0..blocks {
        let height = u64::from(b);
        let mut changes = UtxoChanges::default();
        let mut own: std::collections::HashMap<OutPointKey, UtxoRecord> = Default::default();
        for tx in b * PER_BLOCK..(b + 1) * PER_BLOCK {
            let r = g.record(tx);
            for i in &r.inputs {
                if own.remove(&i.prevout).is_none() {
                    let rec = unspent.remove(&i.prevout).unwrap();
                    changes.spent.push((i.prevout, rec));
                }
            }
            for (v, o) in r.outputs.iter().enumerate() {
                own.insert(
                    OutPointKey {
                        txid: r.txid,
                        vout: v as u32,
                    },
                    UtxoRecord {
                        value: o.value,
                        height,
                        coinbase: r.coinbase,
                        script: o.script.clone(),
                        address: o.address.clone(),
                    },
                );
            }
            changes.transactions.push(r);
        }
        for (op, rec) in own {
            unspent.insert(op, rec.clone());
            changes.created.push((op, rec));
        }
        changes.created.sort_by_key(|(op, _)| *op);
        let block = BlockRef {
            number: height,
            hash: B256::from(alloy_primitives::U256::from(height + 1)),
            parent_hash: B256::from(alloy_primitives::U256::from(height)),
            timestamp: height,
        };
        store.apply_block(CHAIN, &block, &changes).unwrap();
    }
}

fn main() {
    let n: u32 = std::env::var("HOLDFAST_BENCH_UTXO_TXS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let n_store: u32 = std::env::var("HOLDFAST_BENCH_UTXO_STORE_TXS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
        .min(n);
    let n_seeds: usize = std::env::var("HOLDFAST_BENCH_UTXO_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    println!(
        "UTXO taint benchmark: {n} transactions, {n_seeds} seeds, {HOPS} hops, {RUNS} runs each"
    );
    let t0 = Instant::now();
    let g = Graph::generate(n);
    println!("generate {:.1} s", t0.elapsed().as_secs_f64());
    bench("in memory", &g, &seeds(n, n_seeds), &Policy::ALL);

    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedUtxoStore::open(dir.path()).unwrap();
    let t0 = Instant::now();
    write_store(&g, n_store, &store);
    println!(
        "embedded index: the first {n_store} transactions written in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    bench(
        "embedded index",
        &store as &dyn UtxoStore,
        &seeds(n_store, n_seeds),
        &[Policy::Haircut, Policy::Fifo],
    );
    if std::env::var_os("HOLDFAST_BENCH_UTXO_NO_PG").is_some() {
        return;
    }
    let pg = holdfast_store::testing::TempPostgres::start(false).unwrap();
    let store = PgUtxoStore::connect(pg.url()).unwrap();
    let t0 = Instant::now();
    write_store(&g, n_store, &store);
    println!(
        "PostgreSQL index: the first {n_store} transactions written in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    bench(
        "PostgreSQL index",
        &store as &dyn UtxoStore,
        &seeds(n_store, n_seeds),
        &[Policy::Haircut, Policy::Fifo],
    );
}
