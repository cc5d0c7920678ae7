//! `Store` for `EmbeddedStore`: writes (blocks, unwinds, imports) and reads (heads, address
//! queries, a transaction's transfers, stats), over the layout in the parent module.

use super::layout::after_place;
use super::*;
use crate::{Place, check_after};

impl Store for EmbeddedStore {
    fn apply_blocks(
        &self,
        chain_id: u64,
        blocks: &[BlockData],
    ) -> Result<Vec<Applied>, StoreError> {
        validate(chain_id, blocks)?;
        if blocks.is_empty() {
            return Ok(Vec::new());
        }
        let chain = self
            .chain(chain_id, true)?
            .ok_or_else(|| self.err("chain keyspaces"))?;
        let mut last_sync = self.writer();
        let snap = self.db.snapshot();
        let mut counts = self.counts(&snap, &chain)?;
        let direct_below = chain
            .buffers()
            .direct_below(chain.indexed_below.load(Ordering::SeqCst));
        let mut buffered = Buffered::default();
        let mut entries = chain.log.entries();
        let mut staged = Staged::default();
        let mut applied = Vec::with_capacity(blocks.len());
        let mut below: Option<BlockRef> = None;
        let mut place_buf = Vec::with_capacity(32);
        let mut n_staged = 0;
        for b in blocks {
            let n = b.block.number;
            let prev = below.replace(b.block);
            if !admit(chain_id, &b.block, prev, |m| {
                self.block_at(&snap, &chain, m)
            })? {
                applied.push(Applied::AlreadyPresent);
                continue;
            }
            staged.put(META, &[&block_key(n)], &[&codec::block_value(&b.block)]);
            // Transfers imported earlier into this block stay as they are.
            let has_imports = snap
                .contains_key(chain.space(META), imported_key(n))
                .map_err(|e| self.err(e))?;
            let mut added = 0u64;
            for t in &b.transfers {
                if has_imports {
                    place_buf.clear();
                    place(t, &mut place_buf);
                    if snap
                        .contains_key(chain.space(TRANSFERS), &place_buf)
                        .map_err(|e| self.err(e))?
                    {
                        continue;
                    }
                }
                // Blocks below the mark are indexed directly (a gap filled late), the others
                // through the buffer.
                let direct = n < direct_below;
                let loc =
                    stage_transfer(&mut staged, &mut entries, t, false, direct, &mut place_buf);
                if !direct {
                    buffered.places.extend_from_slice(&place_buf);
                    buffered.entries.push(BufferedEntry {
                        end: buffered.places.len(),
                        loc,
                        addresses: [t.from, t.to],
                        digest: tx_digest(&t.tx_hash),
                        zero: t.amount.is_zero(),
                    });
                }
                added += 1;
                n_staged += 1;
                self.check_fail(n_staged);
            }
            for c in &b.conversions {
                let at = [
                    &n.to_be_bytes()[..],
                    &c.tx_index.to_be_bytes(),
                    &c.log_index.to_be_bytes(),
                ]
                .concat();
                staged.put_with(META, &[b"v", &at], |out| codec::conversion_value(c, out));
                staged.put(
                    META,
                    &[b"w", c.tx_hash.as_slice(), &c.log_index.to_be_bytes()],
                    &[&at[..12]],
                );
            }
            counts[0] += 1;
            counts[1] += added;
            counts[2] += b.conversions.len() as u64;
            applied.push(Applied::Written);
        }
        if applied.contains(&Applied::Written) {
            staged.put(META, &[COUNTS_KEY], &[&counts_value(counts)]);
            staged.put(
                META,
                &[LOG_END_KEY],
                &[&RecordLog::end_after(&entries).to_be_bytes()],
            );
            // Committed under the buffer's write lock, so that a reader sees the records and
            // their buffered index entries together.
            self.append_log(&chain, &entries)?;
            let mut buffers = chain.buffers_mut();
            self.commit(&chain, staged)?;
            chain.log.committed(&entries);
            let mut start = 0;
            for e in buffered.entries {
                buffers.active.add(
                    &buffered.places[start..e.end],
                    e.loc,
                    e.addresses,
                    e.digest,
                    e.zero,
                );
                start = e.end;
            }
            let full = buffers.active.len() >= self.options.index_buffer;
            drop(buffers);
            self.sync_if_due(&mut last_sync)?;
            if full {
                // On the flusher thread: the next blocks are staged meanwhile.
                self.flush_index(&chain, true, &mut last_sync)?;
            }
        }
        Ok(applied)
    }

    fn unwind_above(&self, chain_id: u64, number: u64) -> Result<Vec<BlockRef>, StoreError> {
        let Some(chain) = self.chain(chain_id, false)? else {
            return Ok(Vec::new());
        };
        let Some(first) = number.checked_add(1) else {
            return Ok(Vec::new());
        };
        let mut last_sync = self.writer();
        // Unwinding deletes index entries from the keyspaces; the buffer goes there first.
        // (Reorgs are rare and shallow; this costs at most two buffers' worth.)
        self.flush_index(&chain, false, &mut last_sync)?;
        let snap = self.db.snapshot();
        let mut removed = Vec::new();
        for g in snap.range(chain.space(META), block_key(first).to_vec()..b"c".to_vec()) {
            let (k, v) = self.kv(g)?;
            removed.push(codec::read_block(Reader(&k[1..]).u64()?, &v)?);
        }
        if removed.is_empty() {
            return Ok(removed);
        }
        let mut counts = self.counts(&snap, &chain)?;
        let mut s = Staged::default();
        for b in &removed {
            let nb = b.number.to_be_bytes();
            let (mut tx_gone, mut tx_kept) = (BTreeSet::new(), HashSet::new());
            let (mut asset_gone, mut asset_kept) = (BTreeSet::new(), HashSet::new());
            let mut gone = 0u64;
            for g in snap.prefix(chain.space(TRANSFERS), nb) {
                let (k, v) = self.kv(g)?;
                if v.len() <= REC_ASSET || k.len() < 12 {
                    return Err(corrupt("transfer record"));
                }
                let tx_key = [
                    &tx_digest(&B256::from_slice(&v[REC_TX_HASH..REC_TX_HASH + 32]))[..],
                    &k[..12],
                ]
                .concat();
                let asset_key = [
                    Reader(&v[REC_ASSET..])
                        .asset()
                        .map(|a| asset_prefix(a.token()))?,
                    nb.to_vec(),
                ]
                .concat();
                if v[0] & IMPORTED != 0 {
                    tx_kept.insert(tx_key);
                    asset_kept.insert(asset_key);
                    continue;
                }
                s.del(TRANSFERS, &[&k]);
                s.del(FROM, &[&v[REC_FROM..REC_FROM + 20], &k]);
                s.del(TO, &[&v[REC_TO..REC_TO + 20], &k]);
                tx_gone.insert(tx_key);
                asset_gone.insert(asset_key);
                gone += 1;
            }
            for k in tx_gone.iter().filter(|k| !tx_kept.contains(*k)) {
                s.del(TX, &[k]);
            }
            for k in asset_gone.iter().filter(|k| !asset_kept.contains(*k)) {
                s.del(ASSET, &[k]);
            }
            let mut convs = 0u64;
            for g in snap.prefix(chain.space(META), [&b"v"[..], &nb].concat()) {
                let (k, v) = self.kv(g)?;
                if k.len() != 17 || v.len() < 32 {
                    return Err(corrupt("conversion record"));
                }
                s.del(META, &[&k]);
                s.del(META, &[b"w", &v[..32], &k[13..17]]);
                convs += 1;
            }
            s.del(META, &[&block_key(b.number)]);
            counts[0] = counts[0].saturating_sub(1);
            counts[1] = counts[1].saturating_sub(gone);
            counts[2] = counts[2].saturating_sub(convs);
        }
        s.put(META, &[COUNTS_KEY], &[&counts_value(counts)]);
        // Blocks written again above the fork point go through the buffer.
        let below = chain.indexed_below.load(Ordering::SeqCst).min(first);
        s.put(META, &[INDEXED_KEY], &[&below.to_be_bytes()]);
        self.commit(&chain, s)?;
        self.sync_if_due(&mut last_sync)?;
        chain.indexed_below.store(below, Ordering::SeqCst);
        Ok(removed)
    }

    fn head(&self, chain_id: u64) -> Result<Option<BlockRef>, StoreError> {
        let Some(chain) = self.chain(chain_id, false)? else {
            return Ok(None);
        };
        let snap = self.db.snapshot();
        match snap.prefix(chain.space(META), b"b").next_back() {
            Some(g) => {
                let (k, v) = self.kv(g)?;
                Ok(Some(codec::read_block(Reader(&k[1..]).u64()?, &v)?))
            }
            None => Ok(None),
        }
    }

    fn block(&self, chain_id: u64, number: u64) -> Result<Option<BlockRef>, StoreError> {
        let Some(chain) = self.chain(chain_id, false)? else {
            return Ok(None);
        };
        self.block_at(&self.db.snapshot(), &chain, number)
    }

    fn address_entries_page(
        &self,
        chain_id: u64,
        query: AddressQuery,
        after: Option<&Place>,
        limit: usize,
    ) -> Result<Vec<AddressEntry>, StoreError> {
        self.address_entries_of(chain_id, query, after, limit)
    }

    fn transfers_page(
        &self,
        chain_id: u64,
        query: TransferQuery,
        after: Option<&Place>,
        limit: usize,
    ) -> Result<Vec<Transfer>, StoreError> {
        check_limit(limit)?;
        check_after(&query, after)?;
        match query {
            TransferQuery::From {
                address,
                from_block,
            } => {
                return self.address_transfers(
                    chain_id,
                    address,
                    true,
                    (from_block, u64::MAX),
                    after,
                    limit,
                );
            }
            TransferQuery::FromRange {
                address,
                from_block,
                to_block,
            } => {
                return self.address_transfers(
                    chain_id,
                    address,
                    true,
                    (from_block, to_block),
                    after,
                    limit,
                );
            }
            TransferQuery::To {
                address,
                from_block,
            } => {
                return self.address_transfers(
                    chain_id,
                    address,
                    false,
                    (from_block, u64::MAX),
                    after,
                    limit,
                );
            }
            _ => {}
        }
        let Some(chain) = self.chain(chain_id, false)? else {
            return Ok(Vec::new());
        };
        // The buffer before the snapshot: a write commits under the buffer's write lock.
        let buffers = chain.buffers();
        let snap = self.db.snapshot();
        let mut out = Vec::new();
        match query {
            TransferQuery::From { .. }
            | TransferQuery::To { .. }
            | TransferQuery::FromRange { .. } => {
                // Answered above, by `address_transfers`.
            }
            TransferQuery::Tx { tx_hash } => {
                let digest = tx_digest(&tx_hash);
                let mut txs: BTreeSet<Vec<u8>> = BTreeSet::new();
                for g in snap.prefix(chain.space(TX), digest) {
                    txs.insert(self.kv(g)?.0[8..].to_vec());
                }
                txs.extend(buffers.active.tx(&digest).into_iter().map(<[u8]>::to_vec));
                if let Some(f) = &buffers.frozen {
                    txs.extend(f.tx(&digest).into_iter().map(<[u8]>::to_vec));
                }
                for k in txs {
                    for g in snap.prefix(chain.space(TRANSFERS), &k) {
                        let (k, v) = self.kv(g)?;
                        if v.get(REC_TX_HASH..REC_TX_HASH + 32) == Some(tx_hash.as_slice()) {
                            out.push(read_record(chain_id, &k, &v)?);
                        }
                    }
                }
                out.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
                out.truncate(limit);
            }
            TransferQuery::Blocks {
                from_block,
                to_block,
            } => {
                // A scan's pages are full but for the last: sized once, not grown by doubling
                // (each doubling copied the page so far; a replay reads pages back to back).
                if after.is_some_and(|p| p.block_number > to_block) {
                    return Ok(out);
                }
                out.reserve_exact(limit.min(crate::MAX_LIMIT));
                let start = match after {
                    Some(p) if p.block_number >= from_block => after_place(p),
                    _ => from_block.to_be_bytes().to_vec(),
                };
                let range = match to_block.checked_add(1) {
                    Some(end) => {
                        snap.range(chain.space(TRANSFERS), start..end.to_be_bytes().to_vec())
                    }
                    None => snap.range(chain.space(TRANSFERS), start..),
                };
                for g in range.take(limit) {
                    let (k, v) = self.kv(g)?;
                    out.push(read_record(chain_id, &k, &v)?);
                }
            }
            TransferQuery::Asset { token, from_block } => {
                let prefix = asset_prefix(token);
                let start = [&prefix[..], &from_block.to_be_bytes()].concat();
                'blocks: for g in snap.range(chain.space(ASSET), start..prefix_end(&prefix)) {
                    if out.len() >= limit {
                        break;
                    }
                    let (k, _) = self.kv(g)?;
                    let number = &k[prefix.len()..];
                    for g in snap.prefix(chain.space(TRANSFERS), number) {
                        let (k, v) = self.kv(g)?;
                        // Compare the asset's kind byte and token in place before decoding.
                        let kind = v.get(REC_ASSET).copied();
                        let hit = match token {
                            None => kind == Some(0),
                            Some(t) => {
                                kind.is_some_and(|k| k != 0)
                                    && v.get(REC_ASSET + 1..REC_ASSET + 21) == Some(t.as_slice())
                            }
                        };
                        if hit {
                            out.push(read_record(chain_id, &k, &v)?);
                            if out.len() >= limit {
                                break 'blocks;
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    fn conversions_of_tx(
        &self,
        chain_id: u64,
        tx_hash: B256,
    ) -> Result<Vec<Conversion>, StoreError> {
        let Some(chain) = self.chain(chain_id, false)? else {
            return Ok(Vec::new());
        };
        let snap = self.db.snapshot();
        let mut hashes = self.hashes(&snap, &chain);
        let mut out = Vec::new();
        for g in snap.prefix(chain.space(META), [&b"w"[..], tx_hash.as_slice()].concat()) {
            let (k, at) = self.kv(g)?;
            if k.len() != 37 || at.len() != 12 {
                return Err(corrupt("conversion index"));
            }
            let place = [&at[..], &k[33..37]].concat();
            let v = snap
                .get(chain.space(META), [&b"v"[..], &place].concat())
                .map_err(|e| self.err(e))?
                .ok_or_else(|| corrupt("index entry without conversion"))?;
            let number = Reader(&place).u64()?;
            out.push(codec::read_conversion(
                chain_id,
                &place,
                &v,
                hashes(number)?,
            )?);
        }
        out.sort_by_key(|c| (c.block_number, c.tx_index, c.log_index));
        Ok(out)
    }

    fn import_transfers(&self, chain_id: u64, transfers: &[Transfer]) -> Result<usize, StoreError> {
        self.import(chain_id, transfers)
    }

    fn chains(&self) -> Result<Vec<u64>, StoreError> {
        let snap = self.db.snapshot();
        let mut out = Vec::new();
        for name in self.db.list_keyspace_names() {
            // `<chain>.meta`, created last of a chain's keyspaces.
            let Some(id) = name
                .strip_suffix(".meta")
                .and_then(|id| id.parse::<u64>().ok())
            else {
                continue;
            };
            let Some(chain) = self.chain(id, false)? else {
                continue;
            };
            let [blocks, transfers, _] = self.counts(&snap, &chain)?;
            if blocks + transfers > 0 {
                out.push(id);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn stats(&self, chain_id: u64) -> Result<StoreStats, StoreError> {
        let Some(chain) = self.chain(chain_id, false)? else {
            return Ok(StoreStats::default());
        };
        let counts = self.counts(&self.db.snapshot(), &chain)?;
        Ok(StoreStats {
            blocks: counts[0],
            transfers: counts[1],
            conversions: counts[2],
            head: self.head(chain_id)?.map(|h| h.number),
        })
    }

    fn sum_by_asset(&self, chain_id: u64) -> Result<BTreeMap<Asset, U256>, StoreError> {
        let mut sums: BTreeMap<Asset, U256> = BTreeMap::new();
        let Some(chain) = self.chain(chain_id, false)? else {
            return Ok(sums);
        };
        let snap = self.db.snapshot();
        for g in snap.iter(chain.space(TRANSFERS)) {
            let (_, v) = self.kv(g)?;
            let mut r = Reader(
                v.get(REC_ASSET..)
                    .ok_or_else(|| corrupt("transfer record"))?,
            );
            let asset = r.asset()?;
            let amount = r.amount()?;
            let sum = sums.entry(asset).or_default();
            *sum = sum.saturating_add(amount);
        }
        Ok(sums)
    }
}
