//! The UTXO index in a fjall directory of its own (`<data-dir>/store/utxo`). Writes are
//! serialized by the writer lock and committed as one atomic batch across the keyspaces,
//! fsynced before they are reported (group commit, [`crate::group_commit`]). Integers are
//! big-endian, so byte order is block order:
//!
//! | keyspace | key | value |
//! |---|---|---|
//! | `utxo.blocks` | chain, number | hash, parent hash, timestamp |
//! | `utxo.coins` | chain, txid, vout | value, height, coinbase, script, address |
//! | `utxo.coins` | chain, `ff`×32, `ffffffff` | the block the coins were last written in bulk at (`bulk`) |
//! | `utxo.undo` | chain, number | the undo record: outputs created (outpoint, value), outputs spent or replaced (whole) |
//! | `utxo.meta` | chain | counts: outputs, total |
//! | `utxo.meta` | chain, `c` | (empty): the chain's clusters are being rebuilt (`super::rebuild`) |
//! | `utxo.meta` | chain, `k` | a bulk write under way: its last block and the write that moves the head (`bulk`) |
//! | `utxo.txs` | chain, height, position | the transaction: txid, coinbase, inputs (outpoint, value, address), outputs (value, script, address) |
//! | `utxo.txids` | chain, txid, height | position |
//! | `utxo.addr` | chain, address length, address, height, position, direction, index | txid, value, outpoint received or spent |
//!
//! | `utxo.uf` | chain, address length, address | cluster union-find: parent address, size (for a root) |
//! | `utxo.ufundo` | chain, number | the entries of `utxo.uf` the block changed, as they were |
//! | `utxo.ufkids` | chain, parent length, parent, address | (empty): every non-root entry of `utxo.uf` under its parent, to list a cluster's members |
//! | `utxo.spent` | chain, txid, vout | the input spending it: spending txid, input, height, position |
//!
//! An unwind reads the block's transactions back and deletes exactly the keys they made.
//!
//! Each read of the [`UtxoStore`] trait reads one snapshot: a fresh one, or while a bulk write
//! is under way the one it took before writing (`bulk`), so that no read shows the entries or
//! coins of blocks above the head. A write's own checks read the newest state, under the
//! writer lock.

use std::path::Path;
use std::sync::{PoisonError, RwLock};

use fjall::{Readable, Snapshot};
use holdfast_primitives::BlockRef;

use super::cluster::{self, Cluster, Node};
use super::rebuild::{Feed, RebuildOptions, RebuildProgress, RebuildReport};
use super::spent::{self, PlacedTx, Spender};
use super::txs::{self, AddressTransfer, Direction, TxRecord};
use super::{
    KeepUndo, OutPointKey, Undo, UtxoChanges, UtxoCounts, UtxoRecord, UtxoStore, bytes, counted,
    not_held, validate,
};
use crate::codec::{self, Reader, corrupt};
use crate::group_commit::{Batch, FjallDir, GroupCommit, Stage};
use crate::{Applied, StoreError, admit};
use alloy_primitives::B256;

mod bulk;
mod memo;

const SPACES: [&str; 11] = [
    "utxo.blocks",
    "utxo.coins",
    "utxo.undo",
    "utxo.meta",
    "utxo.txs",
    "utxo.txids",
    "utxo.addr",
    "utxo.uf",
    "utxo.ufundo",
    "utxo.ufkids",
    "utxo.spent",
];
const BLOCKS: usize = 0;
const COINS: usize = 1;
const UNDO: usize = 2;
const META: usize = 3;
const TXS: usize = 4;
const TXIDS: usize = 5;
const ADDR: usize = 6;
const UF: usize = 7;
const UF_UNDO: usize = 8;
const UF_KIDS: usize = 9;
const SPENT: usize = 10;

/// The embedded UTXO index.
pub struct EmbeddedUtxoStore {
    dir: FjallDir,
    group: GroupCommit,
    keep_undo: KeepUndo,
    /// While a bulk write is under way (`bulk`: from its record until the head moves, or
    /// until [`Self::finish_bulk`] settles an interrupted one), the snapshot taken before it
    /// wrote anything: readers read it, so none sees the entries or coins of blocks above
    /// the head. `None` otherwise: each read takes a fresh snapshot.
    pinned: RwLock<Option<(Snapshot, u64)>>,
    /// What `utxos` read, for the next bulk write's checks (`memo`).
    memo: memo::Memo,
}

/// Where a read looks: `None` the newest state (a write's own checks, under the writer
/// lock), or a reader's snapshot ([`EmbeddedUtxoStore::view`]).
type At<'a> = Option<&'a Snapshot>;

impl std::fmt::Debug for EmbeddedUtxoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedUtxoStore")
            .field("path", &self.dir.path)
            .finish_non_exhaustive()
    }
}

fn block_key(chain_id: u64, number: u64) -> Vec<u8> {
    [chain_id.to_be_bytes(), number.to_be_bytes()].concat()
}

// Keys are built in vectors of their final size: a bulk write builds some millions.

fn coin_key(chain_id: u64, op: &OutPointKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + 32 + 4);
    k.extend_from_slice(&chain_id.to_be_bytes());
    bytes::outpoint(op, &mut k);
    k
}

fn tx_key(chain_id: u64, height: u64, position: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + 8 + 4);
    k.extend_from_slice(&chain_id.to_be_bytes());
    k.extend_from_slice(&height.to_be_bytes());
    k.extend_from_slice(&position.to_be_bytes());
    k
}

fn txid_key(chain_id: u64, txid: &B256, height: u64) -> Vec<u8> {
    [
        &chain_id.to_be_bytes()[..],
        txid.as_slice(),
        &height.to_be_bytes(),
    ]
    .concat()
}

fn addr_prefix(chain_id: u64, address: &str) -> Vec<u8> {
    addr_prefix_with(chain_id, address, 0)
}

/// [`addr_prefix`] in a vector with room for `more` bytes after it.
fn addr_prefix_with(chain_id: u64, address: &str, more: usize) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + 1 + address.len() + more);
    k.extend_from_slice(&chain_id.to_be_bytes());
    k.push(address.len() as u8);
    k.extend_from_slice(address.as_bytes());
    k
}

fn addr_key(chain_id: u64, address: &str, t: &AddressTransfer) -> Vec<u8> {
    let mut k = addr_prefix_with(chain_id, address, 8 + 4 + 1 + 4);
    k.extend_from_slice(&t.height.to_be_bytes());
    k.extend_from_slice(&t.tx_index.to_be_bytes());
    k.push(txs::direction_code(t.direction));
    k.extend_from_slice(&t.index.to_be_bytes());
    k
}

/// The meta key marking a chain's clusters as being rebuilt.
fn rebuilding_key(chain_id: u64) -> Vec<u8> {
    let mut k = chain_id.to_be_bytes().to_vec();
    k.push(b'c');
    k
}

/// Entries of a rebuild's write per batch (each batch is one atomic write).
const REBUILD_BATCH: usize = 100_000;

fn kid_key(chain_id: u64, parent: &str, address: &str) -> Vec<u8> {
    let mut k = addr_prefix(chain_id, parent);
    k.extend_from_slice(address.as_bytes());
    k
}

/// Stages a block's union-find changes (each entry's new value, from its old one).
fn stage_nodes(batch: &mut Batch, chain_id: u64, uf: &cluster::UfChanges) {
    let before: std::collections::HashMap<&str, Option<&Node>> = uf
        .old
        .iter()
        .map(|(a, n)| (a.as_str(), n.as_ref()))
        .collect();
    for (a, n) in &uf.new {
        let old = before.get(a.as_str()).copied().flatten();
        stage_node(batch, chain_id, a, old, Some(n));
    }
}

/// Stages changing `address`'s union-find entry from `from` to `to` (`None`: absent), with its
/// entry in the children index (`utxo.ufkids`: a non-root under its parent).
fn stage_node(
    batch: &mut Batch,
    chain_id: u64,
    address: &str,
    from: Option<&Node>,
    to: Option<&Node>,
) {
    let kid = |n: Option<&Node>| n.filter(|n| n.parent != address).map(|n| n.parent.clone());
    let (was, now) = (kid(from), kid(to));
    if was != now {
        if let Some(p) = was {
            batch.del(UF_KIDS, kid_key(chain_id, &p, address));
        }
        if let Some(p) = now {
            batch.put(UF_KIDS, kid_key(chain_id, &p, address), Vec::new());
        }
    }
    match to {
        Some(n) => batch.put(UF, addr_prefix(chain_id, address), cluster::encode_node(n)),
        None => batch.del(UF, addr_prefix(chain_id, address)),
    }
}

/// Stages writing (or, with `remove`, deleting) a block's transactions, address entries and
/// spent-by entries.
fn stage_txs(batch: &mut impl Stage, chain_id: u64, height: u64, list: &[TxRecord], remove: bool) {
    for (op, s) in spent::entries(height, list) {
        if remove {
            batch.del(SPENT, coin_key(chain_id, &op));
        } else {
            batch.put(SPENT, coin_key(chain_id, &op), spent::encode(&s));
        }
    }
    for (i, tx) in list.iter().enumerate() {
        let pos = i as u32;
        let (k, t) = (
            tx_key(chain_id, height, pos),
            txid_key(chain_id, &tx.txid, height),
        );
        if remove {
            batch.del(TXS, k);
            batch.del(TXIDS, t);
        } else {
            batch.put(TXS, k, txs::encode(tx));
            batch.put(TXIDS, t, pos.to_be_bytes().to_vec());
        }
        for (address, e) in txs::entries(height, pos, tx) {
            let key = addr_key(chain_id, address, &e);
            if remove {
                batch.del(ADDR, key);
            } else {
                batch.put(ADDR, key, txs::entry_value(&e));
            }
        }
    }
}

/// A coin's stored record.
fn decode_coin(v: &[u8]) -> Result<UtxoRecord, StoreError> {
    let mut r = Reader(v);
    let rec = bytes::read_record(&mut r)?;
    if r.0.is_empty() {
        Ok(rec)
    } else {
        Err(corrupt("UTXO record: trailing bytes"))
    }
}

fn record_bytes(r: &UtxoRecord) -> Vec<u8> {
    let mut v = Vec::with_capacity(32 + r.script.len());
    bytes::record(r, &mut v);
    v
}

impl EmbeddedUtxoStore {
    /// Opens (creating it if needed) the index at `path`.
    pub fn open(path: &Path) -> Result<EmbeddedUtxoStore, StoreError> {
        EmbeddedUtxoStore::open_with(path, None)
    }

    /// Opens the index keeping the undo records of the newest `keep_undo` blocks only.
    pub fn open_with(path: &Path, keep_undo: KeepUndo) -> Result<EmbeddedUtxoStore, StoreError> {
        let store = EmbeddedUtxoStore {
            dir: FjallDir::open(path, &SPACES)?,
            group: GroupCommit::default(),
            keep_undo,
            pinned: RwLock::new(None),
            memo: memo::Memo::default(),
        };
        store.index_kids()?;
        // Bulk writes a crash interrupted between their record and the head's move.
        let pending: Vec<u64> = {
            let snap = store.dir.db.snapshot();
            snap.iter(&store.dir.spaces[META])
                .map(|g| g.key().map_err(|e| store.dir.err(e)))
                .filter_map(|k| match k {
                    Ok(k) if k.len() == 9 && k[8] == b'k' => Some(Reader(&k).u64()),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<_, _>>()?
        };
        for chain_id in pending {
            store.finish_bulk(chain_id)?;
        }
        Ok(store)
    }

    /// Builds the children index from the union-find when an index written before it was
    /// kept has union-find entries and no children entries (once, on open).
    fn index_kids(&self) -> Result<(), StoreError> {
        let guard = self.group.lock();
        let snap = self.dir.db.snapshot();
        if snap.iter(&self.dir.spaces[UF_KIDS]).next().is_some() {
            return Ok(());
        }
        let mut batch = Batch::default();
        for g in snap.iter(&self.dir.spaces[UF]) {
            let (k, v) = g.into_inner().map_err(|e| self.dir.err(e))?;
            let n = cluster::decode_node(&v)?;
            let address = k
                .get(9..)
                .and_then(|a| std::str::from_utf8(a).ok())
                .ok_or_else(|| corrupt("cluster entry key"))?;
            if n.parent != address {
                let chain_id = Reader(&k).u64()?;
                batch.put(UF_KIDS, kid_key(chain_id, &n.parent, address), Vec::new());
            }
        }
        if batch.ops.is_empty() {
            return Ok(());
        }
        self.commit(guard, batch)
    }

    /// What readers read: the snapshot pinned by a bulk write under way, else a fresh one.
    /// A fresh one is taken under the pin's lock, so it is older than anything a bulk write
    /// pinned after it writes.
    fn view(&self) -> Snapshot {
        self.view_versioned().0
    }

    /// [`Self::view`], with the memo's version it was taken at (`memo`): a pinned snapshot's
    /// is the version when it was pinned; for a fresh one, the version is taken first.
    fn view_versioned(&self) -> (Snapshot, u64) {
        let pinned = self.pinned.read().unwrap_or_else(PoisonError::into_inner);
        match &*pinned {
            Some((s, version)) => (s.clone(), *version),
            None => {
                let version = self.memo.version();
                (self.dir.db.snapshot(), version)
            }
        }
    }

    /// Pins what readers read to the index as it is now (a bulk write, before it writes).
    fn pin(&self) {
        let version = self.memo.version();
        *self.pinned.write().unwrap_or_else(PoisonError::into_inner) =
            Some((self.dir.db.snapshot(), version));
    }

    /// Readers read the newest state again (the head moved, or nothing is left above it).
    fn unpin(&self) {
        *self.pinned.write().unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn get(&self, at: At<'_>, space: usize, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match at {
            None => self.dir.read(space, key),
            Some(snap) => snap
                .get(&self.dir.spaces[space], key)
                .map(|v| v.map(|v| v.to_vec()))
                .map_err(|e| self.dir.err(e)),
        }
    }

    /// The stored bytes of the coin at `op`, if unspent.
    fn coin_bytes(
        &self,
        at: At<'_>,
        chain_id: u64,
        op: &OutPointKey,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if op.vout == u32::MAX {
            // No output has this index; its key is the bulk writes' mark (`bulk`).
            return Ok(None);
        }
        self.get(at, COINS, &coin_key(chain_id, op))
    }

    fn read_coin(
        &self,
        at: At<'_>,
        chain_id: u64,
        op: &OutPointKey,
    ) -> Result<Option<UtxoRecord>, StoreError> {
        self.coin_bytes(at, chain_id, op)?
            .map(|v| decode_coin(&v))
            .transpose()
    }

    fn read_counts(&self, at: At<'_>, chain_id: u64) -> Result<UtxoCounts, StoreError> {
        match self.get(at, META, &chain_id.to_be_bytes())? {
            None => Ok(UtxoCounts::default()),
            Some(v) => {
                let mut r = Reader(&v);
                Ok(UtxoCounts {
                    outputs: r.u64()?,
                    total: r.u64()?,
                })
            }
        }
    }

    fn counts_value(c: UtxoCounts) -> Vec<u8> {
        [c.outputs.to_be_bytes(), c.total.to_be_bytes()].concat()
    }

    /// Stages applying `changes` into `batch`.
    fn stage(batch: &mut Batch, chain_id: u64, changes: &UtxoChanges) {
        for (op, _) in changes.spent.iter().chain(&changes.replaced) {
            batch.del(COINS, coin_key(chain_id, op));
        }
        for (op, r) in &changes.created {
            batch.put(COINS, coin_key(chain_id, op), record_bytes(r));
        }
    }

    /// Stages reverting a block from its undo record into `batch`.
    fn stage_undo(batch: &mut Batch, chain_id: u64, undo: &Undo) {
        for (op, _) in &undo.created {
            batch.del(COINS, coin_key(chain_id, op));
        }
        for (op, r) in &undo.restored {
            batch.put(COINS, coin_key(chain_id, op), record_bytes(r));
        }
    }

    /// Refuses while the chain's clusters are marked as being rebuilt.
    fn check_clusters(&self, at: At<'_>, chain_id: u64) -> Result<(), StoreError> {
        match self.get(at, META, &rebuilding_key(chain_id))? {
            Some(_) => Err(StoreError::ClustersRebuilding { chain_id }),
            None => Ok(()),
        }
    }

    fn read_node(
        &self,
        at: At<'_>,
        chain_id: u64,
        address: &str,
    ) -> Result<Option<Node>, StoreError> {
        self.get(at, UF, &addr_prefix(chain_id, address))?
            .map(|v| cluster::decode_node(&v))
            .transpose()
    }

    /// [`UtxoStore::apply_blocks`] stopped with an error before its step `step`, as a crash
    /// would stop it (nothing settled until the index is opened again or the chain's next
    /// write; readers meanwhile read the index as it was before the call): 0 before its
    /// record, 1 to 4 before each of the history keyspaces it ingests, 5 before the coins, 6
    /// before the write that moves the head (`bulk`). Blocks from `undo_from` on keep their
    /// undo records ([`UtxoStore::apply_blocks_keeping_undo`]; `u64::MAX`: none).
    #[cfg(feature = "test-utils")]
    pub fn apply_blocks_interrupted(
        &self,
        chain_id: u64,
        blocks: &[(BlockRef, UtxoChanges)],
        undo_from: u64,
        step: usize,
    ) -> Result<Vec<Applied>, StoreError> {
        self.write_bulk(chain_id, blocks, undo_from, bulk::Test::StopBefore(step))
    }

    /// [`UtxoStore::apply_blocks`], making `read` before step `step` (5: the coins; 6: the
    /// write that moves the head), as a reader on another thread may make it then.
    #[cfg(feature = "test-utils")]
    pub fn apply_blocks_reading_before(
        &self,
        chain_id: u64,
        blocks: &[(BlockRef, UtxoChanges)],
        step: usize,
        read: &dyn Fn(&EmbeddedUtxoStore),
    ) -> Result<Vec<Applied>, StoreError> {
        self.write_bulk(
            chain_id,
            blocks,
            u64::MAX,
            bulk::Test::ReadBefore(step, read),
        )
    }

    /// Every key and value of every keyspace, by keyspace name (tests comparing two
    /// indexes byte for byte).
    #[cfg(feature = "test-utils")]
    #[allow(clippy::type_complexity)]
    pub fn contents(&self) -> Result<Vec<(&'static str, Vec<(Vec<u8>, Vec<u8>)>)>, StoreError> {
        let snap = self.dir.db.snapshot();
        SPACES
            .iter()
            .zip(&self.dir.spaces)
            .map(|(name, space)| {
                let entries = snap
                    .iter(space)
                    .map(|g| {
                        let (k, v) = g.into_inner().map_err(|e| self.dir.err(e))?;
                        Ok((k.to_vec(), v.to_vec()))
                    })
                    .collect::<Result<_, StoreError>>()?;
                Ok((*name, entries))
            })
            .collect()
    }

    fn commit(
        &self,
        guard: crate::group_commit::WriterGuard<'_>,
        batch: Batch,
    ) -> Result<(), StoreError> {
        let written = self.dir.write(batch);
        // Whatever coins it changed (even a failed write's, conservatively).
        self.memo.changed(memo::Changed::All);
        written?;
        let ticket = self.group.written(guard);
        self.group.sync_up_to(ticket, || self.dir.persist())
    }
}

impl UtxoStore for EmbeddedUtxoStore {
    fn apply_blocks(
        &self,
        chain_id: u64,
        blocks: &[(BlockRef, UtxoChanges)],
    ) -> Result<Vec<Applied>, StoreError> {
        self.write_bulk(chain_id, blocks, u64::MAX, bulk::Test::No)
    }

    fn apply_blocks_keeping_undo(
        &self,
        chain_id: u64,
        blocks: &[(BlockRef, UtxoChanges)],
        undo_from: u64,
    ) -> Result<Vec<Applied>, StoreError> {
        self.write_bulk(chain_id, blocks, undo_from, bulk::Test::No)
    }

    fn apply_block(
        &self,
        chain_id: u64,
        block: &BlockRef,
        changes: &UtxoChanges,
    ) -> Result<Applied, StoreError> {
        validate(chain_id, block, changes)?;
        let number = block.number;
        let guard = self.group.lock();
        self.finish_bulk(chain_id)?;
        if !admit(chain_id, block, None, |n| self.block_at(None, chain_id, n))? {
            return Ok(Applied::AlreadyPresent);
        }
        self.check_clusters(None, chain_id)?;
        super::follows_head(chain_id, self.head_at(None, chain_id)?, number)?;
        for (what, list) in [("spent", &changes.spent), ("replaced", &changes.replaced)] {
            for (op, r) in list {
                match self.read_coin(None, chain_id, op)? {
                    Some(held) if &held == r => {}
                    held => return Err(not_held(chain_id, number, what, op, held.is_some())),
                }
            }
        }
        for (op, _) in &changes.created {
            let replaced = changes.replaced.iter().any(|(r, _)| r == op);
            if !replaced && self.read_coin(None, chain_id, op)?.is_some() {
                return Err(StoreError::Invalid {
                    chain_id,
                    number,
                    what: format!(
                        "created output {op} is already unspent in the index and not listed as replaced"
                    ),
                });
            }
        }
        let counts = counted(self.read_counts(None, chain_id)?, changes)?;
        let mut batch = Batch::default();
        Self::stage(&mut batch, chain_id, changes);
        batch.put(
            UNDO,
            block_key(chain_id, number),
            bytes::undo(&Undo::of(changes)),
        );
        if let Some(old) = super::pruned_by(number, self.keep_undo) {
            batch.del(UNDO, block_key(chain_id, old));
        }
        stage_txs(&mut batch, chain_id, number, &changes.transactions, false);
        let uf = cluster::apply(&cluster::merges(&changes.transactions), |a| {
            self.read_node(None, chain_id, a)
        })?;
        stage_nodes(&mut batch, chain_id, &uf);
        batch.put(
            UF_UNDO,
            block_key(chain_id, number),
            cluster::encode_undo(&uf.old),
        );
        if let Some(old) = super::pruned_by(number, self.keep_undo) {
            batch.del(UF_UNDO, block_key(chain_id, old));
        }
        batch.put(
            BLOCKS,
            block_key(chain_id, number),
            codec::block_value(block),
        );
        batch.put(META, chain_id.to_be_bytes(), Self::counts_value(counts));
        self.commit(guard, batch)?;
        Ok(Applied::Written)
    }

    fn unwind_above(&self, chain_id: u64, number: u64) -> Result<Vec<BlockRef>, StoreError> {
        let Some(first) = number.checked_add(1) else {
            return Ok(Vec::new());
        };
        let guard = self.group.lock();
        self.finish_bulk(chain_id)?;
        self.check_clusters(None, chain_id)?;
        let snap = self.dir.db.snapshot();
        let mut removed = Vec::new();
        for g in snap.range(
            &self.dir.spaces[BLOCKS],
            block_key(chain_id, first)..=block_key(chain_id, u64::MAX),
        ) {
            let (k, v) = g.into_inner().map_err(|e| self.dir.err(e))?;
            let n = Reader(&k[8..]).u64()?;
            removed.push(codec::read_block(n, &v)?);
        }
        if removed.is_empty() {
            return Ok(removed);
        }
        let mut counts = self.read_counts(None, chain_id)?;
        let mut batch = Batch::default();
        // Each cluster entry's value before the oldest unwound block: later blocks' undo
        // records are read first, and an older one overwrites them.
        let mut clusters: std::collections::HashMap<String, Option<Node>> =
            std::collections::HashMap::new();
        for b in removed.iter().rev() {
            let key = block_key(chain_id, b.number);
            let undo = self
                .dir
                .read(UNDO, &key)?
                .ok_or_else(|| super::undo_pruned(chain_id, b.number))?;
            let undo = bytes::read_undo(&undo)?;
            Self::stage_undo(&mut batch, chain_id, &undo);
            counts = undo.revert(counts)?;
            let stored = self.block_transactions_at(None, chain_id, b.number)?;
            stage_txs(&mut batch, chain_id, b.number, &stored, true);
            // Blocks written before clusters were kept have no cluster undo record.
            if let Some(v) = self.dir.read(UF_UNDO, &key)? {
                for (a, old) in cluster::decode_undo(&v)? {
                    clusters.insert(a, old);
                }
                batch.del(UF_UNDO, key.clone());
            }
            batch.del(UNDO, key.clone());
            batch.del(BLOCKS, key);
        }
        for (a, old) in clusters {
            let now = self.read_node(None, chain_id, &a)?;
            stage_node(&mut batch, chain_id, &a, now.as_ref(), old.as_ref());
        }
        batch.put(META, chain_id.to_be_bytes(), Self::counts_value(counts));
        // The coins are no longer at the block the last bulk write marked (blocks it kept
        // undo records for can be unwound): a later bulk write interrupted before its coins,
        // up to that same block, must not find the mark saying they were written.
        batch.del(COINS, bulk::coins_mark_key(chain_id));
        self.commit(guard, batch)?;
        Ok(removed)
    }

    fn head(&self, chain_id: u64) -> Result<Option<BlockRef>, StoreError> {
        self.head_at(Some(&self.view()), chain_id)
    }

    fn block(&self, chain_id: u64, number: u64) -> Result<Option<BlockRef>, StoreError> {
        self.block_at(Some(&self.view()), chain_id, number)
    }

    fn utxo(
        &self,
        chain_id: u64,
        outpoint: &OutPointKey,
    ) -> Result<Option<UtxoRecord>, StoreError> {
        self.read_coin(Some(&self.view()), chain_id, outpoint)
    }

    fn counts(&self, chain_id: u64) -> Result<UtxoCounts, StoreError> {
        self.read_counts(Some(&self.view()), chain_id)
    }

    fn utxos(
        &self,
        chain_id: u64,
        outpoints: &[OutPointKey],
    ) -> Result<Vec<Option<UtxoRecord>>, StoreError> {
        super::check_batch(outpoints.len())?;
        let (snap, version) = self.view_versioned();
        let mut records = Vec::with_capacity(outpoints.len());
        let mut found = Vec::with_capacity(outpoints.len());
        for op in outpoints {
            let bytes = self.coin_bytes(Some(&snap), chain_id, op)?;
            records.push(bytes.as_deref().map(decode_coin).transpose()?);
            found.push((*op, bytes));
        }
        // For the next bulk write's checks.
        self.memo.record(version, chain_id, found.into_iter());
        Ok(records)
    }

    fn cluster(&self, chain_id: u64, address: &str) -> Result<Cluster, StoreError> {
        let snap = self.view();
        self.check_clusters(Some(&snap), chain_id)?;
        cluster::find(address, |a| self.read_node(Some(&snap), chain_id, a))
    }

    fn cluster_members(
        &self,
        chain_id: u64,
        root: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let snap = self.view();
        self.check_clusters(Some(&snap), chain_id)?;
        cluster::members(root, limit, |parents, room| {
            let mut out = Vec::new();
            for parent in parents {
                let prefix = addr_prefix(chain_id, parent);
                for g in snap.prefix(&self.dir.spaces[UF_KIDS], &prefix) {
                    let (k, _) = g.into_inner().map_err(|e| self.dir.err(e))?;
                    let a = std::str::from_utf8(&k[prefix.len()..])
                        .map_err(|_| corrupt("cluster child address"))?;
                    out.push(a.to_owned());
                    if out.len() >= room {
                        return Ok(out);
                    }
                }
            }
            Ok(out)
        })
    }

    fn import_block(
        &self,
        chain_id: u64,
        block: &BlockRef,
        transactions: &[TxRecord],
    ) -> Result<Applied, StoreError> {
        let guard = self.group.lock();
        let stored = self.block_at(None, chain_id, block.number)?;
        if !super::admit_import(chain_id, block, transactions, stored)? {
            return Ok(Applied::AlreadyPresent);
        }
        self.check_clusters(None, chain_id)?;
        let mut batch = Batch::default();
        stage_txs(&mut batch, chain_id, block.number, transactions, false);
        // Clusters over imported history too (an import is never unwound: no undo record).
        let uf = cluster::apply(&cluster::merges(transactions), |a| {
            self.read_node(None, chain_id, a)
        })?;
        stage_nodes(&mut batch, chain_id, &uf);
        batch.put(
            BLOCKS,
            block_key(chain_id, block.number),
            codec::block_value(block),
        );
        self.commit(guard, batch)?;
        Ok(Applied::Written)
    }

    fn rebuild_clusters(
        &self,
        chain_id: u64,
        options: RebuildOptions,
        progress: &dyn RebuildProgress,
    ) -> Result<RebuildReport, StoreError> {
        // The writer lock for the whole rebuild: no block is written meanwhile.
        let _guard = self.group.lock();
        // An interrupted bulk write settled first: no transaction is stored above the head.
        self.finish_bulk(chain_id)?;
        let snap = self.dir.db.snapshot();
        let chain = chain_id.to_be_bytes();
        let head = self.head_at(None, chain_id)?.map_or(0, |b| b.number);
        let mut kept = std::collections::HashSet::new();
        for g in snap.prefix(&self.dir.spaces[UNDO], chain) {
            let k = g.key().map_err(|e| self.dir.err(e))?;
            kept.insert(Reader(&k[8..]).u64()?);
        }
        let mut feed = Feed::new(chain_id, head, kept, options, progress);
        for g in snap.prefix(&self.dir.spaces[TXS], chain) {
            let (k, v) = g.into_inner().map_err(|e| self.dir.err(e))?;
            let height = Reader(&k[8..]).u64()?;
            feed.tx(height, txs::decode(&v)?)?;
        }
        feed.finish()?;
        let started = std::time::Instant::now();
        // What goes: the chain's union-find, children index and undo records, read from the
        // snapshot (nothing else writes while the lock is held), counted first.
        // What goes: the chain's union-find entries, children entries and undo records that
        // the new ones do not overwrite, read from the snapshot (nothing else writes while
        // the lock is held), counted first.
        let undone: std::collections::HashSet<u64> = feed.undo.iter().map(|(h, _)| *h).collect();
        let build = &feed.build;
        let doomed = |space: usize, k: &[u8]| -> Result<bool, StoreError> {
            let text = |b: &[u8]| {
                std::str::from_utf8(b)
                    .map_err(|_| corrupt("cluster entry key"))
                    .map(str::to_owned)
            };
            Ok(match space {
                UF => build
                    .parent(&text(k.get(9..).unwrap_or_default())?)
                    .is_none(),
                UF_KIDS => {
                    let n = usize::from(k.get(8).copied().unwrap_or_default());
                    let parent = k
                        .get(9..9 + n)
                        .ok_or_else(|| corrupt("cluster child key"))?;
                    let a = text(&k[9 + n..])?;
                    build
                        .parent(&a)
                        .is_none_or(|p| p.as_bytes() != parent || p == a)
                }
                _ => !undone.contains(&Reader(&k[8..]).u64()?),
            })
        };
        let spaces = [UF, UF_KIDS, UF_UNDO];
        let mut old = 0u64;
        for space in spaces {
            for g in snap.prefix(&self.dir.spaces[space], chain) {
                old += u64::from(doomed(space, &g.key().map_err(|e| self.dir.err(e))?)?);
            }
        }
        let nodes = feed.build.nodes().count() as u64;
        let total = old + 2 * nodes + feed.undo.len() as u64;
        // The first batch marks the chain (with the first deletions), the last one clears
        // the mark: every partial state is marked, and refused while marked.
        let mut batch = Batch::default();
        batch.put(META, rebuilding_key(chain_id), Vec::new());
        let mut done = 0u64;
        let mut flush = |batch: &mut Batch, force: bool| -> Result<(), StoreError> {
            if !force && batch.ops.len() < REBUILD_BATCH {
                return Ok(());
            }
            done += batch.ops.len() as u64;
            self.dir.write(std::mem::take(batch))?;
            feed.written(
                done.min(total),
                total,
                "the clusters are incomplete and marked so",
            )
        };
        for space in spaces {
            for g in snap.prefix(&self.dir.spaces[space], chain) {
                let k = g.key().map_err(|e| self.dir.err(e))?;
                if doomed(space, &k)? {
                    batch.del(space, k.to_vec());
                    flush(&mut batch, false)?;
                }
            }
        }
        for (a, parent, size) in feed.build.nodes() {
            let node = Node {
                parent: parent.to_owned(),
                size,
            };
            stage_node(&mut batch, chain_id, a, None, Some(&node));
            flush(&mut batch, false)?;
        }
        for (height, undo) in &feed.undo {
            batch.put(UF_UNDO, block_key(chain_id, *height), undo.clone());
            flush(&mut batch, false)?;
        }
        flush(&mut batch, true)?;
        batch.del(META, rebuilding_key(chain_id));
        self.dir.write(batch)?;
        self.dir.persist()?;
        let mut report = feed.report.clone();
        report.write_time = started.elapsed();
        Ok(report)
    }

    fn block_transactions(&self, chain_id: u64, number: u64) -> Result<Vec<TxRecord>, StoreError> {
        self.block_transactions_at(Some(&self.view()), chain_id, number)
    }

    fn transaction(
        &self,
        chain_id: u64,
        txid: &B256,
    ) -> Result<Vec<(u64, u32, TxRecord)>, StoreError> {
        self.transaction_at(&self.view(), chain_id, txid)
    }

    fn address_transfers(
        &self,
        chain_id: u64,
        address: &str,
        from_height: u64,
        limit: usize,
    ) -> Result<Vec<AddressTransfer>, StoreError> {
        super::check_limit(limit)?;
        if address.is_empty() || address.len() > super::MAX_ADDRESS_BYTES {
            return Ok(Vec::new());
        }
        let prefix = addr_prefix(chain_id, address);
        let mut start = prefix.clone();
        start.extend_from_slice(&from_height.to_be_bytes());
        let snap = self.view();
        let mut out = Vec::new();
        for g in snap.range(&self.dir.spaces[ADDR], start..codec::prefix_end(&prefix)) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = g.into_inner().map_err(|e| self.dir.err(e))?;
            let mut key = Reader(&k[prefix.len()..]);
            let height = key.u64()?;
            let tx_index = key.u32()?;
            let direction = Direction::from_code(key.u8()?)?;
            let index = key.u32()?;
            let mut val = Reader(&v);
            let txid = val.b256()?;
            let value = val.u64()?;
            let outpoint = bytes::read_outpoint(&mut val)?;
            out.push(AddressTransfer {
                height,
                tx_index,
                txid,
                direction,
                index,
                value,
                outpoint,
            });
        }
        Ok(out)
    }

    fn spenders(
        &self,
        chain_id: u64,
        outpoints: &[OutPointKey],
    ) -> Result<Vec<Option<Spender>>, StoreError> {
        spent::check_read_batch("outpoints", outpoints.len())?;
        let snap = self.view();
        outpoints
            .iter()
            .map(|op| {
                self.get(Some(&snap), SPENT, &coin_key(chain_id, op))?
                    .map(|v| spent::decode(&v))
                    .transpose()
            })
            .collect()
    }

    fn transactions(
        &self,
        chain_id: u64,
        txids: &[B256],
    ) -> Result<Vec<Vec<PlacedTx>>, StoreError> {
        spent::check_read_batch("txids", txids.len())?;
        let snap = self.view();
        txids
            .iter()
            .map(|t| self.transaction_at(&snap, chain_id, t))
            .collect()
    }
}

impl EmbeddedUtxoStore {
    fn head_at(&self, at: At<'_>, chain_id: u64) -> Result<Option<BlockRef>, StoreError> {
        let fresh;
        let snap = match at {
            Some(s) => s,
            None => {
                fresh = self.dir.db.snapshot();
                &fresh
            }
        };
        match snap
            .prefix(&self.dir.spaces[BLOCKS], chain_id.to_be_bytes())
            .next_back()
        {
            Some(g) => {
                let (k, v) = g.into_inner().map_err(|e| self.dir.err(e))?;
                Ok(Some(codec::read_block(Reader(&k[8..]).u64()?, &v)?))
            }
            None => Ok(None),
        }
    }

    fn block_at(
        &self,
        at: At<'_>,
        chain_id: u64,
        number: u64,
    ) -> Result<Option<BlockRef>, StoreError> {
        self.get(at, BLOCKS, &block_key(chain_id, number))?
            .map(|v| codec::read_block(number, &v))
            .transpose()
    }

    fn block_transactions_at(
        &self,
        at: At<'_>,
        chain_id: u64,
        number: u64,
    ) -> Result<Vec<TxRecord>, StoreError> {
        let fresh;
        let snap = match at {
            Some(s) => s,
            None => {
                fresh = self.dir.db.snapshot();
                &fresh
            }
        };
        let mut out = Vec::new();
        for g in snap.prefix(&self.dir.spaces[TXS], block_key(chain_id, number)) {
            let (_, v) = g.into_inner().map_err(|e| self.dir.err(e))?;
            out.push(txs::decode(&v)?);
        }
        Ok(out)
    }

    fn transaction_at(
        &self,
        snap: &Snapshot,
        chain_id: u64,
        txid: &B256,
    ) -> Result<Vec<(u64, u32, TxRecord)>, StoreError> {
        let mut prefix = chain_id.to_be_bytes().to_vec();
        prefix.extend_from_slice(txid.as_slice());
        let mut out = Vec::new();
        for g in snap.prefix(&self.dir.spaces[TXIDS], &prefix) {
            let (k, v) = g.into_inner().map_err(|e| self.dir.err(e))?;
            let height = Reader(&k[40..]).u64()?;
            let pos = Reader(&v).u32()?;
            let body = self
                .get(Some(snap), TXS, &tx_key(chain_id, height, pos))?
                .ok_or_else(|| corrupt("a txid entry without its transaction"))?;
            out.push((height, pos, txs::decode(&body)?));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index whose union-find was written before the children index existed gets it on
    /// open: its clusters' members are listed whole.
    #[test]
    fn children_index_is_built_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = |parent: &str, size| Node {
            parent: parent.into(),
            size,
        };
        {
            let s = EmbeddedUtxoStore::open(dir.path()).expect("open");
            let guard = s.group.lock();
            let mut batch = Batch::default();
            // a ← b ← c, and d alone; union-find entries only.
            for (a, n) in [
                ("a", node("a", 3)),
                ("b", node("a", 2)),
                ("c", node("b", 1)),
                ("d", node("d", 1)),
            ] {
                batch.put(UF, addr_prefix(7, a), cluster::encode_node(&n));
            }
            s.commit(guard, batch).expect("write");
            assert_eq!(s.cluster_members(7, "a", 10).expect("members"), ["a"]);
        }
        let s = EmbeddedUtxoStore::open(dir.path()).expect("reopen");
        assert_eq!(s.cluster(7, "c").expect("cluster").root, "a");
        assert_eq!(
            s.cluster_members(7, "a", 10).expect("members"),
            ["a", "b", "c"]
        );
        assert_eq!(s.cluster_members(7, "d", 10).expect("members"), ["d"]);
        assert_eq!(s.cluster_members(8, "a", 10).expect("members"), ["a"]);
    }

    /// Figures (run with `--ignored --nocapture`, release): listing the members of a
    /// 100,000-address cluster built by union by size from pairs, at most 10,000.
    #[test]
    #[ignore]
    fn members_of_a_large_cluster_timed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = EmbeddedUtxoStore::open(dir.path()).expect("open");
        let n = 100_000usize;
        let names: Vec<String> = (0..n).map(|i| format!("addr{i:08}")).collect();
        // Pairs, then pairs of pairs, ...: the deepest tree union by size builds.
        let mut width = 1;
        let mut nodes: std::collections::HashMap<String, Node> = Default::default();
        while width < n {
            let groups: Vec<Vec<&str>> = (0..n)
                .step_by(2 * width)
                .filter(|i| i + width < n)
                .map(|i| vec![names[i].as_str(), names[i + width].as_str()])
                .collect();
            let c = cluster::apply(&groups, |a| Ok(nodes.get(a).cloned())).expect("apply");
            let guard = s.group.lock();
            let mut batch = Batch::default();
            let before: std::collections::HashMap<&str, Option<&Node>> = c
                .old
                .iter()
                .map(|(a, o)| (a.as_str(), o.as_ref()))
                .collect();
            for (a, nd) in &c.new {
                stage_node(
                    &mut batch,
                    1,
                    a,
                    before.get(a.as_str()).copied().flatten(),
                    Some(nd),
                );
            }
            s.commit(guard, batch).expect("write");
            for (a, nd) in c.new {
                nodes.insert(a, nd);
            }
            width *= 2;
        }
        let root = s.cluster(1, &names[n - 1]).expect("cluster");
        assert_eq!(root.size, n as u64);
        let t = std::time::Instant::now();
        let m = s.cluster_members(1, &root.root, 10_000).expect("members");
        let first = t.elapsed();
        let t = std::time::Instant::now();
        let all = s.cluster_members(1, &root.root, n).expect("members");
        println!(
            "embedded: 10,000 members of a {n}-address cluster in {first:?}; all {} in {:?}",
            all.len(),
            t.elapsed()
        );
        assert_eq!(m.len(), 10_000);
        assert_eq!(all.len(), n);
    }
}
