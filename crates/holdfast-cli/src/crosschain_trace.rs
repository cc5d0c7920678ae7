//! `holdfast trace --rpc URL`: an EVM trace whose exits into THORChain's router are followed
//! onto the UTXO chains the index in the same store holds (`holdfast ingest --chain
//! bitcoin`), through `holdfast_trace::crosschain`. The receipts of the transactions into
//! bridges come from the node (the transfer store keeps no logs); everything else from the
//! stores.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::B256;
use anyhow::Context;
use holdfast_bitcoin::{Network, address};
use holdfast_chain::{ChainSource, SourceConfig};
use holdfast_intel::{IntelIndex, ScreenOptions};
use holdfast_store::utxo::UtxoStore;
use holdfast_trace::crosschain::{
    CrossChainTrace, CrossingOutcome, ExitReceipt, UtxoChain, follow_exits,
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

/// The receipts of every transaction that moved taint into a bridge.
fn receipts(rpc: &str, t: &Trace, quiet: bool) -> anyhow::Result<BTreeMap<B256, ExitReceipt>> {
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
                out.insert(
                    tx,
                    ExitReceipt {
                        block_number: r.block_number,
                        success: r.success,
                        logs: r.logs,
                    },
                );
            }
        }
        bar.finish_and_clear();
        Ok(out)
    })
}

/// Follows the exits of `t` across to the UTXO index's chains.
pub fn follow(
    data_dir: &holdfast_intel::DataDir,
    store: &StoreArgs,
    rpc: &str,
    t: Trace,
    intel: &IntelIndex,
    utxo_options: &TraceOptions,
    quiet: bool,
) -> anyhow::Result<CrossChainTrace> {
    let receipts = receipts(rpc, &t, quiet)?;
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
