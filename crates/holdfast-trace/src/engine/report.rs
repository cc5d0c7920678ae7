//! Turning the engine's state into a [`Trace`]: amounts, roles, freeze targets with their
//! evidence paths, the taint tree.

use std::collections::BTreeMap;

use alloy_primitives::U256;
use sha2::{Digest, Sha256};

use super::{Engine, MAX_PATH, Src, add_to, held_of};
use crate::graph::{Graph, NONE};
use crate::labels::Classifier;
use crate::policy::{Policy, Seed, TraceOptions};
use crate::result::{Amount, FreezeTarget, Hop, MAX_ARRIVALS, Reached, Role, Trace};

impl<C: Classifier + ?Sized> Engine<'_, C> {
    pub(super) fn finish(mut self, seeds: &[Seed]) -> Trace {
        let g = self.g;
        let policy = self.opts.policy;
        let amounts = |m: &BTreeMap<(Src, u32), U256>| -> Vec<Amount> {
            let mut v: Vec<Amount> = m
                .iter()
                .filter(|(_, a)| !a.is_zero())
                .map(|(&(source, asset), &amount)| Amount {
                    source,
                    asset: g.assets[asset as usize],
                    amount,
                })
                .collect();
            v.sort();
            v
        };
        let mut addresses = Vec::with_capacity(self.states.len());
        let mut targets = Vec::new();
        let mut exits = Vec::new();
        let mut mixers = Vec::new();
        // Every tainted transfer into a bridge (each may be its own exit, with its own
        // destination), in chain order.
        let mut into_bridges: rustc_hash::FxHashMap<u32, Vec<u32>> = Default::default();
        for &e in self.bridge_in.keys() {
            into_bridges
                .entry(g.edges[e as usize].to)
                .or_default()
                .push(e);
        }
        let mut arrivals_not_listed = 0u64;
        for (&a, st) in &self.states {
            let received = amounts(&st.received);
            // An intermediate that is a super-node for every asset its taint came in: capped.
            let role = if st.role == Role::Intermediate
                && !st.capped.is_empty()
                && st.received.keys().all(|(_, x)| st.capped.contains(x))
            {
                Role::Capped
            } else {
                st.role
            };
            let mut capped_assets: Vec<_> =
                st.capped.iter().map(|&x| g.assets[x as usize]).collect();
            capped_assets.sort();
            let held = match role {
                Role::Intermediate | Role::HopLimit => {
                    let mut m = BTreeMap::new();
                    for (x, s) in &st.assets {
                        for (src, t) in held_of(policy, s) {
                            if policy != Policy::Poison {
                                add_to(&mut m, src, *x, t);
                            }
                        }
                    }
                    amounts(&m)
                }
                Role::Seed | Role::Service | Role::Mixer | Role::Bridge | Role::Capped => {
                    received.clone()
                }
            };
            let first = (st.first_edge != NONE).then(|| &g.edges[st.first_edge as usize]);
            let r = Reached {
                address: g.addresses[a as usize],
                role,
                hops: st.hops,
                service: st.service.clone(),
                first_tx: first.map(|e| g.txs[e.tx as usize]),
                first_block: first.map(|e| e.block),
                received: received.clone(),
                held,
                out_degree: st.out_degree,
                capped_assets,
            };
            if let (Some(service), Some(e)) = (st.service.clone(), first) {
                let t = FreezeTarget {
                    service,
                    deposit: r.address,
                    amounts: received,
                    first_tx: g.txs[e.tx as usize],
                    first_block: e.block,
                    path: self.path(st.first_edge),
                    arrivals: into_bridges.get_mut(&a).map_or_else(Vec::new, |edges| {
                        edges.sort_unstable();
                        arrivals_not_listed += edges.len().saturating_sub(MAX_ARRIVALS) as u64;
                        edges
                            .iter()
                            .take(MAX_ARRIVALS)
                            .map(|&e| self.path(e))
                            .collect()
                    }),
                };
                match st.role {
                    Role::Service => targets.push((st.first_edge, t)),
                    Role::Bridge => exits.push((st.first_edge, t)),
                    Role::Mixer => mixers.push((st.first_edge, t)),
                    _ => {}
                }
            }
            addresses.push(r);
        }
        addresses.sort_by_key(|x| x.address);
        let order = |mut v: Vec<(u32, FreezeTarget)>| {
            v.sort_by_key(|(e, t)| (*e, t.deposit));
            v.into_iter().map(|(_, t)| t).collect::<Vec<_>>()
        };
        self.stats.addresses_reached = addresses.len();
        self.stats.arrivals_not_listed = arrivals_not_listed;
        self.stats.beyond_hops = amounts(&self.beyond);
        self.stats.cut_off = amounts(&self.cut);
        let seeded = amounts(&self.seeded);
        let id = trace_id(g, seeds, self.opts);
        let mut tree: Vec<u32> = self.edge_tainted.keys().copied().collect();
        tree.sort_unstable();
        let tree = tree.into_iter().map(|e| self.hop(e)).collect();
        Trace {
            id,
            chain_id: g.chain_id,
            policy,
            options: self.opts.clone(),
            seeds: seeds.to_vec(),
            seeded,
            addresses,
            targets: order(targets),
            exits: order(exits),
            mixers: order(mixers),
            tree,
            stats: std::mem::take(&mut self.stats),
        }
    }

    fn hop(&self, e: u32) -> Hop {
        let g = self.g;
        let edge = &g.edges[e as usize];
        Hop {
            tx_hash: g.txs[edge.tx as usize],
            block: edge.block,
            from: g.addresses[edge.from as usize],
            to: g.addresses[edge.to as usize],
            asset: g.assets[edge.asset as usize],
            amount: edge.amount,
            tainted: self
                .edge_tainted
                .get(&e)
                .or_else(|| self.bridge_in.get(&e))
                .copied()
                .unwrap_or(U256::ZERO),
        }
    }

    /// The first-arrival path from a seed to edge `last`, seed first.
    fn path(&self, last: u32) -> Vec<Hop> {
        let g = self.g;
        let mut hops = Vec::new();
        let mut seen = rustc_hash::FxHashSet::default();
        let mut e = last;
        while e != NONE && hops.len() < MAX_PATH && seen.insert(e) {
            let edge = &g.edges[e as usize];
            hops.push(self.hop(e));
            if self.seed_lots.contains_key(&e) {
                break;
            }
            if edge.conv_out != NONE
                && let Some(&input) = self.conv_first_in.get(&edge.conv_out)
            {
                e = input;
                continue;
            }
            // Back through the first arrival of this edge's asset at its sender (a token's
            // evidence is the token's path, not the path of the ETH that got there first).
            e = match self.states.get(&edge.from) {
                Some(st) if st.role != Role::Seed => self
                    .first_in
                    .get(&(edge.from, edge.asset))
                    .copied()
                    .unwrap_or(st.first_edge),
                _ => NONE,
            };
        }
        hops.reverse();
        hops
    }
}

fn trace_id(g: &Graph, seeds: &[Seed], opts: &TraceOptions) -> String {
    let mut h = Sha256::new();
    h.update(g.chain_id.to_be_bytes());
    h.update((g.edges.len() as u64).to_be_bytes());
    h.update(serde_json::to_vec(seeds).unwrap_or_default());
    h.update(serde_json::to_vec(opts).unwrap_or_default());
    hex::encode(&h.finalize()[..8])
}
