//! Address queries: a range of the transfers out of or into one address, from the `from` /
//! `to` keyspaces and the index buffers, merged in place order. [`TransferQuery`]'s address
//! variants read each row's record (one positioned read of the record log);
//! [`Store::address_entries`] answers from the entries alone, since format 3 entries carry
//! the counterparty and a zero-amount flag, and reads a record only for a format 2 entry.
//!
//! [`TransferQuery`]: crate::TransferQuery
//! [`Store::address_entries`]: crate::Store::address_entries

use alloy_primitives::Address;
use fjall::{Readable, Snapshot};
use holdfast_primitives::Transfer;

use super::layout::{
    IndexRow, REC_FROM, REC_TO, after_place, read_entry_value, read_place, read_record,
    record_zero_amount,
};
use super::log::Loc;
use super::{Chain, EmbeddedStore, FROM, TO, TRANSFERS};
use crate::codec::{corrupt, prefix_end};
use crate::{AddressEntry, AddressQuery, Direction, Place, StoreError, check_limit};

/// Reads the records behind index rows of one address: from the record log, or from
/// `transfers` when the log does not hold them.
pub(super) struct Records<'a> {
    store: &'a EmbeddedStore,
    chain: &'a Chain,
    snap: &'a Snapshot,
    buf: Vec<u8>,
    address: Address,
    /// Where the queried address is in a record (`REC_FROM` or `REC_TO`).
    at: usize,
}

impl Records<'_> {
    /// Calls `f` with the record at `place` (`loc` in the log), checked to be the queried
    /// address's.
    fn with<T>(
        &mut self,
        place: &[u8],
        loc: Loc,
        f: impl FnOnce(&[u8]) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let fallback;
        let record = match self.chain.log.read(loc, place, &mut self.buf) {
            Some(start) => &self.buf[start..],
            None => {
                fallback = self
                    .snap
                    .get(self.chain.space(TRANSFERS), place)
                    .map_err(|e| self.store.err(e))?
                    .ok_or_else(|| corrupt("address index entry without its transfer"))?;
                &fallback[..]
            }
        };
        if record.get(self.at..self.at + 20) != Some(self.address.as_slice()) {
            return Err(corrupt("address index entry of another address"));
        }
        f(record)
    }
}

impl EmbeddedStore {
    /// Calls `row` with the index rows of the transfers out of (`outgoing`) or into
    /// `address` in blocks `from_block..=to_block`, in place order, at most `limit`, and
    /// collects its answers.
    fn address_query<T>(
        &self,
        chain_id: u64,
        (address, outgoing): (Address, bool),
        (from_block, to_block): (u64, u64),
        after: Option<&Place>,
        limit: usize,
        mut row: impl FnMut(&IndexRow<'_>, &mut Records<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        check_limit(limit)?;
        let Some(chain) = self.chain(chain_id, false)? else {
            return Ok(Vec::new());
        };
        if after.is_some_and(|p| p.block_number > to_block) {
            return Ok(Vec::new());
        }
        // Places after `after` only: its place's successor key, when in the range.
        let after = after
            .filter(|p| p.block_number >= from_block)
            .map(after_place);
        // The buffer before the snapshot: a write commits under the buffer's write lock.
        let buffers = chain.buffers();
        let snap = self.db.snapshot();
        let space = chain.space(if outgoing { FROM } else { TO });
        let start = match &after {
            Some(a) => [address.as_slice(), a].concat(),
            None => [address.as_slice(), &from_block.to_be_bytes()].concat(),
        };
        let end = match to_block.checked_add(1) {
            Some(after) => [address.as_slice(), &after.to_be_bytes()].concat(),
            None => prefix_end(address.as_slice()),
        };
        let mut stored = Vec::new();
        for g in snap.range(space, start..end).take(limit) {
            stored.push(self.kv(g)?);
        }
        // The stored entries and the buffered ones (the same transfer can be in both while
        // the buffer is written out), merged in place order.
        let mut rows: Vec<IndexRow<'_>> = Vec::with_capacity(stored.len());
        for (k, v) in &stored {
            let (loc, side) = read_entry_value(v)?;
            let place = k.get(20..).ok_or_else(|| corrupt("address index key"))?;
            rows.push(IndexRow { place, loc, side });
        }
        let range = (from_block, to_block);
        let after = after.as_deref();
        rows.extend(
            buffers
                .active
                .address(&address, outgoing, range, after, limit),
        );
        if let Some(f) = &buffers.frozen {
            rows.extend(f.address(&address, outgoing, range, after, limit));
        }
        rows.sort_by(|a, b| a.place.cmp(b.place));
        // A stored format 2 entry and a buffered one of the same transfer: keep what the
        // buffered one knows.
        rows.dedup_by(|later, kept| {
            let same = later.place == kept.place;
            if same && kept.side.is_none() {
                kept.side = later.side;
            }
            same
        });
        rows.truncate(limit);
        let mut records = Records {
            store: self,
            chain: &chain,
            snap: &snap,
            buf: Vec::new(),
            address,
            at: if outgoing { REC_FROM } else { REC_TO },
        };
        rows.iter().map(|r| row(r, &mut records)).collect()
    }

    /// The transfers out of or into `address` in a block range, read from their records.
    pub(super) fn address_transfers(
        &self,
        chain_id: u64,
        address: Address,
        outgoing: bool,
        range: (u64, u64),
        after: Option<&Place>,
        limit: usize,
    ) -> Result<Vec<Transfer>, StoreError> {
        self.address_query(
            chain_id,
            (address, outgoing),
            range,
            after,
            limit,
            |r, records| {
                records.with(r.place, r.loc, |record| {
                    read_record(chain_id, r.place, record)
                })
            },
        )
    }

    /// [`crate::Store::address_entries`]: the entries alone (a format 2 entry reads its
    /// record).
    pub(super) fn address_entries_of(
        &self,
        chain_id: u64,
        q: AddressQuery,
        after: Option<&Place>,
        limit: usize,
    ) -> Result<Vec<AddressEntry>, StoreError> {
        let outgoing = q.direction == Direction::Out;
        // The counterparty's place in a record: the receiver of a transfer out.
        let other = if outgoing { REC_TO } else { REC_FROM };
        let range = (q.from_block, q.to_block);
        self.address_query(
            chain_id,
            (q.address, outgoing),
            range,
            after,
            limit,
            |r, records| {
                let (counterparty, zero_amount) = match r.side {
                    Some(side) => side,
                    None => records.with(r.place, r.loc, |record| {
                        let c = record
                            .get(other..other + 20)
                            .ok_or_else(|| corrupt("transfer record"))?;
                        Ok((Address::from_slice(c), record_zero_amount(record)?))
                    })?,
                };
                let (block_number, tx_index, position) = read_place(r.place)?;
                Ok(AddressEntry {
                    block_number,
                    tx_index,
                    position,
                    counterparty,
                    zero_amount,
                })
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use alloy_primitives::{B256, U256};
    use fjall::KeyspaceCreateOptions;
    use holdfast_primitives::{Asset, BlockRef, Position};

    use super::super::layout::ENTRY_BYTES;
    use super::super::{EmbeddedOptions, FORMAT};
    use super::*;
    use crate::{BlockData, Store, TransferQuery};

    const CHAIN: u64 = 5;

    fn addr(n: u8) -> Address {
        Address::repeat_byte(n)
    }

    /// Block `n`: 1 pays 2, 2 pays 1 nothing (a zero-amount token transfer), 1 pays itself.
    fn block(n: u64) -> BlockData {
        let hash = |n: u64| B256::from(U256::from(n + 1));
        let block = BlockRef {
            number: n,
            hash: hash(n),
            parent_hash: if n == 0 { B256::ZERO } else { hash(n - 1) },
            timestamp: n,
        };
        let t = |tx_index: u32, from: u8, to: u8, amount: u64, asset: Asset| Transfer {
            chain_id: CHAIN,
            block_number: n,
            block_hash: block.hash,
            timestamp: n,
            tx_hash: B256::from(U256::from(n * 10 + u64::from(tx_index))),
            tx_index,
            position: Position::Call {
                trace_address: vec![],
            },
            from: addr(from),
            to: addr(to),
            asset,
            amount: U256::from(amount),
        };
        let token = Asset::Erc20 { token: addr(9) };
        BlockData {
            block,
            transfers: vec![
                t(0, 1, 2, 100 + n, Asset::Native),
                t(1, 2, 1, 0, token),
                t(2, 1, 1, 5, Asset::Native),
            ],
            conversions: vec![],
        }
    }

    fn queries() -> Vec<AddressQuery> {
        let mut q = Vec::new();
        for a in [1, 2, 3] {
            for direction in [Direction::Out, Direction::In] {
                for (from_block, to_block) in [(0, u64::MAX), (2, 4), (5, 5)] {
                    q.push(AddressQuery {
                        address: addr(a),
                        direction,
                        from_block,
                        to_block,
                    });
                }
            }
        }
        q
    }

    fn entries(s: &EmbeddedStore) -> Vec<Vec<AddressEntry>> {
        queries()
            .into_iter()
            .map(|q| s.address_entries(CHAIN, q, 100).expect("entries"))
            .collect()
    }

    fn transfers(s: &EmbeddedStore) -> Vec<Vec<Transfer>> {
        queries()
            .into_iter()
            .map(|q| {
                let query = match q.direction {
                    Direction::Out => TransferQuery::FromRange {
                        address: q.address,
                        from_block: q.from_block,
                        to_block: q.to_block,
                    },
                    // (`To` has no end: only the unbounded ranges compare.)
                    Direction::In => TransferQuery::To {
                        address: q.address,
                        from_block: q.from_block,
                    },
                };
                s.transfers(CHAIN, query, 100).expect("transfers")
            })
            .collect()
    }

    /// Every stored address index entry's value length (`from` and `to`).
    fn entry_lengths(s: &EmbeddedStore) -> Vec<usize> {
        let chain = s.chain(CHAIN, false).expect("chain").expect("chain");
        let snap = s.db.snapshot();
        let mut lengths = Vec::new();
        for space in [FROM, TO] {
            for g in snap.iter(chain.space(space)) {
                lengths.push(s.kv(g).expect("entry").1.len());
            }
        }
        lengths
    }

    /// A store written by format 2 (address entries holding the record's location alone)
    /// opens, is marked format 3, and answers every address query as before; entries written
    /// since are format 3 and both kinds are read side by side.
    #[test]
    fn format_2_entries_are_read_by_length_and_the_store_is_marked_format_3() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store");
        let options = EmbeddedOptions {
            index_buffer: 4,
            ..EmbeddedOptions::default()
        };
        let (want_entries, want_transfers);
        {
            let s = EmbeddedStore::open_with(&path, options).expect("open");
            let blocks: Vec<BlockData> = (0..6).map(block).collect();
            s.apply_blocks(CHAIN, &blocks).expect("write");
            s.settle().expect("settle");
            want_entries = entries(&s);
            want_transfers = transfers(&s);
            assert!(want_entries.iter().any(|e| e.iter().any(|e| e.zero_amount)));
            // Rewrite the store as format 2 wrote it: entries cut to the location.
            let lengths = entry_lengths(&s);
            assert!(!lengths.is_empty() && lengths.iter().all(|&l| l == ENTRY_BYTES));
            let chain = s.chain(CHAIN, false).expect("chain").expect("chain");
            let snap = s.db.snapshot();
            let mut batch = s.db.batch();
            for space in [FROM, TO] {
                for g in snap.iter(chain.space(space)) {
                    let (k, v) = s.kv(g).expect("entry");
                    batch.insert(chain.space(space), k, v[..Loc::BYTES].to_vec());
                }
            }
            let meta =
                s.db.keyspace("holdfast", KeyspaceCreateOptions::default)
                    .expect("keyspace");
            batch.insert(&meta, "format", 2u32.to_be_bytes());
            batch.commit().expect("commit");
            s.sync().expect("sync");
        }
        let s = EmbeddedStore::open_with(&path, options).expect("a format 2 store opens");
        let meta =
            s.db.keyspace("holdfast", KeyspaceCreateOptions::default)
                .expect("keyspace");
        let format = meta.get("format").expect("get").expect("format");
        assert_eq!(&format[..], FORMAT.to_be_bytes(), "marked format 3");
        assert!(entry_lengths(&s).iter().all(|&l| l == Loc::BYTES));
        assert_eq!(entries(&s), want_entries, "format 2 entries");
        assert_eq!(transfers(&s), want_transfers, "format 2 entries' transfers");
        // New blocks: format 3 entries (buffered, then written out) beside format 2 ones.
        s.apply_blocks(CHAIN, &[block(6), block(7)])
            .expect("write more");
        let mixed = entries(&s);
        s.settle().expect("settle");
        let lengths = entry_lengths(&s);
        assert!(lengths.contains(&Loc::BYTES) && lengths.contains(&ENTRY_BYTES));
        assert_eq!(entries(&s), mixed);
        let all = s
            .address_entries(
                CHAIN,
                AddressQuery {
                    address: addr(2),
                    direction: Direction::Out,
                    from_block: 0,
                    to_block: u64::MAX,
                },
                100,
            )
            .expect("entries");
        assert_eq!(all.len(), 8);
        assert!(
            all.iter()
                .all(|e| e.counterparty == addr(1) && e.zero_amount)
        );
    }

    /// Format 3 entries answer `address_entries` alone: with every record gone (the record
    /// log and `transfers`), the entries still answer, while the transfers cannot be read.
    #[test]
    fn address_entries_read_no_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store");
        // The first blocks written out to the keyspaces, the last ones buffered.
        let options = EmbeddedOptions {
            index_buffer: 9,
            ..EmbeddedOptions::default()
        };
        let s = EmbeddedStore::open_with(&path, options).expect("open");
        for n in 0..6 {
            s.apply_blocks(CHAIN, &[block(n)]).expect("write");
        }
        let want = entries(&s);
        let chain = s.chain(CHAIN, false).expect("chain").expect("chain");
        let snap = s.db.snapshot();
        let mut batch = s.db.batch();
        for g in snap.iter(chain.space(TRANSFERS)) {
            batch.remove(chain.space(TRANSFERS), s.kv(g).expect("record").0);
        }
        batch.commit().expect("commit");
        let len = std::fs::metadata(path.join("records").join(format!("{CHAIN}.log")))
            .expect("log")
            .len();
        std::fs::write(
            path.join("records").join(format!("{CHAIN}.log")),
            vec![0x5a; len as usize],
        )
        .expect("damage the log");
        assert_eq!(entries(&s), want);
        let err = s
            .transfers(
                CHAIN,
                TransferQuery::From {
                    address: addr(1),
                    from_block: 0,
                },
                100,
            )
            .expect_err("the records are gone");
        assert!(err.to_string().contains("without its transfer"), "{err}");
    }

    /// Formats this Holdfast cannot read are refused, saying what to do.
    #[test]
    fn other_formats_are_refused_naming_the_way_out() {
        for (format, says) in [(1u32, "rebuild the store"), (4, "upgrade Holdfast")] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("store");
            {
                let s = EmbeddedStore::open(&path).expect("open");
                let meta =
                    s.db.keyspace("holdfast", KeyspaceCreateOptions::default)
                        .expect("keyspace");
                meta.insert("format", format.to_be_bytes()).expect("insert");
                s.sync().expect("sync");
            }
            let err = EmbeddedStore::open(&path).expect_err("refused");
            let text = err.to_string();
            assert!(
                text.contains(&format!("store format {format}")) && text.contains(says),
                "{text}"
            );
        }
    }
}
