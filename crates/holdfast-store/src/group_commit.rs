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

    /// Writes `run` as sorted tables through fjall's ingestion (no memtable, no journal),
    /// one keyspace after another in keyspace order; of several operations on one key, the
    /// last counts. Each keyspace's tables are durable and visible when its ingestion
    /// returns, newer than everything written before; the run is **not** atomic across
    /// keyspaces: a caller moves its checkpoint only after this returns, and an interrupted
    /// call is made again over the same keys. `stop_after` ends it with an error after that
    /// many keyspaces (tests of an interruption).
    pub fn ingest(&self, run: Run, stop_after: Option<usize>) -> Result<(), StoreError> {
        let Run { bytes, spaces } = run;
        let mut done = 0;
        for (space, mut entries) in spaces.into_iter().enumerate() {
            if entries.is_empty() {
                continue;
            }
            let keyspace = self.spaces.get(space).ok_or_else(|| {
                self.err(format!(
                    "ingestion into keyspace {space}, which is not open"
                ))
            })?;
            if stop_after == Some(done) {
                return Err(self.err(format!(
                    "stopped before ingesting keyspace {} (test)",
                    keyspace.name().as_ref() as &str
                )));
            }
            let mut ingestion = keyspace.start_ingestion().map_err(|e| self.err(e))?;
            sort_entries(&bytes, &mut entries);
            for (n, e) in entries.iter().enumerate() {
                let k = e.key(&bytes);
                // fjall asserts strictly rising keys: of equal keys the last written counts.
                if entries
                    .get(n + 1)
                    .is_some_and(|next| next.prefix == e.prefix && next.key(&bytes) == k)
                {
                    continue;
                }
                match e.value(&bytes) {
                    Some(v) => ingestion.write(k, v),
                    None => ingestion.write_tombstone(k),
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

/// Operations staged for [`FjallDir::ingest`]: puts and deletes per keyspace (by index), their
/// keys and values one after the other in one buffer.
///
/// A backfill's call stages millions of entries. Kept as vectors of their own, each key and
/// value cost an allocation, and sorting them three cache misses per entry (the entry, its
/// key, its value, each somewhere else); here an entry's key and value sit side by side and
/// the entries themselves are sorted (with the integer their key sorts by), so the sorted run
/// is read in order and each entry's bytes are one miss.
#[derive(Default)]
pub(crate) struct Run {
    bytes: Vec<u8>,
    spaces: Vec<Vec<Entry>>,
}

/// One operation of a [`Run`]: its key at `at..at + key` in the run's bytes, then its value
/// (`value`: its length, [`Entry::TOMBSTONE`] for a delete); `prefix` is filled in when the
/// keyspace is sorted, `seq` is its place among the keyspace's operations.
#[derive(Clone, Copy)]
struct Entry {
    prefix: u128,
    at: usize,
    key: usize,
    value: usize,
    seq: usize,
}

impl Entry {
    /// No value is this long: a buffer holds at most `isize::MAX` bytes.
    const TOMBSTONE: usize = usize::MAX;

    fn key<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        &bytes[self.at..self.at + self.key]
    }

    fn value<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        (self.value != Self::TOMBSTONE).then(|| {
            let from = self.at + self.key;
            &bytes[from..from + self.value]
        })
    }
}

impl Run {
    /// A run with room for `bytes` bytes of keys and values.
    pub fn with_capacity(bytes: usize) -> Run {
        Run {
            bytes: Vec::with_capacity(bytes),
            spaces: Vec::new(),
        }
    }

    fn push(&mut self, space: usize, k: &[u8], v: Option<&[u8]>) {
        if self.spaces.len() <= space {
            self.spaces.resize_with(space + 1, Vec::new);
        }
        let at = self.bytes.len();
        self.bytes.extend_from_slice(k);
        let value = match v {
            Some(v) => {
                self.bytes.extend_from_slice(v);
                v.len()
            }
            None => Entry::TOMBSTONE,
        };
        let entries = &mut self.spaces[space];
        let seq = entries.len();
        entries.push(Entry {
            prefix: 0,
            at,
            key: k.len(),
            value,
            seq,
        });
    }

    pub fn put(&mut self, space: usize, k: &[u8], v: &[u8]) {
        self.push(space, k, Some(v));
    }

    pub fn del(&mut self, space: usize, k: &[u8]) {
        self.push(space, k, None);
    }
}

/// Sorts one keyspace's entries by key, equal keys in the order written.
///
/// Keys of one keyspace share a prefix (the chain id, an address's first characters): each
/// is sorted by the 16 bytes after the prefix all of them share, as one integer, and only
/// ties compare whole keys. Sorting the keys themselves spent most of its time in `memcmp`
/// going over the shared bytes again at every comparison.
fn sort_entries(bytes: &[u8], entries: &mut [Entry]) {
    let first = entries.first().map_or(&[][..], |e| e.key(bytes));
    let shared = entries.iter().fold(first.len(), |n, e| {
        n.min(
            e.key(bytes)
                .iter()
                .zip(first)
                .take_while(|(a, b)| a == b)
                .count(),
        )
    });
    for e in entries.iter_mut() {
        // Zero-padded: a shorter key never sorts after a longer one it is a prefix of.
        let mut b = [0u8; 16];
        let tail = &e.key(bytes)[shared..];
        let n = tail.len().min(16);
        b[..n].copy_from_slice(&tail[..n]);
        e.prefix = u128::from_be_bytes(b);
    }
    entries.sort_unstable_by(|a, b| {
        a.prefix
            .cmp(&b.prefix)
            .then_with(|| a.key(bytes).cmp(b.key(bytes)))
            .then(a.seq.cmp(&b.seq))
    });
}

/// Where staged operations go: a [`Batch`] (one atomic write) or a [`Run`] (sorted tables).
pub(crate) trait Stage {
    fn put(&mut self, space: usize, k: Vec<u8>, v: Vec<u8>);
    fn del(&mut self, space: usize, k: Vec<u8>);
}

impl Stage for Batch {
    fn put(&mut self, space: usize, k: Vec<u8>, v: Vec<u8>) {
        Batch::put(self, space, k, v);
    }
    fn del(&mut self, space: usize, k: Vec<u8>) {
        Batch::del(self, space, k);
    }
}

impl Stage for Run {
    fn put(&mut self, space: usize, k: Vec<u8>, v: Vec<u8>) {
        Run::put(self, space, &k, &v);
    }
    fn del(&mut self, space: usize, k: Vec<u8>) {
        Run::del(self, space, &k);
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

    proptest::proptest! {
        /// The ingestion's order is the keys' byte order, equal keys in the order written,
        /// whatever prefix the keys share and whatever their lengths (a key that is a prefix
        /// of another, keys longer and shorter than the 16 bytes compared as an integer).
        #[test]
        fn sorted_is_byte_order_and_stable(
            prefix in proptest::collection::vec(0u8..3, 0..20),
            tails in proptest::collection::vec(proptest::collection::vec(0u8..3, 0..24), 1..60),
        ) {
            let keys: Vec<Vec<u8>> = tails
                .iter()
                .map(|t| [prefix.as_slice(), t].concat())
                .collect();
            let mut run = Run::default();
            for k in &keys {
                run.del(0, k);
            }
            let mut expected: Vec<u32> = (0..keys.len() as u32).collect();
            expected.sort_by(|a, b| keys[*a as usize].cmp(&keys[*b as usize]));
            let mut entries = run.spaces.swap_remove(0);
            sort_entries(&run.bytes, &mut entries);
            let order: Vec<u32> = entries.iter().map(|e| e.seq as u32).collect();
            proptest::prop_assert_eq!(order, expected);
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
        let run = || {
            let mut run = Run::with_capacity(64);
            run.put(1, b"k", b"b");
            run.put(0, b"k", b"1");
            run.del(0, b"gone");
            run.put(0, b"k", b"2");
            run.put(0, b"a", b"a");
            run
        };
        let e = db.ingest(run(), Some(1)).expect_err("stopped");
        assert!(e.to_string().contains("keyspace b"), "{e}");
        assert_eq!(db.read(1, b"k").expect("read"), None);
        db.ingest(run(), None).expect("ingest");
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
