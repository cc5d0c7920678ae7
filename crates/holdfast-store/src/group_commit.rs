//! Durable commits to a fjall directory shared by the embedded stores of one process's state
//! (the guard service's and the watch's): writes are serialized by one writer lock and
//! committed as one atomic batch across keyspaces, and every commit is fsynced before it is
//! reported, with group commit so that concurrent writers share one fsync.
//!
//! A commit is visible to readers as soon as it is written, before its fsync: whatever a
//! reader decides from it is written later in the journal, so it cannot outlive it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::StoreError;

/// How long the leader of an fsync waits at most for queued writers to write first.
const GROUP_WAIT: std::time::Duration = std::time::Duration::from_micros(500);

/// A fjall database with its keyspaces (in the order of the names it was opened with).
pub(crate) struct FjallDir {
    pub db: Database,
    pub spaces: Vec<Keyspace>,
    pub path: PathBuf,
}

impl FjallDir {
    /// Opens (creating it if needed) the database at `path` with keyspaces `names`.
    pub fn open(path: &Path, names: &[&str]) -> Result<FjallDir, StoreError> {
        let err = |e: &dyn std::fmt::Display| StoreError::Embedded {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(path).map_err(|e| err(&e))?;
        // One background worker: flushes and compactions of this small, write-mostly state
        // must not take both cores from the requests waiting on it.
        let db = Database::builder(path)
            .worker_threads(1)
            .open()
            .map_err(|e| err(&e))?;
        let spaces = names
            .iter()
            .map(|n| {
                db.keyspace(n, KeyspaceCreateOptions::default)
                    .map_err(|e| err(&e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FjallDir {
            db,
            spaces,
            path: path.to_owned(),
        })
    }

    pub fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Embedded {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    pub fn read(&self, space: usize, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.spaces[space]
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| self.err(e))
    }

    /// Writes `batch` as one atomic batch (buffered: not yet fsynced). Of several
    /// operations on one key, the last counts.
    pub fn write(&self, batch: Batch) -> Result<(), StoreError> {
        let mut b = self.db.batch().durability(Some(PersistMode::Buffer));
        // fjall gives every operation of a batch the same sequence number; one per key makes
        // the outcome not depend on how equal entries replace each other. A stable sort by
        // keyspace and key keeps equal keys in the order written (the last of each run
        // counts) and hands the memtable its inserts in key order: each insert's search then
        // runs through the nodes the one before it touched (random keys — txids, addresses —
        // cost a cache miss per skiplist level otherwise).
        let mut ops = batch.ops;
        ops.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut ops = ops.into_iter().peekable();
        while let Some((space, k, v)) = ops.next() {
            if ops.peek().is_some_and(|(s, k2, _)| *s == space && *k2 == k) {
                continue;
            }
            match v {
                Some(v) => b.insert(&self.spaces[space], k, v),
                None => b.remove(&self.spaces[space], k),
            }
        }
        b.commit().map_err(|e| self.err(e))
    }

    /// Writes `batch` as sorted tables through fjall's ingestion (no memtable, no journal),
    /// one keyspace after another in keyspace order; of several operations on one key, the
    /// last counts. Each keyspace's tables are durable and visible when its ingestion
    /// returns, newer than everything written before; the batch is **not** atomic across
    /// keyspaces: a caller moves its checkpoint only after this returns, and an interrupted
    /// call is made again over the same keys. `stop_after` ends it with an error after that
    /// many keyspaces (tests of an interruption).
    pub fn ingest(&self, batch: Batch, stop_after: Option<usize>) -> Result<(), StoreError> {
        let mut sizes = vec![0; self.spaces.len()];
        for (space, _, _) in &batch.ops {
            sizes[*space] += 1;
        }
        let mut spaces: Vec<Vec<Op>> = sizes.into_iter().map(Vec::with_capacity).collect();
        for (space, k, v) in batch.ops {
            spaces[space].push((k, v));
        }
        let mut done = 0;
        for (space, ops) in spaces.iter().enumerate() {
            if ops.is_empty() {
                continue;
            }
            if stop_after == Some(done) {
                return Err(self.err(format!(
                    "stopped before ingesting keyspace {} (test)",
                    self.spaces[space].name().as_ref() as &str
                )));
            }
            let mut ingestion = self.spaces[space]
                .start_ingestion()
                .map_err(|e| self.err(e))?;
            let order = sorted(ops);
            for (n, &i) in order.iter().enumerate() {
                let (k, v) = &ops[i as usize];
                // fjall asserts strictly rising keys: of equal keys the last written counts.
                if order.get(n + 1).is_some_and(|&j| ops[j as usize].0 == *k) {
                    continue;
                }
                match v {
                    Some(v) => ingestion.write(k.as_slice(), v.as_slice()),
                    None => ingestion.write_tombstone(k.as_slice()),
                }
                .map_err(|e| self.err(e))?;
            }
            ingestion.finish().map_err(|e| self.err(e))?;
            done += 1;
        }
        Ok(())
    }

    /// Fsyncs everything written so far.
    pub fn persist(&self) -> Result<(), StoreError> {
        self.db
            .persist(PersistMode::SyncAll)
            .map_err(|e| self.err(e))
    }
}

/// A put (`Some` value) or a delete of a key, in one keyspace.
type Op = (Vec<u8>, Option<Vec<u8>>);

/// The order of `ops` by key, equal keys in the order written.
///
/// Keys of one keyspace share a prefix (the chain id, an address's first characters): each
/// is sorted by the 16 bytes after the prefix all of them share, as one integer, and only
/// ties compare whole keys. Sorting the keys themselves spent most of its time in `memcmp`
/// going over the shared bytes again at every comparison.
fn sorted(ops: &[Op]) -> Vec<u32> {
    let first = ops.first().map_or(&[][..], |(k, _)| k.as_slice());
    let shared = ops.iter().fold(first.len(), |n, (k, _)| {
        n.min(k.iter().zip(first).take_while(|(a, b)| a == b).count())
    });
    let mut order: Vec<(u128, u32)> = ops
        .iter()
        .enumerate()
        .map(|(i, (k, _))| {
            // Zero-padded: a shorter key never sorts after a longer one it is a prefix of.
            let mut b = [0u8; 16];
            let tail = &k[shared..];
            let n = tail.len().min(16);
            b[..n].copy_from_slice(&tail[..n]);
            (u128::from_be_bytes(b), i as u32)
        })
        .collect();
    order.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| ops[a.1 as usize].0.cmp(&ops[b.1 as usize].0))
            .then(a.1.cmp(&b.1))
    });
    order.into_iter().map(|(_, i)| i).collect()
}

/// A staged commit: puts and deletes per keyspace (by index).
#[derive(Default)]
pub(crate) struct Batch {
    pub ops: Vec<(usize, Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    pub fn put(&mut self, space: usize, k: impl Into<Vec<u8>>, v: impl Into<Vec<u8>>) {
        self.ops.push((space, k.into(), Some(v.into())));
    }
    pub fn del(&mut self, space: usize, k: impl Into<Vec<u8>>) {
        self.ops.push((space, k.into(), None));
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// The writer lock and group commit: writers that committed wait for one fsync that covers
/// them.
///
/// fjall holds its journal lock while it fsyncs, so a writer that arrives during an fsync
/// waits for it before it can write, and would then fsync alone: one fsync per commit. So
/// the writer that leads the next fsync first lets the writers already queued for the writer
/// lock (counted in `pending`) write theirs, for at most [`GROUP_WAIT`], and one fsync then
/// covers them all.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    writer: Mutex<()>,
    /// Writers waiting for or holding the writer lock.
    pending: AtomicUsize,
    /// (commits written, commits fsynced, an fsync is running)
    state: Mutex<(u64, u64, bool)>,
    done: Condvar,
    /// Signalled when the last pending writer releases the writer lock.
    idle: Condvar,
}

/// The writer lock, counted in `pending` from the moment it is asked for until it is released.
pub(crate) struct WriterGuard<'a> {
    lock: Option<MutexGuard<'a, ()>>,
    group: &'a GroupCommit,
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        drop(self.lock.take());
        if self.group.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            // Taking the lock orders this with a leader between its check and its wait.
            let _s = self
                .group
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.group.idle.notify_all();
        }
    }
}

impl GroupCommit {
    /// Takes the writer lock.
    pub fn lock(&self) -> WriterGuard<'_> {
        self.pending.fetch_add(1, Ordering::SeqCst);
        WriterGuard {
            // A panic while staging committed nothing: the lock is safe to take over.
            lock: Some(self.writer.lock().unwrap_or_else(PoisonError::into_inner)),
            group: self,
        }
    }

    /// Counts a commit its holder has written and releases the writer lock; returns the
    /// ticket to wait on with [`Self::sync_up_to`] before the commit may be reported durable.
    pub fn written(&self, guard: WriterGuard<'_>) -> u64 {
        let mine = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            s.0 += 1;
            s.0
        };
        drop(guard);
        mine
    }

    /// Waits until an fsync (`persist`) covers commit `mine`, leading one if none is running.
    pub fn sync_up_to(
        &self,
        mine: u64,
        persist: impl Fn() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if s.1 >= mine {
                return Ok(());
            }
            if !s.2 {
                s.2 = true;
                let (waited, _) = self
                    .idle
                    .wait_timeout_while(s, GROUP_WAIT, |_| self.pending.load(Ordering::SeqCst) > 0)
                    .unwrap_or_else(PoisonError::into_inner);
                // Everything written so far is in the journal's OS buffers; this fsync covers it.
                let target = waited.0;
                drop(waited);
                let r = persist();
                s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                s.2 = false;
                if r.is_ok() {
                    s.1 = s.1.max(target);
                }
                self.done.notify_all();
                r?;
            } else {
                s = self.done.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The ingestion's order is the keys' byte order, equal keys in the order written,
        /// whatever prefix the keys share and whatever their lengths (a key that is a prefix
        /// of another, keys longer and shorter than the 16 bytes compared as an integer).
        #[test]
        fn sorted_is_byte_order_and_stable(
            prefix in proptest::collection::vec(0u8..3, 0..20),
            tails in proptest::collection::vec(proptest::collection::vec(0u8..3, 0..24), 1..60),
        ) {
            let ops: Vec<Op> = tails
                .iter()
                .map(|t| ([prefix.as_slice(), t].concat(), None))
                .collect();
            let mut expected: Vec<u32> = (0..ops.len() as u32).collect();
            expected.sort_by(|a, b| ops[*a as usize].0.cmp(&ops[*b as usize].0));
            proptest::prop_assert_eq!(sorted(&ops), expected);
        }
    }

    /// Ingested operations: of several on one key the last counts, tombstones delete, and a
    /// stop after a keyspace leaves the later keyspaces untouched.
    #[test]
    fn ingest_writes_the_last_operation_per_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = FjallDir::open(dir.path(), &["a", "b"]).expect("open");
        let mut first = Batch::default();
        first.put(0, b"gone".to_vec(), b"x".to_vec());
        db.write(first).expect("write");
        let mut batch = Batch::default();
        batch.put(1, b"k".to_vec(), b"b".to_vec());
        batch.put(0, b"k".to_vec(), b"1".to_vec());
        batch.del(0, b"gone".to_vec());
        batch.put(0, b"k".to_vec(), b"2".to_vec());
        batch.put(0, b"a".to_vec(), b"a".to_vec());
        let copy = Batch {
            ops: batch.ops.clone(),
        };
        let e = db.ingest(copy, Some(1)).expect_err("stopped");
        assert!(e.to_string().contains("keyspace b"), "{e}");
        assert_eq!(db.read(1, b"k").expect("read"), None);
        db.ingest(batch, None).expect("ingest");
        assert_eq!(db.read(0, b"k").expect("read").as_deref(), Some(&b"2"[..]));
        assert_eq!(db.read(0, b"a").expect("read").as_deref(), Some(&b"a"[..]));
        assert_eq!(db.read(0, b"gone").expect("read"), None);
        assert_eq!(db.read(1, b"k").expect("read").as_deref(), Some(&b"b"[..]));
    }

    /// Of several operations on one key in a batch the last counts, whatever the order of the
    /// keys around them (the batch is sorted before it reaches fjall).
    #[test]
    fn the_last_operation_on_a_key_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = FjallDir::open(dir.path(), &["a", "b"]).expect("open");
        let mut batch = Batch::default();
        batch.put(0, b"k".to_vec(), b"1".to_vec());
        batch.put(1, b"k".to_vec(), b"other space".to_vec());
        batch.put(0, b"z".to_vec(), b"z".to_vec());
        batch.del(0, b"k".to_vec());
        batch.put(0, b"a".to_vec(), b"a".to_vec());
        batch.put(0, b"k".to_vec(), b"2".to_vec());
        batch.put(0, b"gone".to_vec(), b"x".to_vec());
        batch.del(0, b"gone".to_vec());
        db.write(batch).expect("write");
        assert_eq!(db.read(0, b"k").expect("read"), Some(b"2".to_vec()));
        assert_eq!(
            db.read(1, b"k").expect("read"),
            Some(b"other space".to_vec())
        );
        assert_eq!(db.read(0, b"gone").expect("read"), None);
        assert_eq!(db.read(0, b"a").expect("read"), Some(b"a".to_vec()));
        assert_eq!(db.read(0, b"z").expect("read"), Some(b"z".to_vec()));
    }
}
