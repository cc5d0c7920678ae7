//! [`Runner`]: a watch file running — one engine loop per chain, one delivery task per sink
//! and the responder, sharing the stores, intel and the outbox's wake-up. Used by
//! `holdfast watch` and by `holdfast serve --watch-config`.
//!
//! Everything that can be checked is checked before the first block: the sinks' settings
//! (and a warning for each sink that does not answer), each chain's node and chain id, that
//! the node serves what the rules need (call traces, state diffs: a warning naming the rules
//! that would be blind), that every response a rule asks for can run here (a `freeze`
//! without a guard service is an error, not a silent no-op), and that no stored sink cursor
//! belongs to a sink the file no longer names (a warning for each: it holds pruning back).

use std::sync::Arc;
use std::time::Duration;

use holdfast_chain::{ChainSource, SourceConfig, TraceMode};
use holdfast_guard::policy::AssetKey;
use holdfast_primitives::AssetKind;
use holdfast_store::Store;
use holdfast_store::watch::WatchStore;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;

use crate::alert::DetectorKind;
use crate::config::{CriticalChange, Params, Response, WatchConfig};
use crate::deliver::{Deliverer, DeliveryConfig, DeliveryMetrics};
use crate::detect::{FileRules, NodeBalances, StoreHistory};
use crate::engine::{
    ChainOptions, ChainWatch, IntelView, OnAlert, RunSummary, Shared, Start, WatchError,
};
use crate::follow::ChainInfo;
use crate::metrics::WatchMetrics;
use crate::respond::Responder;
use crate::sink::{Sink, SinkConfigError};
use crate::units::Units;

/// Looks up an environment variable (the library reads no environment itself).
pub type EnvLookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How long a bounded run waits for its sinks to take every event before it stops.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

/// What a running watch needs besides its file.
pub struct RunnerDeps {
    pub transfers: Arc<dyn Store>,
    pub watch: Arc<dyn WatchStore>,
    pub intel: Arc<dyn IntelView>,
    pub responder: Responder,
    /// This instance's name in the chains' leases (unique per process).
    pub owner: String,
    pub on_alert: Option<OnAlert>,
    pub on_block: Option<crate::engine::OnBlock>,
    /// Environment lookup for the sinks' secrets (the binary passes `std::env::var`).
    pub env: EnvLookup,
    /// Tuning for tests and benchmarks; `None`: defaults.
    pub chain_options: Option<ChainOptions>,
    pub delivery: DeliveryConfig,
}

impl std::fmt::Debug for RunnerDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerDeps")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// Why a watch cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Sink(#[from] SinkConfigError),
    #[error("chain {chain}: {source}")]
    Node {
        chain: String,
        source: holdfast_chain::ChainError,
    },
    #[error(
        "chain {chain}: the node at {endpoint} is chain {actual}, the watch file says {expected}"
    )]
    WrongChain {
        chain: String,
        endpoint: String,
        expected: u64,
        actual: u64,
    },
    #[error("chain {chain}: {source}")]
    Discover {
        chain: String,
        source: crate::discover::DiscoverError,
    },
    #[error("rule {rule} asks for the {response} response, but {missing}")]
    Response {
        rule: String,
        response: &'static str,
        missing: &'static str,
    },
}

/// A watch file ready to run.
pub struct Runner {
    shared: Shared,
    chains: Vec<ChainWatch>,
    sinks: Vec<Sink>,
    delivery_metrics: Arc<DeliveryMetrics>,
    delivery: DeliveryConfig,
    /// Warnings found at start (also logged).
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("chains", &self.chains.len())
            .field("sinks", &self.sinks.len())
            .finish_non_exhaustive()
    }
}

/// Which detectors need call traces or state diffs from the node.
fn needs(config: &WatchConfig) -> (Vec<String>, Vec<String>) {
    let (mut calls, mut state) = (Vec::new(), Vec::new());
    for r in &config.rules {
        match (&r.detector, &r.params) {
            // Events alone cannot see a write without an event (Bybit's DELEGATECALL).
            (DetectorKind::CriticalStorage, Params::CriticalStorage(p))
                if p.changes
                    .iter()
                    .any(|c| !matches!(c, CriticalChange::Ownership | CriticalChange::Roles)) =>
            {
                state.push(r.name.clone());
                calls.push(r.name.clone());
            }
            (DetectorKind::Grant, _) => calls.push(r.name.clone()),
            (DetectorKind::Outflow, Params::Outflow(p)) if p.drain.is_some() || p.whole_balance => {
                state.push(r.name.clone())
            }
            _ => {}
        }
    }
    (calls, state)
}

impl Runner {
    /// Checks everything that can be checked and connects to every chain's node.
    pub async fn start(config: &WatchConfig, deps: RunnerDeps) -> Result<Runner, StartError> {
        let mut warnings = Vec::new();
        let mut sinks = Sink::from_specs(&config.sinks, &*deps.env)?;
        // Concurrently; each unreachable sink is logged by the probe.
        for e in crate::sink::probe_all(&sinks, Duration::from_secs(3)).await {
            warnings.push(format!(
                "{e}: its alerts wait in the outbox until it answers"
            ));
        }
        for r in &config.rules {
            for resp in &r.responses {
                let missing = match resp {
                    Response::Freeze if deps.responder.freezer.is_none() => Some(
                        "no guard service is configured (--guard-url with --guard-token-file, or run inside `holdfast serve --guard-config`)",
                    ),
                    Response::Label if deps.responder.labeler.is_none() => {
                        Some("no intel directory is configured")
                    }
                    Response::Notify if deps.responder.notify_dir.is_none() => {
                        Some("no directory for freeze requests is configured")
                    }
                    _ => None,
                };
                if let Some(missing) = missing {
                    return Err(StartError::Response {
                        rule: r.name.clone(),
                        response: resp.name(),
                        missing,
                    });
                }
            }
        }
        if sinks.is_empty() {
            warnings.push(
                "the watch file has no [[sink]]: alerts are only stored (and served by the API)"
                    .into(),
            );
        }
        sinks.push(Sink::responder(Arc::new(deps.responder)));
        // A stored cursor of a sink this file does not serve (removed or renamed) bounds
        // every prune of the outbox: said at each start, with the command that forgets it.
        let served: Vec<String> = sinks.iter().map(|s| s.name().to_owned()).collect();
        let store = deps.watch.clone();
        match tokio::task::spawn_blocking(move || {
            crate::cursors::stale_warnings(store.as_ref(), &served)
        })
        .await
        {
            Ok(Ok(stale)) => warnings.extend(stale),
            Ok(Err(e)) => warnings.push(format!("cannot read the stored sink cursors: {e}")),
            Err(e) => warnings.push(format!("reading the stored sink cursors failed: {e}")),
        }
        let mut units = Units::new();
        let metrics = WatchMetrics::new();
        let delivery_metrics = Arc::new(DeliveryMetrics::default());
        let mut connected = Vec::new();
        for c in &config.chains {
            let mut sc = SourceConfig::new(c.rpc.clone());
            sc.poll_interval = Duration::from_millis(250);
            // Parity-style traces first: `trace_replayBlockTransactions` gives the calls and
            // the state diff in one replay of the block (two tracer runs with geth's
            // `debug_` methods; on anvil 100× slower for a 200-transaction block).
            sc.trace_mode = Some(TraceMode::Parity);
            let source = match ChainSource::connect(sc.clone()).await {
                Ok(s) => s,
                Err(holdfast_chain::ChainError::TracesUnavailable { .. }) => {
                    sc.trace_mode = None;
                    ChainSource::connect(sc)
                        .await
                        .map_err(|source| StartError::Node {
                            chain: c.name.clone(),
                            source,
                        })?
                }
                Err(source) => {
                    return Err(StartError::Node {
                        chain: c.name.clone(),
                        source,
                    });
                }
            };
            let actual = source.chain_id();
            if let Some(expected) = c.chain_id
                && expected != actual
            {
                return Err(StartError::WrongChain {
                    chain: c.name.clone(),
                    endpoint: source.endpoint().to_owned(),
                    expected,
                    actual,
                });
            }
            for a in config.assets.iter().filter(|a| a.chain == c.name) {
                match a.key {
                    AssetKey::Native => units = units.with_native(actual, a.symbol.clone()),
                    AssetKey::Token(token) if a.kind == AssetKind::Erc20 => {
                        units.add_token(actual, token, a.symbol.clone(), a.decimals);
                    }
                    AssetKey::Token(_) => {}
                }
            }
            let (calls, state) = needs(config);
            if source.trace_mode() == TraceMode::None && !calls.is_empty() {
                warnings.push(format!("chain {}: the node serves no call traces: rules {} cannot see internal calls (a DELEGATECALL, a Safe's inner calls)", c.name, calls.join(", ")));
            }
            if !source.serves_state_diff() && !state.is_empty() {
                warnings.push(format!("chain {}: the node serves no state diff: rules {} cannot see storage written without an event (the Bybit DELEGATECALL) or balances", c.name, state.join(", ")));
            }
            connected.push((c, Arc::new(source), actual));
        }
        let sources: Vec<(String, &ChainSource)> = connected
            .iter()
            .map(|(c, s, _)| (c.name.clone(), &**s))
            .collect();
        let redo = deps
            .chain_options
            .as_ref()
            .map_or(crate::discover::REDO_BLOCKS, |o| o.max_reorg_depth);
        let discovered =
            crate::discover::existing_safes(config, &sources, Some(deps.watch.clone()), redo)
                .await
                .map_err(|(chain, source)| StartError::Discover { chain, source })?;
        let rules = FileRules::new(
            discovered.as_ref().unwrap_or(config),
            deps.intel.clone(),
            Arc::new(
                StoreHistory::new(deps.transfers.clone()).with_balances(NodeBalances::new(
                    connected
                        .iter()
                        .map(|(_, s, id)| (*id, s.clone()))
                        .collect(),
                    tokio::runtime::Handle::current(),
                )),
            ),
        );
        let shared = Shared {
            transfers: deps.transfers,
            watch: deps.watch,
            rules: Arc::new(rules),
            intel: deps.intel,
            units: Arc::new(units),
            notify: Arc::new(Notify::new()),
            metrics,
            owner: deps.owner,
            on_alert: deps.on_alert,
            on_block: deps.on_block,
        };
        let chains = connected
            .into_iter()
            .map(|(c, source, chain_id)| {
                let mut options = deps.chain_options.clone().unwrap_or_default();
                options.confirmations = c.confirmations;
                options.first_look &= c.first_look;
                if let Some(b) = c.start_block {
                    options.start = Start::Block(b);
                }
                let info = ChainInfo {
                    chain_id,
                    name: c.name.clone(),
                    explorer: c.explorer.clone(),
                };
                ChainWatch::new(info, source, options, shared.clone())
            })
            .collect();
        for w in warnings
            .iter()
            .filter(|w| !w.contains("did not accept a connection"))
        {
            tracing::warn!(target: "watch", "{w}");
        }
        Ok(Runner {
            shared,
            chains,
            sinks,
            delivery_metrics,
            delivery: deps.delivery,
            warnings,
        })
    }
}

/// Waits (at most [`DRAIN_TIMEOUT`]) until every sink's cursor is at the outbox head.
async fn drain(shared: &Shared, sinks: &[String]) {
    {
        let started = std::time::Instant::now();
        loop {
            let store = shared.watch.clone();
            let names = sinks.to_vec();
            let behind = tokio::task::spawn_blocking(move || {
                let head = store.outbox_head()?;
                let mut behind = Vec::new();
                for n in names {
                    if store.cursor(&n)? < head {
                        behind.push(n);
                    }
                }
                Ok::<_, holdfast_store::StoreError>(behind)
            })
            .await;
            match behind {
                Ok(Ok(b)) if b.is_empty() => return,
                Ok(Ok(b)) if started.elapsed() > DRAIN_TIMEOUT => {
                    tracing::warn!(target: "watch", sinks = ?b, "stopping with undelivered events: they wait in the outbox for the next run");
                    return;
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(target: "watch", error = %e, "cannot read the outbox's cursors; stopping");
                    return;
                }
                Err(_) => return,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Runner {
    /// Registers the watch's and the delivery's metrics (`watch_…`) into `registry`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.shared.metrics.register(registry);
        self.delivery_metrics.register_into(registry);
    }

    /// The shared parts (the outbox's wake-up, metrics).
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Runs until `stop` turns true (or every chain reached its `stop_after`), then stops the
    /// delivery tasks (what they have not delivered stays in the outbox). A chain whose loop
    /// fails stops the whole watch with its error.
    pub async fn run(
        self,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Vec<RunSummary>, WatchError> {
        let names: Vec<String> = self.sinks.iter().map(|s| s.name().to_owned()).collect();
        let deliverer = Deliverer::spawn(
            self.shared.watch.clone(),
            self.sinks,
            self.shared.notify.clone(),
            self.delivery_metrics,
            self.delivery,
        );
        let mut set = tokio::task::JoinSet::new();
        for mut chain in self.chains {
            let stop = stop.clone();
            set.spawn(async move { chain.run(stop).await });
        }
        let mut summaries = Vec::new();
        let mut failed = None;
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(s)) => summaries.push(s),
                Ok(Err(e)) => {
                    failed = Some(e);
                    set.abort_all();
                }
                Err(e) if e.is_cancelled() => {}
                Err(e) => {
                    failed = Some(WatchError::Join(e.to_string()));
                    set.abort_all();
                }
            }
        }
        if failed.is_none() {
            self.shared.notify.notify_waiters();
            if *stop.borrow() {
                // Stopped by the operator: what is not delivered waits in the outbox.
                tokio::time::sleep(Duration::from_millis(200)).await;
            } else {
                // A bounded run (`stop_after`) ends once every sink has what it raised.
                drain(&self.shared, &names).await;
            }
        }
        deliverer.shutdown().await;
        match failed {
            Some(e) => Err(e),
            None => Ok(summaries),
        }
    }
}
