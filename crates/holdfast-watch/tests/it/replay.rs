//! `replay::scan_blocks`, the page reader `holdfast watch replay` runs the rules over, on the
//! real embedded store: every block whole and in order although pages of `MAX_LIMIT`
//! transfers end inside blocks, blocks larger than a page read whole across pages,
//! stretches without transfers skipped, a block above the bound refused naming it.

use alloy_primitives::{Address, B256, U256};
use holdfast_primitives::{Asset, Position, Transfer};
use holdfast_store::{EmbeddedStore, Store};
use holdfast_watch::replay::{ReplayError, scan_blocks, scan_blocks_up_to};

use super::history::block;

fn transfers(n: u64, count: u32) -> Vec<Transfer> {
    let b = block(n);
    (0..count)
        .map(|i| Transfer {
            chain_id: 1,
            block_number: n,
            block_hash: b.hash,
            timestamp: b.timestamp,
            tx_hash: B256::left_padding_from(&(n << 32 | u64::from(i)).to_be_bytes()),
            tx_index: i,
            position: Position::Call {
                trace_address: vec![],
            },
            from: Address::repeat_byte(1),
            to: Address::left_padding_from(&u64::from(i).to_be_bytes()),
            asset: Asset::Native,
            amount: U256::from(1 + i),
        })
        .collect()
}

#[test]
fn every_block_comes_whole_and_in_order_across_pages_and_gaps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("store");
    // Pages of MAX_LIMIT end inside blocks 3 and 6; blocks 7–9 have no transfer; block 11
    // holds more than a page, block 12 two and a half (anyone can fill a block with token
    // events naming one address for cents: before, replay stopped at such a block).
    let sizes: [u32; 12] = [
        4_000, 4_000, 4_000, 1, 3_000, 9_000, 0, 0, 0, 250, 10_001, 25_000,
    ];
    for (i, size) in sizes.iter().enumerate() {
        let n = i as u64 + 1;
        store
            .apply_block(1, &block(n), &transfers(n, *size), &[])
            .expect("apply");
    }
    let mut got: Vec<(u64, usize)> = Vec::new();
    let mut done = Vec::new();
    scan_blocks(&store, 1, 1, 12, &mut |n| done.push(n), &mut |b| {
        let n = b[0].block_number;
        assert!(b.iter().all(|t| t.block_number == n), "one block at a time");
        assert!(
            b.windows(2).all(|w| w[0].tx_index < w[1].tx_index),
            "in block order"
        );
        got.push((n, b.len()));
        Ok(())
    })
    .expect("scan");
    let want: Vec<(u64, usize)> = sizes
        .iter()
        .enumerate()
        .filter(|(_, s)| **s > 0)
        .map(|(i, s)| (i as u64 + 1, *s as usize))
        .collect();
    assert_eq!(got, want);
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
    assert_eq!(done.last(), Some(&12), "progress reaches the last block");

    // A range starting inside the gap: the first block with transfers after it.
    let mut got = Vec::new();
    scan_blocks(&store, 1, 7, 10, &mut |_| {}, &mut |b| {
        got.push((b[0].block_number, b.len()));
        Ok(())
    })
    .expect("scan");
    assert_eq!(got, vec![(10, 250)]);

    // Above the bound on one block's transfers: refused, naming it, after the blocks before
    // it were given.
    let mut got = Vec::new();
    let e = scan_blocks_up_to(&store, 1, (10, 12), 20_000, &mut |_| {}, &mut |b| {
        got.push(b[0].block_number);
        Ok(())
    })
    .expect_err("too large");
    assert!(
        matches!(
            e,
            ReplayError::BlockTooLarge {
                block: 12,
                max: 20_000
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("block 12"), "{e}");
    assert!(e.to_string().contains("20000"), "names the bound: {e}");
    assert_eq!(got, vec![10, 11]);

    // An error from the caller stops the scan and comes back as it was.
    let mut calls = 0;
    let e = scan_blocks(&store, 1, 1, 10, &mut |_| {}, &mut |_| {
        calls += 1;
        Err(ReplayError::BlockTooLarge { block: 999, max: 1 })
    })
    .expect_err("stopped");
    assert!(
        matches!(e, ReplayError::BlockTooLarge { block: 999, .. }),
        "{e}"
    );
    assert_eq!(calls, 1);
}
