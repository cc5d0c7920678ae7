//! Ingestion: follow an EVM chain into the transfer store.
//!
//! [`Ingestor::run`] backfills from the store's checkpoint (its head block) or `from`, then,
//! with `follow`, keeps up with the head `confirmations` blocks behind it. Each block is
//! written atomically with its transfers and conversions, so the store's head is always a
//! complete checkpoint: after a crash, kill -9 or Ctrl-C the next run resumes from it with
//! nothing lost or duplicated.
//!
//! Reorgs: before a block is written its parent hash is checked against the stored block
//! below it. On a mismatch the fork point is found by walking back, comparing stored hashes
//! with the node's, at most `max_reorg_depth` blocks; the orphaned blocks are unwound (their
//! transfers removed) and the canonical ones ingested.
//!
//! [`bitcoin::sync_utxo`] does the same for a Bitcoin-family chain into the UTXO index
//! (`holdfast-store`'s `utxo`), from `holdfast-bitcoin`'s RPC source.
//!
//! A node that goes away is waited for (with capped backoff and a warning each time), not
//! crashed on; an answer that does not make sense stops the run with the block and method
//! named.

pub mod bitcoin;
pub mod bitcoin_etl;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use holdfast_chain::{BlockTransfers, ChainError, ChainSource};
use holdfast_primitives::BlockRef;
use holdfast_store::{Store, StoreError};

/// What to ingest.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// First block when the store has nothing for this chain (default 0).
    pub from: Option<u64>,
    /// Last block (default: the head, minus confirmations).
    pub to: Option<u64>,
    /// After catching up, keep following the head.
    pub follow: bool,
    /// Stay this many blocks behind the head.
    pub confirmations: u64,
    /// Blocks fetched ahead concurrently during backfill.
    pub prefetch: usize,
    /// Deepest reorg handled; deeper is an error (and a sign of a wrong node).
    pub max_reorg_depth: u64,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            from: None,
            to: None,
            follow: false,
            confirmations: 0,
            prefetch: 8,
            max_reorg_depth: 128,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the store holds chain {chain_id} up to block {head}; --from {from} would leave a gap: ingest from {next} (or omit --from to resume)", next = head + 1)]
    Gap { chain_id: u64, head: u64, from: u64 },
    #[error(
        "reorg deeper than {max} blocks below block {at}: the stored chain and the node's share no block in that range (is this the same network?)"
    )]
    ReorgTooDeep { at: u64, max: u64 },
    #[error("store task failed: {0}")]
    Join(String),
}

/// Events for a progress display or log.
pub trait Progress: Send + Sync {
    /// The backfill range is known (or grew while following).
    fn range(&self, _from: u64, _to: u64) {}
    /// A block was written.
    fn block(&self, _block: &BlockTransfers) {}
    /// Blocks were unwound after a reorg.
    fn reorg(&self, _fork: u64, _removed: &[BlockRef]) {}
    /// Caught up; waiting for the head to move.
    fn caught_up(&self, _head: u64) {}
    /// The node did not answer; retrying after `retry_in`.
    fn node_unavailable(&self, _error: &ChainError, _retry_in: Duration) {}
}

/// No progress display.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;
impl Progress for Quiet {}

/// The wait before the next try after `down_for` failed ones in a row (counted here):
/// 1 s doubling to 30 s.
fn backoff(down_for: &mut u32) -> Duration {
    *down_for += 1;
    Duration::from_millis(500 * (1u64 << (*down_for).min(6))).min(Duration::from_secs(30))
}

async fn sleep_or_stop(delay: Duration, stop: &tokio::sync::watch::Receiver<bool>) {
    let mut stop = stop.clone();
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = stop.changed() => {}
    }
}

/// How a round of [`Ingestor::run`] ended.
enum Round {
    /// The range is done.
    Ended,
    /// Blocks were written.
    Moved,
    /// A reorg unwound, or a new head waited for: look again.
    Again,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub blocks: u64,
    pub transfers: u64,
    pub conversions: u64,
    pub reorgs: u64,
    pub unwound_blocks: u64,
    /// The store's head when the run ended.
    pub head: Option<u64>,
}

pub struct Ingestor<S: Store + ?Sized + 'static> {
    source: Arc<ChainSource>,
    store: Arc<S>,
    options: IngestOptions,
}

impl<S: Store + ?Sized + 'static> std::fmt::Debug for Ingestor<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingestor")
            .field("endpoint", &self.source.endpoint())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<S: Store + ?Sized + 'static> Ingestor<S> {
    pub fn new(source: Arc<ChainSource>, store: Arc<S>, options: IngestOptions) -> Self {
        Ingestor {
            source,
            store,
            options,
        }
    }

    /// Runs until the range is done (or, following, until `stop` turns true). Stopping
    /// between blocks is always safe.
    pub async fn run(
        &self,
        progress: &dyn Progress,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Summary, IngestError> {
        let chain_id = self.source.chain_id();
        let mut summary = Summary::default();
        let stored_head = self.blocking(move |s| s.head(chain_id)).await?;
        let mut next = match (stored_head, self.options.from) {
            (Some(h), Some(from)) if from > h.number + 1 => {
                return Err(IngestError::Gap {
                    chain_id,
                    head: h.number,
                    from,
                });
            }
            (Some(h), from) => {
                if from.is_some_and(|f| f <= h.number) {
                    tracing::info!(target: "ingest", head = h.number, "resuming from the stored checkpoint");
                }
                h.number + 1
            }
            (None, from) => from.unwrap_or(0),
        };
        let mut down_for = 0u32;
        loop {
            if *stop.borrow() {
                break;
            }
            match self.round(&mut next, progress, &stop, &mut summary).await {
                Ok(Round::Ended) => break,
                // The node and the store answered: the next outage backs off from the start.
                Ok(Round::Moved | Round::Again) => down_for = 0,
                Err(IngestError::Chain(e)) if e.is_transient() => {
                    self.wait_for_node(progress, &e, &mut down_for, &stop).await;
                }
                Err(IngestError::Store(e)) if e.is_transient() => {
                    self.wait_for_store(&e, &mut down_for, &stop).await;
                }
                Err(e) => return Err(e),
            }
        }
        summary.head = self
            .blocking(move |s| s.head(chain_id))
            .await?
            .map(|h| h.number);
        Ok(summary)
    }

    /// One round of the run: the stored tip checked against the node, then the blocks up to
    /// the target written (or the next head waited for). `next` is re-read from the store
    /// first, so a round after a failed one resumes from what the store holds.
    async fn round(
        &self,
        next: &mut u64,
        progress: &dyn Progress,
        stop: &tokio::sync::watch::Receiver<bool>,
        summary: &mut Summary,
    ) -> Result<Round, IngestError> {
        let chain_id = self.source.chain_id();
        let head = self.source.head_number().await?;
        // The stored tip must still be canonical: a reorg that replaced it without growing
        // the chain shows no new block to check parents against.
        let tip = self.blocking(move |s| s.head(chain_id)).await?;
        if let Some(tip) = tip {
            // Blocks are written in order from the first: the next is above the tip.
            *next = tip.number + 1;
            if tip.number <= head {
                let canonical = self.source.block_ref(tip.number).await?;
                if canonical.hash != tip.hash {
                    *next = self.unwind_reorg(tip.number, progress, summary).await? + 1;
                    return Ok(Round::Again);
                }
            }
        }
        let safe = head.saturating_sub(self.options.confirmations);
        let target = self.options.to.map_or(safe, |t| t.min(safe));
        if *next > target {
            if self.options.to.is_some_and(|t| *next > t) || !self.options.follow {
                return Ok(Round::Ended);
            }
            progress.caught_up(head);
            let mut stop = stop.clone();
            tokio::select! {
                r = self.source.wait_for_head_above(head) => { r?; }
                _ = stop.changed() => {}
            }
            return Ok(Round::Again);
        }
        progress.range(*next, target);
        *next = self
            .ingest_range(*next, target, progress, stop, summary)
            .await?;
        Ok(Round::Moved)
    }

    async fn wait_for_store(
        &self,
        e: &StoreError,
        down_for: &mut u32,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) {
        let delay = backoff(down_for);
        tracing::warn!(target: "ingest", error = %e, retry_in = ?delay, "store unavailable; waiting");
        sleep_or_stop(delay, stop).await;
    }

    /// Ingests `from..=to` in order; returns the next block to ingest (lower than `to + 1`
    /// after a reorg or a stop).
    async fn ingest_range(
        &self,
        from: u64,
        to: u64,
        progress: &dyn Progress,
        stop: &tokio::sync::watch::Receiver<bool>,
        summary: &mut Summary,
    ) -> Result<u64, IngestError> {
        let chain_id = self.source.chain_id();
        let source = &self.source;
        let mut blocks = futures_util::stream::iter(from..=to)
            .map(|n| source.fetch_block(n))
            .buffered(self.options.prefetch.max(1));
        let mut parent: Option<BlockRef> = match from.checked_sub(1) {
            Some(p) => self.blocking(move |s| s.block(chain_id, p)).await?,
            None => None,
        };
        let mut next = from;
        while let Some(fetched) = blocks.next().await {
            let b = fetched?;
            if let Some(p) = parent
                && p.hash != b.block.parent_hash
            {
                return self
                    .unwind_reorg(p.number, progress, summary)
                    .await
                    .map(|fork| fork + 1);
            }
            let (block, transfers, conversions) =
                (b.block, b.transfers.clone(), b.conversions.clone());
            self.blocking(move |s| s.apply_block(chain_id, &block, &transfers, &conversions))
                .await?;
            summary.blocks += 1;
            summary.transfers += b.transfers.len() as u64;
            summary.conversions += b.conversions.len() as u64;
            progress.block(&b);
            parent = Some(b.block);
            next = b.block.number + 1;
            if *stop.borrow() {
                break;
            }
        }
        Ok(next)
    }

    /// Finds the highest block at or below `top` whose stored hash the node agrees with,
    /// unwinds everything above it, and returns it.
    async fn unwind_reorg(
        &self,
        top: u64,
        progress: &dyn Progress,
        summary: &mut Summary,
    ) -> Result<u64, IngestError> {
        let chain_id = self.source.chain_id();
        let mut n = top;
        let fork = loop {
            if top - n > self.options.max_reorg_depth {
                return Err(IngestError::ReorgTooDeep {
                    at: top,
                    max: self.options.max_reorg_depth,
                });
            }
            let stored = self.blocking(move |s| s.block(chain_id, n)).await?;
            let canonical = self.source.block_ref(n).await?;
            if stored.is_none_or(|s| s.hash == canonical.hash) {
                break n;
            }
            match n.checked_sub(1) {
                Some(p) => n = p,
                // Even the genesis block differs: another network.
                None => return Err(IngestError::ReorgTooDeep { at: top, max: top }),
            }
        };
        let removed = self
            .blocking(move |s| s.unwind_above(chain_id, fork))
            .await?;
        tracing::warn!(target: "ingest", fork, unwound = removed.len(), "reorg: orphaned blocks unwound");
        summary.reorgs += 1;
        summary.unwound_blocks += removed.len() as u64;
        progress.reorg(fork, &removed);
        Ok(fork)
    }

    async fn wait_for_node(
        &self,
        progress: &dyn Progress,
        e: &ChainError,
        down_for: &mut u32,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) {
        let delay = backoff(down_for);
        progress.node_unavailable(e, delay);
        tracing::warn!(target: "ingest", error = %e, retry_in = ?delay, "node unavailable; waiting");
        sleep_or_stop(delay, stop).await;
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&S) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, IngestError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| IngestError::Join(e.to_string()))?
            .map_err(IngestError::from)
    }
}
