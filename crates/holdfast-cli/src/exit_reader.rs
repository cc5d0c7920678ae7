//! What a trace across bridges reads from the EVM node (the transfer store keeps no logs): the
//! receipts of the transactions that moved taint into a bridge, and the bridges' refunds
//! (THORChain's router `TransferOut` with `REFUND:<tx>`). One [`ExitReader`] serves every
//! round of `trace --rpc --follow`: a receipt is read once, and a bridge's block range is
//! searched for refunds once (each round searches only what the last did not).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, B256};
use anyhow::Context;
use holdfast_chain::{ChainSource, ReceiptLogs, SourceConfig};
use holdfast_store::Store;
use holdfast_trace::Trace;
use holdfast_trace::crosschain::{ExitReceipt, RefundEvent, TRANSFER_OUT_TOPIC, refund_of};
use indicatif::{ProgressBar, ProgressStyle};

/// Node calls in flight at once.
const IN_FLIGHT: usize = 8;
/// Most exit transactions whose receipts one trace reads.
const MAX_EXIT_TXS: usize = 10_000;
/// Blocks after an exit searched for its refund (THORChain refunds within minutes; a week of
/// Ethereum blocks).
const REFUND_WINDOW: u64 = 50_000;
/// Blocks per `eth_getLogs` (public nodes refuse long ranges).
const LOG_CHUNK: u64 = 2_000;
/// Most `eth_getLogs` calls one round makes for refunds.
const MAX_LOG_CALLS: usize = 5_000;
/// Most refunds kept per inbound (anyone can emit more through the router's `transferOut`:
/// the first in chain order are kept).
const MAX_REFUNDS_PER_INBOUND: usize = 1_000;

/// Reads exits' receipts and refunds from one node, remembering what it read.
pub struct ExitReader {
    rt: tokio::runtime::Runtime,
    source: Arc<ChainSource>,
    quiet: bool,
    /// Receipts read (a transaction the node did not know yet is asked again next round).
    receipts: BTreeMap<B256, ReceiptLogs>,
    /// Refunds found, by the inbound transaction they name.
    refunds: BTreeMap<B256, Vec<RefundEvent>>,
    /// Per bridge, the block ranges already searched for refunds (merged, ascending).
    searched: BTreeMap<Address, Vec<(u64, u64)>>,
}

impl std::fmt::Debug for ExitReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExitReader")
            .field("node", &self.source.endpoint())
            .finish_non_exhaustive()
    }
}

impl ExitReader {
    /// Connects to the node at `rpc`, which must serve `chain_id`.
    pub fn connect(rpc: &str, chain_id: u64, quiet: bool) -> anyhow::Result<ExitReader> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let source = rt.block_on(async {
            let mut config = SourceConfig::new(rpc.to_owned());
            config.timeout = Duration::from_secs(30);
            ChainSource::connect(config).await
        })?;
        if source.chain_id() != chain_id {
            anyhow::bail!(
                "--rpc {}: the node serves chain {}, the trace is of chain {chain_id}",
                source.endpoint(),
                source.chain_id(),
            );
        }
        Ok(ExitReader {
            rt,
            source: Arc::new(source),
            quiet,
            receipts: BTreeMap::new(),
            refunds: BTreeMap::new(),
            searched: BTreeMap::new(),
        })
    }

    /// The receipts of every transaction of `t` that moved taint into a bridge, each with the
    /// hash `store` holds for its block (a node on another fork is then told apart) and the
    /// refunds naming it.
    pub fn read(
        &mut self,
        store: &dyn Store,
        t: &Trace,
    ) -> anyhow::Result<BTreeMap<B256, ExitReceipt>> {
        let txs: BTreeSet<B256> = t
            .exits
            .iter()
            .flat_map(|e| {
                e.arrivals
                    .iter()
                    .filter_map(|p| p.last().map(|h| h.tx_hash))
            })
            .collect();
        if txs.len() > MAX_EXIT_TXS {
            anyhow::bail!(
                "--rpc: {} transactions into bridges, more than the {MAX_EXIT_TXS} one trace reads: narrow the trace (fewer hops, a later --from-block)",
                txs.len()
            );
        }
        let unread: Vec<B256> = txs
            .iter()
            .filter(|tx| !self.receipts.contains_key(*tx))
            .copied()
            .collect();
        self.read_receipts(unread)?;
        let mut out = BTreeMap::new();
        for tx in &txs {
            let Some(r) = self.receipts.get(tx) else {
                continue;
            };
            let stored = store
                .block(t.chain_id, r.block_number)
                .with_context(|| format!("reading block {} from the store", r.block_number))?;
            out.insert(
                *tx,
                ExitReceipt {
                    block_number: r.block_number,
                    block_hash: r.block_hash,
                    stored_block_hash: stored.map(|b| b.hash),
                    success: r.success,
                    logs: r.logs.clone(),
                    refunds: Vec::new(),
                },
            );
        }
        self.search_refunds(store, t, &out)?;
        for (tx, r) in &mut out {
            r.refunds = self.refunds.get(tx).cloned().unwrap_or_default();
        }
        Ok(out)
    }

    fn bar(&self, len: usize, what: &str) -> ProgressBar {
        let bar = if self.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(len as u64)
        };
        bar.set_style(
            ProgressStyle::with_template(&format!("{{spinner}} {what} {{pos}}/{{len}}"))
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar
    }

    /// Reads `txs`' receipts, `IN_FLIGHT` at a time (the source's rate limit applies).
    fn read_receipts(&mut self, txs: Vec<B256>) -> anyhow::Result<()> {
        if txs.is_empty() {
            return Ok(());
        }
        let bar = self.bar(txs.len(), "receipts of exits into bridges");
        let source = Arc::clone(&self.source);
        let found = self.rt.block_on(async move {
            let permits = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
            let mut tasks = tokio::task::JoinSet::new();
            for tx in txs {
                let (source, permits) = (Arc::clone(&source), Arc::clone(&permits));
                tasks.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    (tx, source.receipt_logs(tx).await)
                });
            }
            let mut found = Vec::new();
            while let Some(joined) = tasks.join_next().await {
                let (tx, r) = joined.context("a receipt reader ended abnormally")?;
                let r = r.with_context(|| {
                    format!("reading the receipt of tx {tx} (an exit into a bridge)")
                })?;
                bar.inc(1);
                found.extend(r);
            }
            bar.finish_and_clear();
            anyhow::Ok(found)
        })?;
        for r in found {
            self.receipts.insert(r.tx, r);
        }
        Ok(())
    }

    /// Searches each bridge's `TransferOut` events from each exit's block to `REFUND_WINDOW`
    /// blocks after it, in chunks of `LOG_CHUNK` blocks, skipping what was searched before,
    /// and keeps the refunds naming an exit of `t`.
    ///
    /// The search stops at the store's head (and the node's): an exit a later round finds is
    /// in a block the store did not hold yet, so past every block searched before — no
    /// refund of it can have been passed over as naming no exit. (A reorg that brings a new
    /// exit below the blocks searched is the exception: a trace without `--follow` finds its
    /// refund.)
    fn search_refunds(
        &mut self,
        store: &dyn Store,
        t: &Trace,
        receipts: &BTreeMap<B256, ExitReceipt>,
    ) -> anyhow::Result<()> {
        let node_head = self.rt.block_on(self.source.head_number())?;
        let stored = store
            .head(t.chain_id)
            .context("reading the store's head")?
            .map_or(0, |b| b.number);
        let head = node_head.min(stored);
        let mut chunks: Vec<(Address, u64, u64)> = Vec::new();
        let mut wanted: BTreeMap<Address, Vec<(u64, u64)>> = BTreeMap::new();
        for exit in &t.exits {
            let ranges = wanted.entry(exit.deposit).or_default();
            for r in exit
                .arrivals
                .iter()
                .filter_map(|p| p.last())
                .filter_map(|h| receipts.get(&h.tx_hash).filter(|r| r.success))
            {
                let end = r.block_number.saturating_add(REFUND_WINDOW).min(head);
                if r.block_number <= end {
                    ranges.push((r.block_number, end));
                }
            }
        }
        // The ranges searched this round: marked searched once every chunk answered.
        let mut todo: Vec<(Address, u64, u64)> = Vec::new();
        for (router, ranges) in wanted {
            let done = self.searched.get(&router).map_or(&[][..], Vec::as_slice);
            for (from, to) in uncovered(&merge(ranges), done) {
                chunks.extend(
                    (from..=to)
                        .step_by(LOG_CHUNK as usize)
                        .map(|s| (router, s, s.saturating_add(LOG_CHUNK - 1).min(to))),
                );
                todo.push((router, from, to));
            }
        }
        if chunks.len() > MAX_LOG_CALLS {
            anyhow::bail!(
                "--rpc: searching for refunds would take {} eth_getLogs calls of {LOG_CHUNK} blocks, more than {MAX_LOG_CALLS}: narrow the trace (fewer hops, a later --from-block)",
                chunks.len()
            );
        }
        if chunks.is_empty() {
            return Ok(());
        }
        let bar = self.bar(chunks.len(), "bridges' refunds, block ranges");
        let source = Arc::clone(&self.source);
        let events = self.rt.block_on(async move {
            let permits = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
            let mut tasks = tokio::task::JoinSet::new();
            for (router, from, to) in chunks {
                let (source, permits) = (Arc::clone(&source), Arc::clone(&permits));
                tasks.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    let logs = source
                        .logs_split(&[router], from, to, &[TRANSFER_OUT_TOPIC])
                        .await;
                    (router, from, to, logs)
                });
            }
            let mut events = Vec::new();
            while let Some(joined) = tasks.join_next().await {
                let (router, from, to, logs) =
                    joined.context("a refund reader ended abnormally")?;
                let logs = logs.with_context(|| {
                    format!(
                        "reading the events of bridge {router} in blocks {from}..={to} (refunds)"
                    )
                })?;
                bar.inc(1);
                events.extend(logs);
            }
            bar.finish_and_clear();
            anyhow::Ok(events)
        });
        // (A failed search is not marked searched: it is searched again next round.)
        let events = events?;
        for (router, from, to) in todo {
            let done = self.searched.entry(router).or_default();
            done.push((from, to));
            *done = merge(std::mem::take(done));
        }
        for l in events {
            let Some(log) = alloy_primitives::Log::new(l.address, l.topics, l.data) else {
                continue;
            };
            // The router pays out many other swaps: only refunds of this trace's exits.
            let Some((inbound, event)) = refund_of(&log) else {
                continue;
            };
            if !receipts.contains_key(&inbound) {
                continue;
            }
            self.refunds.entry(inbound).or_default().push(RefundEvent {
                tx_hash: l.tx_hash,
                block: l.block_number,
                event,
            });
        }
        for list in self.refunds.values_mut() {
            list.sort_by_key(|e| (e.block, e.tx_hash));
            list.truncate(MAX_REFUNDS_PER_INBOUND);
        }
        Ok(())
    }
}

/// `ranges` sorted and merged where they overlap or touch.
fn merge(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (from, to) in ranges {
        match out.last_mut() {
            Some(last) if from <= last.1.saturating_add(1) => last.1 = last.1.max(to),
            _ => out.push((from, to)),
        }
    }
    out
}

/// The parts of `wanted` that no range of `done` (merged, ascending) covers.
fn uncovered(wanted: &[(u64, u64)], done: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(from, to) in wanted {
        // The first block of `from..=to` not known covered (`None`: all of it is).
        let mut at = Some(from);
        for &(d_from, d_to) in done {
            let Some(a) = at else { break };
            if d_to < a || d_from > to {
                continue;
            }
            if d_from > a {
                out.push((a, d_from - 1));
            }
            at = d_to.checked_add(1).filter(|n| *n <= to);
        }
        if let Some(a) = at {
            out.push((a, to));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_merged_and_only_what_was_not_searched_is_searched() {
        assert_eq!(
            merge(vec![(5, 9), (1, 3), (4, 4), (20, 30)]),
            [(1, 9), (20, 30)]
        );
        let done = [(10, 19), (30, 39)];
        assert_eq!(uncovered(&[(0, 50)], &done), [(0, 9), (20, 29), (40, 50)]);
        assert_eq!(uncovered(&[(12, 15)], &done), []);
        assert_eq!(uncovered(&[(15, 25)], &done), [(20, 25)]);
        assert_eq!(uncovered(&[(0, 5)], &[]), [(0, 5)]);
        assert_eq!(uncovered(&[(35, 45)], &done), [(40, 45)]);
        assert_eq!(uncovered(&[(0, u64::MAX)], &[(0, u64::MAX)]), []);
    }
}
