//! The index buffer: the `from`, `to` and `tx` index entries of the newest blocks, held in
//! memory and written to their keyspaces in bulk as sorted tables (fjall's ingestion: no
//! memtable, no journal) once enough have gathered.
//!
//! Why: those three indexes take random keys. Inserted one by one into the memtable they cost
//! a skip-list search each (a third of the old write path's profile), a second copy in the
//! journal and then compaction of small overlapping tables (docs/STORE.md). The records
//! themselves are keyed in block order, so they still go through the atomic batch.
//!
//! The invariant that makes it crash-safe: every record of a block at or above the chain's
//! mark (meta key `x`: blocks below it are indexed in the keyspaces) has its index entries in
//! a buffer, the active one or the one being written out, and every record below the mark
//! has them in the keyspaces. A write to a block below the mark, or inside the range being
//! written out, indexes it directly. The buffers are therefore never the only copy of
//! anything: they are rebuilt from the records at and above the mark when the store opens. A
//! write-out writes the tables first and moves the mark last; a crash in between leaves
//! entries in the keyspaces that the rebuild adds again with the same key, which changes
//! nothing.
//!
//! Readers take the buffers' read lock, then their snapshot, so they see a write's records
//! and its buffered index entries together (the writer commits while holding the write lock).

use std::collections::HashMap;

use foldhash::fast::RandomState;

use alloy_primitives::Address;

use super::layout::{ENTRY_BYTES, IndexRow, entry_value};
use super::log::Loc;

/// No entry (end of a list).
const NIL: u32 = u32::MAX;

/// Head and tail of a per-key list of buffered transfers, in the order they were added.
#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

/// One list per index: a map from the indexed key to its list, and the links.
struct Index<K> {
    /// foldhash with a random seed per process: fast on 20-byte keys and not predictable
    /// from outside (not a cryptographic hash; std's SipHash cost about 5% of the writer).
    lists: HashMap<K, List, RandomState>,
    next: Vec<u32>,
}

impl<K: std::hash::Hash + Eq + Copy> Index<K> {
    fn new() -> Self {
        Index {
            lists: HashMap::default(),
            next: Vec::new(),
        }
    }

    fn push(&mut self, key: K, i: u32) {
        self.next.push(NIL);
        match self.lists.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut l) => {
                let l = l.get_mut();
                self.next[l.tail as usize] = i;
                l.tail = i;
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(List { head: i, tail: i });
            }
        }
    }

    fn iter(&self, key: &K) -> impl Iterator<Item = u32> + '_ {
        let mut at = self.lists.get(key).map_or(NIL, |l| l.head);
        std::iter::from_fn(move || {
            if at == NIL {
                return None;
            }
            let i = at;
            at = self.next[i as usize];
            Some(i)
        })
    }
}

/// The buffered index entries of one chain.
pub(super) struct Pending {
    /// Encoded places of the buffered transfers (block number, tx index, position), back to
    /// back; `ends[i]` is where transfer `i`'s place ends.
    places: Vec<u8>,
    ends: Vec<u32>,
    /// Where their records are in the record log.
    locs: Vec<Loc>,
    /// Their addresses and tx digests, by transfer (the lists answer queries; these are read
    /// in order when the buffer is written out).
    addresses: Vec<[Address; 2]>,
    digests: Vec<[u8; 8]>,
    /// Whether each transfer's amount is zero (the address entries carry it).
    zero: Vec<bool>,
    from: Index<Address>,
    to: Index<Address>,
    tx: Index<[u8; 8]>,
    /// Every transfer was added in block order (lists are then in block order, and a query
    /// can stop early). A write below the buffered blocks clears it.
    ordered: bool,
    last_block: u64,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            places: Vec::new(),
            ends: Vec::new(),
            locs: Vec::new(),
            addresses: Vec::new(),
            digests: Vec::new(),
            zero: Vec::new(),
            from: Index::new(),
            to: Index::new(),
            tx: Index::new(),
            ordered: true,
            last_block: 0,
        }
    }
}

fn block_of(place: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&place[..8]);
    u64::from_be_bytes(b)
}

impl Pending {
    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn place(&self, i: u32) -> &[u8] {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.places[start..self.ends[i] as usize]
    }

    fn loc(&self, i: u32) -> Loc {
        self.locs[i as usize]
    }

    /// Buffers the index entries of a transfer at `place` (block number, tx index, position:
    /// at least 12 bytes) whose record is at `loc` in the log, from `from` to `to` in
    /// transaction `tx` (its digest), moving a zero amount if `zero`.
    pub(super) fn add(
        &mut self,
        place: &[u8],
        loc: Loc,
        [from, to]: [Address; 2],
        tx: [u8; 8],
        zero: bool,
    ) {
        let block = block_of(place);
        if block < self.last_block {
            self.ordered = false;
        }
        self.last_block = self.last_block.max(block);
        let i = u32::try_from(self.ends.len()).unwrap_or(NIL - 1);
        self.places.extend_from_slice(place);
        self.ends.push(self.places.len() as u32);
        self.locs.push(loc);
        self.addresses.push([from, to]);
        self.digests.push(tx);
        self.zero.push(zero);
        self.from.push(from, i);
        self.to.push(to, i);
        self.tx.push(tx, i);
    }

    /// The index rows (place, record location, counterparty, zero amount) of buffered
    /// transfers out of (`outgoing`) or into `address` in blocks `from_block..=to_block`, in
    /// place order, at most `limit`.
    pub(super) fn address(
        &self,
        address: &Address,
        outgoing: bool,
        (from_block, to_block): (u64, u64),
        after: Option<&[u8]>,
        limit: usize,
    ) -> Vec<IndexRow<'_>> {
        let (index, side) = if outgoing {
            (&self.from, 1)
        } else {
            (&self.to, 0)
        };
        let mut out: Vec<IndexRow<'_>> = Vec::new();
        for i in index.iter(address) {
            let p = self.place(i);
            let b = block_of(p);
            // `after` is a place's successor key: the places at or above it are after it.
            if b < from_block || after.is_some_and(|a| p < a) {
                continue;
            }
            if b > to_block {
                // In block order nothing after it is in range.
                if self.ordered {
                    break;
                }
                continue;
            }
            // In block order, the list can stop at the first block after `limit` places:
            // only the order inside a block is left to sort.
            if self.ordered
                && out.len() >= limit
                && out.last().is_some_and(|l| block_of(l.place) != b)
            {
                break;
            }
            out.push(IndexRow {
                place: p,
                loc: self.loc(i),
                side: Some((self.addresses[i as usize][side], self.zero[i as usize])),
            });
        }
        out.sort_unstable_by(|a, b| a.place.cmp(b.place));
        out.truncate(limit);
        out
    }

    /// The (block number, tx index) prefixes of buffered transfers of the transaction whose
    /// digest is `tx`.
    pub(super) fn tx(&self, tx: &[u8; 8]) -> Vec<&[u8]> {
        self.tx.iter(tx).map(|i| &self.place(i)[..12]).collect()
    }

    /// Calls `write(index, key, value)` with the entries of the three indexes in key order,
    /// without duplicates: index 0 `from` and 1 `to` (address, place; the record's location,
    /// the counterparty and flags: `layout::entry_value`), 2 `tx` (digest, block number, tx
    /// index; no value). Sorts compact fixed-size entries, not keys,
    /// and builds each key only to hand it over.
    pub(super) fn sorted_entries<E>(
        &self,
        mut write: impl FnMut(usize, &[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let word = |b: &[u8]| {
            let mut w = [0u8; 8];
            w[..b.len()].copy_from_slice(b);
            u64::from_be_bytes(w)
        };
        let first = (0..self.len()).map(|i| block_of(self.place(i as u32)));
        let low = first.min().unwrap_or(0);
        // Sorted as one integer each: the address's first 8 bytes, the block (relative to the
        // lowest) and the transfer's number. When transfers were added in block order that
        // is (address, place) order but for two things, fixed below: addresses that share
        // their first 8 bytes, and the order inside a block.
        let packed = self.ordered && self.last_block - low < 1 << 32;
        // Each entry's key and value in one 96-byte slot, by transfer, so that writing them
        // out in sorted order reads one slot per entry, not the buffer's scattered vectors (a
        // key too long for its slot, a call nested over 16 deep, is read from them instead).
        const SLOT: usize = 96;
        const INLINE: usize = SLOT - 1 - ENTRY_BYTES;
        let mut slots = vec![0u8; self.len() * SLOT];
        let mut key = Vec::with_capacity(64);
        let mut entries: Vec<u128> = Vec::with_capacity(self.len());
        for n in 0..2 {
            let full = |x: &u128, y: &u128| {
                let (i, j) = (*x as u32, *y as u32);
                self.addresses[i as usize][n]
                    .cmp(&self.addresses[j as usize][n])
                    .then_with(|| self.place(i).cmp(self.place(j)))
            };
            entries.clear();
            for (i, (a, slot)) in self
                .addresses
                .iter()
                .zip(slots.chunks_exact_mut(SLOT))
                .enumerate()
            {
                let p = self.place(i as u32);
                let block = block_of(p).saturating_sub(low);
                entries.push(
                    (u128::from(word(&a[n][..8])) << 64) | (u128::from(block) << 32) | i as u128,
                );
                let len = 20 + p.len();
                if len <= INLINE {
                    slot[0] = len as u8;
                    slot[1..21].copy_from_slice(a[n].as_slice());
                    slot[21..1 + len].copy_from_slice(p);
                    slot[1 + len..1 + len + ENTRY_BYTES].copy_from_slice(&entry_value(
                        self.loc(i as u32),
                        &a[1 - n],
                        self.zero[i],
                    ));
                } else {
                    slot[0] = u8::MAX;
                }
            }
            if packed {
                entries.sort_unstable();
                for run in entries.chunk_by_mut(|x, y| x >> 64 == y >> 64) {
                    if run.windows(2).any(|w| full(&w[0], &w[1]).is_gt()) {
                        run.sort_unstable_by(full);
                    }
                }
            } else {
                entries.sort_unstable_by(full);
            }
            let mut last: Vec<u8> = Vec::with_capacity(64);
            for e in &entries {
                let i = *e as u32;
                let slot = &slots[i as usize * SLOT..][..SLOT];
                let (k, v): (&[u8], [u8; ENTRY_BYTES]) = if slot[0] == u8::MAX {
                    let a = &self.addresses[i as usize];
                    key.clear();
                    key.extend_from_slice(a[n].as_slice());
                    key.extend_from_slice(self.place(i));
                    let v = entry_value(self.loc(i), &a[1 - n], self.zero[i as usize]);
                    (&key, v)
                } else {
                    let len = usize::from(slot[0]);
                    let mut v = [0u8; ENTRY_BYTES];
                    v.copy_from_slice(&slot[1 + len..1 + len + ENTRY_BYTES]);
                    (&slot[1..1 + len], v)
                };
                if k == last.as_slice() {
                    continue;
                }
                last.clear();
                last.extend_from_slice(k);
                write(n, k, &v)?;
            }
        }
        // (digest, block number, tx index): fixed size, sorted as integers.
        let mut entries: Vec<(u64, u64, u32)> = self
            .digests
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let p = self.place(i as u32);
                (
                    u64::from_be_bytes(*d),
                    word(&p[..8]),
                    (word(&p[8..12]) >> 32) as u32,
                )
            })
            .collect();
        entries.sort_unstable();
        entries.dedup();
        for (d, b, t) in entries {
            key.clear();
            key.extend_from_slice(&d.to_be_bytes());
            key.extend_from_slice(&b.to_be_bytes());
            key.extend_from_slice(&t.to_be_bytes());
            write(2, &key, &[])?;
        }
        Ok(())
    }

    /// The highest buffered block.
    pub(super) fn last_block(&self) -> u64 {
        self.last_block
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(block: u64, tx: u32, log: u32) -> Vec<u8> {
        let mut p = block.to_be_bytes().to_vec();
        p.extend_from_slice(&tx.to_be_bytes());
        p.push(1);
        p.extend_from_slice(&log.to_be_bytes());
        p.extend_from_slice(&0u16.to_be_bytes());
        p
    }

    #[test]
    fn queries_return_place_order_from_a_block_and_stop_at_the_limit() {
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let mut p = Pending::default();
        // Inside a block the transfers arrive out of order.
        for (blk, log) in [(5, 2), (5, 1), (6, 0), (7, 3), (7, 1), (8, 0)] {
            let loc = Loc {
                offset: u64::from(log),
                len: 1,
            };
            p.add(&place(blk, 0, log), loc, [a, b], [9; 8], log == 1);
        }
        let got = p.address(&a, true, (6, u64::MAX), None, 2);
        let row =
            |place: &[u8], offset, zero| (place.to_vec(), Loc { offset, len: 1 }, Some((b, zero)));
        assert_eq!(
            got.iter()
                .map(|r| (r.place.to_vec(), r.loc, r.side))
                .collect::<Vec<_>>(),
            vec![
                row(&place(6, 0, 0), 0, false),
                row(&place(7, 0, 1), 1, true)
            ]
        );
        // Into `b`: the counterparty is the sender.
        assert!(
            p.address(&b, false, (0, u64::MAX), None, 10)
                .iter()
                .all(|r| r.side.is_some_and(|(c, _)| c == a))
        );
        let got: Vec<&[u8]> = p
            .address(&b, false, (0, u64::MAX), None, 3)
            .into_iter()
            .map(|e| e.place)
            .collect();
        assert_eq!(
            got,
            vec![
                &place(5, 0, 1)[..],
                &place(5, 0, 2)[..],
                &place(6, 0, 0)[..]
            ]
        );
        assert!(p.address(&b, true, (0, u64::MAX), None, 10).is_empty());
        assert_eq!(p.tx(&[9; 8]).len(), 6);
        let mut keys: [Vec<Vec<u8>>; 3] = Default::default();
        p.sorted_entries(|i, k, v| {
            assert_eq!(v.len(), if i == 2 { 0 } else { ENTRY_BYTES });
            if i < 2 {
                // The counterparty and the zero flag, as `layout::read_entry_value` reads them.
                let (_, side) = super::super::layout::read_entry_value(v).unwrap();
                let log = u32::from_be_bytes(k[33..37].try_into().unwrap());
                assert_eq!(side, Some((if i == 0 { b } else { a }, log == 1)));
            }
            keys[i].push(k.to_vec());
            Ok::<(), ()>(())
        })
        .unwrap();
        let [from, to, tx] = keys;
        assert_eq!(from.len(), 6);
        assert!(from.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(from[0], [&a[..], &place(5, 0, 1)].concat());
        assert_eq!(to.len(), 6);
        // One entry per (block, tx): four blocks, tx 0 each.
        assert_eq!(tx.len(), 4);
    }

    #[test]
    fn a_write_below_the_buffered_blocks_still_answers_in_place_order() {
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let mut p = Pending::default();
        for blk in [10, 11, 3, 12] {
            p.add(
                &place(blk, 0, 0),
                Loc { offset: 0, len: 0 },
                [a, b],
                [blk as u8; 8],
                false,
            );
        }
        let got: Vec<&[u8]> = p
            .address(&a, true, (0, u64::MAX), None, 2)
            .into_iter()
            .map(|e| e.place)
            .collect();
        assert_eq!(got, vec![&place(3, 0, 0)[..], &place(10, 0, 0)[..]]);
        assert_eq!(p.last_block(), 12);
        let p = std::mem::take(&mut p);
        assert!(!p.is_empty() && p.address(&b, false, (20, u64::MAX), None, 2).is_empty());
    }
}
