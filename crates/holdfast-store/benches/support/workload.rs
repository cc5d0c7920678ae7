//! The benchmarks' workload: blocks of 250 transfers, each its own transaction, a third
//! native and the rest ERC-20 of three tokens, between addresses of a 1 M pool (a tenth of
//! the senders from 1 000 hot addresses, like exchanges). Deterministic (SplitMix64).

use alloy_primitives::{Address, B256, U256};
use holdfast_primitives::{Asset, BlockRef, Position, Transfer};
use holdfast_store::BlockData;

/// SplitMix64.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

pub const PER_BLOCK: usize = 250;
pub const BLOCKS_PER_WRITE: usize = 40;
pub const ADDRESSES: u64 = 1_000_000;

pub fn address(i: u64) -> Address {
    let mut b = [0u8; 20];
    b[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
    b[12..].copy_from_slice(&i.to_be_bytes());
    Address::from(b)
}

pub fn hash(n: u64) -> B256 {
    let mut h = [0x11u8; 32];
    h[..8].copy_from_slice(&n.to_be_bytes());
    B256::from(h)
}

pub fn tx_hash(n: u64, i: u64) -> B256 {
    B256::from(U256::from(n << 16 | i))
}

/// Block `n`: 250 transfers, each its own transaction, a third native and the rest ERC-20
/// of three tokens, between addresses of a 1 M pool (a tenth of the senders from 1 000 hot
/// addresses, like exchanges).
pub fn block(n: u64, rng: &mut Rng) -> BlockData {
    let b = BlockRef {
        number: n,
        hash: hash(n),
        parent_hash: if n == 0 { B256::ZERO } else { hash(n - 1) },
        timestamp: 1_700_000_000 + 12 * n,
    };
    let tokens = [
        address(u64::MAX),
        address(u64::MAX - 1),
        address(u64::MAX - 2),
    ];
    let transfers = (0..PER_BLOCK)
        .map(|i| {
            let r = rng.next();
            let from = if r.is_multiple_of(10) {
                address(r % 1000)
            } else {
                address(rng.next() % ADDRESSES)
            };
            let native = r.is_multiple_of(3);
            Transfer {
                chain_id: 1,
                block_number: n,
                block_hash: b.hash,
                timestamp: b.timestamp,
                tx_hash: tx_hash(n, i as u64),
                tx_index: i as u32,
                position: if native {
                    Position::Call {
                        trace_address: vec![],
                    }
                } else {
                    Position::Log {
                        log_index: i as u32,
                        item: 0,
                    }
                },
                from,
                to: address(rng.next() % ADDRESSES),
                asset: if native {
                    Asset::Native
                } else {
                    Asset::Erc20 {
                        token: tokens[(r % 3) as usize],
                    }
                },
                amount: U256::from(rng.next() >> 4),
            }
        })
        .collect();
    BlockData {
        block: b,
        transfers,
        conversions: Vec::new(),
    }
}

/// A random sender: one of the hot addresses a tenth of the time.
pub fn sender(rng: &mut Rng) -> Address {
    let r = rng.next();
    if r.is_multiple_of(10) {
        address(r % 1000)
    } else {
        address(rng.next() % ADDRESSES)
    }
}
