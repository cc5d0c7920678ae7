//! The UTXO index of Bitcoin-family chains, behind [`UtxoStore`]: per chain, the stored
//! blocks, the unspent outputs, and each block's undo record.
//!
//! The store does not decide what a block does to the coins: the caller computes a block's
//! [`UtxoChanges`] (`holdfast-bitcoin`'s `utxo::connect`, against this index) and the store
//! applies them atomically with the block, after checking them against what it holds:
//!
//! - a block is written whole or not at all: the block, its changes to the index, its undo
//!   record and the counts in one atomic write;
//! - the same conflict and parent rules as [`crate::Store`]: the same hash again changes
//!   nothing, another hash at a stored height or a parent mismatch is an error, reorgs are
//!   explicit ([`UtxoStore::unwind_above`]);
//! - every output a block spends or replaces must be in the index with exactly the recorded
//!   content, and every output it creates must not be (unless it is replaced): otherwise the
//!   changes were computed against another state and nothing is written;
//! - [`UtxoStore::unwind_above`] reverts blocks newest first from their undo records (remove
//!   what a block created, put back what it spent or replaced), so after an unwind the index
//!   is exactly what it was before those blocks; a store opened to keep the undo records of
//!   the newest N blocks only ([`KeepUndo`]) drops older ones in the same writes, and refuses
//!   (whole) an unwind that needs one of them;
//! - [`UtxoCounts`] (outputs and their total) change in the same write, so they are always
//!   the index's (Bitcoin Core's `gettxoutsetinfo` `txouts` and `total_amount`).
//!
//! - the block's transactions ([`TxRecord`]: inputs resolved to the spent output's value and
//!   address, outputs with their scripts, coinbase flag; the fee is the difference) and the
//!   address index ([`AddressTransfer`]: every output paying an address, every input spending
//!   one) are written in the same atomic write, only if they fit the changes (every spent
//!   output consumed by one input with its value and address, every created output one of the
//!   transactions'), and removed exactly on unwind;
//! - address clusters (common-input ownership, CoinJoin-like transactions excluded:
//!   [`is_coinjoin`]) are a union-find updated in the same write, with a per-block undo record
//!   of the entries it changed, put back on unwind; [`UtxoStore::rebuild_clusters`] computes
//!   them again from the stored transactions, equal to what the writes would have made, and
//!   never leaves a half-written union-find that is read as whole ([`rebuild`]).
//!
//! - the spent-by index ([`Spender`]: the input spending each output a stored transaction
//!   spends) is derived from the same transactions, written and removed with them.
//!
//! Two backends, one behaviour suite (`tests/it/utxo.rs`, `tests/it/utxo_txs.rs`): [`EmbeddedUtxoStore`] (fjall, its
//! own directory) and [`PgUtxoStore`] (PostgreSQL, its own schema).

use alloy_primitives::B256;
use holdfast_primitives::BlockRef;

use crate::StoreError;

pub mod cluster;
mod embedded;
mod pg;
pub mod rebuild;
mod spent;
mod txs;

pub use cluster::{Cluster, is_coinjoin};
pub use rebuild::{NoProgress, RebuildOptions, RebuildProgress, RebuildReport, RebuildStep};

pub use embedded::EmbeddedUtxoStore;
pub use pg::PgUtxoStore;
pub use spent::{MAX_READ_BATCH, PlacedTx, Spender};
pub use txs::{
    AddressTransfer, Direction, MAX_TRANSFERS, TxInput, TxOutput, TxRecord, show as show_txid,
};

/// Longest script kept (Bitcoin Core's `MAX_SCRIPT_SIZE`: a longer one is unspendable and
/// never enters the set).
pub const MAX_SCRIPT_BYTES: usize = 10_000;
/// Longest address kept (a segwit address is at most 90 characters).
pub const MAX_ADDRESS_BYTES: usize = 128;

/// An output's place: the transaction id (32 bytes in the consensus, internal byte order,
/// as rust-bitcoin's `Txid::to_byte_array` gives it) and the output's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutPointKey {
    pub txid: B256,
    pub vout: u32,
}

impl std::fmt::Display for OutPointKey {
    /// As Bitcoin shows it: the txid in reversed (display) hex, a colon, the index.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.txid.iter().rev() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ":{}", self.vout)
    }
}

/// An unspent output as the index keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtxoRecord {
    /// In the smallest unit.
    pub value: u64,
    /// Height of the block that created it.
    pub height: u64,
    pub coinbase: bool,
    pub script: Vec<u8>,
    /// The address it pays on its network, if it has one.
    pub address: Option<String>,
}

/// What one block does to the index: outputs created, spent and replaced (a new output on an
/// outpoint still unspent, BIP30), kept as the block's undo record; and the block's
/// transactions, in block order, for the transaction and address index (empty: the block is
/// written to the coin index only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UtxoChanges {
    pub created: Vec<(OutPointKey, UtxoRecord)>,
    pub spent: Vec<(OutPointKey, UtxoRecord)>,
    pub replaced: Vec<(OutPointKey, UtxoRecord)>,
    pub transactions: Vec<TxRecord>,
}

/// How many blocks' undo records a store keeps: `None` every block's; `Some(n)` the newest
/// `n` blocks' (each write drops the record `n` blocks below it, in the same atomic write).
/// Unwinding below the kept records is refused, whole.
pub type KeepUndo = Option<u64>;

/// The error for an unwind that needs an undo record no longer kept.
fn undo_pruned(chain_id: u64, number: u64) -> StoreError {
    StoreError::Invalid {
        chain_id,
        number,
        what: "cannot unwind this block: its undo record was pruned (undo records are kept for the newest blocks only); nothing was unwound".into(),
    }
}

/// The block whose undo record a write of block `number` drops, if any.
fn pruned_by(number: u64, keep: KeepUndo) -> Option<u64> {
    keep.and_then(|k| number.checked_sub(k.max(1)))
}

/// Transactions per [`UtxoStore::apply_blocks`] call in a backfill: ingestion gathers blocks
/// until they hold this many. A call's memory is its blocks' changes, the outputs created
/// within it and its sorted entries: the blocks-directory backfill over a million
/// transactions (docs/BENCHMARKS.md) peaked at 1.05 GB resident with fjall's caches.
pub const BULK_TXS: u64 = 100_000;

/// Counts of a chain's index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UtxoCounts {
    /// Unspent outputs.
    pub outputs: u64,
    /// Their total value, in the smallest unit.
    pub total: u64,
}

/// The UTXO index. See the module documentation for the invariants. Synchronous; async
/// callers use `spawn_blocking`.
pub trait UtxoStore: Send + Sync {
    /// Writes `block` with its changes to the index, atomically.
    fn apply_block(
        &self,
        chain_id: u64,
        block: &BlockRef,
        changes: &UtxoChanges,
    ) -> Result<crate::Applied, StoreError>;

    /// Writes consecutive `blocks` (lowest first, the first one following the head) with
    /// their changes, for a backfill far below the node's tip, where no reorg reaches: the
    /// same checks as [`UtxoStore::apply_block`] for each block in turn (against the index
    /// and the blocks before it in the call), and the same index afterwards, but **no undo
    /// record** for them on the embedded index, so an unwind that reaches one is refused
    /// whole (as for a pruned record). Leading blocks already stored with the same hash are
    /// [`crate::Applied::AlreadyPresent`] (a call interrupted and made again).
    ///
    /// The embedded index resolves the call in memory (an output created and spent within
    /// it never reaches the disk) and writes the transactions, txid, address and spent-by
    /// entries, then the coins, as sorted tables (fjall's ingestion: no memtable, no
    /// journal); the head, blocks and counts move last, once everything else is durable, and
    /// a call interrupted before that is settled from its record when the index is opened
    /// (`embedded::bulk`). No read shows anything of the call's blocks before the head moves
    /// (readers read the index as it was before the call meanwhile), nor after a crash. [`BULK_TXS`] transactions per call is what ingestion gives it.
    /// PostgreSQL writes the call's blocks in one transaction as [`UtxoStore::apply_block`]
    /// writes each (undo records included): whole or not at all.
    fn apply_blocks(
        &self,
        chain_id: u64,
        blocks: &[(BlockRef, UtxoChanges)],
    ) -> Result<Vec<crate::Applied>, StoreError> {
        blocks
            .iter()
            .map(|(b, c)| self.apply_block(chain_id, b, c))
            .collect()
    }

    /// [`UtxoStore::apply_blocks`], keeping the undo records of the blocks numbered
    /// `undo_from` and above as [`UtxoStore::apply_block`] keeps them (the same bytes, pruned
    /// the same way): for a backfill's last blocks, near enough to the tip for a reorg to
    /// reach them, written in bulk all the same. The embedded index writes those records
    /// with the write that moves the head (and in the call's record before it: they are as
    /// large as the blocks' spent outputs, so give it tens or hundreds of blocks, not a whole
    /// chain). PostgreSQL keeps every block's undo record in any case.
    fn apply_blocks_keeping_undo(
        &self,
        chain_id: u64,
        blocks: &[(BlockRef, UtxoChanges)],
        undo_from: u64,
    ) -> Result<Vec<crate::Applied>, StoreError>;

    /// Reverts every block above `number`, newest first, and returns them lowest first.
    fn unwind_above(&self, chain_id: u64, number: u64) -> Result<Vec<BlockRef>, StoreError>;

    /// The highest stored block: the ingestion checkpoint.
    fn head(&self, chain_id: u64) -> Result<Option<BlockRef>, StoreError>;

    fn block(&self, chain_id: u64, number: u64) -> Result<Option<BlockRef>, StoreError>;

    /// The unspent output at `outpoint`, if it is unspent.
    fn utxo(&self, chain_id: u64, outpoint: &OutPointKey)
    -> Result<Option<UtxoRecord>, StoreError>;

    fn counts(&self, chain_id: u64) -> Result<UtxoCounts, StoreError>;

    /// The unspent outputs at `outpoints`, in their order (`None` where not unspent): one
    /// round trip for a block's inputs. At most [`MAX_BATCH`] at once.
    fn utxos(
        &self,
        chain_id: u64,
        outpoints: &[OutPointKey],
    ) -> Result<Vec<Option<UtxoRecord>>, StoreError>;

    /// The cluster `address` is in (common-input ownership over the blocks written with
    /// [`UtxoStore::apply_block`]; CoinJoin-like transactions merge nothing): an address never
    /// merged is a cluster of one, its own root.
    fn cluster(&self, chain_id: u64, address: &str) -> Result<Cluster, StoreError>;

    /// The addresses of the cluster whose root is `root` ([`Cluster::root`]), the root first
    /// then breadth first down the union-find, at most `limit` (compare with
    /// [`Cluster::size`] to know whether the list is whole). An address that is not a root
    /// gives itself and the addresses under it only.
    fn cluster_members(
        &self,
        chain_id: u64,
        root: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;

    /// Replaces the chain's clusters with the ones its stored transactions give, built in
    /// memory in block order ([`cluster::build`]): every address's entry exactly as writing
    /// the blocks one by one from nothing would make it, and a cluster undo record for each
    /// block with a UTXO undo record, so an unwind afterwards restores the earlier clusters.
    /// Holds the chain's writes back while it runs. See [`rebuild`] for what an interruption
    /// leaves.
    fn rebuild_clusters(
        &self,
        chain_id: u64,
        options: RebuildOptions,
        progress: &dyn RebuildProgress,
    ) -> Result<RebuildReport, StoreError>;

    /// Writes `block` with its transactions and their address entries but no coin changes:
    /// history imported from an export that holds no UTXO set (bitcoin-etl). For a chain id
    /// that never takes [`UtxoStore::apply_block`] (the caller keeps imports apart); blocks in
    /// any order, each atomically; the same block again changes nothing, another hash at a
    /// stored height is a conflict.
    fn import_block(
        &self,
        chain_id: u64,
        block: &BlockRef,
        transactions: &[TxRecord],
    ) -> Result<crate::Applied, StoreError>;

    /// The transactions stored with block `number`, in block order.
    fn block_transactions(&self, chain_id: u64, number: u64) -> Result<Vec<TxRecord>, StoreError>;

    /// The stored transactions with `txid` (two for the duplicate coinbases of 2010), each with
    /// its height and position in the block, lowest first.
    fn transaction(
        &self,
        chain_id: u64,
        txid: &B256,
    ) -> Result<Vec<(u64, u32, TxRecord)>, StoreError>;

    /// `address`'s receipts and spends from `from_height` on, in block order (height, position,
    /// receipts before spends, index), at most `limit` (at most [`MAX_TRANSFERS`]).
    fn address_transfers(
        &self,
        chain_id: u64,
        address: &str,
        from_height: u64,
        limit: usize,
    ) -> Result<Vec<AddressTransfer>, StoreError>;

    /// The input spending each of `outpoints`, in their order (`None`: unspent, or spent by a
    /// transaction the index does not hold), from the stored transactions (blocks and
    /// imports). At most [`MAX_READ_BATCH`] at once.
    fn spenders(
        &self,
        chain_id: u64,
        outpoints: &[OutPointKey],
    ) -> Result<Vec<Option<Spender>>, StoreError>;

    /// [`UtxoStore::transaction`] for each of `txids`, in their order, in one read. At most
    /// [`MAX_READ_BATCH`] at once.
    fn transactions(&self, chain_id: u64, txids: &[B256])
    -> Result<Vec<Vec<PlacedTx>>, StoreError>;
}

/// Checks an imported block before it is written, and whether a stored block at its height
/// makes it already present (`Ok(false)`) or a conflict.
fn admit_import(
    chain_id: u64,
    block: &BlockRef,
    transactions: &[TxRecord],
    stored: Option<BlockRef>,
) -> Result<bool, StoreError> {
    txs::validate_history(transactions, |what| StoreError::Invalid {
        chain_id,
        number: block.number,
        what,
    })?;
    match stored {
        Some(s) if s.hash == block.hash => Ok(false),
        Some(s) => Err(StoreError::Conflict {
            chain_id,
            number: block.number,
            stored: s.hash,
            new: block.hash,
        }),
        None => Ok(true),
    }
}

fn check_limit(limit: usize) -> Result<(), StoreError> {
    if limit > MAX_TRANSFERS {
        return Err(StoreError::Argument {
            field: "limit",
            value: limit.to_string(),
            expected: format!("at most {MAX_TRANSFERS}"),
        });
    }
    Ok(())
}

/// Most outpoints one [`UtxoStore::utxos`] call takes (a block has at most about 25,000
/// inputs).
pub const MAX_BATCH: usize = 100_000;

fn check_batch(n: usize) -> Result<(), StoreError> {
    if n > MAX_BATCH {
        return Err(StoreError::Argument {
            field: "outpoints",
            value: n.to_string(),
            expected: format!("at most {MAX_BATCH} per call"),
        });
    }
    Ok(())
}

/// Checks that a bulk write's blocks are consecutive, each the child of the one before it.
fn check_consecutive(chain_id: u64, blocks: &[(BlockRef, UtxoChanges)]) -> Result<(), StoreError> {
    for w in blocks.windows(2) {
        let (p, b) = (&w[0].0, &w[1].0);
        if p.number.checked_add(1) != Some(b.number) {
            return Err(StoreError::Invalid {
                chain_id,
                number: b.number,
                what: format!(
                    "the blocks of a bulk write must be consecutive: block {} follows block {}",
                    b.number, p.number
                ),
            });
        }
        if b.parent_hash != p.hash {
            return Err(StoreError::ParentMismatch {
                chain_id,
                number: b.number,
                parent: b.parent_hash,
                below: p.number,
                stored: p.hash,
            });
        }
    }
    Ok(())
}

/// The error for a bulk write with a stored block after one that is not.
fn stored_after_new(chain_id: u64, number: u64) -> StoreError {
    StoreError::Invalid {
        chain_id,
        number,
        what: "a block of a bulk write is stored but the one before it is not".into(),
    }
}

/// Checks `changes` for `block` on their own, before anything is read or written.
fn validate(chain_id: u64, block: &BlockRef, changes: &UtxoChanges) -> Result<(), StoreError> {
    let number = block.number;
    let invalid = |what: String| StoreError::Invalid {
        chain_id,
        number,
        what,
    };
    let all = changes
        .created
        .iter()
        .chain(&changes.spent)
        .chain(&changes.replaced);
    for (op, r) in all {
        if r.script.len() > MAX_SCRIPT_BYTES {
            return Err(invalid(format!(
                "output {op}: script of {} bytes, at most {MAX_SCRIPT_BYTES} are kept",
                r.script.len()
            )));
        }
        if r.address
            .as_ref()
            .is_some_and(|a| a.len() > MAX_ADDRESS_BYTES)
        {
            return Err(invalid(format!(
                "output {op}: address longer than {MAX_ADDRESS_BYTES} bytes"
            )));
        }
        if r.height > number {
            return Err(invalid(format!(
                "output {op} is recorded at height {}, above the block",
                r.height
            )));
        }
    }
    if let Some((op, r)) = changes.created.iter().find(|(_, r)| r.height != number) {
        return Err(invalid(format!(
            "created output {op} is recorded at height {}, not the block's",
            r.height
        )));
    }
    for (what, list) in [
        ("created", &changes.created),
        ("spent", &changes.spent),
        ("replaced", &changes.replaced),
    ] {
        let mut ops: Vec<&OutPointKey> = list.iter().map(|(op, _)| op).collect();
        ops.sort();
        if let Some(w) = ops.windows(2).find(|w| w[0] == w[1]) {
            return Err(invalid(format!("{what} output {} is listed twice", w[0])));
        }
    }
    // A set, not a scan of the created list per output (quadratic: a block's 10,000 spends
    // against its 10,000 outputs took most of the write's time).
    let created: std::collections::HashSet<&OutPointKey> =
        changes.created.iter().map(|(op, _)| op).collect();
    if let Some((op, _)) = changes
        .replaced
        .iter()
        .find(|(op, _)| !created.contains(op))
    {
        return Err(invalid(format!(
            "replaced output {op} is not created again by the block"
        )));
    }
    if let Some((op, _)) = changes.spent.iter().find(|(op, _)| created.contains(op)) {
        return Err(invalid(format!(
            "output {op} is both spent and created by the block"
        )));
    }
    txs::validate(changes, invalid)
}

/// Block `number` must follow the index's `head` (when it has one).
fn follows_head(chain_id: u64, head: Option<BlockRef>, number: u64) -> Result<(), StoreError> {
    match head {
        Some(head) if head.number + 1 != number => Err(StoreError::Invalid {
            chain_id,
            number,
            what: format!(
                "the index is at block {}: the next block must be {}",
                head.number,
                head.number + 1
            ),
        }),
        _ => Ok(()),
    }
}

/// The error for an output the index does not hold as the changes say.
fn not_held(chain_id: u64, number: u64, what: &str, op: &OutPointKey, found: bool) -> StoreError {
    StoreError::Invalid {
        chain_id,
        number,
        what: if found {
            format!(
                "{what} output {op} is held with other content: the changes were computed against another state"
            )
        } else {
            format!(
                "{what} output {op} is not unspent in the index: the changes were computed against another state"
            )
        },
    }
}

/// Counts after applying `changes`.
fn counted(counts: UtxoCounts, changes: &UtxoChanges) -> Result<UtxoCounts, StoreError> {
    let sum = |l: &[(OutPointKey, UtxoRecord)]| -> (u64, u64) {
        (l.len() as u64, l.iter().map(|(_, r)| r.value).sum())
    };
    let (c_n, c_v) = sum(&changes.created);
    let (s_n, s_v) = sum(&changes.spent);
    let (r_n, r_v) = sum(&changes.replaced);
    let broken = || StoreError::Corrupt("UTXO counts below zero".into());
    Ok(UtxoCounts {
        outputs: (counts.outputs + c_n)
            .checked_sub(s_n + r_n)
            .ok_or_else(broken)?,
        total: (counts.total + c_v)
            .checked_sub(s_v + r_v)
            .ok_or_else(broken)?,
    })
}

/// A block's undo record: what reverting it takes. The outputs it created are removed by
/// outpoint (their values for the counts); the ones it spent or replaced are put back whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Undo {
    created: Vec<(OutPointKey, u64)>,
    restored: Vec<(OutPointKey, UtxoRecord)>,
}

impl Undo {
    fn of(changes: &UtxoChanges) -> Undo {
        Undo {
            created: changes
                .created
                .iter()
                .map(|(op, r)| (*op, r.value))
                .collect(),
            restored: changes
                .spent
                .iter()
                .chain(&changes.replaced)
                .cloned()
                .collect(),
        }
    }

    /// Counts after reverting the block.
    fn revert(&self, counts: UtxoCounts) -> Result<UtxoCounts, StoreError> {
        let broken = || StoreError::Corrupt("UTXO counts below zero".into());
        let created: u64 = self.created.iter().map(|(_, v)| v).sum();
        let restored: u64 = self.restored.iter().map(|(_, r)| r.value).sum();
        Ok(UtxoCounts {
            outputs: (counts.outputs + self.restored.len() as u64)
                .checked_sub(self.created.len() as u64)
                .ok_or_else(broken)?,
            total: (counts.total + restored)
                .checked_sub(created)
                .ok_or_else(broken)?,
        })
    }
}

/// Byte encodings of records and undo records (both backends store these bytes).
mod bytes {
    use super::{OutPointKey, Undo, UtxoRecord};
    use crate::StoreError;
    use crate::codec::{Reader, corrupt};
    use alloy_primitives::B256;

    pub fn record(r: &UtxoRecord, out: &mut Vec<u8>) {
        out.extend_from_slice(&r.value.to_be_bytes());
        out.extend_from_slice(&r.height.to_be_bytes());
        out.push(u8::from(r.coinbase));
        out.extend_from_slice(&(r.script.len() as u32).to_be_bytes());
        out.extend_from_slice(&r.script);
        match &r.address {
            Some(a) => {
                out.push(1);
                out.push(a.len() as u8);
                out.extend_from_slice(a.as_bytes());
            }
            None => out.push(0),
        }
    }

    pub fn read_record(r: &mut Reader<'_>) -> Result<UtxoRecord, StoreError> {
        let value = r.u64()?;
        let height = r.u64()?;
        let coinbase = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(corrupt("UTXO coinbase flag")),
        };
        let n = r.u32()? as usize;
        let script = r.take(n)?.to_vec();
        let address = match r.u8()? {
            0 => None,
            1 => {
                let n = usize::from(r.u8()?);
                Some(String::from_utf8(r.take(n)?.to_vec()).map_err(|_| corrupt("UTXO address"))?)
            }
            _ => return Err(corrupt("UTXO address flag")),
        };
        Ok(UtxoRecord {
            value,
            height,
            coinbase,
            script,
            address,
        })
    }

    pub fn outpoint(op: &OutPointKey, out: &mut Vec<u8>) {
        out.extend_from_slice(op.txid.as_slice());
        out.extend_from_slice(&op.vout.to_be_bytes());
    }

    pub fn read_outpoint(r: &mut Reader<'_>) -> Result<OutPointKey, StoreError> {
        Ok(OutPointKey {
            txid: B256::from_slice(r.take(32)?),
            vout: r.u32()?,
        })
    }

    pub fn undo(u: &Undo) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(u.created.len() as u32).to_be_bytes());
        for (op, value) in &u.created {
            outpoint(op, &mut out);
            out.extend_from_slice(&value.to_be_bytes());
        }
        out.extend_from_slice(&(u.restored.len() as u32).to_be_bytes());
        for (op, r) in &u.restored {
            outpoint(op, &mut out);
            record(r, &mut out);
        }
        out
    }

    pub fn read_undo(v: &[u8]) -> Result<Undo, StoreError> {
        let mut r = Reader(v);
        let mut undo = Undo::default();
        for _ in 0..r.u32()? {
            let op = read_outpoint(&mut r)?;
            undo.created.push((op, r.u64()?));
        }
        for _ in 0..r.u32()? {
            let op = read_outpoint(&mut r)?;
            undo.restored.push((op, read_record(&mut r)?));
        }
        if !r.0.is_empty() {
            return Err(corrupt("UTXO undo record: trailing bytes"));
        }
        Ok(undo)
    }
}
