//! The watch's Prometheus metrics: head lag per chain, time from block to alert, alerts by
//! rule, blocks and reorgs. Registered into the caller's registry (the server's, when the
//! watch runs inside `holdfast serve`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChainLabels {
    pub chain: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub chain: String,
    pub rule: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Counters and gauges of the watch.
#[derive(Debug, Clone)]
pub struct WatchMetrics {
    /// Blocks between the node's head and the last block processed.
    pub head_lag: Family<ChainLabels, Gauge>,
    /// Seconds from the moment the block was seen (announced, or fetched in catch-up) to its
    /// alerts being committed to the outbox.
    pub block_to_alert: Family<ChainLabels, Histogram, fn() -> Histogram>,
    pub alerts: Family<RuleLabels, Counter>,
    pub retracted: Family<ChainLabels, Counter>,
    pub blocks: Family<ChainLabels, Counter>,
    pub reorgs: Family<ChainLabels, Counter>,
    pub node_errors: Family<ChainLabels, Counter>,
    /// Store (database) outages waited out, and history reads that met one.
    pub store_errors: Family<ChainLabels, Counter>,
}

impl Default for WatchMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl WatchMetrics {
    pub fn new() -> Self {
        WatchMetrics {
            head_lag: Family::default(),
            block_to_alert: Family::new_with_constructor(latency_histogram),
            alerts: Family::default(),
            retracted: Family::default(),
            blocks: Family::default(),
            reorgs: Family::default(),
            node_errors: Family::default(),
            store_errors: Family::default(),
        }
    }

    /// Adds every metric to `registry` under `watch_…` names.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "watch_head_lag_blocks",
            "Blocks between the node's head and the last block the watch committed",
            self.head_lag.clone(),
        );
        registry.register(
            "watch_block_to_alert_seconds",
            "Time from a block being seen to its alerts being in the outbox",
            self.block_to_alert.clone(),
        );
        registry.register(
            "watch_alerts",
            "Alerts raised, by chain and rule",
            self.alerts.clone(),
        );
        registry.register(
            "watch_alerts_retracted",
            "Alerts retracted by a reorg",
            self.retracted.clone(),
        );
        registry.register("watch_blocks", "Blocks processed", self.blocks.clone());
        registry.register("watch_reorgs", "Reorgs unwound", self.reorgs.clone());
        registry.register(
            "watch_node_errors",
            "Node errors waited out",
            self.node_errors.clone(),
        );
        registry.register(
            "watch_store_errors",
            "Store (database) outages waited out",
            self.store_errors.clone(),
        );
    }

    pub(crate) fn chain(chain: &str) -> ChainLabels {
        ChainLabels {
            chain: chain.to_owned(),
        }
    }
}
