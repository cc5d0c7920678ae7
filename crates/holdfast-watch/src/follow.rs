//! Detector 6 and the `trace` response: thefts being followed, extended block by block.
//!
//! A rule with the `trace` response adds the alert's transaction as a [`Theft`] to the
//! watch's state (in the same commit as the alert). After every later block, each theft is
//! traced again over the transfer store (which the watch has just written the block into)
//! with each of its policies; a labelled service deposit that the taint reaches for the first
//! time raises a `tainted_deposit` alert naming the service, the deposit, the amount under
//! each policy and the evidence path hop by hop. Each deposit of a theft is alerted once.
//!
//! Cost: a trace per theft per block, loading only what the theft reaches
//! (`holdfast_trace::load_graph`), so it grows with the laundering, not with the chain.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, U256};
use holdfast_primitives::{Asset, BlockRef, Transfer};
use holdfast_store::Store;
use holdfast_trace::{Classifier, LoadOptions, Policy, Seed, TraceOptions};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::alert::{
    AddressNote, Alert, DetectorKind, Fact, Involvement, Place, Severity, alert_id,
};
use crate::units::Units;

/// Most thefts followed at once (each costs a trace per block).
pub const MAX_THEFTS: usize = 64;

/// One theft being followed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Theft {
    /// The alert whose `trace` response started it.
    pub alert_id: String,
    /// The rule under which its deposits are alerted.
    pub rule: String,
    pub severity: Severity,
    /// The responses of the deposit alerts (e.g. `notify`).
    pub responses: Vec<String>,
    pub tx_hash: B256,
    pub block: u64,
    /// When the alert moved no funds itself (a takeover: the singleton or the owners
    /// changed), the wallet taken over: its outflows from the alert's block on are the theft.
    #[serde(default)]
    pub wallet: Option<Address>,
    /// Policy names (`fifo`, `haircut`, …), in the order the alert reports them.
    pub policies: Vec<String>,
    pub max_hops: u32,
    /// Per deposit already alerted, the tainted totals last alerted: policy → (asset,
    /// amount in the smallest unit, decimal).
    pub reported: BTreeMap<Address, BTreeMap<String, Vec<(Asset, String)>>>,
}

/// The thefts being followed on one chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowState {
    pub thefts: Vec<Theft>,
}

/// How a `trace` response follows a theft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracePlan {
    pub policies: Vec<Policy>,
    pub max_hops: u32,
    /// The rule name deposit alerts are raised under.
    pub deposit_rule: String,
    pub severity: Severity,
    pub responses: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("following theft {tx}: {source}")]
    Trace {
        tx: B256,
        source: Box<holdfast_trace::TraceError>,
    },
}

impl FollowState {
    /// Starts following the theft of `alert`: its transaction's transfers, or — for a
    /// critical-storage alert (a takeover moves no funds) — the watched wallet's outflows
    /// from the alert's block on. Returns false when there is nothing to seed, it is already
    /// followed, or [`MAX_THEFTS`] are followed (logged).
    pub fn start(&mut self, alert: &Alert, plan: &TracePlan) -> bool {
        let Some(tx_hash) = alert.tx_hash else {
            return false;
        };
        let wallet = if alert.detector == DetectorKind::CriticalStorage {
            match alert
                .addresses
                .iter()
                .find(|a| a.involvement == Involvement::Watched)
            {
                Some(a) => Some(a.address),
                None => return false,
            }
        } else {
            None
        };
        // A wallet followed since its takeover already covers its later drains.
        let watched: Vec<Address> = alert
            .addresses
            .iter()
            .filter(|a| a.involvement == Involvement::Watched)
            .map(|a| a.address)
            .collect();
        if self
            .thefts
            .iter()
            .any(|t| t.tx_hash == tx_hash || t.wallet.is_some_and(|w| watched.contains(&w)))
        {
            return false;
        }
        if self.thefts.len() >= MAX_THEFTS {
            tracing::error!(target: "watch::follow", alert = %alert.id, max = MAX_THEFTS, "too many thefts followed; this one is not");
            return false;
        }
        self.thefts.push(Theft {
            alert_id: alert.id.clone(),
            rule: plan.deposit_rule.clone(),
            severity: plan.severity,
            responses: plan.responses.clone(),
            tx_hash,
            block: alert.block_number,
            wallet,
            policies: plan.policies.iter().map(|p| p.name().to_owned()).collect(),
            max_hops: plan.max_hops,
            reported: BTreeMap::new(),
        });
        true
    }

    /// Extends every theft through `block` (already in `store`; `arrivals` are its
    /// transfers) and returns an alert for each service deposit whose tainted total grew: the
    /// first arrival and every later one, each with what arrived and the running total under
    /// every policy.
    pub fn extend<C: Classifier + ?Sized>(
        &mut self,
        store: &dyn Store,
        classifier: &C,
        chain: &ChainInfo,
        block: &BlockRef,
        arrivals: &[Transfer],
        units: &Units,
    ) -> Vec<Alert> {
        let mut alerts = Vec::new();
        for theft in &mut self.thefts {
            if block.number <= theft.block && theft.wallet.is_none() {
                continue;
            }
            // A theft that cannot be traced this block must not stop the block (and with it
            // every detector): it is traced again from scratch next block, and what it missed
            // is alerted then (the totals are cumulative).
            let found = match reach(store, classifier, chain.chain_id, theft) {
                Ok(found) => found,
                Err(e) => {
                    tracing::error!(target: "watch::follow", theft = %theft.alert_id, block = block.number, error = %e, "tracing a followed theft failed; trying again next block");
                    continue;
                }
            };
            for (deposit, d) in found {
                let totals: BTreeMap<String, Vec<(Asset, String)>> = d
                    .amounts
                    .iter()
                    .map(|(p, v)| {
                        (
                            p.clone(),
                            v.iter().map(|(a, x)| (*a, x.to_string())).collect(),
                        )
                    })
                    .collect();
                let before = theft.reported.get(&deposit).cloned().unwrap_or_default();
                if before == totals {
                    continue;
                }
                let tx = arrivals
                    .iter()
                    .find(|t| t.to == deposit)
                    .map_or(d.first_tx, |t| t.tx_hash);
                alerts.push(deposit_alert(
                    chain, block, theft, deposit, &d, &before, tx, units,
                ));
                theft.reported.insert(deposit, totals);
            }
        }
        alerts
    }
}

/// The chain an alert is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainInfo {
    pub chain_id: u64,
    pub name: String,
    /// Explorer base URL (`https://etherscan.io`), for links.
    pub explorer: Option<String>,
}

/// What one theft's taint did at one deposit, per policy.
#[derive(Debug, Clone)]
struct Deposit {
    service: holdfast_trace::Service,
    first_tx: B256,
    first_block: u64,
    amounts: Vec<(String, Vec<(Asset, U256)>)>,
    path: Vec<holdfast_trace::Hop>,
}

fn reach<C: Classifier + ?Sized>(
    store: &dyn Store,
    classifier: &C,
    chain_id: u64,
    theft: &Theft,
) -> Result<BTreeMap<Address, Deposit>, FollowError> {
    let err = |source| FollowError::Trace {
        tx: theft.tx_hash,
        source: Box::new(source),
    };
    let seeds = [match theft.wallet {
        Some(w) => Seed::address(w).from_block(theft.block),
        None => Seed::tx(theft.tx_hash),
    }];
    let policies: Vec<Policy> = theft
        .policies
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect();
    let Some(first) = policies.first() else {
        return Ok(BTreeMap::new());
    };
    let options = |policy| TraceOptions {
        max_hops: theft.max_hops,
        ..TraceOptions::with_policy(policy)
    };
    let loaded = holdfast_trace::load_graph(
        store,
        chain_id,
        &seeds,
        &options(*first),
        &LoadOptions::default(),
        classifier,
        &mut |_| {},
    );
    let (graph, _) = match loaded {
        Ok(g) => g,
        // Nothing of the seed is stored yet (a wallet followed from its takeover, before
        // any outflow): nothing reached.
        Err(holdfast_trace::TraceError::UnknownSeed { .. }) => return Ok(BTreeMap::new()),
        Err(e) => return Err(err(e)),
    };
    let mut out: BTreeMap<Address, Deposit> = BTreeMap::new();
    for policy in policies {
        let trace = match holdfast_trace::trace(&graph, &seeds, &options(policy), classifier) {
            Ok(t) => t,
            // The seed is in none of the loaded transfers: nothing reached.
            Err(holdfast_trace::TraceError::UnknownSeed { .. }) => continue,
            Err(e) => return Err(err(e)),
        };
        for t in trace.targets {
            let amounts: Vec<(Asset, U256)> =
                t.amounts.iter().map(|a| (a.asset, a.amount)).collect();
            let d = out.entry(t.deposit).or_insert_with(|| Deposit {
                service: t.service.clone(),
                first_tx: t.first_tx,
                first_block: t.first_block,
                amounts: Vec::new(),
                path: t.path.clone(),
            });
            d.amounts.push((policy.name().to_owned(), amounts));
        }
    }
    Ok(out)
}

/// What arrived: `total` minus what was alerted `before`, per asset.
fn arrived(total: &[(Asset, U256)], before: Option<&Vec<(Asset, String)>>) -> Vec<(Asset, U256)> {
    total
        .iter()
        .map(|(asset, amount)| {
            let prior = before
                .and_then(|b| b.iter().find(|(a, _)| a == asset))
                .and_then(|(_, x)| x.parse::<U256>().ok())
                .unwrap_or_default();
            (*asset, amount.saturating_sub(prior))
        })
        .filter(|(_, x)| !x.is_zero())
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn deposit_alert(
    chain: &ChainInfo,
    block: &BlockRef,
    theft: &Theft,
    deposit: Address,
    d: &Deposit,
    before: &BTreeMap<String, Vec<(Asset, String)>>,
    tx: B256,
    units: &Units,
) -> Alert {
    let first = before.is_empty();
    let place = Place::Block {
        key: format!("{}:{deposit}:{tx}", theft.alert_id),
    };
    let id = alert_id(chain.chain_id, block.hash, &theft.rule, &place);
    let amount_words: Vec<String> = d
        .amounts
        .iter()
        .map(|(policy, amounts)| {
            let list: Vec<String> = amounts
                .iter()
                .map(|(asset, amount)| units.format(chain.chain_id, asset, *amount))
                .collect();
            format!(
                "{policy}: {}",
                if list.is_empty() {
                    "0".into()
                } else {
                    list.join(" + ")
                }
            )
        })
        .collect();
    let mut facts = vec![
        Fact {
            name: "service".into(),
            value: format!("{} ({})", d.service.name, d.service.category.name()),
        },
        Fact {
            name: "deposit".into(),
            value: deposit.to_string(),
        },
        Fact {
            name: "theft transaction".into(),
            value: theft.tx_hash.to_string(),
        },
        Fact {
            name: "arrived in".into(),
            value: format!("transaction {tx} (block {})", block.number),
        },
        Fact {
            name: "first tainted arrival".into(),
            value: format!("transaction {} (block {})", d.first_tx, d.first_block),
        },
    ];
    for (policy, _) in &d.amounts {
        let words = amount_words
            .iter()
            .find(|w| w.starts_with(&format!("{policy}:")))
            .cloned()
            .unwrap_or_default();
        facts.push(Fact {
            name: format!("tainted amount ({policy})"),
            value: words
                .split_once(": ")
                .map(|(_, v)| v.to_owned())
                .unwrap_or_default(),
        });
    }
    for (i, h) in d.path.iter().enumerate() {
        facts.push(Fact {
            name: format!("hop {}", i + 1),
            value: format!(
                "{} → {}: {} ({} tainted) in {} (block {})",
                h.from,
                h.to,
                units.format(chain.chain_id, &h.asset, h.amount),
                units.format(chain.chain_id, &h.asset, h.tainted),
                h.tx_hash,
                h.block
            ),
        });
    }
    let hops = d.path.len();
    let summary = format!(
        "Funds stolen in transaction {} (alert {}) {} {deposit}, a deposit address of {} ({}), in transaction {tx} at block {}, {hops} hop{} from the theft. Tainted amount — {}. Ask {} to freeze this deposit now, with the evidence path below; every hop is a transaction anyone can verify.",
        theft.tx_hash,
        theft.alert_id,
        if first { "reached" } else { "reached again" },
        d.service.name,
        d.service.category.name(),
        block.number,
        if hops == 1 { "" } else { "s" },
        amount_words.join("; "),
        d.service.name,
    );
    let evidence = json!({
        "kind": "freeze_request",
        "service": d.service.name,
        "category": d.service.category.name(),
        "chain_id": chain.chain_id,
        "deposit": deposit,
        "theft_tx": theft.tx_hash,
        "theft_alert": theft.alert_id,
        "arrived_tx": tx,
        "arrived_block": block.number,
        "first_tx": d.first_tx,
        "first_block": d.first_block,
        "amounts": d.amounts.iter().map(|(policy, amounts)| json!({
            "policy": policy,
            "arrived": arrived(amounts, before.get(policy)).iter().map(|(asset, amount)| json!({"asset": asset, "amount": amount.to_string()})).collect::<Vec<_>>(),
            "total": amounts.iter().map(|(asset, amount)| json!({"asset": asset, "amount": amount.to_string()})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "path": d.path,
    });
    let mut addresses = vec![AddressNote {
        address: deposit,
        role: "exchange deposit".into(),
        involvement: Involvement::Service,
        labels: vec![format!(
            "{} ({})",
            d.service.name,
            d.service.category.name()
        )],
    }];
    for h in &d.path {
        if !addresses.iter().any(|a| a.address == h.from) {
            addresses.push(AddressNote {
                address: h.from,
                role: "laundering hop".into(),
                involvement: Involvement::Suspect,
                labels: Vec::new(),
            });
        }
    }
    Alert {
        id,
        chain_id: chain.chain_id,
        chain: chain.name.clone(),
        block_number: block.number,
        block_hash: block.hash,
        block_timestamp: block.timestamp,
        tx_hash: Some(tx),
        place,
        rule: theft.rule.clone(),
        detector: DetectorKind::TaintedDeposit,
        severity: theft.severity,
        title: format!("Stolen funds reached {} deposit {deposit}", d.service.name),
        summary,
        facts,
        addresses,
        links: crate::units::links(chain, Some(tx), block.number),
        confirmations: 0,
        responses: theft.responses.clone(),
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AddressNote;

    fn alert(detector: DetectorKind, watched: Option<Address>) -> Alert {
        Alert {
            id: "hf-x".into(),
            chain_id: 1,
            chain: "c".into(),
            block_number: 7,
            block_hash: B256::ZERO,
            block_timestamp: 0,
            tx_hash: Some(B256::repeat_byte(9)),
            place: Place::Tx { tx_index: 0 },
            rule: "r".into(),
            detector,
            severity: Severity::Critical,
            title: String::new(),
            summary: String::new(),
            facts: Vec::new(),
            addresses: watched
                .map(|a| AddressNote {
                    address: a,
                    role: "watched contract".into(),
                    involvement: Involvement::Watched,
                    labels: Vec::new(),
                })
                .into_iter()
                .collect(),
            links: Vec::new(),
            confirmations: 0,
            responses: vec!["trace".into()],
            evidence: serde_json::Value::Null,
        }
    }

    fn plan() -> TracePlan {
        TracePlan {
            policies: vec![Policy::Fifo],
            max_hops: 4,
            deposit_rule: "loot".into(),
            severity: Severity::Critical,
            responses: Vec::new(),
        }
    }

    /// A takeover of a wallet whose past the store does not hold (the watch started after it
    /// was funded, no outflow yet): the trace finds nothing this block — it must not fail the
    /// block, which would stop the watch at the takeover and miss the sweep.
    #[test]
    fn a_followed_wallet_with_no_stored_transfers_reaches_nothing_and_fails_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = holdfast_store::EmbeddedStore::open(&dir.path().join("t")).expect("store");
        let safe = Address::repeat_byte(0x5a);
        let mut f = FollowState::default();
        assert!(f.start(&alert(DetectorKind::CriticalStorage, Some(safe)), &plan()));
        let chain = ChainInfo {
            chain_id: 1,
            name: "c".into(),
            explorer: None,
        };
        let block = BlockRef {
            number: 7,
            hash: B256::repeat_byte(1),
            parent_hash: B256::ZERO,
            timestamp: 0,
        };
        let found = f.extend(
            &store,
            &holdfast_trace::NoServices,
            &chain,
            &block,
            &[],
            &Units::new(),
        );
        assert_eq!(found, Vec::new());
        assert_eq!(
            f.thefts.len(),
            1,
            "still followed: its outflows may come next block"
        );
    }

    #[test]
    fn a_takeover_is_followed_from_the_wallet_and_a_theft_from_its_transaction() {
        let safe = Address::repeat_byte(0x5a);
        let mut f = FollowState::default();
        assert!(f.start(&alert(DetectorKind::CriticalStorage, Some(safe)), &plan()));
        assert_eq!(f.thefts[0].wallet, Some(safe));
        // The same wallet again (its drain alert, or another storage change) is not a second theft.
        let mut again = alert(DetectorKind::CriticalStorage, Some(safe));
        again.tx_hash = Some(B256::repeat_byte(8));
        assert!(!f.start(&again, &plan()));
        // A storage alert naming no watched address seeds nothing.
        assert!(!f.start(&alert(DetectorKind::CriticalStorage, None), &plan()));
        // Its drain is covered by the wallet's trace.
        let mut drain = alert(DetectorKind::Outflow, Some(safe));
        drain.tx_hash = Some(B256::repeat_byte(7));
        assert!(!f.start(&drain, &plan()));
        let mut g = FollowState::default();
        assert!(g.start(&alert(DetectorKind::Outflow, None), &plan()));
        assert_eq!(g.thefts[0].wallet, None);
    }
}
