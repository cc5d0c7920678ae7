//! [`StoreHistory`]: the [`History`] seam over the transfer store (what ingestion wrote
//! before the block). Token balances are not in the store: it answers `None` for them (the
//! token drain and whole-balance checks then need an engine-side implementation that asks
//! the node).

use std::sync::Arc;

use alloy_primitives::{Address, U256};
use holdfast_store::{Store, TransferQuery};

use super::context::{History, HistoryError};

/// Transfers read per store query.
const PAGE: usize = 10_000;
/// Most transfers of one wallet read for one answer: a wallet with a longer history is
/// answered from its first ones (documented limit; the state remembers what the watch saw).
pub const MAX_SCAN: usize = 1_000_000;

#[derive(Clone)]
pub struct StoreHistory {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for StoreHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHistory").finish_non_exhaustive()
    }
}

impl StoreHistory {
    pub fn new(store: Arc<dyn Store>) -> Self {
        StoreHistory { store }
    }

    /// Calls `f` with every transfer `from` sent before `before_block`, in block order;
    /// stops when `f` returns true.
    fn scan(
        &self,
        chain_id: u64,
        from: Address,
        before_block: u64,
        f: &mut dyn FnMut(&holdfast_primitives::Transfer) -> bool,
    ) -> Result<(), HistoryError> {
        let mut next = 0u64;
        let mut read = 0usize;
        loop {
            let page = self
                .store
                .transfers(
                    chain_id,
                    TransferQuery::From {
                        address: from,
                        from_block: next,
                    },
                    PAGE,
                )
                .map_err(|e| HistoryError {
                    message: format!("transfers of {from}: {e}"),
                    transient: true,
                })?;
            let full = page.len() == PAGE;
            let last = page.last().map(|t| t.block_number);
            for t in &page {
                if t.block_number >= before_block {
                    return Ok(());
                }
                if f(t) {
                    return Ok(());
                }
            }
            read += page.len();
            match last {
                // A page ends inside a block: the next query starts at that block again and
                // skips what was seen (a block larger than a page is read once, capped).
                Some(b) if full && read < MAX_SCAN => {
                    next = if b > next { b } else { b + 1 };
                }
                _ => return Ok(()),
            }
        }
    }
}

impl History for StoreHistory {
    fn has_paid(
        &self,
        chain_id: u64,
        from: Address,
        to: Address,
        before_block: u64,
    ) -> Result<bool, HistoryError> {
        let mut found = false;
        self.scan(chain_id, from, before_block, &mut |t| {
            found = t.to == to && !t.amount.is_zero();
            found
        })?;
        Ok(found)
    }

    fn counterparties(
        &self,
        chain_id: u64,
        wallet: Address,
        before_block: u64,
        limit: usize,
    ) -> Result<Vec<Address>, HistoryError> {
        // Newest first: keep the last `limit` distinct recipients.
        let mut order: Vec<Address> = Vec::new();
        self.scan(chain_id, wallet, before_block, &mut |t| {
            if t.to != wallet && !t.amount.is_zero() {
                order.retain(|a| *a != t.to);
                order.push(t.to);
                if order.len() > limit {
                    order.remove(0);
                }
            }
            false
        })?;
        order.reverse();
        Ok(order)
    }

    fn token_balance(
        &self,
        _chain_id: u64,
        _holder: Address,
        _token: Address,
        _block: u64,
    ) -> Result<Option<U256>, HistoryError> {
        Ok(None)
    }
}
