//! Connecting and disconnecting blocks against a UTXO set: what Bitcoin Core's
//! `ConnectBlock`/`DisconnectBlock` do to the coins, without validation (the node validated).
//!
//! [`connect`] resolves every input of a block from the block's own earlier outputs, then from
//! a [`UtxoView`] (the store's index), and returns the block's [`BlockChanges`]: the outputs it
//! adds and the ones it removes. A store applies those changes atomically with the block and
//! keeps them as the block's undo record: [`BlockChanges::undo`] is what unwinding the block
//! does. [`MemoryUtxoSet`] is the reference implementation (tests, and small chains); the
//! store's persistent index must behave the same (`tests/it/utxo.rs` checks this one against a
//! real node's `gettxoutsetinfo`).
//!
//! Core's rules kept here:
//! - the genesis block's outputs are never added (its coinbase cannot be spent);
//! - provably unspendable outputs (a script starting with `OP_RETURN`, or longer than
//!   10,000 bytes) are never added;
//! - an output spent later in the block that created it is never added;
//! - an output whose outpoint is already unspent replaces it (the two duplicate coinbase
//!   txids of 2010, BIP30): the replaced one is recorded, so the undo restores it.

use std::collections::{HashMap, HashSet};

use bitcoin::{BlockHash, OutPoint, Txid};

use crate::block::{Block, Output};

/// Longest script that can be spent (Core's `MAX_SCRIPT_SIZE`).
const MAX_SCRIPT_SIZE: usize = 10_000;

/// An unspent output with what the index keeps about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utxo {
    pub output: Output,
    /// Height of the block that created it.
    pub height: u64,
    /// Created by a coinbase.
    pub coinbase: bool,
}

/// Where unspent outputs are looked up.
pub trait UtxoView {
    /// The unspent output at `outpoint`, if it is unspent; an error when the set cannot be
    /// read (a store's I/O).
    fn utxo(&self, outpoint: &OutPoint) -> Result<Option<Utxo>, ViewError>;
}

/// A UTXO set that could not be read, in its own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ViewError(pub String);

/// What connecting one block does to the UTXO set: apply all of it or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockChanges {
    pub hash: BlockHash,
    pub height: u64,
    /// Outputs added, in block order.
    pub created: Vec<(OutPoint, Utxo)>,
    /// Outputs the block's inputs spent from the set, in input order (inputs spending an
    /// output of the same block are not here: it was never in the set).
    pub spent: Vec<(OutPoint, Utxo)>,
    /// Unspent outputs replaced by a new output with the same outpoint (BIP30 duplicates).
    pub replaced: Vec<(OutPoint, Utxo)>,
}

impl BlockChanges {
    /// The changes that disconnect the block: remove what it created, put back what it spent
    /// and what it replaced.
    pub fn undo(&self) -> (Vec<OutPoint>, Vec<(OutPoint, Utxo)>) {
        let removed = self.created.iter().map(|(op, _)| *op).collect();
        let restored = self.spent.iter().chain(&self.replaced).cloned().collect();
        (removed, restored)
    }
}

/// Why a block cannot be connected to the set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "block {height} ({block}), tx {txid} input {input}: spends {outpoint}, which is not unspent (the set is not at the block's parent, or the chain was not read from its genesis)"
    )]
    MissingInput {
        block: BlockHash,
        height: u64,
        txid: Txid,
        input: usize,
        outpoint: OutPoint,
    },
    #[error(
        "block {height} ({block}), tx {txid}: outputs total {outputs} but its inputs hold {inputs}"
    )]
    Overspend {
        block: BlockHash,
        height: u64,
        txid: Txid,
        inputs: u64,
        outputs: u64,
    },
    #[error("block {height} ({block}): reading output {outpoint} from the UTXO set: {reason}")]
    View {
        block: BlockHash,
        height: u64,
        outpoint: OutPoint,
        reason: String,
    },
    #[error("block {height} ({block}): outpoint {outpoint} is created twice")]
    DuplicateOutput {
        block: BlockHash,
        height: u64,
        outpoint: OutPoint,
    },
}

/// Whether Core ever adds this output to the UTXO set.
pub fn spendable(output: &Output) -> bool {
    !output.script.is_op_return() && output.script.len() <= MAX_SCRIPT_SIZE
}

/// Resolves every input of `block` (at `height`) and computes its changes to the set `view`
/// holds. The block's inputs are filled in (`Input::spent`), so its fees are known; on an error
/// the block is left as it was.
pub fn connect(
    block: &mut Block,
    height: u64,
    view: &dyn UtxoView,
) -> Result<BlockChanges, ConnectError> {
    let (hash, at) = (block.hash, height);
    let read = |view: &dyn UtxoView, op: &OutPoint| {
        view.utxo(op).map_err(|e| ConnectError::View {
            block: hash,
            height: at,
            outpoint: *op,
            reason: e.0,
        })
    };
    // Outputs of this block so far, not yet spent in it.
    let mut fresh: HashMap<OutPoint, Utxo> = HashMap::new();
    let mut order: Vec<OutPoint> = Vec::new();
    let mut created_here: HashSet<OutPoint> = HashSet::new();
    let mut from_set: Vec<(OutPoint, Utxo)> = Vec::new();
    let mut spent_in_set: HashSet<OutPoint> = HashSet::new();
    let mut resolved: Vec<Vec<Output>> = Vec::with_capacity(block.txs.len());
    for tx in &block.txs {
        let mut inputs = Vec::with_capacity(tx.inputs.len());
        let mut total: u64 = 0;
        for (i, input) in tx.inputs.iter().enumerate() {
            let op = input.prevout;
            let utxo = match fresh.remove(&op) {
                Some(u) => u,
                None => match read(view, &op)?.filter(|_| !spent_in_set.contains(&op)) {
                    Some(u) => {
                        spent_in_set.insert(op);
                        from_set.push((op, u.clone()));
                        u
                    }
                    None => {
                        return Err(ConnectError::MissingInput {
                            block: hash,
                            height: at,
                            txid: tx.txid,
                            input: i,
                            outpoint: op,
                        });
                    }
                },
            };
            total = total.saturating_add(utxo.output.value);
            inputs.push(utxo.output);
        }
        if !tx.coinbase && total < tx.output_value() {
            return Err(ConnectError::Overspend {
                block: hash,
                height: at,
                txid: tx.txid,
                inputs: total,
                outputs: tx.output_value(),
            });
        }
        resolved.push(inputs);
        if height == 0 {
            continue; // the genesis outputs never enter the set
        }
        for (vout, output) in tx.outputs.iter().enumerate() {
            if !spendable(output) {
                continue;
            }
            let op = OutPoint {
                txid: tx.txid,
                vout: vout as u32,
            };
            let utxo = Utxo {
                output: output.clone(),
                height,
                coinbase: tx.coinbase,
            };
            if !created_here.insert(op) {
                return Err(ConnectError::DuplicateOutput {
                    block: hash,
                    height: at,
                    outpoint: op,
                });
            }
            fresh.insert(op, utxo);
            order.push(op);
        }
    }
    let mut created = Vec::with_capacity(fresh.len());
    let mut replaced = Vec::new();
    for op in order {
        if let Some(utxo) = fresh.remove(&op) {
            if !spent_in_set.contains(&op)
                && let Some(old) = read(view, &op)?
            {
                replaced.push((op, old));
            }
            created.push((op, utxo));
        }
    }
    for (tx, inputs) in block.txs.iter_mut().zip(resolved) {
        for (input, output) in tx.inputs.iter_mut().zip(inputs) {
            input.spent = Some(output);
        }
    }
    Ok(BlockChanges {
        hash,
        height,
        created,
        spent: from_set,
        replaced,
    })
}

/// A UTXO set in memory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemoryUtxoSet {
    utxos: HashMap<OutPoint, Utxo>,
}

/// Counts of a UTXO set, as `gettxoutsetinfo` gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UtxoStats {
    /// Unspent outputs (`txouts`).
    pub outputs: u64,
    /// Their total value in the smallest unit (`total_amount`).
    pub total: u64,
}

impl MemoryUtxoSet {
    pub fn new() -> Self {
        MemoryUtxoSet::default()
    }

    /// Applies a block's changes (from [`connect`] against this set).
    pub fn apply(&mut self, changes: &BlockChanges) {
        for (op, _) in &changes.spent {
            self.utxos.remove(op);
        }
        for (op, utxo) in &changes.created {
            self.utxos.insert(*op, utxo.clone());
        }
    }

    /// Reverts a block's changes (the block must be the last one applied).
    pub fn revert(&mut self, changes: &BlockChanges) {
        let (removed, restored) = changes.undo();
        for op in removed {
            self.utxos.remove(&op);
        }
        for (op, utxo) in restored {
            self.utxos.insert(op, utxo);
        }
    }

    pub fn stats(&self) -> UtxoStats {
        UtxoStats {
            outputs: self.utxos.len() as u64,
            total: self.utxos.values().map(|u| u.output.value).sum(),
        }
    }

    pub fn len(&self) -> usize {
        self.utxos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.utxos.is_empty()
    }
}

impl UtxoView for MemoryUtxoSet {
    fn utxo(&self, outpoint: &OutPoint) -> Result<Option<Utxo>, ViewError> {
        Ok(self.utxos.get(outpoint).cloned())
    }
}

impl MemoryUtxoSet {
    /// The unspent output at `outpoint` (infallible: the set is in memory).
    pub fn get(&self, outpoint: &OutPoint) -> Option<&Utxo> {
        self.utxos.get(outpoint)
    }
}
