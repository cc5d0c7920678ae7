//! EVM chain access for Holdfast.
//!
//! - [`extract`]: blocks, receipts' logs and call traces → [`Transfer`]s and [`Conversion`]s
//!   (pure, tested on recorded mainnet responses).
//! - [`etl`]: transfers from blockchain-etl CSV exports (`holdfast import transfers`).
//! - [`source`]: [`ChainSource`], one node over HTTP or WebSocket: batched, rate-limited,
//!   retried block fetches; trace method and state-diff detection; [`HeadStream`], the
//!   heads as the node announces them.
//! - [`detail`]: [`BlockDetail`], everything a block shows (transactions, logs, call frames,
//!   state diffs) for the watch, by [`ChainSource::fetch_detail`].
//! - [`transport`]: HTTP JSON-RPC with the node's answer bounded.
//! - [`logs`]: logs over a block range by topic; many `eth_call`s in one batch.
//! - [`state`]: account state, storage and headers at a block (the guard's simulation fork).
//! - [`tx`]: nonces, fees, gas estimates, sending signed transactions, receipts (the guard
//!   service's hot-wallet gateway).
//!
//! This is the only crate that speaks JSON-RPC; everything above it sees normalized records.
//!
//! [`Transfer`]: holdfast_primitives::Transfer
//! [`Conversion`]: holdfast_primitives::Conversion

pub mod detail;
pub mod etl;
pub mod extract;
pub mod logs;
pub mod source;
pub mod state;
pub mod transport;
pub mod tx;

pub use detail::{
    BlockDetail, CallDetail, CallKind, LogDetail, MAX_INPUT_BYTES, SlotChange, StateDiff, TxDetail,
};
pub use source::{
    BlockTransfers, ChainError, ChainSource, DEFAULT_MAX_RESPONSE_BYTES, Head, HeadStream,
    ReceiptLogs, SourceConfig, TraceMode,
};
pub use state::{Account, Header};
pub use transport::ResponseTooLarge;
pub use tx::{Fees, Inclusion};
