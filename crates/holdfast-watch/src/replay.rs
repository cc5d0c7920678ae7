//! `holdfast watch replay`: the rules over stored history (backtesting a new rule on last
//! month before turning it on). The store keeps transfers, not traces, logs or state, so a
//! replayed block is its transfers only ([`BlockDetail::calls_complete`] false, no state):
//! detectors that read transfers (outflows, counterparties, poisoning by transfers, tainted
//! deposits) give the alerts they gave live, with the same ids; those that need call frames,
//! logs or state diffs (critical storage, grants) see nothing in replay and say so.

use holdfast_chain::{BlockDetail, BlockTransfers};
use holdfast_primitives::{BlockRef, Transfer};
use holdfast_store::{MAX_LIMIT, Place, Store, StoreError, TransferQuery};

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
        "block {block} holds more than {max} transfers: replay runs a block whole, in memory, and refuses one this large"
    )]
    BlockTooLarge { block: u64, max: usize },
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

/// The most transfers one replayed block may hold (a block is run whole, so held whole in
/// memory: about 200 MB at this count). A real block is far below: at 375 gas a log at the
/// least, a 36 M gas Ethereum block holds under 100,000 token events.
pub const MAX_BLOCK_TRANSFERS: usize = 1_000_000;

/// Calls `on_block` with the stored transfers of each block of `from..=to` that has any, in
/// block order, each block whole (what `replay` runs the rules over), and `progress` with
/// the blocks done so far. Reads pages of up to `MAX_LIMIT` transfers, each from the place
/// the last one ended at (inside a block or not).
pub fn scan_blocks(
    store: &dyn Store,
    chain_id: u64,
    from: u64,
    to: u64,
    progress: &mut dyn FnMut(u64),
    on_block: &mut dyn FnMut(Vec<Transfer>) -> Result<(), ReplayError>,
) -> Result<(), ReplayError> {
    scan_blocks_up_to(
        store,
        chain_id,
        (from, to),
        MAX_BLOCK_TRANSFERS,
        progress,
        on_block,
    )
}

/// [`scan_blocks`] refusing a block of more than `max_block` transfers
/// ([`ReplayError::BlockTooLarge`]).
pub fn scan_blocks_up_to(
    store: &dyn Store,
    chain_id: u64,
    (from, to): (u64, u64),
    max_block: usize,
    progress: &mut dyn FnMut(u64),
    on_block: &mut dyn FnMut(Vec<Transfer>) -> Result<(), ReplayError>,
) -> Result<(), ReplayError> {
    if from > to {
        return Ok(());
    }
    let query = TransferQuery::Blocks {
        from_block: from,
        to_block: to,
    };
    // The last block read: given to `on_block` once the next block begins (or the range
    // ends), since a page may end inside it.
    let mut open: Vec<Transfer> = Vec::new();
    let mut after: Option<Place> = None;
    loop {
        let batch = store.transfers_page(chain_id, query, after.as_ref(), MAX_LIMIT)?;
        let Some(last) = batch.last() else {
            break;
        };
        let full = batch.len() == MAX_LIMIT;
        after = Some(Place::of(last));
        // Each block's transfers moved into a vector of its own (one allocation per block).
        let mut sizes = Vec::new();
        let mut rest = &batch[..];
        while let Some(first) = rest.first() {
            let n = rest
                .iter()
                .take_while(|t| t.block_number == first.block_number)
                .count();
            sizes.push(n);
            rest = &rest[n..];
        }
        let mut moved = batch.into_iter();
        let mut done = None;
        for n in sizes {
            let run: Vec<Transfer> = moved.by_ref().take(n).collect();
            match open.first() {
                Some(o) if o.block_number == run[0].block_number => {
                    if open.len() + run.len() > max_block {
                        return Err(ReplayError::BlockTooLarge {
                            block: o.block_number,
                            max: max_block,
                        });
                    }
                    open.extend(run);
                }
                Some(o) => {
                    done = Some(o.block_number);
                    on_block(std::mem::replace(&mut open, run))?;
                }
                None => open = run,
            }
        }
        if let Some(b) = done {
            progress(b + 1 - from);
        }
        if !full {
            break;
        }
    }
    if !open.is_empty() {
        on_block(open)?;
    }
    progress(to - from + 1);
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
