//! The forward walk: transactions in chain order (height, position), each once, with every
//! tainted input it has. A transaction can only be tainted through earlier ones, so when the
//! smallest queued transaction is taken, every transaction that can taint its inputs has
//! already been processed: a consolidation sees all its tainted inputs, however many hops
//! each took.
//!
//! Reads are batched: the bodies of the next queued transactions (up to [`PREFETCH`]) in one
//! `transactions` call, the spenders of all their outputs in one `spenders` call, and the
//! unspent check of every output without a spender at the end, in batches.

use std::collections::BTreeSet;

use alloy_primitives::B256;
use holdfast_store::StoreError;
use holdfast_store::utxo::{
    MAX_READ_BATCH, MAX_SCRIPT_BYTES, OutPointKey, Spender, TxRecord, is_coinjoin,
};
use rustc_hash::FxHashMap;

use super::UtxoSource;
use super::result::{FeeLoss, OutputState, UtxoFinding, UtxoTraceStats};
use super::services::{UtxoClassifier, UtxoService};
use super::split::{Input, Taint, split};
use crate::TraceError;
use crate::labels::ServiceKind;
use crate::policy::{Policy, TraceOptions};
use crate::result::Role;

/// Transactions whose bodies one read fetches ahead.
pub(super) const PREFETCH: usize = 1_000;

/// A tainted output.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub op: OutPointKey,
    pub height: u64,
    pub position: u32,
    pub value: u64,
    pub address: Option<String>,
    pub taint: Taint,
    pub hops: u32,
    pub role: Role,
    pub state: OutputState,
    pub service: Option<UtxoService>,
    /// The node it was traced from.
    pub from: Option<usize>,
}

/// Whether a script can never be spent (OP_RETURN, or longer than Core's limit).
pub(super) fn unspendable(script: &[u8]) -> bool {
    script.first() == Some(&0x6a) || script.len() > MAX_SCRIPT_BYTES
}

pub(super) struct Walk<'a, S: ?Sized, C: ?Sized> {
    pub src: &'a S,
    pub cls: &'a C,
    pub chain_id: u64,
    pub opts: &'a TraceOptions,
    pub head: u64,
    pub nodes: Vec<Node>,
    pub index: FxHashMap<OutPointKey, usize>,
    /// Tainted inputs of queued transactions: (vin, node).
    inputs: FxHashMap<B256, Vec<(u32, usize)>>,
    queue: BTreeSet<(u64, u32, B256)>,
    bodies: FxHashMap<B256, TxRecord>,
    spenders: FxHashMap<OutPointKey, Option<Spender>>,
    /// Outputs with no spender (to the head): unspent or spender unknown, told apart at the
    /// end in batches.
    leaves: Vec<usize>,
    classes: FxHashMap<String, Option<UtxoService>>,
    pub mixers: Vec<(UtxoFinding, Option<usize>)>,
    pub capped: Vec<(UtxoFinding, Option<usize>)>,
    pub fees: Vec<FeeLoss>,
    pub stats: UtxoTraceStats,
}

impl<'a, S: UtxoSource + ?Sized, C: UtxoClassifier + ?Sized> Walk<'a, S, C> {
    pub fn new(src: &'a S, cls: &'a C, chain_id: u64, opts: &'a TraceOptions, head: u64) -> Self {
        Walk {
            src,
            cls,
            chain_id,
            opts,
            head,
            nodes: Vec::new(),
            index: FxHashMap::default(),
            inputs: FxHashMap::default(),
            queue: BTreeSet::new(),
            bodies: FxHashMap::default(),
            spenders: FxHashMap::default(),
            leaves: Vec::new(),
            classes: FxHashMap::default(),
            mixers: Vec::new(),
            capped: Vec::new(),
            fees: Vec::new(),
            stats: UtxoTraceStats::default(),
        }
    }

    /// Adds a seed output (merged with one already seeded at the same outpoint).
    pub fn seed(&mut self, node: Node) {
        if let Some(&i) = self.index.get(&node.op) {
            let both = [self.nodes[i].taint.intervals(), node.taint.intervals()].concat();
            self.nodes[i].taint = Taint::from_intervals(both);
            return;
        }
        if node.state == OutputState::Burned {
            self.stats.burned += node.taint.amount();
        }
        self.index.insert(node.op, self.nodes.len());
        self.nodes.push(node);
    }

    /// Follows every seed, then every queued transaction in chain order.
    pub fn run(&mut self) -> Result<(), TraceError> {
        let seeds: Vec<usize> = (0..self.nodes.len()).collect();
        self.follow(&seeds)?;
        while let Some(&(height, position, txid)) = self.queue.first() {
            if !self.bodies.contains_key(&txid) {
                self.prefetch()?;
            }
            self.queue.pop_first();
            let tx = self.bodies.remove(&txid).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "the spent-by index names tx {} at height {height} as a spender, but the index does not hold it",
                    holdfast_store::utxo::show_txid(&txid)
                ))
            })?;
            let tainted = self.inputs.remove(&txid).unwrap_or_default();
            let new = self.process(height, position, &tx, &tainted)?;
            self.follow(&new)?;
        }
        let leaves = std::mem::take(&mut self.leaves);
        for chunk in leaves.chunks(MAX_READ_BATCH) {
            let ops: Vec<OutPointKey> = chunk.iter().map(|&i| self.nodes[i].op).collect();
            let held = self.src.unspent(self.chain_id, &ops)?;
            self.stats.reads += 1;
            for (&i, unspent) in chunk.iter().zip(held) {
                let state = if unspent {
                    OutputState::Unspent
                } else {
                    OutputState::SpenderUnknown
                };
                self.settle(i, state);
            }
        }
        Ok(())
    }

    /// Reads the bodies of the next queued transactions without one, and the spenders of
    /// their outputs.
    fn prefetch(&mut self) -> Result<(), TraceError> {
        let want: Vec<(u64, B256)> = self
            .queue
            .iter()
            .filter(|(_, _, t)| !self.bodies.contains_key(t))
            .take(PREFETCH)
            .map(|(h, _, t)| (*h, *t))
            .collect();
        let ids: Vec<B256> = want.iter().map(|(_, t)| *t).collect();
        let found = self.src.transactions(self.chain_id, &ids)?;
        self.stats.reads += 1;
        let mut outs = Vec::new();
        for ((height, txid), records) in want.iter().zip(found) {
            // A duplicate txid (BIP30) is told apart by the spender's height.
            if let Some((_, _, tx)) = records.into_iter().find(|(h, _, _)| h == height) {
                // Every output's spender in the same batch (whichever the policy taints: one
                // round trip, not one per transaction).
                outs.extend(
                    tx.outputs
                        .iter()
                        .enumerate()
                        .filter(|(_, o)| o.value > 0 && !unspendable(&o.script))
                        .map(|(v, _)| OutPointKey {
                            txid: *txid,
                            vout: v as u32,
                        }),
                );
                self.bodies.insert(*txid, tx);
            }
        }
        self.lookup(&outs)
    }

    /// Reads the spenders of `ops` not read yet, in batches.
    fn lookup(&mut self, ops: &[OutPointKey]) -> Result<(), TraceError> {
        let want: Vec<OutPointKey> = ops
            .iter()
            .filter(|op| !self.spenders.contains_key(op))
            .copied()
            .collect();
        for chunk in want.chunks(MAX_READ_BATCH) {
            let got = self.src.spenders(self.chain_id, chunk)?;
            self.stats.reads += 1;
            for (op, s) in chunk.iter().zip(got) {
                self.spenders.insert(*op, s);
            }
        }
        Ok(())
    }

    /// Queues the spenders of `new` nodes that are to be followed, and settles the others.
    fn follow(&mut self, new: &[usize]) -> Result<(), TraceError> {
        let open: Vec<usize> = new
            .iter()
            .copied()
            .filter(|&i| {
                let n = &self.nodes[i];
                n.state == OutputState::Spent
                    && matches!(n.role, Role::Seed | Role::Intermediate | Role::HopLimit)
            })
            .collect();
        let ops: Vec<OutPointKey> = open.iter().map(|&i| self.nodes[i].op).collect();
        self.lookup(&ops)?;
        for i in open {
            let op = self.nodes[i].op;
            match self.spenders.get(&op).copied().flatten() {
                Some(s) if s.height <= self.head => {
                    let n = &mut self.nodes[i];
                    if n.role == Role::HopLimit {
                        n.state = OutputState::NotFollowed;
                        self.stats.beyond_hops += n.taint.amount();
                        continue;
                    }
                    self.inputs.entry(s.txid).or_default().push((s.vin, i));
                    self.queue.insert((s.height, s.position, s.txid));
                }
                // Spent above the head the trace reads: unspent at that head.
                Some(_) => self.settle(i, OutputState::Unspent),
                None => self.leaves.push(i),
            }
        }
        Ok(())
    }

    fn settle(&mut self, i: usize, state: OutputState) {
        let n = &mut self.nodes[i];
        n.state = state;
        match state {
            OutputState::Unspent => self.stats.at_rest += n.taint.amount(),
            OutputState::SpenderUnknown => self.stats.spender_unknown += n.taint.amount(),
            _ => {}
        }
    }

    fn classify(&mut self, address: &str) -> Result<Option<UtxoService>, TraceError> {
        if let Some(c) = self.classes.get(address) {
            return Ok(c.clone());
        }
        let c = self.cls.classify(address)?;
        self.classes.insert(address.to_owned(), c.clone());
        Ok(c)
    }

    /// Splits the taint of one transaction's inputs; returns the new nodes.
    fn process(
        &mut self,
        height: u64,
        position: u32,
        tx: &TxRecord,
        tainted: &[(u32, usize)],
    ) -> Result<Vec<usize>, TraceError> {
        self.stats.transactions += 1;
        let mut inputs: Vec<Input> = tx
            .inputs
            .iter()
            .map(|i| Input {
                value: i.value,
                taint: Taint::none(),
            })
            .collect();
        let mut node_of = vec![None; inputs.len()];
        for &(vin, n) in tainted {
            if let Some(slot) = inputs.get_mut(vin as usize) {
                slot.taint = self.nodes[n].taint.clone();
                node_of[vin as usize] = Some(n);
            }
        }
        let hops = tainted
            .iter()
            .map(|&(_, n)| self.nodes[n].hops)
            .min()
            .unwrap_or(0)
            + 1;
        let taint_in: u64 = inputs.iter().map(|i| i.taint.amount()).sum();
        let most = tainted
            .iter()
            .max_by_key(|&&(vin, n)| (self.nodes[n].taint.amount(), std::cmp::Reverse(vin)))
            .map(|&(_, n)| n);
        let txid = holdfast_store::utxo::show_txid(&tx.txid);
        let stop = if is_coinjoin(tx) && !self.opts.through_mixers {
            Some((Role::Mixer, true))
        } else if tx.outputs.len() > self.opts.fan_out_cap {
            Some((Role::Capped, false))
        } else {
            None
        };
        if let Some((role, mixer)) = stop {
            let f = UtxoFinding {
                at: txid,
                address: None,
                service: None,
                via_member: None,
                height,
                tainted: taint_in,
                path: Vec::new(),
            };
            for &(_, n) in tainted {
                self.nodes[n].role = role;
            }
            if mixer {
                self.mixers.push((f, most));
            } else {
                self.capped.push((f, most));
            }
            return Ok(Vec::new());
        }
        let values: Vec<u64> = tx.outputs.iter().map(|o| o.value).collect();
        let s = split(self.opts.policy, &inputs, &values);
        if s.fee > 0 {
            self.stats.lost_to_fees += s.fee;
            self.fees.push(FeeLoss {
                txid,
                height,
                tainted: s.fee,
            });
        }
        let mut new = Vec::new();
        for (vout, (taint, from)) in s.outputs.into_iter().zip(s.from).enumerate() {
            let out = &tx.outputs[vout];
            let t = taint.amount();
            if t == 0 {
                continue;
            }
            if self.opts.policy == Policy::Haircut
                && u128::from(t) * 1_000_000
                    < u128::from(self.opts.haircut_cutoff_ppm) * u128::from(out.value)
            {
                self.stats.cut_off += t;
                continue;
            }
            if self.nodes.len() >= self.opts.max_addresses {
                self.stats.truncated = true;
                self.stats.truncated_taint += t;
                continue;
            }
            let service = match &out.address {
                Some(a) => self.classify(a)?,
                None => None,
            };
            let (role, state) = if unspendable(&out.script) {
                self.stats.burned += t;
                (Role::Intermediate, OutputState::Burned)
            } else {
                match service.as_ref().map(|s| s.service.kind) {
                    Some(ServiceKind::Custodial) => (Role::Service, OutputState::NotFollowed),
                    Some(ServiceKind::Mixer) if !self.opts.through_mixers => {
                        (Role::Mixer, OutputState::NotFollowed)
                    }
                    Some(ServiceKind::Bridge) if !self.opts.through_bridges => {
                        (Role::Bridge, OutputState::NotFollowed)
                    }
                    _ if hops >= self.opts.max_hops => (Role::HopLimit, OutputState::Spent),
                    _ => (Role::Intermediate, OutputState::Spent),
                }
            };
            let op = OutPointKey {
                txid: tx.txid,
                vout: vout as u32,
            };
            let i = self.nodes.len();
            self.index.insert(op, i);
            self.nodes.push(Node {
                op,
                height,
                position,
                value: out.value,
                address: out.address.clone(),
                taint,
                hops,
                role,
                state,
                service,
                from: from.and_then(|vin| node_of[vin]),
            });
            new.push(i);
        }
        Ok(new)
    }
}
