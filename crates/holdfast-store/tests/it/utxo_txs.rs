//! The transaction and address index of the UTXO store, on both backends: written with the
//! block's coin changes, read back by block, txid and address, removed exactly on unwind, and
//! refused whole (coins included) when the transactions do not fit the changes.

use alloy_primitives::B256;
use holdfast_primitives::BlockRef;
use holdfast_store::utxo::{
    AddressTransfer, Direction, EmbeddedUtxoStore, MAX_READ_BATCH, MAX_TRANSFERS, OutPointKey,
    PgUtxoStore, Spender, TxInput, TxOutput, TxRecord, UtxoChanges, UtxoRecord, UtxoStore,
    is_coinjoin,
};

use holdfast_store::{Applied, StoreError};

use crate::utxo::{CHAIN, block, op, rec};

fn output(r: &UtxoRecord) -> TxOutput {
    TxOutput {
        value: r.value,
        script: r.script.clone(),
        address: r.address.clone(),
    }
}

fn input(o: &(OutPointKey, UtxoRecord)) -> TxInput {
    TxInput {
        prevout: o.0,
        value: o.1.value,
        address: o.1.address.clone(),
    }
}

/// An OP_RETURN-only coinbase (nothing enters the set).
fn memo_coinbase(tag: u8) -> TxRecord {
    TxRecord {
        txid: B256::repeat_byte(tag),
        coinbase: true,
        inputs: vec![],
        outputs: vec![TxOutput {
            value: 0,
            script: vec![0x6a, 0x04, b'O', b'U', b'T', b':'],
            address: None,
        }],
    }
}

/// The suite's chain with its transactions. Block 1: coinbase A pays A:0 (no address) and A:1
/// (`bcrt1q02`). Block 2: a memo coinbase; B spends A:0 into B:0 and B:1 (`bcrt1q04`), fee
/// 10,000. Block 3: coinbase D:0 (`bcrt1q06`, subsidy + 11,000); C spends B:1 and A:1 into
/// C:0, fee 11,000; E spends C:0 in the same block into E:0 (`bcrt1q08`), fee 0.
pub(crate) fn chain() -> Vec<(BlockRef, UtxoChanges)> {
    let a0 = (op(0xa, 0), rec(50_0000_0000, 1, true, 1));
    let a1 = (op(0xa, 1), rec(1_000, 1, true, 2));
    let b0 = (op(0xb, 0), rec(30_0000_0000, 2, false, 3));
    let b1 = (op(0xb, 1), rec(19_9999_0000, 2, false, 4));
    let c0 = (op(0xc, 0), rec(19_9998_0000, 3, false, 5));
    let d0 = (op(0xd, 0), rec(50_0001_1000, 3, true, 6));
    let e0 = (op(0xe, 0), rec(19_9998_0000, 3, false, 8));
    let tx = |id: u8, coinbase, inputs: Vec<TxInput>, outputs: Vec<TxOutput>| TxRecord {
        txid: B256::repeat_byte(id),
        coinbase,
        inputs,
        outputs,
    };
    vec![
        (
            block(1, 0, 0),
            UtxoChanges {
                created: vec![a0.clone(), a1.clone()],
                transactions: vec![tx(0xa, true, vec![], vec![output(&a0.1), output(&a1.1)])],
                ..Default::default()
            },
        ),
        (
            block(2, 0, 0),
            UtxoChanges {
                created: vec![b0.clone(), b1.clone()],
                spent: vec![a0.clone()],
                transactions: vec![
                    memo_coinbase(0x1b),
                    tx(
                        0xb,
                        false,
                        vec![input(&a0)],
                        vec![output(&b0.1), output(&b1.1)],
                    ),
                ],
                ..Default::default()
            },
        ),
        (
            block(3, 0, 0),
            UtxoChanges {
                created: vec![d0.clone(), e0.clone()],
                spent: vec![b1.clone(), a1.clone()],
                transactions: vec![
                    tx(0xd, true, vec![], vec![output(&d0.1)]),
                    tx(
                        0xc,
                        false,
                        vec![input(&b1), input(&a1)],
                        vec![output(&c0.1)],
                    ),
                    tx(0xe, false, vec![input(&c0)], vec![output(&e0.1)]),
                ],
                ..Default::default()
            },
        ),
    ]
}

fn entry(
    height: u64,
    tx_index: u32,
    tx: u8,
    direction: Direction,
    index: u32,
    value: u64,
    outpoint: OutPointKey,
) -> AddressTransfer {
    AddressTransfer {
        height,
        tx_index,
        txid: B256::repeat_byte(tx),
        direction,
        index,
        value,
        outpoint,
    }
}

/// Everything the index says about the suite's addresses, transactions and spenders.
pub(crate) type View = (
    Vec<Vec<AddressTransfer>>,
    Vec<Vec<TxRecord>>,
    Vec<usize>,
    Vec<Option<Spender>>,
    Vec<Vec<(u64, u32, TxRecord)>>,
);

/// Every outpoint the suite's chain creates.
fn outpoints() -> Vec<OutPointKey> {
    vec![
        op(0xa, 0),
        op(0xa, 1),
        op(0xb, 0),
        op(0xb, 1),
        op(0xc, 0),
        op(0xd, 0),
        op(0xe, 0),
    ]
}

const TXIDS: [u8; 7] = [0xa, 0x1b, 0xb, 0xc, 0xd, 0xe, 0xf];

pub(crate) fn view(s: &dyn UtxoStore) -> View {
    let addresses = ["bcrt1q02", "bcrt1q04", "bcrt1q06", "bcrt1q08", "bcrt1q0a"];
    (
        addresses
            .iter()
            .map(|a| s.address_transfers(CHAIN, a, 0, 100).expect("transfers"))
            .collect(),
        (0..5)
            .map(|n| s.block_transactions(CHAIN, n).expect("txs"))
            .collect(),
        TXIDS
            .iter()
            .map(|t| {
                s.transaction(CHAIN, &B256::repeat_byte(*t))
                    .expect("tx")
                    .len()
            })
            .collect(),
        s.spenders(CHAIN, &outpoints()).expect("spenders"),
        s.transactions(CHAIN, &TXIDS.map(B256::repeat_byte))
            .expect("transactions"),
    )
}

fn spender(txid: u8, vin: u32, height: u64, position: u32) -> Option<Spender> {
    Some(Spender {
        txid: B256::repeat_byte(txid),
        vin,
        height,
        position,
    })
}

/// The spent-by index and batched reads by txid: each spent output names its spending input
/// (an output without an address, and one spent in its own block, included), unspent ones
/// none; written and unwound with the blocks; batches bounded.
fn spenders_follow_blocks(s: &dyn UtxoStore) {
    let blocks = chain();
    for (b, c) in &blocks {
        s.apply_block(CHAIN, b, c).expect("apply");
    }
    // A:0 (no address) spent by B's input 0 at (2, 1); B:1 by C's input 0 and A:1 by C's
    // input 1 at (3, 1); C:0 by E's input 0 in the same block at (3, 2).
    assert_eq!(
        s.spenders(CHAIN, &outpoints()).expect("spenders"),
        vec![
            spender(0xb, 0, 2, 1),
            spender(0xc, 1, 3, 1),
            None,
            spender(0xc, 0, 3, 1),
            spender(0xe, 0, 3, 2),
            None,
            None,
        ]
    );
    assert_eq!(
        s.spenders(CHAIN + 1, &outpoints()).expect("other chain"),
        vec![None; 7],
        "another chain sees nothing"
    );
    // Batched reads by txid, in the order asked, an unknown txid empty, a txid twice twice.
    let got = s
        .transactions(CHAIN, &[0xe, 0xf, 0xb, 0xe].map(B256::repeat_byte))
        .expect("transactions");
    assert_eq!(got[0], vec![(3, 2, blocks[2].1.transactions[2].clone())]);
    assert!(got[1].is_empty());
    assert_eq!(got[2], vec![(2, 1, blocks[1].1.transactions[1].clone())]);
    assert_eq!(got[3], got[0]);
    // Bounded batches, refused naming the field.
    let e = s
        .spenders(CHAIN, &vec![op(0xa, 0); MAX_READ_BATCH + 1])
        .expect_err("bound");
    assert!(e.to_string().contains("outpoints"), "{e}");
    let e = s
        .transactions(CHAIN, &vec![B256::ZERO; MAX_READ_BATCH + 1])
        .expect_err("bound");
    assert!(e.to_string().contains("txids"), "{e}");
    // Unwinding block 3 removes its spenders only; the outputs it spent are unspent again.
    s.unwind_above(CHAIN, 2).expect("unwind");
    assert_eq!(
        s.spenders(CHAIN, &outpoints()).expect("after unwind"),
        vec![spender(0xb, 0, 2, 1), None, None, None, None, None, None]
    );
    assert!(s.utxo(CHAIN, &op(0xa, 1)).expect("a1").is_some());
    s.unwind_above(CHAIN, 0).expect("unwind all");
    assert_eq!(
        s.spenders(CHAIN, &outpoints()).expect("empty"),
        vec![None; 7]
    );
}

fn written_read_and_unwound(s: &dyn UtxoStore) {
    let blocks = chain();
    let mut views = vec![view(s)];
    for (b, c) in &blocks {
        s.apply_block(CHAIN, b, c).expect("apply");
        views.push(view(s));
    }
    // An address that received and later spent.
    assert_eq!(
        s.address_transfers(CHAIN, "bcrt1q02", 0, 100).expect("a"),
        vec![
            entry(1, 0, 0xa, Direction::Received, 1, 1_000, op(0xa, 1)),
            entry(3, 1, 0xc, Direction::Spent, 1, 1_000, op(0xa, 1)),
        ]
    );
    // Received and spent within one block (E spends C:0, which has no address; E:0 does).
    assert_eq!(
        s.address_transfers(CHAIN, "bcrt1q08", 0, 100).expect("e"),
        vec![entry(
            3,
            2,
            0xe,
            Direction::Received,
            0,
            19_9998_0000,
            op(0xe, 0)
        )]
    );
    // From a height, and a limit.
    assert_eq!(
        s.address_transfers(CHAIN, "bcrt1q02", 2, 100)
            .expect("from 2")
            .len(),
        1
    );
    assert_eq!(
        s.address_transfers(CHAIN, "bcrt1q02", 0, 1).expect("limit")[0].height,
        1
    );
    let e = s
        .address_transfers(CHAIN, "bcrt1q02", 0, MAX_TRANSFERS + 1)
        .expect_err("limit");
    assert!(e.to_string().contains("limit"), "{e}");
    // Other chains and other addresses see nothing.
    assert!(
        s.address_transfers(CHAIN + 1, "bcrt1q02", 0, 100)
            .expect("c")
            .is_empty()
    );
    assert!(
        s.address_transfers(CHAIN, "bcrt1q0", 0, 100)
            .expect("prefix")
            .is_empty()
    );
    // By block and by txid, with fees.
    let txs = s.block_transactions(CHAIN, 3).expect("block 3");
    assert_eq!(txs, blocks[2].1.transactions);
    assert_eq!(
        txs.iter().map(TxRecord::fee).collect::<Vec<_>>(),
        vec![None, Some(11_000), Some(0)]
    );
    let found = s.transaction(CHAIN, &B256::repeat_byte(0xb)).expect("B");
    assert_eq!(found, vec![(2, 1, blocks[1].1.transactions[1].clone())]);
    assert_eq!(found[0].2.fee(), Some(10_000));
    assert_eq!(
        s.block_transactions(CHAIN, 2).expect("2")[0].outputs[0].script[0],
        0x6a,
        "OP_RETURN kept"
    );
    // Unwinding removes exactly what each block wrote.
    s.unwind_above(CHAIN, 2).expect("unwind 3");
    assert_eq!(view(s), views[2]);
    s.unwind_above(CHAIN, 0).expect("unwind 1, 2");
    assert_eq!(view(s), views[0]);
    assert!(view(s).0.iter().all(Vec::is_empty));
    // Written again, the same.
    for (b, c) in &blocks {
        s.apply_block(CHAIN, b, c).expect("again");
    }
    assert_eq!(view(s), views[3]);
}

/// Transactions that do not fit the coin changes: refused whole, coins included.
fn misfits_are_refused_whole(s: &dyn UtxoStore) {
    let blocks = chain();
    s.apply_block(CHAIN, &blocks[0].0, &blocks[0].1).expect("1");
    let before = (
        view(s),
        s.counts(CHAIN).expect("counts"),
        s.head(CHAIN).expect("head"),
    );
    let refused = |c: &UtxoChanges, needle: &str| {
        let e = s.apply_block(CHAIN, &blocks[1].0, c).expect_err(needle);
        let msg = e.to_string();
        assert!(msg.contains(needle), "{msg}");
        assert!(msg.starts_with(&format!("chain {CHAIN} block 2")), "{msg}");
        assert_eq!(
            (
                view(s),
                s.counts(CHAIN).expect("counts"),
                s.head(CHAIN).expect("head")
            ),
            before,
            "{needle}"
        );
    };
    let base = &blocks[1].1;
    let mut c = base.clone();
    c.transactions[1].inputs[0].value += 1;
    refused(&c, "input 0 (0a0a");
    let mut c = base.clone();
    c.transactions[1].inputs[0].address = Some("bcrt1qff".into());
    refused(&c, "differs from the spent output");
    let mut c = base.clone();
    c.transactions[1].inputs[0].prevout = op(0x77, 0);
    refused(
        &c,
        "is resolved from neither the block nor its spent outputs",
    );
    let mut c = base.clone();
    c.transactions[1].outputs[0].value -= 1;
    refused(&c, "is not one of the block's transactions' outputs");
    let mut c = base.clone();
    c.transactions[1].outputs[0].value += 20_000;
    refused(&c, "its outputs exceed its inputs");
    let mut c = base.clone();
    c.transactions.swap(0, 1);
    refused(&c, "the first transaction must be the coinbase");
    let mut c = base.clone();
    let again = c.transactions[1].inputs[0].clone();
    c.transactions[1].inputs.push(again);
    refused(&c, "twice");
    // Spent outputs that no input consumes.
    let mut c = base.clone();
    c.transactions.truncate(1);
    refused(&c, "spend 0 outputs from the index but its changes spend 1");
}

/// The duplicate coinbase txids of 2010: two transactions with one txid, at two heights.
fn duplicate_txids_are_kept_apart(s: &dyn UtxoStore) {
    let first = (op(0xe3, 0), rec(50_0000_0000, 1, true, 2));
    let second = (op(0xe3, 0), rec(50_0000_0000, 2, true, 2));
    let coinbase = |r: &UtxoRecord| TxRecord {
        txid: B256::repeat_byte(0xe3),
        coinbase: true,
        inputs: vec![],
        outputs: vec![output(r)],
    };
    s.apply_block(
        CHAIN,
        &block(1, 0, 0),
        &UtxoChanges {
            created: vec![first.clone()],
            transactions: vec![coinbase(&first.1)],
            ..Default::default()
        },
    )
    .expect("first");
    s.apply_block(
        CHAIN,
        &block(2, 0, 0),
        &UtxoChanges {
            created: vec![second.clone()],
            replaced: vec![first.clone()],
            transactions: vec![coinbase(&second.1)],
            ..Default::default()
        },
    )
    .expect("second");
    let found = s
        .transaction(CHAIN, &B256::repeat_byte(0xe3))
        .expect("both");
    assert_eq!(
        found.iter().map(|(h, p, _)| (*h, *p)).collect::<Vec<_>>(),
        vec![(1, 0), (2, 0)]
    );
    assert_eq!(
        s.address_transfers(CHAIN, "bcrt1q02", 0, 10)
            .expect("a")
            .len(),
        2
    );
    s.unwind_above(CHAIN, 1).expect("unwind");
    assert_eq!(
        s.transaction(CHAIN, &B256::repeat_byte(0xe3))
            .expect("one")
            .len(),
        1
    );
    assert_eq!(
        s.address_transfers(CHAIN, "bcrt1q02", 0, 10)
            .expect("a")
            .len(),
        1
    );
}

/// History without a UTXO set (an export): blocks in any order, the same entries as the
/// blocks written with their coins, the same block again nothing, another hash a conflict, a
/// malformed block refused whole.
fn imported_history(s: &dyn UtxoStore) {
    let blocks = chain();
    let imported = CHAIN + 100;
    for i in [2, 0, 1] {
        let (b, c) = &blocks[i];
        assert_eq!(
            s.import_block(imported, b, &c.transactions)
                .expect("import"),
            Applied::Written
        );
    }
    for (b, c) in &blocks {
        s.apply_block(CHAIN, b, c).expect("apply");
    }
    for a in ["bcrt1q02", "bcrt1q04", "bcrt1q06", "bcrt1q08"] {
        assert_eq!(
            s.address_transfers(imported, a, 0, 100).expect("imported"),
            s.address_transfers(CHAIN, a, 0, 100).expect("applied"),
            "{a}"
        );
    }
    assert_eq!(
        s.counts(imported).expect("counts"),
        Default::default(),
        "no coins"
    );
    // Clusters over the imported history, imported out of order, as over the applied blocks:
    // C spends outputs of bcrt1q02 and bcrt1q04 together.
    for a in ["bcrt1q02", "bcrt1q04", "bcrt1q06", "bcrt1q08"] {
        assert_eq!(
            s.cluster(imported, a).expect("imported"),
            s.cluster(CHAIN, a).expect("applied"),
            "{a}"
        );
    }
    assert_eq!(s.cluster(imported, "bcrt1q02").expect("cluster").size, 2);
    assert_eq!(
        s.cluster(imported, "bcrt1q02").expect("a").root,
        s.cluster(imported, "bcrt1q04").expect("b").root
    );
    let clusters = |s: &dyn UtxoStore| {
        ["bcrt1q02", "bcrt1q04", "bcrt1q06", "bcrt1q08"]
            .map(|a| s.cluster(imported, a).expect("cluster"))
    };
    let clusters_before = clusters(s);
    assert_eq!(
        s.spenders(imported, &outpoints())
            .expect("imported spenders"),
        s.spenders(CHAIN, &outpoints()).expect("applied spenders"),
        "imports write the spent-by index too"
    );
    let before = view_of(s, imported);
    assert_eq!(
        s.import_block(imported, &blocks[1].0, &blocks[1].1.transactions)
            .expect("again"),
        Applied::AlreadyPresent
    );
    let e = s
        .import_block(imported, &block(2, 7, 0), &blocks[1].1.transactions)
        .expect_err("conflict");
    assert!(matches!(e, StoreError::Conflict { number: 2, .. }), "{e}");
    let mut bad = blocks[2].1.transactions.clone();
    bad.swap(0, 1);
    let e = s
        .import_block(imported, &block(4, 0, 0), &bad)
        .expect_err("coinbase not first");
    assert!(
        e.to_string()
            .contains("the first transaction must be the coinbase"),
        "{e}"
    );
    let e = s
        .import_block(imported, &block(4, 0, 0), &[])
        .expect_err("empty");
    assert!(e.to_string().contains("at least its coinbase"), "{e}");
    assert_eq!(view_of(s, imported), before);
    assert_eq!(clusters(s), clusters_before, "nothing half-written");
}

fn view_of(s: &dyn UtxoStore, chain: u64) -> Vec<Vec<AddressTransfer>> {
    ["bcrt1q02", "bcrt1q04", "bcrt1q06", "bcrt1q08"]
        .iter()
        .map(|a| s.address_transfers(chain, a, 0, 100).expect("transfers"))
        .collect()
}

/// Clusters: a consolidation merges its input addresses, a CoinJoin-like transaction (three
/// inputs of three owners, three equal outputs) merges none, a later spend links two clusters;
/// unwinding restores each earlier state exactly, and writing again gives the same clusters.
fn clusters_follow_blocks_and_unwinds(s: &dyn UtxoStore) {
    let addr = |tag: u8| format!("bcrt1q{tag:02x}");
    // Block 1: a coinbase paying tags 2, 4, 6, 8, 10 and 2 again.
    let a: Vec<(OutPointKey, UtxoRecord)> = [2u8, 4, 6, 8, 10, 2]
        .iter()
        .enumerate()
        .map(|(i, t)| (op(0xa1, i as u32), rec(1_000_000, 1, true, *t)))
        .collect();
    let coinbase = TxRecord {
        txid: B256::repeat_byte(0xa1),
        coinbase: true,
        inputs: vec![],
        outputs: a.iter().map(|(_, r)| output(r)).collect(),
    };
    let spend = |id: u8, height: u64, ins: &[&(OutPointKey, UtxoRecord)], outs: &[(u64, u8)]| {
        let created: Vec<(OutPointKey, UtxoRecord)> = outs
            .iter()
            .enumerate()
            .map(|(v, (value, tag))| (op(id, v as u32), rec(*value, height, false, *tag)))
            .collect();
        let tx = TxRecord {
            txid: B256::repeat_byte(id),
            coinbase: false,
            inputs: ins.iter().map(|o| input(o)).collect(),
            outputs: created.iter().map(|(_, r)| output(r)).collect(),
        };
        (tx, created)
    };
    let memo = |tag| memo_coinbase(tag);
    // Block 2: B consolidates tags 2 and 4; C is a CoinJoin of tags 6, 8, 10.
    let (b, b_out) = spend(0xb2, 2, &[&a[0], &a[1]], &[(1_900_000, 14)]);
    let (c, c_out) = spend(
        0xc2,
        2,
        &[&a[2], &a[3], &a[4]],
        &[(900_000, 16), (900_000, 18), (900_000, 20)],
    );
    // Block 3: D spends tag 2's second output with B's (tag 14): links {2, 4} and 14; E spends
    // two CoinJoin outputs (tags 16, 18) together.
    let (d, d_out) = spend(0xd3, 3, &[&a[5], &b_out[0]], &[(2_800_000, 22)]);
    let (e, e_out) = spend(0xe3, 3, &[&c_out[0], &c_out[1]], &[(1_700_000, 24)]);
    let blocks = vec![
        (
            block(1, 0, 0),
            UtxoChanges {
                created: a.clone(),
                transactions: vec![coinbase],
                ..Default::default()
            },
        ),
        (
            block(2, 0, 0),
            UtxoChanges {
                created: [b_out.clone(), c_out.clone()].concat(),
                spent: vec![
                    a[0].clone(),
                    a[1].clone(),
                    a[2].clone(),
                    a[3].clone(),
                    a[4].clone(),
                ],
                transactions: vec![memo(0x12), b, c],
                ..Default::default()
            },
        ),
        (
            block(3, 0, 0),
            UtxoChanges {
                created: [d_out, e_out].concat(),
                spent: vec![
                    a[5].clone(),
                    b_out[0].clone(),
                    c_out[0].clone(),
                    c_out[1].clone(),
                ],
                transactions: vec![memo(0x13), d, e],
                ..Default::default()
            },
        ),
    ];
    let tags = [2u8, 4, 6, 8, 10, 14, 16, 18, 20, 22, 24];
    // Each address's cluster: root, size and members (every member listed once, the root
    // first, as many as the size says).
    let clusters = |s: &dyn UtxoStore| -> Vec<(String, u64, Vec<String>)> {
        tags.iter()
            .map(|t| {
                let c = s.cluster(CHAIN, &addr(*t)).expect("cluster");
                let mut members = s.cluster_members(CHAIN, &c.root, 100).expect("members");
                assert_eq!(members.len() as u64, c.size, "{members:?}");
                assert_eq!(members[0], c.root);
                assert!(members.contains(&addr(*t)));
                members.sort();
                members.dedup();
                assert_eq!(members.len() as u64, c.size, "{members:?}");
                (c.root, c.size, members)
            })
            .collect()
    };
    let mut states = vec![clusters(s)];
    for (bl, c) in &blocks {
        s.apply_block(CHAIN, bl, c).expect("apply");
        states.push(clusters(s));
    }
    let same = |x: u8, y: u8| {
        s.cluster(CHAIN, &addr(x)).expect("x").root == s.cluster(CHAIN, &addr(y)).expect("y").root
    };
    assert!(is_coinjoin(&blocks[1].1.transactions[2]));
    assert!(!is_coinjoin(&blocks[1].1.transactions[1]));
    assert!(same(2, 4) && same(4, 14), "{:?}", states[3]);
    assert_eq!(s.cluster(CHAIN, &addr(14)).expect("c").size, 3);
    let mut big = vec![addr(2), addr(4), addr(14)];
    big.sort();
    assert_eq!(states[3][0].2, big);
    // Bounded: the root and one more.
    let root = s.cluster(CHAIN, &addr(14)).expect("c").root;
    let two = s.cluster_members(CHAIN, &root, 2).expect("members");
    assert_eq!(two.len(), 2);
    assert_eq!(two[0], root);
    assert!(s.cluster_members(CHAIN, &root, 0).expect("none").is_empty());
    assert!(same(16, 18));
    assert_eq!(s.cluster(CHAIN, &addr(16)).expect("c").size, 2);
    // The CoinJoin merged none of its inputs, nor them with anything.
    for (x, y) in [(6, 8), (8, 10), (6, 10), (6, 16), (2, 6)] {
        assert!(!same(x, y), "{x} and {y}");
    }
    assert_eq!(s.cluster(CHAIN, &addr(6)).expect("c").size, 1);
    assert_eq!(
        s.cluster(CHAIN, &addr(22)).expect("c").size,
        1,
        "outputs merge nothing"
    );
    // After block 2 only: {2, 4}.
    assert_eq!(states[2][0], states[2][1]);
    assert_eq!(states[2][0].1, 2);
    s.unwind_above(CHAIN, 2).expect("unwind 3");
    assert_eq!(clusters(s), states[2]);
    s.unwind_above(CHAIN, 0).expect("unwind 1, 2");
    assert_eq!(clusters(s), states[0]);
    assert!(states[0].iter().all(|(_, n, _)| *n == 1));
    for (bl, c) in &blocks {
        s.apply_block(CHAIN, bl, c).expect("again");
    }
    assert_eq!(clusters(s), states[3]);
    // Two blocks unwound in one call.
    s.unwind_above(CHAIN, 1).expect("unwind 2, 3");
    assert_eq!(clusters(s), states[1]);
}

fn suite(open: impl Fn() -> Box<dyn UtxoStore>) {
    spenders_follow_blocks(&*open());
    clusters_follow_blocks_and_unwinds(&*open());
    imported_history(&*open());
    written_read_and_unwound(&*open());
    misfits_are_refused_whole(&*open());
    duplicate_txids_are_kept_apart(&*open());
}

#[test]
fn utxo_txs_embedded() {
    let dirs = std::cell::RefCell::new(Vec::new());
    suite(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = EmbeddedUtxoStore::open(dir.path()).expect("open");
        dirs.borrow_mut().push(dir);
        Box::new(s)
    });
}

#[test]
fn utxo_txs_postgres() {
    let Some(_) = crate::pg_db() else { return };
    suite(|| Box::new(PgUtxoStore::connect(&crate::pg_db().expect("pg")).expect("connect")));
}

#[test]
fn utxo_txs_embedded_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let before = {
        let s = EmbeddedUtxoStore::open(dir.path()).expect("open");
        for (b, c) in &chain() {
            s.apply_block(CHAIN, b, c).expect("apply");
        }
        view(&s)
    };
    let s = EmbeddedUtxoStore::open(dir.path()).expect("reopen");
    assert_eq!(view(&s), before);
}
