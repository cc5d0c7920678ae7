//! The record log: every transfer record written by the store, appended to one file per
//! chain, so that an address index entry can point at its record by file offset and a query
//! reads each result row with one positioned read instead of an LSM lookup.
//!
//! The log is a verified cache of the `transfers` keyspace, never the only copy: each entry
//! starts with its place, which the reader compares with the place of the index entry that
//! pointed at it. An entry that is missing or does not match (the log lost its tail in a
//! power cut, or was deleted) is read from `transfers` instead, so correctness never depends
//! on the log. Writers append before their batch commits and only move the end after it, so
//! a failed or interrupted write leaves bytes that nothing points at; the next write
//! overwrites them. Each batch also records the log's end (meta key `l`), and the log
//! never appends below it: if the file lost its tail, the lost offsets are skipped, never
//! reused, so a location holds the entry it was written with or nothing. Records of unwound
//! blocks stay in the log as garbage (reorgs are rare and shallow).
//!
//! Entry: place length (one byte), place, record. A location is the entry's offset (6
//! bytes) and length (2 bytes), big-endian: the value of an address index entry.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where an entry is: offset and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Loc {
    pub(super) offset: u64,
    pub(super) len: u16,
}

impl Loc {
    pub(super) const BYTES: usize = 8;

    pub(super) fn encode(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..6].copy_from_slice(&self.offset.to_be_bytes()[2..]);
        b[6..].copy_from_slice(&self.len.to_be_bytes());
        b
    }

    pub(super) fn decode(b: &[u8]) -> Option<Loc> {
        if b.len() != Self::BYTES {
            return None;
        }
        let mut o = [0u8; 8];
        o[2..].copy_from_slice(&b[..6]);
        Some(Loc {
            offset: u64::from_be_bytes(o),
            len: u16::from_be_bytes([b[6], b[7]]),
        })
    }
}

/// A write's log entries, assembled before they are appended.
pub(super) struct Entries {
    base: u64,
    pub(super) bytes: Vec<u8>,
}

impl Entries {
    /// Adds an entry; `None` if it cannot be located (a record over 64 KiB, an offset past
    /// 2^48: never for real transfers), in which case the index entry has no location and
    /// queries read `transfers`.
    pub(super) fn push(&mut self, place: &[u8], record: &[u8]) -> Option<Loc> {
        let len = 1 + place.len() + record.len();
        let offset = self.base + self.bytes.len() as u64;
        let (Ok(place_len), Ok(len)) = (u8::try_from(place.len()), u16::try_from(len)) else {
            return None;
        };
        if offset >= 1 << 48 {
            return None;
        }
        self.bytes.push(place_len);
        self.bytes.extend_from_slice(place);
        self.bytes.extend_from_slice(record);
        Some(Loc { offset, len })
    }
}

pub(super) struct RecordLog {
    file: File,
    /// End of the committed entries: writers append here.
    end: AtomicU64,
}

impl RecordLog {
    /// Opens the log at `path`; `committed` is the end recorded by the last commit.
    pub(super) fn open(path: &Path, committed: u64) -> std::io::Result<RecordLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        // Bytes after the last commit are garbage nothing points at: appending after them
        // is as good as overwriting them. A file shorter than the last commit lost its tail:
        // append after where it ended (the gap reads as missing entries).
        let end = file.metadata()?.len().max(committed);
        Ok(RecordLog {
            file,
            end: AtomicU64::new(end),
        })
    }

    /// Starts a write's entries (writers are serialized by the store).
    pub(super) fn entries(&self) -> Entries {
        Entries {
            base: self.end.load(Ordering::SeqCst),
            bytes: Vec::new(),
        }
    }

    /// Writes the entries to the file (to the operating system, like the journal): before
    /// the batch that points at them commits.
    pub(super) fn append(&self, e: &Entries) -> std::io::Result<()> {
        self.file.write_all_at(&e.bytes, e.base)
    }

    /// The end of the log once `e` is appended: recorded in the batch.
    pub(super) fn end_after(e: &Entries) -> u64 {
        e.base + e.bytes.len() as u64
    }

    /// After the batch committed: the entries are part of the log.
    pub(super) fn committed(&self, e: &Entries) {
        self.end
            .store(e.base + e.bytes.len() as u64, Ordering::SeqCst);
    }

    /// The record at `loc` if the entry there is the one of `place`; `None` otherwise (the
    /// caller then reads `transfers`).
    pub(super) fn read(&self, loc: Loc, place: &[u8], buf: &mut Vec<u8>) -> Option<usize> {
        if loc.offset + u64::from(loc.len) > self.end.load(Ordering::SeqCst) {
            return None;
        }
        buf.resize(usize::from(loc.len), 0);
        self.file.read_exact_at(buf, loc.offset).ok()?;
        let n = usize::from(*buf.first()?);
        (buf.get(1..1 + n)? == place).then_some(1 + n)
    }

    /// Bytes committed.
    pub(super) fn len(&self) -> u64 {
        self.end.load(Ordering::SeqCst)
    }

    pub(super) fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_read_back_only_at_their_place() {
        let dir = tempfile::tempdir().unwrap();
        let log = RecordLog::open(&dir.path().join("r/1.log"), 0).unwrap();
        let mut e = log.entries();
        let a = e.push(b"place-a", b"record a").unwrap();
        let b = e.push(b"place-b", b"record b!").unwrap();
        let mut buf = Vec::new();
        // Not committed yet: nothing is read.
        log.append(&e).unwrap();
        assert_eq!(log.read(a, b"place-a", &mut buf), None);
        log.committed(&e);
        let at = log.read(b, b"place-b", &mut buf).unwrap();
        assert_eq!(&buf[at..], b"record b!");
        assert_eq!(log.read(a, b"place-b", &mut buf), None);
        assert_eq!(Loc::decode(&b.encode()), Some(b));
        // Reopened, the log appends after what is there.
        drop(log);
        let log = RecordLog::open(&dir.path().join("r/1.log"), 0).unwrap();
        let at = log.read(a, b"place-a", &mut buf).unwrap();
        assert_eq!(&buf[at..], b"record a");
        assert_eq!(log.entries().base, RecordLog::end_after(&e));
        // A log that lost its tail is not appended to below the last commit's end.
        drop(log);
        std::fs::remove_file(dir.path().join("r/1.log")).unwrap();
        let log = RecordLog::open(&dir.path().join("r/1.log"), 40).unwrap();
        assert_eq!(log.read(a, b"place-a", &mut buf), None);
        assert_eq!(log.entries().base, 40);
    }
}
