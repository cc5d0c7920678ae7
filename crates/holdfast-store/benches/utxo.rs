//! UTXO index benchmark (docs/BENCHMARKS.md, "Bitcoin: the UTXO index"): a synthetic chain of
//! blocks of `--txs` transactions (default 2,000), each spending one earlier unspent output
//! (chosen at random) into two new ones (22-byte witness script, 43-character address), plus a
//! coinbase; written one block per commit (how ingestion writes), on the embedded index and on
//! PostgreSQL (a throwaway server). Prints transactions/s, outputs/s, the time of one block's
//! batch read (`utxos`) and bytes on disk per unspent output (undo records included).
//!
//! `cargo bench -p holdfast-store --bench utxo [-- --blocks N --txs T] [--no-pg] [--no-embedded]`.

use std::collections::HashMap;
use std::time::Instant;

use alloy_primitives::B256;
use holdfast_primitives::BlockRef;
use holdfast_store::testing::TempPostgres;
use holdfast_store::utxo::{
    EmbeddedUtxoStore, OutPointKey, PgUtxoStore, UtxoChanges, UtxoRecord, UtxoStore,
};

fn option(name: &str, default: u64) -> u64 {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn has(flag: &str) -> bool {
    std::env::args().any(|a| a == flag)
}

/// xorshift64*: a fixed, reproducible stream.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn txid(block: u64, tx: u64) -> B256 {
    let mut h = [0u8; 32];
    h[..8].copy_from_slice(&block.to_le_bytes());
    h[8..16].copy_from_slice(&tx.to_le_bytes());
    h[16..].copy_from_slice(
        &(block ^ tx)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .to_le_bytes()
            .repeat(2),
    );
    B256::from(h)
}

fn record(value: u64, height: u64, coinbase: bool, tag: u64) -> UtxoRecord {
    let mut script = vec![0x00, 0x14];
    script.extend_from_slice(&tag.to_le_bytes().repeat(3)[..20]);
    UtxoRecord {
        value,
        height,
        coinbase,
        script,
        address: Some(format!("bc1q{:039x}", tag)),
    }
}

/// The chain's blocks, generated against the generator's own UTXO set.
struct Chain {
    rng: Rng,
    unspent: Vec<OutPointKey>,
    records: HashMap<OutPointKey, UtxoRecord>,
}

impl Chain {
    fn block(&mut self, n: u64, txs: u64) -> (BlockRef, UtxoChanges) {
        let mut c = UtxoChanges::default();
        let coinbase = OutPointKey {
            txid: txid(n, 0),
            vout: 0,
        };
        c.created
            .push((coinbase, record(50_0000_0000, n, true, n << 20)));
        for t in 1..=txs {
            if !self.unspent.is_empty() {
                let i = (self.rng.next() % self.unspent.len() as u64) as usize;
                let op = self.unspent.swap_remove(i);
                let r = self.records.remove(&op).expect("generated");
                c.spent.push((op, r));
            }
            for vout in 0..2 {
                let op = OutPointKey {
                    txid: txid(n, t),
                    vout,
                };
                c.created.push((
                    op,
                    record(1_000 + t, n, false, (n << 20) | (t << 1) | u64::from(vout)),
                ));
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

fn run(name: &str, store: &dyn UtxoStore, blocks: u64, txs: u64, size: &dyn Fn() -> u64) {
    let mut chain = Chain {
        rng: Rng(0x5eed),
        unspent: Vec::new(),
        records: HashMap::new(),
    };
    let started = Instant::now();
    for n in 0..blocks {
        let (b, c) = chain.block(n, txs);
        store.apply_block(7, &b, &c).expect("apply");
    }
    let secs = started.elapsed().as_secs_f64();
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
    let bytes = size();
    println!(
        "{name}: {blocks} blocks of {txs} txs, one commit each: {:.0} tx/s, {:.0} outputs written/s ({secs:.1} s); {} unspent outputs; a batch read of {txs}: {:.1} ms; {:.0} bytes on disk per unspent output (undo records included)",
        (blocks * (txs + 1)) as f64 / secs,
        (blocks * (2 * txs + 1)) as f64 / secs,
        counts.outputs,
        read * 1e3,
        bytes as f64 / counts.outputs as f64,
    );
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
    if !has("--no-embedded") {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedUtxoStore::open(dir.path()).expect("open");
        run("embedded", &store, blocks, txs, &|| dir_size(dir.path()));
    }
    if !has("--no-pg") {
        let pg = TempPostgres::start(true).expect("PostgreSQL (scripts/install-postgres)");
        let store = PgUtxoStore::connect(pg.url()).expect("connect");
        let url = pg.url().to_owned();
        run("postgresql", &store, blocks, txs, &|| {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
            c.batch_execute("VACUUM ANALYZE").expect("vacuum");
            c.query_one(
                "SELECT pg_total_relation_size('utxo_coins') + pg_total_relation_size('utxo_undo') + pg_total_relation_size('utxo_blocks')",
                &[],
            )
            .expect("size")
            .get::<_, i64>(0) as u64
        });
    }
}
