//! `StoreHistory` on the real embedded transfer store: what a wallet paid before a block,
//! its newest counterparties, and its cache growing block by block and reset when asked
//! about an earlier point.

use std::sync::Arc;

use alloy_primitives::{Address, B256, U256};
use holdfast_primitives::{Asset, BlockRef, Position, Transfer};
use holdfast_store::{EmbeddedStore, Store};
use holdfast_watch::detect::{History, Lookalike, StoreHistory, looks_like};

/// Block `n` of the tests' synthetic chain (also `replay.rs`'s).
pub(crate) fn block(n: u64) -> BlockRef {
    BlockRef {
        number: n,
        hash: B256::left_padding_from(&n.to_be_bytes()),
        parent_hash: B256::left_padding_from(&(n - 1).to_be_bytes()),
        timestamp: 1_700_000_000 + n * 12,
    }
}

fn pay(n: u64, i: u32, from: Address, to: Address, amount: u64) -> Transfer {
    let b = block(n);
    Transfer {
        chain_id: 1,
        block_number: n,
        block_hash: b.hash,
        timestamp: b.timestamp,
        tx_hash: B256::left_padding_from(&(n * 1000 + u64::from(i)).to_be_bytes()),
        tx_index: i,
        position: Position::Call {
            trace_address: vec![],
        },
        from,
        to,
        asset: Asset::Native,
        amount: U256::from(amount),
    }
}

#[test]
fn the_history_answers_from_the_store_before_the_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
    let (w, a, b, c) = (
        Address::repeat_byte(1),
        Address::repeat_byte(0xa),
        Address::repeat_byte(0xb),
        Address::repeat_byte(0xc),
    );
    let blocks = [
        vec![pay(1, 0, w, a, 5)],
        vec![pay(2, 0, w, b, 5), pay(2, 1, c, w, 5)],
        vec![pay(3, 0, w, c, 0), pay(3, 1, w, a, 1)],
        vec![pay(4, 0, w, c, 7)],
    ];
    for (i, t) in blocks.into_iter().enumerate() {
        store
            .apply_block(1, &block(i as u64 + 1), &t, &[])
            .expect("apply");
    }
    let h = StoreHistory::new(store);
    assert!(h.has_paid(1, w, a, 2).unwrap());
    assert!(
        !h.has_paid(1, w, b, 2).unwrap(),
        "paid in block 2, not before it"
    );
    assert!(h.has_paid(1, w, b, 3).unwrap());
    assert!(
        !h.has_paid(1, w, c, 4).unwrap(),
        "a zero-value transfer is no payment"
    );
    assert!(!h.has_paid(1, c, a, 5).unwrap());
    assert_eq!(
        h.counterparties(1, w, 4, 10).unwrap(),
        vec![a, b],
        "newest first"
    );
    assert_eq!(h.counterparties(1, w, 5, 10).unwrap(), vec![c, a, b]);
    assert_eq!(h.counterparties(1, w, 5, 1).unwrap(), vec![c]);
    // Asked about an earlier point again (a reorg, a replay): the cache is read anew.
    assert_eq!(h.counterparties(1, w, 2, 10).unwrap(), vec![a]);
    assert!(!h.has_paid(1, w, b, 2).unwrap());
    assert_eq!(h.token_balance(1, w, a, 4).unwrap(), None);
}

/// A random chain of blocks among a few wallets (some blocks empty), for the cache test.
/// The addresses the random blocks pay besides the wallets.
fn others() -> Vec<Address> {
    (0..200u8)
        .map(|k| Address::left_padding_from(&[0x70, k]))
        .collect()
}

fn random_blocks(seed: u64, from: u64, count: u64, tag: u64) -> Vec<(u64, Vec<Transfer>)> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let wallets: Vec<Address> = (1..=5u8).map(Address::repeat_byte).collect();
    (from..from + count)
        .map(|n| {
            let k = next() % 12; // 0..=11 transfers, 0 often enough to leave gaps
            let ts = (0..k as u32)
                .map(|i| {
                    let f = wallets[(next() % 5) as usize];
                    // A quarter to the other wallets, the rest to many more addresses: a
                    // wallet's past outgrows the short list the cache starts with.
                    let t = if next() % 4 == 0 {
                        wallets[(next() % 5) as usize]
                    } else {
                        others()[(next() % 200) as usize]
                    };
                    let mut p = pay(n, i, f, t, next() % 3);
                    // Another chain after a reorg: different transaction hashes.
                    p.tx_hash =
                        B256::left_padding_from(&(tag << 48 | n << 8 | u64::from(i)).to_be_bytes());
                    p
                })
                .collect();
            (n, ts)
        })
        .collect()
}

/// The cache that `observe` extends (with and without tracked wallets, observing from the
/// first block or a later one) answers exactly as a history that reads everything from the
/// store, block after block, across skipped empty blocks (as replay runs), a
/// reorg (a block at or below the last observed one), and blocks run by another instance
/// (a block past the next one).
#[test]
fn observed_blocks_extend_the_cache_exactly_as_the_store_would() {
    for seed in 1..=8u64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
        let wallets: Vec<Address> = (1..=5u8).map(Address::repeat_byte).collect();
        // Three caches: plain; tracking three of the wallets (their observed transfers kept
        // before they are asked about); tracking and starting to observe only at block 11
        // (a tracked wallet's first question reads what came before).
        let cached = StoreHistory::new(store.clone());
        let tracked = StoreHistory::new(store.clone());
        tracked.track(&wallets[..3]);
        let late = StoreHistory::new(store.clone());
        late.track(&wallets[1..4]);
        let histories: [(&str, &StoreHistory, u64); 3] = [
            ("plain", &cached, 0),
            ("tracking", &tracked, 0),
            ("tracking from block 11", &late, 11),
        ];
        let run = |blocks: &[(u64, Vec<Transfer>)]| {
            for (n, ts) in blocks {
                store.apply_block(1, &block(*n), ts, &[]).expect("apply");
                // The detectors ask about the block's wallets before it; the replay skips
                // empty blocks entirely.
                if ts.is_empty() && seed % 2 == 0 {
                    continue;
                }
                let fresh = StoreHistory::new(store.clone());
                for (name, cached, start) in histories {
                    if *n < start {
                        continue;
                    }
                    // Some wallets only: a wallet not asked about for a while must still be
                    // right when it is (its past then spans observed blocks).
                    for w in wallets
                        .iter()
                        .filter(|w| (u64::from(w[0]) * 31 + n * 17 + seed).is_multiple_of(3))
                    {
                        for to in wallets.iter().chain(&others()) {
                            assert_eq!(
                                cached.has_paid(1, *w, *to, *n).unwrap(),
                                fresh.has_paid(1, *w, *to, *n).unwrap(),
                                "{name}, seed {seed}, block {n}: has {w} paid {to}"
                            );
                        }
                        for limit in [3, 300] {
                            assert_eq!(
                                cached.counterparties(1, *w, *n, limit).unwrap(),
                                fresh.counterparties(1, *w, *n, limit).unwrap(),
                                "{name}, seed {seed}, block {n}: counterparties of {w} ({limit})"
                            );
                        }
                        // The poisoning detector's question, answered from the cache in
                        // place: the smallest counterparty the look-alike imitates, as the
                        // list says (many, some, none).
                        for (like, prefix, suffix) in [
                            (others()[0], 2, 0),
                            (Address::repeat_byte(3), 0, 1),
                            (others()[5], 0, 2),
                        ] {
                            let lookalike = Lookalike::new(like, prefix, suffix);
                            for limit in [3, 300] {
                                let want = fresh
                                    .counterparties(1, *w, *n, limit)
                                    .unwrap()
                                    .into_iter()
                                    .filter(|c| looks_like(like, *c, prefix, suffix))
                                    .min();
                                assert_eq!(
                                    cached.find_lookalike(1, *w, *n, limit, &lookalike).unwrap(),
                                    want,
                                    "{name}, seed {seed}, block {n}: look-alike of {like} among {w}'s {limit}"
                                );
                            }
                        }
                    }
                    cached.observe(1, *n, ts);
                }
            }
        };
        run(&random_blocks(seed, 1, 30, 1));
        // A reorg: blocks above 20 replaced by another branch.
        store.unwind_above(1, 20).expect("unwind");
        run(&random_blocks(seed.wrapping_mul(7919), 21, 15, 2));
        // Blocks another instance ran while this one had lost the chain's lease: stored,
        // never observed here; then this instance goes on after them.
        for (n, ts) in random_blocks(seed.wrapping_mul(31), 36, 10, 3) {
            store.apply_block(1, &block(n), &ts, &[]).expect("apply");
        }
        run(&random_blocks(seed.wrapping_mul(131), 46, 10, 4));
    }
}

/// A block holding more of a wallet's transfers than the store gives in one page (anyone can
/// emit that many token `Transfer` events naming a wallet, for a few cents of gas): the
/// history reads it whole, page after page from the place the last one ended at, and the
/// blocks after it. (At first such a block failed every question, and a failed question
/// stopped the watch; then the rest of the block was skipped and the past marked
/// incomplete.)
#[test]
fn a_block_with_more_of_a_wallets_transfers_than_a_page_is_read_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
    let (w, a, other, never) = (
        Address::repeat_byte(1),
        Address::repeat_byte(0xa),
        Address::repeat_byte(0xb),
        Address::repeat_byte(0xc),
    );
    let n = 2 * holdfast_store::MAX_LIMIT as u32 + 5;
    let dest = |i: u32| Address::left_padding_from(&(0x1_0000 + u64::from(i)).to_be_bytes());
    let stuffed: Vec<Transfer> = (0..n).map(|i| pay(1, i, w, dest(i), 1)).collect();
    store
        .apply_block(1, &block(1), &stuffed, &[])
        .expect("apply");
    store
        .apply_block(1, &block(2), &[pay(2, 0, w, a, 5)], &[])
        .expect("apply");
    store
        .apply_block(1, &block(3), &[pay(3, 0, other, w, 5)], &[])
        .expect("apply");
    let h = StoreHistory::new(store.clone());
    // The newest counterparties: block 2's, then the last of block 1's, beyond two pages.
    assert_eq!(
        h.counterparties(1, w, 3, 3).expect("answers"),
        vec![a, dest(n - 1), dest(n - 2)]
    );
    assert!(h.has_paid(1, w, a, 3).expect("answers"));
    for i in [0, n / 2, n - 1] {
        assert!(h.has_paid(1, w, dest(i), 3).expect("answers"), "{i}");
    }
    assert!(!h.has_paid(1, w, never, 3).expect("answers"));
    // Up to block 1 only: block 1's last payments are the newest.
    let h = StoreHistory::new(store.clone());
    assert_eq!(
        h.counterparties(1, w, 2, 2).expect("answers"),
        vec![dest(n - 1), dest(n - 2)]
    );
}
