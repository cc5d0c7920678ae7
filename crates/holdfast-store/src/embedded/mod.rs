//! The embedded backend: fjall, a log-structured merge tree in pure Rust, in one directory.
//! Chosen over redb and SQLite by the write benchmark (docs/STORE.md): the address indexes
//! take random keys, which a B-tree pays for with a page rewrite per insert, an LSM tree with
//! an in-memory insert and sequential flushes.
//!
//! Every chain has its own keyspaces (`<chain>.<name>`), so no key carries the chain id.
//! Integers are big-endian, so byte order is block order:
//!
//! | keyspace | key | value |
//! |---|---|---|
//! | `meta` | `b` number | hash, parent hash, timestamp |
//! | `meta` | `c` | counts: blocks, transfers, conversions |
//! | `meta` | `i` number | — (the block holds imported transfers) |
//! | `meta` | `l` / `x` | the record log's end / the index mark |
//! | `meta` | `v` number, tx index, log index | the conversion |
//! | `meta` | `w` tx hash, log index | number, tx index |
//! | `transfers` | number, tx index, position | flags, tx hash, timestamp, from, to, asset, amount, block hash |
//! | `from` / `to` | address, number, tx index, position | where the record is in the record log; the counterparty; flags (zero amount) |
//! | `tx` | 8-byte digest of the tx hash, number, tx index | — |
//! | `asset` | 0 (native) or 1 + token, number | — (the block moved this asset) |
//!
//! A write is one atomic fjall batch across the chain's keyspaces with the records, the
//! block and the asset entries; writers are serialized by a mutex, readers use snapshots.
//! The `from`, `to` and `tx` entries of the newest blocks wait in an in-memory index buffer
//! (`pending`) and are written out as sorted tables on a background thread, and address
//! entries point into a per-chain record log (`log`), so "transfers out of A from block B"
//! is one range scan plus one positioned read per row; the entries also carry the
//! counterparty and a zero-amount flag, so a wallet's history (`address_entries`) is the
//! range scan alone (module `address`; format 2 entries, the location alone, still read). The transaction and asset indexes
//! point at blocks (and transactions) whose records are then filtered, which keeps them to
//! about one entry per transaction and one per asset and block.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, U256};
use fjall::{
    Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable, Snapshot,
    config::{BlockSizePolicy, FilterPolicy},
};
use holdfast_primitives::{Asset, BlockRef, Conversion, Transfer};

use crate::codec::{self, Reader, corrupt, prefix_end};
use crate::{
    AddressEntry, AddressQuery, Applied, BlockData, Store, StoreError, StoreStats, TransferQuery,
    admit, check_limit, validate,
};

mod address;
mod import;
mod layout;
mod log;
mod pending;
mod store_impl;
use layout::{
    ASSET, COUNTS_KEY, FROM, IMPORTED, INDEXED_KEY, LOG_END_KEY, META, REC_ASSET, REC_FROM, REC_TO,
    REC_TX_HASH, SPACES, Staged, TO, TRANSFERS, TX, asset_prefix, block_key, counts_value,
    imported_key, place, read_counts, read_record, record_zero_amount, stage_transfer, tx_digest,
};
use log::{Loc, RecordLog};
use pending::Pending;

/// The layout version written in the store.
/// 2: records carry their block hash; address index entries point at the record in the
/// record log; the `x` mark of the index buffer.
/// 3: address index entries also carry the counterparty and a zero-amount flag, so a
/// wallet's history is read from the index alone (`Store::address_entries`).
const FORMAT: u32 = 3;

/// The oldest format this Holdfast opens. A format 2 store is read as it is (its entries are
/// told apart by length; each reads its record for what it lacks) and marked format 3 when
/// opened, since the entries written from then on are format 3 ones, which an older Holdfast
/// cannot read. Older formats are refused: the store is rebuilt by ingesting again.
const OLDEST_FORMAT: u32 = 2;

/// Data block size of a chain's `transfers` keyspace (fjall's default is 4 KiB). Set when the
/// keyspace is created; a store created before keeps the size it was created with.
const TRANSFERS_BLOCK_BYTES: u32 = 32 * 1024;

/// When a commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync every commit: a block that was written survives a power cut. Costs an fsync
    /// per block.
    EveryCommit,
    /// Every commit reaches the operating system before it returns (it survives the process
    /// being killed); the journal is fsynced by the first commit at least this long after the
    /// last sync, and on close. A power cut can lose the commits since the last fsync, never
    /// part of one: the store reopens at an earlier complete block and ingestion resumes
    /// from it. The default (1 s): the store is derived from the chain, so losing its last
    /// second is a re-fetch, while an fsync per block would bound ingestion by the disk.
    Interval(Duration),
}

/// How to open an [`EmbeddedStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedOptions {
    pub durability: Durability,
    /// Block cache, bytes.
    pub cache_bytes: u64,
    /// How many transfers' index entries the index buffer holds before it writes them out as
    /// sorted tables (about 230 bytes of memory each, per chain, twice over while one buffer
    /// is written out and the next fills). Larger: fewer, larger
    /// tables and less compaction; the buffer is rebuilt from the records on open, which
    /// reads this many records at most.
    pub index_buffer: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            durability: Durability::Interval(Duration::from_secs(1)),
            cache_bytes: 256 << 20,
            index_buffer: 1 << 20,
        }
    }
}

/// The keyspaces of one chain, in the order of the `META`.. constants, and its index buffer.
struct Chain {
    spaces: [Keyspace; 6],
    log: RecordLog,
    /// Index entries of the blocks at or above `indexed_below` (module `pending`).
    buffers: RwLock<Buffers>,
    /// The thread writing `Buffers::frozen` out, if one was started.
    flusher: Mutex<Option<std::thread::JoinHandle<Result<(), StoreError>>>>,
    /// Blocks below this have their index entries in the keyspaces (meta key `x`). Raised
    /// by a write-out under the buffers' write lock, lowered by an unwind under the writer
    /// lock once no write-out runs.
    indexed_below: AtomicU64,
}

impl Chain {
    fn space(&self, i: usize) -> &Keyspace {
        &self.spaces[i]
    }

    fn buffers(&self) -> RwLockReadGuard<'_, Buffers> {
        // The buffers are only changed after a successful commit, in steps that do not
        // panic midway; a poisoned lock still holds consistent buffers.
        self.buffers.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn buffers_mut(&self) -> RwLockWriteGuard<'_, Buffers> {
        self.buffers.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A chain's index buffers: the one writes add to, and the one being written out (by a
/// background thread) while the next fills. Queries read both.
#[derive(Default)]
struct Buffers {
    active: Pending,
    frozen: Option<Arc<Pending>>,
}

impl Buffers {
    /// Blocks below this are indexed directly by a write: below the mark, or in the range
    /// being written out (so that, once the mark moves past that range, no entry of it is
    /// left in memory only).
    fn direct_below(&self, indexed_below: u64) -> u64 {
        match &self.frozen {
            Some(f) => indexed_below.max(f.last_block().saturating_add(1)),
            None => indexed_below,
        }
    }
}

/// Writes a frozen buffer out as sorted tables (fjall's ingestion, one table run per index),
/// then moves the chain's mark above its blocks and drops it. Runs on the flusher thread or
/// in the writer. Readers go on meanwhile: until the buffer is dropped they find its
/// entries in both places and drop the duplicates.
fn write_out(
    db: &Database,
    chain: &Chain,
    frozen: &Pending,
    persist: PersistMode,
) -> Result<(), String> {
    // The tables are durable as soon as they are written (fjall fsyncs them), so the records
    // they point at must be durable first: otherwise a power cut could keep index entries
    // of records the journal lost. One fsync of the log and the journal per write-out.
    chain.log.sync().map_err(|e| format!("record log: {e}"))?;
    db.persist(PersistMode::SyncAll)
        .map_err(|e| e.to_string())?;
    let mut ingest = Vec::with_capacity(3);
    for space in [FROM, TO, TX] {
        ingest.push(
            chain
                .space(space)
                .start_ingestion()
                .map_err(|e| e.to_string())?,
        );
    }
    frozen
        .sorted_entries(|n, key, value| ingest[n].write(key, value))
        .map_err(|e| e.to_string())?;
    for i in ingest {
        i.finish().map_err(|e| e.to_string())?;
    }
    let mut buffers = chain.buffers_mut();
    let below = frozen
        .last_block()
        .saturating_add(1)
        .max(chain.indexed_below.load(Ordering::SeqCst));
    let mut batch = db.batch().durability(Some(persist));
    batch.insert(chain.space(META), INDEXED_KEY, below.to_be_bytes());
    batch.commit().map_err(|e| e.to_string())?;
    chain.indexed_below.store(below, Ordering::SeqCst);
    buffers.frozen = None;
    Ok(())
}

/// A write's index entries for the buffer, added once the write has committed.
#[derive(Default)]
struct Buffered {
    /// Places, back to back.
    places: Vec<u8>,
    entries: Vec<BufferedEntry>,
}

/// A buffered transfer's index entries (the arguments of `Pending::add`).
struct BufferedEntry {
    /// Where its place ends in `Buffered::places`.
    end: usize,
    loc: Loc,
    /// From, to.
    addresses: [Address; 2],
    digest: [u8; 8],
    zero: bool,
}

/// The embedded store. Share it behind an `Arc`; writes are serialized.
pub struct EmbeddedStore {
    db: Database,
    path: PathBuf,
    options: EmbeddedOptions,
    chains: RwLock<HashMap<u64, Arc<Chain>>>,
    writer: Mutex<Instant>,
    /// Test hook: panic while staging a write, after this many transfers.
    fail_after: AtomicUsize,
    /// Test hook: close without writing the index buffers out, as a kill would.
    keep_buffers_on_close: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store directory at `path` with the default options.
    pub fn open(path: &Path) -> Result<EmbeddedStore, StoreError> {
        EmbeddedStore::open_with(path, EmbeddedOptions::default())
    }

    pub fn open_with(path: &Path, options: EmbeddedOptions) -> Result<EmbeddedStore, StoreError> {
        let err = |e: &dyn Display| StoreError::Embedded {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        if path.is_file() {
            return Err(err(&"is a file; the embedded store is a directory"));
        }
        std::fs::create_dir_all(path).map_err(|e| err(&e))?;
        let db = Database::builder(path)
            .cache_size(options.cache_bytes)
            // One background worker: with two, fjall 3.1.13's worker 0 hands compaction
            // requests back to the queue while worker 1 compacts, and spins on them (a fifth
            // of the CPU of a bulk load, docs/STORE.md).
            .worker_threads(1)
            .open()
            .map_err(|e| err(&e))?;
        let store = EmbeddedStore {
            db,
            path: path.to_owned(),
            options,
            chains: RwLock::new(HashMap::new()),
            writer: Mutex::new(Instant::now()),
            fail_after: AtomicUsize::new(usize::MAX),
            keep_buffers_on_close: std::sync::atomic::AtomicBool::new(false),
        };
        store.check_format()?;
        Ok(store)
    }

    fn check_format(&self) -> Result<(), StoreError> {
        let ks = self
            .db
            .keyspace("holdfast", KeyspaceCreateOptions::default)
            .map_err(|e| self.err(e))?;
        match ks.get("format").map_err(|e| self.err(e))? {
            Some(v) => {
                let v = Reader(&v).u32()?;
                if v == FORMAT {
                    return Ok(());
                }
                if !(OLDEST_FORMAT..FORMAT).contains(&v) {
                    let what = if v > FORMAT {
                        "upgrade Holdfast"
                    } else {
                        "rebuild the store: move it aside and ingest again"
                    };
                    return Err(self.err(format!(
                        "store format {v}; this Holdfast reads formats {OLDEST_FORMAT} to {FORMAT}: {what}"
                    )));
                }
                ks.insert("format", FORMAT.to_be_bytes())
                    .map_err(|e| self.err(e))?;
                self.db
                    .persist(PersistMode::SyncAll)
                    .map_err(|e| self.err(e))?;
            }
            None => {
                ks.insert("format", FORMAT.to_be_bytes())
                    .map_err(|e| self.err(e))?;
                self.db
                    .persist(PersistMode::SyncAll)
                    .map_err(|e| self.err(e))?;
            }
        }
        Ok(())
    }

    fn err(&self, e: impl Display) -> StoreError {
        StoreError::Embedded {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// Bytes on disk (journal, tables and record logs).
    pub fn disk_space(&self) -> Result<u64, StoreError> {
        let mut bytes = self.db.disk_space().map_err(|e| self.err(e))?;
        for c in self.chains() {
            bytes += c.log.len();
        }
        Ok(bytes)
    }

    /// Writes the index buffers and every memtable out to tables and waits until flushes and
    /// compactions are done, so that [`EmbeddedStore::disk_space`] measures settled tables
    /// (benchmarks; after a large import).
    pub fn settle(&self) -> Result<(), StoreError> {
        let chains = self.chains();
        {
            let mut writer = self.writer();
            for c in &chains {
                self.flush_index(c, false, &mut writer)?;
            }
        }
        for c in &chains {
            for ks in &c.spaces {
                ks.rotate_memtable_and_wait().map_err(|e| self.err(e))?;
            }
        }
        while self.db.outstanding_flushes() > 0 || self.db.active_compactions() > 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.sync()
    }

    /// fsyncs everything written so far.
    pub fn sync(&self) -> Result<(), StoreError> {
        // The log first: the journal then never points past what is on disk (and if it did,
        // queries would read `transfers`).
        for c in self.chains() {
            c.log
                .sync()
                .map_err(|e| self.err(format!("record log: {e}")))?;
        }
        self.db
            .persist(PersistMode::SyncAll)
            .map_err(|e| self.err(e))
    }

    /// Test hook for the crash tests: the next write panics after staging `transfers`
    /// transfers, before anything is committed.
    #[doc(hidden)]
    pub fn panic_during_next_write(&self, transfers: usize) {
        self.fail_after.store(transfers, Ordering::SeqCst);
    }

    /// Test hook for the recovery tests: on close, leave the index buffers unwritten (as a
    /// kill would), so that the next open rebuilds them from the records.
    #[doc(hidden)]
    pub fn keep_index_buffers_on_close(&self) {
        self.keep_buffers_on_close.store(true, Ordering::SeqCst);
    }

    fn check_fail(&self, staged: usize) {
        if self
            .fail_after
            .compare_exchange(staged, usize::MAX, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            panic!("injected failure after staging {staged} transfers");
        }
    }

    /// The keyspaces of a chain; `None` if the chain has none and `create` is false.
    fn chain(&self, chain_id: u64, create: bool) -> Result<Option<Arc<Chain>>, StoreError> {
        if let Some(c) = self
            .chains
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&chain_id)
        {
            return Ok(Some(c.clone()));
        }
        let mut chains = self.chains.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = chains.get(&chain_id) {
            return Ok(Some(c.clone()));
        }
        // `meta` is created last: when it exists, so do the others.
        if !create && !self.db.keyspace_exists(&format!("{chain_id}.meta")) {
            return Ok(None);
        }
        let open = |(name, point): (&str, bool)| {
            self.db
                .keyspace(&format!("{chain_id}.{name}"), || {
                    let mut o = KeyspaceCreateOptions::default();
                    if name == SPACES[TRANSFERS].0 {
                        // Read mostly in block order (a replay, a trace's pages): larger
                        // data blocks mean fewer block loads per record scanned. Fixed when
                        // the keyspace is created (docs/STORE.md).
                        o = o.data_block_size_policy(BlockSizePolicy::all(TRANSFERS_BLOCK_BYTES));
                    }
                    if point {
                        o
                    } else {
                        // Only range scans read these: bloom filters would be dead weight.
                        o.filter_policy(FilterPolicy::disabled())
                    }
                })
                .map_err(|e| self.err(e))
        };
        let mut spaces = Vec::with_capacity(SPACES.len());
        for s in SPACES.iter().skip(1) {
            spaces.push(open(*s)?);
        }
        spaces.insert(META, open(SPACES[META])?);
        let spaces: [Keyspace; 6] = spaces.try_into().map_err(|_| self.err("keyspace count"))?;
        let log_path = self.path.join("records").join(format!("{chain_id}.log"));
        let committed = match self
            .db
            .snapshot()
            .get(&spaces[META], LOG_END_KEY)
            .map_err(|e| self.err(e))?
        {
            Some(v) => Reader(&v).u64()?,
            None => 0,
        };
        let log = RecordLog::open(&log_path, committed)
            .map_err(|e| self.err(format!("record log {}: {e}", log_path.display())))?;
        let (indexed_below, pending) = self.rebuild(&spaces, &log)?;
        let chain = Arc::new(Chain {
            spaces,
            log,
            buffers: RwLock::new(Buffers {
                active: pending,
                frozen: None,
            }),
            flusher: Mutex::new(None),
            indexed_below: AtomicU64::new(indexed_below),
        });
        chains.insert(chain_id, chain.clone());
        Ok(Some(chain))
    }

    /// The index mark of a chain and its index buffer, rebuilt from the records at and above
    /// the mark (the chain's own; imported records are indexed as they are written). Their
    /// records are appended to the log again: the log may have lost its tail.
    fn rebuild(
        &self,
        spaces: &[Keyspace; 6],
        log: &RecordLog,
    ) -> Result<(u64, Pending), StoreError> {
        let mut entries = log.entries();
        let snap = self.db.snapshot();
        let below = match snap
            .get(&spaces[META], INDEXED_KEY)
            .map_err(|e| self.err(e))?
        {
            Some(v) => Reader(&v).u64()?,
            None => 0,
        };
        let mut pending = Pending::default();
        for g in snap.range(&spaces[TRANSFERS], below.to_be_bytes().to_vec()..) {
            let (k, v) = self.kv(g)?;
            if v.len() <= REC_ASSET || k.len() < 12 {
                return Err(corrupt("transfer record"));
            }
            if v[0] & IMPORTED != 0 {
                continue;
            }
            let loc = entries.push(&k, &v).unwrap_or(Loc { offset: 0, len: 0 });
            pending.add(
                &k,
                loc,
                [
                    Address::from_slice(&v[REC_FROM..REC_FROM + 20]),
                    Address::from_slice(&v[REC_TO..REC_TO + 20]),
                ],
                tx_digest(&B256::from_slice(&v[REC_TX_HASH..REC_TX_HASH + 32])),
                record_zero_amount(&v)?,
            );
        }
        if !entries.bytes.is_empty() {
            log.append(&entries)
                .map_err(|e| self.err(format!("record log: {e}")))?;
            let mut batch = self.db.batch().durability(Some(self.persist_mode()));
            batch.insert(
                &spaces[META],
                LOG_END_KEY,
                RecordLog::end_after(&entries).to_be_bytes(),
            );
            batch.commit().map_err(|e| self.err(e))?;
            log.committed(&entries);
        }
        Ok((below, pending))
    }

    /// Writes a chain's index buffer out: waits for a running write-out (and returns its
    /// error), writes out a frozen buffer left by a failed one, then freezes the active
    /// buffer and writes it out, on a background thread if `background`. Called by writers
    /// (`_writer`: the writer lock's guard).
    fn flush_index(
        &self,
        chain: &Arc<Chain>,
        background: bool,
        _writer: &mut Instant,
    ) -> Result<(), StoreError> {
        self.join_flusher(chain)?;
        let left = chain.buffers().frozen.clone();
        if let Some(f) = left {
            write_out(&self.db, chain, &f, self.persist_mode()).map_err(|e| self.err(e))?;
        }
        let frozen = {
            let mut b = chain.buffers_mut();
            if b.active.is_empty() {
                return Ok(());
            }
            let f = Arc::new(std::mem::take(&mut b.active));
            b.frozen = Some(f.clone());
            f
        };
        let persist = self.persist_mode();
        if !background {
            return write_out(&self.db, chain, &frozen, persist).map_err(|e| self.err(e));
        }
        let (db, c, path) = (self.db.clone(), chain.clone(), self.path.clone());
        let handle = std::thread::Builder::new()
            .name("holdfast-index".into())
            .spawn(move || {
                write_out(&db, &c, &frozen, persist).map_err(|message| StoreError::Embedded {
                    path: path.display().to_string(),
                    message: format!("writing the index buffer out: {message}"),
                })
            })
            .map_err(|e| self.err(e))?;
        *chain.flusher.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
        Ok(())
    }

    /// Waits for a chain's background write-out, if one runs.
    fn join_flusher(&self, chain: &Chain) -> Result<(), StoreError> {
        let handle = chain
            .flusher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match handle.map(std::thread::JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(self.err("the index write-out panicked")),
        }
    }

    fn append_log(&self, chain: &Chain, entries: &log::Entries) -> Result<(), StoreError> {
        chain
            .log
            .append(entries)
            .map_err(|e| self.err(format!("record log: {e}")))
    }

    fn persist_mode(&self) -> PersistMode {
        if self.options.durability == Durability::EveryCommit {
            PersistMode::SyncAll
        } else {
            PersistMode::Buffer
        }
    }

    fn chains(&self) -> Vec<Arc<Chain>> {
        self.chains
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    fn writer(&self) -> MutexGuard<'_, Instant> {
        // A panic mid-write leaves nothing behind (the batch was never committed), so a
        // poisoned lock is safe to take over.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn commit(&self, chain: &Chain, s: Staged) -> Result<(), StoreError> {
        if s.is_empty() {
            return Ok(());
        }
        let Staged {
            arena, puts, dels, ..
        } = s;
        // Per keyspace, in key order (most keyspaces are staged in order already, which the
        // sort then only checks).
        let key = |i: &usize| &arena[puts[*i].1..puts[*i].2];
        let mut by_space: [Vec<usize>; SPACES.len()] = Default::default();
        for (i, p) in puts.iter().enumerate() {
            by_space[p.0].push(i);
        }
        // Reaches the operating system; fsynced by `sync_if_due` once the caller has released
        // the buffers' lock (readers do not wait for an fsync).
        let mut batch = self.db.batch().durability(Some(PersistMode::Buffer));
        for mut order in by_space {
            order.sort_unstable_by(|a, b| key(a).cmp(key(b)));
            order.dedup_by(|a, b| key(a) == key(b));
            for i in order {
                let (space, k, v, end) = puts[i];
                batch.insert(chain.space(space), &arena[k..v], &arena[v..end]);
            }
        }
        for (space, k, end) in dels {
            batch.remove(chain.space(space), &arena[k..end]);
        }
        batch.commit().map_err(|e| self.err(e))
    }

    /// After a commit: fsyncs if the durability asks for it now (every commit, or the
    /// interval has passed since the last fsync).
    fn sync_if_due(&self, last_sync: &mut Instant) -> Result<(), StoreError> {
        let due = match self.options.durability {
            Durability::EveryCommit => true,
            Durability::Interval(every) => last_sync.elapsed() >= every,
        };
        if due {
            self.sync()?;
            *last_sync = Instant::now();
        }
        Ok(())
    }

    fn block_at(
        &self,
        snap: &Snapshot,
        chain: &Chain,
        number: u64,
    ) -> Result<Option<BlockRef>, StoreError> {
        snap.get(chain.space(META), block_key(number))
            .map_err(|e| self.err(e))?
            .map(|v| codec::read_block(number, &v))
            .transpose()
    }

    fn counts(&self, snap: &Snapshot, chain: &Chain) -> Result<[u64; 3], StoreError> {
        let v = snap
            .get(chain.space(META), COUNTS_KEY)
            .map_err(|e| self.err(e))?;
        read_counts(v.as_deref())
    }

    /// Resolves block hashes of a chain's own transfers, one lookup per block.
    fn hashes<'a>(
        &'a self,
        snap: &'a Snapshot,
        chain: &'a Chain,
    ) -> impl FnMut(u64) -> Result<B256, StoreError> + 'a {
        let mut seen: HashMap<u64, B256> = HashMap::new();
        move |n| {
            if let Some(h) = seen.get(&n) {
                return Ok(*h);
            }
            let h = self
                .block_at(snap, chain, n)?
                .ok_or_else(|| corrupt("a transfer of a block that is not stored"))?
                .hash;
            seen.insert(n, h);
            Ok(h)
        }
    }

    fn kv(&self, g: fjall::Guard) -> Result<(fjall::Slice, fjall::Slice), StoreError> {
        g.into_inner().map_err(|e| self.err(e))
    }
}

impl Drop for EmbeddedStore {
    /// Writes the index buffers out, so that the next open has nothing to rebuild. Nothing is
    /// lost if this fails or never runs (a kill): the buffer is rebuilt from the records.
    fn drop(&mut self) {
        let mut writer = self.writer();
        for c in self.chains() {
            if self.keep_buffers_on_close.load(Ordering::SeqCst) {
                // A background write-out still finishes: a kill could come after it too.
                let _ = self.join_flusher(&c);
                continue;
            }
            if let Err(e) = self.flush_index(&c, false, &mut writer) {
                tracing::warn!(error = %e, "writing the index buffer out on close failed; it will be rebuilt on open");
            }
        }
    }
}
