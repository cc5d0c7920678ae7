//! The first look at a new head: its calls, logs and transfers without state diffs (no
//! state diff to compute: a fraction of the full detail's cost, a fifth on anvil, which
//! keeps its traces; a node that re-executes for `trace_block` runs the block twice), the rules run on a
//! copy of the state, and their alerts raised at once ([`WatchStore::raise_early`]) before
//! the full block is read. The full block's commit stays the only thing that moves the
//! checkpoint: it keeps the early alerts it raises again and retracts any other, so a first
//! look can make an alert earlier, never make one that the block does not hold.
//!
//! Critical storage has no state diff here: the fixed critical slots of the watched
//! contracts the head touched are read at the head and its parent by hash (one batch), and
//! a change is raised early only where those reads show all of it (one transaction entered
//! the contract; not the owners and modules lists): `detect::early`. The rest waits for the
//! full block. Trace responses and tainted deposits run with the full block only.
//!
//! Nothing here is fatal: a first look that fails is logged and the full block is
//! processed as always.

use std::time::{Duration, Instant};

use holdfast_primitives::BlockRef;
use holdfast_store::watch::WatchStore;

use super::{ChainWatch, WatchError, WatchState, new_alerts, now_ms};
use crate::detect::EarlyStorage;
use crate::metrics::WatchMetrics;

/// What a first look raised, and when.
#[derive(Debug, Default)]
pub(super) struct FirstLook {
    pub ids: Vec<String>,
    /// Announcement to the early alerts committed.
    pub raised: Option<Duration>,
}

impl ChainWatch {
    /// The critical slots of the watched contracts the head touched, read at the head and
    /// its parent by hash (`detect::early`), in one batch.
    async fn early_storage(
        &self,
        detail: &holdfast_chain::BlockDetail,
        state: &WatchState,
        block: &BlockRef,
    ) -> Result<EarlyStorage, WatchError> {
        let targets = self
            .shared
            .rules
            .early_targets(&self.chain, detail, &state.detect)
            .map_err(|source| WatchError::Rules {
                chain: self.chain.name.clone(),
                block: block.number,
                source: Box::new(source),
            })?;
        if targets.is_empty() {
            return Ok(EarlyStorage::default());
        }
        let values = self
            .source
            .storage_at(
                &EarlyStorage::reads(&targets),
                &[block.parent_hash, block.hash],
                block.number,
            )
            .await
            .map_err(|e| self.chain_err(e))?;
        Ok(EarlyStorage::from_reads(&targets, &values[0], &values[1]))
    }

    /// Looks at head `number` (child of `parent`, announced at `seen`) before its full
    /// detail; returns what it raised.
    pub(super) async fn first_look(
        &self,
        number: u64,
        parent: Option<BlockRef>,
        state: &WatchState,
        fence: u64,
        seen: Instant,
    ) -> Result<FirstLook, WatchError> {
        let detail = self
            .source
            .fetch_detail_without_state(number)
            .await
            .map_err(|e| self.chain_err(e))?;
        let block = *detail.block();
        if parent.is_some_and(|p| p.hash != block.parent_hash) {
            // A reorg: the full path unwinds first.
            return Ok(FirstLook::default());
        }
        let early = self.early_storage(&detail, state, &block).await?;
        let shared = self.shared.clone();
        let chain = self.chain.clone();
        let detect = state.detect.clone();
        let mut alerts = tokio::task::spawn_blocking(move || {
            shared.rules.preview(&chain, &detail, &detect, &early)
        })
        .await
        .map_err(|e| WatchError::Join(e.to_string()))?
        .map_err(|source| WatchError::Rules {
            chain: self.chain.name.clone(),
            block: number,
            source: Box::new(source),
        })?;
        if alerts.is_empty() {
            return Ok(FirstLook::default());
        }
        for a in &mut alerts {
            a.confirmations = 0;
        }
        let new = new_alerts(&alerts, now_ms())?;
        let chain_id = self.chain.chain_id;
        let raised = self
            .db(move |s: &dyn WatchStore| s.raise_early(chain_id, &block, &new, Some(fence)))
            .await?;
        self.shared.notify.notify_waiters();
        let latency = seen.elapsed();
        tracing::debug!(target: "watch", chain = %self.chain.name, block = number, raised, ?latency, "first look");
        let labels = WatchMetrics::chain(&self.chain.name);
        self.shared
            .metrics
            .block_to_alert
            .get_or_create(&labels)
            .observe(latency.as_secs_f64());
        for a in &alerts {
            self.shared
                .metrics
                .alerts
                .get_or_create(&crate::metrics::RuleLabels {
                    chain: self.chain.name.clone(),
                    rule: a.rule.clone(),
                })
                .inc();
            tracing::warn!(target: "watch::alert", id = %a.id, rule = %a.rule, severity = a.severity.name(), block = number, first_look = true, "{}", a.title);
            if let Some(f) = &self.shared.on_alert {
                f(a, latency);
            }
        }
        Ok(FirstLook {
            ids: alerts.into_iter().map(|a| a.id).collect(),
            raised: Some(latency),
        })
    }
}
