//! THORChain memos (`holdfast_bridge::thorchain::Memo::parse_bytes`: an OP_RETURN's data or a
//! router event's memo, both written by whoever sends the transaction), OP_RETURN scripts
//! (`op_return_data`, as the tracer reads a payout's memo from the UTXO index) and the
//! router's events (`RouterEvent::decode`) built from the same bytes. The first byte picks the
//! path: 0 mod 4 a memo; 2 mod 4 a script whose data, if any, is parsed as a memo; odd, a log
//! whose first topic is the router's `Deposit` or `TransferOut` signature.
//!
//! Checks: no panic; bounded memory; a refused memo names its field and its message is fit
//! for a person; an accepted one longer than THORChain's limit is impossible; the asset a
//! swap pays out re-parses from its own notation to the same asset.

use alloy_primitives::{Address, B256, Bytes, Log};
use holdfast_bridge::thorchain::memo::MAX_MEMO_BYTES;
use holdfast_bridge::thorchain::{Asset, Memo, RouterEvent, op_return_data};
use holdfast_fuzz::{Bound, bounded, check_field, check_message, run};

fn memo(bytes: &[u8]) {
    match Memo::parse_bytes(bytes) {
        Ok(m) => {
            assert!(bytes.len() <= MAX_MEMO_BYTES, "a memo over the limit was accepted");
            if let Some((asset, to)) = m.exit() {
                assert!(!to.is_empty(), "an exit to an empty address");
                let again = Asset::parse("asset", &asset.to_string()).expect("own notation");
                assert_eq!(&again, asset, "the asset does not round-trip");
            }
        }
        Err(e) => {
            let message = e.to_string();
            check_message("thorchain memo", &message);
            check_field("thorchain memo", e.field, &message);
        }
    }
}

fn main() {
    run(|data| {
        let Some((&mode, rest)) = data.split_first() else {
            return;
        };
        bounded(Bound::DEFAULT, rest, || {
            if mode % 4 == 0 {
                memo(rest);
                return;
            }
            if mode % 4 == 2 {
                if let Some(data) = op_return_data(rest) {
                    assert!(data.len() < rest.len(), "more data than script");
                    memo(&data);
                }
                return;
            }
            let signature = if mode % 4 == 1 {
                "Deposit(address,address,uint256,string)"
            } else {
                "TransferOut(address,address,address,uint256,string)"
            };
            let mut topics = vec![alloy_primitives::keccak256(signature)];
            let (head, body) = rest.split_at(rest.len().min(64));
            topics.extend(head.chunks_exact(32).map(B256::from_slice));
            let log = Log::new(Address::ZERO, topics, Bytes::copy_from_slice(body)).expect("≤ 3 topics");
            if let Some(Ok(event)) = RouterEvent::decode(&log)
                && let Err(e) = event.memo()
            {
                check_message("thorchain memo", &e.to_string());
                check_field("thorchain memo", e.field, &e.to_string());
            }
        });
    });
}
