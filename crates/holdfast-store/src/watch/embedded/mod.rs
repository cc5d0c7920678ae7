//! The watch's state in a fjall directory (`<data-dir>/store/watch`), for one process.
//! Writes are serialized by the writer lock and committed as one atomic batch across the
//! keyspaces, fsynced before they are reported, with group commit (shared with the guard
//! service's store, [`crate::group_commit`]). The outbox head is read and advanced under the
//! writer lock, so sequence numbers follow commit order; readers of the outbox see only
//! numbers up to the last fsynced commit's (`durable`), so a number shown to a reader is
//! never lost and reused after a crash.
//!
//! | keyspace | key | value |
//! |---|---|---|
//! | `watch.checkpoints` | chain | block number, hash, parent, timestamp, lowest remembered block, state |
//! | `watch.blocks` | chain, number | hash, parent, timestamp (processed blocks not yet forgotten) |
//! | `watch.alerts` | id | the alert: place, rank, status, acknowledgement, body |
//! | `watch.ranks` | rank | chain, severity, status, acknowledged, rule, id (newest-first index with the filter fields) |
//! | `watch.by_block` | chain, number, id | — (alerts of remembered blocks, for unwinds) |
//! | `watch.outbox` | seq | kind, alert id, body |
//! | `watch.meta` | `h` / `s` sink / `l` chain / `d` chain, owners' hash | outbox head / sink cursor / lease (expiry, token, owner) / Safe search (from, to, owners, Safes) |
//!
//! An alert's rank is the sequence number of its last `raised` event: the alerts list is
//! newest first by rank.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use alloy_primitives::Address;
use fjall::Readable;
use holdfast_primitives::BlockRef;

use super::{
    AlertEventKind, AlertQuery, AlertStatus, BlockCommit, Lease, NewAlert, OutboxEvent, SafeSearch,
    SinkCursor, StoredAlert, WatchCheckpoint, WatchStore, check_child, check_commit, check_fence,
    check_name, check_query, check_who, next_lease, passes, past_head, unknown_before,
};
use crate::codec::{self, Reader, corrupt, prefix_end};
use crate::group_commit::{Batch, FjallDir, GroupCommit, WriterGuard};
use crate::{StoreError, check_limit};

mod bytes;
use bytes::*;

const SPACES: [&str; 7] = [
    "watch.checkpoints",
    "watch.blocks",
    "watch.alerts",
    "watch.ranks",
    "watch.by_block",
    "watch.outbox",
    "watch.meta",
];
const CHECKPOINTS: usize = 0;
const BLOCKS: usize = 1;
const ALERTS: usize = 2;
const RANKS: usize = 3;
const BY_BLOCK: usize = 4;
const OUTBOX: usize = 5;
const META: usize = 6;

/// The embedded watch state.
pub struct EmbeddedWatchStore {
    dir: FjallDir,
    group: GroupCommit,
    /// The outbox head as of the last fsynced commit: what readers of the outbox may see.
    durable: AtomicU64,
    #[cfg(any(test, feature = "test-utils"))]
    fail_next: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for EmbeddedWatchStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedWatchStore")
            .field("path", &self.dir.path)
            .finish_non_exhaustive()
    }
}

/// A checkpoint as stored, with the lowest processed block still remembered.
struct Stored {
    checkpoint: WatchCheckpoint,
    lowest: u64,
}

/// One commit being staged: the batch, the outbox head, and the alerts it rewrote (read
/// back from here, as the batch is not readable before it is written).
struct Staging {
    batch: Batch,
    seq: u64,
    alerts: HashMap<String, (StoredAlert, u64)>,
}

impl Staging {
    /// Stores `a` at `rank` with its index entry (the old one, at `old_rank`, removed).
    fn put_alert(&mut self, a: StoredAlert, rank: u64, old_rank: Option<u64>) {
        if let Some(old) = old_rank.filter(|o| *o != rank) {
            self.batch.del(RANKS, old.to_be_bytes());
        }
        self.batch.put(RANKS, rank.to_be_bytes(), rank_value(&a));
        self.batch
            .put(ALERTS, a.id.as_bytes().to_vec(), encode_alert(&a, rank));
        self.alerts.insert(a.id.clone(), (a, rank));
    }

    /// Appends an event for `a`; returns its sequence number.
    fn append(&mut self, kind: AlertEventKind, a: &StoredAlert) -> u64 {
        self.seq += 1;
        self.batch
            .put(OUTBOX, self.seq.to_be_bytes(), encode_event(kind, a));
        self.seq
    }
}

impl EmbeddedWatchStore {
    pub fn open(path: &Path) -> Result<EmbeddedWatchStore, StoreError> {
        let dir = FjallDir::open(path, &SPACES)?;
        let head = match dir.read(META, b"h")? {
            Some(v) => u64_of(&v, "watch outbox head")?,
            None => 0,
        };
        Ok(EmbeddedWatchStore {
            dir,
            group: GroupCommit::default(),
            durable: AtomicU64::new(head),
            #[cfg(any(test, feature = "test-utils"))]
            fail_next: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Test hook: the next commit or unwind stages everything and then fails instead of
    /// writing.
    #[cfg(any(test, feature = "test-utils"))]
    pub fn fail_next_commit(&self) {
        self.fail_next.store(true, Ordering::SeqCst);
    }

    fn injected_failure(&self) -> Result<(), StoreError> {
        #[cfg(any(test, feature = "test-utils"))]
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(self.dir.err("injected failure before the commit"));
        }
        Ok(())
    }

    fn read_checkpoint(&self, chain_id: u64) -> Result<Option<Stored>, StoreError> {
        let Some(v) = self.dir.read(CHECKPOINTS, &chain_id.to_be_bytes())? else {
            return Ok(None);
        };
        let mut r = Reader(&v);
        let number = r.u64()?;
        let block = codec::read_block(number, r.take(72)?)?;
        let lowest = r.u64()?;
        Ok(Some(Stored {
            checkpoint: WatchCheckpoint {
                chain_id,
                block,
                state: r.0.to_vec(),
            },
            lowest,
        }))
    }

    fn put_checkpoint(batch: &mut Batch, block: &BlockRef, lowest: u64, state: &[u8], chain: u64) {
        let v = [
            &block.number.to_be_bytes()[..],
            &codec::block_value(block),
            &lowest.to_be_bytes(),
            state,
        ]
        .concat();
        batch.put(CHECKPOINTS, chain.to_be_bytes(), v);
    }

    fn read_alert(&self, id: &str) -> Result<Option<(StoredAlert, u64)>, StoreError> {
        self.dir
            .read(ALERTS, id.as_bytes())?
            .map(|v| decode_alert(id, &v))
            .transpose()
    }

    fn read_lease(&self, chain_id: u64) -> Result<Option<Lease>, StoreError> {
        self.dir
            .read(META, &lease_key(chain_id))?
            .map(|v| decode_lease(chain_id, &v))
            .transpose()
    }

    fn head(&self) -> Result<u64, StoreError> {
        match self.dir.read(META, b"h")? {
            Some(v) => u64_of(&v, "watch outbox head"),
            None => Ok(0),
        }
    }

    /// Retracts the open alerts indexed at block `number` that `keep` does not raise again
    /// (raised early for a first look the block's commit does not confirm), oldest first.
    fn retract_unconfirmed(
        &self,
        s: &mut Staging,
        chain_id: u64,
        number: u64,
        keep: &[NewAlert],
    ) -> Result<(), StoreError> {
        let snap = self.dir.db.snapshot();
        let start = block_key(chain_id, number);
        let end = block_key(chain_id, number.saturating_add(1));
        let mut gone = Vec::new();
        for g in snap.range(&self.dir.spaces[BY_BLOCK], start..end) {
            let k = g.key().map_err(|e| self.dir.err(e))?;
            let id = std::str::from_utf8(&k[16..]).map_err(|_| corrupt("watch by_block"))?;
            if keep.iter().any(|a| a.id == id) {
                continue;
            }
            s.batch.del(BY_BLOCK, k.to_vec());
            if let Some((a, rank)) = self.staged_alert(s, id)?
                && a.status == AlertStatus::Open
            {
                gone.push((rank, a));
            }
        }
        gone.sort_by_key(|(rank, _)| *rank);
        for (rank, mut a) in gone {
            a.status = AlertStatus::Retracted;
            s.append(AlertEventKind::Retracted, &a);
            s.put_alert(a, rank, Some(rank));
        }
        Ok(())
    }

    fn staging(&self) -> Result<Staging, StoreError> {
        Ok(Staging {
            batch: Batch::default(),
            seq: self.head()?,
            alerts: HashMap::new(),
        })
    }

    /// An alert as this commit left it so far.
    fn staged_alert(
        &self,
        s: &Staging,
        id: &str,
    ) -> Result<Option<(StoredAlert, u64)>, StoreError> {
        match s.alerts.get(id) {
            Some(a) => Ok(Some(a.clone())),
            None => self.read_alert(id),
        }
    }

    /// Writes the staged commit, releases the writer lock and waits for its fsync; then
    /// readers of the outbox may see its events.
    fn finish(&self, guard: WriterGuard<'_>, mut s: Staging) -> Result<(), StoreError> {
        s.batch.put(META, b"h".to_vec(), s.seq.to_be_bytes());
        self.injected_failure()?;
        self.dir.write(s.batch)?;
        let ticket = self.group.written(guard);
        self.group.sync_up_to(ticket, || self.dir.persist())?;
        // Commits are numbered in commit order, and this fsync covers every earlier commit.
        self.durable.fetch_max(s.seq, Ordering::SeqCst);
        Ok(())
    }

    /// A write of meta alone (cursor, lease, acknowledgement), fsynced.
    fn write_synced(&self, guard: WriterGuard<'_>, batch: Batch) -> Result<(), StoreError> {
        self.dir.write(batch)?;
        let ticket = self.group.written(guard);
        self.group.sync_up_to(ticket, || self.dir.persist())
    }

    /// Stages forgetting the processed blocks `lowest..=last` of a chain (and their alerts'
    /// unwind entries).
    fn forget(
        &self,
        s: &mut Staging,
        chain_id: u64,
        lowest: u64,
        last: u64,
    ) -> Result<(), StoreError> {
        if last < lowest {
            return Ok(());
        }
        for n in lowest..=last {
            s.batch.del(BLOCKS, block_key(chain_id, n));
        }
        let snap = self.dir.db.snapshot();
        let end = block_key(chain_id, last.saturating_add(1));
        for g in snap.range(&self.dir.spaces[BY_BLOCK], block_key(chain_id, lowest)..end) {
            let k = g.key().map_err(|e| self.dir.err(e))?;
            s.batch.del(BY_BLOCK, k.to_vec());
        }
        Ok(())
    }
}

impl WatchStore for EmbeddedWatchStore {
    fn checkpoint(&self, chain_id: u64) -> Result<Option<WatchCheckpoint>, StoreError> {
        Ok(self.read_checkpoint(chain_id)?.map(|s| s.checkpoint))
    }

    fn processed_block(&self, chain_id: u64, number: u64) -> Result<Option<BlockRef>, StoreError> {
        self.dir
            .read(BLOCKS, &block_key(chain_id, number))?
            .map(|v| codec::read_block(number, &v))
            .transpose()
    }

    fn commit_block(&self, c: &BlockCommit) -> Result<(), StoreError> {
        check_commit(c)?;
        let chain = c.chain_id;
        let number = c.block.number;
        let guard = self.group.lock();
        check_fence(chain, self.read_lease(chain)?.as_ref(), c.fence)?;
        let stored = self.read_checkpoint(chain)?;
        check_child(
            chain,
            stored.as_ref().map(|s| &s.checkpoint.block),
            &c.block,
        )?;
        let mut s = self.staging()?;
        let remember = number >= c.forget_below;
        self.retract_unconfirmed(&mut s, chain, number, &c.alerts)?;
        for a in &c.alerts {
            let old = self.staged_alert(&s, &a.id)?;
            if old
                .as_ref()
                .is_some_and(|(o, _)| o.status == AlertStatus::Open)
            {
                continue;
            }
            let alert = StoredAlert::raised(
                a,
                chain,
                &c.block,
                old.as_ref().and_then(|(o, _)| o.acknowledged.clone()),
            );
            let rank = s.append(AlertEventKind::Raised, &alert);
            if remember {
                s.batch
                    .put(BY_BLOCK, by_block_key(chain, number, &a.id), []);
            }
            s.put_alert(alert, rank, old.map(|(_, r)| r));
        }
        for id in &c.confirm {
            let Some((mut a, rank)) = self.staged_alert(&s, id)? else {
                continue;
            };
            if a.chain_id != chain || a.status != AlertStatus::Open || a.confirmed {
                continue;
            }
            a.confirmed = true;
            s.append(AlertEventKind::Confirmed, &a);
            s.put_alert(a, rank, Some(rank));
        }
        let lowest = stored.as_ref().map_or(number, |s| s.lowest);
        let last_kept = stored.as_ref().map_or(0, |s| s.checkpoint.block.number);
        if stored.is_some()
            && let Some(below) = c.forget_below.checked_sub(1)
        {
            self.forget(&mut s, chain, lowest, below.min(last_kept))?;
        }
        if remember {
            s.batch.put(
                BLOCKS,
                block_key(chain, number),
                codec::block_value(&c.block),
            );
        }
        // The lowest remembered block: every remembered block is at or above it (so the
        // next forget finds them all), also after a `forget_below` that went back down.
        let mut lowest = lowest.max(c.forget_below);
        if remember {
            lowest = lowest.min(number);
        }
        Self::put_checkpoint(&mut s.batch, &c.block, lowest, &c.state, chain);
        self.finish(guard, s)
    }

    fn raise_early(
        &self,
        chain_id: u64,
        block: &BlockRef,
        alerts: &[NewAlert],
        fence: Option<u64>,
    ) -> Result<usize, StoreError> {
        check_commit(&BlockCommit {
            chain_id,
            block: *block,
            state: Vec::new(),
            alerts: alerts.to_vec(),
            confirm: Vec::new(),
            forget_below: 0,
            fence,
        })?;
        let guard = self.group.lock();
        check_fence(chain_id, self.read_lease(chain_id)?.as_ref(), fence)?;
        let stored = self.read_checkpoint(chain_id)?;
        check_child(
            chain_id,
            stored.as_ref().map(|s| &s.checkpoint.block),
            block,
        )?;
        let mut s = self.staging()?;
        let mut raised = 0;
        for a in alerts {
            let old = self.staged_alert(&s, &a.id)?;
            if old
                .as_ref()
                .is_some_and(|(o, _)| o.status == AlertStatus::Open)
            {
                continue;
            }
            let alert = StoredAlert::raised(
                a,
                chain_id,
                block,
                old.as_ref().and_then(|(o, _)| o.acknowledged.clone()),
            );
            let rank = s.append(AlertEventKind::Raised, &alert);
            s.batch
                .put(BY_BLOCK, by_block_key(chain_id, block.number, &a.id), []);
            s.put_alert(alert, rank, old.map(|(_, r)| r));
            raised += 1;
        }
        self.finish(guard, s)?;
        Ok(raised)
    }

    fn unwind_above(
        &self,
        chain_id: u64,
        number: u64,
        state: &[u8],
        fence: Option<u64>,
    ) -> Result<Vec<StoredAlert>, StoreError> {
        super::check_unwind_state(chain_id, number, state)?;
        let invalid = |what: String| StoreError::Invalid {
            chain_id,
            number,
            what,
        };
        let guard = self.group.lock();
        check_fence(chain_id, self.read_lease(chain_id)?.as_ref(), fence)?;
        let Some(stored) = self.read_checkpoint(chain_id)? else {
            return Err(invalid(
                "cannot unwind: the watch has no checkpoint on this chain".into(),
            ));
        };
        let top = stored.checkpoint.block;
        if number > top.number {
            return Err(invalid(format!(
                "cannot unwind to a block above the watch's checkpoint, block {}",
                top.number
            )));
        }
        let target = if number == top.number {
            top
        } else {
            self.processed_block(chain_id, number)?.ok_or_else(|| {
                invalid(format!(
                    "cannot unwind to it: processed blocks below {} are forgotten",
                    stored.lowest
                ))
            })?
        };
        let mut s = self.staging()?;
        for n in number + 1..=top.number {
            s.batch.del(BLOCKS, block_key(chain_id, n));
        }
        let snap = self.dir.db.snapshot();
        let mut above = Vec::new();
        let start = block_key(chain_id, number.saturating_add(1));
        for g in snap.range(
            &self.dir.spaces[BY_BLOCK],
            start..prefix_end(&chain_id.to_be_bytes()),
        ) {
            let k = g.key().map_err(|e| self.dir.err(e))?;
            s.batch.del(BY_BLOCK, k.to_vec());
            let id = std::str::from_utf8(&k[16..]).map_err(|_| corrupt("watch by_block"))?;
            if let Some((a, rank)) = self.read_alert(id)?
                && a.status == AlertStatus::Open
            {
                above.push((rank, a));
            }
        }
        // Retracted oldest raised first, as they were raised.
        above.sort_by_key(|(rank, _)| *rank);
        let mut retracted = Vec::with_capacity(above.len());
        for (rank, mut a) in above {
            a.status = AlertStatus::Retracted;
            s.append(AlertEventKind::Retracted, &a);
            s.put_alert(a.clone(), rank, Some(rank));
            retracted.push(a);
        }
        Self::put_checkpoint(&mut s.batch, &target, stored.lowest, state, chain_id);
        self.finish(guard, s)?;
        Ok(retracted)
    }

    fn alert(&self, id: &str) -> Result<Option<StoredAlert>, StoreError> {
        check_name("alert id", id)?;
        Ok(self.read_alert(id)?.map(|(a, _)| a))
    }

    fn alerts(&self, query: &AlertQuery) -> Result<Vec<StoredAlert>, StoreError> {
        check_query(query)?;
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let snap = self.dir.db.snapshot();
        let upper = match &query.before_id {
            Some(id) => match snap
                .get(&self.dir.spaces[ALERTS], id.as_bytes())
                .map_err(|e| self.dir.err(e))?
            {
                Some(v) => decode_alert(id, &v)?.1,
                None => return Err(unknown_before(id)),
            },
            None => u64::MAX,
        };
        let mut out = Vec::new();
        for g in snap
            .range(&self.dir.spaces[RANKS], ..upper.to_be_bytes().to_vec())
            .rev()
        {
            let (_, v) = g.into_inner().map_err(|e| self.dir.err(e))?;
            let mut r = Reader(&v);
            let chain_id = r.u64()?;
            let severity = r.u8()?;
            let status = status_of(r.u8()?)?;
            let acked = r.u8()? == 1;
            let rule = read_name(&mut r)?;
            if !passes(query, chain_id, &rule, severity, status, acked) {
                continue;
            }
            let id = std::str::from_utf8(r.0).map_err(|_| corrupt("watch rank index"))?;
            let v = snap
                .get(&self.dir.spaces[ALERTS], id.as_bytes())
                .map_err(|e| self.dir.err(e))?
                .ok_or_else(|| corrupt("watch rank index names a missing alert"))?;
            out.push(decode_alert(id, &v)?.0);
            if out.len() == query.limit {
                break;
            }
        }
        Ok(out)
    }

    fn acknowledge(
        &self,
        id: &str,
        who: &str,
        at_ms: u64,
    ) -> Result<Option<StoredAlert>, StoreError> {
        check_name("alert id", id)?;
        check_who(who)?;
        let guard = self.group.lock();
        let Some((mut a, rank)) = self.read_alert(id)? else {
            return Ok(None);
        };
        if a.acknowledged.is_some() {
            return Ok(Some(a));
        }
        a.acknowledged = Some((who.to_owned(), at_ms));
        let mut batch = Batch::default();
        batch.put(RANKS, rank.to_be_bytes(), rank_value(&a));
        batch.put(ALERTS, id.as_bytes().to_vec(), encode_alert(&a, rank));
        self.write_synced(guard, batch)?;
        Ok(Some(a))
    }

    fn outbox_after_cursor(
        &self,
        sink: &str,
        limit: usize,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let cursor = self.cursor(sink)?;
        self.outbox_since(cursor, limit)
    }

    fn advance_cursor(&self, sink: &str, seq: u64) -> Result<(), StoreError> {
        check_name("sink", sink)?;
        let guard = self.group.lock();
        let head = self.durable.load(Ordering::SeqCst);
        if seq > head {
            return Err(past_head(seq, head));
        }
        if seq <= self.cursor(sink)? {
            return Ok(());
        }
        let mut batch = Batch::default();
        batch.put(META, cursor_key(sink), seq.to_be_bytes());
        self.write_synced(guard, batch)
    }

    fn cursor(&self, sink: &str) -> Result<u64, StoreError> {
        check_name("sink", sink)?;
        match self.dir.read(META, &cursor_key(sink))? {
            Some(v) => u64_of(&v, "watch sink cursor"),
            None => Ok(0),
        }
    }

    fn cursors(&self) -> Result<Vec<SinkCursor>, StoreError> {
        let snap = self.dir.db.snapshot();
        snap.prefix(&self.dir.spaces[META], b"s")
            .map(|g| {
                let (k, v) = g.into_inner().map_err(|e| self.dir.err(e))?;
                let sink = std::str::from_utf8(&k[1..]).map_err(|_| corrupt("watch sink name"))?;
                Ok(SinkCursor {
                    sink: sink.to_owned(),
                    seq: u64_of(&v, "watch sink cursor")?,
                })
            })
            .collect()
    }

    fn forget_cursor(&self, sink: &str) -> Result<Option<u64>, StoreError> {
        check_name("sink", sink)?;
        // Under the writer lock: no prune or cursor write comes between the read and the
        // deletion.
        let guard = self.group.lock();
        let Some(v) = self.dir.read(META, &cursor_key(sink))? else {
            return Ok(None);
        };
        let seq = u64_of(&v, "watch sink cursor")?;
        let mut batch = Batch::default();
        batch.del(META, cursor_key(sink));
        self.write_synced(guard, batch)?;
        Ok(Some(seq))
    }

    fn outbox_since(&self, after_seq: u64, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        check_limit(limit)?;
        let durable = self.durable.load(Ordering::SeqCst);
        if after_seq >= durable || limit == 0 {
            return Ok(Vec::new());
        }
        let snap = self.dir.db.snapshot();
        let range = (after_seq + 1).to_be_bytes().to_vec()..=durable.to_be_bytes().to_vec();
        snap.range(&self.dir.spaces[OUTBOX], range)
            .take(limit)
            .map(|g| {
                let (k, v) = g.into_inner().map_err(|e| self.dir.err(e))?;
                decode_event(u64_of(&k, "watch outbox key")?, &v)
            })
            .collect()
    }

    fn outbox_head(&self) -> Result<u64, StoreError> {
        Ok(self.durable.load(Ordering::SeqCst))
    }

    fn prune_outbox(&self, sinks: &[&str], keep: u64) -> Result<u64, StoreError> {
        for sink in sinks {
            check_name("sink", sink)?;
        }
        // Under the writer lock: cursors only move forward, so the lowest read here stays a
        // lower bound of what every sink has delivered until the deletion is written.
        let guard = self.group.lock();
        let mut low = self.durable.load(Ordering::SeqCst).saturating_sub(keep);
        let mut batch = Batch::default();
        for sink in sinks {
            if self.dir.read(META, &cursor_key(sink))?.is_none() {
                // Registered at 0, so that every other instance's prune keeps its events.
                batch.put(META, cursor_key(sink), 0u64.to_be_bytes());
            }
            low = low.min(self.cursor(sink)?);
        }
        let snap = self.dir.db.snapshot();
        for g in snap.prefix(&self.dir.spaces[META], b"s") {
            let (_, v) = g.into_inner().map_err(|e| self.dir.err(e))?;
            low = low.min(u64_of(&v, "watch sink cursor")?);
        }
        let mut deleted = 0u64;
        if low > 0 {
            for g in snap
                .range(&self.dir.spaces[OUTBOX], ..=low.to_be_bytes().to_vec())
                .take(super::MAX_PRUNE)
            {
                let k = g.key().map_err(|e| self.dir.err(e))?;
                batch.del(OUTBOX, k.to_vec());
                deleted += 1;
            }
        }
        if !batch.is_empty() {
            self.write_synced(guard, batch)?;
        }
        Ok(deleted)
    }

    fn acquire_lease(
        &self,
        chain_id: u64,
        owner: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        check_name("lease owner", owner)?;
        let guard = self.group.lock();
        let current = self.read_lease(chain_id)?;
        let Some(next) = next_lease(chain_id, current.as_ref(), owner, now_ms, ttl_ms) else {
            return Ok(None);
        };
        let mut batch = Batch::default();
        batch.put(META, lease_key(chain_id), encode_lease(&next));
        self.write_synced(guard, batch)?;
        Ok(Some(next.token))
    }

    fn release_lease(&self, chain_id: u64, owner: &str) -> Result<(), StoreError> {
        check_name("lease owner", owner)?;
        let guard = self.group.lock();
        let Some(mut l) = self.read_lease(chain_id)? else {
            return Ok(());
        };
        if l.owner.as_deref() != Some(owner) {
            return Ok(());
        }
        l.owner = None;
        l.expires_at_ms = 0;
        let mut batch = Batch::default();
        batch.put(META, lease_key(chain_id), encode_lease(&l));
        self.write_synced(guard, batch)
    }

    fn lease(&self, chain_id: u64) -> Result<Option<Lease>, StoreError> {
        self.read_lease(chain_id)
    }

    fn safe_search(
        &self,
        chain_id: u64,
        owners: &[Address],
    ) -> Result<Option<SafeSearch>, StoreError> {
        super::safes::check_owners(owners)?;
        let Some(v) = self.dir.read(META, &search_key(chain_id, owners))? else {
            return Ok(None);
        };
        let s = super::safes::decode(chain_id, &v)?;
        // Another owners list with the same hash: not this one's.
        Ok((s.owners == owners).then_some(s))
    }

    fn put_safe_search(&self, search: &SafeSearch) -> Result<(), StoreError> {
        super::safes::check_search(search)?;
        let guard = self.group.lock();
        let mut batch = Batch::default();
        batch.put(
            META,
            search_key(search.chain_id, &search.owners),
            super::safes::encode(search),
        );
        self.write_synced(guard, batch)
    }
}

#[cfg(test)]
mod tests {
    use alloy_primitives::B256;

    use super::*;

    #[test]
    fn alert_records_round_trip() {
        let mut a = StoredAlert {
            id: "hf-1".into(),
            chain_id: 7,
            block_number: 9,
            block_hash: B256::repeat_byte(3),
            rule: "singleton".into(),
            severity: 4,
            raised_at_ms: 123,
            status: AlertStatus::Retracted,
            confirmed: true,
            acknowledged: None,
            body: b"{\"a\":1}".to_vec(),
        };
        assert_eq!(
            decode_alert("hf-1", &encode_alert(&a, 42)).expect("decodes"),
            (a.clone(), 42)
        );
        a.acknowledged = Some(("Alice Ops".into(), 99));
        assert_eq!(
            decode_alert("hf-1", &encode_alert(&a, 42)).expect("decodes"),
            (a.clone(), 42)
        );
        let e = decode_event(5, &encode_event(AlertEventKind::Confirmed, &a)).expect("decodes");
        assert_eq!(
            (e.seq, e.kind, e.alert_id.as_str(), e.body.as_slice()),
            (5, AlertEventKind::Confirmed, "hf-1", a.body.as_slice())
        );
    }
}
