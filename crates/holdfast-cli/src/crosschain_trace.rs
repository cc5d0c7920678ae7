//! `holdfast trace --rpc URL`: an EVM trace whose exits into THORChain's router are followed
//! onto the UTXO chains the index in the same store holds (`holdfast ingest --chain
//! bitcoin`), through `holdfast_trace::crosschain`. The receipts of the transactions into
//! bridges come from the node (the transfer store keeps no logs); everything else from the
//! stores.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;

use holdfast_bitcoin::{Network, address};
use holdfast_intel::{IntelIndex, ScreenOptions};
use holdfast_store::Store;
use holdfast_store::utxo::UtxoStore;
use holdfast_trace::crosschain::{CrossChainTrace, CrossingOutcome, UtxoChain, follow_exits};
use holdfast_trace::utxo::ClusteredIntel;
use holdfast_trace::{Trace, TraceOptions};

use crate::chain_cmd::StoreArgs;
use crate::exit_reader::ExitReader;

/// Whether an address is of one network.
type AddressOk = Box<dyn Fn(&str) -> bool>;

/// Follows the exits of `t` across to the UTXO index's chains.
pub fn follow(
    (evm_store, index): (&dyn Store, Option<&Arc<dyn UtxoStore>>),
    reader: &mut ExitReader,
    t: Trace,
    intel: &IntelIndex,
    utxo_options: &TraceOptions,
) -> anyhow::Result<CrossChainTrace> {
    let receipts = reader.read(evm_store, &t)?;
    let index: Option<Arc<dyn UtxoStore>> = index.cloned();
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
    let mut x = follow_exits(t, &receipts, &chains, utxo_options)?;
    // Whether each refund's payer is labelled (THORChain's vaults, once imported).
    let today = ScreenOptions::today().as_of;
    for r in x.crossings.iter_mut().flat_map(|c| c.refunds.iter_mut()) {
        r.vault_labels = intel
            .evm_labels(&r.vault)
            .iter()
            .filter(|l| l.active_on(today))
            .map(|l| holdfast_trace::crosschain::PayerLabel {
                name: intel
                    .name(l)
                    .or_else(|| intel.actor(l))
                    .unwrap_or_else(|| intel.source(l))
                    .to_owned(),
                category: l.category,
            })
            .collect();
    }
    Ok(x)
}

/// The UTXO index the crossings continue on: only if there is one (an embedded index is not
/// created here). Opened once per `trace` (opening an embedded index takes seconds).
pub fn open_index(
    data_dir: &holdfast_intel::DataDir,
    store: &StoreArgs,
) -> anyhow::Result<Option<Arc<dyn UtxoStore>>> {
    let embedded = data_dir.root().join("store/utxo");
    Ok(match store.store.as_deref() {
        Some(_) => Some(crate::bitcoin_cmd::open_index(data_dir, store)?),
        None if embedded.exists() => Some(crate::bitcoin_cmd::open_index(data_dir, store)?),
        None => None,
    })
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
            CrossingOutcome::OtherBridge { bridge, amount } => format!(
                "{bridge} exit of {amount}: recorded, not followed (no index holds that chain: the recipient is the lead)"
            ),
            CrossingOutcome::BadExitEvent { error } => format!("unreadable exit event: {error}"),
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
            // Anyone can write OUT:<inbound> into a transaction of his own: who paid tells
            // THORChain's vault (once its vaults are imported as labels) from a decoy.
            let payer = match &p.payer_service {
                Some(s) => format!("labelled {} ({})", s.name, s.category.name()),
                None => "not labelled a bridge: import THORChain's vaults (its /inbound_addresses) as labels to tell its payouts from decoys".to_owned(),
            };
            writeln!(
                out,
                "    payout {}: {} arrived, {} of it tainted; paid by {} ({payer})",
                p.txid,
                p.amount,
                p.tainted,
                if p.paid_by.is_empty() {
                    "no address".to_owned()
                } else {
                    p.paid_by.join(", ")
                }
            )?;
        }
        for r in &c.refunds {
            let token = r
                .token
                .map(|t| format!(" of token {t}"))
                .unwrap_or_default();
            // The depositor names the vault: a thief can deposit to an address of his own and
            // "refund" from it. Only a label (THORChain's vault list, imported) vouches for it.
            let named = r
                .vault_labels
                .iter()
                .map(|l| format!("{} ({})", l.name, l.category.name()))
                .collect::<Vec<_>>()
                .join(", ");
            let labels = if r.vault_is_bridge() {
                format!("labelled {named}")
            } else {
                // Only a bridge label vouches (a `tainted` one from `--label` does not).
                format!(
                    "not labelled a bridge{}: import THORChain's vaults (its /inbound_addresses) as labels to check it is one",
                    if named.is_empty() {
                        String::new()
                    } else {
                        format!(" (its labels: {named})")
                    }
                )
            };
            let vault = if r.from_deposit_vault {
                format!(
                    "from {}, the vault the deposit went to ({labels}; the depositor names the vault)",
                    r.vault
                )
            } else {
                format!(
                    "from {}, not the deposit's vault ({labels}): anyone can call the router's transferOut, this one may be a decoy",
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

/// With `--follow`: a line for each thing across the bridges this round found that no
/// earlier round did (`seen` keeps them): a payout followed, a refund, a freeze target.
pub fn new_lines(x: &CrossChainTrace, seen: &mut BTreeSet<String>) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    for c in &x.crossings {
        let to = c
            .destination
            .as_ref()
            .map(|d| format!(" to {} {}", d.asset, d.address))
            .unwrap_or_default();
        for p in &c.payouts {
            if seen.insert(format!("payout {} {}", c.tx_hash, p.txid)) {
                lines.push(format!(
                    "holdfast: taint crossed {} in tx {}{to}: paid out by {} ({} arrived, {} of it tainted)",
                    c.bridge.name, c.tx_hash, p.txid, p.amount, p.tainted
                ));
            }
        }
        for r in &c.refunds {
            if seen.insert(format!("refund {} {}", c.tx_hash, r.tx_hash)) {
                lines.push(format!(
                    "holdfast: {} refunded tx {} on this chain: {} to {} in tx {}{}",
                    c.bridge.name,
                    c.tx_hash,
                    r.amount,
                    r.to,
                    r.tx_hash,
                    if r.from_deposit_vault {
                        ""
                    } else {
                        " (not from the deposit's vault: may be a decoy)"
                    }
                ));
            }
        }
    }
    for t in &x.targets {
        if !seen.insert(format!("target {} {}", t.network, t.at)) {
            continue;
        }
        let network: Network = t
            .network
            .parse()
            .map_err(|e| anyhow::anyhow!("network {}: {e}", t.network))?;
        let service = t
            .service
            .as_ref()
            .map(|s| format!("{} ({})", s.name, s.category))
            .unwrap_or_default();
        lines.push(format!(
            "holdfast: taint reached {service} deposit {} on {} at {}: {} tainted (across THORChain: inbound {}, payout {})",
            t.address.as_deref().unwrap_or(""),
            t.network,
            t.at,
            crate::bitcoin_trace::coins(t.tainted, network),
            t.inbound,
            t.payout
        ));
    }
    Ok(lines)
}
