//! What a UTXO trace found: every tainted output with its taint, the freeze targets, mixers
//! and bridge exits with their evidence paths, the taint lost to fees, and every bound hit.
//! Its roles, services, policy and options are the EVM trace's types.

use crate::labels::Service;
use crate::policy::{Policy, TraceOptions};
use crate::result::Role;

/// Where a UTXO trace starts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum UtxoSeed {
    /// Every output of the transaction, wholly.
    Tx { txid: String },
    /// One output: wholly, or its first `amount` units.
    Output {
        outpoint: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        amount: Option<u64>,
    },
    /// Every output paying the address from `from_height` on (its receipts), wholly.
    Address { address: String, from_height: u64 },
}

/// What became of a tainted output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputState {
    /// Spent by a transaction the trace followed (or stopped at, with the role saying why).
    Spent,
    /// Still unspent at the trace's head: tainted coins at rest.
    Unspent,
    /// An OP_RETURN (or other unspendable) output: its value is destroyed.
    Burned,
    /// Spent (not in the UTXO set) but its spender is not in the index: history written
    /// before the spent-by index, or imported without the spending block. Not followed.
    SpenderUnknown,
    /// Not looked at further: a stop (service, mixer, bridge, hop limit) or the node limit.
    NotFollowed,
}

/// A tainted output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TaintedOutput {
    /// `txid:vout`, the txid as Bitcoin shows it.
    pub outpoint: String,
    /// The creating transaction's block height and position in it.
    pub height: u64,
    pub position: u32,
    /// In the smallest unit.
    pub value: u64,
    pub tainted: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Transactions from a seed output (seed outputs are at 0).
    pub hops: u32,
    pub role: Role,
    pub state: OutputState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    /// When the service's label is a cluster member's: the member that carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via_member: Option<String>,
    /// The output it was traced from (an input of its transaction), if not a seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// One step of an evidence path: an output, with how much of it was tainted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UtxoHop {
    pub outpoint: String,
    pub height: u64,
    pub value: u64,
    pub tainted: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A place the trace stopped and reports: a freeze target (an output at a custodial service),
/// a mixer (a CoinJoin-like transaction, or an output at an address labelled a mixer) or a
/// bridge exit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UtxoFinding {
    /// The output at the service, or for a CoinJoin-like transaction its txid.
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via_member: Option<String>,
    pub height: u64,
    /// Tainted value that arrived there.
    pub tainted: u64,
    /// Seed to here, output by output (the last is the output at the service, or for a
    /// CoinJoin the tainted input that brought the most taint).
    pub path: Vec<UtxoHop>,
}

/// Taint a transaction paid as fee.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FeeLoss {
    pub txid: String,
    pub height: u64,
    pub tainted: u64,
}

/// Totals and bounds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UtxoTraceStats {
    pub transactions: u64,
    pub outputs: usize,
    /// Taint on outputs reached at the hop limit that were spent further.
    pub beyond_hops: u64,
    /// Haircut taint dropped by the cut-off.
    pub cut_off: u64,
    /// Taint paid to miners.
    pub lost_to_fees: u64,
    /// Taint on OP_RETURN (unspendable) outputs.
    pub burned: u64,
    /// Taint on unspent outputs (at rest; freezable where custodial).
    pub at_rest: u64,
    /// Taint on outputs whose spender is not in the index.
    pub spender_unknown: u64,
    /// Taint on outputs not followed because the trace reached `max_addresses` outputs.
    pub truncated_taint: u64,
    pub truncated: bool,
    /// Store reads (batches) the trace made.
    pub reads: u64,
}

/// The outcome of one UTXO trace: deterministic for a given index head, seeds and options.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UtxoTrace {
    pub id: String,
    pub chain_id: u64,
    /// The network's name, as the caller gives it (`litecoin-regtest`).
    pub network: String,
    /// The index head the trace read up to (spends above it are not followed); its hash as
    /// Bitcoin shows it.
    pub head_height: u64,
    pub head_hash: String,
    pub policy: Policy,
    pub options: TraceOptions,
    pub seeds: Vec<UtxoSeed>,
    /// Taint put on the seed outputs.
    pub seeded: u64,
    /// Every tainted output, in chain order (height, position, vout).
    pub outputs: Vec<TaintedOutput>,
    pub targets: Vec<UtxoFinding>,
    pub mixers: Vec<UtxoFinding>,
    pub exits: Vec<UtxoFinding>,
    /// More outputs than the fan-out cap: reported, not followed.
    pub capped: Vec<UtxoFinding>,
    pub fees: Vec<FeeLoss>,
    pub stats: UtxoTraceStats,
}

impl UtxoTrace {
    /// The tainted output at `outpoint` (`txid:vout`), if the trace reached it.
    pub fn output(&self, outpoint: &str) -> Option<&TaintedOutput> {
        self.outputs.iter().find(|o| o.outpoint == outpoint)
    }

    /// `tainted` labels for the addresses the trace's outputs paid (seeds and intermediaries,
    /// coins at rest included; not the services, mixers or bridges it stopped at), one per
    /// address with the taint it received in the smallest unit — as [`Trace::tainted_labels`]
    /// does for EVM traces.
    ///
    /// [`Trace::tainted_labels`]: crate::Trace::tainted_labels
    pub fn tainted_labels(&self) -> Vec<holdfast_intel::LabelRecord> {
        let mut by_address: std::collections::BTreeMap<&str, u64> = Default::default();
        for o in &self.outputs {
            let labelled = matches!(
                o.role,
                Role::Seed | Role::Intermediate | Role::HopLimit | Role::Capped
            );
            if let (true, Some(a)) = (labelled, o.address.as_deref()) {
                let t = by_address.entry(a).or_default();
                *t = t.saturating_add(o.tainted);
            }
        }
        by_address
            .into_iter()
            .map(|(address, tainted)| {
                let mut r = holdfast_intel::LabelRecord::new(
                    address.to_owned(),
                    format!("trace:{}", self.id),
                    holdfast_primitives::Category::Tainted,
                    crate::labels::TAINTED_CONFIDENCE,
                );
                r.name = Some(format!(
                    "trace {} ({}, {}): {tainted} tainted (smallest unit)",
                    self.id, self.policy, self.network
                ));
                r.uid = Some(self.id.clone());
                r
            })
            .collect()
    }

    /// The freeze targets at `address`, summed.
    pub fn tainted_at(&self, address: &str) -> u64 {
        self.targets
            .iter()
            .filter(|t| t.address.as_deref() == Some(address))
            .map(|t| t.tainted)
            .sum()
    }
}
