//! TEMPORARY: stands in for `holdfast_store::watch::EmbeddedWatchStore` until it is merged
//! (the outbox part of the trait, in memory). Removed with the merge.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use holdfast_primitives::BlockRef;
use holdfast_store::StoreError;
use holdfast_store::watch::*;

#[derive(Debug, Default)]
pub struct EmbeddedWatchStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    events: Vec<OutboxEvent>,
    alerts: HashMap<String, (u64, Vec<u8>)>,
    cursors: HashMap<String, u64>,
}

fn unsupported() -> StoreError {
    StoreError::Invalid {
        chain_id: 0,
        number: 0,
        what: "shim".into(),
    }
}

impl EmbeddedWatchStore {
    pub fn open(_: &Path) -> Result<EmbeddedWatchStore, StoreError> {
        Ok(EmbeddedWatchStore::default())
    }
}

impl WatchStore for EmbeddedWatchStore {
    fn checkpoint(&self, _: u64) -> Result<Option<WatchCheckpoint>, StoreError> {
        Ok(None)
    }
    fn processed_block(&self, _: u64, _: u64) -> Result<Option<BlockRef>, StoreError> {
        Err(unsupported())
    }
    fn commit_block(&self, c: &BlockCommit) -> Result<(), StoreError> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for a in &c.alerts {
            let seq = g.events.len() as u64 + 1;
            g.alerts
                .insert(a.id.clone(), (c.block.number, a.body.clone()));
            g.events.push(OutboxEvent {
                seq,
                alert_id: a.id.clone(),
                kind: AlertEventKind::Raised,
                body: a.body.clone(),
            });
        }
        Ok(())
    }
    fn unwind_above(
        &self,
        _: u64,
        number: u64,
        _: &[u8],
        _: Option<u64>,
    ) -> Result<Vec<StoredAlert>, StoreError> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut gone: Vec<(String, Vec<u8>)> = g
            .alerts
            .iter()
            .filter(|(_, (n, _))| *n > number)
            .map(|(k, (_, b))| (k.clone(), b.clone()))
            .collect();
        gone.sort();
        for (id, body) in gone {
            g.alerts.remove(&id);
            let seq = g.events.len() as u64 + 1;
            g.events.push(OutboxEvent {
                seq,
                alert_id: id,
                kind: AlertEventKind::Retracted,
                body,
            });
        }
        Ok(vec![])
    }
    fn alert(&self, _: &str) -> Result<Option<StoredAlert>, StoreError> {
        Err(unsupported())
    }
    fn alerts(&self, _: &AlertQuery) -> Result<Vec<StoredAlert>, StoreError> {
        Err(unsupported())
    }
    fn acknowledge(&self, _: &str, _: &str, _: u64) -> Result<Option<StoredAlert>, StoreError> {
        Err(unsupported())
    }
    fn outbox_after_cursor(
        &self,
        sink: &str,
        limit: usize,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let c = g.cursors.get(sink).copied().unwrap_or(0);
        Ok(g.events
            .iter()
            .filter(|e| e.seq > c)
            .take(limit)
            .cloned()
            .collect())
    }
    fn advance_cursor(&self, sink: &str, seq: u64) -> Result<(), StoreError> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let c = g.cursors.entry(sink.to_owned()).or_insert(0);
        *c = (*c).max(seq);
        Ok(())
    }
    fn outbox_head(&self) -> Result<u64, StoreError> {
        Ok(self
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .events
            .len() as u64)
    }
    fn acquire_lease(&self, _: u64, _: &str, _: u64, _: u64) -> Result<Option<u64>, StoreError> {
        Err(unsupported())
    }
    fn release_lease(&self, _: u64, _: &str) -> Result<(), StoreError> {
        Err(unsupported())
    }
}
