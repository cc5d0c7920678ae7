//! The per-chain loop: take the chain's lease, resume from the checkpoint, fetch each block's
//! detail (prefetching during catch-up), store its transfers (the ingestion path), run the
//! detectors and the thefts being followed, and commit the block's alerts to the outbox in
//! the same atomic write as the checkpoint; unwind reorgs (retracting their alerts); confirm
//! alerts once their block is deep enough; wake the sinks.
//!
//! Crash safety: the only durable step is [`WatchStore::commit_block`] (or `unwind_above`),
//! which writes the block's alerts, their outbox events and the new checkpoint together.
//! The transfer store is written before it, idempotently (re-writing a stored block changes
//! nothing), so kill -9 at any instant resumes from the checkpoint and redoes exactly the
//! uncommitted block, with the same alert ids.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use holdfast_chain::source::{Head, HeadStream};
use holdfast_chain::{BlockDetail, ChainError, ChainSource};
use holdfast_intel::IntelIndex;
use holdfast_primitives::BlockRef;
use holdfast_store::watch::{AlertQuery, AlertStatus, BlockCommit, NewAlert, WatchStore};
use holdfast_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::alert::Alert;
pub use crate::detect::Outage;
use crate::detect::{EarlyStorage, EarlyTarget, RulesError};
use crate::follow::{ChainInfo, FollowState, TracePlan};
use crate::metrics::WatchMetrics;
use crate::units::Units;

mod first_look;

use first_look::FirstLook;

/// What the engine needs of the rules (the detectors of a watch file).
pub trait Rules: Send + Sync + std::fmt::Debug {
    /// Runs every rule over one block, updating `state` (the detectors' own, carried from
    /// block to block in the checkpoint; `Null` at the start). Deterministic: the same block
    /// and state give the same alerts. On an error `state` is unchanged and the block is not
    /// committed (no alert is lost to a history that could not be read).
    fn detect(
        &self,
        chain: &ChainInfo,
        block: &BlockDetail,
        state: &mut serde_json::Value,
    ) -> Result<Vec<Alert>, RulesError>;

    /// Writes the whole state into `state` when `detect` left only a handle to state the
    /// rules hold in memory (the engine calls it before every checkpoint; a replay never
    /// does). Default: nothing to write.
    fn flush_state(
        &self,
        _chain: &ChainInfo,
        _state: &mut serde_json::Value,
    ) -> Result<(), RulesError> {
        Ok(())
    }

    /// How a rule's `trace` response follows the theft (None: the rule has no `trace`).
    fn trace_plan(&self, rule: &str) -> Option<TracePlan>;

    /// The watched contracts whose critical slots the first look at `block` (its detail
    /// without state diffs) should read. Default: none.
    fn early_targets(
        &self,
        _chain: &ChainInfo,
        _block: &BlockDetail,
        _state: &serde_json::Value,
    ) -> Result<Vec<EarlyTarget>, RulesError> {
        Ok(Vec::new())
    }

    /// The alerts `detect` would raise for `block` from `state`, leaving both as they are
    /// (the first look at a head, on its detail without state diffs, with the critical
    /// slots read for [`Rules::early_targets`]). Default: none.
    fn preview(
        &self,
        _chain: &ChainInfo,
        _block: &BlockDetail,
        _state: &serde_json::Value,
        _early: &EarlyStorage,
    ) -> Result<Vec<Alert>, RulesError> {
        Ok(Vec::new())
    }
}

/// Alerts as the store keeps them, raised at `raised_at` (ms).
fn new_alerts(alerts: &[Alert], raised_at: u64) -> Result<Vec<NewAlert>, WatchError> {
    alerts
        .iter()
        .map(|a| {
            Ok(NewAlert {
                id: a.id.clone(),
                rule: a.rule.clone(),
                severity: a.severity.rank(),
                raised_at_ms: raised_at,
                body: serde_json::to_vec(a).map_err(WatchError::State)?,
            })
        })
        .collect()
}

/// Intel as it is now (reloaded at run time: labels the watch adds count at once).
pub trait IntelView: Send + Sync {
    fn index(&self) -> Arc<IntelIndex>;
}

impl IntelView for arc_swap::ArcSwap<IntelIndex> {
    fn index(&self) -> Arc<IntelIndex> {
        self.load_full()
    }
}

/// The detectors' and the follower's state, carried in the checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchState {
    #[serde(default)]
    pub detect: serde_json::Value,
    #[serde(default)]
    pub follow: FollowState,
}

impl WatchState {
    fn decode(bytes: &[u8]) -> Result<WatchState, WatchError> {
        if bytes.is_empty() {
            return Ok(WatchState::default());
        }
        serde_json::from_slice(bytes).map_err(WatchError::State)
    }

    fn encode(&self) -> Result<Vec<u8>, WatchError> {
        serde_json::to_vec(self).map_err(WatchError::State)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("chain {chain}: {source}")]
    Chain { chain: String, source: ChainError },
    #[error("chain {chain}: store: {source}")]
    Store { chain: String, source: StoreError },
    #[error("chain {chain} block {block}: the rules failed: {source}")]
    Rules {
        chain: String,
        block: u64,
        source: Box<RulesError>,
    },
    #[error("the watch's checkpoint state does not decode: {0}")]
    State(serde_json::Error),
    #[error(
        "chain {chain}: reorg deeper than {max} blocks below block {at}: the watch's blocks and the node's share none in that range (is this the same network?)"
    )]
    ReorgTooDeep { chain: String, at: u64, max: u64 },
    #[error("chain {chain}: the node's chain id is {actual}, the watch file expects {expected}")]
    WrongChain {
        chain: String,
        expected: u64,
        actual: u64,
    },
    #[error("a blocking task failed: {0}")]
    Join(String),
}

impl WatchError {
    /// `Some` if asking again later may succeed: the run waits it out instead of stopping.
    /// A history read the node or the database failed is the outage it met.
    pub fn outage(&self) -> Option<Outage> {
        match self {
            WatchError::Chain { source, .. } if source.is_transient() => Some(Outage::Node),
            WatchError::Store { source, .. } if source.is_transient() => Some(Outage::Store),
            WatchError::Rules { source, .. } => match source.as_ref() {
                RulesError::Detect(crate::detect::DetectError::History { source, .. }) => {
                    source.outage
                }
                _ => None,
            },
            _ => None,
        }
    }
}

/// Where the watch of a chain starts when it has no checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At the node's head when the watch first runs.
    Head,
    Block(u64),
}

/// How one chain is watched.
#[derive(Debug, Clone)]
pub struct ChainOptions {
    pub start: Start,
    /// Confirmations after which an alert is confirmed (a `confirmed` event).
    pub confirmations: u64,
    pub max_reorg_depth: u64,
    /// Blocks fetched ahead concurrently during catch-up.
    pub prefetch: usize,
    /// The chain's lease (several instances on PostgreSQL).
    pub lease_ttl: Duration,
    /// Stop after this block (replay of a range, tests); `None`: follow the head.
    pub stop_after: Option<u64>,
    /// Look at each new head without state diffs first and raise what that shows at once
    /// (`first_look`); the full block then confirms or retracts.
    pub first_look: bool,
}

impl Default for ChainOptions {
    fn default() -> Self {
        ChainOptions {
            start: Start::Head,
            confirmations: 12,
            max_reorg_depth: 64,
            prefetch: 8,
            lease_ttl: Duration::from_secs(15),
            stop_after: None,
            first_look: true,
        }
    }
}

/// Called with every committed alert and its latency from the block being seen.
pub type OnAlert = Arc<dyn Fn(&Alert, Duration) + Send + Sync>;

/// Where a block's time went, from its announcement (or, in catch-up, its fetch) to its
/// commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockTiming {
    pub number: u64,
    pub alerts: usize,
    /// Announcement to the block's detail fetched (zero in catch-up).
    pub fetch: Duration,
    /// Its transfers written to the transfer store.
    pub store: Duration,
    /// The rules and the thefts followed.
    pub detect: Duration,
    /// The atomic commit (alerts, outbox, checkpoint).
    pub commit: Duration,
    /// Announcement (or fetch) to commit.
    pub total: Duration,
    /// Announcement to the first look's alerts committed (`None`: no first look raised any;
    /// its time is then inside `fetch`).
    pub first_look: Option<Duration>,
}

/// Called with every committed block's timing (benchmarks).
pub type OnBlock = Arc<dyn Fn(&BlockTiming) + Send + Sync>;

/// What every chain's loop shares.
#[derive(Clone)]
pub struct Shared {
    pub transfers: Arc<dyn Store>,
    pub watch: Arc<dyn WatchStore>,
    pub rules: Arc<dyn Rules>,
    pub intel: Arc<dyn IntelView>,
    pub units: Arc<Units>,
    /// Pinged after every commit (the sinks and responders wait on it).
    pub notify: Arc<Notify>,
    pub metrics: WatchMetrics,
    /// This instance's name in leases.
    pub owner: String,
    /// Called with every committed alert (the CLI prints them with their latency).
    pub on_alert: Option<OnAlert>,
    pub on_block: Option<OnBlock>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// One chain's loop.
#[derive(Debug)]
pub struct ChainWatch {
    pub chain: ChainInfo,
    pub source: Arc<ChainSource>,
    pub options: ChainOptions,
    shared: Shared,
    /// `(block, state after it)` of the last blocks, for unwinding.
    states: VecDeque<(BlockRef, Vec<u8>)>,
    /// Alerts not confirmed yet: `(block number, ids)`.
    unconfirmed: VecDeque<(u64, Vec<String>)>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What a run did (for `--stop-after` runs and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub blocks: u64,
    pub alerts: u64,
    pub retracted: u64,
    pub reorgs: u64,
}

enum Step {
    /// Committed up to here.
    Done,
    /// A reorg was unwound, or the lease was lost: start over from the checkpoint.
    Again,
}

/// How a round of the run ended.
enum Round {
    /// The run is over (its last block is committed, by this or another instance).
    Ended,
    /// A step committed what it could.
    Committed,
    /// Start over: a reorg unwound, the lease lost or held by another instance.
    Again,
}

impl ChainWatch {
    pub fn new(
        chain: ChainInfo,
        source: Arc<ChainSource>,
        options: ChainOptions,
        shared: Shared,
    ) -> Self {
        ChainWatch {
            chain,
            source,
            options,
            shared,
            states: VecDeque::new(),
            unconfirmed: VecDeque::new(),
        }
    }

    fn chain_err(&self, source: ChainError) -> WatchError {
        WatchError::Chain {
            chain: self.chain.name.clone(),
            source,
        }
    }

    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn WatchStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, WatchError> {
        let store = self.shared.watch.clone();
        let chain = self.chain.name.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| WatchError::Join(e.to_string()))?
            .map_err(|source| WatchError::Store { chain, source })
    }

    async fn transfers<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, WatchError> {
        let store = self.shared.transfers.clone();
        let chain = self.chain.name.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| WatchError::Join(e.to_string()))?
            .map_err(|source| WatchError::Store { chain, source })
    }

    /// Runs until `stop` turns true (or `stop_after` is committed). Node outages are waited
    /// out with capped backoff; a lost lease makes the loop wait for it again.
    pub async fn run(
        &mut self,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<RunSummary, WatchError> {
        let chain_id = self.chain.chain_id;
        let actual = self.source.chain_id();
        if actual != chain_id {
            return Err(WatchError::WrongChain {
                chain: self.chain.name.clone(),
                expected: chain_id,
                actual,
            });
        }
        let mut summary = RunSummary::default();
        let mut down_for = 0u32;
        let mut fence: Option<u64> = None;
        // The list of unconfirmed alerts is read from the store before the first round, and
        // again after a store outage.
        let mut resync = true;
        // The node's announcements of new heads, kept open across rounds (a subscription
        // over WebSocket): a block's latency is measured from its announcement.
        let source = self.source.clone();
        let mut heads = source.subscribe_heads();
        let mut announced: Option<Head> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            let round = self
                .round(
                    &mut resync,
                    &mut fence,
                    &mut heads,
                    &mut announced,
                    &mut stop,
                    &mut summary,
                )
                .await;
            match round {
                Ok(Round::Ended) => break,
                Ok(Round::Committed) => down_for = 0,
                Ok(Round::Again) => {}
                Err(e) => {
                    let Some(outage) = e.outage() else {
                        return Err(e);
                    };
                    down_for += 1;
                    let metric = match outage {
                        Outage::Node => &self.shared.metrics.node_errors,
                        Outage::Store => &self.shared.metrics.store_errors,
                    };
                    metric
                        .get_or_create(&WatchMetrics::chain(&self.chain.name))
                        .inc();
                    let delay = Duration::from_millis(250 * (1u64 << down_for.min(7)))
                        .min(Duration::from_secs(30));
                    let what = match outage {
                        Outage::Node => "node unavailable; waiting",
                        Outage::Store => "store unavailable; waiting",
                    };
                    tracing::warn!(target: "watch", chain = %self.chain.name, error = %e, retry_in = ?delay, "{what}");
                    if outage == Outage::Store {
                        // What this process holds in memory may be ahead of the store (a
                        // commit that failed, or landed without its answer reaching here):
                        // the next round resumes from what the store holds, as a new lease
                        // holder does.
                        resync = true;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
        if fence.is_some() {
            let owner = self.shared.owner.clone();
            self.db(move |s| s.release_lease(chain_id, &owner)).await?;
        }
        Ok(summary)
    }

    /// One round of the run: the lease taken or renewed, then a step.
    async fn round(
        &mut self,
        resync: &mut bool,
        fence: &mut Option<u64>,
        heads: &mut HeadStream<'_>,
        announced: &mut Option<Head>,
        stop: &mut tokio::sync::watch::Receiver<bool>,
        summary: &mut RunSummary,
    ) -> Result<Round, WatchError> {
        let chain_id = self.chain.chain_id;
        if *resync {
            self.states.clear();
            self.load_unconfirmed().await?;
            *resync = false;
        }
        // The lease: held before any write, renewed between blocks.
        let owner = self.shared.owner.clone();
        let ttl = u64::try_from(self.options.lease_ttl.as_millis()).unwrap_or(u64::MAX);
        let token = self
            .db(move |s| s.acquire_lease(chain_id, &owner, now_ms(), ttl))
            .await?;
        let Some(token) = token else {
            // Another instance holds the chain; a bounded run ends once it got there.
            if let Some(last) = self.options.stop_after {
                let cp = self.db(move |s| s.checkpoint(chain_id)).await?;
                if cp.is_some_and(|c| c.block.number >= last) {
                    return Ok(Round::Ended);
                }
            }
            if fence.take().is_some() {
                tracing::warn!(target: "watch", chain = %self.chain.name, "lease lost to another instance");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.options.lease_ttl / 3) => {}
                _ = stop.changed() => {}
            }
            return Ok(Round::Again);
        };
        if *fence != Some(token) {
            tracing::info!(target: "watch", chain = %self.chain.name, token, "holding the chain's lease");
            // A new holder: what another instance committed meanwhile is in the store.
            self.states.clear();
            *fence = Some(token);
        }
        match self.step(token, heads, announced, stop, summary).await? {
            Step::Done => {
                if let Some(last) = self.options.stop_after {
                    let cp = self.db(move |s| s.checkpoint(chain_id)).await?;
                    if cp.is_some_and(|c| c.block.number >= last) {
                        return Ok(Round::Ended);
                    }
                }
                Ok(Round::Committed)
            }
            Step::Again => Ok(Round::Again),
        }
    }

    /// Rebuilds the list of alerts awaiting confirmation from the store.
    async fn load_unconfirmed(&mut self) -> Result<(), WatchError> {
        if self.options.confirmations == 0 {
            // No alert waits for a confirmation (as at commit, see `process`).
            self.unconfirmed.clear();
            return Ok(());
        }
        let chain_id = self.chain.chain_id;
        let open = self
            .db(move |s| {
                s.alerts(&AlertQuery {
                    chain_id: Some(chain_id),
                    status: Some(AlertStatus::Open),
                    limit: holdfast_store::MAX_LIMIT,
                    ..AlertQuery::default()
                })
            })
            .await?;
        self.unconfirmed.clear();
        let mut by_block: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
        for a in open.into_iter().filter(|a| !a.confirmed) {
            by_block.entry(a.block_number).or_default().push(a.id);
        }
        self.unconfirmed.extend(by_block);
        Ok(())
    }

    /// Processes from the checkpoint to the head (or waits for a new head).
    async fn step(
        &mut self,
        fence: u64,
        heads: &mut HeadStream<'_>,
        announced: &mut Option<Head>,
        stop: &mut tokio::sync::watch::Receiver<bool>,
        summary: &mut RunSummary,
    ) -> Result<Step, WatchError> {
        let chain_id = self.chain.chain_id;
        let cp = self.db(move |s| s.checkpoint(chain_id)).await?;
        let head = match announced {
            Some(h) => h.number,
            None => self
                .source
                .head_number()
                .await
                .map_err(|e| self.chain_err(e))?,
        };
        let (mut parent, mut state) = match &cp {
            Some(c) => (Some(c.block), WatchState::decode(&c.state)?),
            None => (None, WatchState::default()),
        };
        let next = match (&cp, self.options.start) {
            (Some(c), _) => c.block.number + 1,
            (None, Start::Block(n)) => n,
            (None, Start::Head) => head,
        };
        // The first run: the block below the first one watched is committed (without alerts)
        // as the anchor a reorg of the first block unwinds to.
        if cp.is_none() && next > 0 {
            let anchor = self
                .source
                .block_ref(next - 1)
                .await
                .map_err(|e| self.chain_err(e))?;
            let commit = BlockCommit {
                chain_id,
                block: anchor,
                state: WatchState::default().encode()?,
                alerts: Vec::new(),
                confirm: Vec::new(),
                forget_below: 0,
                fence: Some(fence),
            };
            self.db(move |s| s.commit_block(&commit)).await?;
            tracing::info!(target: "watch", chain = %self.chain.name, first = next, "watch starts");
            return Ok(Step::Again);
        }
        // The checkpoint itself must still be canonical (a reorg that did not grow the chain).
        if let Some(p) = parent
            && p.number <= head
        {
            let canonical = self
                .source
                .block_ref(p.number)
                .await
                .map_err(|e| self.chain_err(e))?;
            if canonical.hash != p.hash {
                self.unwind(p.number, fence, summary).await?;
                return Ok(Step::Again);
            }
        }
        let last = self.options.stop_after.map_or(head, |s| s.min(head));
        self.shared
            .metrics
            .head_lag
            .get_or_create(&WatchMetrics::chain(&self.chain.name))
            .set(i64::try_from(head.saturating_sub(next.saturating_sub(1))).unwrap_or(i64::MAX));
        if next > last {
            if self.options.stop_after.is_some_and(|s| next > s) {
                return Ok(Step::Done);
            }
            tokio::select! {
                r = heads.next() => {
                    let h = r.map_err(|e| self.chain_err(e))?;
                    *announced = Some(h);
                }
                _ = stop.changed() => {}
            }
            return Ok(Step::Done);
        }
        // The announced head's latency counts from its announcement; catch-up blocks from
        // their fetch.
        let origin = announced.take().map(|h| (h.number, h.seen_at));
        // A new head and nothing behind it: a first look raises what it can before the
        // state diffs are read. Only where it is cheap: parity traces (`trace_block` reads
        // what the node kept; geth's tracers would run the block once more) and a node
        // that serves state diffs (else the detail has none to wait for).
        let mut early = FirstLook::default();
        if self.options.first_look
            && self.source.trace_mode() == holdfast_chain::TraceMode::Parity
            && self.source.serves_state_diff()
            && let Some((n, at)) = origin
            && n == next
            && n == last
        {
            match self.first_look(n, parent, &state, fence, at).await {
                Ok(found) => early = found,
                Err(e) => {
                    tracing::warn!(target: "watch", chain = %self.chain.name, block = n, error = %e, "first look failed; the full block decides");
                }
            }
        }
        let source = self.source.clone();
        let mut blocks = futures_util::stream::iter(next..=last)
            .map(|n| {
                let source = source.clone();
                async move {
                    let r = source.fetch_detail(n).await;
                    let seen = match origin {
                        Some((number, at)) if number == n => at,
                        _ => Instant::now(),
                    };
                    (r, seen)
                }
            })
            .buffered(self.options.prefetch.max(1));
        let mut renewed = Instant::now();
        while let Some((fetched, seen)) = blocks.next().await {
            let detail = fetched.map_err(|e| self.chain_err(e))?;
            let block = *detail.block();
            if let Some(p) = parent
                && p.hash != block.parent_hash
            {
                self.unwind(p.number, fence, summary).await?;
                return Ok(Step::Again);
            }
            let depth = head.saturating_sub(block.number);
            self.process(&detail, &mut state, fence, depth, seen, &early, summary)
                .await?;
            parent = Some(block);
            if *stop.borrow() || self.options.stop_after.is_some_and(|s| block.number >= s) {
                return Ok(Step::Done);
            }
            if renewed.elapsed() > self.options.lease_ttl / 3 {
                // Renew between blocks; a lost lease stops here (the next commit would be
                // refused by its fence anyway).
                let owner = self.shared.owner.clone();
                let ttl = u64::try_from(self.options.lease_ttl.as_millis()).unwrap_or(u64::MAX);
                let token = self
                    .db(move |s| s.acquire_lease(chain_id, &owner, now_ms(), ttl))
                    .await?;
                if token != Some(fence) {
                    return Ok(Step::Again);
                }
                renewed = Instant::now();
            }
        }
        Ok(Step::Done)
    }

    /// One block: transfers stored, detectors and thefts run, alerts committed with the
    /// checkpoint.
    #[allow(clippy::too_many_arguments)]
    async fn process(
        &mut self,
        detail: &BlockDetail,
        state: &mut WatchState,
        fence: u64,
        depth: u64,
        seen: Instant,
        early: &FirstLook,
        summary: &mut RunSummary,
    ) -> Result<(), WatchError> {
        let chain_id = self.chain.chain_id;
        let block = *detail.block();
        let entered = Instant::now();
        let (transfers, conversions) = (
            detail.transfers.transfers.clone(),
            detail.transfers.conversions.clone(),
        );
        self.transfers(move |s| {
            match s.apply_block(chain_id, &block, &transfers, &conversions) {
                // The transfer store holds another block at this height: one this watch
                // wrote and never committed, or unwound in its own store but not yet in
                // this one (a crash or an outage between the two writes), and that a reorg
                // has since replaced. The watch's checkpoint is this block's parent, which
                // the node has just confirmed canonical: what the transfer store holds above
                // it is what the reorg dropped.
                Err(StoreError::Conflict { number, .. }) if number == block.number => {
                    tracing::info!(target: "watch", chain_id, block = number, "the transfer store holds a block the reorg dropped, above the checkpoint; unwinding it");
                    s.unwind_above(chain_id, number.saturating_sub(1))?;
                    s.apply_block(chain_id, &block, &transfers, &conversions)
                }
                r => r,
            }
        })
        .await?;
        let stored = Instant::now();
        let shared = self.shared.clone();
        let chain = self.chain.clone();
        let detail_arc = Arc::new(detail.clone());
        let mut moved = std::mem::take(state);
        let (back, found) = tokio::task::spawn_blocking(move || {
            let intel = shared.intel.index();
            let found = detect_block(
                shared.rules.as_ref(),
                shared.transfers.as_ref(),
                intel.as_ref(),
                &shared.units,
                &chain,
                &detail_arc,
                &mut moved,
            )
            .and_then(|alerts| {
                // The checkpoint holds the whole state.
                shared
                    .rules
                    .flush_state(&chain, &mut moved.detect)
                    .map_err(|source| WatchError::Rules {
                        chain: chain.name.clone(),
                        block: detail_arc.block().number,
                        source: Box::new(source),
                    })?;
                Ok(alerts)
            });
            (moved, found)
        })
        .await
        .map_err(|e| WatchError::Join(e.to_string()))?;
        *state = back;
        let mut alerts = found?;
        let detected = Instant::now();
        for a in &mut alerts {
            a.confirmations = depth;
        }
        let new = new_alerts(&alerts, now_ms())?;
        // Alerts of blocks now deep enough are confirmed in the same commit.
        let mut confirm = Vec::new();
        let confirmations = self.options.confirmations;
        while let Some((n, _)) = self.unconfirmed.front() {
            if block.number.saturating_sub(*n) + depth < confirmations {
                break;
            }
            if let Some((_, ids)) = self.unconfirmed.pop_front() {
                confirm.extend(ids);
            }
        }
        let encoded = state.encode()?;
        let commit = BlockCommit {
            chain_id,
            block,
            state: encoded.clone(),
            alerts: new,
            confirm,
            forget_below: block.number.saturating_sub(self.options.max_reorg_depth),
            fence: Some(fence),
        };
        self.db(move |s| s.commit_block(&commit)).await?;
        let committed = Instant::now();
        if !alerts.is_empty() && confirmations > 0 {
            let ids: Vec<String> = alerts.iter().map(|a| a.id.clone()).collect();
            if depth >= confirmations {
                // Deep already (catch-up): confirmed with the next block's commit.
                self.unconfirmed
                    .push_back((block.number.saturating_sub(confirmations), ids));
            } else {
                self.unconfirmed.push_back((block.number, ids));
            }
        }
        self.states.push_back((block, encoded));
        while self.states.len() as u64 > self.options.max_reorg_depth + 1 {
            self.states.pop_front();
        }
        self.shared.notify.notify_waiters();
        let latency = seen.elapsed();
        if let Some(f) = &self.shared.on_block {
            f(&BlockTiming {
                number: block.number,
                alerts: alerts.len(),
                fetch: entered.saturating_duration_since(seen),
                store: stored - entered,
                detect: detected - stored,
                commit: committed - detected,
                total: latency,
                first_look: early.raised,
            });
        }
        let labels = WatchMetrics::chain(&self.chain.name);
        self.shared.metrics.blocks.get_or_create(&labels).inc();
        // Alerts raised by the first look were counted and announced then.
        let later: Vec<&Alert> = alerts
            .iter()
            .filter(|a| !early.ids.contains(&a.id))
            .collect();
        if !later.is_empty() {
            self.shared
                .metrics
                .block_to_alert
                .get_or_create(&labels)
                .observe(latency.as_secs_f64());
        }
        for a in later {
            self.shared
                .metrics
                .alerts
                .get_or_create(&crate::metrics::RuleLabels {
                    chain: self.chain.name.clone(),
                    rule: a.rule.clone(),
                })
                .inc();
            tracing::warn!(target: "watch::alert", id = %a.id, rule = %a.rule, severity = a.severity.name(), block = block.number, "{}", a.title);
            if let Some(f) = &self.shared.on_alert {
                f(a, latency);
            }
        }
        summary.blocks += 1;
        summary.alerts += alerts.len() as u64;
        Ok(())
    }

    /// Finds the highest block at or below `top` that the watch processed and the node still
    /// has, and unwinds everything above it (retracting its alerts).
    async fn unwind(
        &mut self,
        top: u64,
        fence: u64,
        summary: &mut RunSummary,
    ) -> Result<(), WatchError> {
        let chain_id = self.chain.chain_id;
        let mut n = top;
        let fork = loop {
            if top - n > self.options.max_reorg_depth {
                return Err(WatchError::ReorgTooDeep {
                    chain: self.chain.name.clone(),
                    at: top,
                    max: self.options.max_reorg_depth,
                });
            }
            let stored = self.db(move |s| s.processed_block(chain_id, n)).await?;
            let canonical = self
                .source
                .block_ref(n)
                .await
                .map_err(|e| self.chain_err(e))?;
            match stored {
                Some(s) if s.hash == canonical.hash => break n,
                Some(_) => {}
                // Below what the watch remembers: the reorg reaches past its anchor or its
                // reorg depth.
                None => {
                    return Err(WatchError::ReorgTooDeep {
                        chain: self.chain.name.clone(),
                        at: top,
                        max: top - n,
                    });
                }
            }
            match n.checked_sub(1) {
                Some(p) => n = p,
                None => {
                    return Err(WatchError::ReorgTooDeep {
                        chain: self.chain.name.clone(),
                        at: top,
                        max: top,
                    });
                }
            }
        };
        // The state after the fork block, if this process saw it; otherwise the state as it
        // is (it may remember outflows of the unwound blocks: more alerts, never fewer).
        while self.states.back().is_some_and(|(b, _)| b.number > fork) {
            self.states.pop_back();
        }
        let state = match self.states.back() {
            Some((b, s)) if b.number == fork => s.clone(),
            _ => self
                .db(move |s| s.checkpoint(chain_id))
                .await?
                .map(|c| c.state)
                .unwrap_or_default(),
        };
        let retracted = self
            .db(move |s| s.unwind_above(chain_id, fork, &state, Some(fence)))
            .await?;
        self.transfers(move |s| s.unwind_above(chain_id, fork))
            .await?;
        self.unconfirmed.retain(|(n, _)| *n <= fork);
        let labels = WatchMetrics::chain(&self.chain.name);
        self.shared.metrics.reorgs.get_or_create(&labels).inc();
        self.shared
            .metrics
            .retracted
            .get_or_create(&labels)
            .inc_by(retracted.len() as u64);
        tracing::warn!(target: "watch", chain = %self.chain.name, fork, retracted = retracted.len(), "reorg: blocks above the fork unwound, their alerts retracted");
        summary.reorgs += 1;
        summary.retracted += retracted.len() as u64;
        self.shared.notify.notify_waiters();
        Ok(())
    }
}

/// One block through the rules and the thefts being followed (live and in replay): the
/// detectors' alerts, thefts started by `trace` responses, then every theft extended through
/// the block (`transfers` must already hold it). Alerts are unique by id.
pub fn detect_block<C: holdfast_trace::Classifier + ?Sized>(
    rules: &dyn Rules,
    transfers: &dyn Store,
    classifier: &C,
    units: &Units,
    chain: &ChainInfo,
    detail: &BlockDetail,
    state: &mut WatchState,
) -> Result<Vec<Alert>, WatchError> {
    let mut alerts = rules
        .detect(chain, detail, &mut state.detect)
        .map_err(|source| WatchError::Rules {
            chain: chain.name.clone(),
            block: detail.block().number,
            source: Box::new(source),
        })?;
    for a in &alerts {
        if a.responses.iter().any(|r| r == "trace")
            && let Some(plan) = rules.trace_plan(&a.rule)
            && state.follow.start(a, &plan)
        {
            tracing::info!(target: "watch::follow", alert = %a.id, tx = ?a.tx_hash, "following the theft");
        }
    }
    if !state.follow.thefts.is_empty() {
        alerts.extend(state.follow.extend(
            transfers,
            classifier,
            chain,
            detail.block(),
            &detail.transfers.transfers,
            units,
        ));
    }
    let mut seen = std::collections::HashSet::new();
    alerts.retain(|a| seen.insert(a.id.clone()));
    Ok(alerts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{DetectError, HistoryError};

    fn history(outage: Option<Outage>) -> WatchError {
        WatchError::Rules {
            chain: "eth".into(),
            block: 7,
            source: Box::new(RulesError::Detect(DetectError::History {
                block: 7,
                source: HistoryError {
                    message: "down".into(),
                    outage,
                },
            })),
        }
    }

    /// A history read waits out the outage it met, named as what it was (a token balance
    /// asked of the node is a node outage, not the store's); anything else ends the run.
    #[test]
    fn a_history_error_is_the_outage_it_met() {
        assert_eq!(history(Some(Outage::Node)).outage(), Some(Outage::Node));
        assert_eq!(history(Some(Outage::Store)).outage(), Some(Outage::Store));
        assert_eq!(history(None).outage(), None);
        let store = |source| WatchError::Store {
            chain: "eth".into(),
            source,
        };
        assert_eq!(
            store(StoreError::Unavailable("restart".into())).outage(),
            Some(Outage::Store)
        );
        assert_eq!(store(StoreError::Corrupt("x".into())).outage(), None);
    }
}
