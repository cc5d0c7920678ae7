//! Fills a [`Graph`] from a [`Store`] around the seeds: breadth first, `max_hops` levels of
//! outgoing transfers, each reached address's incoming transfers (its balance history, which
//! haircut, FIFO and LIFO need), and the conversions of the transactions involved. It loads a
//! superset of what the engine will taint (it ignores time); the engine decides.

use std::collections::BTreeSet;

use alloy_primitives::{Address, B256};
use holdfast_primitives::{Asset, Position, Transfer};
use holdfast_store::{MAX_LIMIT, Place, Store, TransferQuery};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::TraceError;
use crate::graph::{Graph, GraphBuilder};
use crate::labels::{Classifier, ServiceKind};
use crate::policy::{Policy, Seed, SeedAt, TraceOptions};

/// Bounds of a load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Most transfers loaded in all (beyond it the load stops and says so).
    pub max_transfers: usize,
    /// Most incoming transfers read per address (its balance history).
    pub max_history: usize,
    /// Most outgoing transfers read per address to count them per asset (beyond it, the
    /// address is cut in every asset).
    pub max_outflows_read: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_transfers: 5_000_000,
            max_history: 100_000,
            // Ten pages: a super-node (a busy DEX pair, an unlabelled service) costs ten reads,
            // and making a hop one for every asset takes 100,000 fake events.
            max_outflows_read: 100_000,
        }
    }
}

/// What a load read.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoadStats {
    pub addresses_expanded: usize,
    pub transfers: usize,
    pub conversions: usize,
    pub queries: usize,
    /// Addresses whose history was longer than `max_history` (their balances are partial).
    pub partial_history: Vec<Address>,
    /// `max_transfers` was reached.
    pub truncated: bool,
    /// Addresses with more outgoing transfers of an asset than the fan-out cap (`None`: more
    /// than [`LoadOptions::max_outflows_read`] in all), those not read into the graph: a trace
    /// that taints one in that asset reports it capped; a seed's are not followed.
    pub outflows_cut: Vec<(Address, Option<Asset>)>,
}

impl LoadStats {
    /// [`LoadStats::outflows_cut`] as text, each address with the asset it was cut in.
    pub fn outflows_cut_text(&self) -> String {
        self.outflows_cut
            .iter()
            .map(|(a, asset)| match asset {
                Some(x) => format!("{a} ({x})"),
                None => format!("{a} (every asset)"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Loads what a trace from `seeds` with `trace` options can reach.
pub fn load_graph<C: Classifier + ?Sized>(
    store: &dyn Store,
    chain_id: u64,
    seeds: &[Seed],
    trace: &TraceOptions,
    load: &LoadOptions,
    classifier: &C,
    progress: &mut dyn FnMut(&LoadStats),
) -> Result<(Graph, LoadStats), TraceError> {
    if load.max_outflows_read == 0 {
        return Err(TraceError::Invalid {
            field: "max_outflows_read",
            value: "0".into(),
            expected: "at least 1".into(),
        });
    }
    trace.validate()?;
    let mut l = Loader {
        store,
        chain_id,
        builder: GraphBuilder::new(chain_id),
        stats: LoadStats::default(),
        seen_tx: FxHashSet::default(),
        seen_transfer: FxHashSet::default(),
        load,
    };
    let mut frontier: BTreeSet<Address> = BTreeSet::new();
    let mut expanded: FxHashSet<Address> = FxHashSet::default();
    // A seed address taints what it sent from its seed's block on: its older transfers
    // would only fill the fan-out cap's quota.
    let mut seed_from: FxHashMap<Address, u64> = FxHashMap::default();
    for s in seeds {
        if let SeedAt::Address { address } = &s.at {
            let from = seed_from.entry(*address).or_insert(s.from_block);
            *from = (*from).min(s.from_block);
        }
    }
    for s in seeds {
        match &s.at {
            SeedAt::Tx { tx_hash } => {
                let ts = l.tx(*tx_hash)?;
                if ts.is_empty() {
                    return Err(TraceError::UnknownSeed {
                        seed: tx_hash.to_string(),
                    });
                }
                frontier.extend(ts.iter().map(|t| t.to));
            }
            SeedAt::Address { address } => {
                frontier.insert(*address);
            }
        }
    }
    let history = trace.policy != Policy::Poison;
    for _level in 0..=trace.max_hops {
        let mut next = BTreeSet::new();
        for a in std::mem::take(&mut frontier) {
            if !expanded.insert(a) || l.stats.truncated {
                continue;
            }
            let stops = match classifier.classify(&a).map(|s| s.kind) {
                Some(ServiceKind::Custodial) => true,
                Some(ServiceKind::Mixer) => !trace.through_mixers,
                Some(ServiceKind::Bridge) => !trace.through_bridges,
                None => false,
            };
            if stops {
                continue;
            }
            l.stats.addresses_expanded += 1;
            let from_block = seed_from.get(&a).copied().unwrap_or(0);
            let Some(Outflows {
                follow: outs,
                over_first,
                over,
            }) = l.outflows(a, from_block, trace.fan_out_cap)?
            else {
                // More than can be counted: one more than the cap read (the oldest), none
                // followed, and a trace tainting it reports it capped whatever these say.
                let outs = l.page(
                    TransferQuery::From {
                        address: a,
                        from_block,
                    },
                    trace.fan_out_cap.saturating_add(1),
                )?;
                l.add(outs)?;
                l.builder.mark_outflows_cut(a, None);
                l.stats.outflows_cut.push((a, None));
                continue;
            };
            // An asset it sent more than the cap of is left out (a super-node in that asset:
            // reported capped if taint of it arrives); the others are followed. So a flood of
            // a worthless token's events from a hop caps that token there, not the loot.
            for x in over {
                l.builder.mark_outflows_cut(a, Some(x));
                l.stats.outflows_cut.push((a, Some(x)));
            }
            l.add(over_first)?;
            let txs: BTreeSet<B256> = outs.iter().map(|t| t.tx_hash).collect();
            next.extend(outs.iter().map(|t| t.to));
            l.add(outs)?;
            for tx in txs {
                next.extend(l.conversions(tx)?);
            }
            if history {
                let ins = l.page(
                    TransferQuery::To {
                        address: a,
                        from_block: 0,
                    },
                    load.max_history,
                )?;
                if ins.len() >= load.max_history {
                    l.stats.partial_history.push(a);
                }
                // Unwraps pay out by an internal call: their burn is a conversion.
                let txs: BTreeSet<B256> = ins
                    .iter()
                    .filter(|t| {
                        t.asset == Asset::Native
                            && matches!(&t.position, Position::Call { trace_address } if !trace_address.is_empty())
                    })
                    .map(|t| t.tx_hash)
                    .collect();
                l.add(ins)?;
                for tx in txs {
                    next.extend(l.conversions(tx)?);
                }
            }
            progress(&l.stats);
        }
        frontier = next;
    }
    progress(&l.stats);
    Ok((l.builder.build(), l.stats))
}

/// An address's outgoing transfers, counted per asset ([`Loader::outflows`]).
struct Outflows {
    /// Of the assets sent at most the cap of: every transfer.
    follow: Vec<Transfer>,
    /// Of the others: the first `cap + 1` of each.
    over_first: Vec<Transfer>,
    /// The assets sent more than the cap of.
    over: Vec<Asset>,
}

struct Loader<'a> {
    store: &'a dyn Store,
    chain_id: u64,
    builder: GraphBuilder,
    stats: LoadStats,
    seen_tx: FxHashSet<B256>,
    seen_transfer: FxHashSet<(B256, Position)>,
    load: &'a LoadOptions,
}

impl Loader<'_> {
    fn add(&mut self, ts: Vec<Transfer>) -> Result<(), TraceError> {
        let fresh: Vec<Transfer> = ts
            .into_iter()
            .filter(|t| self.seen_transfer.insert((t.tx_hash, t.position.clone())))
            .collect();
        if self.stats.transfers + fresh.len() > self.load.max_transfers {
            self.stats.truncated = true;
            return Ok(());
        }
        self.stats.transfers += fresh.len();
        self.builder.add_transfers(fresh)
    }

    /// A transaction's transfers (added to the graph).
    fn tx(&mut self, tx: B256) -> Result<Vec<Transfer>, TraceError> {
        self.stats.queries += 1;
        let ts = self.store.transfers_of_tx(self.chain_id, tx)?;
        self.add(ts.clone())?;
        self.conversions(tx)?;
        Ok(ts)
    }

    /// A transaction's conversions; when it has some, its transfers too. Returns the
    /// conversions' recipients.
    fn conversions(&mut self, tx: B256) -> Result<Vec<Address>, TraceError> {
        if !self.seen_tx.insert(tx) {
            return Ok(Vec::new());
        }
        self.stats.queries += 1;
        let cs = self.store.conversions_of_tx(self.chain_id, tx)?;
        if cs.is_empty() {
            return Ok(Vec::new());
        }
        let recipients = cs.iter().map(|c| c.recipient).collect();
        self.stats.conversions += cs.len();
        self.builder.add_conversions(cs)?;
        self.stats.queries += 1;
        let ts = self.store.transfers_of_tx(self.chain_id, tx)?;
        self.add(ts)?;
        Ok(recipients)
    }

    /// Up to `limit` transfers of a query, in block order, in pages each from the place the
    /// last one ended at: a block holding more than a page of an address's transfers (anyone
    /// can emit that many token events naming an address, to hide what follows) is read
    /// whole, and the blocks after it too.
    /// What `a` sent from `from_block` on, counted per asset: the transfers of the assets it
    /// sent at most `cap` of (to follow), and of the assets it sent more of, the first
    /// `cap + 1` (loaded, not followed: the engine sees the address) and the assets. `None`
    /// when it sent more than [`LoadOptions::max_outflows_read`] transfers.
    fn outflows(
        &mut self,
        a: Address,
        from_block: u64,
        cap: usize,
    ) -> Result<Option<Outflows>, TraceError> {
        let query = TransferQuery::From {
            address: a,
            from_block,
        };
        let mut kept: FxHashMap<Asset, Vec<Transfer>> = FxHashMap::default();
        let mut over: Vec<Asset> = Vec::new();
        let mut over_first: Vec<Transfer> = Vec::new();
        let mut after: Option<Place> = None;
        let mut read = 0usize;
        loop {
            let want = (self.load.max_outflows_read - read).min(MAX_LIMIT);
            if want == 0 {
                return Ok(None);
            }
            self.stats.queries += 1;
            let batch = self
                .store
                .transfers_page(self.chain_id, query, after.as_ref(), want)?;
            let full = batch.len() == want;
            after = batch.last().map(Place::of);
            read += batch.len();
            for t in batch {
                if over.contains(&t.asset) {
                    continue;
                }
                let asset = t.asset;
                let list = kept.entry(asset).or_default();
                list.push(t);
                if list.len() > cap {
                    over_first.extend(kept.remove(&asset).unwrap_or_default());
                    over.push(asset);
                }
            }
            if !full {
                break;
            }
        }
        Ok(Some(Outflows {
            follow: kept.into_values().flatten().collect(),
            over_first,
            over,
        }))
    }

    fn page(&mut self, query: TransferQuery, limit: usize) -> Result<Vec<Transfer>, TraceError> {
        let mut out: Vec<Transfer> = Vec::new();
        let mut after: Option<Place> = None;
        loop {
            let want = (limit - out.len()).min(MAX_LIMIT);
            if want == 0 {
                break;
            }
            self.stats.queries += 1;
            let batch = self
                .store
                .transfers_page(self.chain_id, query, after.as_ref(), want)?;
            let full = batch.len() == want;
            after = batch.last().map(Place::of);
            out.extend(batch);
            if !full {
                break;
            }
        }
        Ok(out)
    }
}
