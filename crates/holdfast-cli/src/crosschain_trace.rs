//! `holdfast trace --rpc URL`: an EVM trace whose exits into THORChain's router are followed
//! onto the UTXO chains the index in the same store holds (`holdfast ingest --chain
//! bitcoin`), through `holdfast_trace::crosschain`. The receipts of the transactions into
//! bridges come from the node (the transfer store keeps no logs); everything else from the
//! stores.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, B256};
use anyhow::Context;
use holdfast_bitcoin::{Network, address};
use holdfast_chain::{ChainSource, SourceConfig};
use holdfast_intel::{IntelIndex, ScreenOptions};
use holdfast_store::Store;
use holdfast_store::utxo::UtxoStore;
use holdfast_trace::crosschain::{
    CrossChainTrace, CrossingOutcome, ExitReceipt, RefundEvent, TRANSFER_OUT_TOPIC, UtxoChain,
    follow_exits, refund_of,
};
use holdfast_trace::utxo::ClusteredIntel;
use holdfast_trace::{Trace, TraceOptions};
use indicatif::{ProgressBar, ProgressStyle};

use crate::chain_cmd::StoreArgs;

/// Whether an address is of one network.
type AddressOk = Box<dyn Fn(&str) -> bool>;

/// Receipts read at once.
const RECEIPTS_IN_FLIGHT: usize = 8;

/// Most exit transactions whose receipts one trace reads.
const MAX_EXIT_TXS: usize = 10_000;

/// The receipts of every transaction that moved taint into a bridge, each with the hash the
/// store holds for its block (a node on another fork of the chain is then told apart).
fn receipts(
    rpc: &str,
    store: &dyn Store,
    t: &Trace,
    quiet: bool,
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let mut config = SourceConfig::new(rpc.to_owned());
        config.timeout = Duration::from_secs(30);
        let source = ChainSource::connect(config).await?;
        if source.chain_id() != t.chain_id {
            anyhow::bail!(
                "--rpc {}: the node serves chain {}, the trace is of chain {}",
                source.endpoint(),
                source.chain_id(),
                t.chain_id
            );
        }
        // RECEIPTS_IN_FLIGHT at a time (the source's rate limit applies), with progress.
        let source = Arc::new(source);
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(txs.len() as u64)
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} receipts of exits into bridges {pos}/{len}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let permits = Arc::new(tokio::sync::Semaphore::new(RECEIPTS_IN_FLIGHT));
        let mut tasks = tokio::task::JoinSet::new();
        for tx in txs {
            let (source, permits) = (Arc::clone(&source), Arc::clone(&permits));
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                (tx, source.receipt_logs(tx).await)
            });
        }
        let mut out = BTreeMap::new();
        while let Some(joined) = tasks.join_next().await {
            let (tx, r) = joined.context("a receipt reader ended abnormally")?;
            let r = r.with_context(|| {
                format!("reading the receipt of tx {tx} (an exit into a bridge)")
            })?;
            bar.inc(1);
            if let Some(r) = r {
                let stored = store
                    .block(t.chain_id, r.block_number)
                    .with_context(|| format!("reading block {} from the store", r.block_number))?;
                out.insert(
                    tx,
                    ExitReceipt {
                        block_number: r.block_number,
                        block_hash: r.block_hash,
                        stored_block_hash: stored.map(|b| b.hash),
                        success: r.success,
                        logs: r.logs,
                        refunds: Vec::new(),
                    },
                );
            }
        }
        bar.finish_and_clear();
        refunds(&source, t, &mut out, quiet).await?;
        Ok(out)
    })
}

/// Blocks after an exit searched for its refund (THORChain refunds within minutes; a week of
/// Ethereum blocks).
const REFUND_WINDOW: u64 = 50_000;
/// Blocks per `eth_getLogs` (public nodes refuse long ranges).
const LOG_CHUNK: u64 = 2_000;
/// Most `eth_getLogs` calls one trace makes for refunds.
const MAX_LOG_CALLS: usize = 5_000;

/// Adds to `receipts` the refunds of their transactions: the router events (`TransferOut`
/// with `REFUND:<tx>`) each bridge emitted from the exit's block to `REFUND_WINDOW` blocks
/// after it (or the node's head), read in chunks of `LOG_CHUNK` blocks.
async fn refunds(
    source: &Arc<ChainSource>,
    t: &Trace,
    receipts: &mut BTreeMap<B256, ExitReceipt>,
    quiet: bool,
) -> anyhow::Result<()> {
    let head = source.head_number().await?;
    // Per bridge, the merged block ranges to search.
    let mut ranges: Vec<(Address, u64, u64)> = Vec::new();
    for exit in &t.exits {
        let mut blocks: Vec<u64> = exit
            .arrivals
            .iter()
            .filter_map(|p| p.last())
            .filter_map(|h| receipts.get(&h.tx_hash).filter(|r| r.success))
            .map(|r| r.block_number)
            .collect();
        blocks.sort_unstable();
        for b in blocks {
            let end = b.saturating_add(REFUND_WINDOW).min(head);
            match ranges.last_mut() {
                Some((router, _, to)) if *router == exit.deposit && b <= to.saturating_add(1) => {
                    *to = (*to).max(end);
                }
                _ => ranges.push((exit.deposit, b, end)),
            }
        }
    }
    let chunks: Vec<(Address, u64, u64)> = ranges
        .iter()
        .flat_map(|&(router, from, to)| {
            (from..=to)
                .step_by(LOG_CHUNK as usize)
                .map(move |s| (router, s, s.saturating_add(LOG_CHUNK - 1).min(to)))
        })
        .collect();
    if chunks.len() > MAX_LOG_CALLS {
        anyhow::bail!(
            "--rpc: searching for refunds would take {} eth_getLogs calls of {LOG_CHUNK} blocks, more than {MAX_LOG_CALLS}: narrow the trace (fewer hops, a later --from-block)",
            chunks.len()
        );
    }
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(chunks.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} bridges' refunds, block ranges {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let permits = Arc::new(tokio::sync::Semaphore::new(RECEIPTS_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    for (router, from, to) in chunks {
        let (source, permits) = (Arc::clone(source), Arc::clone(&permits));
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let logs = source
                .logs_of(&[router], from, to, &[TRANSFER_OUT_TOPIC])
                .await;
            (router, from, to, logs)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (router, from, to, logs) = joined.context("a refund reader ended abnormally")?;
        let logs = logs.with_context(|| {
            format!("reading the events of bridge {router} in blocks {from}..={to} (refunds)")
        })?;
        bar.inc(1);
        for l in logs {
            let Some(log) = alloy_primitives::Log::new(l.address, l.topics, l.data) else {
                continue;
            };
            // The router pays out many other swaps: only refunds of this trace's inbounds.
            let Some((inbound, event)) = refund_of(&log) else {
                continue;
            };
            let Some(r) = receipts.get_mut(&inbound) else {
                continue;
            };
            r.refunds.push(RefundEvent {
                tx_hash: l.tx_hash,
                block: l.block_number,
                event,
            });
        }
    }
    bar.finish_and_clear();
    for r in receipts.values_mut() {
        r.refunds.sort_by_key(|e| (e.block, e.tx_hash));
    }
    Ok(())
}

/// Follows the exits of `t` across to the UTXO index's chains.
#[allow(clippy::too_many_arguments)]
pub fn follow(
    data_dir: &holdfast_intel::DataDir,
    evm_store: &dyn Store,
    store: &StoreArgs,
    rpc: &str,
    t: Trace,
    intel: &IntelIndex,
    utxo_options: &TraceOptions,
    quiet: bool,
) -> anyhow::Result<CrossChainTrace> {
    let receipts = receipts(rpc, evm_store, &t, quiet)?;
    // The UTXO index: only if there is one (an embedded index is not created here).
    let embedded = data_dir.root().join("store/utxo");
    let index: Option<Arc<dyn UtxoStore>> = match store.store.as_deref() {
        Some(_) => Some(crate::bitcoin_cmd::open_index(data_dir, store)?),
        None if embedded.exists() => Some(crate::bitcoin_cmd::open_index(data_dir, store)?),
        None => None,
    };
    // Each network's node-built history, else its imported one.
    let mut held: Vec<(Network, u64)> = Vec::new();
    if let Some(ix) = &index {
        for n in Network::ALL {
            if let Some(source) = crate::bitcoin_trace::source_of(&**ix, n)? {
                held.push((n, source.id(n)));
            }
        }
    }
    let clusters = index
        .as_ref()
        .map(|ix| crate::bitcoin_clusters::UtxoClusters { index: ix.clone() });
    let classifier = ClusteredIntel {
        intel,
        clusters: clusters
            .as_ref()
            .map(|c| c as &dyn holdfast_intel::cluster::ClusterSource),
        options: ScreenOptions::today(),
    };
    let accepts: Vec<AddressOk> = held
        .iter()
        .map(|&(n, _)| {
            Box::new(move |a: &str| address::networks(a).is_ok_and(|ns| ns.contains(&n)))
                as AddressOk
        })
        .collect();
    let chains: Vec<UtxoChain<'_, dyn UtxoStore>> = match &index {
        Some(ix) => held
            .iter()
            .zip(&accepts)
            .map(|((n, id), ok)| UtxoChain {
                thorchain_chain: n.unit(),
                chain_id: *id,
                network: n.name(),
                src: &**ix,
                classifier: &classifier,
                address_ok: &**ok,
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(follow_exits(t, &receipts, &chains, utxo_options)?)
}

/// The crossings and what the trace reached beyond them, in words (after the EVM trace's
/// own text).
pub fn text(x: &CrossChainTrace, out: &mut dyn Write) -> anyhow::Result<()> {
    if x.crossings.is_empty() {
        return Ok(());
    }
    writeln!(out, "across bridges:")?;
    if x.evm.stats.arrivals_not_listed > 0 {
        writeln!(
            out,
            "  {} more tainted transfers into bridges were not followed across (the first 10,000 per bridge are)",
            x.evm.stats.arrivals_not_listed
        )?;
    }
    for c in &x.crossings {
        let dest = c
            .destination
            .as_ref()
            .map(|d| format!(" to {} {}", d.asset, d.address))
            .unwrap_or_default();
        let memo = c
            .memo
            .as_deref()
            .map(|m| format!(" memo {m:?}"))
            .unwrap_or_default();
        let outcome = match &c.outcome {
            CrossingOutcome::Followed { payouts: 1 } => "payout found, followed".to_owned(),
            CrossingOutcome::Followed { payouts } => format!(
                "{payouts} payouts name this inbound (a decoy is among them): all followed"
            ),
            CrossingOutcome::PayoutNotFound => {
                "no payout naming this inbound in the UTXO index yet (ingest further and trace again)"
                    .to_owned()
            }
            CrossingOutcome::ChainNotIndexed { chain } => {
                format!("{chain} is not in the UTXO index: the destination address is the lead")
            }
            CrossingOutcome::NotAnExit { function } => {
                format!("the memo ({function}) does not take the funds out of THORChain")
            }
            CrossingOutcome::BadMemo { error } => format!("unreadable memo: {error}"),
            CrossingOutcome::NoDepositEvent => {
                "no deposit event from the bridge in the transaction: destination unknown".to_owned()
            }
            CrossingOutcome::Reverted => "the transaction reverted: nothing crossed".to_owned(),
            CrossingOutcome::DestinationTooBusy { limit } => format!(
                "the destination has more than {limit} receipts in the index: not searched for the payout (the address is the lead)"
            ),
            CrossingOutcome::NotOnTheNode { detail } => detail.clone(),
            CrossingOutcome::Refunded { refunds: 1 } => {
                "refunded on this chain (the recipient is the lead: trace --seed the refund's tx)"
                    .to_owned()
            }
            CrossingOutcome::Refunded { refunds } => format!(
                "{refunds} refunds name this inbound (a decoy is among them; see which came from the deposit's vault)"
            ),
        };
        writeln!(
            out,
            "  {} ({}) tx {} block {}: {} {} (tainted {}){memo}{dest}: {outcome}",
            c.bridge.name, c.router, c.tx_hash, c.block, c.amount, c.asset, c.tainted
        )?;
        for p in &c.payouts {
            writeln!(
                out,
                "    payout {}: {} arrived, {} of it tainted",
                p.txid, p.amount, p.tainted
            )?;
        }
        for r in &c.refunds {
            let token = r
                .token
                .map(|t| format!(" of token {t}"))
                .unwrap_or_default();
            let vault = if r.from_deposit_vault {
                "from the vault the deposit went to".to_owned()
            } else {
                format!(
                    "from {}, not the deposit's vault: anyone can call the router's transferOut, this one may be a decoy",
                    r.vault
                )
            };
            writeln!(
                out,
                "    refund tx {} block {}: {}{token} to {}, {vault}",
                r.tx_hash, r.block, r.amount, r.to
            )?;
        }
    }
    for t in &x.continued {
        let network: Network = t
            .network
            .parse()
            .map_err(|e| anyhow::anyhow!("network {}: {e}", t.network))?;
        writeln!(out, "continued on {}:", t.network)?;
        crate::bitcoin_trace::text(t, network, out)?;
    }
    for t in &x.targets {
        let service = t
            .service
            .as_ref()
            .map(|s| format!("{} ({})", s.name, s.category))
            .unwrap_or_default();
        let network: Network = t
            .network
            .parse()
            .map_err(|e| anyhow::anyhow!("network {}: {e}", t.network))?;
        writeln!(
            out,
            "freeze target across chains: {service} {} {} on {}: {} tainted; evidence:",
            t.at,
            t.address.as_deref().unwrap_or(""),
            t.network,
            crate::bitcoin_trace::coins(t.tainted, network)
        )?;
        for h in &t.evm_path {
            writeln!(out, "{}", crate::trace_cmd::hop_line(h))?;
        }
        writeln!(
            out,
            "    THORChain: inbound {} paid out by {}{}",
            t.inbound,
            t.payout,
            if t.payouts_naming_inbound > 1 {
                format!(
                    " ({} payouts name this inbound: this one may be a decoy)",
                    t.payouts_naming_inbound
                )
            } else {
                String::new()
            }
        )?;
        for h in &t.utxo_path {
            writeln!(out, "{}", crate::bitcoin_trace::utxo_hop_line(h, network))?;
        }
    }
    Ok(())
}
