//! UTXO index benchmark (docs/BENCHMARKS.md, "Bitcoin: the UTXO index"): a synthetic chain of
//! blocks of `--txs` transactions (default 2,000), each spending one earlier unspent output
//! (chosen at random) into two new ones (22-byte witness script, 42-character address of random bech32 characters; txids random), plus a
//! coinbase; written one block per commit (how ingestion writes), on the embedded index and on
//! PostgreSQL (a throwaway server). Prints transactions/s, outputs/s, the time of one block's
//! batch read (`utxos`), single reads' latencies (`utxo`, and with the history `transaction`,
//! `address_transfers`, `spenders`) and bytes on disk per unspent output (undo records
//! included).
//!
//! With `--with-txs` each block also carries its transactions (the coinbase; each other
//! transaction its one input, resolved, and two outputs), so the transaction and address index
//! (3 address entries per transaction) is written in the same commit. `--inputs K` makes each
//! transaction spend K outputs (K ≥ 2: every transaction merges address clusters too). `--runs R` repeats each
//! measurement on a fresh store and prints the median.
//!
//! With `--bulk` the blocks are written as a backfill writes them: gathered until they hold
//! [`BULK_TXS`] transactions, then one `apply_blocks` call (no undo records).
//!
//! `cargo bench -p holdfast-store --bench utxo [-- --blocks N --txs T] [--with-txs] [--inputs K] [--bulk] [--runs R] [--no-pg] [--no-embedded]`.

// The binary's allocator, so that the figures are what `holdfast` runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::time::Instant;

use alloy_primitives::B256;
use holdfast_primitives::BlockRef;
use holdfast_store::testing::TempPostgres;
use holdfast_store::utxo::{
    BULK_TXS, EmbeddedUtxoStore, OutPointKey, PgUtxoStore, TxInput, TxOutput, TxRecord,
    UtxoChanges, UtxoRecord, UtxoStore,
};

#[path = "support/args.rs"]
mod args;
use args::{Rng, has, option};

/// splitmix64: the generator's stand-in for a hash (txids and addresses are hash outputs on
/// the real chain, so keys built from them share no prefixes).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `n` pseudo-random bytes from `seed`.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    (0..n.div_ceil(8) as u64)
        .flat_map(|i| mix(seed ^ mix(i)).to_le_bytes())
        .take(n)
        .collect()
}

fn txid(block: u64, tx: u64) -> B256 {
    B256::from_slice(&bytes(mix(block) ^ tx, 32))
}

/// bech32's data characters.
const BECH32: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

fn record(value: u64, height: u64, coinbase: bool, tag: u64) -> UtxoRecord {
    // A P2WPKH output: a 20-byte program and a 42-character address of bech32 characters
    // (pseudo-random like a real one's, not spelling the program: the index stores both).
    let program = bytes(tag, 20);
    let mut script = vec![0x00, 0x14];
    script.extend_from_slice(&program);
    let mut address = String::from("bc1q");
    for b in bytes(tag ^ 0xadd7, 38) {
        address.push(BECH32[usize::from(b & 31)] as char);
    }
    UtxoRecord {
        value,
        height,
        coinbase,
        script,
        address: Some(address),
    }
}

/// The chain's blocks, generated against the generator's own UTXO set.
struct Chain {
    rng: Rng,
    /// Inputs per transaction (two or more: each transaction merges clusters).
    inputs: u64,
    unspent: Vec<OutPointKey>,
    records: HashMap<OutPointKey, UtxoRecord>,
}

impl Chain {
    fn block(&mut self, n: u64, txs: u64, with_txs: bool) -> (BlockRef, UtxoChanges) {
        let mut c = UtxoChanges::default();
        let coinbase = OutPointKey {
            txid: txid(n, 0),
            vout: 0,
        };
        let out = |r: &UtxoRecord| TxOutput {
            value: r.value,
            script: r.script.clone(),
            address: r.address.clone(),
        };
        let cb = record(50_0000_0000, n, true, n << 20);
        if with_txs {
            c.transactions.push(TxRecord {
                txid: coinbase.txid,
                coinbase: true,
                inputs: vec![],
                outputs: vec![out(&cb)],
            });
        }
        c.created.push((coinbase, cb));
        for t in 1..=txs {
            let mut tx = TxRecord {
                txid: txid(n, t),
                coinbase: false,
                inputs: vec![],
                outputs: vec![],
            };
            for _ in 0..self.inputs {
                if self.unspent.is_empty() {
                    break;
                }
                let i = (self.rng.next() % self.unspent.len() as u64) as usize;
                let op = self.unspent.swap_remove(i);
                let r = self.records.remove(&op).expect("generated");
                tx.inputs.push(TxInput {
                    prevout: op,
                    value: r.value,
                    address: r.address.clone(),
                });
                c.spent.push((op, r));
            }
            let paid: u64 = tx.inputs.iter().map(|i| i.value).sum();
            for vout in 0..2 {
                let op = OutPointKey {
                    txid: txid(n, t),
                    vout,
                };
                // Each output half the input (block 0's outputs, with no input, 10 coins).
                let r = record(
                    if tx.inputs.is_empty() {
                        10_0000_0000
                    } else {
                        paid / 2
                    },
                    n,
                    false,
                    (n << 20) | (t << 1) | u64::from(vout),
                );
                tx.outputs.push(out(&r));
                c.created.push((op, r));
            }
            if with_txs && !tx.inputs.is_empty() {
                c.transactions.push(tx);
            }
        }
        for (op, r) in &c.created {
            self.unspent.push(*op);
            self.records.insert(*op, r.clone());
        }
        let hash = |n: u64| B256::from(txid(n, u64::MAX).0);
        let block = BlockRef {
            number: n,
            hash: hash(n),
            parent_hash: if n == 0 { B256::ZERO } else { hash(n - 1) },
            timestamp: 1_600_000_000 + n * 600,
        };
        (block, c)
    }
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Writes the chain; returns transactions/s.
fn run(
    name: &str,
    store: &dyn UtxoStore,
    blocks: u64,
    txs: u64,
    with_txs: bool,
    size: &dyn Fn() -> u64,
) -> f64 {
    let mut chain = Chain {
        rng: Rng(0x5eed),
        inputs: option("--inputs", 1),
        unspent: Vec::new(),
        records: HashMap::new(),
    };
    // Block 0: the coinbase and `txs` outputs to spend, written as coins only (its outputs have
    // no inputs to come from).
    let (b, c) = chain.block(0, txs, false);
    store.apply_block(7, &b, &c).expect("apply");
    let bulk = has("--bulk");
    let started = Instant::now();
    let mut batch = Vec::new();
    let mut batch_txs = 0;
    for n in 1..blocks {
        let (b, c) = chain.block(n, txs, with_txs);
        if !bulk {
            store.apply_block(7, &b, &c).expect("apply");
            continue;
        }
        // As `holdfast ingest` gathers a backfill's blocks (holdfast-ingest's `sync_utxo`).
        batch_txs += txs + 1;
        batch.push((b, c));
        if batch_txs >= BULK_TXS || n + 1 == blocks {
            store.apply_blocks(7, &batch).expect("apply");
            batch.clear();
            batch_txs = 0;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let blocks = blocks - 1;
    let counts = store.counts(7).expect("counts");
    assert_eq!(counts.outputs as usize, chain.unspent.len());
    // One block's worth of batch reads, of outputs chosen at random.
    let keys: Vec<OutPointKey> = (0..txs)
        .map(|_| chain.unspent[(chain.rng.next() % chain.unspent.len() as u64) as usize])
        .collect();
    let t = Instant::now();
    let found = store.utxos(7, &keys).expect("utxos");
    let read = t.elapsed().as_secs_f64();
    assert!(found.iter().all(Option::is_some));
    let reads = single_reads(store, &mut chain, blocks, txs, with_txs);
    let bytes = size();
    let rate = (blocks * (txs + 1)) as f64 / secs;
    println!(
        "{name}{}{}: {blocks} blocks of {txs} txs: {rate:.0} tx/s, {:.0} outputs written/s ({secs:.1} s); {} unspent outputs; a batch read of {txs}: {:.1} ms; {:.0} bytes on disk per unspent output (undo records{} included)",
        if with_txs { " with transactions" } else { "" },
        if bulk {
            format!(", in bulk writes of {BULK_TXS} txs (no undo records)")
        } else {
            String::new()
        },
        (blocks * (2 * txs + 1)) as f64 / secs,
        counts.outputs,
        read * 1e3,
        bytes as f64 / counts.outputs as f64,
        if with_txs {
            ", transactions and address entries"
        } else {
            ""
        },
    );
    println!("{name}: single reads, p50 / p99: {reads}");
    rate
}

/// Reads one at a time after the write, of keys drawn at random: an unspent output
/// (`utxo`), and with the history a transaction by txid (`transaction`), an address's first
/// 100 entries (`address_transfers`) and an output's spender (`spenders`): p50 and p99 in
/// microseconds of each.
fn single_reads(
    store: &dyn UtxoStore,
    chain: &mut Chain,
    blocks: u64,
    txs: u64,
    with_txs: bool,
) -> String {
    const N: usize = 5_000;
    let mut timed = |what: &str, read: &mut dyn FnMut(&mut Rng)| {
        let mut lat: Vec<f64> = (0..N)
            .map(|_| {
                let t = Instant::now();
                read(&mut chain.rng);
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        lat.sort_by(f64::total_cmp);
        format!("{what} {:.1} / {:.1} us", lat[N / 2], lat[N * 99 / 100])
    };
    let unspent = chain.unspent.clone();
    let records = chain.records.clone();
    let pick = move |rng: &mut Rng| unspent[(rng.next() % unspent.len() as u64) as usize];
    let mut out = vec![timed("utxo", &mut |rng| {
        assert!(store.utxo(7, &pick(rng)).expect("utxo").is_some());
    })];
    if with_txs {
        // Blocks 1..=blocks carry their transactions (block 0 is written as coins only).
        let placed = |rng: &mut Rng| txid(1 + rng.next() % blocks.max(1), 1 + rng.next() % txs);
        out.push(timed("transaction", &mut |rng| {
            assert!(!store.transaction(7, &placed(rng)).expect("tx").is_empty());
        }));
        out.push(timed("address_transfers", &mut |rng| {
            let a = records[&pick(rng)].address.clone().expect("address");
            // (Empty for block 0's outputs, written without their transactions.)
            store.address_transfers(7, &a, 0, 100).expect("transfers");
        }));
        out.push(timed("spenders", &mut |rng| {
            let op = OutPointKey {
                txid: placed(rng),
                vout: 0,
            };
            store.spenders(7, &[op]).expect("spenders");
        }));
    }
    out.join(", ")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let blocks = option("--blocks", 100);
    let txs = option("--txs", 2_000);
    println!(
        "load average {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let with_txs = has("--with-txs");
    let runs = option("--runs", 1).max(1);
    if !has("--no-embedded") {
        let rates: Vec<f64> = (0..runs)
            .map(|_| {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = EmbeddedUtxoStore::open(dir.path()).expect("open");
                run("embedded", &store, blocks, txs, with_txs, &|| {
                    dir_size(dir.path())
                })
            })
            .collect();
        println!("embedded: median of {runs}: {:.0} tx/s", median(rates));
    }
    if !has("--no-pg") {
        let rates: Vec<f64> = (0..runs)
            .map(|_| {
                let pg = TempPostgres::start(true).expect("PostgreSQL (scripts/install-postgres)");
                let store = PgUtxoStore::connect(pg.url()).expect("connect");
                let url = pg.url().to_owned();
                run("postgresql", &store, blocks, txs, with_txs, &|| {
                    let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
                    c.batch_execute("VACUUM ANALYZE").expect("vacuum");
                    c.query_one(
                        "SELECT pg_total_relation_size('utxo_coins') + pg_total_relation_size('utxo_undo') + pg_total_relation_size('utxo_blocks') + pg_total_relation_size('utxo_txs') + pg_total_relation_size('utxo_transfers') + pg_total_relation_size('utxo_clusters') + pg_total_relation_size('utxo_clusters_undo')",
                        &[],
                    )
                    .expect("size")
                    .get::<_, i64>(0) as u64
                })
            })
            .collect();
        println!("postgresql: median of {runs}: {:.0} tx/s", median(rates));
    }
}
