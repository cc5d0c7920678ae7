//! From a block's raw data (transactions, receipts' logs, call traces) to normalized
//! [`Transfer`]s and [`Conversion`]s. Pure functions: no I/O, so every rule here is tested on
//! recorded mainnet responses (`tests/fixtures/ethereum-etl/`).
//!
//! What counts as a transfer:
//! - Native coin: every value-carrying CALL, CREATE/CREATE2 and SELFDESTRUCT frame that took
//!   effect. A frame that reverted, or sits under one that did, moved nothing; a failed
//!   transaction moved nothing (its gas fee is not a transfer). DELEGATECALL, STATICCALL and
//!   CALLCODE move no value between accounts. Block rewards and beacon withdrawals are not
//!   transfers between accounts and are left out.
//! - Tokens: ERC-20 `Transfer` (three topics and one data word; also the pre-standard form
//!   with all arguments in data), ERC-721 `Transfer` (four topics), ERC-1155 `TransferSingle`
//!   and `TransferBatch` (one transfer per item). Logs of failed transactions do not exist
//!   (receipts carry none), and logs marked `removed` are skipped.
//! - Conversions: WETH-style `Deposit`/`Withdrawal` and Uniswap V2 `Swap`, recorded from any
//!   contract that emits them: whether the venue is trusted is the consumer's decision.

mod logs;
mod native;

use alloy_primitives::{Address, B256, U256};
use holdfast_primitives::BlockRef;

pub use logs::LogOutput;
pub use logs::{PairTokens, SwapEvent, token_transfers};
pub use native::{GethFrame, NativeTransfers, Traces, native_transfers};

/// The block being extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockContext {
    pub chain_id: u64,
    pub block: BlockRef,
}

/// What extraction needs to know of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxMeta {
    pub hash: B256,
    pub index: u32,
    pub from: Address,
    /// The callee, or for a contract creation the created contract (from the receipt).
    pub to: Option<Address>,
    pub value: U256,
    /// Receipt status: `false` for a reverted transaction.
    pub success: bool,
}

/// Raw data that does not fit together: extraction refuses rather than guess.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error("block {block}: {method} returned {got} traces for {expected} transactions")]
    TraceCount {
        block: u64,
        method: &'static str,
        got: usize,
        expected: usize,
    },
    #[error(
        "block {block}: {method}: trace for transaction index {index} does not match a transaction of the block"
    )]
    UnknownTransaction {
        block: u64,
        method: &'static str,
        index: u64,
    },
    #[error(
        "block {block}: {method}: trace address {trace_address:?} of tx {tx} is deeper or wider than supported (65535)"
    )]
    TraceAddress {
        block: u64,
        method: &'static str,
        tx: B256,
        trace_address: Vec<usize>,
    },
    #[error("block {block}: log {log_index} of tx {tx}: {reason}")]
    BadLog {
        block: u64,
        tx: B256,
        log_index: u64,
        reason: String,
    },
}
