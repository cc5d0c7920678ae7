//! The in-memory transfer graph a trace runs on: addresses, assets and transactions interned
//! to dense ids, edges in execution order, per-address adjacency (CSR), and the recorded
//! conversions wired to the transfers that feed and leave them.
//!
//! Edge order is the chain's order (block, transaction, position), except that inside one
//! transaction an edge out of an address is placed after the edges into it where possible
//! (funds received in a transaction can be spent in it; the store cannot tell how calls and
//! logs interleaved). Conversions whose legs emit no transfer (a WETH `Deposit` mints and a
//! `Withdrawal` burns without a `Transfer` event) get a virtual edge for the missing leg.

use alloy_primitives::{Address, B256, U256};
use holdfast_primitives::{Asset, Conversion, ConversionKind, Position, Transfer};
use rustc_hash::FxHashMap;

use crate::TraceError;

/// No conversion.
pub(crate) const NONE: u32 = u32::MAX;

/// Most transfers one graph holds.
pub const MAX_EDGES: usize = 100_000_000;

/// Transactions with more edges than this keep the store's order (no reordering inside).
const REORDER_MAX: usize = 64;

/// What made an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EdgeKind {
    /// A transfer from the store.
    Transfer,
    /// The output leg of a wrap, which no event records (WETH `Deposit` mints silently).
    Mint,
    /// The input leg of an unwrap, which no event records (WETH `Withdrawal` burns silently).
    Burn,
}

#[derive(Debug, Clone)]
pub(crate) struct Edge {
    pub from: u32,
    pub to: u32,
    pub asset: u32,
    pub tx: u32,
    pub block: u64,
    pub amount: U256,
    /// The conversion this edge feeds (its `to` is the venue), or [`NONE`].
    pub conv_in: u32,
    /// The conversion this edge is the output of (its `from` is the venue), or [`NONE`].
    pub conv_out: u32,
    pub kind: EdgeKind,
}

#[derive(Debug, Clone)]
pub(crate) struct Conv {
    pub amount_in: U256,
    pub amount_out: U256,
    /// Edges carrying the output (ids), in order.
    pub outputs: Vec<u32>,
}

/// Transfers and conversions of one chain, indexed for tracing. Build with [`GraphBuilder`].
#[derive(Debug, Default)]
pub struct Graph {
    pub(crate) chain_id: u64,
    pub(crate) addresses: Vec<Address>,
    address_ids: FxHashMap<Address, u32>,
    pub(crate) assets: Vec<Asset>,
    asset_ids: FxHashMap<Asset, u32>,
    pub(crate) txs: Vec<B256>,
    tx_ids: FxHashMap<B256, u32>,
    pub(crate) edges: Vec<Edge>,
    out_start: Vec<u32>,
    out_edges: Vec<u32>,
    in_start: Vec<u32>,
    in_edges: Vec<u32>,
    /// Per tx: its edges (ids are contiguous).
    tx_range: Vec<(u32, u32)>,
    pub(crate) convs: Vec<Conv>,
    /// Outgoing transfers not all loaded (more than the fan-out cap): of an address in every
    /// asset (`None`), or in one.
    outflows_cut: rustc_hash::FxHashSet<(u32, Option<u32>)>,
}

impl Graph {
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }
    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }
    pub fn address_count(&self) -> usize {
        self.addresses.len()
    }
    pub fn conversion_count(&self) -> usize {
        self.convs.len()
    }
    pub(crate) fn address_id(&self, a: &Address) -> Option<u32> {
        self.address_ids.get(a).copied()
    }
    pub(crate) fn asset_id(&self, a: &Asset) -> Option<u32> {
        self.asset_ids.get(a).copied()
    }
    pub(crate) fn tx_id(&self, h: &B256) -> Option<u32> {
        self.tx_ids.get(h).copied()
    }
    pub(crate) fn out_of(&self, a: u32) -> &[u32] {
        let (s, e) = (self.out_start[a as usize], self.out_start[a as usize + 1]);
        &self.out_edges[s as usize..e as usize]
    }
    pub(crate) fn in_of(&self, a: u32) -> &[u32] {
        let (s, e) = (self.in_start[a as usize], self.in_start[a as usize + 1]);
        &self.in_edges[s as usize..e as usize]
    }
    /// Whether the loader left some of `a`'s outgoing transfers of `asset` out
    /// ([`GraphBuilder::mark_outflows_cut`]): what the graph holds of them says nothing of
    /// what `a` did with taint in that asset.
    pub(crate) fn outflows_cut(&self, a: u32, asset: u32) -> bool {
        !self.outflows_cut.is_empty()
            && (self.outflows_cut.contains(&(a, None))
                || self.outflows_cut.contains(&(a, Some(asset))))
    }
    pub(crate) fn edges_of_tx(&self, tx: u32) -> std::ops::Range<u32> {
        let (s, e) = self.tx_range[tx as usize];
        s..e
    }
    /// Approximate heap size, for benchmarks.
    pub fn heap_bytes(&self) -> usize {
        self.edges.capacity() * std::mem::size_of::<Edge>()
            + (self.out_edges.capacity() + self.in_edges.capacity()) * 4
            + (self.out_start.capacity() + self.in_start.capacity()) * 4
            + self.addresses.capacity() * (20 + 32)
            + self.txs.capacity() * (32 + 48)
            + self.tx_range.capacity() * 8
    }
}

/// Collects transfers and conversions, then builds a [`Graph`].
#[derive(Debug, Default)]
pub struct GraphBuilder {
    chain_id: Option<u64>,
    transfers: Vec<Transfer>,
    conversions: Vec<Conversion>,
    outflows_cut: Vec<(Address, Option<Asset>)>,
}

/// Sort key of an edge before in-transaction reordering.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    block: u64,
    tx_index: u32,
    tx: u32,
    position: Position,
    /// 0 real transfer, 1 virtual leg (after the real transfer at the same position).
    virtual_leg: u8,
}

impl GraphBuilder {
    pub fn new(chain_id: u64) -> Self {
        GraphBuilder {
            chain_id: Some(chain_id),
            ..GraphBuilder::default()
        }
    }

    pub fn len(&self) -> usize {
        self.transfers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.transfers.is_empty()
    }

    pub fn add_transfers(
        &mut self,
        transfers: impl IntoIterator<Item = Transfer>,
    ) -> Result<(), TraceError> {
        let transfers = transfers.into_iter();
        self.transfers.reserve(
            transfers
                .size_hint()
                .0
                .min(MAX_EDGES - self.transfers.len().min(MAX_EDGES)),
        );
        for t in transfers {
            self.check_chain(t.chain_id, t.tx_hash)?;
            if self.transfers.len() >= MAX_EDGES {
                return Err(TraceError::TooLarge {
                    what: "transfers",
                    limit: MAX_EDGES,
                });
            }
            self.transfers.push(t);
        }
        Ok(())
    }

    pub fn add_conversions(
        &mut self,
        conversions: impl IntoIterator<Item = Conversion>,
    ) -> Result<(), TraceError> {
        for c in conversions {
            self.check_chain(c.chain_id, c.tx_hash)?;
            self.conversions.push(c);
        }
        Ok(())
    }

    /// Says that `address` has more outgoing transfers of `asset` (`None`: of any asset)
    /// than were added (a loader that stopped reading them at the fan-out cap): a trace that
    /// taints it in that asset reports it as capped, since the transfers the graph holds of it
    /// may miss the ones that moved the taint on.
    pub fn mark_outflows_cut(&mut self, address: Address, asset: Option<Asset>) {
        self.outflows_cut.push((address, asset));
    }

    fn check_chain(&mut self, chain_id: u64, tx: B256) -> Result<(), TraceError> {
        match self.chain_id {
            Some(c) if c != chain_id => Err(TraceError::MixedChains {
                expected: c,
                found: chain_id,
                tx_hash: tx,
            }),
            Some(_) => Ok(()),
            None => {
                self.chain_id = Some(chain_id);
                Ok(())
            }
        }
    }

    /// Indexes everything. Duplicate transfers (same transaction and position) count once.
    pub fn build(self) -> Graph {
        let mut g = Graph {
            chain_id: self.chain_id.unwrap_or_default(),
            ..Graph::default()
        };
        let mut transfers = self.transfers;
        transfers.sort_by(|a, b| {
            (a.block_number, a.tx_index, &a.tx_hash, &a.position).cmp(&(
                b.block_number,
                b.tx_index,
                &b.tx_hash,
                &b.position,
            ))
        });
        transfers.dedup_by(|a, b| a.tx_hash == b.tx_hash && a.position == b.position);
        let mut conversions = self.conversions;
        conversions.sort_by_key(|c| (c.block_number, c.tx_index, c.tx_hash, c.log_index));
        conversions.dedup_by(|a, b| a.tx_hash == b.tx_hash && a.log_index == b.log_index);

        let mut keyed: Vec<(Key, Edge)> = Vec::with_capacity(transfers.len() + conversions.len());
        // Taken from the back, shrinking as it goes, so the transfers and the edges made of
        // them are not both resident in full (the edges are sorted below anyway).
        let mut taken = 0usize;
        while let Some(t) = transfers.pop() {
            taken += 1;
            if taken.is_multiple_of(1 << 20) {
                transfers.shrink_to_fit();
            }
            let from = g.intern_address(t.from);
            let to = g.intern_address(t.to);
            let asset = g.intern_asset(t.asset);
            let tx = g.intern_tx(t.tx_hash);
            keyed.push((
                Key {
                    block: t.block_number,
                    tx_index: t.tx_index,
                    tx,
                    position: t.position,
                    virtual_leg: 0,
                },
                Edge {
                    from,
                    to,
                    asset,
                    tx,
                    block: t.block_number,
                    amount: t.amount,
                    conv_in: NONE,
                    conv_out: NONE,
                    kind: EdgeKind::Transfer,
                },
            ));
        }
        drop(transfers);
        // Virtual legs; conversions are wired to edges after ordering.
        for (k, c) in conversions.iter().enumerate() {
            let k = k as u32;
            let position = Position::Log {
                log_index: c.log_index,
                item: 0,
            };
            let tx = g.intern_tx(c.tx_hash);
            let venue = g.intern_address(c.venue);
            let asset_in = g.intern_asset(c.asset_in);
            let asset_out = g.intern_asset(c.asset_out);
            let key = Key {
                block: c.block_number,
                tx_index: c.tx_index,
                tx,
                position,
                virtual_leg: 1,
            };
            match c.kind {
                ConversionKind::Wrap => {
                    let to = g.intern_address(c.recipient);
                    keyed.push((
                        key,
                        Edge {
                            from: venue,
                            to,
                            asset: asset_out,
                            tx,
                            block: c.block_number,
                            amount: c.amount_out,
                            conv_in: NONE,
                            conv_out: k,
                            kind: EdgeKind::Mint,
                        },
                    ));
                }
                ConversionKind::Unwrap => {
                    let from = g.intern_address(c.account);
                    keyed.push((
                        key,
                        Edge {
                            from,
                            to: venue,
                            asset: asset_in,
                            tx,
                            block: c.block_number,
                            amount: c.amount_in,
                            conv_in: k,
                            conv_out: NONE,
                            kind: EdgeKind::Burn,
                        },
                    ));
                }
                ConversionKind::UniswapV2Swap => {}
            }
            g.convs.push(Conv {
                amount_in: c.amount_in,
                amount_out: c.amount_out,
                outputs: Vec::new(),
            });
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut edges: Vec<Edge> = keyed.into_iter().map(|(_, e)| e).collect();

        // Transaction ranges, then in-transaction reordering.
        g.tx_range = vec![(0, 0); g.txs.len()];
        let mut i = 0;
        while i < edges.len() {
            let tx = edges[i].tx;
            let mut j = i + 1;
            while j < edges.len() && edges[j].tx == tx {
                j += 1;
            }
            g.tx_range[tx as usize] = (i as u32, j as u32);
            i = j;
        }

        // Wire conversions to their legs.
        for (k, c) in conversions.iter().enumerate() {
            let Some(tx) = g.tx_id(&c.tx_hash) else {
                continue;
            };
            let (s, e) = g.tx_range[tx as usize];
            let venue = g.address_id(&c.venue).unwrap_or(NONE);
            let asset_in = g.asset_id(&c.asset_in).unwrap_or(NONE);
            let asset_out = g.asset_id(&c.asset_out).unwrap_or(NONE);
            let account = g.address_id(&c.account).unwrap_or(NONE);
            let recipient = g.address_id(&c.recipient).unwrap_or(NONE);
            let k = k as u32;
            let range = s as usize..e as usize;
            if c.kind != ConversionKind::Unwrap {
                // The input: a transfer into the venue of the input asset, the account's
                // own if there is one.
                let candidates: Vec<usize> = range
                    .clone()
                    .filter(|&x| {
                        let ed = &edges[x];
                        ed.to == venue
                            && ed.asset == asset_in
                            && ed.conv_in == NONE
                            && ed.kind == EdgeKind::Transfer
                    })
                    .collect();
                let pick = candidates
                    .iter()
                    .copied()
                    .find(|&x| edges[x].from == account)
                    .or_else(|| candidates.first().copied());
                if let Some(x) = pick {
                    edges[x].conv_in = k;
                }
            }
            if c.kind != ConversionKind::Wrap {
                let pick = range.clone().find(|&x| {
                    let ed = &edges[x];
                    ed.from == venue
                        && ed.to == recipient
                        && ed.asset == asset_out
                        && ed.conv_out == NONE
                });
                if let Some(x) = pick {
                    edges[x].conv_out = k;
                }
            }
        }
        for &(s, e) in &g.tx_range {
            let (s, e) = (s as usize, e as usize);
            if e - s > 1 && e - s <= REORDER_MAX {
                reorder_tx(&mut edges[s..e]);
            }
        }
        for (id, e) in edges.iter().enumerate() {
            if e.conv_out != NONE {
                g.convs[e.conv_out as usize].outputs.push(id as u32);
            }
        }

        // Adjacency (CSR), edge ids ascending per address.
        let n = g.addresses.len();
        let mut out_count = vec![0u32; n + 1];
        let mut in_count = vec![0u32; n + 1];
        for e in &edges {
            out_count[e.from as usize + 1] += 1;
            in_count[e.to as usize + 1] += 1;
        }
        for i in 0..n {
            out_count[i + 1] += out_count[i];
            in_count[i + 1] += in_count[i];
        }
        let mut out_edges = vec![0u32; edges.len()];
        let mut in_edges = vec![0u32; edges.len()];
        let mut out_fill = out_count.clone();
        let mut in_fill = in_count.clone();
        for (id, e) in edges.iter().enumerate() {
            out_edges[out_fill[e.from as usize] as usize] = id as u32;
            out_fill[e.from as usize] += 1;
            in_edges[in_fill[e.to as usize] as usize] = id as u32;
            in_fill[e.to as usize] += 1;
        }
        g.out_start = out_count;
        g.in_start = in_count;
        g.out_edges = out_edges;
        g.in_edges = in_edges;
        g.edges = edges;
        g.outflows_cut = self
            .outflows_cut
            .iter()
            .filter_map(|(a, asset)| {
                let a = g.address_id(a)?;
                match asset {
                    None => Some((a, None)),
                    // An asset the graph holds no transfer of can carry no taint here.
                    Some(x) => g.asset_id(x).map(|x| (a, Some(x))),
                }
            })
            .collect();
        g
    }
}

impl Graph {
    fn intern_address(&mut self, a: Address) -> u32 {
        let next = self.addresses.len() as u32;
        *self.address_ids.entry(a).or_insert_with(|| {
            self.addresses.push(a);
            next
        })
    }
    fn intern_asset(&mut self, a: Asset) -> u32 {
        let next = self.assets.len() as u32;
        *self.asset_ids.entry(a).or_insert_with(|| {
            self.assets.push(a);
            next
        })
    }
    fn intern_tx(&mut self, h: B256) -> u32 {
        let next = self.txs.len() as u32;
        *self.tx_ids.entry(h).or_insert_with(|| {
            self.txs.push(h);
            next
        })
    }
}

/// Stable topological order inside one transaction: a conversion's inputs before its
/// outputs, and an edge out of an address after the edges into it, unless a cycle forces
/// otherwise (then the store's order decides).
fn reorder_tx(edges: &mut [Edge]) {
    let n = edges.len();
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    let feeds =
        |j: usize, i: usize| edges[j].conv_in != NONE && edges[j].conv_in == edges[i].conv_out;
    for _ in 0..n {
        let blocked = |i: usize, done: &[bool], soft: bool| {
            (0..n).any(|j| {
                !done[j] && j != i && (feeds(j, i) || (soft && edges[j].to == edges[i].from))
            })
        };
        let pick = (0..n)
            .find(|&i| !done[i] && !blocked(i, &done, true))
            .or_else(|| (0..n).find(|&i| !done[i] && !blocked(i, &done, false)))
            .or_else(|| (0..n).find(|&i| !done[i]))
            .unwrap_or(0);
        done[pick] = true;
        order.push(pick);
    }
    let copy: Vec<Edge> = order.iter().map(|&i| edges[i].clone()).collect();
    edges.clone_from_slice(&copy);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(from: u32, to: u32) -> Edge {
        Edge {
            from,
            to,
            asset: 0,
            tx: 0,
            block: 0,
            amount: U256::from(1),
            conv_in: NONE,
            conv_out: NONE,
            kind: EdgeKind::Transfer,
        }
    }

    #[test]
    fn inside_a_transaction_inflows_come_first() {
        // Logged as: 2 → 3, then 1 → 2 (calls before logs); executed the other way round.
        let mut v = vec![edge(2, 3), edge(1, 2)];
        reorder_tx(&mut v);
        assert_eq!((v[0].from, v[1].from), (1, 2));
        // A cycle keeps the store's order.
        let mut v = vec![edge(1, 2), edge(2, 1)];
        reorder_tx(&mut v);
        assert_eq!((v[0].from, v[1].from), (1, 2));
    }

    #[test]
    fn a_conversion_input_precedes_its_output_even_in_a_cycle() {
        let mut out = edge(9, 1);
        out.conv_out = 0;
        let mut burn = edge(1, 9);
        burn.conv_in = 0;
        let mut v = vec![out, burn];
        reorder_tx(&mut v);
        assert_eq!(v[0].conv_in, 0);
    }
}
