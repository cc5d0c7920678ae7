//! ERC-20 balances from the node, for the token drain and whole-balance checks: the
//! history seam's `token_balance`, answered with `balanceOf(holder)` by `eth_call` at the
//! block. Asked only when a watched wallet sends a known token under a rule that needs it,
//! and remembered (a bounded map) so a drain window asks each (holder, token, block) once.
//! A node error is a transient history error (the block is retried, no alert lost); a token
//! that reverts or answers no word has no balance (`None`: the checks skip it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use alloy_primitives::{Address, Bytes, U256, keccak256};
use holdfast_chain::ChainSource;

use super::HistoryError;

/// The most balances remembered (cleared when full).
pub const MAX_CACHED_BALANCES: usize = 100_000;

type Key = (u64, Address, Address, u64);

/// The nodes of the chains the watch follows, by chain id.
pub struct NodeBalances {
    sources: HashMap<u64, Arc<ChainSource>>,
    runtime: tokio::runtime::Handle,
    cache: Mutex<HashMap<Key, Option<U256>>>,
}

impl std::fmt::Debug for NodeBalances {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeBalances")
            .field("chains", &self.sources.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl NodeBalances {
    /// Over `sources`; its calls run on `runtime` (the history is asked from blocking
    /// threads).
    pub fn new(sources: HashMap<u64, Arc<ChainSource>>, runtime: tokio::runtime::Handle) -> Self {
        NodeBalances {
            sources,
            runtime,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// `holder`'s balance of `token` at the end of `block` (`None`: no node for the chain,
    /// or the token gives no balance).
    pub fn balance(
        &self,
        chain_id: u64,
        holder: Address,
        token: Address,
        block: u64,
    ) -> Result<Option<U256>, HistoryError> {
        let Some(source) = self.sources.get(&chain_id) else {
            return Ok(None);
        };
        let key = (chain_id, holder, token, block);
        if let Some(b) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(*b);
        }
        let mut data = keccak256("balanceOf(address)")[..4].to_vec();
        data.extend_from_slice(holder.into_word().as_slice());
        let call = [(token, Bytes::from(data))];
        // Asked from the detectors' blocking thread, never from the runtime's own.
        let answer = self
            .runtime
            .block_on(source.calls_at(&call, block))
            .map_err(|e| HistoryError {
                message: format!("balance of {holder} in token {token} at block {block}: {e}"),
                transient: e.is_transient(),
            })?;
        let balance = match answer.into_iter().next() {
            Some(Ok(out)) if out.len() == 32 => Some(U256::from_be_slice(&out)),
            _ => None,
        };
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED_BALANCES {
            cache.clear();
        }
        cache.insert(key, balance);
        Ok(balance)
    }
}
