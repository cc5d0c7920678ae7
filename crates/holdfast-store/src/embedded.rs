//! The embedded backend: one redb file (copy-on-write B-trees, crash-safe commits, pure
//! Rust). Tables hold byte keys built by [`codec`] so that byte order is block order:
//!
//! | table | key | value |
//! |---|---|---|
//! | `blocks` | chain, number | hash, parent hash, timestamp |
//! | `transfers` | chain, block, tx index, position | tx hash, timestamp, from, to, asset, amount |
//! | `by_from` / `by_to` | chain, address, block, tx index, position | — |
//! | `by_asset` | chain, asset (native flag, token), block, tx index, position | — |
//! | `by_tx` | chain, tx hash, position | block, tx index |
//! | `conversions` | chain, block, tx index, log index | the conversion |
//! | `conv_by_tx` | chain, tx hash, log index | block, tx index |
//! | `counts` | chain | blocks, transfers, conversions |

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::path::{Path, PathBuf};

use alloy_primitives::{B256, U256};
use holdfast_primitives::{Asset, BlockRef, Conversion, Transfer};
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};

use crate::codec::{self, Reader};
use crate::{
    Applied, BlockData, Store, StoreError, StoreStats, TransferQuery, check_limit, validate,
};

type Bytes = &'static [u8];
const BLOCKS: TableDefinition<Bytes, Bytes> = TableDefinition::new("blocks");
const TRANSFERS: TableDefinition<Bytes, Bytes> = TableDefinition::new("transfers");
const BY_FROM: TableDefinition<Bytes, ()> = TableDefinition::new("by_from");
const BY_TO: TableDefinition<Bytes, ()> = TableDefinition::new("by_to");
const BY_ASSET: TableDefinition<Bytes, ()> = TableDefinition::new("by_asset");
const BY_TX: TableDefinition<Bytes, Bytes> = TableDefinition::new("by_tx");
const CONVERSIONS: TableDefinition<Bytes, Bytes> = TableDefinition::new("conversions");
const CONV_BY_TX: TableDefinition<Bytes, Bytes> = TableDefinition::new("conv_by_tx");
const COUNTS: TableDefinition<u64, [u64; 3]> = TableDefinition::new("counts");

/// The embedded store. Cheap to share behind an `Arc`; redb serializes writers.
pub struct EmbeddedStore {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The tables of one write transaction.
struct Tables<'t> {
    blocks: Table<'t, Bytes, Bytes>,
    transfers: Table<'t, Bytes, Bytes>,
    by_from: Table<'t, Bytes, ()>,
    by_to: Table<'t, Bytes, ()>,
    by_asset: Table<'t, Bytes, ()>,
    by_tx: Table<'t, Bytes, Bytes>,
    conversions: Table<'t, Bytes, Bytes>,
    conv_by_tx: Table<'t, Bytes, Bytes>,
    counts: Table<'t, u64, [u64; 3]>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store file at `path`, creating its directory.
    pub fn open(path: &Path) -> Result<EmbeddedStore, StoreError> {
        let err = |e: &dyn Display| StoreError::Embedded {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
        }
        let db = Database::builder()
            .set_cache_size(512 << 20)
            .create(path)
            .map_err(|e| err(&e))?;
        let store = EmbeddedStore {
            db,
            path: path.to_owned(),
        };
        // Create every table, so readers never see a missing one.
        let txn = store.db.begin_write().map_err(|e| store.err(e))?;
        store.tables(&txn)?;
        txn.commit().map_err(|e| store.err(e))?;
        Ok(store)
    }

    fn err(&self, e: impl Display) -> StoreError {
        StoreError::Embedded {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    fn tables<'t>(&self, txn: &'t redb::WriteTransaction) -> Result<Tables<'t>, StoreError> {
        let e = |x: redb::TableError| self.err(x);
        Ok(Tables {
            blocks: txn.open_table(BLOCKS).map_err(e)?,
            transfers: txn.open_table(TRANSFERS).map_err(e)?,
            by_from: txn.open_table(BY_FROM).map_err(e)?,
            by_to: txn.open_table(BY_TO).map_err(e)?,
            by_asset: txn.open_table(BY_ASSET).map_err(e)?,
            by_tx: txn.open_table(BY_TX).map_err(e)?,
            conversions: txn.open_table(CONVERSIONS).map_err(e)?,
            conv_by_tx: txn.open_table(CONV_BY_TX).map_err(e)?,
            counts: txn.open_table(COUNTS).map_err(e)?,
        })
    }

    /// Inserts a transfer and its index entries; false if it was already there.
    fn put_transfer(
        &self,
        t: &mut Tables<'_>,
        tr: &Transfer,
        tied: bool,
        scratch: &mut Scratch,
    ) -> Result<bool, StoreError> {
        let e = |x: redb::StorageError| self.err(x);
        let chain = codec::chain(tr.chain_id);
        scratch.suffix.clear();
        codec::order_suffix(tr, &mut scratch.suffix);
        scratch.key.clear();
        scratch.key.extend_from_slice(&chain);
        scratch.key.extend_from_slice(&scratch.suffix);
        scratch.value.clear();
        codec::transfer_value(tr, tied, &mut scratch.value);
        // Already stored (an import seen before): keep the stored one and its index entries.
        if t.transfers
            .get(scratch.key.as_slice())
            .map_err(e)?
            .is_some()
        {
            return Ok(false);
        }
        t.transfers
            .insert(scratch.key.as_slice(), scratch.value.as_slice())
            .map_err(e)?;
        for (table, addr) in [(&mut t.by_from, tr.from), (&mut t.by_to, tr.to)] {
            scratch.key.clear();
            scratch.key.extend_from_slice(&chain);
            scratch.key.extend_from_slice(addr.as_slice());
            scratch.key.extend_from_slice(&scratch.suffix);
            table.insert(scratch.key.as_slice(), ()).map_err(e)?;
        }
        scratch.key.clear();
        scratch.key.extend_from_slice(&chain);
        codec::asset_index(tr.asset.token(), &mut scratch.key);
        scratch.key.extend_from_slice(&scratch.suffix);
        t.by_asset.insert(scratch.key.as_slice(), ()).map_err(e)?;
        scratch.key.clear();
        scratch.key.extend_from_slice(&chain);
        scratch.key.extend_from_slice(tr.tx_hash.as_slice());
        codec::position(&tr.position, &mut scratch.key);
        t.by_tx
            .insert(scratch.key.as_slice(), &scratch.suffix[..12])
            .map_err(e)?;
        Ok(true)
    }

    fn remove_transfer(
        &self,
        t: &mut Tables<'_>,
        tr: &Transfer,
        scratch: &mut Scratch,
    ) -> Result<(), StoreError> {
        let e = |x: redb::StorageError| self.err(x);
        let chain = codec::chain(tr.chain_id);
        scratch.suffix.clear();
        codec::order_suffix(tr, &mut scratch.suffix);
        let mut keys: Vec<Vec<u8>> = Vec::with_capacity(4);
        keys.push([&chain[..], &scratch.suffix].concat());
        t.transfers.remove(keys[0].as_slice()).map_err(e)?;
        for (table, addr) in [(&mut t.by_from, tr.from), (&mut t.by_to, tr.to)] {
            table
                .remove(
                    [&chain[..], addr.as_slice(), &scratch.suffix]
                        .concat()
                        .as_slice(),
                )
                .map_err(e)?;
        }
        let mut asset = chain.to_vec();
        codec::asset_index(tr.asset.token(), &mut asset);
        asset.extend_from_slice(&scratch.suffix);
        t.by_asset.remove(asset.as_slice()).map_err(e)?;
        let mut tx = [&chain[..], tr.tx_hash.as_slice()].concat();
        codec::position(&tr.position, &mut tx);
        t.by_tx.remove(tx.as_slice()).map_err(e)?;
        Ok(())
    }

    fn bump(&self, t: &mut Tables<'_>, chain_id: u64, delta: [i64; 3]) -> Result<(), StoreError> {
        let e = |x: redb::StorageError| self.err(x);
        let mut c = t
            .counts
            .get(chain_id)
            .map_err(e)?
            .map_or([0; 3], |v| v.value());
        for (c, d) in c.iter_mut().zip(delta) {
            *c = c.saturating_add_signed(d);
        }
        t.counts.insert(chain_id, c).map_err(e)?;
        Ok(())
    }

    fn read(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.db.begin_read().map_err(|e| self.err(e))
    }
}

#[derive(Default)]
struct Scratch {
    key: Vec<u8>,
    suffix: Vec<u8>,
    value: Vec<u8>,
}

/// The smallest key above every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    vec![u8::MAX; prefix.len() + 1]
}

impl Store for EmbeddedStore {
    fn apply_blocks(
        &self,
        chain_id: u64,
        blocks: &[BlockData],
    ) -> Result<Vec<Applied>, StoreError> {
        validate(chain_id, blocks)?;
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut applied = Vec::with_capacity(blocks.len());
        {
            let mut t = self.tables(&txn)?;
            let e = |x: redb::StorageError| self.err(x);
            let mut scratch = Scratch::default();
            for b in blocks {
                let n = b.block.number;
                if let Some(v) = t
                    .blocks
                    .get(codec::block_key(chain_id, n).as_slice())
                    .map_err(e)?
                {
                    let stored = codec::read_block(n, v.value())?;
                    if stored.hash == b.block.hash {
                        applied.push(Applied::AlreadyPresent);
                        continue;
                    }
                    return Err(StoreError::Conflict {
                        chain_id,
                        number: n,
                        stored: stored.hash,
                        new: b.block.hash,
                    });
                }
                if let Some(below) = n.checked_sub(1)
                    && let Some(v) = t
                        .blocks
                        .get(codec::block_key(chain_id, below).as_slice())
                        .map_err(e)?
                {
                    let stored = codec::read_block(below, v.value())?;
                    if stored.hash != b.block.parent_hash {
                        return Err(StoreError::ParentMismatch {
                            chain_id,
                            number: n,
                            parent: b.block.parent_hash,
                            below,
                            stored: stored.hash,
                        });
                    }
                }
                t.blocks
                    .insert(
                        codec::block_key(chain_id, n).as_slice(),
                        codec::block_value(&b.block).as_slice(),
                    )
                    .map_err(e)?;
                let mut added = 0i64;
                for tr in &b.transfers {
                    added += i64::from(self.put_transfer(&mut t, tr, true, &mut scratch)?);
                }
                for c in &b.conversions {
                    let mut key = codec::chain(chain_id).to_vec();
                    key.extend_from_slice(&n.to_be_bytes());
                    key.extend_from_slice(&c.tx_index.to_be_bytes());
                    key.extend_from_slice(&c.log_index.to_be_bytes());
                    scratch.value.clear();
                    codec::conversion_value(c, &mut scratch.value);
                    t.conversions
                        .insert(key.as_slice(), scratch.value.as_slice())
                        .map_err(e)?;
                    let by_tx = [
                        &codec::chain(chain_id)[..],
                        c.tx_hash.as_slice(),
                        &c.log_index.to_be_bytes(),
                    ]
                    .concat();
                    t.conv_by_tx
                        .insert(by_tx.as_slice(), &key[8..20])
                        .map_err(e)?;
                }
                self.bump(&mut t, chain_id, [1, added, b.conversions.len() as i64])?;
                applied.push(Applied::Written);
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(applied)
    }

    fn unwind_above(&self, chain_id: u64, number: u64) -> Result<Vec<BlockRef>, StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut removed = Vec::new();
        {
            let mut t = self.tables(&txn)?;
            let e = |x: redb::StorageError| self.err(x);
            let start = codec::block_key(chain_id, number.saturating_add(1));
            let end = prefix_end(&codec::chain(chain_id));
            for item in t
                .blocks
                .range(start.as_slice()..end.as_slice())
                .map_err(e)?
            {
                let (k, v) = item.map_err(e)?;
                let n = Reader(&k.value()[8..]).u64()?;
                removed.push(codec::read_block(n, v.value())?);
            }
            let mut scratch = Scratch::default();
            for b in &removed {
                let prefix = codec::block_key(chain_id, b.number);
                let mut doomed = Vec::new();
                for item in t
                    .transfers
                    .range(prefix.as_slice()..prefix_end(&prefix).as_slice())
                    .map_err(e)?
                {
                    let (k, v) = item.map_err(e)?;
                    let (tr, tied) =
                        codec::read_transfer(chain_id, &k.value()[8..], v.value(), |_| Ok(b.hash))?;
                    if tied {
                        doomed.push(tr);
                    }
                }
                for tr in &doomed {
                    self.remove_transfer(&mut t, tr, &mut scratch)?;
                }
                let mut convs = Vec::new();
                for item in t
                    .conversions
                    .range(prefix.as_slice()..prefix_end(&prefix).as_slice())
                    .map_err(e)?
                {
                    let (k, v) = item.map_err(e)?;
                    convs.push((k.value().to_vec(), Reader(v.value()).b256()?));
                }
                for (k, tx_hash) in &convs {
                    t.conversions.remove(k.as_slice()).map_err(e)?;
                    let by_tx = [&k[..8], tx_hash.as_slice(), &k[20..24]].concat();
                    t.conv_by_tx.remove(by_tx.as_slice()).map_err(e)?;
                }
                t.blocks.remove(prefix.as_slice()).map_err(e)?;
                self.bump(
                    &mut t,
                    chain_id,
                    [-1, -(doomed.len() as i64), -(convs.len() as i64)],
                )?;
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(removed)
    }

    fn head(&self, chain_id: u64) -> Result<Option<BlockRef>, StoreError> {
        let txn = self.read()?;
        let blocks = txn.open_table(BLOCKS).map_err(|e| self.err(e))?;
        let start = codec::chain(chain_id);
        let end = prefix_end(&start);
        let last = blocks
            .range(start.as_slice()..end.as_slice())
            .map_err(|e| self.err(e))?
            .next_back();
        match last {
            Some(item) => {
                let (k, v) = item.map_err(|e| self.err(e))?;
                Ok(Some(codec::read_block(
                    Reader(&k.value()[8..]).u64()?,
                    v.value(),
                )?))
            }
            None => Ok(None),
        }
    }

    fn block(&self, chain_id: u64, number: u64) -> Result<Option<BlockRef>, StoreError> {
        let txn = self.read()?;
        let blocks = txn.open_table(BLOCKS).map_err(|e| self.err(e))?;
        let v = blocks
            .get(codec::block_key(chain_id, number).as_slice())
            .map_err(|e| self.err(e))?;
        v.map(|v| codec::read_block(number, v.value())).transpose()
    }

    fn transfers(
        &self,
        chain_id: u64,
        query: TransferQuery,
        limit: usize,
    ) -> Result<Vec<Transfer>, StoreError> {
        check_limit(limit)?;
        let txn = self.read()?;
        let e = |x: redb::StorageError| self.err(x);
        let te = |x: redb::TableError| self.err(x);
        let main = txn.open_table(TRANSFERS).map_err(te)?;
        let blocks = txn.open_table(BLOCKS).map_err(te)?;
        let mut hashes: HashMap<u64, B256> = HashMap::new();
        let mut block_hash = |n: u64| -> Result<B256, StoreError> {
            if let Some(h) = hashes.get(&n) {
                return Ok(*h);
            }
            let v = blocks
                .get(codec::block_key(chain_id, n).as_slice())
                .map_err(e)?
                .ok_or_else(|| codec::corrupt("transfer of a missing block"))?;
            let h = codec::read_block(n, v.value())?.hash;
            hashes.insert(n, h);
            Ok(h)
        };
        let chain = codec::chain(chain_id);
        // Each query walks an index whose keys end with the order suffix (or, for by_tx, map to it).
        let (table, prefix, from_block) = match query {
            TransferQuery::From {
                address,
                from_block,
            } => (
                BY_FROM,
                [&chain[..], address.as_slice()].concat(),
                from_block,
            ),
            TransferQuery::To {
                address,
                from_block,
            } => (BY_TO, [&chain[..], address.as_slice()].concat(), from_block),
            TransferQuery::Asset { token, from_block } => {
                let mut p = chain.to_vec();
                codec::asset_index(token, &mut p);
                (BY_ASSET, p, from_block)
            }
            TransferQuery::Tx { tx_hash } => {
                let by_tx = txn.open_table(BY_TX).map_err(te)?;
                let prefix = [&chain[..], tx_hash.as_slice()].concat();
                let mut out = Vec::new();
                for item in by_tx
                    .range(prefix.as_slice()..prefix_end(&prefix).as_slice())
                    .map_err(e)?
                    .take(limit)
                {
                    let (k, v) = item.map_err(e)?;
                    let suffix = [v.value(), &k.value()[prefix.len()..]].concat();
                    let main_key = [&chain[..], &suffix].concat();
                    let value = main
                        .get(main_key.as_slice())
                        .map_err(e)?
                        .ok_or_else(|| codec::corrupt("index entry without transfer"))?;
                    out.push(
                        codec::read_transfer(chain_id, &suffix, value.value(), &mut block_hash)?.0,
                    );
                }
                out.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
                return Ok(out);
            }
        };
        let index = txn.open_table(table).map_err(te)?;
        let start = [&prefix[..], &from_block.to_be_bytes()].concat();
        let mut out = Vec::new();
        for item in index
            .range(start.as_slice()..prefix_end(&prefix).as_slice())
            .map_err(e)?
            .take(limit)
        {
            let (k, _) = item.map_err(e)?;
            let suffix = &k.value()[prefix.len()..];
            let main_key = [&chain[..], suffix].concat();
            let value = main
                .get(main_key.as_slice())
                .map_err(e)?
                .ok_or_else(|| codec::corrupt("index entry without transfer"))?;
            out.push(codec::read_transfer(chain_id, suffix, value.value(), &mut block_hash)?.0);
        }
        Ok(out)
    }

    fn conversions_of_tx(
        &self,
        chain_id: u64,
        tx_hash: B256,
    ) -> Result<Vec<Conversion>, StoreError> {
        let txn = self.read()?;
        let e = |x: redb::StorageError| self.err(x);
        let te = |x: redb::TableError| self.err(x);
        let by_tx = txn.open_table(CONV_BY_TX).map_err(te)?;
        let main = txn.open_table(CONVERSIONS).map_err(te)?;
        let blocks = txn.open_table(BLOCKS).map_err(te)?;
        let chain = codec::chain(chain_id);
        let prefix = [&chain[..], tx_hash.as_slice()].concat();
        let mut out = Vec::new();
        for item in by_tx
            .range(prefix.as_slice()..prefix_end(&prefix).as_slice())
            .map_err(e)?
        {
            let (k, v) = item.map_err(e)?;
            let suffix = [v.value(), &k.value()[prefix.len()..]].concat();
            let key = [&chain[..], &suffix].concat();
            let value = main
                .get(key.as_slice())
                .map_err(e)?
                .ok_or_else(|| codec::corrupt("index entry without conversion"))?;
            let n = Reader(&suffix).u64()?;
            let block = blocks
                .get(codec::block_key(chain_id, n).as_slice())
                .map_err(e)?
                .ok_or_else(|| codec::corrupt("conversion of a missing block"))?;
            out.push(codec::read_conversion(
                chain_id,
                &suffix,
                value.value(),
                codec::read_block(n, block.value())?.hash,
            )?);
        }
        Ok(out)
    }

    fn import_transfers(&self, chain_id: u64, transfers: &[Transfer]) -> Result<usize, StoreError> {
        if let Some(t) = transfers.iter().find(|t| t.chain_id != chain_id) {
            return Err(StoreError::Invalid {
                chain_id,
                number: t.block_number,
                what: format!("transfer {} is for chain {}", t.tx_hash, t.chain_id),
            });
        }
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut new = 0;
        {
            let mut t = self.tables(&txn)?;
            let mut scratch = Scratch::default();
            for tr in transfers {
                new += usize::from(self.put_transfer(&mut t, tr, false, &mut scratch)?);
            }
            self.bump(&mut t, chain_id, [0, new as i64, 0])?;
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(new)
    }

    fn stats(&self, chain_id: u64) -> Result<StoreStats, StoreError> {
        let counts = {
            let txn = self.read()?;
            let t = txn.open_table(COUNTS).map_err(|e| self.err(e))?;
            t.get(chain_id)
                .map_err(|e| self.err(e))?
                .map_or([0; 3], |v| v.value())
        };
        Ok(StoreStats {
            blocks: counts[0],
            transfers: counts[1],
            conversions: counts[2],
            head: self.head(chain_id)?.map(|h| h.number),
        })
    }

    fn sum_by_asset(&self, chain_id: u64) -> Result<BTreeMap<Asset, U256>, StoreError> {
        let txn = self.read()?;
        let e = |x: redb::StorageError| self.err(x);
        let main = txn.open_table(TRANSFERS).map_err(|x| self.err(x))?;
        let chain = codec::chain(chain_id);
        let mut sums: BTreeMap<Asset, U256> = BTreeMap::new();
        for item in main
            .range(chain.as_slice()..prefix_end(&chain).as_slice())
            .map_err(e)?
        {
            let (k, v) = item.map_err(e)?;
            let (t, _) =
                codec::read_transfer(chain_id, &k.value()[8..], v.value(), |_| Ok(B256::ZERO))?;
            let sum = sums.entry(t.asset).or_default();
            *sum = sum.saturating_add(t.amount);
        }
        Ok(sums)
    }
}
