//! Taint over UTXOs (docs/BITCOIN.md, "UTXO taint"): the unit is the output, not the
//! address. Tainted value on a transaction's inputs becomes tainted value on its outputs and
//! its fee under the policy ([`split`]); the walk follows each tainted output to the input that
//! spends it (the store's spent-by index), transaction by transaction in chain order, from
//! seeds (a transaction, an output, an address's receipts) to where the taint stops: outputs at
//! labelled services or at clusters labelled as one (freeze targets, with an evidence path),
//! CoinJoin-like transactions and mixer addresses (mixers), bridges (exits), unspent outputs
//! (at rest), the hop limit, fees (lost), OP_RETURN outputs (burned).
//!
//! The policy, options, roles and services are the EVM trace's types; the result is
//! [`UtxoTrace`] (its nodes are outputs, not addresses), written as JSON, CSV, DOT or GraphML
//! by [`export`] with the EVM output's formats and escaping.

use alloy_primitives::B256;
use holdfast_primitives::BlockRef;
use holdfast_store::StoreError;
use holdfast_store::utxo::{
    Direction, MAX_TRANSFERS, OutPointKey, PlacedTx, Spender, UtxoStore, show_txid,
};
use sha2::{Digest, Sha256};

mod export;
mod result;
mod services;
pub mod split;
mod thorchain;
mod walk;

pub use export::write_utxo;
pub use result::{
    FeeLoss, OutputState, TaintedOutput, UtxoFinding, UtxoHop, UtxoSeed, UtxoTrace, UtxoTraceStats,
};
pub use services::{ClusteredIntel, UtxoClassifier, UtxoService};
pub use thorchain::{payout_seeds, thorchain_payouts};

use crate::TraceError;
use crate::policy::{MAX_SEEDS, TraceOptions};
use crate::result::Role;
use split::Taint;
use walk::{Node, Walk, unspendable};

/// What a UTXO trace reads. Every [`UtxoStore`] is one; a benchmark's in-memory graph can be.
pub trait UtxoSource {
    fn head(&self, chain_id: u64) -> Result<Option<BlockRef>, StoreError>;
    fn transactions(&self, chain_id: u64, txids: &[B256])
    -> Result<Vec<Vec<PlacedTx>>, StoreError>;
    fn spenders(
        &self,
        chain_id: u64,
        outpoints: &[OutPointKey],
    ) -> Result<Vec<Option<Spender>>, StoreError>;
    /// Whether each output is in the UTXO set.
    fn unspent(&self, chain_id: u64, outpoints: &[OutPointKey]) -> Result<Vec<bool>, StoreError>;
    /// An address's receipts from `from_height`: (outpoint, height, position, value).
    fn received(
        &self,
        chain_id: u64,
        address: &str,
        from_height: u64,
    ) -> Result<Vec<(OutPointKey, u64, u32, u64)>, StoreError>;
}

impl<T: UtxoStore + ?Sized> UtxoSource for T {
    fn head(&self, chain_id: u64) -> Result<Option<BlockRef>, StoreError> {
        UtxoStore::head(self, chain_id)
    }
    fn transactions(
        &self,
        chain_id: u64,
        txids: &[B256],
    ) -> Result<Vec<Vec<PlacedTx>>, StoreError> {
        UtxoStore::transactions(self, chain_id, txids)
    }
    fn spenders(
        &self,
        chain_id: u64,
        outpoints: &[OutPointKey],
    ) -> Result<Vec<Option<Spender>>, StoreError> {
        UtxoStore::spenders(self, chain_id, outpoints)
    }
    fn unspent(&self, chain_id: u64, outpoints: &[OutPointKey]) -> Result<Vec<bool>, StoreError> {
        Ok(self
            .utxos(chain_id, outpoints)?
            .iter()
            .map(Option::is_some)
            .collect())
    }
    fn received(
        &self,
        chain_id: u64,
        address: &str,
        from_height: u64,
    ) -> Result<Vec<(OutPointKey, u64, u32, u64)>, StoreError> {
        Ok(self
            .address_transfers(chain_id, address, from_height, MAX_TRANSFERS)?
            .into_iter()
            .filter(|t| t.direction == Direction::Received)
            .map(|t| (t.outpoint, t.height, t.tx_index, t.value))
            .collect())
    }
}

/// A seed as the walk takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UtxoSeedAt {
    /// Every output of the transaction.
    Tx(B256),
    /// One output, wholly or its first `amount` units.
    Output {
        outpoint: OutPointKey,
        amount: Option<u64>,
    },
    /// Every output paying the address (in the index's canonical form) from a height on.
    Address { address: String, from_height: u64 },
}

/// Parses a txid as Bitcoin shows it (64 hex digits, reversed byte order) into the index's
/// internal byte order.
pub fn parse_txid(s: &str) -> Result<B256, TraceError> {
    let t = s.trim();
    let invalid = || TraceError::Invalid {
        field: "seed",
        value: s.to_owned(),
        expected: "a Bitcoin txid (64 hex digits)".into(),
    };
    if t.len() != 64 {
        return Err(invalid());
    }
    let mut b = hex::decode(t).map_err(|_| invalid())?;
    b.reverse();
    Ok(B256::from_slice(&b))
}

/// Parses `txid:vout`.
pub fn parse_outpoint(s: &str) -> Result<OutPointKey, TraceError> {
    let invalid = |why: &str| TraceError::Invalid {
        field: "seed",
        value: s.to_owned(),
        expected: format!("an output as txid:vout (64 hex digits, a colon, an index): {why}"),
    };
    let (txid, vout) = s
        .trim()
        .split_once(':')
        .ok_or_else(|| invalid("no colon"))?;
    let txid = parse_txid(txid).map_err(|_| invalid("the txid is not 64 hex digits"))?;
    let vout = vout
        .parse::<u32>()
        .map_err(|_| invalid("the index is not a number from 0 to 4294967295"))?;
    Ok(OutPointKey { txid, vout })
}

fn shown(s: &UtxoSeedAt) -> UtxoSeed {
    match s {
        UtxoSeedAt::Tx(t) => UtxoSeed::Tx { txid: show_txid(t) },
        UtxoSeedAt::Output { outpoint, amount } => UtxoSeed::Output {
            outpoint: outpoint.to_string(),
            amount: *amount,
        },
        UtxoSeedAt::Address {
            address,
            from_height,
        } => UtxoSeed::Address {
            address: address.clone(),
            from_height: *from_height,
        },
    }
}

/// Traces taint forward from `seeds` over the UTXO index of `chain_id` (named `network` in
/// the result), reading up to the index head at the start.
pub fn trace_utxo<S: UtxoSource + ?Sized, C: UtxoClassifier + ?Sized>(
    src: &S,
    classifier: &C,
    chain_id: u64,
    network: &str,
    seeds: &[UtxoSeedAt],
    opts: &TraceOptions,
) -> Result<UtxoTrace, TraceError> {
    opts.validate()?;
    if seeds.is_empty() || seeds.len() > MAX_SEEDS {
        return Err(TraceError::Invalid {
            field: "seeds",
            value: seeds.len().to_string(),
            expected: format!("1 to {MAX_SEEDS}"),
        });
    }
    let head = src.head(chain_id)?.ok_or_else(|| TraceError::Invalid {
        field: "chain",
        value: network.to_owned(),
        expected:
            "a network the UTXO index holds blocks of (run `holdfast ingest --chain bitcoin` first)"
                .into(),
    })?;
    let mut w = Walk::new(src, classifier, chain_id, opts, head.number);
    for s in seeds {
        for node in seed_nodes(src, chain_id, head.number, s)? {
            w.seed(node);
        }
    }
    let seeded = w.nodes.iter().map(|n| n.taint.amount()).sum();
    w.run()?;
    Ok(finish(w, network, &head, seeds, seeded))
}

/// The outputs a seed taints.
fn seed_nodes<S: UtxoSource + ?Sized>(
    src: &S,
    chain_id: u64,
    head: u64,
    seed: &UtxoSeedAt,
) -> Result<Vec<Node>, TraceError> {
    let unknown = || TraceError::UnknownSeed {
        seed: format!("{:?}", shown(seed)),
    };
    let node = |op, height, position, value, address, taint: Taint, script: Option<&[u8]>| {
        let burned = script.is_some_and(unspendable);
        Node {
            op,
            height,
            position,
            value,
            address,
            taint,
            hops: 0,
            role: Role::Seed,
            state: if burned {
                OutputState::Burned
            } else {
                OutputState::Spent
            },
            service: None,
            from: None,
        }
    };
    let tx_at = |txid: &B256| -> Result<PlacedTx, TraceError> {
        let mut found: Vec<PlacedTx> = src
            .transactions(chain_id, &[*txid])?
            .into_iter()
            .flatten()
            .filter(|(h, _, _)| *h <= head)
            .collect();
        match found.len() {
            0 => Err(unknown()),
            1 => Ok(found.remove(0)),
            _ => Err(TraceError::Invalid {
                field: "seed",
                value: show_txid(txid),
                expected: format!(
                    "a txid stored once (this one is at heights {}: seed one of its outputs)",
                    found
                        .iter()
                        .map(|(h, _, _)| h.to_string())
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            }),
        }
    };
    match seed {
        UtxoSeedAt::Tx(txid) => {
            let (h, p, tx) = tx_at(txid)?;
            Ok(tx
                .outputs
                .iter()
                .enumerate()
                .filter(|(_, o)| o.value > 0)
                .map(|(v, o)| {
                    node(
                        OutPointKey {
                            txid: *txid,
                            vout: v as u32,
                        },
                        h,
                        p,
                        o.value,
                        o.address.clone(),
                        Taint::prefix(o.value),
                        Some(&o.script),
                    )
                })
                .collect())
        }
        UtxoSeedAt::Output { outpoint, amount } => {
            let (h, p, tx) = tx_at(&outpoint.txid)?;
            let o = tx
                .outputs
                .get(outpoint.vout as usize)
                .ok_or_else(|| TraceError::Invalid {
                    field: "seed",
                    value: outpoint.to_string(),
                    expected: format!(
                        "an output of its transaction (it has {} outputs, 0 to {})",
                        tx.outputs.len(),
                        tx.outputs.len().saturating_sub(1)
                    ),
                })?;
            let t = amount.unwrap_or(o.value);
            if t > o.value || t == 0 {
                return Err(TraceError::Invalid {
                    field: "amount",
                    value: t.to_string(),
                    expected: format!("1 to the output's value, {}", o.value),
                });
            }
            Ok(vec![node(
                *outpoint,
                h,
                p,
                o.value,
                o.address.clone(),
                Taint::prefix(t),
                Some(&o.script),
            )])
        }
        UtxoSeedAt::Address {
            address,
            from_height,
        } => {
            let got = src.received(chain_id, address, *from_height)?;
            if got.len() >= MAX_TRANSFERS {
                return Err(TraceError::TooLarge {
                    what: "receipts of the seed address (seed a later height or its outputs)",
                    limit: MAX_TRANSFERS,
                });
            }
            let list: Vec<Node> = got
                .into_iter()
                .filter(|(_, h, _, v)| *h <= head && *v > 0)
                .map(|(op, h, p, v)| {
                    node(op, h, p, v, Some(address.clone()), Taint::prefix(v), None)
                })
                .collect();
            if list.is_empty() {
                return Err(unknown());
            }
            Ok(list)
        }
    }
}

fn path<S: ?Sized, C: ?Sized>(w: &Walk<'_, S, C>, mut at: Option<usize>) -> Vec<UtxoHop> {
    let mut out = Vec::new();
    while let Some(i) = at {
        let n = &w.nodes[i];
        out.push(UtxoHop {
            outpoint: n.op.to_string(),
            height: n.height,
            value: n.value,
            tainted: n.taint.amount(),
            address: n.address.clone(),
        });
        at = n.from;
    }
    out.reverse();
    out
}

fn finish<S: ?Sized, C: ?Sized>(
    mut w: Walk<'_, S, C>,
    network: &str,
    head: &BlockRef,
    seeds: &[UtxoSeedAt],
    seeded: u64,
) -> UtxoTrace {
    let mut targets = Vec::new();
    let mut exits = Vec::new();
    let mut label_mixers = Vec::new();
    for (i, n) in w.nodes.iter().enumerate() {
        let Some(s) = &n.service else { continue };
        let list = match n.role {
            Role::Service => &mut targets,
            Role::Bridge => &mut exits,
            Role::Mixer => &mut label_mixers,
            _ => continue,
        };
        list.push(UtxoFinding {
            at: n.op.to_string(),
            address: n.address.clone(),
            service: Some(s.service.clone()),
            via_member: s.via_member.clone(),
            height: n.height,
            tainted: n.taint.amount(),
            path: path(&w, Some(i)),
        });
    }
    let (mixers_found, capped_found) =
        (std::mem::take(&mut w.mixers), std::mem::take(&mut w.capped));
    let with_path = |list: Vec<(UtxoFinding, Option<usize>)>| -> Vec<UtxoFinding> {
        list.into_iter()
            .map(|(mut f, from)| {
                f.path = path(&w, from);
                f
            })
            .collect()
    };
    let mut mixers = with_path(mixers_found);
    mixers.extend(label_mixers);
    let capped = with_path(capped_found);
    let mut order: Vec<usize> = (0..w.nodes.len()).collect();
    order.sort_by_key(|&i| (w.nodes[i].height, w.nodes[i].position, w.nodes[i].op.vout));
    let outputs: Vec<TaintedOutput> = order
        .into_iter()
        .map(|i| {
            let n = &w.nodes[i];
            TaintedOutput {
                outpoint: n.op.to_string(),
                height: n.height,
                position: n.position,
                value: n.value,
                tainted: n.taint.amount(),
                address: n.address.clone(),
                hops: n.hops,
                role: n.role,
                state: n.state,
                service: n.service.as_ref().map(|s| s.service.clone()),
                via_member: n.service.as_ref().and_then(|s| s.via_member.clone()),
                from: n.from.map(|f| w.nodes[f].op.to_string()),
            }
        })
        .collect();
    let mut stats = std::mem::take(&mut w.stats);
    stats.outputs = outputs.len();
    let shown_seeds: Vec<UtxoSeed> = seeds.iter().map(shown).collect();
    let mut h = Sha256::new();
    h.update(w.chain_id.to_be_bytes());
    h.update(head.hash.as_slice());
    h.update(serde_json::to_vec(&shown_seeds).unwrap_or_default());
    h.update(serde_json::to_vec(w.opts).unwrap_or_default());
    UtxoTrace {
        id: hex::encode(&h.finalize()[..8]),
        chain_id: w.chain_id,
        network: network.to_owned(),
        head_height: head.number,
        head_hash: show_txid(&head.hash),
        policy: w.opts.policy,
        options: w.opts.clone(),
        seeds: shown_seeds,
        seeded,
        outputs,
        targets,
        mixers,
        exits,
        capped,
        fees: std::mem::take(&mut w.fees),
        stats,
    }
}
