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

    /// Fsyncs everything written so far.
    pub fn persist(&self) -> Result<(), StoreError> {
        self.db
            .persist(PersistMode::SyncAll)
            .map_err(|e| self.err(e))
    }
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
