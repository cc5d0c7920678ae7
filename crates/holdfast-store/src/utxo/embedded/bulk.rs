//! Bulk writes for backfills ([`UtxoStore::apply_blocks`]): many blocks resolved in memory
//! and written as sorted tables.
//!
//! A block written one at a time puts each of its keys into fjall's memtable: txids,
//! addresses and outpoints are hash outputs, so every insert lands at a random place of the
//! skip list (most of the write's time, docs/BENCHMARKS.md), and every later read of a coin
//! searches it again. Here a call's blocks are first checked and applied in order against the
//! index and an in-memory overlay of the coins and cluster entries they change (an output
//! created and spent within the call never reaches the disk), then:
//!
//! 1. a record (meta key chain + `k`) of the call's last block and of the write that will
//!    move the head (cluster entries, blocks, counts, undo records to drop) is written and
//!    fsynced;
//! 2. the transactions, txid, address and spent-by entries (keys no other block writes) go
//!    in as one sorted table run per keyspace, `utxo.txs` first (fjall's ingestion: no
//!    memtable, no journal, durable when it returns);
//! 3. the net coin changes go in as one sorted table run, with a mark (the key of outpoint
//!    `ff…ff:4294967295`, which no output has) saying the coins are at the call's last block:
//!    one ingestion, so the coins and the mark change together;
//! 4. the recorded write and the record's deletion, one atomic fsynced write: the head moves.
//!
//! So the head, the counts and the blocks move together, last. Every state a crash can leave
//! after step 1 holds the record, and opening the index settles it
//! (`EmbeddedUtxoStore::finish_bulk`; so does the chain's next write). A crash before step 3
//! completes leaves the coins as they were: the history entries above the head are deleted
//! (derived from the transactions, ingested first) with the record, and the call made again
//! (ingestion resumes from the head) writes the same entries under the same keys. A crash
//! between steps 3 and 4 leaves the coins at the call's last block: the mark equals the
//! record's block, and the recorded write is made. Either way the index is byte for byte the
//! one an uninterrupted call gives (tested by stopping the call before each step and
//! reopening).
//!
//! No reader sees anything of the call's blocks before the head moves: from step 1 until
//! step 4 (or until an interrupted call is settled) readers read the snapshot taken before
//! step 1 (`EmbeddedUtxoStore::view`), and after a crash the open settles the call before
//! anything is read (tested at every step, before and after reopening).
//!
//! No undo records are written for blocks below the caller's `undo_from`: those cannot be
//! unwound. Blocks from `undo_from` on (a backfill's last blocks, which a reorg may reach) get
//! the records [`UtxoStore::apply_block`] writes, byte for byte, with the write that moves the
//! head (step 4, and so in the record of step 1). Undo records of older blocks that a store
//! keeping the newest N ([`super::KeepUndo`]) would drop with these blocks are dropped in step
//! 4, and the call's own records such a store would drop are not written. Unwinding deletes
//! the mark: the coins are then no longer at the block it names.
//!
//! [`UtxoStore::apply_block`]: super::super::UtxoStore::apply_block

use fjall::Readable;
use holdfast_primitives::BlockRef;

use super::super::cluster::{self, Node};
use super::super::txs::{self, TxRecord};
use super::super::{
    OutPointKey, Undo, UtxoChanges, UtxoRecord, bytes, check_consecutive, counted, not_held,
    pruned_by, stored_after_new, validate,
};
use super::{
    BLOCKS, COINS, EmbeddedUtxoStore, META, TXS, UF_UNDO, UNDO, block_key, coin_key, stage_node,
    stage_txs,
};
use crate::group_commit::{Batch, Run};
use crate::{Applied, StoreError, admit, codec};

/// The meta key of a bulk write's record (chain, `k`): the last block and the write that
/// moves the head, kept while the coins change.
pub(super) fn pending_key(chain_id: u64) -> Vec<u8> {
    let mut k = chain_id.to_be_bytes().to_vec();
    k.push(b'k');
    k
}

/// The key in `utxo.coins` of the block the chain's coins were last written in bulk at:
/// outpoint `ff…ff:4294967295`, which no output has (an output index is below the number of
/// outputs of a transaction, which fits a block).
pub(super) fn coins_mark_key(chain_id: u64) -> Vec<u8> {
    let mut k = chain_id.to_be_bytes().to_vec();
    k.extend_from_slice(&[0xff; 36]);
    k
}

fn encode_pending(last: u64, batch: &Batch) -> Vec<u8> {
    let mut out = last.to_be_bytes().to_vec();
    for (space, k, v) in &batch.ops {
        out.push(*space as u8);
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k);
        match v {
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                out.extend_from_slice(v);
            }
            None => out.push(0),
        }
    }
    out
}

fn decode_pending(v: &[u8]) -> Result<(u64, Batch), StoreError> {
    let mut r = crate::codec::Reader(v);
    let last = r.u64()?;
    let mut batch = Batch::default();
    while !r.0.is_empty() {
        let space = usize::from(r.u8()?);
        if space >= super::SPACES.len() {
            return Err(crate::codec::corrupt("bulk write record: keyspace"));
        }
        let n = r.u32()? as usize;
        let k = r.take(n)?.to_vec();
        match r.u8()? {
            0 => batch.del(space, k),
            1 => {
                let n = r.u32()? as usize;
                let v = r.take(n)?.to_vec();
                batch.put(space, k, v);
            }
            _ => return Err(crate::codec::corrupt("bulk write record: operation")),
        }
    }
    Ok((last, batch))
}

/// What a test makes of a bulk write ([`EmbeddedUtxoStore::write_bulk`]).
#[derive(Clone, Copy)]
pub(super) enum Test<'a> {
    /// Nothing: the write as the product makes it.
    No,
    /// Stopped with an error before this step, as a crash would stop it.
    #[cfg_attr(not(feature = "test-utils"), allow(dead_code))]
    StopBefore(usize),
    /// This read made before step 5 (the coins) or 6 (the head's write), readers on the
    /// pinned snapshot, as a reader on another thread may make it.
    #[cfg_attr(not(feature = "test-utils"), allow(dead_code))]
    ReadBefore(usize, &'a dyn Fn(&EmbeddedUtxoStore)),
}

/// foldhash with a random seed per process, as the transfer store's buffer: not predictable
/// from outside (txids and addresses come from the chain), and cheaper than std's SipHash.
type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A coin the call changed: its content after the blocks so far (`None`: spent; borrowed from
/// the call's changes, not copied), and whether the index held it before the call (only then
/// does spending it delete a key).
struct Coin<'a> {
    now: Option<&'a UtxoRecord>,
    stored: bool,
}

impl EmbeddedUtxoStore {
    /// [`UtxoStore::apply_blocks`], keeping the undo records of blocks from `undo_from` on
    /// ([`UtxoStore::apply_blocks_keeping_undo`]; `u64::MAX`: none); `stop_after` stops it with an error before a step, as a
    /// crash would (tests: 0 before the record, 1 to 4 before each history keyspace of step
    /// 2, 5 before the coins, 6 before the head's write; nothing settled until the next open
    /// or write, and readers meanwhile read the index as it was before the call).
    ///
    /// [`UtxoStore::apply_blocks`]: super::super::UtxoStore::apply_blocks
    /// [`UtxoStore::apply_blocks_keeping_undo`]: super::super::UtxoStore::apply_blocks_keeping_undo
    pub(super) fn write_bulk(
        &self,
        chain_id: u64,
        blocks: &[(BlockRef, UtxoChanges)],
        undo_from: u64,
        test: Test<'_>,
    ) -> Result<Vec<Applied>, StoreError> {
        let stop_after = match test {
            Test::StopBefore(step) => Some(step),
            _ => None,
        };
        check_consecutive(chain_id, blocks)?;
        for (b, c) in blocks {
            validate(chain_id, b, c)?;
        }
        let guard = self.group.lock();
        self.finish_bulk(chain_id)?;
        self.check_clusters(None, chain_id)?;
        let mut out = Vec::with_capacity(blocks.len());
        let mut below: Option<BlockRef> = None;
        let mut todo = Vec::new();
        for (b, c) in blocks {
            let new = admit(chain_id, b, below, |n| self.block_at(None, chain_id, n))?;
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
        super::super::follows_head(chain_id, self.head_at(None, chain_id)?, first.number)?;
        let mut counts = self.read_counts(None, chain_id)?;
        let txs: usize = todo.iter().map(|(_, c)| c.transactions.len()).sum();
        let mut coins = Map::with_capacity_and_hasher(3 * txs, Default::default());
        // Cluster entries: as they were before the call (first read), and as they are now.
        let mut nodes_before: Map<String, Option<Node>> = Map::default();
        let mut nodes: Map<String, Node> = Map::default();
        // Sized once: regrowing a buffer of a hundred megabytes copies it onto fresh pages.
        // A little above what the entries take for standard scripts: per input, its part of
        // the transaction's record (outpoint, value, address: ~90 bytes), its address entry
        // (~150) and its spent-by entry (~92); per output, its part of the record (~80) and
        // its address entry (~150); per transaction, its key, txid entry and the rest (~110).
        let bytes: usize = todo
            .iter()
            .flat_map(|(_, c)| &c.transactions)
            .map(|t| 128 + 340 * t.inputs.len() + 240 * t.outputs.len())
            .sum();
        let mut history = Run::with_capacity(bytes);
        let last = todo.last().map_or(first.number, |(b, _)| b.number);
        // Undo records kept: from `undo_from` on, but not those the call's own later blocks
        // would drop (written one by one, each block drops the record `keep_undo` below it).
        let keeps_undo = |n: u64| n >= undo_from && pruned_by(last, self.keep_undo) < Some(n);
        // What moves the head, staged before anything is written.
        let mut head = Batch::default();
        for &(b, c) in &todo {
            self.apply_coins(chain_id, b.number, c, &mut coins)?;
            counts = counted(counts, c)?;
            let groups = cluster::merges(&c.transactions);
            let undo = keeps_undo(b.number);
            if !groups.is_empty() || undo {
                let uf = cluster::apply(&groups, |a| match nodes.get(a) {
                    Some(n) => Ok(Some(n.clone())),
                    None => match nodes_before.get(a) {
                        Some(n) => Ok(n.clone()),
                        None => self.read_node(None, chain_id, a),
                    },
                })?;
                if undo {
                    // As `apply_block` keeps them: the coins to restore and delete, and each
                    // cluster entry the block changed as it was before it.
                    let key = block_key(chain_id, b.number);
                    head.put(UNDO, key.clone(), bytes::undo(&Undo::of(c)));
                    head.put(UF_UNDO, key, cluster::encode_undo(&uf.old));
                }
                for (a, old) in uf.old {
                    if !nodes.contains_key(&a) {
                        nodes_before.entry(a).or_insert(old);
                    }
                }
                nodes.extend(uf.new);
            }
            stage_txs(&mut history, chain_id, b.number, &c.transactions, false);
        }
        for (a, n) in &nodes {
            let before = nodes_before.get(a).and_then(Option::as_ref);
            stage_node(&mut head, chain_id, a, before, Some(n));
        }
        self.prune_undo(&mut head, chain_id, first.number, last)?;
        for &(b, _) in &todo {
            head.put(BLOCKS, block_key(chain_id, b.number), codec::block_value(b));
        }
        head.put(META, chain_id.to_be_bytes(), Self::counts_value(counts));
        let touched: Vec<OutPointKey> = coins.keys().copied().collect();
        let mut coin_ops = Run::with_capacity(120 * coins.len());
        let mut record = Vec::new();
        for (op, coin) in coins {
            match coin.now {
                Some(r) => {
                    record.clear();
                    bytes::record(r, &mut record);
                    coin_ops.put(COINS, &coin_key(chain_id, &op), &record);
                }
                None if coin.stored => coin_ops.del(COINS, &coin_key(chain_id, &op)),
                None => {}
            }
        }
        coin_ops.put(COINS, &coins_mark_key(chain_id), &last.to_be_bytes());
        let stopped = |step: usize| -> Result<(), StoreError> {
            match test {
                Test::StopBefore(n) if n == step => {
                    Err(self.dir.err(format!("stopped before step {step} (test)")))
                }
                Test::ReadBefore(n, read) if n == step => {
                    read(self);
                    Ok(())
                }
                _ => Ok(()),
            }
        };
        stopped(0)?;
        // Readers read the index as it is now until the head moves or the write is settled.
        self.pin();
        let written = (|| {
            // Step 1: the record, fsynced before anything else is written.
            let mut record = Batch::default();
            record.put(META, pending_key(chain_id), encode_pending(last, &head));
            self.dir.write(record)?;
            self.dir.persist()?;
            // Step 2: the history, as sorted tables, one keyspace after another (stops 1 to 4
            // before each).
            self.dir
                .ingest(history, stop_after.and_then(|n| n.checked_sub(1)))?;
            // Step 3: the coins, as sorted tables, with the mark of the block they are at, in
            // one ingestion (atomic for the keyspace).
            stopped(5)?;
            let ingested = self.dir.ingest(coin_ops, None);
            // Readable now (or perhaps, if it failed: then everything is forgotten below).
            self.memo
                .changed(super::memo::Changed::Coins(chain_id, &touched));
            ingested?;
            stopped(6)
        })();
        if let Err(e) = written {
            self.memo.changed(super::memo::Changed::All);
            // The record says how to settle what the failure left (after a crash: on open).
            // A test's stop is a crash: left, pinned, for the next write or open.
            if stop_after.is_none() {
                let _ = self.finish_bulk(chain_id);
            }
            return Err(e);
        }
        // Step 4: the head moves and the record goes, in one write; readers see it from now.
        head.del(META, pending_key(chain_id));
        self.dir.write(head)?;
        self.unpin();
        let ticket = self.group.written(guard);
        self.group.sync_up_to(ticket, || self.dir.persist())?;
        Ok(out)
    }

    /// Settles a bulk write of `chain_id` that stopped between its record (step 1) and the
    /// write that moves the head (step 4): if the coins reached the recorded block, the
    /// recorded write is made (forward); otherwise the history entries it ingested above the
    /// head are deleted with the record, and the head, coins, counts and history are as
    /// before the call (back). Then readers read the newest state again. Nothing to do
    /// without a record.
    pub(super) fn finish_bulk(&self, chain_id: u64) -> Result<(), StoreError> {
        let Some(v) = self.dir.read(META, &pending_key(chain_id))? else {
            self.unpin();
            return Ok(());
        };
        let (last, mut batch) = decode_pending(&v)?;
        let at = self
            .dir
            .read(COINS, &coins_mark_key(chain_id))?
            .map(|m| crate::codec::Reader(&m).u64())
            .transpose()?;
        let forward = at == Some(last);
        if !forward {
            batch = self.stage_above_head(chain_id)?;
        }
        tracing::warn!(
            target: "store::utxo",
            chain_id,
            block = last,
            forward,
            "finishing an interrupted bulk write"
        );
        batch.del(META, pending_key(chain_id));
        let written = self.dir.write(batch);
        self.memo.changed(super::memo::Changed::All);
        written?;
        self.dir.persist()?;
        self.unpin();
        Ok(())
    }

    /// Stages deleting the history entries (transactions, txid, address and spent-by
    /// entries) stored above the chain's head: an interrupted bulk write's. They are derived
    /// from its transactions, which it ingests first (step 2 goes in keyspace order, `utxo.txs`
    /// first, each keyspace whole or not at all): no other entry is there without them.
    fn stage_above_head(&self, chain_id: u64) -> Result<Batch, StoreError> {
        let from = match self.head_at(None, chain_id)? {
            Some(b) => b.number.checked_add(1),
            None => Some(0),
        };
        let mut batch = Batch::default();
        let Some(from) = from else {
            return Ok(batch);
        };
        let snap = self.dir.db.snapshot();
        let end = crate::codec::prefix_end(&chain_id.to_be_bytes());
        let mut block: Option<(u64, Vec<TxRecord>)> = None;
        for g in snap.range(&self.dir.spaces[TXS], block_key(chain_id, from)..end) {
            let (k, v) = g.into_inner().map_err(|e| self.dir.err(e))?;
            let height = crate::codec::Reader(&k[8..]).u64()?;
            let tx = txs::decode(&v)?;
            match &mut block {
                Some((h, list)) if *h == height => list.push(tx),
                _ => {
                    if let Some((h, list)) = block.replace((height, vec![tx])) {
                        stage_txs(&mut batch, chain_id, h, &list, true);
                    }
                }
            }
        }
        if let Some((h, list)) = block {
            stage_txs(&mut batch, chain_id, h, &list, true);
        }
        Ok(batch)
    }

    /// Checks block `number`'s coin changes against the index and the call's earlier blocks
    /// (`coins`) as [`UtxoStore::apply_block`] does, and applies them to `coins`.
    ///
    /// [`UtxoStore::apply_block`]: super::super::UtxoStore::apply_block
    fn apply_coins<'a>(
        &self,
        chain_id: u64,
        number: u64,
        c: &'a UtxoChanges,
        coins: &mut Map<OutPointKey, Coin<'a>>,
    ) -> Result<(), StoreError> {
        let mut scratch = Vec::new();
        // What the reads that gathered the block found (`memo`), where still valid.
        let all = c.spent.iter().chain(&c.replaced).chain(&c.created);
        let mut memo = self.memo.take(chain_id, all.map(|(op, _)| op)).into_iter();
        for (what, list) in [("spent", &c.spent), ("replaced", &c.replaced)] {
            for (op, r) in list {
                let found = memo.next().flatten();
                let stored = match coins.get(op) {
                    Some(coin) if coin.now == Some(r) => coin.stored,
                    Some(coin) => {
                        return Err(not_held(chain_id, number, what, op, coin.now.is_some()));
                    }
                    None => match self.holds(chain_id, op, r, found, &mut scratch)? {
                        Some(true) => true,
                        held => return Err(not_held(chain_id, number, what, op, held.is_some())),
                    },
                };
                coins.insert(*op, Coin { now: None, stored });
            }
        }
        // A replaced output is spent above, so an output still held here is created twice.
        for (op, r) in &c.created {
            let found = memo.next().flatten();
            let (held, stored) = match coins.get(op) {
                Some(coin) => (coin.now.is_some(), coin.stored),
                // Read as absent while gathering: no lookup. Anything else is looked up.
                None if found == Some(None) => (false, false),
                None => (self.read_coin(None, chain_id, op)?.is_some(), false),
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
                    now: Some(r),
                    stored,
                },
            );
        }
        Ok(())
    }

    /// Whether the index holds exactly `r` at `op` (`None`: no output there), from the newest
    /// state. The stored bytes are compared with `r`'s encoding (in `scratch`), which is
    /// canonical (one encoding per record, and decoding checks every flag and length): no
    /// copy, no decoding, for every output a backfill spends. Bytes that differ are decoded,
    /// so that a corrupt record is an error as in [`EmbeddedUtxoStore::read_coin`]. `memo`:
    /// what a read of the newest state found there (`memo`), if anything is known: the same
    /// bytes, or no output, answer without a lookup; anything else is looked up.
    fn holds(
        &self,
        chain_id: u64,
        op: &OutPointKey,
        r: &UtxoRecord,
        memo: Option<super::memo::Found>,
        scratch: &mut Vec<u8>,
    ) -> Result<Option<bool>, StoreError> {
        match memo {
            Some(None) => return Ok(None),
            Some(Some(v)) => {
                scratch.clear();
                super::super::bytes::record(r, scratch);
                if v == *scratch {
                    return Ok(Some(true));
                }
            }
            None => {}
        }
        let Some(v) = self.dir.spaces[COINS]
            .get(coin_key(chain_id, op))
            .map_err(|e| self.dir.err(e))?
        else {
            return Ok(None);
        };
        scratch.clear();
        super::super::bytes::record(r, scratch);
        if *v == **scratch {
            return Ok(Some(true));
        }
        Ok(self.read_coin(None, chain_id, op)?.map(|_| false))
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
