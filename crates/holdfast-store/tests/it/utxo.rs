//! The UTXO index's behaviour suite, run on both backends: blocks with their changes applied
//! and unwound, every refusal leaving the index as it was, counts kept with the coins.

use alloy_primitives::B256;
use holdfast_primitives::BlockRef;
use holdfast_store::utxo::{
    EmbeddedUtxoStore, OutPointKey, PgUtxoStore, UtxoChanges, UtxoCounts, UtxoRecord, UtxoStore,
};
use holdfast_store::{Applied, StoreError};

pub(crate) const CHAIN: u64 = 2;

pub(crate) fn hash(n: u64, fork: u8) -> B256 {
    let mut h = [fork; 32];
    h[..8].copy_from_slice(&n.to_be_bytes());
    B256::from(h)
}

pub(crate) fn block(n: u64, fork: u8, parent_fork: u8) -> BlockRef {
    BlockRef {
        number: n,
        hash: hash(n, fork),
        parent_hash: if n == 0 {
            B256::ZERO
        } else {
            hash(n - 1, parent_fork)
        },
        timestamp: 1_300_000_000 + n * 600,
    }
}

pub(crate) fn op(tx: u8, vout: u32) -> OutPointKey {
    OutPointKey {
        txid: B256::repeat_byte(tx),
        vout,
    }
}

pub(crate) fn rec(value: u64, height: u64, coinbase: bool, tag: u8) -> UtxoRecord {
    UtxoRecord {
        value,
        height,
        coinbase,
        script: vec![0x00, 0x14, tag, tag, tag],
        address: tag.is_multiple_of(2).then(|| format!("bcrt1q{tag:02x}")),
    }
}

/// A three-block chain: 1 mints A:0 and A:1; 2 spends A:0 into B:0 and B:1; 3 spends B:1
/// and A:1 into C:0 (and its coinbase D:0).
fn chain() -> Vec<(BlockRef, UtxoChanges)> {
    let a0 = (op(0xa, 0), rec(50_0000_0000, 1, true, 1));
    let a1 = (op(0xa, 1), rec(1_000, 1, true, 2));
    let b0 = (op(0xb, 0), rec(30_0000_0000, 2, false, 3));
    let b1 = (op(0xb, 1), rec(19_9999_0000, 2, false, 4));
    let c0 = (op(0xc, 0), rec(19_9998_0000, 3, false, 5));
    let d0 = (op(0xd, 0), rec(50_0001_1000, 3, true, 6));
    vec![
        (
            block(1, 0, 0),
            UtxoChanges {
                created: vec![a0.clone(), a1.clone()],
                ..Default::default()
            },
        ),
        (
            block(2, 0, 0),
            UtxoChanges {
                created: vec![b0, b1.clone()],
                spent: vec![a0],
                ..Default::default()
            },
        ),
        (
            block(3, 0, 0),
            UtxoChanges {
                created: vec![c0, d0],
                spent: vec![b1, a1],
                ..Default::default()
            },
        ),
    ]
}

/// Everything the suite can see of the index: head, counts, and each outpoint the chain ever
/// had.
fn state(s: &dyn UtxoStore) -> (Option<BlockRef>, UtxoCounts, Vec<Option<UtxoRecord>>) {
    let ops = [
        op(0xa, 0),
        op(0xa, 1),
        op(0xb, 0),
        op(0xb, 1),
        op(0xc, 0),
        op(0xd, 0),
        op(0xe, 0),
    ];
    (
        s.head(CHAIN).expect("head"),
        s.counts(CHAIN).expect("counts"),
        ops.iter()
            .map(|o| s.utxo(CHAIN, o).expect("utxo"))
            .collect(),
    )
}

fn apply_unwind_and_reapply(s: &dyn UtxoStore) {
    let blocks = chain();
    let mut states = vec![state(s)];
    for (b, c) in &blocks {
        assert_eq!(s.apply_block(CHAIN, b, c).expect("apply"), Applied::Written);
        states.push(state(s));
    }
    assert_eq!(
        s.counts(CHAIN).expect("counts"),
        UtxoCounts {
            outputs: 3,
            total: 30_0000_0000 + 19_9998_0000 + 50_0001_1000
        }
    );
    assert_eq!(s.utxo(CHAIN, &op(0xa, 0)).expect("utxo"), None, "spent");
    assert_eq!(
        s.utxo(CHAIN, &op(0xc, 0)).expect("utxo"),
        Some(rec(19_9998_0000, 3, false, 5))
    );
    // The same block again changes nothing.
    assert_eq!(
        s.apply_block(CHAIN, &blocks[2].0, &blocks[2].1)
            .expect("again"),
        Applied::AlreadyPresent
    );
    assert_eq!(state(s), states[3]);
    // A batch read answers as single reads do, in order, with the gaps.
    let ops = [op(0xc, 0), op(0xa, 0), op(0xf, 9), op(0xd, 0), op(0xc, 0)];
    let one: Vec<_> = ops
        .iter()
        .map(|o| s.utxo(CHAIN, o).expect("utxo"))
        .collect();
    assert_eq!(s.utxos(CHAIN, &ops).expect("utxos"), one);
    assert_eq!(one.iter().filter(|r| r.is_some()).count(), 3);
    assert_eq!(s.utxos(CHAIN, &[]).expect("none"), vec![]);
    // Unwinding restores each earlier state exactly.
    let removed = s.unwind_above(CHAIN, 1).expect("unwind");
    assert_eq!(removed, vec![blocks[1].0, blocks[2].0]);
    assert_eq!(state(s), states[1]);
    assert_eq!(s.unwind_above(CHAIN, 1).expect("nothing above"), vec![]);
    // Another branch on block 1.
    let e0 = (op(0xe, 0), rec(50_0000_0000, 2, false, 7));
    let other = UtxoChanges {
        created: vec![e0],
        spent: vec![(op(0xa, 0), rec(50_0000_0000, 1, true, 1))],
        ..Default::default()
    };
    s.apply_block(CHAIN, &block(2, 9, 0), &other)
        .expect("other branch");
    assert_eq!(s.utxo(CHAIN, &op(0xb, 0)).expect("utxo"), None);
    assert_eq!(
        s.counts(CHAIN).expect("counts"),
        UtxoCounts {
            outputs: 2,
            total: 50_0000_0000 + 1_000
        }
    );
    s.unwind_above(CHAIN, 0).expect("unwind all");
    assert_eq!(state(s), states[0]);
    assert_eq!(s.counts(CHAIN).expect("counts"), UtxoCounts::default());
    // Chains are separate.
    s.apply_block(CHAIN + 1, &blocks[0].0, &blocks[0].1)
        .expect("other chain");
    assert_eq!(state(s), states[0]);
}

/// Every refusal names the block and leaves the index as it was.
fn refusals_change_nothing(s: &dyn UtxoStore) {
    let blocks = chain();
    s.apply_block(CHAIN, &blocks[0].0, &blocks[0].1)
        .expect("block 1");
    let before = state(s);
    let expect_invalid = |b: &BlockRef, c: &UtxoChanges, needle: &str| {
        let e = s.apply_block(CHAIN, b, c).expect_err(needle);
        let msg = e.to_string();
        assert!(msg.contains(needle), "{msg}");
        assert!(
            msg.starts_with(&format!("chain {CHAIN} block {}", b.number)),
            "{msg}"
        );
        assert_eq!(state(s), before, "{needle}");
    };
    // Spending what the index does not hold, or holds with other content.
    let mut c = blocks[1].1.clone();
    c.spent[0].0 = op(0xf, 0);
    expect_invalid(&blocks[1].0, &c, "is not unspent in the index");
    let mut c = blocks[1].1.clone();
    c.spent[0].1.value += 1;
    expect_invalid(&blocks[1].0, &c, "is held with other content");
    // Spending something valid while also spending something missing: nothing at all spent.
    let mut c = blocks[1].1.clone();
    c.spent.push((op(0xf, 1), rec(1, 1, false, 9)));
    expect_invalid(
        &blocks[1].0,
        &c,
        "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f:1 is not unspent",
    );
    // Creating what is unspent, without replacing it.
    let mut c = blocks[1].1.clone();
    c.created.push((op(0xa, 1), rec(5, 2, false, 9)));
    expect_invalid(
        &blocks[1].0,
        &c,
        "is already unspent in the index and not listed as replaced",
    );
    // Records that cannot be right on their own.
    let mut c = blocks[1].1.clone();
    c.created[0].1.height = 7;
    expect_invalid(&blocks[1].0, &c, "above the block");
    let mut c = blocks[1].1.clone();
    c.created.push(c.created[0].clone());
    expect_invalid(&blocks[1].0, &c, "listed twice");
    // A replaced output the block does not create again; an output spent and created.
    let mut c = blocks[1].1.clone();
    c.replaced
        .push((op(0xa, 0), blocks[0].1.created[0].1.clone()));
    expect_invalid(&blocks[1].0, &c, "is not created again by the block");
    let mut c = blocks[1].1.clone();
    let created = c.created[0].clone();
    c.spent.push(created);
    expect_invalid(&blocks[1].0, &c, "is both spent and created by the block");
    // A gap, a parent mismatch, a conflict.
    expect_invalid(
        &blocks[2].0,
        &UtxoChanges::default(),
        "the next block must be 2",
    );
    let e = s
        .apply_block(CHAIN, &block(2, 0, 5), &blocks[1].1)
        .expect_err("parent");
    assert!(
        matches!(e, StoreError::ParentMismatch { number: 2, .. }),
        "{e}"
    );
    let e = s
        .apply_block(CHAIN, &block(1, 4, 0), &blocks[0].1)
        .expect_err("conflict");
    assert!(matches!(e, StoreError::Conflict { number: 1, .. }), "{e}");
    assert_eq!(state(s), before);
}

/// The duplicate coinbase (BIP30): a new output on an unspent outpoint replaces it, and the
/// unwind restores the first.
fn a_replacement_is_undone(s: &dyn UtxoStore) {
    let first = (op(0xe3, 0), rec(50_0000_0000, 1, true, 1));
    s.apply_block(
        CHAIN,
        &block(1, 0, 0),
        &UtxoChanges {
            created: vec![first.clone()],
            ..Default::default()
        },
    )
    .expect("first");
    let second = (op(0xe3, 0), rec(50_0000_0000, 2, true, 1));
    let c = UtxoChanges {
        created: vec![second.clone()],
        replaced: vec![first.clone()],
        ..Default::default()
    };
    s.apply_block(CHAIN, &block(2, 0, 0), &c).expect("second");
    assert_eq!(s.utxo(CHAIN, &first.0).expect("utxo"), Some(second.1));
    assert_eq!(s.counts(CHAIN).expect("counts").outputs, 1);
    s.unwind_above(CHAIN, 1).expect("unwind");
    assert_eq!(s.utxo(CHAIN, &first.0).expect("utxo"), Some(first.1));
    assert_eq!(
        s.counts(CHAIN).expect("counts"),
        UtxoCounts {
            outputs: 1,
            total: 50_0000_0000
        }
    );
}

/// A store that keeps the undo records of the newest 2 blocks: unwinding within them works,
/// below them is refused whole.
fn pruned_undo_records_refuse_a_deeper_unwind(s: &dyn UtxoStore) {
    let blocks = chain();
    let mut states = vec![state(s)];
    for (b, c) in &blocks {
        s.apply_block(CHAIN, b, c).expect("apply");
        states.push(state(s));
    }
    // Block 1's undo record went with block 3's write.
    let e = s
        .unwind_above(CHAIN, 0)
        .expect_err("block 1's undo record is pruned");
    assert!(e.to_string().contains("its undo record was pruned"), "{e}");
    assert!(
        e.to_string().starts_with(&format!("chain {CHAIN} block 1")),
        "{e}"
    );
    assert_eq!(state(s), states[3], "nothing unwound");
    s.unwind_above(CHAIN, 1)
        .expect("blocks 2 and 3 keep theirs");
    assert_eq!(state(s), states[1]);
}

fn suite(open: impl Fn(Option<u64>) -> Box<dyn UtxoStore>) {
    apply_unwind_and_reapply(&*open(None));
    refusals_change_nothing(&*open(None));
    a_replacement_is_undone(&*open(None));
    pruned_undo_records_refuse_a_deeper_unwind(&*open(Some(2)));
    // Keeping more than the chain holds prunes nothing.
    apply_unwind_and_reapply(&*open(Some(10)));
}

#[test]
fn utxo_embedded() {
    let dirs = std::cell::RefCell::new(Vec::new());
    suite(|keep| {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = EmbeddedUtxoStore::open_with(dir.path(), keep).expect("open");
        dirs.borrow_mut().push(dir);
        Box::new(s)
    });
}

#[test]
fn utxo_postgres() {
    let Some(_) = crate::pg_db() else { return };
    suite(|keep| {
        Box::new(PgUtxoStore::connect_with(&crate::pg_db().expect("pg"), keep).expect("connect"))
    });
}

#[test]
fn utxo_embedded_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocks = chain();
    let before = {
        let s = EmbeddedUtxoStore::open(dir.path()).expect("open");
        for (b, c) in &blocks {
            s.apply_block(CHAIN, b, c).expect("apply");
        }
        state(&s)
    };
    let s = EmbeddedUtxoStore::open(dir.path()).expect("reopen");
    assert_eq!(state(&s), before);
    s.unwind_above(CHAIN, 2).expect("unwind after reopen");
    assert_eq!(
        s.utxo(CHAIN, &op(0xb, 1)).expect("utxo"),
        Some(rec(19_9999_0000, 2, false, 4))
    );
}
