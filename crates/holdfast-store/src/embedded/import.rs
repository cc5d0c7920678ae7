//! `Store::import_transfers` on the embedded store: transfers without a block, checked
//! against the import itself and against what is stored (`crate::import`) under the writer
//! lock, then written in one batch.

use std::collections::BTreeSet;

use fjall::Readable;
use holdfast_primitives::Transfer;

use super::layout::{
    COUNTS_KEY, LOG_END_KEY, META, TRANSFERS, block_key, counts_value, imported_key, place,
    read_record, stage_transfer,
};
use super::log::RecordLog;
use super::{EmbeddedStore, Staged};
use crate::StoreError;
use crate::import;

impl EmbeddedStore {
    pub(super) fn import(
        &self,
        chain_id: u64,
        transfers: &[Transfer],
    ) -> Result<usize, StoreError> {
        let (keep, calls) = import::check_batch(chain_id, transfers)?;
        if keep.is_empty() {
            return Ok(0);
        }
        let chain = self
            .chain(chain_id, true)?
            .ok_or_else(|| self.err("chain keyspaces"))?;
        let mut last_sync = self.writer();
        let snap = self.db.snapshot();
        // One stored call transfer per block and transaction index (the first, by position)
        // says which transaction is there. A block with neither a stored block nor earlier
        // imports holds no transfer: two point reads instead of a scan per transaction.
        let mut holds: Option<(u64, bool)> = None;
        for i in calls {
            let t = &transfers[i];
            let n = t.block_number;
            let held = match holds {
                Some((b, h)) if b == n => h,
                _ => {
                    let h = snap
                        .contains_key(chain.space(META), imported_key(n))
                        .map_err(|e| self.err(e))?
                        || snap
                            .contains_key(chain.space(META), block_key(n))
                            .map_err(|e| self.err(e))?;
                    holds = Some((n, h));
                    h
                }
            };
            if !held {
                continue;
            }
            let mut prefix = Vec::with_capacity(13);
            prefix.extend_from_slice(&t.block_number.to_be_bytes());
            prefix.extend_from_slice(&t.tx_index.to_be_bytes());
            prefix.push(0);
            if let Some(g) = snap.prefix(chain.space(TRANSFERS), &prefix).next() {
                let (k, v) = self.kv(g)?;
                let stored = read_record(chain_id, &k, &v)?;
                if let Some(why) = import::conflict(&stored, t) {
                    return Err(import::error(i, t, &stored, why));
                }
            }
        }
        let mut blocks = BTreeSet::new();
        let mut s = Staged::default();
        let mut entries = chain.log.entries();
        let mut place_buf = Vec::with_capacity(32);
        let mut new = 0u64;
        for i in keep {
            let t = &transfers[i];
            place_buf.clear();
            place(t, &mut place_buf);
            if let Some(v) = snap
                .get(chain.space(TRANSFERS), &place_buf)
                .map_err(|e| self.err(e))?
            {
                let stored = read_record(chain_id, &place_buf, &v)?;
                if let Some(why) = import::conflict(&stored, t) {
                    return Err(import::error(i, t, &stored, why));
                }
                continue;
            }
            stage_transfer(&mut s, &mut entries, t, true, true, &mut place_buf);
            blocks.insert(t.block_number);
            new += 1;
            self.check_fail(new as usize);
        }
        if new == 0 {
            return Ok(0);
        }
        for n in blocks {
            s.put(META, &[&imported_key(n)], &[]);
        }
        let mut counts = self.counts(&snap, &chain)?;
        counts[1] += new;
        s.put(META, &[COUNTS_KEY], &[&counts_value(counts)]);
        s.put(
            META,
            &[LOG_END_KEY],
            &[&RecordLog::end_after(&entries).to_be_bytes()],
        );
        self.append_log(&chain, &entries)?;
        self.commit(&chain, s)?;
        self.sync_if_due(&mut last_sync)?;
        chain.log.committed(&entries);
        Ok(new as usize)
    }
}
