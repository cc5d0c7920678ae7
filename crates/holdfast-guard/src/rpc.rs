//! The simulator's state over JSON-RPC: a [`StateSource`] reading one pinned block through
//! `holdfast-chain` (the only crate that speaks JSON-RPC).
//!
//! Its methods block on the async client, so a simulation runs on a blocking thread
//! (`tokio::task::spawn_blocking`), never on the async runtime itself.

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use holdfast_chain::{ChainError, ChainSource, SourceConfig, TraceMode};
use tokio::runtime::Handle;

use crate::simulate::{AccountState, BlockInfo, StateError, StateSource};

/// One node, read at one block.
#[derive(Debug)]
pub struct RpcState {
    source: Arc<ChainSource>,
    block: BlockInfo,
    handle: Handle,
}

/// How the guard talks to a node: short time-outs and one retry, since a decision waits
/// on it (a slow node is a failed simulation, which the policy sees).
pub fn source_config(url: &str) -> SourceConfig {
    let mut c = SourceConfig::new(url);
    c.trace_mode = Some(TraceMode::None);
    c.timeout = Duration::from_secs(3);
    c.max_retries = 1;
    c.requests_per_second = 2_000;
    c
}

fn source_error(what: String, e: &ChainError) -> StateError {
    StateError::Source {
        what,
        message: e.to_string(),
    }
}

impl RpcState {
    /// Connects and pins the latest block (or `block`). Call from async code.
    pub async fn connect(url: &str, block: Option<u64>) -> Result<RpcState, ChainError> {
        let source = ChainSource::connect(source_config(url)).await?;
        Self::on(Arc::new(source), block).await
    }

    /// Pins `block` (default: the latest) on an existing connection.
    pub async fn on(source: Arc<ChainSource>, block: Option<u64>) -> Result<RpcState, ChainError> {
        let h = source.header(block).await?;
        Ok(RpcState {
            block: BlockInfo {
                chain_id: source.chain_id(),
                number: h.number,
                hash: h.hash,
                timestamp: h.timestamp,
                gas_limit: h.gas_limit,
                base_fee: h.base_fee,
                coinbase: h.coinbase,
                prevrandao: h.mix_hash,
            },
            source,
            handle: Handle::current(),
        })
    }
}

impl StateSource for RpcState {
    fn block(&self) -> Result<BlockInfo, StateError> {
        Ok(self.block)
    }

    fn account(&self, address: Address) -> Result<AccountState, StateError> {
        let a = self
            .handle
            .block_on(self.source.account(address, self.block.number))
            .map_err(|e| source_error(format!("account {address}"), &e))?;
        Ok(AccountState {
            balance: a.balance,
            nonce: a.nonce,
            code: a.code,
        })
    }

    fn storage(&self, address: Address, slot: U256) -> Result<U256, StateError> {
        self.handle
            .block_on(self.source.storage(address, slot, self.block.number))
            .map_err(|e| source_error(format!("storage slot {slot:#x} of {address}"), &e))
    }

    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        self.handle
            .block_on(self.source.header(Some(number)))
            .map(|h| h.hash)
            .map_err(|e| source_error(format!("block {number}"), &e))
    }
}
