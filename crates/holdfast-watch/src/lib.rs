//! Holdfast's watch (`docs/WATCH.md`): follows chains block by block, runs the detectors of a
//! watch file over each block ([`holdfast_chain::BlockDetail`]), records their alerts in the
//! store's outbox in the same commit as the checkpoint
//! ([`holdfast_store::watch::WatchStore`]), delivers them to sinks at least once, and starts
//! the rules' responses.
//!
//! Modules: `alert` (the alert and its deterministic id), `config` (the watch file),
//! `detect` (the built-in detectors), `sink` (webhook, Slack, email, stdout) and `deliver`
//! (the outbox to the sinks), `cursors` (the sinks' stored cursors against a watch file),
//! `engine` (the per-chain loop: fetch, detect, commit, unwind),
//! `respond` (freeze, trace, label, notify).

pub mod alert;
pub mod cases;
pub mod config;
pub mod cursors;
pub mod deliver;
pub mod detect;
pub mod discover;
pub mod engine;
pub mod follow;
pub mod metrics;
pub mod replay;
pub mod respond;
pub mod runner;
pub mod sink;
pub mod units;

pub use alert::{
    AddressNote, Alert, DetectorKind, Fact, Involvement, Link, Place, Severity, alert_id,
};
pub use config::{ConfigError, Diagnostic, Validated, WatchConfig};
pub use deliver::{Backoff, Deliverer, DeliveryConfig, DeliveryMetrics};
pub use detect::{Context, DetectError, DetectorState, Detectors, History, Labels};
pub use engine::{
    BlockTiming, ChainOptions, ChainWatch, IntelView, OnAlert, OnBlock, Rules, RunSummary, Shared,
    Start, WatchError, WatchState,
};
pub use follow::{ChainInfo, FollowState, Theft, TracePlan};
pub use metrics::WatchMetrics;
pub use respond::{Freezer, HttpFreezer, Labeler, Responder};
pub use runner::{Runner, RunnerDeps, StartError};
pub use sink::{Sink, SinkConfigError, SinkEvent, SinkSpec};
pub use units::Units;
