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
//! | `meta` | `v` number, tx index, log index | the conversion |
//! | `meta` | `w` tx hash, log index | number, tx index |
//! | `transfers` | number, tx index, position | flags, tx hash, timestamp, from, to, asset, amount \[, block hash if imported\] |
//! | `from` / `to` | address, number, tx index, position | flags, block hash, tx hash, timestamp, the other address, asset, amount |
//! | `tx` | 8-byte digest of the tx hash, number, tx index | — |
//! | `asset` | 0 (native) or 1 + token, number | — (the block moved this asset) |
//!
//! The address indexes are covering: "transfers out of A from block B" is one range scan and
//! touches nothing else. The transaction and asset indexes point at blocks (and
//! transactions) whose records are then filtered, which keeps them to about one entry per
//! transaction and one per asset and block. A write is one atomic fjall batch across the
//! chain's keyspaces; writers are serialized by a mutex, readers use snapshots.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use alloy_primitives::{B256, U256};
use fjall::{
    Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable, Snapshot,
    config::FilterPolicy,
};
use holdfast_primitives::{Asset, BlockRef, Conversion, Transfer};

use crate::codec::{self, Reader, corrupt, prefix_end};
use crate::{
    Applied, BlockData, Store, StoreError, StoreStats, TransferQuery, admit, check_limit, validate,
};

mod layout;
use layout::{
    ASSET, COUNTS_KEY, FROM, IMPORTED, META, REC_ASSET, REC_FROM, REC_TO, REC_TX_HASH, SPACES,
    Staged, TO, TRANSFERS, TX, asset_prefix, block_key, counts_value, imported_key, place,
    read_counts, read_covering, read_record, stage_transfer, tx_digest,
};

/// The layout version written in the store; a store of another version is refused.
const FORMAT: u32 = 1;

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
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            durability: Durability::Interval(Duration::from_secs(1)),
            cache_bytes: 256 << 20,
        }
    }
}

/// The keyspaces of one chain, in the order of the `META`.. constants.
#[derive(Clone)]
struct Chain {
    spaces: [Keyspace; 6],
}

impl Chain {
    fn space(&self, i: usize) -> &Keyspace {
        &self.spaces[i]
    }
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
            .open()
            .map_err(|e| err(&e))?;
        let store = EmbeddedStore {
            db,
            path: path.to_owned(),
            options,
            chains: RwLock::new(HashMap::new()),
            writer: Mutex::new(Instant::now()),
            fail_after: AtomicUsize::new(usize::MAX),
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
                if v != FORMAT {
                    return Err(self.err(format!(
                        "store format {v}; this Holdfast reads format {FORMAT}"
                    )));
                }
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

    /// Bytes on disk (journal and tables).
    pub fn disk_space(&self) -> Result<u64, StoreError> {
        self.db.disk_space().map_err(|e| self.err(e))
    }

    /// Writes every memtable out to tables and waits until flushes and compactions are
    /// done, so that [`EmbeddedStore::disk_space`] measures settled tables (benchmarks; after
    /// a large import).
    pub fn settle(&self) -> Result<(), StoreError> {
        let chains: Vec<Arc<Chain>> = self
            .chains
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
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
                    let o = KeyspaceCreateOptions::default();
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
        let chain = Arc::new(Chain { spaces });
        chains.insert(chain_id, chain.clone());
        Ok(Some(chain))
    }

    fn writer(&self) -> MutexGuard<'_, Instant> {
        // A panic mid-write leaves nothing behind (the batch was never committed), so a
        // poisoned lock is safe to take over.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn commit(&self, chain: &Chain, s: Staged, last_sync: &mut Instant) -> Result<(), StoreError> {
        if s.is_empty() {
            return Ok(());
        }
        let Staged { arena, puts, dels } = s;
        let key = |p: &(usize, usize, usize, usize)| (p.0, &arena[p.1..p.2]);
        let mut order: Vec<usize> = (0..puts.len()).collect();
        order.sort_unstable_by(|a, b| key(&puts[*a]).cmp(&key(&puts[*b])));
        order.dedup_by(|a, b| key(&puts[*a]) == key(&puts[*b]));
        let every = self.options.durability == Durability::EveryCommit;
        let mut batch = self.db.batch().durability(Some(if every {
            PersistMode::SyncAll
        } else {
            PersistMode::Buffer
        }));
        for i in order {
            let (space, k, v, end) = puts[i];
            batch.insert(chain.space(space), &arena[k..v], &arena[v..end]);
        }
        for (space, k, end) in dels {
            batch.remove(chain.space(space), &arena[k..end]);
        }
        batch.commit().map_err(|e| self.err(e))?;
        if let Durability::Interval(every) = self.options.durability
            && last_sync.elapsed() >= every
        {
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

impl Store for EmbeddedStore {
    fn apply_blocks(
        &self,
        chain_id: u64,
        blocks: &[BlockData],
    ) -> Result<Vec<Applied>, StoreError> {
        validate(chain_id, blocks)?;
        if blocks.is_empty() {
            return Ok(Vec::new());
        }
        let chain = self
            .chain(chain_id, true)?
            .ok_or_else(|| self.err("chain keyspaces"))?;
        let mut last_sync = self.writer();
        let snap = self.db.snapshot();
        let mut counts = self.counts(&snap, &chain)?;
        let mut staged = Staged::default();
        let mut applied = Vec::with_capacity(blocks.len());
        let mut below: Option<BlockRef> = None;
        let mut place_buf = Vec::with_capacity(32);
        let mut n_staged = 0;
        for b in blocks {
            let n = b.block.number;
            let prev = below.replace(b.block);
            if !admit(chain_id, &b.block, prev, |m| {
                self.block_at(&snap, &chain, m)
            })? {
                applied.push(Applied::AlreadyPresent);
                continue;
            }
            staged.put(META, &[&block_key(n)], &[&codec::block_value(&b.block)]);
            // Transfers imported earlier into this block stay as they are.
            let has_imports = snap
                .contains_key(chain.space(META), imported_key(n))
                .map_err(|e| self.err(e))?;
            let mut added = 0u64;
            for t in &b.transfers {
                if has_imports {
                    place_buf.clear();
                    place(t, &mut place_buf);
                    if snap
                        .contains_key(chain.space(TRANSFERS), &place_buf)
                        .map_err(|e| self.err(e))?
                    {
                        continue;
                    }
                }
                stage_transfer(&mut staged, t, false, &mut place_buf);
                added += 1;
                n_staged += 1;
                self.check_fail(n_staged);
            }
            for c in &b.conversions {
                let at = [
                    &n.to_be_bytes()[..],
                    &c.tx_index.to_be_bytes(),
                    &c.log_index.to_be_bytes(),
                ]
                .concat();
                staged.put_with(META, &[b"v", &at], |out| codec::conversion_value(c, out));
                staged.put(
                    META,
                    &[b"w", c.tx_hash.as_slice(), &c.log_index.to_be_bytes()],
                    &[&at[..12]],
                );
            }
            counts[0] += 1;
            counts[1] += added;
            counts[2] += b.conversions.len() as u64;
            applied.push(Applied::Written);
        }
        if applied.contains(&Applied::Written) {
            staged.put(META, &[COUNTS_KEY], &[&counts_value(counts)]);
            self.commit(&chain, staged, &mut last_sync)?;
        }
        Ok(applied)
    }

    fn unwind_above(&self, chain_id: u64, number: u64) -> Result<Vec<BlockRef>, StoreError> {
        let Some(chain) = self.chain(chain_id, false)? else {
            return Ok(Vec::new());
        };
        let Some(first) = number.checked_add(1) else {
            return Ok(Vec::new());
        };
        let mut last_sync = self.writer();
        let snap = self.db.snapshot();
        let mut removed = Vec::new();
        for g in snap.range(chain.space(META), block_key(first).to_vec()..b"c".to_vec()) {
            let (k, v) = self.kv(g)?;
            removed.push(codec::read_block(Reader(&k[1..]).u64()?, &v)?);
        }
        if removed.is_empty() {
            return Ok(removed);
        }
        let mut counts = self.counts(&snap, &chain)?;
        let mut s = Staged::default();
        for b in &removed {
            let nb = b.number.to_be_bytes();
            let (mut tx_gone, mut tx_kept) = (BTreeSet::new(), HashSet::new());
            let (mut asset_gone, mut asset_kept) = (BTreeSet::new(), HashSet::new());
            let mut gone = 0u64;
            for g in snap.prefix(chain.space(TRANSFERS), nb) {
                let (k, v) = self.kv(g)?;
                if v.len() <= REC_ASSET || k.len() < 12 {
                    return Err(corrupt("transfer record"));
                }
                let tx_key = [
                    &tx_digest(&B256::from_slice(&v[REC_TX_HASH..REC_TX_HASH + 32]))[..],
                    &k[..12],
                ]
                .concat();
                let asset_key = [
                    Reader(&v[REC_ASSET..])
                        .asset()
                        .map(|a| asset_prefix(a.token()))?,
                    nb.to_vec(),
                ]
                .concat();
                if v[0] & IMPORTED != 0 {
                    tx_kept.insert(tx_key);
                    asset_kept.insert(asset_key);
                    continue;
                }
                s.del(TRANSFERS, &[&k]);
                s.del(FROM, &[&v[REC_FROM..REC_FROM + 20], &k]);
                s.del(TO, &[&v[REC_TO..REC_TO + 20], &k]);
                tx_gone.insert(tx_key);
                asset_gone.insert(asset_key);
                gone += 1;
            }
            for k in tx_gone.iter().filter(|k| !tx_kept.contains(*k)) {
                s.del(TX, &[k]);
            }
            for k in asset_gone.iter().filter(|k| !asset_kept.contains(*k)) {
                s.del(ASSET, &[k]);
            }
            let mut convs = 0u64;
            for g in snap.prefix(chain.space(META), [&b"v"[..], &nb].concat()) {
                let (k, v) = self.kv(g)?;
                if k.len() != 17 || v.len() < 32 {
                    return Err(corrupt("conversion record"));
                }
                s.del(META, &[&k]);
                s.del(META, &[b"w", &v[..32], &k[13..17]]);
                convs += 1;
            }
            s.del(META, &[&block_key(b.number)]);
            counts[0] = counts[0].saturating_sub(1);
            counts[1] = counts[1].saturating_sub(gone);
            counts[2] = counts[2].saturating_sub(convs);
        }
        s.put(META, &[COUNTS_KEY], &[&counts_value(counts)]);
        self.commit(&chain, s, &mut last_sync)?;
        Ok(removed)
    }

    fn head(&self, chain_id: u64) -> Result<Option<BlockRef>, StoreError> {
        let Some(chain) = self.chain(chain_id, false)? else {
            return Ok(None);
        };
        let snap = self.db.snapshot();
        match snap.prefix(chain.space(META), b"b").next_back() {
            Some(g) => {
                let (k, v) = self.kv(g)?;
                Ok(Some(codec::read_block(Reader(&k[1..]).u64()?, &v)?))
            }
            None => Ok(None),
        }
    }

    fn block(&self, chain_id: u64, number: u64) -> Result<Option<BlockRef>, StoreError> {
        let Some(chain) = self.chain(chain_id, false)? else {
            return Ok(None);
        };
        self.block_at(&self.db.snapshot(), &chain, number)
    }

    fn transfers(
        &self,
        chain_id: u64,
        query: TransferQuery,
        limit: usize,
    ) -> Result<Vec<Transfer>, StoreError> {
        check_limit(limit)?;
        let Some(chain) = self.chain(chain_id, false)? else {
            return Ok(Vec::new());
        };
        let snap = self.db.snapshot();
        let mut out = Vec::new();
        match query {
            TransferQuery::From {
                address,
                from_block,
            }
            | TransferQuery::To {
                address,
                from_block,
            } => {
                let outgoing = matches!(query, TransferQuery::From { .. });
                let space = chain.space(if outgoing { FROM } else { TO });
                let start = [address.as_slice(), &from_block.to_be_bytes()].concat();
                let end = prefix_end(address.as_slice());
                for g in snap.range(space, start..end).take(limit) {
                    let (k, v) = self.kv(g)?;
                    out.push(read_covering(chain_id, address, outgoing, &k[20..], &v)?);
                }
            }
            TransferQuery::Tx { tx_hash } => {
                let mut hashes = self.hashes(&snap, &chain);
                for g in snap.prefix(chain.space(TX), tx_digest(&tx_hash)) {
                    let (k, _) = self.kv(g)?;
                    for g in snap.prefix(chain.space(TRANSFERS), &k[8..]) {
                        let (k, v) = self.kv(g)?;
                        if v.get(REC_TX_HASH..REC_TX_HASH + 32) == Some(tx_hash.as_slice()) {
                            out.push(read_record(chain_id, &k, &v, &mut hashes)?);
                        }
                    }
                }
                out.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
                out.truncate(limit);
            }
            TransferQuery::Asset { token, from_block } => {
                let mut hashes = self.hashes(&snap, &chain);
                let prefix = asset_prefix(token);
                let start = [&prefix[..], &from_block.to_be_bytes()].concat();
                'blocks: for g in snap.range(chain.space(ASSET), start..prefix_end(&prefix)) {
                    if out.len() >= limit {
                        break;
                    }
                    let (k, _) = self.kv(g)?;
                    let number = &k[prefix.len()..];
                    for g in snap.prefix(chain.space(TRANSFERS), number) {
                        let (k, v) = self.kv(g)?;
                        // Compare the asset's kind byte and token in place before decoding.
                        let kind = v.get(REC_ASSET).copied();
                        let hit = match token {
                            None => kind == Some(0),
                            Some(t) => {
                                kind.is_some_and(|k| k != 0)
                                    && v.get(REC_ASSET + 1..REC_ASSET + 21) == Some(t.as_slice())
                            }
                        };
                        if hit {
                            out.push(read_record(chain_id, &k, &v, &mut hashes)?);
                            if out.len() >= limit {
                                break 'blocks;
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    fn conversions_of_tx(
        &self,
        chain_id: u64,
        tx_hash: B256,
    ) -> Result<Vec<Conversion>, StoreError> {
        let Some(chain) = self.chain(chain_id, false)? else {
            return Ok(Vec::new());
        };
        let snap = self.db.snapshot();
        let mut hashes = self.hashes(&snap, &chain);
        let mut out = Vec::new();
        for g in snap.prefix(chain.space(META), [&b"w"[..], tx_hash.as_slice()].concat()) {
            let (k, at) = self.kv(g)?;
            if k.len() != 37 || at.len() != 12 {
                return Err(corrupt("conversion index"));
            }
            let place = [&at[..], &k[33..37]].concat();
            let v = snap
                .get(chain.space(META), [&b"v"[..], &place].concat())
                .map_err(|e| self.err(e))?
                .ok_or_else(|| corrupt("index entry without conversion"))?;
            let number = Reader(&place).u64()?;
            out.push(codec::read_conversion(
                chain_id,
                &place,
                &v,
                hashes(number)?,
            )?);
        }
        out.sort_by_key(|c| (c.block_number, c.tx_index, c.log_index));
        Ok(out)
    }

    fn import_transfers(&self, chain_id: u64, transfers: &[Transfer]) -> Result<usize, StoreError> {
        if let Some(t) = transfers.iter().find(|t| t.chain_id != chain_id) {
            return Err(StoreError::Invalid {
                chain_id,
                number: t.block_number,
                what: format!("transfer {} is for chain {}", t.tx_hash, t.chain_id),
            });
        }
        if transfers.is_empty() {
            return Ok(0);
        }
        let chain = self
            .chain(chain_id, true)?
            .ok_or_else(|| self.err("chain keyspaces"))?;
        let mut last_sync = self.writer();
        let snap = self.db.snapshot();
        let mut seen = HashSet::new();
        let mut blocks = BTreeSet::new();
        let mut s = Staged::default();
        let mut place_buf = Vec::with_capacity(32);
        let mut new = 0u64;
        for t in transfers {
            place_buf.clear();
            place(t, &mut place_buf);
            if !seen.insert(place_buf.clone())
                || snap
                    .contains_key(chain.space(TRANSFERS), &place_buf)
                    .map_err(|e| self.err(e))?
            {
                continue;
            }
            stage_transfer(&mut s, t, true, &mut place_buf);
            blocks.insert(t.block_number);
            new += 1;
            self.check_fail(new as usize);
        }
        if new == 0 {
            return Ok(0);
        }
        for n in blocks {
            s.put(META, &[&imported_key(n)], &[]);
        }
        let mut counts = self.counts(&snap, &chain)?;
        counts[1] += new;
        s.put(META, &[COUNTS_KEY], &[&counts_value(counts)]);
        self.commit(&chain, s, &mut last_sync)?;
        Ok(new as usize)
    }

    fn stats(&self, chain_id: u64) -> Result<StoreStats, StoreError> {
        let Some(chain) = self.chain(chain_id, false)? else {
            return Ok(StoreStats::default());
        };
        let counts = self.counts(&self.db.snapshot(), &chain)?;
        Ok(StoreStats {
            blocks: counts[0],
            transfers: counts[1],
            conversions: counts[2],
            head: self.head(chain_id)?.map(|h| h.number),
        })
    }

    fn sum_by_asset(&self, chain_id: u64) -> Result<BTreeMap<Asset, U256>, StoreError> {
        let mut sums: BTreeMap<Asset, U256> = BTreeMap::new();
        let Some(chain) = self.chain(chain_id, false)? else {
            return Ok(sums);
        };
        let snap = self.db.snapshot();
        for g in snap.iter(chain.space(TRANSFERS)) {
            let (_, v) = self.kv(g)?;
            let mut r = Reader(
                v.get(REC_ASSET..)
                    .ok_or_else(|| corrupt("transfer record"))?,
            );
            let asset = r.asset()?;
            let amount = r.amount()?;
            let sum = sums.entry(asset).or_default();
            *sum = sum.saturating_add(amount);
        }
        Ok(sums)
    }
}
