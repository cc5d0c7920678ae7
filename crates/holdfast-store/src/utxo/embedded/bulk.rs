//! Bulk writes for backfills ([`UtxoStore::apply_blocks`]): many blocks resolved in memory
//! and written as sorted tables.
//!
//! A block written one at a time puts each of its keys into fjall's memtable: txids,
//! addresses and outpoints are hash outputs, so every insert lands at a random place of the
//! skip list (most of the write's time, docs/BENCHMARKS.md). Here a call's blocks are first
//! checked and applied in order against the index and an in-memory overlay of the coins and
//! cluster entries they change, then:
//!
//! 1. the transactions, txid, address and spent-by entries (keys that no other block
//!    writes) go in as one sorted table run per keyspace (fjall's ingestion: no memtable, no
//!    journal, durable when it returns);
//! 2. the net coin changes (an output created and spent within the call never reaches the
//!    disk), the cluster entries, the blocks and the counts go in one atomic, fsynced write.
//!
//! The head moves in step 2 only, so the index is always a complete checkpoint. A call
//! interrupted before step 2 has changed no coin: made again with the same blocks (ingestion
//! resumes from the head), it writes the same entries under the same keys and the result is
//! the store an uninterrupted call gives. Until then the entries it did write are in the
//! keyspaces above the head (reads by address, txid or spent output may show them); they are
//! only written for blocks far below the node's tip, which ingestion fetches again.
//!
//! No undo records are written: these blocks cannot be unwound. Undo records of older
//! blocks that a store keeping the newest N ([`super::KeepUndo`]) would drop with these
//! blocks are dropped in step 2.

use fjall::Readable;
use holdfast_primitives::BlockRef;

use super::super::cluster::{self, Node};
use super::super::{
    OutPointKey, UtxoChanges, UtxoRecord, UtxoStore, check_consecutive, counted, not_held,
    pruned_by, stored_after_new, validate,
};
use super::{
    BLOCKS, COINS, EmbeddedUtxoStore, META, UF_UNDO, UNDO, block_key, coin_key, record_bytes,
    stage_node, stage_txs,
};
use crate::group_commit::Batch;
use crate::{Applied, StoreError, admit, codec};

/// foldhash with a random seed per process, as the transfer store's buffer: not predictable
/// from outside (txids and addresses come from the chain), and cheaper than std's SipHash.
type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A coin the call changed: its content after the blocks so far (`None`: spent), and whether
/// the index held it before the call (only then does spending it delete a key).
struct Coin {
    now: Option<UtxoRecord>,
    stored: bool,
}

impl EmbeddedUtxoStore {
    /// [`UtxoStore::apply_blocks`]; `stop_after` interrupts it after that many keyspaces of
    /// step 1 (tests).
    ///
    /// [`UtxoStore::apply_blocks`]: super::super::UtxoStore::apply_blocks
    pub(super) fn write_bulk(
        &self,
        chain_id: u64,
        blocks: &[(BlockRef, UtxoChanges)],
        stop_after: Option<usize>,
    ) -> Result<Vec<Applied>, StoreError> {
        check_consecutive(chain_id, blocks)?;
        for (b, c) in blocks {
            validate(chain_id, b, c)?;
        }
        let guard = self.group.lock();
        self.check_clusters(chain_id)?;
        let mut out = Vec::with_capacity(blocks.len());
        let mut below: Option<BlockRef> = None;
        let mut todo = Vec::new();
        for (b, c) in blocks {
            let new = admit(chain_id, b, below, |n| self.block(chain_id, n))?;
            if !new && !todo.is_empty() {
                // admit saw it stored: only a prefix of the call can be.
                return Err(stored_after_new(chain_id, b.number));
            }
            out.push(if new {
                todo.push((b, c));
                Applied::Written
            } else {
                Applied::AlreadyPresent
            });
            below = Some(*b);
        }
        let Some(&(first, _)) = todo.first() else {
            return Ok(out);
        };
        if let Some(head) = self.head(chain_id)?
            && head.number + 1 != first.number
        {
            return Err(StoreError::Invalid {
                chain_id,
                number: first.number,
                what: format!(
                    "the index is at block {}: the next block must be {}",
                    head.number,
                    head.number + 1
                ),
            });
        }
        let mut counts = self.read_counts(chain_id)?;
        let txs: usize = todo.iter().map(|(_, c)| c.transactions.len()).sum();
        let mut coins = Map::with_capacity_and_hasher(3 * txs, Default::default());
        // Cluster entries: as they were before the call (first read), and as they are now.
        let mut nodes_before: Map<String, Option<Node>> = Map::default();
        let mut nodes: Map<String, Node> = Map::default();
        let mut history = Batch::default();
        for &(b, c) in &todo {
            self.apply_coins(chain_id, b.number, c, &mut coins)?;
            counts = counted(counts, c)?;
            let groups = cluster::merges(&c.transactions);
            if !groups.is_empty() {
                let uf = cluster::apply(&groups, |a| match nodes.get(a) {
                    Some(n) => Ok(Some(n.clone())),
                    None => match nodes_before.get(a) {
                        Some(n) => Ok(n.clone()),
                        None => self.read_node(chain_id, a),
                    },
                })?;
                for (a, old) in uf.old {
                    if !nodes.contains_key(&a) {
                        nodes_before.entry(a).or_insert(old);
                    }
                }
                nodes.extend(uf.new);
            }
            stage_txs(&mut history, chain_id, b.number, &c.transactions, false);
        }
        // Step 1: the history, as sorted tables, durable before the head moves.
        self.dir.ingest(history, stop_after)?;
        // Step 2: everything else, one atomic write.
        let mut batch = Batch::default();
        for (op, coin) in coins {
            match coin.now {
                Some(r) => batch.put(COINS, coin_key(chain_id, &op), record_bytes(&r)),
                None if coin.stored => batch.del(COINS, coin_key(chain_id, &op)),
                None => {}
            }
        }
        for (a, n) in &nodes {
            let before = nodes_before.get(a).and_then(Option::as_ref);
            stage_node(&mut batch, chain_id, a, before, Some(n));
        }
        let last = todo.last().map_or(first.number, |(b, _)| b.number);
        self.prune_undo(&mut batch, chain_id, first.number, last)?;
        for &(b, _) in &todo {
            batch.put(BLOCKS, block_key(chain_id, b.number), codec::block_value(b));
        }
        batch.put(META, chain_id.to_be_bytes(), Self::counts_value(counts));
        self.commit(guard, batch)?;
        Ok(out)
    }

    /// Checks block `number`'s coin changes against the index and the call's earlier blocks
    /// (`coins`) as [`UtxoStore::apply_block`] does, and applies them to `coins`.
    ///
    /// [`UtxoStore::apply_block`]: super::super::UtxoStore::apply_block
    fn apply_coins(
        &self,
        chain_id: u64,
        number: u64,
        c: &UtxoChanges,
        coins: &mut Map<OutPointKey, Coin>,
    ) -> Result<(), StoreError> {
        for (what, list) in [("spent", &c.spent), ("replaced", &c.replaced)] {
            for (op, r) in list {
                let stored = match coins.get(op) {
                    Some(coin) if coin.now.as_ref() == Some(r) => coin.stored,
                    Some(coin) => {
                        return Err(not_held(chain_id, number, what, op, coin.now.is_some()));
                    }
                    None => match self.read_coin(chain_id, op)? {
                        Some(held) if &held == r => true,
                        held => return Err(not_held(chain_id, number, what, op, held.is_some())),
                    },
                };
                coins.insert(*op, Coin { now: None, stored });
            }
        }
        // A replaced output is spent above, so an output still held here is created twice.
        for (op, r) in &c.created {
            let (held, stored) = match coins.get(op) {
                Some(coin) => (coin.now.is_some(), coin.stored),
                None => (self.read_coin(chain_id, op)?.is_some(), false),
            };
            if held {
                return Err(StoreError::Invalid {
                    chain_id,
                    number,
                    what: format!(
                        "created output {op} is already unspent in the index and not listed as replaced"
                    ),
                });
            }
            coins.insert(
                *op,
                Coin {
                    now: Some(r.clone()),
                    stored,
                },
            );
        }
        Ok(())
    }

    /// Stages deleting the undo records (coins and clusters) that writing blocks
    /// `first..=last` one by one would drop ([`pruned_by`]): the ones the index holds.
    fn prune_undo(
        &self,
        batch: &mut Batch,
        chain_id: u64,
        first: u64,
        last: u64,
    ) -> Result<(), StoreError> {
        let Some(to) = pruned_by(last, self.keep_undo) else {
            return Ok(());
        };
        let from = pruned_by(first, self.keep_undo).unwrap_or(0);
        let snap = self.dir.db.snapshot();
        for space in [UNDO, UF_UNDO] {
            for g in snap.range(
                &self.dir.spaces[space],
                block_key(chain_id, from)..=block_key(chain_id, to),
            ) {
                let k = g.key().map_err(|e| self.dir.err(e))?;
                batch.del(space, k.to_vec());
            }
        }
        Ok(())
    }
}
