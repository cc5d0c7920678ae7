//! The rules an import of transfers without a block (exported data) is held to, shared by
//! both backends. The store keys a transfer by its place in block order (chain, block,
//! transaction index, position), not by its transaction hash; so an import that put another
//! transaction, or other content, at a place already taken would otherwise be skipped as
//! "already stored" and lost without a word. Instead:
//!
//! - a place holds one transfer: a second record of it must say the same (transaction,
//!   parties, asset, amount; the timestamp where both carry one), and is then skipped;
//! - a block and transaction index hold one transaction: two call transfers there must have
//!   the same transaction hash. Log transfers are left out of this rule because
//!   blockchain-etl's `token_transfers.csv` carries no transaction index (they are imported
//!   at index 0).
//!
//! Anything else is [`StoreError::ImportConflict`], naming both transfers, and nothing of the
//! import is written.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use alloy_primitives::B256;
use holdfast_primitives::{Position, Transfer};

use crate::StoreError;

/// Why an imported transfer cannot be stored beside another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The same place in block order, with other content.
    SamePlace,
    /// The same block and transaction index, another transaction hash.
    OtherTransaction,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conflict::SamePlace => {
                "the same block, transaction index and position with another transaction, parties, asset or amount"
            }
            Conflict::OtherTransaction => {
                "the same block and transaction index with another transaction hash"
            }
        })
    }
}

/// Two records of one place say the same.
pub(crate) fn same_transfer(a: &Transfer, b: &Transfer) -> bool {
    a.tx_hash == b.tx_hash
        && a.from == b.from
        && a.to == b.to
        && a.asset == b.asset
        && a.amount == b.amount
        && (a.timestamp == 0 || b.timestamp == 0 || a.timestamp == b.timestamp)
}

/// Whether an imported transfer `new` can be stored beside `stored`; `None` if it can.
pub(crate) fn conflict(stored: &Transfer, new: &Transfer) -> Option<Conflict> {
    if stored.block_number != new.block_number || stored.tx_index != new.tx_index {
        return None;
    }
    if stored.position == new.position {
        return (!same_transfer(stored, new)).then_some(Conflict::SamePlace);
    }
    let calls = matches!(stored.position, Position::Call { .. })
        && matches!(new.position, Position::Call { .. });
    (calls && stored.tx_hash != new.tx_hash).then_some(Conflict::OtherTransaction)
}

pub(crate) fn error(index: usize, new: &Transfer, stored: &Transfer, why: Conflict) -> StoreError {
    StoreError::ImportConflict {
        index,
        new: Box::new(new.clone()),
        stored: Box::new(stored.clone()),
        why,
    }
}

/// Checks an import against itself: the chain id, then the rules above between its own
/// transfers. Returns the indexes to write (a transfer repeated exactly is written once),
/// and for each block and transaction index with call transfers, one of them (`index`), to
/// check against what is stored.
pub(crate) fn check_batch(
    chain_id: u64,
    transfers: &[Transfer],
) -> Result<(Vec<usize>, Vec<usize>), StoreError> {
    if let Some(t) = transfers.iter().find(|t| t.chain_id != chain_id) {
        return Err(StoreError::Invalid {
            chain_id,
            number: t.block_number,
            what: format!("transfer {} is for chain {}", t.tx_hash, t.chain_id),
        });
    }
    let mut places: HashMap<(u64, u32, &Position), usize> = HashMap::new();
    let mut txs: HashMap<(u64, u32), (B256, usize)> = HashMap::new();
    let mut keep = Vec::with_capacity(transfers.len());
    let mut calls = Vec::new();
    for (i, t) in transfers.iter().enumerate() {
        match places.entry((t.block_number, t.tx_index, &t.position)) {
            Entry::Occupied(e) => {
                let first = &transfers[*e.get()];
                if !same_transfer(first, t) {
                    return Err(error(i, t, first, Conflict::SamePlace));
                }
            }
            Entry::Vacant(e) => {
                e.insert(i);
                keep.push(i);
            }
        }
        if matches!(t.position, Position::Call { .. }) {
            match txs.entry((t.block_number, t.tx_index)) {
                Entry::Occupied(e) if e.get().0 != t.tx_hash => {
                    let first = e.get().1;
                    return Err(error(i, t, &transfers[first], Conflict::OtherTransaction));
                }
                Entry::Occupied(_) => {}
                Entry::Vacant(e) => {
                    e.insert((t.tx_hash, i));
                    calls.push(i);
                }
            }
        }
    }
    Ok((keep, calls))
}
