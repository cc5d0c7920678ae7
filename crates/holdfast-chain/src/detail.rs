//! [`BlockDetail`]: everything one block shows, for the watch's detectors: the transactions
//! with their input, the receipts' logs, every call frame (with its kind, so a DELEGATECALL
//! is visible) and the state each transaction changed (storage slots, balances), next to the
//! block's transfers and conversions as ingestion extracts them.
//!
//! Fetched by [`crate::ChainSource::fetch_detail`] in one batch: the block, its receipts, the
//! call traces (`debug_traceBlockByNumber` `callTracer`, or `trace_replayBlockTransactions`
//! `["trace","stateDiff"]`) and the state diff (`prestateTracer` in `diffMode`). A frame that
//! reverted, and everything under it, is kept with `reverted: true` (the detectors decide);
//! a failed transaction's frames are kept likewise (all reverted), and the only state it
//! changed is the gas it paid (its sender's and the fee recipient's balances).
//!
//! - `calls`: frames from either trace shape to [`CallDetail`]s;
//! - `state`: `prestateTracer` diffs (which leave zeros out) or parity `stateDiff`s to exact
//!   before/after values;
//! - `fetch`: the batch, and the detection of state-diff support at connect.

use alloy_primitives::{Address, B256, Bytes, U256};
use holdfast_primitives::BlockRef;
use serde::{Deserialize, Serialize};

use crate::BlockTransfers;

mod calls;
mod fetch;
pub(crate) mod state;

/// A block as the watch sees it.
/// (`BlockDetail` itself is not serialized: its transfers are stored by ingestion; the
/// recorded-block format of `holdfast watch test` is the watch's own.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDetail {
    /// The transfers and conversions ingestion stores for this block (same extraction).
    pub transfers: BlockTransfers,
    /// In block order.
    pub txs: Vec<TxDetail>,
    /// Every log of every receipt, in block order (failed transactions have none).
    pub logs: Vec<LogDetail>,
    /// Every call frame of every transaction, in pre-order per transaction (a parent before its
    /// children). Empty when the node serves no traces ([`BlockDetail::calls_complete`] false).
    pub calls: Vec<CallDetail>,
    /// Whether `calls` holds every frame (the node served call traces).
    pub calls_complete: bool,
    /// The state every transaction changed, in block order (a failed one: the gas it paid);
    /// `None` when the node serves no state diff (then detectors that need it say so at
    /// start).
    pub state: Option<Vec<StateDiff>>,
}

impl BlockDetail {
    pub fn block(&self) -> &BlockRef {
        &self.transfers.block
    }
    pub fn chain_id(&self) -> u64 {
        self.transfers.chain_id
    }
}

/// One transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxDetail {
    pub hash: B256,
    pub index: u32,
    pub from: Address,
    /// `None` for a contract creation.
    pub to: Option<Address>,
    /// The created contract, for a creation.
    pub created: Option<Address>,
    pub value: U256,
    pub input: Bytes,
    pub success: bool,
}

/// One receipt log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogDetail {
    pub tx_index: u32,
    /// The log's index in the block.
    pub log_index: u32,
    pub address: Address,
    pub topics: Vec<B256>,
    pub data: Bytes,
}

/// The kind of a call frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CallKind {
    Call,
    StaticCall,
    DelegateCall,
    CallCode,
    Create,
    Create2,
    SelfDestruct,
}

impl CallKind {
    pub const fn name(self) -> &'static str {
        match self {
            CallKind::Call => "CALL",
            CallKind::StaticCall => "STATICCALL",
            CallKind::DelegateCall => "DELEGATECALL",
            CallKind::CallCode => "CALLCODE",
            CallKind::Create => "CREATE",
            CallKind::Create2 => "CREATE2",
            CallKind::SelfDestruct => "SELFDESTRUCT",
        }
    }
}

/// One call frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallDetail {
    pub tx_index: u32,
    /// The frame's place in its transaction's call tree: empty for the top frame, `[0, 2]`
    /// for the third child of the first child (parity's `traceAddress`).
    pub trace_address: Vec<u32>,
    pub kind: CallKind,
    /// The account whose code made the call (for a DELEGATECALL: the account the callee's
    /// code runs as, e.g. the Safe).
    pub from: Address,
    /// The callee (for a DELEGATECALL: the code that runs in `from`'s storage; for a
    /// creation: the created contract; for a SELFDESTRUCT: the beneficiary).
    pub to: Address,
    /// The value the frame moves (zero for a DELEGATECALL or STATICCALL, which move none,
    /// whatever the node reports).
    pub value: U256,
    /// The call's input (for creations: the init code), at most [`MAX_INPUT_BYTES`] bytes
    /// kept; `input_len` is the full length.
    pub input: Bytes,
    pub input_len: usize,
    /// This frame or one of its ancestors reverted: it changed nothing.
    pub reverted: bool,
}

/// How much of a call's input is kept (selectors and arguments of any call a detector
/// decodes fit; init code and large payloads are cut, their length kept).
pub const MAX_INPUT_BYTES: usize = 4096;

/// What one transaction changed in one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDiff {
    pub tx_index: u32,
    pub address: Address,
    /// `(before, after)` when the balance changed.
    pub balance: Option<(U256, U256)>,
    /// The code changed (created or destroyed).
    pub code_changed: bool,
    /// Storage slots that changed, with the value before and after (zero when absent).
    pub storage: Vec<SlotChange>,
}

/// One storage slot written with a new value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotChange {
    pub slot: B256,
    pub before: B256,
    pub after: B256,
}
