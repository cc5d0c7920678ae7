//! The embedded store's bytes: keyspaces, keys and values (see the table in the module
//! above), and the staging buffer a write is assembled in. Part of the on-disk format:
//! changing an encoding means a new `FORMAT`.

use alloy_primitives::{Address, B256};
use holdfast_primitives::{Position, Transfer};

use super::log::{Entries, Loc};
use crate::StoreError;
use crate::codec::{self, Reader};

/// Flag bit of a transfer record: imported (no block written with it; keeps its own block
/// hash and survives unwinds).
pub(super) const IMPORTED: u8 = 1;

/// Meta key: the mark. Every block below it has its index entries in the keyspaces; blocks
/// at or above it have them in the index buffers (see `pending`).
pub(super) const INDEXED_KEY: &[u8] = b"x";

/// Meta key: the record log's end after the last commit (module `log`).
pub(super) const LOG_END_KEY: &[u8] = b"l";

pub(super) const META: usize = 0;
pub(super) const TRANSFERS: usize = 1;
pub(super) const FROM: usize = 2;
pub(super) const TO: usize = 3;
pub(super) const TX: usize = 4;
pub(super) const ASSET: usize = 5;
pub(super) const SPACES: [(&str, bool); 6] = [
    // (name, point lookups: worth a bloom filter)
    ("meta", true),
    ("transfers", true),
    ("from", false),
    ("to", false),
    ("tx", false),
    ("asset", false),
];

/// Key-value pairs and deletions of one write, in one buffer, sorted before they go into
/// the batch (sorted inserts are markedly cheaper for the memtable).
pub(super) struct Staged {
    pub(super) arena: Vec<u8>,
    /// (keyspace, key start, key end = value start, value end)
    pub(super) puts: Vec<(usize, usize, usize, usize)>,
    /// (keyspace, key start, key end)
    pub(super) dels: Vec<(usize, usize, usize)>,
    /// The last few keys `put_once` staged (indexes into `puts`).
    recent: [usize; 4],
    recent_at: usize,
}

impl Default for Staged {
    fn default() -> Self {
        Staged {
            arena: Vec::new(),
            puts: Vec::new(),
            dels: Vec::new(),
            recent: [usize::MAX; 4],
            recent_at: 0,
        }
    }
}

impl Staged {
    pub(super) fn put(&mut self, space: usize, key: &[&[u8]], value: &[&[u8]]) {
        let start = self.arena.len();
        for k in key {
            self.arena.extend_from_slice(k);
        }
        let mid = self.arena.len();
        for v in value {
            self.arena.extend_from_slice(v);
        }
        self.puts.push((space, start, mid, self.arena.len()));
    }

    /// A put whose value is encoded by `value`.
    pub(super) fn put_with(
        &mut self,
        space: usize,
        key: &[&[u8]],
        value: impl FnOnce(&mut Vec<u8>),
    ) {
        let start = self.arena.len();
        for k in key {
            self.arena.extend_from_slice(k);
        }
        let mid = self.arena.len();
        value(&mut self.arena);
        self.puts.push((space, start, mid, self.arena.len()));
    }

    /// A put with no value, skipped when one of the last few `put_once` keys is the same
    /// (the asset index: one key per asset and block, staged once per transfer). Duplicates
    /// it misses are dropped at commit.
    pub(super) fn put_once(&mut self, space: usize, key: &[&[u8]]) {
        let len: usize = key.iter().map(|k| k.len()).sum();
        let same = |p: &(usize, usize, usize, usize)| {
            p.0 == space && p.2 - p.1 == len && {
                let mut at = p.1;
                key.iter().all(|k| {
                    let hit = self.arena[at..at + k.len()] == **k;
                    at += k.len();
                    hit
                })
            }
        };
        if self
            .recent
            .iter()
            .any(|&i| self.puts.get(i).is_some_and(same))
        {
            return;
        }
        self.recent[self.recent_at % self.recent.len()] = self.puts.len();
        self.recent_at += 1;
        self.put(space, key, &[]);
    }

    pub(super) fn del(&mut self, space: usize, key: &[&[u8]]) {
        let start = self.arena.len();
        for k in key {
            self.arena.extend_from_slice(k);
        }
        self.dels.push((space, start, self.arena.len()));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.dels.is_empty()
    }
}

pub(super) fn block_key(number: u64) -> [u8; 9] {
    let mut k = [b'b'; 9];
    k[1..].copy_from_slice(&number.to_be_bytes());
    k
}

pub(super) fn imported_key(number: u64) -> [u8; 9] {
    let mut k = [b'i'; 9];
    k[1..].copy_from_slice(&number.to_be_bytes());
    k
}

pub(super) const COUNTS_KEY: &[u8] = b"c";

/// Block number, tx index, position: a transfer's place in block order.
pub(super) fn place(t: &Transfer, out: &mut Vec<u8>) {
    out.extend_from_slice(&t.block_number.to_be_bytes());
    out.extend_from_slice(&t.tx_index.to_be_bytes());
    codec::position(&t.position, out);
}

/// The smallest key after `p`'s place (`place || 0x00`: keys sort as bytes, so every place
/// after `p` is at or above it, and nothing between): where a page after `p` starts.
pub(super) fn after_place(p: &crate::Place) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    out.extend_from_slice(&p.block_number.to_be_bytes());
    out.extend_from_slice(&p.tx_index.to_be_bytes());
    codec::position(&p.position, &mut out);
    out.push(0);
    out
}

/// The transaction index's 8-byte digest of a tx hash: its four words folded and mixed
/// (SplitMix64's finalizer), so that hashes that are not uniformly random (imports, tests)
/// still spread. Collisions only cost a filtered read. Part of the on-disk format.
pub(super) fn tx_digest(tx_hash: &B256) -> [u8; 8] {
    let mut x = 0u64;
    for w in tx_hash.0.chunks_exact(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        x ^= u64::from_be_bytes(b);
    }
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (x ^ (x >> 31)).to_be_bytes()
}

/// The asset index prefix: 0 for the native coin, 1 and the token otherwise.
pub(super) fn asset_prefix(token: Option<Address>) -> Vec<u8> {
    match token {
        None => vec![0],
        Some(t) => [&[1u8][..], t.as_slice()].concat(),
    }
}

/// Offsets in a `transfers` record.
pub(super) const REC_TX_HASH: usize = 1;
pub(super) const REC_FROM: usize = 41;
pub(super) const REC_TO: usize = 61;
pub(super) const REC_ASSET: usize = 81;

fn record(t: &Transfer, imported: bool, out: &mut Vec<u8>) {
    out.push(if imported { IMPORTED } else { 0 });
    out.extend_from_slice(t.tx_hash.as_slice());
    out.extend_from_slice(&t.timestamp.to_be_bytes());
    out.extend_from_slice(t.from.as_slice());
    out.extend_from_slice(t.to.as_slice());
    codec::put_asset(&t.asset, out);
    codec::put_amount(t.amount, out);
    // Last, so that the offsets above stay fixed: a query reads nothing but the record.
    out.extend_from_slice(t.block_hash.as_slice());
}

/// Flag bit of an address index entry: the transfer's amount is zero.
pub(super) const ZERO_AMOUNT: u8 = 1;

/// Bytes of an address index entry's value (format 3): where the record is in the log, the
/// counterparty (the receiver in `from`, the sender in `to`) and flags ([`ZERO_AMOUNT`]).
/// A wallet's history reads these without reading the record. Format 2 entries hold the
/// location alone ([`Loc::BYTES`]); they are read by length, the rest from the record.
pub(super) const ENTRY_BYTES: usize = Loc::BYTES + 21;

/// An address index entry's value.
pub(super) fn entry_value(loc: Loc, counterparty: &Address, zero: bool) -> [u8; ENTRY_BYTES] {
    let mut v = [0u8; ENTRY_BYTES];
    v[..Loc::BYTES].copy_from_slice(&loc.encode());
    v[Loc::BYTES..Loc::BYTES + 20].copy_from_slice(counterparty.as_slice());
    v[ENTRY_BYTES - 1] = if zero { ZERO_AMOUNT } else { 0 };
    v
}

/// An address index entry: the transfer's place, where its record is, and (format 3) its
/// counterparty and whether its amount is zero (`None`: a format 2 entry, read the record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IndexRow<'a> {
    pub(super) place: &'a [u8],
    pub(super) loc: Loc,
    pub(super) side: Option<(Address, bool)>,
}

/// Decodes an address index entry's value, by its length (format 3, or format 2's location
/// alone).
pub(super) fn read_entry_value(v: &[u8]) -> Result<(Loc, Option<(Address, bool)>), StoreError> {
    let bad = || codec::corrupt("address index entry");
    match v.len() {
        ENTRY_BYTES => {
            let loc = Loc::decode(&v[..Loc::BYTES]).ok_or_else(bad)?;
            let flags = v[ENTRY_BYTES - 1];
            if flags & !ZERO_AMOUNT != 0 {
                return Err(bad());
            }
            let counterparty = Address::from_slice(&v[Loc::BYTES..Loc::BYTES + 20]);
            Ok((loc, Some((counterparty, flags & ZERO_AMOUNT != 0))))
        }
        Loc::BYTES => Ok((Loc::decode(v).ok_or_else(bad)?, None)),
        _ => Err(bad()),
    }
}

/// Whether a `transfers` record's amount is zero.
pub(super) fn record_zero_amount(record: &[u8]) -> Result<bool, StoreError> {
    let mut r = Reader(
        record
            .get(REC_ASSET..)
            .ok_or_else(|| codec::corrupt("transfer record"))?,
    );
    r.asset()?;
    Ok(r.amount()?.is_zero())
}

/// Stages a transfer's record, appends it to the write's record log `entries` and, if
/// `direct`, stages its `from`, `to` and `tx` index entries (otherwise they go to the index
/// buffer, see `pending`). An address entry is the address and the place; its value is where
/// the record is in the log, the counterparty and flags ([`entry_value`]). Returns that
/// location (length 0: none, read `transfers`).
pub(super) fn stage_transfer(
    s: &mut Staged,
    entries: &mut Entries,
    t: &Transfer,
    imported: bool,
    direct: bool,
    place_buf: &mut Vec<u8>,
) -> Loc {
    place_buf.clear();
    place(t, place_buf);
    let p = place_buf.as_slice();
    s.put_with(TRANSFERS, &[p], |out| record(t, imported, out));
    let (_, _, start, end) = s.puts[s.puts.len() - 1];
    let loc = entries
        .push(p, &s.arena[start..end])
        .unwrap_or(Loc { offset: 0, len: 0 });
    if direct {
        let zero = t.amount.is_zero();
        s.put(
            FROM,
            &[t.from.as_slice(), p],
            &[&entry_value(loc, &t.to, zero)],
        );
        s.put(
            TO,
            &[t.to.as_slice(), p],
            &[&entry_value(loc, &t.from, zero)],
        );
        s.put(TX, &[&tx_digest(&t.tx_hash), &p[..12]], &[]);
    }
    s.put_once(
        ASSET,
        &[
            &asset_prefix(t.asset.token()),
            &t.block_number.to_be_bytes(),
        ],
    );
    loc
}

pub(super) fn read_place(b: &[u8]) -> Result<(u64, u32, Position), StoreError> {
    let mut r = Reader(b);
    let number = r.u64()?;
    let tx_index = r.u32()?;
    Ok((number, tx_index, codec::read_position(r.0)?))
}

/// Decodes a `transfers` record.
pub(super) fn read_record(chain_id: u64, key: &[u8], value: &[u8]) -> Result<Transfer, StoreError> {
    let (block_number, tx_index, position) = read_place(key)?;
    let mut r = Reader(value);
    r.u8()?;
    let tx_hash = r.b256()?;
    let timestamp = r.u64()?;
    let from = r.address()?;
    let to = r.address()?;
    let asset = r.asset()?;
    let amount = r.amount()?;
    let block_hash = r.b256()?;
    Ok(Transfer {
        chain_id,
        block_number,
        block_hash,
        timestamp,
        tx_hash,
        tx_index,
        position,
        from,
        to,
        asset,
        amount,
    })
}

pub(super) fn read_counts(v: Option<&[u8]>) -> Result<[u64; 3], StoreError> {
    let Some(v) = v else { return Ok([0; 3]) };
    let mut r = Reader(v);
    Ok([r.u64()?, r.u64()?, r.u64()?])
}

pub(super) fn counts_value(c: [u64; 3]) -> [u8; 24] {
    let mut v = [0u8; 24];
    for (i, x) in c.iter().enumerate() {
        v[i * 8..i * 8 + 8].copy_from_slice(&x.to_be_bytes());
    }
    v
}
