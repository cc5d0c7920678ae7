//! The service's one metrics registry (Prometheus text format at `GET /metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub decision: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RiskLabels {
    pub risk: &'static str,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// Counters and histograms of the HTTP API and the intel.
#[derive(Debug)]
pub struct Metrics {
    /// Behind a lock so components started after the server (the watch) can add theirs.
    registry: std::sync::Mutex<Registry>,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub screened: Family<RiskLabels, Counter>,
    pub reloads: Counter,
    pub decisions: Family<DecisionLabels, Counter>,
    labels: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("holdfast");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let screened = Family::<RiskLabels, Counter>::default();
        let reloads = Counter::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        let labels = Gauge::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "screened_addresses",
            "Addresses screened, by resulting risk level",
            screened.clone(),
        );
        registry.register("intel_reloads", "Successful intel reloads", reloads.clone());
        registry.register("intel_labels", "Labels in the loaded intel", labels.clone());
        registry.register(
            "guard_decisions",
            "Guard decisions on submitted requests, by decision",
            decisions.clone(),
        );
        Metrics {
            registry: std::sync::Mutex::new(registry),
            requests,
            latency,
            screened,
            reloads,
            decisions,
            labels,
        }
    }

    pub fn decision(&self, decision: &str) {
        self.decisions
            .get_or_create(&DecisionLabels {
                decision: decision.to_owned(),
            })
            .inc();
    }

    pub fn set_labels(&self, n: usize) {
        self.labels.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Lets another component (the watch, the delivery) register its metrics here.
    pub fn register(&self, f: impl FnOnce(&mut Registry)) {
        let mut r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut r);
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!(target: "server::metrics", error = %e, "encoding metrics failed");
        }
        out
    }
}
