//! What a trace found: every address reached with its tainted amounts, the freeze targets
//! with their evidence paths, mixers, bridge exits and super-nodes.

use alloy_primitives::{Address, B256, U256};
use holdfast_primitives::Asset;

use crate::labels::Service;
use crate::policy::{Policy, Seed, TraceOptions};

/// Tainted value of one asset from one seed (seeds are numbered from 0 in the order given).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Amount {
    pub source: u16,
    pub asset: Asset,
    #[serde(serialize_with = "decimal")]
    pub amount: U256,
}

/// Amounts in JSON as decimal strings (smallest unit), which every tool can read exactly.
fn decimal<S: serde::Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Why the trace did what it did at an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A seed address: its outflows are the stolen funds.
    Seed,
    /// Reached and followed.
    Intermediate,
    /// A custodial service: the trace stops; a freeze target.
    Service,
    /// A mixer: marked (followed only with `through_mixers`).
    Mixer,
    /// A bridge: a cross-chain exit (followed only with `through_bridges`).
    Bridge,
    /// More outgoing transfers than the fan-out cap: reported, not followed.
    Capped,
    /// Reached at the hop limit: not followed further.
    HopLimit,
}

/// One transfer on an evidence path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Hop {
    pub tx_hash: B256,
    pub block: u64,
    pub from: Address,
    pub to: Address,
    pub asset: Asset,
    /// What the transfer moved.
    #[serde(serialize_with = "decimal")]
    pub amount: U256,
    /// How much of it was tainted (all seeds).
    #[serde(serialize_with = "decimal")]
    pub tainted: U256,
}

/// An address the taint reached.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reached {
    pub address: Address,
    pub role: Role,
    /// Fewest transfers from a seed.
    pub hops: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    /// The transfer that first brought taint (none for seed addresses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_tx: Option<B256>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_block: Option<u64>,
    /// Tainted value received, per seed and asset.
    pub received: Vec<Amount>,
    /// Tainted value still held at the end of the trace (poison: not tracked).
    pub held: Vec<Amount>,
    /// Outgoing transfers after the address was tainted (for super-nodes).
    pub out_degree: usize,
    /// Assets it is a super-node for (sent more than the fan-out cap of, or not all loaded):
    /// their taint stays here, not followed; its other assets' taint is (its role says
    /// `capped` when every asset its taint came in is one of these).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capped_assets: Vec<holdfast_primitives::Asset>,
}

/// A service deposit address where stolen funds arrived: ask the service to freeze.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FreezeTarget {
    pub service: Service,
    pub deposit: Address,
    pub amounts: Vec<Amount>,
    pub first_tx: B256,
    pub first_block: u64,
    /// Seed to deposit, every hop (the path of first arrivals).
    pub path: Vec<Hop>,
    /// Bridges only: every tainted transfer into the bridge, in chain order, each as its
    /// evidence path from a seed (the last hop is the transfer into the bridge); at most
    /// [`MAX_ARRIVALS`]. A cross-chain follow reads each one's exit event.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub arrivals: Vec<Vec<Hop>>,
}

/// The most tainted transfers into one bridge listed in [`FreezeTarget::arrivals`].
pub const MAX_ARRIVALS: usize = 10_000;

/// Totals of the trace.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TraceStats {
    /// Edges looked at.
    pub edges_processed: u64,
    pub addresses_reached: usize,
    /// Taint that left the trace's reach: beyond `max_hops`.
    pub beyond_hops: Vec<Amount>,
    /// Haircut taint dropped by the cut-off.
    pub cut_off: Vec<Amount>,
    /// The trace reached `max_addresses` and stopped adding addresses.
    pub truncated: bool,
    /// Tainted transfers into bridges beyond the [`MAX_ARRIVALS`] listed per bridge (not
    /// followed across).
    pub arrivals_not_listed: u64,
}

/// The outcome of one trace; deterministic for a given graph, seeds and options.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Trace {
    /// Identifies the trace (seeds, options and graph size hashed), e.g. in tainted labels.
    pub id: String,
    pub chain_id: u64,
    pub policy: Policy,
    pub options: TraceOptions,
    pub seeds: Vec<Seed>,
    /// Seeded taint per seed and asset.
    pub seeded: Vec<Amount>,
    /// Every address reached, by address.
    pub addresses: Vec<Reached>,
    /// Custodial services reached, by first arrival.
    pub targets: Vec<FreezeTarget>,
    /// Bridges reached (cross-chain exits; the destination is not known from this chain).
    pub exits: Vec<FreezeTarget>,
    /// Mixers reached.
    pub mixers: Vec<FreezeTarget>,
    /// The transfers that first brought taint to each address (and into each conversion),
    /// in chain order: the trace as a graph.
    pub tree: Vec<Hop>,
    pub stats: TraceStats,
}

impl Trace {
    pub fn reached(&self, address: &Address) -> Option<&Reached> {
        self.addresses
            .binary_search_by(|r| r.address.cmp(address))
            .ok()
            .and_then(|i| self.addresses.get(i))
    }

    /// Tainted value an address received in `asset`, summed over seeds.
    pub fn received(&self, address: &Address, asset: &Asset) -> U256 {
        self.reached(address).map_or(U256::ZERO, |r| {
            r.received
                .iter()
                .filter(|a| &a.asset == asset)
                .map(|a| a.amount)
                .fold(U256::ZERO, U256::saturating_add)
        })
    }

    /// The freeze target at `deposit`, if the trace reached it.
    pub fn target(&self, deposit: &Address) -> Option<&FreezeTarget> {
        self.targets.iter().find(|t| &t.deposit == deposit)
    }
}
