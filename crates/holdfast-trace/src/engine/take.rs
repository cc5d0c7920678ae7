//! How each policy chooses the taint that leaves an address with a transfer.

use alloy_primitives::U256;

use super::{Carried, Engine, Lot, Src, add_to, mul_div};
use crate::labels::Classifier;
use crate::policy::Policy;

impl<C: Classifier + ?Sized> Engine<'_, C> {
    pub(super) fn take_seed(&mut self, a: u32, id: u32) -> Vec<(Src, U256)> {
        let edge = &self.g.edges[id as usize];
        let Some(st) = self.states.get_mut(&a) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut left = edge.amount;
        for b in st.budgets.iter_mut() {
            if edge.block < b.from_block || b.asset.is_some_and(|x| x != edge.asset) {
                continue;
            }
            let take = b.remaining.map_or(left, |r| r.min(left));
            if let Some(r) = b.remaining.as_mut() {
                *r -= take;
            }
            if self.opts.policy != Policy::Poison {
                left -= take;
            }
            if !take.is_zero() {
                out.push((b.src, take));
            }
        }
        out
    }

    /// The sender's taint leaving with edge `id`, by the policy.
    pub(super) fn take(&mut self, a: u32, id: u32, carried: &mut Carried) {
        let g = self.g;
        let edge = &g.edges[id as usize];
        let (asset, v) = (edge.asset, edge.amount);
        let policy = self.opts.policy;
        let cutoff = self.opts.haircut_cutoff_ppm;
        match policy {
            Policy::Poison => {
                let s = self.asset_state(a, asset);
                let srcs: Vec<Src> = s.taint.iter().map(|(x, _)| *x).collect();
                for src in srcs {
                    carried.lots.push(Lot {
                        src: Some(src),
                        amount: v,
                    });
                }
                carried.lots.retain(|l| !l.amount.is_zero());
            }
            Policy::Haircut => {
                let s = self.asset_state(a, asset);
                let total = s.taint_total();
                let base = s.balance.max(total);
                let out = v.min(base);
                let mut cut = Vec::new();
                for (src, t) in s.taint.iter_mut() {
                    let take = mul_div(*t, out, base).min(*t);
                    *t -= take;
                    if cutoff > 0
                        && take.saturating_mul(U256::from(1_000_000u64))
                            < v.saturating_mul(U256::from(cutoff))
                    {
                        cut.push((*src, take));
                    } else if !take.is_zero() {
                        carried.lots.push(Lot {
                            src: Some(*src),
                            amount: take,
                        });
                    }
                }
                s.balance = s.balance.saturating_sub(v);
                for (src, c) in cut {
                    add_to(&mut self.cut, src, asset, c);
                }
            }
            Policy::Fifo | Policy::Lifo => {
                let s = self.asset_state(a, asset);
                let mut left = v;
                while !left.is_zero() {
                    let lot = if policy == Policy::Fifo {
                        s.lots.front_mut()
                    } else {
                        s.lots.back_mut()
                    };
                    let Some(lot) = lot else { break };
                    let t = lot.amount.min(left);
                    lot.amount -= t;
                    left -= t;
                    let src = lot.src;
                    if lot.amount.is_zero() {
                        if policy == Policy::Fifo {
                            s.lots.pop_front();
                        } else {
                            s.lots.pop_back();
                        }
                    }
                    carried.push(src, t);
                }
                s.balance = s.balance.saturating_sub(v);
            }
            Policy::Tiho => {
                let lots = match self.tiho_pending.remove(&id) {
                    Some(l) => l,
                    None => self.tiho_group(a, id),
                };
                for (src, t) in lots {
                    carried.push(Some(src), t);
                }
            }
        }
    }

    /// TIHO: the sender's outputs in this transaction and asset, largest first, take its
    /// taint until it is used up.
    fn tiho_group(&mut self, a: u32, id: u32) -> Vec<(Src, U256)> {
        let g = self.g;
        let edge = &g.edges[id as usize];
        let asset = edge.asset;
        let range = g.edges_of_tx(edge.tx);
        let mut group: Vec<u32> = g
            .out_of(a)
            .iter()
            .copied()
            .filter(|&x| x >= id && range.contains(&x) && g.edges[x as usize].asset == asset)
            .collect();
        group.sort_by(|x, y| {
            g.edges[*y as usize]
                .amount
                .cmp(&g.edges[*x as usize].amount)
                .then(x.cmp(y))
        });
        let s = self.asset_state(a, asset);
        let mut mine = Vec::new();
        let mut pending = Vec::new();
        for x in group {
            let mut left = g.edges[x as usize].amount;
            let mut lots = Vec::new();
            for (src, t) in s.taint.iter_mut() {
                if left.is_zero() {
                    break;
                }
                let take = (*t).min(left);
                *t -= take;
                left -= take;
                if !take.is_zero() {
                    lots.push((*src, take));
                }
            }
            if x == id {
                mine = lots;
            } else {
                pending.push((x, lots));
            }
        }
        self.tiho_pending.extend(pending);
        mine
    }
}
