//! `holdfast watch replay`: the rules over stored history (backtesting a new rule on last
//! month before turning it on). The store keeps transfers, not traces, logs or state, so a
//! replayed block is its transfers only ([`BlockDetail::calls_complete`] false, no state):
//! detectors that read transfers (outflows, counterparties, poisoning by transfers, tainted
//! deposits) give the alerts they gave live, with the same ids; those that need call frames,
//! logs or state diffs (critical storage, grants) see nothing in replay and say so.

use holdfast_chain::{BlockDetail, BlockTransfers};
use holdfast_primitives::{BlockRef, Transfer};
use holdfast_store::{MAX_LIMIT, Store, StoreError, TransferQuery};

use crate::alert::Alert;
use holdfast_trace::Classifier;

use crate::engine::{Rules, WatchError, WatchState, detect_block};
use crate::follow::ChainInfo;
use crate::units::Units;

/// What a replay read and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    pub blocks: u64,
    pub transfers: u64,
    pub alerts: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Watch(#[from] Box<WatchError>),
    #[error(
        "block {0} holds {MAX_LIMIT} transfers or more: replay reads a block whole, in one page of at most {MAX_LIMIT}, and cannot page inside one"
    )]
    BlockTooLarge(u64),
}

/// Runs `rules` over the stored transfers of blocks `from..=to`, in block order, calling
/// `on_alert` for each alert. `state` carries the detectors' state (start from
/// `WatchState::default()`).
#[allow(clippy::too_many_arguments)]
pub fn replay<C: Classifier + ?Sized>(
    store: &dyn Store,
    rules: &dyn Rules,
    classifier: &C,
    units: &Units,
    chain: &ChainInfo,
    from: u64,
    to: u64,
    state: &mut WatchState,
    on_alert: &mut dyn FnMut(Alert),
    progress: &mut dyn FnMut(u64),
) -> Result<ReplaySummary, ReplayError> {
    let mut summary = ReplaySummary::default();
    scan_blocks(store, chain.chain_id, from, to, progress, &mut |block| {
        let Some(first) = block.first() else {
            return Ok(());
        };
        let at = BlockRef {
            number: first.block_number,
            hash: first.block_hash,
            parent_hash: Default::default(),
            timestamp: first.timestamp,
        };
        let n = block.len();
        let detail = detail_of(chain.chain_id, at, block);
        for a in detect_block(rules, store, classifier, units, chain, &detail, state)
            .map_err(Box::new)?
        {
            summary.alerts += 1;
            on_alert(a);
        }
        summary.blocks += 1;
        summary.transfers += n as u64;
        Ok(())
    })?;
    Ok(summary)
}

/// Calls `on_block` with the stored transfers of each block of `from..=to` that has any, in
/// block order, each block whole (what `replay` runs the rules over), and `progress` with
/// the blocks done so far. Reads pages of up to `MAX_LIMIT` transfers.
pub fn scan_blocks(
    store: &dyn Store,
    chain_id: u64,
    from: u64,
    to: u64,
    progress: &mut dyn FnMut(u64),
    on_block: &mut dyn FnMut(Vec<Transfer>) -> Result<(), ReplayError>,
) -> Result<(), ReplayError> {
    let mut next = from;
    while next <= to {
        let batch = store.transfers(
            chain_id,
            TransferQuery::Blocks {
                from_block: next,
                to_block: to,
            },
            MAX_LIMIT,
        )?;
        let Some(last) = batch.last() else {
            break;
        };
        // A full page may end inside a block: keep only whole blocks (the rest comes again).
        let complete = if batch.len() == MAX_LIMIT {
            let last_block = last.block_number;
            let whole = batch
                .iter()
                .take_while(|t| t.block_number < last_block)
                .count();
            if whole == 0 {
                return Err(ReplayError::BlockTooLarge(last_block));
            }
            whole
        } else {
            batch.len()
        };
        let next_block = batch[complete - 1].block_number + 1;
        // Each block's transfers moved into a vector of its own (one allocation per block).
        let mut sizes = Vec::new();
        let mut rest = &batch[..complete];
        while let Some(first) = rest.first() {
            let n = rest
                .iter()
                .take_while(|t| t.block_number == first.block_number)
                .count();
            sizes.push(n);
            rest = &rest[n..];
        }
        let mut moved = batch.into_iter();
        for n in sizes {
            on_block(moved.by_ref().take(n).collect())?;
        }
        next = next_block;
        progress(next.saturating_sub(from));
    }
    Ok(())
}

/// A stored block as the detectors see it in replay: its transfers only.
fn detail_of(chain_id: u64, block: BlockRef, transfers: Vec<Transfer>) -> BlockDetail {
    BlockDetail {
        transfers: BlockTransfers {
            chain_id,
            block,
            transfers,
            conversions: Vec::new(),
            incomplete: 0,
            undecodable: 0,
        },
        txs: Vec::new(),
        logs: Vec::new(),
        calls: Vec::new(),
        calls_complete: false,
        state: None,
    }
}
