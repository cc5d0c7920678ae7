//! What [`UtxoStore::utxos`] read, kept for the next bulk write's checks.
//!
//! A backfill reads each block's outpoints (the outputs it spends, to resolve its inputs, and
//! the outputs it creates, to check they are new) while it gathers a call, and the call's
//! write ([`UtxoStore::apply_blocks`]) checks the same outpoints against the index again: the
//! store does not take the caller's word for what it holds. Those second lookups were a third
//! of the write's time (docs/BENCHMARKS.md, "Bitcoin: backfill from a blocks directory"). An
//! entry here is what a read found at an outpoint (the record's bytes, or nothing), and the
//! write takes it instead of looking the outpoint up, when the entry is valid for the state
//! the write checks against.
//!
//! Valid means read from the newest state of the coins. Every write that changes coins, once
//! its change is readable, forgets the entries of the coins it changed (a bulk write, which
//! knows them) or all entries (any other write), and bumps the version, in one step under the
//! lock. A read takes the version before its snapshot (or the version a bulk write pinned its
//! snapshot at) and records its entries only while that version is still current: a read of a
//! state older than a write is recorded before that write's step (and what the write changed
//! is forgotten by it) or not at all. Entries are taken out when used, and at most
//! [`MAX_ENTRIES`] are kept (beyond, reads are not recorded): the write looks up what is
//! missing, as before.
//!
//! [`UtxoStore::utxos`]: super::super::UtxoStore::utxos
//! [`UtxoStore::apply_blocks`]: super::super::UtxoStore::apply_blocks

use std::sync::{Mutex, PoisonError};

use super::super::OutPointKey;

/// Entries kept at most: a backfill's call of 100,000 transactions reads 300,000 to 500,000
/// outpoints; an entry is about 100 bytes (its key, and a record's bytes where an output
/// was found), so at most about 100 MB.
pub(super) const MAX_ENTRIES: usize = 1_000_000;

type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// What a read found at an outpoint: the record's bytes, or `None` (no unspent output).
pub(super) type Found = Option<Vec<u8>>;

#[derive(Default)]
struct Inner {
    version: u64,
    coins: Map<(u64, OutPointKey), Found>,
}

/// See the module documentation.
#[derive(Default)]
pub(super) struct Memo(Mutex<Inner>);

/// What a write changed.
pub(super) enum Changed<'a> {
    /// These coins of this chain.
    Coins(u64, &'a [OutPointKey]),
    /// Anything.
    All,
}

impl Memo {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The version a read must take before its snapshot.
    pub(super) fn version(&self) -> u64 {
        self.inner().version
    }

    /// Records what a read of chain `chain_id` at `version` found, if that version is still
    /// current.
    pub(super) fn record(
        &self,
        version: u64,
        chain_id: u64,
        found: impl ExactSizeIterator<Item = (OutPointKey, Found)>,
    ) {
        let mut m = self.inner();
        if m.version != version || m.coins.len() + found.len() > MAX_ENTRIES {
            return;
        }
        m.coins.extend(found.map(|(op, f)| ((chain_id, op), f)));
    }

    /// Takes the entries of `ops` out (`None` where there is none).
    pub(super) fn take<'a>(
        &self,
        chain_id: u64,
        ops: impl Iterator<Item = &'a OutPointKey>,
    ) -> Vec<Option<Found>> {
        let mut m = self.inner();
        if m.coins.is_empty() {
            return ops.map(|_| None).collect();
        }
        ops.map(|op| m.coins.remove(&(chain_id, *op))).collect()
    }

    /// A write changed coins, and the change is readable: forgets what it changed, and
    /// refuses the records of reads made before.
    pub(super) fn changed(&self, what: Changed<'_>) {
        let mut m = self.inner();
        match what {
            Changed::Coins(chain_id, ops) => {
                if !m.coins.is_empty() {
                    for op in ops {
                        m.coins.remove(&(chain_id, *op));
                    }
                }
            }
            Changed::All => m.coins = Map::default(),
        }
        m.version += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(n: u8) -> OutPointKey {
        OutPointKey {
            txid: alloy_primitives::B256::repeat_byte(n),
            vout: 0,
        }
    }

    #[test]
    fn a_read_older_than_a_write_is_not_recorded() {
        let memo = Memo::default();
        let v = memo.version();
        memo.changed(Changed::Coins(1, &[op(9)]));
        memo.record(v, 1, [(op(1), None)].into_iter());
        assert_eq!(memo.take(1, [op(1)].iter()), vec![None], "refused");
        let v = memo.version();
        memo.record(v, 1, [(op(1), Some(vec![1])), (op(2), None)].into_iter());
        memo.changed(Changed::Coins(1, &[op(2)]));
        assert_eq!(
            memo.take(1, [op(1), op(2), op(1)].iter()),
            vec![Some(Some(vec![1])), None, None],
            "op 1 kept, taken once; op 2 forgotten by the write"
        );
        let v = memo.version();
        memo.record(v, 1, [(op(3), None)].into_iter());
        assert_eq!(memo.take(2, [op(3)].iter()), vec![None], "another chain's");
        memo.changed(Changed::All);
        assert_eq!(memo.take(1, [op(3)].iter()), vec![None], "all forgotten");
    }
}
