//! ERC-20 balances from the node, for the token drain and whole-balance checks: the
//! history seam's `token_balance`, answered with `balanceOf(holder)` by `eth_call` at the
//! block. Asked only when a watched wallet sends a known token under a rule that needs it
//! (three calls then; not remembered: a balance by block number would be wrong after a
//! reorg). A transient node error is a transient history error (the block is retried, no
//! alert lost). A token that reverts or answers no word has no balance, and neither has a
//! block whose state the node no longer keeps (a pruned, non-archive node: a drain window
//! reaching further back); both are logged and the checks skip them (`None`).

use std::collections::HashMap;
use std::sync::Arc;

use alloy_primitives::{Address, Bytes, U256, keccak256};
use holdfast_chain::ChainSource;

use super::HistoryError;

/// The nodes of the chains the watch follows, by chain id.
pub struct NodeBalances {
    sources: HashMap<u64, Arc<ChainSource>>,
    runtime: tokio::runtime::Handle,
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
        NodeBalances { sources, runtime }
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
        let mut data = keccak256("balanceOf(address)")[..4].to_vec();
        data.extend_from_slice(holder.into_word().as_slice());
        let call = [(token, Bytes::from(data))];
        // Asked from the detectors' blocking thread, never from the runtime's own.
        let answer = match self.runtime.block_on(source.calls_at(&call, block)) {
            Ok(a) => a,
            Err(e) if e.is_transient() => {
                return Err(HistoryError {
                    message: format!("balance of {holder} in token {token} at block {block}: {e}"),
                    outage: Some(super::Outage::Node),
                });
            }
            Err(e) => {
                tracing::warn!(target: "watch::detect", %holder, %token, block, error = %e, "no token balance: the drain and whole-balance checks skip it");
                return Ok(None);
            }
        };
        match answer.into_iter().next() {
            Some(Ok(out)) if out.len() == 32 => Ok(Some(U256::from_be_slice(&out))),
            other => {
                tracing::warn!(target: "watch::detect", %holder, %token, block, answer = ?other, "token gave no balance: the drain and whole-balance checks skip it");
                Ok(None)
            }
        }
    }
}
