//! Across THORChain onto a UTXO chain: an inbound whose memo names a destination address
//! (decoded by `holdfast-bridge`) is paid out by THORChain in a transaction to that address
//! carrying `OUT:<inbound>` in an OP_RETURN. The index's receipts of the address give the
//! candidates (no index of memos is needed), `holdfast_bridge::thorchain::find_payouts` picks
//! the payouts (more than one means someone planted a decoy: all are followed), and the trace continues from its outputs to the destination with the value
//! that arrived, or the tainted share of it.

use alloy_primitives::B256;
use holdfast_bridge::thorchain::{
    Candidate, CandidateOutput, Payout, canonical_address, find_payouts, op_return_data,
};
use holdfast_store::utxo::{MAX_READ_BATCH, OutPointKey};

use super::{UtxoSeedAt, UtxoSource};
use crate::TraceError;

/// THORChain's payouts of inbound `inbound` to `destination` on chain `chain_id`, searched
/// among the transactions paying `destination` from `from_height` on: every one whose
/// OP_RETURN names the inbound, in chain order (empty: not, or not yet, in the index; more than
/// one: a decoy among them — [`find_payouts`] chooses none, the caller follows all and says so).
pub fn thorchain_payouts<S: UtxoSource + ?Sized>(
    src: &S,
    chain_id: u64,
    inbound: B256,
    destination: &str,
    from_height: u64,
) -> Result<Vec<Payout<B256>>, TraceError> {
    // The index keys addresses in their canonical form; a memo may upper-case bech32.
    let mut received = src.received(chain_id, &canonical_address(destination), from_height)?;
    // A destination with more receipts than one read returns is not searched partly (a
    // payout beyond the limit would be reported as not found): the caller says so.
    if received.len() >= holdfast_store::utxo::MAX_TRANSFERS {
        return Err(TraceError::TooLarge {
            what: "receipts of the memo's destination",
            limit: holdfast_store::utxo::MAX_TRANSFERS,
        });
    }
    received.sort_by_key(|(op, height, position, _)| (*height, *position, op.vout));
    // Each transaction once, in chain order (an address can hold many receipts: a set, not
    // a scan of the list per receipt).
    let mut seen = std::collections::HashSet::new();
    let txids: Vec<B256> = received
        .iter()
        .map(|(op, ..)| op.txid)
        .filter(|t| seen.insert(*t))
        .collect();
    let mut found = Vec::new();
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
        found.extend(find_payouts(inbound, destination, candidates));
    }
    Ok(found)
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

#[cfg(test)]
mod tests {
    use holdfast_primitives::BlockRef;
    use holdfast_store::StoreError;
    use holdfast_store::utxo::{MAX_TRANSFERS, PlacedTx, Spender};

    use super::*;

    /// An index in which the destination has `receipts` receipts and nothing else.
    struct Busy {
        receipts: usize,
    }

    impl UtxoSource for Busy {
        fn head(&self, _: u64) -> Result<Option<BlockRef>, StoreError> {
            Ok(None)
        }
        fn transactions(&self, _: u64, txids: &[B256]) -> Result<Vec<Vec<PlacedTx>>, StoreError> {
            Ok(vec![Vec::new(); txids.len()])
        }
        fn spenders(
            &self,
            _: u64,
            ops: &[OutPointKey],
        ) -> Result<Vec<Option<Spender>>, StoreError> {
            Ok(vec![None; ops.len()])
        }
        fn unspent(&self, _: u64, ops: &[OutPointKey]) -> Result<Vec<bool>, StoreError> {
            Ok(vec![false; ops.len()])
        }
        fn received(
            &self,
            _: u64,
            _: &str,
            _: u64,
        ) -> Result<Vec<(OutPointKey, u64, u32, u64)>, StoreError> {
            Ok((0..self.receipts)
                .map(|i| {
                    let vout = u32::try_from(i).unwrap_or(u32::MAX);
                    let op = OutPointKey {
                        txid: B256::repeat_byte(7),
                        vout,
                    };
                    (op, 1, 0, 1)
                })
                .collect())
        }
    }

    #[test]
    fn a_destination_with_more_receipts_than_one_read_is_not_searched_partly() {
        let inbound = B256::repeat_byte(1);
        let e = thorchain_payouts(
            &Busy {
                receipts: MAX_TRANSFERS,
            },
            1,
            inbound,
            "bc1qbusy",
            0,
        )
        .expect_err("too many receipts");
        assert!(
            matches!(e, TraceError::TooLarge { limit, .. } if limit == MAX_TRANSFERS),
            "{e}"
        );
        let none =
            thorchain_payouts(&Busy { receipts: 10 }, 1, inbound, "bc1qbusy", 0).expect("searched");
        assert!(none.is_empty());
    }
}
