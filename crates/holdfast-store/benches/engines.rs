//! The engine comparison behind the embedded backend's choice (docs/STORE.md): the same
//! transfers written into redb (B-trees), SQLite (rusqlite, bundled) and fjall (LSM tree),
//! each with the embedded store's indexes, then the same "transfers out of A from block B"
//! queries. A plain binary, not part of the default build:
//!
//! `cargo bench -p holdfast-store --features engine-comparison --bench engines [-- --transfers N]`
//! (default 1 M; `-- --only redb` etc. for one engine).
//!
//! The work per transfer is the store's: a record keyed by its place (block, tx index,
//! position), an entry in each address index carrying everything a query returns (covering),
//! a transaction entry; per block, a block row and one entry per asset moved. Writes go 40
//! blocks per transaction, each transaction's keys sorted per index first. Durability is
//! each engine's setting closest to the store's: a commit reaches the OS (fjall `Buffer`,
//! SQLite WAL with `synchronous=NORMAL`) and is fsynced every second; redb has no such
//! mode, so its commits are `Durability::None` with an `Immediate` commit every second.

// The binary's allocator, so that the figures are what `holdfast` runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use holdfast_primitives::{Position, Transfer};
use holdfast_store::BlockData;

#[allow(dead_code)]
#[path = "support/workload.rs"]
mod workload;
use workload::{BLOCKS_PER_WRITE, PER_BLOCK, Rng, block, sender};

const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Block number, tx index, position.
fn place(t: &Transfer, out: &mut Vec<u8>) {
    out.extend_from_slice(&t.block_number.to_be_bytes());
    out.extend_from_slice(&t.tx_index.to_be_bytes());
    match &t.position {
        Position::Call { trace_address } => {
            out.push(0);
            for a in trace_address {
                out.extend_from_slice(&a.to_be_bytes());
            }
        }
        Position::Log { log_index, item } => {
            out.push(1);
            out.extend_from_slice(&log_index.to_be_bytes());
            out.extend_from_slice(&item.to_be_bytes());
        }
    }
}

/// The store's 8-byte digest of a tx hash (words folded, SplitMix64's finalizer).
fn tx_digest(h: &[u8]) -> [u8; 8] {
    let mut x = 0u64;
    for w in h.chunks_exact(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        x ^= u64::from_be_bytes(b);
    }
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (x ^ (x >> 31)).to_be_bytes()
}

fn minimal(v: &[u8], out: &mut Vec<u8>) {
    let skip = v.iter().take_while(|b| **b == 0).count();
    out.push((v.len() - skip) as u8);
    out.extend_from_slice(&v[skip..]);
}

fn asset(t: &Transfer, out: &mut Vec<u8>) {
    match t.asset.token() {
        None => out.push(0),
        Some(token) => {
            out.push(1);
            out.extend_from_slice(token.as_slice());
        }
    }
}

/// Everything a query returns but the indexed address and the place.
fn covering(t: &Transfer, other: Address, out: &mut Vec<u8>) {
    out.extend_from_slice(t.block_hash.as_slice());
    out.extend_from_slice(t.tx_hash.as_slice());
    out.extend_from_slice(&t.timestamp.to_be_bytes());
    out.extend_from_slice(other.as_slice());
    asset(t, out);
    minimal(&t.amount.to_be_bytes::<32>(), out);
}

/// The key-value pairs of a write, per index (0 blocks, 1 records, 2 from, 3 to, 4 tx,
/// 5 asset), each index's keys sorted.
fn entries(blocks: &[BlockData]) -> [Vec<(Vec<u8>, Vec<u8>)>; 6] {
    let mut e: [Vec<(Vec<u8>, Vec<u8>)>; 6] = Default::default();
    for b in blocks {
        let n = b.block.number.to_be_bytes();
        e[0].push((n.to_vec(), b.block.hash.to_vec()));
        for t in &b.transfers {
            let mut p = Vec::with_capacity(19);
            place(t, &mut p);
            let mut rec = Vec::with_capacity(100);
            rec.extend_from_slice(t.tx_hash.as_slice());
            rec.extend_from_slice(t.from.as_slice());
            rec.extend_from_slice(t.to.as_slice());
            asset(t, &mut rec);
            minimal(&t.amount.to_be_bytes::<32>(), &mut rec);
            e[1].push((p.clone(), rec));
            let mut v = Vec::with_capacity(120);
            covering(t, t.to, &mut v);
            e[2].push(([t.from.as_slice(), &p].concat(), v));
            let mut v = Vec::with_capacity(120);
            covering(t, t.from, &mut v);
            e[3].push(([t.to.as_slice(), &p].concat(), v));
            e[4].push((
                [&tx_digest(t.tx_hash.as_slice())[..], &p[..12]].concat(),
                Vec::new(),
            ));
            let mut a = Vec::with_capacity(29);
            asset(t, &mut a);
            a.extend_from_slice(&n);
            e[5].push((a, Vec::new()));
        }
    }
    for index in &mut e {
        index.sort_unstable();
        index.dedup_by(|a, b| a.0 == b.0);
    }
    e
}

trait Engine {
    fn write(&mut self, blocks: &[BlockData]);
    /// Rows of "out of `a` from block `from`", at most `limit`.
    fn out_of(&self, a: Address, from: u64, limit: usize) -> usize;
    /// Bytes on disk, after flushing what is pending.
    fn disk(&mut self) -> u64;
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p).map_or(0, |rd| {
        rd.filter_map(Result::ok)
            .map(|e| {
                e.metadata().map_or(0, |m| {
                    if m.is_dir() {
                        dir_size(&e.path())
                    } else {
                        m.len()
                    }
                })
            })
            .sum()
    })
}

fn end_of(prefix: &[u8]) -> Vec<u8> {
    [prefix, &[0xff; 32]].concat()
}

mod redb_engine {
    use super::*;
    use redb::{Database, Durability, ReadableDatabase, TableDefinition};

    type Bytes = &'static [u8];
    const TABLES: [TableDefinition<Bytes, Bytes>; 6] = [
        TableDefinition::new("blocks"),
        TableDefinition::new("transfers"),
        TableDefinition::new("from"),
        TableDefinition::new("to"),
        TableDefinition::new("tx"),
        TableDefinition::new("asset"),
    ];

    pub struct Redb {
        pub db: Database,
        pub path: PathBuf,
        pub synced: Instant,
    }

    impl Engine for Redb {
        fn write(&mut self, blocks: &[BlockData]) {
            let mut txn = self.db.begin_write().expect("begin");
            let durable = self.synced.elapsed() >= SYNC_EVERY;
            if durable {
                self.synced = Instant::now();
            } else {
                txn.set_durability(Durability::None).expect("durability");
            }
            for (def, index) in TABLES.iter().zip(entries(blocks)) {
                let mut table = txn.open_table(*def).expect("table");
                for (k, v) in &index {
                    table.insert(k.as_slice(), v.as_slice()).expect("insert");
                }
            }
            txn.commit().expect("commit");
        }

        fn out_of(&self, a: Address, from: u64, limit: usize) -> usize {
            let txn = self.db.begin_read().expect("read");
            let table = txn.open_table(TABLES[2]).expect("table");
            let start = [a.as_slice(), &from.to_be_bytes()].concat();
            let end = end_of(a.as_slice());
            let mut n = 0;
            for item in table
                .range(start.as_slice()..end.as_slice())
                .expect("range")
                .take(limit)
            {
                let (_, v) = item.expect("item");
                n += usize::from(!v.value().is_empty());
            }
            n
        }

        fn disk(&mut self) -> u64 {
            let txn = self.db.begin_write().expect("begin");
            txn.commit().expect("durable commit");
            std::fs::metadata(&self.path).map_or(0, |m| m.len())
        }
    }
}

mod sqlite_engine {
    use super::*;
    use rusqlite::{Connection, params};

    pub struct Sqlite {
        pub c: Connection,
        pub path: PathBuf,
        pub synced: Instant,
    }

    impl Sqlite {
        pub fn open(path: &Path) -> Sqlite {
            let c = Connection::open(path).expect("open");
            c.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
                 PRAGMA cache_size = -262144; PRAGMA wal_autocheckpoint = 10000;
                 CREATE TABLE blocks (number INTEGER PRIMARY KEY, hash BLOB NOT NULL);
                 CREATE TABLE transfers (
                    block INTEGER NOT NULL, tx_index INTEGER NOT NULL, position BLOB NOT NULL,
                    block_hash BLOB NOT NULL, tx_hash BLOB NOT NULL, ts INTEGER NOT NULL,
                    from_addr BLOB NOT NULL, to_addr BLOB NOT NULL, asset BLOB NOT NULL,
                    amount BLOB NOT NULL,
                    PRIMARY KEY (block, tx_index, position)) WITHOUT ROWID;
                 -- covering, like the store's address indexes
                 CREATE INDEX t_from ON transfers (from_addr, block, tx_index, position,
                    block_hash, tx_hash, ts, to_addr, asset, amount);
                 CREATE INDEX t_to ON transfers (to_addr, block, tx_index, position,
                    block_hash, tx_hash, ts, from_addr, asset, amount);
                 CREATE INDEX t_tx ON transfers (tx_hash);
                 CREATE TABLE assets (asset BLOB NOT NULL, block INTEGER NOT NULL,
                    PRIMARY KEY (asset, block)) WITHOUT ROWID;",
            )
            .expect("schema");
            Sqlite {
                c,
                path: path.to_owned(),
                synced: Instant::now(),
            }
        }
    }

    impl Engine for Sqlite {
        fn write(&mut self, blocks: &[BlockData]) {
            let txn = self.c.transaction().expect("begin");
            {
                let mut block_row = txn
                    .prepare_cached("INSERT INTO blocks VALUES (?1, ?2)")
                    .expect("prepare");
                let mut row = txn
                    .prepare_cached(
                        "INSERT INTO transfers VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    )
                    .expect("prepare");
                let mut asset_row = txn
                    .prepare_cached("INSERT OR IGNORE INTO assets VALUES (?1, ?2)")
                    .expect("prepare");
                for b in blocks {
                    let n = b.block.number as i64;
                    block_row
                        .execute(params![n, b.block.hash.as_slice()])
                        .expect("block");
                    for t in &b.transfers {
                        let mut p = Vec::with_capacity(19);
                        place(t, &mut p);
                        let mut a = Vec::with_capacity(21);
                        asset(t, &mut a);
                        let mut amount = Vec::with_capacity(33);
                        minimal(&t.amount.to_be_bytes::<32>(), &mut amount);
                        row.execute(params![
                            n,
                            t.tx_index,
                            &p[12..],
                            b.block.hash.as_slice(),
                            t.tx_hash.as_slice(),
                            t.timestamp as i64,
                            t.from.as_slice(),
                            t.to.as_slice(),
                            a,
                            amount
                        ])
                        .expect("transfer");
                        asset_row.execute(params![a, n]).expect("asset");
                    }
                }
            }
            txn.commit().expect("commit");
            if self.synced.elapsed() >= SYNC_EVERY {
                self.c
                    .execute_batch("PRAGMA wal_checkpoint(PASSIVE)")
                    .expect("checkpoint");
                self.synced = Instant::now();
            }
        }

        fn out_of(&self, a: Address, from: u64, limit: usize) -> usize {
            let mut q = self
                .c
                .prepare_cached(
                    "SELECT block, tx_index, position, block_hash, tx_hash, ts, to_addr, asset, amount
                     FROM transfers WHERE from_addr = ?1 AND block >= ?2
                     ORDER BY block, tx_index, position LIMIT ?3",
                )
                .expect("prepare");
            let mut rows = q
                .query(params![a.as_slice(), from as i64, limit as i64])
                .expect("query");
            let mut n = 0;
            while let Some(r) = rows.next().expect("row") {
                let h: Vec<u8> = r.get(4).expect("tx hash");
                n += usize::from(!h.is_empty());
            }
            n
        }

        fn disk(&mut self) -> u64 {
            self.c
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                .expect("checkpoint");
            std::fs::metadata(&self.path).map_or(0, |m| m.len())
        }
    }
}

mod fjall_engine {
    use super::*;
    use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

    pub struct Fjall {
        pub db: Database,
        pub spaces: Vec<Keyspace>,
        pub path: PathBuf,
        pub synced: Instant,
    }

    impl Fjall {
        pub fn open(path: &Path) -> Fjall {
            let db = Database::builder(path)
                .cache_size(256 << 20)
                .open()
                .expect("open");
            let spaces = ["blocks", "transfers", "from", "to", "tx", "asset"]
                .iter()
                .map(|n| {
                    db.keyspace(n, KeyspaceCreateOptions::default)
                        .expect("keyspace")
                })
                .collect();
            Fjall {
                db,
                spaces,
                path: path.to_owned(),
                synced: Instant::now(),
            }
        }
    }

    impl Engine for Fjall {
        fn write(&mut self, blocks: &[BlockData]) {
            let mut batch = self.db.batch().durability(Some(PersistMode::Buffer));
            for (space, index) in self.spaces.iter().zip(entries(blocks)) {
                for (k, v) in index {
                    batch.insert(space, k, v);
                }
            }
            batch.commit().expect("commit");
            if self.synced.elapsed() >= SYNC_EVERY {
                self.db.persist(PersistMode::SyncAll).expect("sync");
                self.synced = Instant::now();
            }
        }

        fn out_of(&self, a: Address, from: u64, limit: usize) -> usize {
            let start = [a.as_slice(), &from.to_be_bytes()].concat();
            let mut n = 0;
            for g in self.spaces[2]
                .range(start..end_of(a.as_slice()))
                .take(limit)
            {
                let (_, v) = g.into_inner().expect("item");
                n += usize::from(!v.is_empty());
            }
            n
        }

        fn disk(&mut self) -> u64 {
            for s in &self.spaces {
                s.rotate_memtable_and_wait().expect("flush");
            }
            while self.db.outstanding_flushes() > 0 || self.db.active_compactions() > 0 {
                std::thread::sleep(Duration::from_millis(50));
            }
            dir_size(&self.path)
        }
    }
}

fn percentile(xs: &mut [f64], p: f64) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[((xs.len() as f64 - 1.0) * p) as usize]
}

fn run(name: &str, e: &mut dyn Engine, transfers: u64) {
    let blocks = transfers / PER_BLOCK as u64;
    let mut rng = Rng(42);
    let mut in_engine = Duration::ZERO;
    let mut n = 0;
    while n < blocks {
        let batch: Vec<BlockData> = (n..(n + BLOCKS_PER_WRITE as u64).min(blocks))
            .map(|i| block(i, &mut rng))
            .collect();
        let t = Instant::now();
        e.write(&batch);
        in_engine += t.elapsed();
        n += batch.len() as u64;
    }
    let written = blocks * PER_BLOCK as u64;
    let mut lat = Vec::new();
    let mut found = 0;
    for _ in 0..20_000 {
        let a = sender(&mut rng);
        let from = rng.next() % blocks;
        let t = Instant::now();
        found += e.out_of(a, from, 100);
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let disk = e.disk();
    println!(
        "{name}: {written} transfers: write {:.0} transfers/s ({:.1} s in the engine); out of A from B p50 {:.0} us, p99 {:.0} us ({:.1} rows); {:.0} bytes/transfer on disk",
        written as f64 / in_engine.as_secs_f64(),
        in_engine.as_secs_f64(),
        percentile(&mut lat, 0.5),
        percentile(&mut lat, 0.99),
        found as f64 / 20_000.0,
        disk as f64 / written as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let transfers: u64 = arg("--transfers")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let only = arg("--only").map(String::as_str);
    let dir = tempfile::tempdir().expect("tempdir");
    println!(
        "load average: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    if only.is_none_or(|o| o == "redb") {
        let path = dir.path().join("x.redb");
        let db = redb::Database::builder()
            .set_cache_size(256 << 20)
            .create(&path)
            .expect("redb");
        let mut e = redb_engine::Redb {
            db,
            path,
            synced: Instant::now(),
        };
        run("redb 4.6", &mut e, transfers);
    }
    if only.is_none_or(|o| o == "sqlite") {
        let mut e = sqlite_engine::Sqlite::open(&dir.path().join("x.sqlite"));
        run("SQLite (rusqlite 0.43, bundled)", &mut e, transfers);
    }
    if only.is_none_or(|o| o == "fjall") {
        let mut e = fjall_engine::Fjall::open(&dir.path().join("fjall"));
        run("fjall 3.1", &mut e, transfers);
    }
}
