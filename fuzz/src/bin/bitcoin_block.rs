//! Raw Bitcoin-family blocks (`holdfast_bitcoin::Block::from_raw`, what `RpcSource` does with
//! a `getblock <hash> 0` answer) and Bitcoin Core's `blk*.dat` framing (`BlkFile`). The first
//! byte picks the path: 0 a Bitcoin mainnet block, 1 a Litecoin regtest block (its address
//! encoders), 2 a `blk*.dat` file of Bitcoin mainnet blocks.
//!
//! Checks: no panic; bounded memory; an accepted block is exactly its bytes (rust-bitcoin
//! re-encodes it to them) and connecting it to an empty UTXO set succeeds or says why (a
//! missing input, an overspend within the block); a refused block's error names its field, and its block once 80 bytes are
//! there; every error is fit for a person.

use holdfast_bitcoin::blkfile::BlkFile;
use holdfast_bitcoin::utxo::{ConnectError, MemoryUtxoSet, connect};
use holdfast_bitcoin::{Block, BlockError, Network};
use holdfast_fuzz::{Bound, bounded, check_field, check_message, run};

fn block(network: Network, bytes: &[u8]) {
    match Block::from_raw(network, bytes, Some(1)) {
        Ok(mut b) => {
            let decoded = holdfast_bitcoin::decode_block(bytes, None).expect("decoded once");
            assert_eq!(
                holdfast_bitcoin::bitcoin::consensus::serialize(&decoded),
                bytes,
                "an accepted block is not exactly its bytes"
            );
            match connect(&mut b, 1, &MemoryUtxoSet::new()) {
                Ok(_) => {}
                Err(e @ ConnectError::View { .. }) => panic!("an in-memory set failed: {e}"),
                Err(e) => check_message("bitcoin connect", &e.to_string()),
            }
        }
        Err(e) => {
            let message = e.to_string();
            check_message("bitcoin block", &message);
            let (field, place) = match &e {
                BlockError::Decode(d) => (d.field.as_str(), &d.place),
                BlockError::Invalid { field, place, .. } => (field.as_str(), place),
            };
            check_field("bitcoin block", field, &message);
            assert_eq!(
                place.block.is_some(),
                bytes.len() >= 80,
                "the block is named iff its header is there: {message}"
            );
        }
    }
}

fn main() {
    run(|data| {
        let Some((&mode, rest)) = data.split_first() else {
            return;
        };
        bounded(Bound::DEFAULT, rest, || match mode % 3 {
            0 => block(Network::Bitcoin, rest),
            1 => block(Network::LitecoinRegtest, rest),
            _ => {
                for frame in BlkFile::new("fuzz.dat", rest, Network::Bitcoin) {
                    match frame {
                        Ok(f) => block(Network::Bitcoin, f.bytes),
                        Err(e) => {
                            let message = e.to_string();
                            check_message("blk file", &message);
                            assert!(message.starts_with("fuzz.dat: byte "), "{message}");
                        }
                    }
                }
            }
        });
    });
}
