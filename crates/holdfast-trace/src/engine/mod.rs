//! The taint engine: one pass over the graph's edges in chain order, touching only the
//! transfers of tainted addresses (a k-way merge of their adjacency lists), so a trace costs
//! what it reaches, not the size of the graph.
//!
//! Each tainted address keeps, per asset, what the policy needs: its balance and tainted
//! amounts per seed (haircut, TIHO), a queue of received lots (FIFO, LIFO), or the set of
//! seeds that reached it (poison). A transfer into a conversion venue hands its taint to the
//! conversion, whose output transfers carry it on in the output asset.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use alloy_primitives::{U256, U512};
use rustc_hash::FxHashMap;

use crate::TraceError;

mod report;
mod take;
use crate::graph::{Graph, NONE};
use crate::labels::{Classifier, Service, ServiceKind};
use crate::policy::{MAX_SEEDS, Policy, Seed, SeedAt, TraceOptions};
use crate::result::{Role, Trace, TraceStats};

type Src = u16;

/// Longest evidence path reported.
const MAX_PATH: usize = 10_000;

/// A piece of a transfer: tainted by a seed (`src`) or clean (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lot {
    src: Option<Src>,
    amount: U256,
}

/// What a transfer carries: its pieces in order, and the hop count of its taint.
#[derive(Debug, Default)]
struct Carried {
    lots: Vec<Lot>,
    hop: u32,
}

impl Carried {
    fn tainted(&self) -> U256 {
        self.lots
            .iter()
            .filter(|l| l.src.is_some())
            .fold(U256::ZERO, |a, l| a.saturating_add(l.amount))
    }
    fn has_taint(&self) -> bool {
        self.lots
            .iter()
            .any(|l| l.src.is_some() && !l.amount.is_zero())
    }
    fn push(&mut self, src: Option<Src>, amount: U256) {
        if amount.is_zero() {
            return;
        }
        match self.lots.last_mut() {
            Some(l) if l.src == src => l.amount = l.amount.saturating_add(amount),
            _ => self.lots.push(Lot { src, amount }),
        }
    }
}

#[derive(Debug, Default)]
struct AssetState {
    balance: U256,
    /// Haircut, TIHO, poison: tainted amount per seed.
    taint: Vec<(Src, U256)>,
    /// FIFO, LIFO: received lots, oldest first.
    lots: VecDeque<Lot>,
}

impl AssetState {
    fn taint_total(&self) -> U256 {
        self.taint
            .iter()
            .fold(U256::ZERO, |a, (_, t)| a.saturating_add(*t))
    }
    fn add_taint(&mut self, src: Src, amount: U256) {
        match self.taint.iter_mut().find(|(s, _)| *s == src) {
            Some((_, t)) => *t = t.saturating_add(amount),
            None => {
                self.taint.push((src, amount));
                self.taint.sort_by_key(|(s, _)| *s);
            }
        }
    }
    fn push_lot(&mut self, lot: Lot) {
        if lot.amount.is_zero() {
            return;
        }
        match self.lots.back_mut() {
            Some(l) if l.src == lot.src => l.amount = l.amount.saturating_add(lot.amount),
            _ => self.lots.push_back(lot),
        }
    }
}

#[derive(Debug)]
struct SeedBudget {
    src: Src,
    asset: Option<u32>,
    remaining: Option<U256>,
    from_block: u64,
}

#[derive(Debug)]
struct AddrState {
    role: Role,
    hops: u32,
    service: Option<Service>,
    /// The edge that first brought taint; [`NONE`] for seeds.
    first_edge: u32,
    /// Balances before this edge id come from history.
    since: u32,
    out_pos: usize,
    in_pos: usize,
    out_degree: usize,
    assets: Vec<(u32, AssetState)>,
    received: BTreeMap<(Src, u32), U256>,
    budgets: Vec<SeedBudget>,
    /// Assets it is a super-node for ([`capped_in`]): their taint stays here, reported.
    capped: Vec<u32>,
}

impl AddrState {
    fn follows(&self) -> bool {
        matches!(self.role, Role::Intermediate)
    }
}

/// Whether `a` is a super-node for taint of `asset` arriving before its out-edge `pos`: it
/// sent more than `cap` transfers of the asset from there, or the loader left some of them
/// out (those loaded, the oldest, may all precede the taint). Per asset: a flood of a
/// worthless token's transfers from an address does not stop its other assets' taint.
fn capped_in(g: &Graph, cap: usize, a: u32, pos: usize, asset: u32) -> bool {
    let outs = g.out_of(a);
    let after = &outs[pos.min(outs.len())..];
    g.outflows_cut(a, asset)
        // Counted only where the address sent more than the cap in all (rarely).
        || (after.len() > cap
            && after
                .iter()
                .filter(|&&x| g.edges[x as usize].asset == asset)
                .nth(cap)
                .is_some())
}

/// Cursor directions in the merge heap.
const OUT: u8 = 0;
const IN: u8 = 1;
const SINGLE: u8 = 2;

struct Engine<'a, C: Classifier + ?Sized> {
    g: &'a Graph,
    opts: &'a TraceOptions,
    classifier: &'a C,
    states: FxHashMap<u32, AddrState>,
    heap: BinaryHeap<Reverse<(u32, u32, u8)>>,
    processed: Vec<u64>,
    /// Tx seeds: the taint each of their edges starts with.
    seed_lots: FxHashMap<u32, Vec<(Src, U256)>>,
    /// Per conversion: taint waiting for the output (in output units), and its hop.
    escrow: FxHashMap<u32, (Vec<(Src, U256)>, u32)>,
    conv_first_in: FxHashMap<u32, u32>,
    tiho_pending: FxHashMap<u32, Vec<(Src, U256)>>,
    /// Taint carried by first edges and conversion inputs, for evidence paths.
    edge_tainted: FxHashMap<u32, U256>,
    /// Every tainted transfer into a bridge (the first and the later ones) and its taint.
    bridge_in: FxHashMap<u32, U256>,
    /// (address, asset) → the first transfer that brought taint of that asset there.
    first_in: FxHashMap<(u32, u32), u32>,
    seeded: BTreeMap<(Src, u32), U256>,
    beyond: BTreeMap<(Src, u32), U256>,
    cut: BTreeMap<(Src, u32), U256>,
    stats: TraceStats,
}

/// Traces `seeds` through `graph` with `options`; `classifier` says where services are.
pub fn trace<C: Classifier + ?Sized>(
    graph: &Graph,
    seeds: &[Seed],
    options: &TraceOptions,
    classifier: &C,
) -> Result<Trace, TraceError> {
    trace_with_progress(graph, seeds, options, classifier, &mut |_| {})
}

/// [`trace`], calling `progress` with the number of edges processed now and then.
pub fn trace_with_progress<C: Classifier + ?Sized>(
    graph: &Graph,
    seeds: &[Seed],
    options: &TraceOptions,
    classifier: &C,
    progress: &mut dyn FnMut(u64),
) -> Result<Trace, TraceError> {
    options.validate()?;
    if seeds.is_empty() {
        return Err(TraceError::Invalid {
            field: "seed",
            value: "none".into(),
            expected: "at least one theft transaction or address".into(),
        });
    }
    if seeds.len() > MAX_SEEDS {
        return Err(TraceError::Invalid {
            field: "seed",
            value: format!("{} seeds", seeds.len()),
            expected: format!("at most {MAX_SEEDS}"),
        });
    }
    let mut e = Engine {
        g: graph,
        opts: options,
        classifier,
        states: FxHashMap::default(),
        heap: BinaryHeap::new(),
        processed: vec![0; graph.edges.len().div_ceil(64)],
        seed_lots: FxHashMap::default(),
        escrow: FxHashMap::default(),
        conv_first_in: FxHashMap::default(),
        tiho_pending: FxHashMap::default(),
        edge_tainted: FxHashMap::default(),
        bridge_in: FxHashMap::default(),
        first_in: FxHashMap::default(),
        seeded: BTreeMap::new(),
        beyond: BTreeMap::new(),
        cut: BTreeMap::new(),
        stats: TraceStats::default(),
    };
    e.plant(seeds)?;
    e.run(progress);
    Ok(e.finish(seeds))
}

fn mul_div(a: U256, b: U256, c: U256) -> U256 {
    if c.is_zero() {
        return U256::ZERO;
    }
    if let Some(p) = a.checked_mul(b) {
        return p / c;
    }
    let p: U512 = a.widening_mul(b);
    let mut limbs = [0u64; 8];
    limbs[..4].copy_from_slice(c.as_limbs());
    let q = p / U512::from_limbs(limbs);
    let ql = q.as_limbs();
    if ql[4..].iter().any(|l| *l != 0) {
        return U256::MAX;
    }
    U256::from_limbs([ql[0], ql[1], ql[2], ql[3]])
}

fn add_to(map: &mut BTreeMap<(Src, u32), U256>, src: Src, asset: u32, amount: U256) {
    if amount.is_zero() {
        return;
    }
    let v = map.entry((src, asset)).or_default();
    *v = v.saturating_add(amount);
}

impl<C: Classifier + ?Sized> Engine<'_, C> {
    fn plant(&mut self, seeds: &[Seed]) -> Result<(), TraceError> {
        for (i, seed) in seeds.iter().enumerate() {
            let src = seed.theft.unwrap_or(i as Src);
            let asset = match &seed.asset {
                Some(a) => match self.g.asset_id(a) {
                    Some(id) => Some(id),
                    // Nothing of that asset is in the graph: the seed taints nothing.
                    None => continue,
                },
                None => None,
            };
            match &seed.at {
                SeedAt::Tx { tx_hash } => {
                    let tx = self.g.tx_id(tx_hash).ok_or(TraceError::UnknownSeed {
                        seed: tx_hash.to_string(),
                    })?;
                    let mut remaining = seed.amount;
                    for id in self.g.edges_of_tx(tx) {
                        let edge = &self.g.edges[id as usize];
                        if asset.is_some_and(|a| a != edge.asset) {
                            continue;
                        }
                        let take = remaining.map_or(edge.amount, |r| r.min(edge.amount));
                        if let Some(r) = remaining.as_mut() {
                            *r -= take;
                        }
                        if take.is_zero() {
                            continue;
                        }
                        self.seed_lots.entry(id).or_default().push((src, take));
                        self.heap.push(Reverse((id, NONE, SINGLE)));
                    }
                }
                SeedAt::Address { address } => {
                    let a = self.g.address_id(address).ok_or(TraceError::UnknownSeed {
                        seed: address.to_string(),
                    })?;
                    let st = self.states.entry(a).or_insert_with(|| AddrState {
                        role: Role::Seed,
                        hops: 0,
                        service: None,
                        first_edge: NONE,
                        since: 0,
                        out_pos: 0,
                        in_pos: 0,
                        out_degree: 0,
                        assets: Vec::new(),
                        received: BTreeMap::new(),
                        budgets: Vec::new(),
                        capped: Vec::new(),
                    });
                    st.role = Role::Seed;
                    st.hops = 0;
                    st.budgets.push(SeedBudget {
                        src,
                        asset,
                        remaining: seed.amount,
                        from_block: seed.from_block,
                    });
                }
            }
        }
        // Seed addresses: start their out-cursor at the earliest start block.
        let seeds: Vec<u32> = self
            .states
            .iter()
            .filter(|(_, s)| s.role == Role::Seed)
            .map(|(a, _)| *a)
            .collect();
        for a in seeds {
            let from_block = self.states[&a]
                .budgets
                .iter()
                .map(|b| b.from_block)
                .min()
                .unwrap_or(0);
            let outs = self.g.out_of(a);
            let pos = outs.partition_point(|&id| self.g.edges[id as usize].block < from_block);
            if let Some(st) = self.states.get_mut(&a) {
                st.out_pos = pos;
                st.out_degree = outs.len() - pos;
            }
            if let Some(&id) = outs.get(pos) {
                self.heap.push(Reverse((id, a, OUT)));
            }
        }
        Ok(())
    }

    fn run(&mut self, progress: &mut dyn FnMut(u64)) {
        while let Some(Reverse((id, owner, dir))) = self.heap.pop() {
            if owner != NONE {
                self.advance(owner, dir);
            }
            let word = id as usize / 64;
            let bit = 1u64 << (id % 64);
            if self.processed[word] & bit != 0 {
                continue;
            }
            self.processed[word] |= bit;
            self.stats.edges_processed += 1;
            if self.stats.edges_processed.is_multiple_of(65_536) {
                progress(self.stats.edges_processed);
            }
            self.process(id);
        }
        progress(self.stats.edges_processed);
    }

    /// Moves `owner`'s cursor past the edge just popped and queues its next edge.
    fn advance(&mut self, owner: u32, dir: u8) {
        let Some(st) = self.states.get_mut(&owner) else {
            return;
        };
        let list = if dir == OUT {
            st.out_pos += 1;
            self.g.out_of(owner).get(st.out_pos)
        } else {
            st.in_pos += 1;
            self.g.in_of(owner).get(st.in_pos)
        };
        if let Some(&next) = list {
            self.heap.push(Reverse((next, owner, dir)));
        }
    }

    fn process(&mut self, id: u32) {
        let g = self.g;
        let edge = &g.edges[id as usize];
        let (from, to, asset, amount) = (edge.from, edge.to, edge.asset, edge.amount);
        let mut carried = Carried::default();
        let mut hop = u32::MAX;

        if let Some(lots) = self.seed_lots.get(&id) {
            for &(src, take) in lots {
                carried.push(Some(src), take);
                add_to(&mut self.seeded, src, asset, take);
            }
            hop = 1;
        }
        // The sender's taint.
        let sender_hops = self
            .states
            .get(&from)
            .map(|s| (s.role, s.hops, s.capped.contains(&asset)));
        match sender_hops {
            // A seed's outflows of an asset the loader cut are not all in the graph: its taint
            // of that asset stays with it (the load reports the cut), as at a super-node.
            Some((Role::Seed, _, _)) if !g.outflows_cut(from, asset) => {
                let taken = self.take_seed(from, id);
                for (src, take) in taken {
                    carried.push(Some(src), take);
                    add_to(&mut self.seeded, src, asset, take);
                }
                hop = hop.min(1);
            }
            // Not of an asset it is a super-node for: that taint stays with it.
            Some((Role::Intermediate, h, false)) => {
                self.take(from, id, &mut carried);
                hop = hop.min(h + 1);
            }
            _ => {}
        }
        // A conversion's output carries what entered the conversion.
        if edge.conv_out != NONE
            && let Some((esc, esc_hop)) = self.escrow.get_mut(&edge.conv_out)
        {
            let conv = &g.convs[edge.conv_out as usize];
            let single = conv.outputs.len() <= 1;
            for (src, held) in esc.iter_mut() {
                let share = if single {
                    *held
                } else {
                    mul_div(*held, amount, conv.amount_out).min(*held)
                };
                let share = share.min(amount);
                *held -= share;
                carried.lots.insert(
                    0,
                    Lot {
                        src: Some(*src),
                        amount: share,
                    },
                );
            }
            carried.lots.retain(|l| !l.amount.is_zero());
            hop = hop.min(esc_hop.saturating_add(1));
        }
        if !carried.has_taint() {
            // Clean funds: only a tracked receiver's balance changes.
            if self.states.get(&to).is_some_and(|s| s.follows()) {
                carried.lots.clear();
                carried.push(None, amount);
                self.credit(to, id, &carried);
            }
            return;
        }
        // Complete the transfer with its clean part (policies that conserve value).
        if self.opts.policy != Policy::Poison {
            let tainted = carried.tainted();
            let in_lots = carried
                .lots
                .iter()
                .fold(U256::ZERO, |a, l| a.saturating_add(l.amount));
            if tainted > amount {
                // Never more taint than the transfer moved.
                let mut left = amount;
                for l in carried.lots.iter_mut() {
                    let t = l.amount.min(left);
                    left -= t;
                    l.amount = t;
                }
                carried.lots.retain(|l| !l.amount.is_zero());
            } else if in_lots < amount {
                carried.push(None, amount - in_lots);
            }
        }
        carried.hop = hop;
        if carried.hop > self.opts.max_hops {
            for l in &carried.lots {
                if let Some(src) = l.src {
                    add_to(&mut self.beyond, src, asset, l.amount);
                }
            }
            return;
        }
        let tainted = carried.tainted();
        if edge.conv_in != NONE && !self.states.get(&to).is_some_and(|s| s.follows()) {
            let conv = &g.convs[edge.conv_in as usize];
            let entry = self
                .escrow
                .entry(edge.conv_in)
                .or_insert_with(|| (Vec::new(), carried.hop));
            entry.1 = entry.1.min(carried.hop);
            for l in &carried.lots {
                if let Some(src) = l.src {
                    let out = mul_div(l.amount, conv.amount_out, conv.amount_in);
                    match entry.0.iter_mut().find(|(s, _)| *s == src) {
                        Some((_, v)) => *v = v.saturating_add(out),
                        None => entry.0.push((src, out)),
                    }
                }
            }
            self.conv_first_in.entry(edge.conv_in).or_insert(id);
            self.edge_tainted.entry(id).or_insert(tainted);
            for &o in &conv.outputs {
                self.heap.push(Reverse((o, NONE, SINGLE)));
            }
            return;
        }
        if !self.states.contains_key(&to) {
            if self.states.len() >= self.opts.max_addresses {
                self.stats.truncated = true;
                return;
            }
            self.create(to, id, carried.hop);
            self.edge_tainted.insert(id, tainted);
        }
        // Every tainted transfer into a bridge is an exit of its own (its own destination).
        if !tainted.is_zero() && self.states.get(&to).is_some_and(|s| s.role == Role::Bridge) {
            self.bridge_in.insert(id, tainted);
        }
        // The first tainted arrival of this asset here: an evidence path for a transfer of
        // the asset out of this address goes back through it (not through another asset's).
        if !tainted.is_zero()
            && self.states.contains_key(&to)
            && !self.first_in.contains_key(&(to, asset))
        {
            self.first_in.insert((to, asset), id);
            // Taint in an asset this address sent more of than the cap (or whose transfers
            // were not all loaded): a super-node for it, reported and not followed (its other
            // assets' taint is).
            let cap = self.opts.fan_out_cap;
            if let Some(st) = self.states.get_mut(&to)
                && st.role == Role::Intermediate
                && !st.capped.contains(&asset)
            {
                let pos = g.out_of(to).partition_point(|&x| x <= id);
                if capped_in(g, cap, to, pos, asset) {
                    st.capped.push(asset);
                }
            }
        }
        self.credit(to, id, &carried);
    }

    fn create(&mut self, a: u32, id: u32, hop: u32) {
        let g = self.g;
        let service = self.classifier.classify(&g.addresses[a as usize]);
        let mut role = match service.as_ref().map(|s| s.kind) {
            Some(ServiceKind::Custodial) => Role::Service,
            Some(ServiceKind::Mixer) if !self.opts.through_mixers => Role::Mixer,
            Some(ServiceKind::Bridge) if !self.opts.through_bridges => Role::Bridge,
            Some(ServiceKind::Mixer | ServiceKind::Bridge) | None => Role::Intermediate,
        };
        let outs = g.out_of(a);
        let out_pos = outs.partition_point(|&x| x <= id);
        let out_degree = outs.len() - out_pos;
        if role == Role::Intermediate && hop >= self.opts.max_hops {
            role = Role::HopLimit;
        }
        let first_asset = g.edges[id as usize].asset;
        let capped = if role == Role::Intermediate
            && capped_in(g, self.opts.fan_out_cap, a, out_pos, first_asset)
        {
            vec![first_asset]
        } else {
            Vec::new()
        };
        let ins = g.in_of(a);
        let in_pos = ins.partition_point(|&x| x <= id);
        self.states.insert(
            a,
            AddrState {
                role,
                hops: hop,
                service,
                first_edge: id,
                since: id,
                out_pos,
                in_pos,
                out_degree,
                assets: Vec::new(),
                received: BTreeMap::new(),
                budgets: Vec::new(),
                capped,
            },
        );
        if role == Role::Intermediate {
            self.start_cursors(a);
        }
    }

    fn start_cursors(&mut self, a: u32) {
        let Some(st) = self.states.get(&a) else {
            return;
        };
        if let Some(&x) = self.g.out_of(a).get(st.out_pos) {
            self.heap.push(Reverse((x, a, OUT)));
        }
        if self.opts.policy != Policy::Poison
            && let Some(&x) = self.g.in_of(a).get(st.in_pos)
        {
            self.heap.push(Reverse((x, a, IN)));
        }
    }

    /// The state of `asset` at `a`, initialised from the history before `a` was tainted.
    fn asset_state(&mut self, a: u32, asset: u32) -> &mut AssetState {
        let g = self.g;
        let policy = self.opts.policy;
        let st = self.states.get_mut(&a).expect("tracked address");
        let i = match st.assets.iter().position(|(x, _)| *x == asset) {
            Some(i) => i,
            None => {
                let mut s = AssetState::default();
                if policy != Policy::Poison {
                    let since = st.since;
                    let sum = |list: &[u32]| {
                        list.iter()
                            .take_while(|&&x| x < since)
                            .map(|&x| &g.edges[x as usize])
                            .filter(|e| e.asset == asset)
                            .fold(U256::ZERO, |acc, e| acc.saturating_add(e.amount))
                    };
                    let balance = sum(g.in_of(a)).saturating_sub(sum(g.out_of(a)));
                    s.balance = balance;
                    s.push_lot(Lot {
                        src: None,
                        amount: balance,
                    });
                }
                st.assets.push((asset, s));
                st.assets.len() - 1
            }
        };
        &mut st.assets[i].1
    }

    /// Adds what edge `id` carried to `a`.
    fn credit(&mut self, a: u32, id: u32, carried: &Carried) {
        let g = self.g;
        let edge = &g.edges[id as usize];
        let asset = edge.asset;
        let policy = self.opts.policy;
        let max_hops = self.opts.max_hops;
        let cap = self.opts.fan_out_cap;
        let promoted = {
            let Some(st) = self.states.get_mut(&a) else {
                return;
            };
            for l in &carried.lots {
                if let Some(src) = l.src {
                    let v = st.received.entry((src, asset)).or_default();
                    *v = v.saturating_add(l.amount);
                }
            }
            if st.role == Role::Seed {
                // Taint back at a seed stays there (its outflows follow the seed's budget).
                return;
            }
            let mut promoted = None;
            if carried.has_taint() && carried.hop < st.hops {
                st.hops = carried.hop;
                if st.role == Role::HopLimit && st.hops < max_hops {
                    // A shorter path arrived: follow from here on.
                    st.since = id;
                    let outs = g.out_of(a);
                    st.out_pos = outs.partition_point(|&x| x <= id);
                    st.out_degree = outs.len() - st.out_pos;
                    st.in_pos = g.in_of(a).partition_point(|&x| x <= id);
                    let mut capped: Vec<u32> = std::iter::once(asset)
                        .chain(st.assets.iter().map(|(x, _)| *x))
                        .filter(|&x| capped_in(g, cap, a, st.out_pos, x))
                        .collect();
                    capped.sort_unstable();
                    capped.dedup();
                    st.capped = capped;
                    let held: Vec<(u32, Vec<(Src, U256)>)> = st
                        .assets
                        .drain(..)
                        .map(|(x, s)| (x, held_of(policy, &s)))
                        .collect();
                    st.role = Role::Intermediate;
                    promoted = Some(held);
                }
            }
            promoted
        };
        if let Some(held) = promoted {
            self.start_cursors(a);
            for (x, taint) in held {
                let s = self.asset_state(a, x);
                for (src, t) in taint {
                    s.add_taint(src, t);
                    s.push_lot(Lot {
                        src: Some(src),
                        amount: t,
                    });
                }
            }
        }
        let Some(st) = self.states.get(&a) else {
            return;
        };
        if !matches!(st.role, Role::Intermediate | Role::HopLimit) {
            return;
        }
        let s = self.asset_state(a, asset);
        s.balance = s.balance.saturating_add(edge.amount);
        match policy {
            Policy::Poison | Policy::Haircut | Policy::Tiho => {
                for l in &carried.lots {
                    if let Some(src) = l.src {
                        s.add_taint(src, l.amount);
                    }
                }
            }
            Policy::Fifo | Policy::Lifo => {
                for l in &carried.lots {
                    s.push_lot(*l);
                }
            }
        }
    }
}

/// Tainted amounts an asset state holds, per seed.
fn held_of(policy: Policy, s: &AssetState) -> Vec<(Src, U256)> {
    match policy {
        Policy::Poison | Policy::Haircut | Policy::Tiho => s
            .taint
            .iter()
            .filter(|(_, t)| !t.is_zero())
            .copied()
            .collect(),
        Policy::Fifo | Policy::Lifo => {
            let mut m: BTreeMap<Src, U256> = BTreeMap::new();
            for l in &s.lots {
                if let Some(src) = l.src {
                    let v = m.entry(src).or_default();
                    *v = v.saturating_add(l.amount);
                }
            }
            m.into_iter().collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mul_div_is_exact_past_256_bits() {
        let a = U256::MAX / U256::from(3);
        assert_eq!(mul_div(a, U256::from(6), U256::from(6)), a);
        assert_eq!(mul_div(U256::MAX, U256::MAX, U256::MAX), U256::MAX);
        assert_eq!(
            mul_div(U256::from(7), U256::from(2), U256::from(3)),
            U256::from(4)
        );
        assert_eq!(
            mul_div(U256::from(7), U256::from(2), U256::ZERO),
            U256::ZERO
        );
    }

    #[test]
    fn carried_merges_lots_and_skips_zero() {
        let mut c = Carried::default();
        c.push(Some(1), U256::from(2));
        c.push(Some(1), U256::from(3));
        c.push(None, U256::ZERO);
        c.push(None, U256::from(4));
        assert_eq!(c.lots.len(), 2);
        assert_eq!(c.tainted(), U256::from(5));
    }
}
