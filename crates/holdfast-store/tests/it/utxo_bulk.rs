//! Bulk writes of the UTXO index (`UtxoStore::apply_blocks`, the backfill's path): the same
//! index as writing the blocks one by one, on both backends; on the embedded index, no undo
//! records (an unwind reaching a bulk-written block is refused whole), and a write interrupted
//! between its steps leaves the head where it was and, made again, gives the index an
//! uninterrupted write gives, byte for byte.

use holdfast_primitives::BlockRef;
use holdfast_store::utxo::{
    EmbeddedUtxoStore, OutPointKey, PgUtxoStore, TxOutput, TxRecord, UtxoChanges, UtxoRecord,
    UtxoStore,
};
use holdfast_store::{Applied, StoreError};

use crate::utxo::{CHAIN, block, op, rec};
use crate::utxo_txs::{View, chain, view};

/// Every outpoint of the suite's chain and of [`coinbase_block`].
fn outpoints() -> Vec<OutPointKey> {
    [
        (0xa, 0),
        (0xa, 1),
        (0xb, 0),
        (0xb, 1),
        (0xc, 0),
        (0xd, 0),
        (0xe, 0),
        (0x40, 0),
    ]
    .map(|(t, v)| op(t, v))
    .to_vec()
}

/// Block 4: a coinbase paying `bcrt1q0a`.
fn coinbase_block() -> (BlockRef, UtxoChanges) {
    let out = (op(0x40, 0), rec(50_0000_0000, 4, true, 0x0a));
    (
        block(4, 0, 0),
        UtxoChanges {
            created: vec![out.clone()],
            transactions: vec![TxRecord {
                txid: out.0.txid,
                coinbase: true,
                inputs: vec![],
                outputs: vec![TxOutput {
                    value: out.1.value,
                    script: out.1.script.clone(),
                    address: out.1.address.clone(),
                }],
            }],
            ..Default::default()
        },
    )
}

const ADDRESSES: [&str; 5] = ["bcrt1q02", "bcrt1q04", "bcrt1q06", "bcrt1q08", "bcrt1q0a"];

/// What the index answers: head, counts, every outpoint, the history and the clusters of the
/// chain's addresses (block 3's transaction C merges `bcrt1q02` and `bcrt1q04`), and
/// [`Reads`].
type State = (
    Option<BlockRef>,
    holdfast_store::utxo::UtxoCounts,
    Vec<Option<UtxoRecord>>,
    View,
    Vec<(String, u64)>,
    Reads,
);

/// The reads the rest of [`State`] leaves out: the blocks by number, every outpoint read
/// alone, each address's transfers from height 2 on, and the members of each address's
/// cluster.
type Reads = (
    Vec<Option<BlockRef>>,
    Vec<Option<UtxoRecord>>,
    Vec<Vec<holdfast_store::utxo::AddressTransfer>>,
    Vec<Vec<String>>,
);

fn state(s: &dyn UtxoStore) -> State {
    let clusters: Vec<(String, u64)> = ADDRESSES
        .iter()
        .map(|a| {
            let c = s.cluster(CHAIN, a).expect("cluster");
            (c.root, c.size)
        })
        .collect();
    let reads = (
        (0..5).map(|n| s.block(CHAIN, n).expect("block")).collect(),
        outpoints()
            .iter()
            .map(|o| s.utxo(CHAIN, o).expect("utxo"))
            .collect(),
        ADDRESSES
            .iter()
            .map(|a| s.address_transfers(CHAIN, a, 2, 100).expect("transfers"))
            .collect(),
        clusters
            .iter()
            .map(|(root, _)| s.cluster_members(CHAIN, root, 100).expect("members"))
            .collect(),
    );
    (
        s.head(CHAIN).expect("head"),
        s.counts(CHAIN).expect("counts"),
        s.utxos(CHAIN, &outpoints()).expect("utxos"),
        view(s),
        clusters,
        reads,
    )
}

/// One call for all three blocks (block 3 spends an output block 2 created: it never reaches
/// the coins), or block 1 alone and then a call for 2 and 3: the index written one by one.
/// The same call again, or a call for blocks already stored, changes nothing.
fn same_index_as_one_by_one(open: &dyn Fn() -> Box<dyn UtxoStore>) {
    let blocks = chain();
    let one = open();
    for (b, c) in &blocks {
        one.apply_block(CHAIN, b, c).expect("apply");
    }
    let expected = state(&*one);
    assert_eq!(expected.4[0], expected.4[1], "C merged 02 and 04");
    assert_eq!(expected.4[0].1, 2);

    let bulk = open();
    assert_eq!(
        bulk.apply_blocks(CHAIN, &blocks).expect("bulk"),
        vec![Applied::Written; 3]
    );
    assert_eq!(state(&*bulk), expected);
    assert_eq!(
        bulk.apply_blocks(CHAIN, &blocks).expect("again"),
        vec![Applied::AlreadyPresent; 3]
    );
    assert_eq!(state(&*bulk), expected);

    let split = open();
    split
        .apply_blocks(CHAIN, &blocks[..1])
        .expect("block 1 in bulk");
    assert_eq!(
        split
            .apply_blocks(CHAIN, &blocks)
            .expect("1 stored, 2 and 3"),
        vec![Applied::AlreadyPresent, Applied::Written, Applied::Written]
    );
    assert_eq!(state(&*split), expected);
    // Blocks written one by one after bulk ones, as ingestion goes on near the tip.
    let (b4, c4) = coinbase_block();
    one.apply_block(CHAIN, &b4, &c4).expect("4");
    split.apply_block(CHAIN, &b4, &c4).expect("4 after bulk");
    assert_eq!(state(&*split), state(&*one));
}

/// Bad calls are refused whole, naming the block: blocks not consecutive, a first block not
/// following the head, a block whose parent is not the block before it, an output spent that
/// neither the index nor an earlier block of the call holds, an output spent that the index
/// holds with other content, and a block conflicting with a stored one.
fn bad_calls_are_refused_whole(open: &dyn Fn() -> Box<dyn UtxoStore>) {
    let blocks = chain();
    let s = open();
    s.apply_block(CHAIN, &blocks[0].0, &blocks[0].1)
        .expect("block 1");
    let before = state(&*s);
    let refused = |call: &[(BlockRef, UtxoChanges)], says: &str| {
        let e = s.apply_blocks(CHAIN, call).expect_err(says);
        assert!(e.to_string().contains(says), "{e}");
        assert_eq!(state(&*s), before, "nothing written: {e}");
    };
    let gap = vec![blocks[1].clone(), blocks[0].clone()];
    refused(&gap, "consecutive");
    refused(&blocks[2..], "the next block must be 2");
    let mut orphan = blocks[1..].to_vec();
    orphan[1].0 = block(3, 0, 9);
    refused(&orphan, "parent");
    // Block 3 spends B:1, which block 2 created; without block 2 it is nowhere.
    let mut missing = blocks[1..].to_vec();
    missing[0].1.created.retain(|(o, _)| *o != op(0xb, 1));
    missing[0].1.transactions[1].outputs.truncate(1);
    let e = s.apply_blocks(CHAIN, &missing).expect_err("B:1 missing");
    assert!(
        matches!(e, StoreError::Invalid { number: 3, .. }),
        "names block 3: {e}"
    );
    assert!(e.to_string().contains("not unspent"), "{e}");
    assert_eq!(state(&*s), before);
    // Block 2 spends A:0, which the index holds, but as created at another height (0, not 1).
    let mut other = blocks[1..].to_vec();
    other[0].1.spent[0].1.height = 0;
    let e = s.apply_blocks(CHAIN, &other).expect_err("A:0 differs");
    assert!(
        matches!(e, StoreError::Invalid { number: 2, .. }),
        "names block 2: {e}"
    );
    assert!(e.to_string().contains("held with other content"), "{e}");
    assert_eq!(state(&*s), before);
    let conflict = vec![(block(1, 7, 0), blocks[0].1.clone())];
    let e = s.apply_blocks(CHAIN, &conflict).expect_err("conflict");
    assert!(matches!(e, StoreError::Conflict { number: 1, .. }), "{e}");
    assert_eq!(state(&*s), before);
}

/// Blocks 2 and 3 written in bulk keeping their undo records (a backfill's last blocks, which
/// a reorg may reach): unwinding them gives the index of block 1 alone, as written one by one.
fn kept_undo_records_unwind(open: &dyn Fn() -> Box<dyn UtxoStore>) {
    let blocks = chain();
    let one = open();
    one.apply_block(CHAIN, &blocks[0].0, &blocks[0].1)
        .expect("block 1");
    let at_1 = state(&*one);
    let bulk = open();
    bulk.apply_blocks_keeping_undo(CHAIN, &blocks, 2)
        .expect("bulk");
    for (b, c) in &blocks[1..] {
        one.apply_block(CHAIN, b, c).expect("apply");
    }
    assert_eq!(state(&*bulk), state(&*one));
    let unwound = bulk.unwind_above(CHAIN, 1).expect("unwind 2 and 3");
    assert_eq!(
        unwound.iter().map(|b| b.number).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(state(&*bulk), at_1);
    // And written again, now one by one.
    for (b, c) in &blocks[1..] {
        bulk.apply_block(CHAIN, b, c).expect("again");
    }
    assert_eq!(state(&*bulk), state(&*one));
}

fn suite(open: &dyn Fn() -> Box<dyn UtxoStore>) {
    same_index_as_one_by_one(open);
    bad_calls_are_refused_whole(open);
    kept_undo_records_unwind(open);
}

#[test]
fn utxo_bulk_embedded() {
    let dirs = std::cell::RefCell::new(Vec::new());
    suite(&|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = EmbeddedUtxoStore::open(dir.path()).expect("open");
        dirs.borrow_mut().push(dir);
        Box::new(s)
    });
}

#[test]
fn utxo_bulk_postgres() {
    let Some(_) = crate::pg_db() else { return };
    suite(&|| Box::new(PgUtxoStore::connect(&crate::pg_db().expect("pg")).expect("connect")));
}

/// The key of the bulk writes' mark in `utxo.coins` (outpoint `ff…ff:4294967295`): the one
/// entry a bulk write leaves that a write one by one does not.
fn is_mark(space: &str, key: &[u8]) -> bool {
    space == "utxo.coins" && key.ends_with(&[0xff; 36])
}

type Contents = Vec<(&'static str, Vec<(Vec<u8>, Vec<u8>)>)>;

/// `contents` without the entries `drop` names (keyspace, key).
fn without(contents: Contents, drop: impl Fn(&str, &[u8]) -> bool) -> Contents {
    contents
        .into_iter()
        .map(|(space, entries)| {
            let kept = entries
                .into_iter()
                .filter(|(k, _)| !drop(space, k))
                .collect();
            (space, kept)
        })
        .collect()
}

/// Issue 16: a backfill's last blocks written in bulk keeping their undo records
/// (`apply_blocks_keeping_undo`) give, byte for byte, the index `apply_block` writes block by
/// block (undo records and cluster undo records included; only the bulk write's mark added),
/// whichever block the records start from, with every block's records kept or only the
/// newest one's (`KeepUndo`: the call does not write those its own later blocks would drop).
/// An unwind then reaches exactly the blocks that kept records, refused whole below them,
/// and gives the one-by-one index unwound as far, byte for byte (the mark gone with it).
#[test]
fn utxo_bulk_keeping_undo_is_the_index_written_one_by_one() {
    let blocks = chain();
    for keep in [None, Some(1)] {
        for undo_from in [0, 2, 3, 4, u64::MAX] {
            let what = format!("keep {keep:?}, undo from {undo_from}");
            let dirs = [
                tempfile::tempdir().expect("tempdir"),
                tempfile::tempdir().expect("tempdir"),
            ];
            let one = EmbeddedUtxoStore::open_with(dirs[0].path(), keep).expect("open");
            for (b, c) in &blocks {
                one.apply_block(CHAIN, b, c).expect("apply");
            }
            let bulk = EmbeddedUtxoStore::open_with(dirs[1].path(), keep).expect("open");
            bulk.apply_blocks_keeping_undo(CHAIN, &blocks, undo_from)
                .expect("bulk");
            let below = |space: &str, key: &[u8]| {
                (space == "utxo.undo" || space == "utxo.ufundo")
                    && u64::from_be_bytes(key[8..16].try_into().expect("block key")) < undo_from
            };
            let expected = without(one.contents().expect("contents"), below);
            assert!(
                expected
                    .iter()
                    .any(|(space, e)| *space == "utxo.ufundo" && !e.is_empty())
                    || undo_from > 3,
                "{what}: cluster undo records compared"
            );
            assert_eq!(
                without(bulk.contents().expect("contents"), is_mark),
                expected,
                "{what}"
            );
            for to in (0..3).rev() {
                let by_one = one.unwind_above(CHAIN, to);
                let in_bulk = bulk.unwind_above(CHAIN, to);
                let reaches = by_one.is_ok() && to + 1 >= undo_from;
                assert_eq!(
                    in_bulk.is_ok(),
                    reaches,
                    "{what}: unwind above {to}: {in_bulk:?}"
                );
                if !reaches {
                    let e = in_bulk.expect_err("refused");
                    assert!(e.to_string().contains("undo record was pruned"), "{e}");
                    break;
                }
                assert_eq!(
                    bulk.contents().expect("contents"),
                    without(one.contents().expect("contents"), below),
                    "{what}: unwound above {to}"
                );
            }
        }
    }
}

/// Blocks written in bulk keeping their undo records, unwound, then written in bulk again and
/// interrupted before the coins (a crash): the mark the first call left (coins at block 3)
/// must not make the reopened index finish the second call as if its coins were written.
/// The unwind deletes the mark; the interrupted call is settled back, and made again it gives
/// the first call's index.
#[test]
fn utxo_bulk_unwound_then_interrupted_is_settled_back() {
    let blocks = chain();
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = {
        let s = EmbeddedUtxoStore::open(dir.path()).expect("open");
        s.apply_blocks_keeping_undo(CHAIN, &blocks, 0)
            .expect("bulk");
        let expected = s.contents().expect("contents");
        s.unwind_above(CHAIN, 1).expect("unwind 2 and 3");
        let e = s
            .apply_blocks_interrupted(CHAIN, &blocks[1..], 0, 5)
            .expect_err("stopped before the coins");
        assert!(e.to_string().contains("stopped before"), "{e}");
        expected
    };
    let s = EmbeddedUtxoStore::open(dir.path()).expect("reopen");
    assert_eq!(
        s.head(CHAIN).expect("head").map(|b| b.number),
        Some(1),
        "settled back: the coins were not written"
    );
    assert_eq!(
        s.apply_blocks_keeping_undo(CHAIN, &blocks[1..], 0)
            .expect("again"),
        vec![Applied::Written; 2]
    );
    assert_eq!(s.contents().expect("contents"), expected);
}

/// Block `n` (following block `n - 1`) spending A:0, which block 2 spent: a double spend.
fn spends_a0_again(n: u64) -> Vec<(BlockRef, UtxoChanges)> {
    let a0 = chain()[1].1.spent[0].clone();
    assert_eq!(a0.0, op(0xa, 0));
    vec![(
        block(n, 0, 0),
        UtxoChanges {
            spent: vec![a0],
            ..Default::default()
        },
    )]
}

/// Issue 16: a bulk write takes what the reads that gathered it found instead of looking the
/// outpoints up again, only while that is what the index holds. An output read as unspent,
/// then spent by a write one by one, or by a bulk write while the read went through the
/// snapshot readers are pinned to (the index before that write), is refused when a later
/// bulk write spends it again, naming it.
#[test]
fn utxo_bulk_does_not_take_a_read_older_than_a_write() {
    let blocks = chain();
    let a0 = [op(0xa, 0)];
    let refused = |s: &EmbeddedUtxoStore, n: u64| {
        let e = s
            .apply_blocks(CHAIN, &spends_a0_again(n))
            .expect_err("A:0 is spent");
        assert!(
            matches!(e, StoreError::Invalid { number, .. } if number == n),
            "{e}"
        );
        assert!(e.to_string().contains("not unspent"), "{e}");
    };
    // Read, then spent by block 2 written one by one.
    let dir = tempfile::tempdir().expect("tempdir");
    let s = EmbeddedUtxoStore::open(dir.path()).expect("open");
    s.apply_block(CHAIN, &blocks[0].0, &blocks[0].1)
        .expect("block 1");
    assert!(s.utxos(CHAIN, &a0).expect("read")[0].is_some());
    s.apply_block(CHAIN, &blocks[1].0, &blocks[1].1)
        .expect("block 2");
    refused(&s, 3);
    // Spent by a bulk write of blocks 2 and 3 stopped after its coins (before the head
    // moved), read meanwhile through the pinned snapshot, where A:0 is still unspent.
    let dir = tempfile::tempdir().expect("tempdir");
    let s = EmbeddedUtxoStore::open(dir.path()).expect("open");
    s.apply_block(CHAIN, &blocks[0].0, &blocks[0].1)
        .expect("block 1");
    s.apply_blocks_interrupted(CHAIN, &blocks[1..], u64::MAX, 6)
        .expect_err("stopped before the head's write");
    assert!(
        s.utxos(CHAIN, &a0).expect("read")[0].is_some(),
        "the pinned snapshot: the index before the call"
    );
    assert_eq!(
        s.apply_blocks(CHAIN, &blocks[1..]).expect("settled"),
        vec![Applied::AlreadyPresent; 2]
    );
    refused(&s, 4);
    // The same read made while an uninterrupted bulk write is under way: before its coins
    // are written (the write forgets what it changes), and after (the read is of an older
    // state than the newest).
    for step in [5, 6] {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = EmbeddedUtxoStore::open(dir.path()).expect("open");
        s.apply_block(CHAIN, &blocks[0].0, &blocks[0].1)
            .expect("block 1");
        s.apply_blocks_reading_before(CHAIN, &blocks[1..], step, &|s| {
            assert!(
                s.utxos(CHAIN, &a0).expect("read")[0].is_some(),
                "the pinned snapshot: the index before the call"
            );
        })
        .expect("bulk");
        refused(&s, 4);
    }
    // Read, then gone with an unwind: block 2, written in bulk keeping its undo record,
    // created B:1; unwinding it deletes B:1; a block spending B:1 then is refused.
    let dir = tempfile::tempdir().expect("tempdir");
    let s = EmbeddedUtxoStore::open(dir.path()).expect("open");
    s.apply_block(CHAIN, &blocks[0].0, &blocks[0].1)
        .expect("block 1");
    s.apply_blocks_keeping_undo(CHAIN, &blocks[1..2], 0)
        .expect("block 2");
    let b1 = blocks[1].1.created[1].clone();
    assert_eq!(b1.0, op(0xb, 1));
    assert!(s.utxos(CHAIN, &[b1.0]).expect("read")[0].is_some());
    s.unwind_above(CHAIN, 1).expect("unwind block 2");
    let spends_b1 = vec![(
        block(2, 0, 0),
        UtxoChanges {
            spent: vec![b1],
            ..Default::default()
        },
    )];
    let e = s.apply_blocks(CHAIN, &spends_b1).expect_err("B:1 is gone");
    assert!(e.to_string().contains("not unspent"), "{e}");
    // And a read of the newest state is taken: the same call's blocks, read as a backfill
    // reads them, write the index a write without the reads gives.
    let dir = tempfile::tempdir().expect("tempdir");
    let s = EmbeddedUtxoStore::open(dir.path()).expect("open");
    s.apply_block(CHAIN, &blocks[0].0, &blocks[0].1)
        .expect("block 1");
    let outpoints: Vec<OutPointKey> = blocks[1..]
        .iter()
        .flat_map(|(_, c)| c.spent.iter().chain(&c.created).map(|(o, _)| *o))
        .collect();
    s.utxos(CHAIN, &outpoints).expect("read");
    s.apply_blocks(CHAIN, &blocks[1..]).expect("bulk");
    let unread = tempfile::tempdir().expect("tempdir");
    let expected = EmbeddedUtxoStore::open(unread.path()).expect("open");
    expected
        .apply_block(CHAIN, &blocks[0].0, &blocks[0].1)
        .expect("block 1");
    expected.apply_blocks(CHAIN, &blocks[1..]).expect("bulk");
    assert_eq!(
        s.contents().expect("contents"),
        expected.contents().expect("contents")
    );
}

/// Bulk-written blocks have no undo record: an unwind reaching one is refused whole; blocks
/// written one by one above them unwind as before.
#[test]
fn utxo_bulk_blocks_cannot_be_unwound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = EmbeddedUtxoStore::open(dir.path()).expect("open");
    s.apply_blocks(CHAIN, &chain()).expect("bulk");
    let bulk = state(&s);
    let (b4, c4) = coinbase_block();
    s.apply_block(CHAIN, &b4, &c4).expect("4");
    let with_4 = state(&s);
    let e = s.unwind_above(CHAIN, 2).expect_err("3 has no undo record");
    assert!(e.to_string().contains("undo record was pruned"), "{e}");
    assert!(matches!(e, StoreError::Invalid { number: 3, .. }), "{e}");
    assert_eq!(state(&s), with_4, "nothing unwound");
    assert_eq!(s.unwind_above(CHAIN, 3).expect("unwind 4").len(), 1);
    assert_eq!(state(&s), bulk);
}

/// A bulk write stopped before each of its steps, as a crash would stop it (before its
/// record, before each of the 4 history keyspaces it ingests, before the coins, before the
/// write that moves the head), the store then reopened: before the coins changed, the head, counts
/// and coins are as they were and the call made again writes the blocks; after, the reopened
/// store finishes the recorded write and the call again finds them stored. Either way the
/// index is byte for byte the one an uninterrupted call gives.
#[test]
fn utxo_bulk_interrupted_then_made_again_is_the_same_index() {
    // Without undo records, and with them (blocks 2 and 3 keep theirs: written with the
    // head's move, so in the call's record too).
    for undo_from in [u64::MAX, 2] {
        interrupted_then_made_again(undo_from);
    }
}

fn interrupted_then_made_again(undo_from: u64) {
    let blocks = chain();
    let write = |s: &EmbeddedUtxoStore| s.apply_blocks_keeping_undo(CHAIN, &blocks[1..], undo_from);
    let expected = {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = EmbeddedUtxoStore::open(dir.path()).expect("open");
        s.apply_block(CHAIN, &blocks[0].0, &blocks[0].1)
            .expect("block 1");
        write(&s).expect("bulk");
        let contents = s.contents().expect("contents");
        assert!(
            contents.iter().filter(|(_, e)| !e.is_empty()).count() >= 8,
            "the comparison covers the keyspaces the write fills: {:?}",
            contents
                .iter()
                .map(|(n, e)| (n, e.len()))
                .collect::<Vec<_>>()
        );
        contents
    };
    for step in 0..=6 {
        let dir = tempfile::tempdir().expect("tempdir");
        let before = {
            let s = EmbeddedUtxoStore::open(dir.path()).expect("open");
            s.apply_block(CHAIN, &blocks[0].0, &blocks[0].1)
                .expect("block 1");
            let before = (
                s.head(CHAIN).expect("head"),
                s.counts(CHAIN).expect("counts"),
                s.utxos(CHAIN, &outpoints()).expect("utxos"),
            );
            let e = s
                .apply_blocks_interrupted(CHAIN, &blocks[1..], undo_from, step)
                .expect_err("interrupted");
            assert!(e.to_string().contains("stopped before"), "{e}");
            before
        };
        let s = EmbeddedUtxoStore::open(dir.path()).expect("reopen");
        let now = (
            s.head(CHAIN).expect("head"),
            s.counts(CHAIN).expect("counts"),
            s.utxos(CHAIN, &outpoints()).expect("utxos"),
        );
        let again = write(&s).expect("again");
        if step < 6 {
            assert_eq!(now, before, "stopped before step {step}: nothing moved");
            assert_eq!(again, vec![Applied::Written; 2]);
        } else {
            assert_eq!(
                now.0.map(|b| b.number),
                Some(3),
                "stopped after the coins: finished on open"
            );
            assert_eq!(again, vec![Applied::AlreadyPresent; 2]);
        }
        assert_eq!(
            s.contents().expect("contents"),
            expected,
            "undo from {undo_from}: stopped before step {step}, then made again"
        );
    }
}

/// Issue 16: no reader sees anything of a bulk write's blocks before the head moves. The
/// call stopped before each of its seven steps as a crash would: while it is stopped (the
/// store still open: what a reader sees while a call is under way) and after reopening, every
/// read the index offers (head, blocks, counts, outputs one by one and in a batch, the
/// transactions by block and by txid, one by one and in a batch, every address's transfers,
/// the spenders, the clusters and their members) answers as the index at the head before the
/// call, or, once the coins are written (stopped before the head's write), after reopening,
/// as the index an uninterrupted call gives. Made again without reopening, the call settles
/// the stopped one first and gives the uninterrupted call's index, byte for byte.
#[test]
fn utxo_bulk_interrupted_shows_nothing_above_the_head() {
    let blocks = chain();
    let at_1 = |dir: &std::path::Path| {
        let s = EmbeddedUtxoStore::open(dir).expect("open");
        s.apply_block(CHAIN, &blocks[0].0, &blocks[0].1)
            .expect("block 1");
        s
    };
    let (before, after, contents) = {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = at_1(dir.path());
        let before = state(&s);
        s.apply_blocks(CHAIN, &blocks[1..]).expect("bulk");
        (before, state(&s), s.contents().expect("contents"))
    };
    // The call changes every part the comparison looks at.
    assert_ne!(before.2, after.2, "coins");
    assert_ne!(before.3, after.3, "history");
    assert_ne!(before.4, after.4, "clusters");
    assert_ne!(
        before.5, after.5,
        "blocks, outputs, transfers from 2, members"
    );
    for step in 0..=6 {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = at_1(dir.path());
            let e = s
                .apply_blocks_interrupted(CHAIN, &blocks[1..], u64::MAX, step)
                .expect_err("interrupted");
            assert!(e.to_string().contains("stopped before"), "{e}");
            assert!(
                state(&s) == before,
                "stopped before step {step}, read before reopening: the index at block 1"
            );
        }
        let s = EmbeddedUtxoStore::open(dir.path()).expect("reopen");
        let reopened = state(&s);
        if step < 6 {
            assert!(
                reopened == before,
                "stopped before step {step}, reopened: the index at block 1"
            );
        } else {
            assert!(
                reopened == after,
                "stopped before the head's write, reopened: finished"
            );
        }
        // Stopped again, not reopened: the call made again settles it first.
        drop(s);
        let dir = tempfile::tempdir().expect("tempdir");
        let s = at_1(dir.path());
        let _ = s.apply_blocks_interrupted(CHAIN, &blocks[1..], u64::MAX, step);
        let again = s.apply_blocks(CHAIN, &blocks[1..]).expect("again");
        if step < 6 {
            assert_eq!(again, vec![Applied::Written; 2], "settled back");
        } else {
            assert_eq!(again, vec![Applied::AlreadyPresent; 2], "settled forward");
        }
        assert_eq!(
            s.contents().expect("contents"),
            contents,
            "stopped before step {step}, made again without reopening"
        );
        assert!(state(&s) == after, "stopped before step {step}, made again");
    }
}
