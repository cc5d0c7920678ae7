//! The UTXO index in a fjall directory of its own (`<data-dir>/store/utxo`). Writes are
//! serialized by the writer lock and committed as one atomic batch across the keyspaces,
//! fsynced before they are reported (group commit, [`crate::group_commit`]). Integers are
//! big-endian, so byte order is block order:
//!
//! | keyspace | key | value |
//! |---|---|---|
//! | `utxo.blocks` | chain, number | hash, parent hash, timestamp |
//! | `utxo.coins` | chain, txid, vout | value, height, coinbase, script, address |
//! | `utxo.undo` | chain, number | the undo record: outputs created (outpoint, value), outputs spent or replaced (whole) |
//! | `utxo.meta` | chain | counts: outputs, total |

use std::path::Path;

use fjall::Readable;
use holdfast_primitives::BlockRef;

use super::{
    KeepUndo, OutPointKey, Undo, UtxoChanges, UtxoCounts, UtxoRecord, UtxoStore, bytes, counted,
    not_held, validate,
};
use crate::codec::{self, Reader, corrupt};
use crate::group_commit::{Batch, FjallDir, GroupCommit};
use crate::{Applied, StoreError, admit};

const SPACES: [&str; 4] = ["utxo.blocks", "utxo.coins", "utxo.undo", "utxo.meta"];
const BLOCKS: usize = 0;
const COINS: usize = 1;
const UNDO: usize = 2;
const META: usize = 3;

/// The embedded UTXO index.
pub struct EmbeddedUtxoStore {
    dir: FjallDir,
    group: GroupCommit,
    keep_undo: KeepUndo,
}

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

fn coin_key(chain_id: u64, op: &OutPointKey) -> Vec<u8> {
    let mut k = chain_id.to_be_bytes().to_vec();
    bytes::outpoint(op, &mut k);
    k
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
        Ok(EmbeddedUtxoStore {
            dir: FjallDir::open(path, &SPACES)?,
            group: GroupCommit::default(),
            keep_undo,
        })
    }

    fn read_coin(&self, chain_id: u64, op: &OutPointKey) -> Result<Option<UtxoRecord>, StoreError> {
        self.dir
            .read(COINS, &coin_key(chain_id, op))?
            .map(|v| {
                let mut r = Reader(&v);
                let rec = bytes::read_record(&mut r)?;
                if r.0.is_empty() {
                    Ok(rec)
                } else {
                    Err(corrupt("UTXO record: trailing bytes"))
                }
            })
            .transpose()
    }

    fn read_counts(&self, chain_id: u64) -> Result<UtxoCounts, StoreError> {
        match self.dir.read(META, &chain_id.to_be_bytes())? {
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

    fn commit(
        &self,
        guard: crate::group_commit::WriterGuard<'_>,
        batch: Batch,
    ) -> Result<(), StoreError> {
        self.dir.write(batch)?;
        let ticket = self.group.written(guard);
        self.group.sync_up_to(ticket, || self.dir.persist())
    }
}

impl UtxoStore for EmbeddedUtxoStore {
    fn apply_block(
        &self,
        chain_id: u64,
        block: &BlockRef,
        changes: &UtxoChanges,
    ) -> Result<Applied, StoreError> {
        validate(chain_id, block, changes)?;
        let number = block.number;
        let guard = self.group.lock();
        if !admit(chain_id, block, None, |n| self.block(chain_id, n))? {
            return Ok(Applied::AlreadyPresent);
        }
        if let Some(head) = self.head(chain_id)?
            && head.number + 1 != number
        {
            return Err(StoreError::Invalid {
                chain_id,
                number,
                what: format!(
                    "the index is at block {}: the next block must be {}",
                    head.number,
                    head.number + 1
                ),
            });
        }
        for (what, list) in [("spent", &changes.spent), ("replaced", &changes.replaced)] {
            for (op, r) in list {
                match self.read_coin(chain_id, op)? {
                    Some(held) if &held == r => {}
                    held => return Err(not_held(chain_id, number, what, op, held.is_some())),
                }
            }
        }
        for (op, _) in &changes.created {
            let replaced = changes.replaced.iter().any(|(r, _)| r == op);
            if !replaced && self.read_coin(chain_id, op)?.is_some() {
                return Err(StoreError::Invalid {
                    chain_id,
                    number,
                    what: format!(
                        "created output {op} is already unspent in the index and not listed as replaced"
                    ),
                });
            }
        }
        let counts = counted(self.read_counts(chain_id)?, changes)?;
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
        let mut counts = self.read_counts(chain_id)?;
        let mut batch = Batch::default();
        for b in removed.iter().rev() {
            let key = block_key(chain_id, b.number);
            let undo = self
                .dir
                .read(UNDO, &key)?
                .ok_or_else(|| super::undo_pruned(chain_id, b.number))?;
            let undo = bytes::read_undo(&undo)?;
            Self::stage_undo(&mut batch, chain_id, &undo);
            counts = undo.revert(counts)?;
            batch.del(UNDO, key.clone());
            batch.del(BLOCKS, key);
        }
        batch.put(META, chain_id.to_be_bytes(), Self::counts_value(counts));
        self.commit(guard, batch)?;
        Ok(removed)
    }

    fn head(&self, chain_id: u64) -> Result<Option<BlockRef>, StoreError> {
        let snap = self.dir.db.snapshot();
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

    fn block(&self, chain_id: u64, number: u64) -> Result<Option<BlockRef>, StoreError> {
        self.dir
            .read(BLOCKS, &block_key(chain_id, number))?
            .map(|v| codec::read_block(number, &v))
            .transpose()
    }

    fn utxo(
        &self,
        chain_id: u64,
        outpoint: &OutPointKey,
    ) -> Result<Option<UtxoRecord>, StoreError> {
        self.read_coin(chain_id, outpoint)
    }

    fn counts(&self, chain_id: u64) -> Result<UtxoCounts, StoreError> {
        self.read_counts(chain_id)
    }

    fn utxos(
        &self,
        chain_id: u64,
        outpoints: &[OutPointKey],
    ) -> Result<Vec<Option<UtxoRecord>>, StoreError> {
        super::check_batch(outpoints.len())?;
        outpoints
            .iter()
            .map(|op| self.read_coin(chain_id, op))
            .collect()
    }
}
