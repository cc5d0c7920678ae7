//! Holdfast's taint engine: follows stolen funds through the transfer store to the service
//! deposits that can be frozen (docs/TRACE.md).
//!
//! - [`policy`]: the question — [`Policy`] (poison, haircut, FIFO, LIFO, TIHO), [`Seed`]s
//!   (theft transactions or addresses, with asset, amount and start block), [`TraceOptions`]
//!   (hop limit, fan-out cap, haircut cut-off, mixers and bridges).
//! - [`graph`]: [`GraphBuilder`] → [`Graph`], the transfers and conversions of one chain
//!   indexed for tracing.
//! - [`load`]: fills a graph from a [`holdfast_store::Store`] around the seeds.
//! - [`engine`]: [`trace`] → [`Trace`]; pure and deterministic (its `take` module holds
//!   the policies, `report` the result and the evidence paths).
//! - [`labels`]: [`Classifier`] (services from intel) and the `tainted` labels a trace gives
//!   back to intel.
//! - [`output`]: JSON, CSV, Graphviz DOT and GraphML.
//! - [`utxo`]: taint over a Bitcoin-family UTXO index (the unit is the output): the same
//!   policies over a transaction's inputs and outputs, [`utxo::trace_utxo`] → [`utxo::UtxoTrace`].
//!
//! Invariants: no I/O in the engine (the loader reads only the store it is given), no
//! environment variables; taint is never negative, and under every policy but poison the
//! taint leaving an address never exceeds the taint that entered it, per seed and asset;
//! every bound (hops, fan-out, addresses, path length) is reported when it is hit.

#![forbid(unsafe_code)]

pub mod crosschain;
pub mod engine;
mod error;
pub mod graph;
pub mod labels;
pub mod load;
pub mod output;
pub mod policy;
pub mod result;
pub mod utxo;

pub use engine::{trace, trace_with_progress};
pub use error::TraceError;
pub use graph::{Graph, GraphBuilder};
pub use labels::{Classifier, NoServices, Service, ServiceKind};
pub use load::{LoadOptions, LoadStats, load_graph};
pub use policy::{Policy, Seed, SeedAt, TraceOptions, parse_asset};
pub use result::{Amount, FreezeTarget, Hop, MAX_ARRIVALS, Reached, Role, Trace, TraceStats};
