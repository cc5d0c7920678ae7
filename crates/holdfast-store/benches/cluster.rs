//! Clustering benchmark (docs/BENCHMARKS.md, "Bitcoin: clustering"): the common-input-ownership
//! union-find the UTXO index runs in each block's write (`cluster::merges` then
//! `cluster::apply`, the product's code), over generated transactions, with the stored
//! union-find replaced by a map in memory — against a plain union-find in PostgreSQL SQL
//! (min-label propagation with pointer jumping) over the same merge groups, in the same run.
//!
//! The generated chain: blocks of `--block` transactions (default 2,000); a transaction spends
//! 1 input (55 %), 2 (30 %), 3 (10 %) or 5 (5 %: consolidations) from addresses among the newest
//! `--window` addresses (default 1,000,000; 43-character addresses), and pays 2 new ones; one in
//! 1,000 is CoinJoin-like (5 inputs, 5 equal outputs), which merges nothing. Generation is not
//! timed; the clustering time is each block's `merges` + `apply` + writing its changes to the
//! map. Then the same transactions are generated again and clustered by the bulk build the
//! rebuild runs (`cluster::merges` then `Build::add`, or `Build::add_recorded` with its undo
//! record for the newest `--keep-undo` blocks, default 1,000 as `holdfast` keeps): timed the
//! same way, from each block's transactions in memory to the final entries in memory. Every
//! address's entry and every kept block's undo record (a digest) must be the per-block step's,
//! and the SQL side's cluster count both's.
//!
//! With `--store-txs N`, the first N of the same transactions (each block given a coinbase and
//! distinct outpoints) are also written to a real embedded index (and PostgreSQL unless
//! `--no-pg`) as imported history (`import_block`: each block's clusters updated in its write),
//! and `rebuild_clusters` is timed over them: reading the stored transactions back, the build,
//! and writing the union-find; every clustered address's cluster must be the same after.
//!
//! `cargo bench -p holdfast-store --bench cluster [-- --txs N] [--block B] [--window W]
//! [--keep-undo K] [--store-txs N [--store-dir DIR]] [--bulk-only] [--no-pg]`

// The binary's allocator, so that the figures are what `holdfast` runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::time::{Duration, Instant};

use alloy_primitives::B256;
use holdfast_primitives::BlockRef;
use holdfast_store::testing::TempPostgres;
use holdfast_store::utxo::cluster::{Build, Node, apply, merges};
use holdfast_store::utxo::{
    EmbeddedUtxoStore, NoProgress, OutPointKey, PgUtxoStore, RebuildOptions, TxInput, TxOutput,
    TxRecord, UtxoStore,
};
use rustc_hash::FxHashMap;

#[path = "support/args.rs"]
mod args;
use args::{Rng, has, option};

fn address(id: u64) -> String {
    format!("bc1q{id:039x}")
}

fn id_of(address: &str) -> i64 {
    i64::from_str_radix(&address[4..], 16).expect("generated")
}

struct Gen {
    rng: Rng,
    next: u64,
    window: u64,
}

impl Gen {
    fn pick(&mut self) -> Option<String> {
        if self.next == 0 {
            return None;
        }
        let span = self.next.min(self.window);
        Some(address(self.next - 1 - self.rng.next() % span))
    }

    fn fresh(&mut self) -> String {
        self.next += 1;
        address(self.next - 1)
    }

    fn block(&mut self, txs: u64) -> Vec<TxRecord> {
        let mut out = Vec::with_capacity(txs as usize);
        for _ in 0..txs {
            let r = self.rng.next() % 1000;
            let coinjoin = r == 999;
            let inputs = match r {
                _ if coinjoin => 5,
                0..550 => 1,
                550..850 => 2,
                850..950 => 3,
                _ => 5,
            };
            let inputs: Vec<TxInput> = (0..inputs)
                .filter_map(|_| self.pick())
                .map(|a| TxInput {
                    prevout: OutPointKey {
                        txid: B256::ZERO,
                        vout: 0,
                    },
                    value: 1_000,
                    address: Some(a),
                })
                .collect();
            let outputs = (0..if coinjoin { 5 } else { 2 })
                .map(|i| TxOutput {
                    value: if coinjoin { 900 } else { 400 + i },
                    script: Vec::new(),
                    address: Some(self.fresh()),
                })
                .collect();
            out.push(TxRecord {
                txid: B256::ZERO,
                coinbase: inputs.is_empty(),
                inputs,
                outputs,
            });
        }
        out
    }
}

/// A digest of an undo record (its entries in order), to compare the two sides' records
/// without keeping them.
fn digest(undo: &[(String, Option<Node>)], into: &mut u64) {
    use std::hash::{BuildHasher, Hash};
    let mut h = rustc_hash::FxBuildHasher.build_hasher();
    undo.hash(&mut h);
    *into = into.rotate_left(5) ^ std::hash::Hasher::finish(&h);
}

/// The chain id the stored runs use: `holdfast-bitcoin`'s `Network::Bitcoin.import_id()`, so
/// that `holdfast clusters rebuild --chain bitcoin` finds an index kept with `--store-dir`.
const STORED: u64 = 1_001;

/// A block of the generated chain made storable as imported history: a coinbase first,
/// distinct txids and outpoints, no input-less transaction but the coinbase.
fn storable(block: Vec<TxRecord>, serial: &mut u64) -> Vec<TxRecord> {
    let mut id = || {
        *serial += 1;
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&serial.to_be_bytes());
        B256::from(b)
    };
    let mut out = vec![TxRecord {
        txid: id(),
        coinbase: true,
        inputs: vec![],
        outputs: vec![TxOutput {
            value: 50,
            script: vec![0x51],
            address: None,
        }],
    }];
    for mut tx in block.into_iter().filter(|t| !t.inputs.is_empty()) {
        tx.coinbase = false;
        tx.txid = id();
        for i in &mut tx.inputs {
            i.prevout = OutPointKey {
                txid: id(),
                vout: 0,
            };
        }
        out.push(tx);
    }
    out
}

/// Writes the first `n` generated transactions to `s` as imported history, then rebuilds
/// their clusters, both timed; checks every clustered address's cluster is unchanged.
fn stored_rebuild(what: &str, s: &dyn UtxoStore, n: u64, per_block: u64, fresh: impl Fn() -> Gen) {
    let mut g = fresh();
    let (mut done, mut height, mut serial) = (0u64, 0u64, 0u64);
    let mut members: Vec<String> = Vec::new();
    let started = Instant::now();
    while done < n {
        let block = g.block(per_block.min(n - done));
        done += block.len() as u64;
        for group in merges(&block) {
            members.extend(group.iter().map(|a| (*a).to_owned()));
        }
        let txs = storable(block, &mut serial);
        let mut hash = [0xbb; 32];
        hash[..8].copy_from_slice(&height.to_be_bytes());
        let b = BlockRef {
            number: height,
            hash: B256::from(hash),
            parent_hash: B256::ZERO,
            timestamp: 1_300_000_000 + height,
        };
        s.import_block(STORED, &b, &txs).expect("import");
        height += 1;
    }
    let written = started.elapsed();
    members.sort_unstable();
    members.dedup();
    let before: Vec<_> = members
        .iter()
        .map(|a| s.cluster(STORED, a).expect("cluster"))
        .collect();
    let started = Instant::now();
    let r = s
        .rebuild_clusters(STORED, RebuildOptions::default(), &NoProgress)
        .expect("rebuild");
    let rebuilt = started.elapsed();
    let after: Vec<_> = members
        .iter()
        .map(|a| s.cluster(STORED, a).expect("cluster"))
        .collect();
    assert_eq!(
        before, after,
        "the rebuilt clusters are the incremental ones"
    );
    assert_eq!(r.addresses, members.len() as u64);
    println!(
        "{what}: {} transactions in {} blocks imported with per-block clusters in {:.1} s ({:.0} tx/s); rebuild_clusters {:.2} s ({:.0} tx/s): reading and building {:.2} s, writing {} entries {:.2} s; {} addresses in {} clusters (largest {}), {:.0} MB; every address's cluster unchanged",
        r.transactions,
        r.blocks,
        written.as_secs_f64(),
        r.transactions as f64 / written.as_secs_f64().max(1e-9),
        rebuilt.as_secs_f64(),
        r.transactions as f64 / rebuilt.as_secs_f64().max(1e-9),
        r.build_time.as_secs_f64(),
        r.addresses,
        r.write_time.as_secs_f64(),
        r.addresses,
        r.clusters,
        r.largest,
        r.memory as f64 / 1e6,
    );
}

fn main() {
    let txs = option("--txs", 10_000_000);
    let per_block = option("--block", 2_000).max(1);
    let window = option("--window", 1_000_000).max(1);
    let keep_undo = option("--keep-undo", 1_000);
    let blocks = txs.div_ceil(per_block);
    let first_kept = blocks.saturating_sub(keep_undo);
    let gen_chain = || Gen {
        rng: Rng(0x5eed_c1a5),
        next: 0,
        window,
    };
    let mut g = gen_chain();
    let mut undo_digest = 0u64;
    // The stored union-find's stand-in (the index keeps it in fjall or PostgreSQL).
    let mut uf: FxHashMap<String, Node> = FxHashMap::default();
    let mut edges: Vec<(i64, i64)> = Vec::new();
    let mut clustering = Duration::ZERO;
    let mut done = 0u64;
    let mut groups_total = 0u64;
    let mut height = 0u64;
    while done < txs && !has("--bulk-only") {
        let block = g.block(per_block.min(txs - done));
        done += block.len() as u64;
        let started = Instant::now();
        let groups = merges(&block);
        let changes = apply(&groups, |a| Ok(uf.get(a).cloned())).expect("apply");
        for (a, n) in changes.new {
            uf.insert(a, n);
        }
        clustering += started.elapsed();
        if height >= first_kept {
            digest(&changes.old, &mut undo_digest);
        }
        height += 1;
        groups_total += groups.len() as u64;
        if !has("--no-pg") {
            for group in &groups {
                for pair in group.windows(2) {
                    edges.push((id_of(pair[0]), id_of(pair[1])));
                }
            }
        }
    }
    let roots = uf
        .iter()
        .filter(|(a, n)| n.parent == **a && n.size > 1)
        .count();
    let largest = uf.values().map(|n| n.size).max().unwrap_or(0);
    if !has("--bulk-only") {
        println!(
            "in memory (the index's union-find step): {txs} transactions, {groups_total} merging, {} addresses in clusters, {roots} clusters (largest {largest}): {:.2} s ({:.0} tx/s)",
            uf.len(),
            clustering.as_secs_f64(),
            txs as f64 / clustering.as_secs_f64().max(1e-9)
        );
    }
    // The bulk build over the same transactions (generated again: not timed).
    let mut g = gen_chain();
    let mut b = Build::new();
    let mut bulk = Duration::ZERO;
    let mut bulk_merges = Duration::ZERO;
    let mut built_digest = 0u64;
    let (mut done, mut height) = (0u64, 0u64);
    while done < txs {
        let block = g.block(per_block.min(txs - done));
        done += block.len() as u64;
        let started = Instant::now();
        let groups = merges(&block);
        bulk_merges += started.elapsed();
        if height >= first_kept {
            let undo = b.add_recorded(&groups).expect("build");
            bulk += started.elapsed();
            digest(&undo, &mut built_digest);
        } else {
            b.add(&groups).expect("build");
            bulk += started.elapsed();
        }
        height += 1;
    }
    let (built_roots, built_largest) = b.clusters();
    println!(
        "bulk build (the rebuild's): {txs} transactions, {} addresses, {built_roots} clusters (largest {built_largest}), undo records of the newest {} blocks: {:.2} s ({:.0} tx/s; of which merges {:.2} s); {:.1} MB in memory ({:.0} bytes per address){}",
        b.addresses(),
        blocks - first_kept,
        bulk.as_secs_f64(),
        txs as f64 / bulk.as_secs_f64().max(1e-9),
        bulk_merges.as_secs_f64(),
        b.heap_bytes() as f64 / 1e6,
        b.heap_bytes() as f64 / b.addresses().max(1) as f64,
        if clustering.is_zero() {
            String::new() // `--bulk-only`: the per-block step did not run
        } else {
            format!(
                "; ratio to the per-block step {:.2}",
                bulk.as_secs_f64() / clustering.as_secs_f64()
            )
        },
    );
    let store_txs = option("--store-txs", 0);
    if store_txs > 0 {
        let dir = tempfile::tempdir().expect("tempdir");
        // `--store-dir DIR`: the embedded index kept there (`<data-dir>/store/utxo`).
        let kept = std::env::args()
            .skip_while(|a| a != "--store-dir")
            .nth(1)
            .map(std::path::PathBuf::from);
        let s = EmbeddedUtxoStore::open(kept.as_deref().unwrap_or(dir.path())).expect("open");
        stored_rebuild("embedded index", &s, store_txs, per_block, gen_chain);
        if !has("--no-pg") {
            let pg = TempPostgres::start(false).expect("PostgreSQL (scripts/install-postgres)");
            let s = PgUtxoStore::connect(pg.url()).expect("connect");
            stored_rebuild("PostgreSQL index", &s, store_txs, per_block, gen_chain);
        }
    }
    if has("--bulk-only") {
        return;
    }
    // Not timed: every entry of both sides, and the kept undo records.
    assert_eq!((built_roots as usize, built_largest), (roots, largest));
    assert_eq!(b.nodes().count(), uf.len(), "the same addresses");
    for (a, n) in &uf {
        assert_eq!(b.get(a).as_ref(), Some(n), "address {a}");
    }
    assert_eq!(built_digest, undo_digest, "the same undo records");
    println!("identical: every address's entry and the kept undo records");
    drop(b);
    if has("--no-pg") {
        return;
    }
    drop(uf);
    let pg = TempPostgres::start(false).expect("PostgreSQL (scripts/install-postgres)");
    let mut c = postgres::Client::connect(pg.url(), postgres::NoTls).expect("connect");
    c.batch_execute(
        "SET work_mem = '512MB'; SET maintenance_work_mem = '1GB';
         CREATE UNLOGGED TABLE e (a bigint NOT NULL, b bigint NOT NULL);",
    )
    .expect("schema");
    {
        let mut w = c.copy_in("COPY e FROM STDIN").expect("copy");
        let mut buf = Vec::with_capacity(1 << 20);
        for (a, b) in &edges {
            writeln!(buf, "{a}\t{b}").expect("buffer");
            if buf.len() > 1 << 20 {
                w.write_all(&buf).expect("copy");
                buf.clear();
            }
        }
        w.write_all(&buf).expect("copy");
        w.finish().expect("copy");
    }
    let started = Instant::now();
    c.batch_execute(
        "CREATE UNLOGGED TABLE lbl AS SELECT id, id AS l FROM (SELECT a AS id FROM e UNION SELECT b FROM e) x;
         ALTER TABLE lbl ADD PRIMARY KEY (id);
         ANALYZE e; ANALYZE lbl;",
    )
    .expect("labels");
    let mut rounds = 0;
    loop {
        rounds += 1;
        // Hook: every address takes the smallest label among its neighbours'.
        let hooked = c
            .execute(
                "UPDATE lbl SET l = s.m FROM (
                   SELECT id, min(l) AS m FROM (
                     SELECT e.a AS id, lb.l FROM e JOIN lbl lb ON lb.id = e.b
                     UNION ALL
                     SELECT e.b, la.l FROM e JOIN lbl la ON la.id = e.a) x
                   GROUP BY id) s
                 WHERE lbl.id = s.id AND s.m < lbl.l",
                &[],
            )
            .expect("hook");
        // Jump: a label becomes its label's label, until none changes.
        loop {
            let jumped = c
                .execute(
                    "UPDATE lbl SET l = p.l FROM lbl p WHERE p.id = lbl.l AND p.l < lbl.l",
                    &[],
                )
                .expect("jump");
            if jumped == 0 {
                break;
            }
        }
        if hooked == 0 {
            break;
        }
    }
    let sql = started.elapsed();
    let row = c
        .query_one("SELECT count(*), count(DISTINCT l) FROM lbl", &[])
        .expect("count");
    let (members, clusters): (i64, i64) = (row.get(0), row.get(1));
    println!(
        "PostgreSQL SQL union-find (same merge groups: {} edges): {members} addresses, {clusters} clusters, {rounds} rounds: {:.2} s ({:.0} tx/s); ratio {:.1}x",
        edges.len(),
        sql.as_secs_f64(),
        txs as f64 / sql.as_secs_f64().max(1e-9),
        sql.as_secs_f64() / clustering.as_secs_f64().max(1e-9)
    );
    assert_eq!(
        clusters as usize, roots,
        "both sides must find the same number of clusters"
    );
}
