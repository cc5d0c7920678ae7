//! Across THORChain onto a UTXO chain: an inbound whose memo names a destination address
//! (decoded by `holdfast-bridge`) is paid out by THORChain in a transaction to that address
//! carrying `OUT:<inbound>` in an OP_RETURN. The index's receipts of the address give the
//! candidates (no index of memos is needed), `holdfast_bridge::thorchain::find_payout` picks
//! the payout, and the trace continues from its outputs to the destination with the value
//! that arrived, or the tainted share of it.

use alloy_primitives::B256;
use holdfast_bridge::thorchain::{
    Candidate, CandidateOutput, Payout, canonical_address, find_payout, op_return_data,
};
use holdfast_store::utxo::{MAX_READ_BATCH, OutPointKey};

use super::{UtxoSeedAt, UtxoSource};
use crate::TraceError;

/// THORChain's payout of inbound `inbound` to `destination` on chain `chain_id`, searched
/// among the transactions paying `destination` from `from_height` on (in chain order): the
/// first whose OP_RETURN names the inbound. `None`: not (yet) in the index.
pub fn thorchain_payout<S: UtxoSource + ?Sized>(
    src: &S,
    chain_id: u64,
    inbound: B256,
    destination: &str,
    from_height: u64,
) -> Result<Option<Payout<B256>>, TraceError> {
    // The index keys addresses in their canonical form; a memo may upper-case bech32.
    let mut received = src.received(chain_id, &canonical_address(destination), from_height)?;
    received.sort_by_key(|(op, height, position, _)| (*height, *position, op.vout));
    let mut txids: Vec<B256> = Vec::new();
    for (op, ..) in &received {
        if txids.last() != Some(&op.txid) && !txids.contains(&op.txid) {
            txids.push(op.txid);
        }
    }
    for chunk in txids.chunks(MAX_READ_BATCH) {
        let placed = src.transactions(chain_id, chunk)?;
        let mut txs: Vec<_> = placed
            .into_iter()
            .filter_map(|p| p.into_iter().next())
            .collect();
        txs.sort_by_key(|(height, position, _)| (*height, *position));
        let scripts: Vec<Vec<Option<Vec<u8>>>> = txs
            .iter()
            .map(|(_, _, tx)| {
                tx.outputs
                    .iter()
                    .map(|o| op_return_data(&o.script))
                    .collect()
            })
            .collect();
        let candidates = txs
            .iter()
            .zip(&scripts)
            .map(|((_, _, tx), data)| Candidate {
                id: tx.txid,
                outputs: tx
                    .outputs
                    .iter()
                    .zip(data)
                    .map(|(o, d)| CandidateOutput {
                        address: o.address.as_deref(),
                        value: o.value,
                        op_return: d.as_deref(),
                    })
                    .collect(),
            });
        if let Some(p) = find_payout(inbound, destination, candidates) {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// The seeds that continue a trace from `payout`: each of its outputs to the destination,
/// wholly (`share_ppb` `None`) or the tainted share of its value (parts per billion of the
/// inbound that were tainted).
pub fn payout_seeds(payout: &Payout<B256>, share_ppb: Option<u64>) -> Vec<UtxoSeedAt> {
    payout
        .outputs
        .iter()
        .map(|(vout, value)| UtxoSeedAt::Output {
            outpoint: OutPointKey {
                txid: payout.id,
                vout: *vout,
            },
            amount: share_ppb.map(|ppb| {
                let share = u128::from(*value) * u128::from(ppb.min(1_000_000_000)) / 1_000_000_000;
                u64::try_from(share).unwrap_or(*value)
            }),
        })
        .collect()
}
