//! One behaviour suite, run on both backends.

use std::sync::OnceLock;

use alloy_primitives::{Address, B256, U256};
use holdfast_primitives::{Asset, BlockRef, Conversion, ConversionKind, Position, Transfer};
use holdfast_store::import::Conflict;
use holdfast_store::testing::TempPostgres;
use holdfast_store::{
    AddressEntry, AddressQuery, Applied, BlockData, Direction, EmbeddedOptions, EmbeddedStore,
    MAX_LIMIT, PgStore, Place, Store, StoreError, TransferQuery,
};

fn addr(n: u8) -> Address {
    Address::repeat_byte(n)
}

fn hash(block: u64, fork: u8) -> B256 {
    let mut h = [fork; 32];
    h[..8].copy_from_slice(&block.to_be_bytes());
    B256::from(h)
}

fn block_ref(n: u64, fork: u8) -> BlockRef {
    let parent = if n == 0 {
        B256::ZERO
    } else {
        hash(n - 1, if fork == 0 { 0 } else { fork })
    };
    BlockRef {
        number: n,
        hash: hash(n, fork),
        parent_hash: parent,
        timestamp: 1_700_000_000 + n * 12,
    }
}

/// Block `n` of fork `fork`: a native transfer 1→2 at the tx's call, an internal one 2→3,
/// and a token transfer 3→1 (log), in two transactions; one wrap.
fn block(chain_id: u64, n: u64, fork: u8) -> BlockData {
    let b = block_ref(n, fork);
    let t =
        |tx_index: u32, position: Position, from: u8, to: u8, asset: Asset, amount: u64| Transfer {
            chain_id,
            block_number: n,
            block_hash: b.hash,
            timestamp: b.timestamp,
            tx_hash: B256::repeat_byte(tx_index as u8 + 1) ^ b.hash,
            tx_index,
            position,
            from: addr(from),
            to: addr(to),
            asset,
            amount: U256::from(amount),
        };
    let token = Asset::Erc20 { token: addr(0xee) };
    let transfers = vec![
        t(
            0,
            Position::Call {
                trace_address: vec![],
            },
            1,
            2,
            Asset::Native,
            100 + n,
        ),
        t(
            0,
            Position::Call {
                trace_address: vec![0],
            },
            2,
            3,
            Asset::Native,
            50,
        ),
        t(
            1,
            Position::Log {
                log_index: 0,
                item: 0,
            },
            3,
            1,
            token,
            7,
        ),
        t(
            1,
            Position::Log {
                log_index: 1,
                item: 0,
            },
            1,
            3,
            Asset::Erc721 {
                token: addr(0xaa),
                id: U256::from(n),
            },
            1,
        ),
    ];
    let conversions = vec![Conversion {
        chain_id,
        block_number: n,
        block_hash: b.hash,
        tx_hash: transfers[2].tx_hash,
        tx_index: 1,
        log_index: 2,
        kind: ConversionKind::Wrap,
        venue: addr(0xee),
        account: addr(3),
        recipient: addr(3),
        asset_in: Asset::Native,
        amount_in: U256::from(5),
        asset_out: token,
        amount_out: U256::from(5),
    }];
    BlockData {
        block: b,
        transfers,
        conversions,
    }
}

fn pg() -> &'static str {
    static PG: OnceLock<Result<TempPostgres, String>> = OnceLock::new();
    if std::env::var_os("HOLDFAST_TEST_SKIP_PG").is_some_and(|v| v == "1") {
        return "";
    }
    match PG.get_or_init(|| TempPostgres::start(false)) {
        Ok(pg) => pg.url(),
        Err(e) => panic!(
            "PostgreSQL could not be started for the tests (set HOLDFAST_TEST_SKIP_PG=1 to skip them explicitly): {e}"
        ),
    }
}

fn small_buffer() -> EmbeddedOptions {
    EmbeddedOptions {
        index_buffer: 3,
        ..EmbeddedOptions::default()
    }
}

/// Runs `check` on a fresh embedded store and on PostgreSQL (distinct chain ids keep
/// parallel tests apart on the shared server).
fn on_both(chain_id: u64, check: impl Fn(&dyn Store, u64)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let embedded = EmbeddedStore::open(&dir.path().join("store")).expect("open");
    check(&embedded, chain_id);
    // The same with an index buffer of three transfers: nearly every write starts a
    // write-out on the background thread, and queries read buffered, frozen and written
    // entries at once.
    let small = EmbeddedStore::open_with(&dir.path().join("small"), small_buffer()).expect("open");
    check(&small, chain_id);
    let url = pg();
    if !url.is_empty() {
        let pg = PgStore::connect(url).expect("connect");
        check(&pg, chain_id);
    }
}

#[test]
fn writes_and_queries_in_block_order() {
    on_both(101, |s, c| {
        let blocks: Vec<BlockData> = (0..5).map(|n| block(c, n, 0)).collect();
        assert_eq!(
            s.apply_blocks(c, &blocks).expect("write"),
            vec![Applied::Written; 5]
        );
        assert_eq!(s.head(c).expect("head"), Some(block_ref(4, 0)));
        assert_eq!(s.block(c, 2).expect("block"), Some(block_ref(2, 0)));
        let out = s
            .transfers(
                c,
                TransferQuery::From {
                    address: addr(1),
                    from_block: 2,
                },
                100,
            )
            .expect("query");
        assert_eq!(out.len(), 6, "{out:?}");
        assert!(out.windows(2).all(|w| w[0].order_key() <= w[1].order_key()));
        assert_eq!(out[0], blocks[2].transfers[0], "round trip of every field");
        assert_eq!(out[1], blocks[2].transfers[3]);
        let to = s
            .transfers(
                c,
                TransferQuery::To {
                    address: addr(3),
                    from_block: 0,
                },
                3,
            )
            .expect("query");
        assert_eq!(to.len(), 3, "limit");
        let tx = s
            .transfers(
                c,
                TransferQuery::Tx {
                    tx_hash: blocks[1].transfers[0].tx_hash,
                },
                100,
            )
            .expect("query");
        assert_eq!(tx, blocks[1].transfers[..2].to_vec());
        // A block range: every transfer of those blocks, in block order (the watch's replay).
        let range = s
            .transfers(
                c,
                TransferQuery::Blocks {
                    from_block: 1,
                    to_block: 3,
                },
                100,
            )
            .expect("query");
        let expected: Vec<_> = blocks
            .iter()
            .filter(|b| (1..=3).contains(&b.block.number))
            .flat_map(|b| b.transfers.clone())
            .collect();
        assert_eq!(range, expected);
        let capped = s
            .transfers(
                c,
                TransferQuery::Blocks {
                    from_block: 0,
                    to_block: u64::MAX,
                },
                2,
            )
            .expect("query");
        assert_eq!(capped.len(), 2, "limit");
        let native = s
            .transfers(
                c,
                TransferQuery::Asset {
                    token: None,
                    from_block: 4,
                },
                100,
            )
            .expect("query");
        assert_eq!(native, blocks[4].transfers[..2].to_vec());
        let token = s
            .transfers(
                c,
                TransferQuery::Asset {
                    token: Some(addr(0xee)),
                    from_block: 0,
                },
                100,
            )
            .expect("query");
        assert_eq!(token.len(), 5);
        assert_eq!(
            s.conversions_of_tx(c, blocks[3].conversions[0].tx_hash)
                .expect("conv"),
            blocks[3].conversions
        );
        let stats = s.stats(c).expect("stats");
        assert_eq!(
            (stats.blocks, stats.transfers, stats.conversions, stats.head),
            (5, 20, 5, Some(4))
        );
        assert_eq!(
            s.sum_by_asset(c).expect("sums").get(&Asset::Native),
            Some(&U256::from(100 * 5 + 10 + 50 * 5))
        );
        assert!(matches!(
            s.transfers(
                c,
                TransferQuery::From {
                    address: addr(1),
                    from_block: 0
                },
                1_000_000
            ),
            Err(StoreError::Limit(_))
        ));
    });
}

#[test]
fn reapplying_a_block_changes_nothing() {
    on_both(102, |s, c| {
        let blocks: Vec<BlockData> = (0..3).map(|n| block(c, n, 0)).collect();
        s.apply_blocks(c, &blocks).expect("write");
        assert_eq!(
            s.apply_blocks(c, &blocks[1..]).expect("again"),
            vec![Applied::AlreadyPresent; 2]
        );
        assert_eq!(
            s.apply_block(
                c,
                &blocks[2].block,
                &blocks[2].transfers,
                &blocks[2].conversions
            )
            .expect("once more"),
            Applied::AlreadyPresent
        );
        assert_eq!(s.stats(c).expect("stats").transfers, 12);
    });
}

#[test]
fn conflicts_and_parent_mismatches_are_errors_and_write_nothing() {
    on_both(103, |s, c| {
        s.apply_blocks(c, &[block(c, 0, 0), block(c, 1, 0)])
            .expect("write");
        // Block 1 of another fork at a stored height.
        let err = s.apply_blocks(c, &[block(c, 1, 7)]).expect_err("conflict");
        assert!(
            matches!(err, StoreError::Conflict { number: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("block 1"), "{err}");
        // Block 2 of another fork: its parent is not the stored block 1.
        let err = s.apply_blocks(c, &[block(c, 2, 7)]).expect_err("parent");
        assert!(
            matches!(
                err,
                StoreError::ParentMismatch {
                    number: 2,
                    below: 1,
                    ..
                }
            ),
            "{err}"
        );
        // A batch whose last block is bad writes none of its blocks.
        let mut bad = block(c, 4, 0);
        bad.transfers[0].block_number = 9;
        let err = s
            .apply_blocks(c, &[block(c, 2, 0), block(c, 3, 0), bad])
            .expect_err("invalid");
        assert!(
            matches!(err, StoreError::Invalid { number: 4, .. }),
            "{err}"
        );
        let err = s
            .apply_blocks(c, &[block(c, 2, 0), block(c, 3, 9)])
            .expect_err("parent in batch");
        assert!(
            matches!(err, StoreError::ParentMismatch { number: 3, .. }),
            "{err}"
        );
        assert_eq!(s.head(c).expect("head").map(|h| h.number), Some(1));
        assert_eq!(s.stats(c).expect("stats").transfers, 8);
    });
}

#[test]
fn unwind_removes_orphans_and_keeps_imports() {
    on_both(104, |s, c| {
        let blocks: Vec<BlockData> = (0..6).map(|n| block(c, n, 0)).collect();
        s.apply_blocks(c, &blocks).expect("write");
        let mut imported = block(c, 5, 0).transfers[0].clone();
        imported.block_hash = B256::ZERO;
        imported.position = Position::Call {
            trace_address: vec![9],
        };
        assert_eq!(
            s.import_transfers(c, std::slice::from_ref(&imported))
                .expect("import"),
            1
        );
        let removed = s.unwind_above(c, 3).expect("unwind");
        assert_eq!(removed, vec![block_ref(4, 0), block_ref(5, 0)]);
        assert_eq!(s.head(c).expect("head"), Some(block_ref(3, 0)));
        assert!(
            s.transfers(
                c,
                TransferQuery::Tx {
                    tx_hash: blocks[5].transfers[2].tx_hash
                },
                10
            )
            .expect("q")
            .is_empty()
        );
        assert!(
            s.conversions_of_tx(c, blocks[4].conversions[0].tx_hash)
                .expect("q")
                .is_empty()
        );
        let left = s
            .transfers(
                c,
                TransferQuery::From {
                    address: addr(1),
                    from_block: 4,
                },
                100,
            )
            .expect("q");
        assert_eq!(
            left,
            vec![imported.clone()],
            "imported transfers are not tied to a block"
        );
        // The canonical fork goes on from the fork point.
        let fork: Vec<BlockData> = (4..6)
            .map(|n| {
                let mut b = block(c, n, 5);
                if n == 4 {
                    b.block.parent_hash = hash(3, 0);
                }
                b
            })
            .collect();
        s.apply_blocks(c, &fork).expect("canonical blocks");
        assert_eq!(s.head(c).expect("head").map(|h| h.hash), Some(hash(5, 5)));
        let stats = s.stats(c).expect("stats");
        assert_eq!((stats.blocks, stats.transfers), (6, 25));
        assert_eq!(s.unwind_above(c, 100).expect("nothing above"), vec![]);
    });
}

#[test]
fn imports_are_idempotent() {
    on_both(105, |s, c| {
        let mut ts = block(c, 10, 0).transfers;
        for t in &mut ts {
            t.block_hash = B256::ZERO;
        }
        assert_eq!(s.import_transfers(c, &ts).expect("import"), 4);
        assert_eq!(s.import_transfers(c, &ts).expect("again"), 0);
        assert_eq!(s.stats(c).expect("stats").transfers, 4);
        assert_eq!(s.head(c).expect("head"), None, "imports are not blocks");
        let got = s
            .transfers(
                c,
                TransferQuery::From {
                    address: addr(1),
                    from_block: 0,
                },
                10,
            )
            .expect("q");
        assert_eq!(got, vec![ts[0].clone(), ts[3].clone()]);
    });
}

/// Issue 13: the store keys transfers by place (block, transaction index, position), so an
/// import that put another transaction or other content at a stored place was counted as
/// "already stored" and lost. It is refused whole, naming both transfers.
#[test]
fn imports_refuse_another_transaction_or_other_content_at_a_taken_place() {
    on_both(109, |s, c| {
        let unblocked = |b: BlockData| -> Vec<Transfer> {
            b.transfers
                .into_iter()
                .map(|mut t| {
                    t.block_hash = B256::ZERO;
                    t
                })
                .collect()
        };
        let ts = unblocked(block(c, 10, 0));
        assert_eq!(s.import_transfers(c, &ts).expect("import"), 4);
        let conflict = |batch: &[Transfer], index: usize, why: Conflict| {
            let err = s.import_transfers(c, batch).expect_err("conflict");
            match &err {
                StoreError::ImportConflict {
                    index: i, why: w, ..
                } => {
                    assert_eq!((*i, *w), (index, why), "{err}");
                }
                other => panic!("expected a conflict, got {other}"),
            }
            assert_eq!(
                s.transfer_count(c).expect("count"),
                4,
                "nothing written: {err}"
            );
            err.to_string()
        };
        // Another transaction at a stored place; first in the batch a transfer that alone
        // would be new, so that "nothing written" means the whole import.
        let mut fresh = ts[0].clone();
        fresh.block_number = 12;
        let mut other = ts[0].clone();
        other.tx_hash = B256::repeat_byte(0x77);
        let text = conflict(&[fresh.clone(), other.clone()], 1, Conflict::SamePlace);
        assert!(
            text.contains(&other.tx_hash.to_string()) && text.contains(&ts[0].tx_hash.to_string()),
            "names both: {text}"
        );
        // The same transaction with another amount.
        let mut more = ts[0].clone();
        more.amount += U256::from(1);
        conflict(&[more], 0, Conflict::SamePlace);
        // Another transaction hash at the stored block and transaction index, another
        // position.
        let mut beside = ts[1].clone();
        beside.position = Position::Call {
            trace_address: vec![7],
        };
        beside.tx_hash = B256::repeat_byte(0x78);
        conflict(&[beside], 0, Conflict::OtherTransaction);
        // Within one import.
        let mut a = fresh.clone();
        a.block_number = 13;
        let mut b = a.clone();
        b.tx_hash = B256::repeat_byte(0x79);
        conflict(&[a.clone(), b], 1, Conflict::SamePlace);
        let mut b = a.clone();
        b.tx_hash = B256::repeat_byte(0x79);
        b.position = Position::Call {
            trace_address: vec![0],
        };
        conflict(&[a.clone(), b], 1, Conflict::OtherTransaction);
        // Against a stored block's transfer.
        let data = block(c, 20, 0);
        s.apply_blocks(c, std::slice::from_ref(&data))
            .expect("block");
        let mut wrong = unblocked(data.clone())[0].clone();
        wrong.to = addr(9);
        let err = s
            .import_transfers(c, &[wrong])
            .expect_err("conflict with a block");
        assert!(
            matches!(
                err,
                StoreError::ImportConflict {
                    why: Conflict::SamePlace,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(s.transfer_count(c).expect("count"), 8);
        // Agreeing records are skipped: the same transfer without a timestamp (traces.csv
        // has none), and one repeated within an import.
        let mut untimed = unblocked(data)[0].clone();
        untimed.timestamp = 0;
        assert_eq!(s.import_transfers(c, &[untimed]).expect("agrees"), 0);
        assert_eq!(
            s.import_transfers(c, &[a.clone(), a.clone()])
                .expect("twice"),
            1
        );
        assert_eq!(s.transfer_count(c).expect("count"), 9);
        // A token transfer has no transaction index in blockchain-etl's export (imported at
        // 0): another transaction's log at index 0 is no conflict.
        let mut log = ts[2].clone();
        log.tx_index = 0;
        log.position = Position::Log {
            log_index: 40,
            item: 0,
        };
        assert_eq!(s.import_transfers(c, &[log]).expect("log"), 1);
    });
}

/// Issue 13: `holdfast transfers` needs to know which chains a store holds, to use the only
/// one or name them.
#[test]
fn chains_lists_what_the_store_holds() {
    on_both(110, |s, c| {
        let other = c + 1_000;
        let held = |s: &dyn Store| {
            let chains = s.chains().expect("chains");
            assert!(
                chains.windows(2).all(|w| w[0] < w[1]),
                "ascending: {chains:?}"
            );
            (chains.contains(&c), chains.contains(&other))
        };
        assert_eq!(held(s), (false, false));
        s.apply_blocks(c, &[block(c, 0, 0)]).expect("block");
        assert_eq!(held(s), (true, false));
        let mut imported = block(other, 3, 0).transfers;
        for t in &mut imported {
            t.block_hash = B256::ZERO;
        }
        s.import_transfers(other, &imported).expect("import");
        assert_eq!(held(s), (true, true), "imported transfers count");
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("store")).expect("open");
    assert_eq!(store.chains().expect("chains"), Vec::<u64>::new());
    store.apply_blocks(7, &[block(7, 0, 0)]).expect("block");
    store.apply_blocks(5, &[block(5, 0, 0)]).expect("block");
    assert_eq!(store.chains().expect("chains"), vec![5, 7]);
    drop(store);
    let store = EmbeddedStore::open(&dir.path().join("store")).expect("reopen");
    assert_eq!(
        store.chains().expect("chains"),
        vec![5, 7],
        "after reopening"
    );
}

#[test]
fn embedded_store_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested/store");
    {
        let s = EmbeddedStore::open(&path).expect("open");
        s.apply_blocks(1, &[block(1, 0, 0), block(1, 1, 0)])
            .expect("write");
    }
    let s = EmbeddedStore::open(&path).expect("reopen");
    assert_eq!(s.head(1).expect("head"), Some(block_ref(1, 0)));
    assert_eq!(s.stats(1).expect("stats").transfers, 8);
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a store").expect("write");
    let err = EmbeddedStore::open(&file).expect_err("a file is not a store");
    assert!(err.to_string().contains("a-file"), "{err}");
}

/// The embedded store's index buffer is rebuilt from the records when the store opens
/// after a close that did not write it out (as after a kill), and its record log is a cache:
/// without it, or with its bytes destroyed, every query answers the same from the records.
#[test]
fn embedded_index_buffer_is_rebuilt_on_open_and_the_record_log_is_only_a_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let c = 7;
    let blocks: Vec<BlockData> = (0..8).map(|n| rich_block(c, n)).collect();
    // Written out after blocks 2 and 5; blocks 6 and 7 are still buffered at the close.
    let options = EmbeddedOptions {
        index_buffer: 3 * blocks[0].transfers.len(),
        ..EmbeddedOptions::default()
    };
    let all: Vec<Transfer> = blocks.iter().flat_map(|b| b.transfers.clone()).collect();
    let check = |s: &EmbeddedStore, when: &str| {
        for from_block in [0, 3, 7] {
            address_queries_match(s, c, &all, from_block, MAX_LIMIT, when);
        }
        tx_queries_match(s, c, &all, when);
    };
    {
        let s = EmbeddedStore::open_with(&path, options).expect("open");
        for b in &blocks {
            s.apply_blocks(c, std::slice::from_ref(b)).expect("write");
        }
        check(&s, "written");
        s.keep_index_buffers_on_close();
    }
    let log = path.join("records").join(format!("{c}.log"));
    {
        let s = EmbeddedStore::open_with(&path, options).expect("reopen");
        check(&s, "rebuilt");
    }
    let len = std::fs::metadata(&log).expect("log").len();
    std::fs::write(&log, vec![0xa5; len as usize]).expect("damage the log");
    {
        let s = EmbeddedStore::open_with(&path, options).expect("reopen");
        check(&s, "damaged log");
    }
    std::fs::remove_file(&log).expect("remove the log");
    let s = EmbeddedStore::open_with(&path, options).expect("reopen");
    check(&s, "no log");
    // Writes after the loss append after the lost end, and read back from the log.
    let more = rich_block(c, 8);
    s.apply_blocks(c, std::slice::from_ref(&more))
        .expect("write");
    assert!(std::fs::metadata(&log).expect("log").len() > len);
    let mut all = all;
    all.extend(more.transfers);
    address_queries_match(&s, c, &all, 0, MAX_LIMIT, "after the loss");
}

/// Block `n` with mixed positions in three transactions, every asset kind of one token
/// contract, and two tx hashes whose 32 bytes differ but fold to the same digest (their
/// first two words swapped).
fn rich_block(chain_id: u64, n: u64) -> BlockData {
    let b = block_ref(n, 0);
    let token = addr(0xcc);
    let tx = |i: u8| {
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&(n * 10 + u64::from(i)).to_be_bytes());
        h[8..16].copy_from_slice(&[i + 1; 8]);
        B256::from(h)
    };
    let swapped = |h: B256| {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&h[8..16]);
        s[8..16].copy_from_slice(&h[..8]);
        B256::from(s)
    };
    let t = |tx_hash: B256, tx_index: u32, position: Position, from: u8, to: u8, asset: Asset| {
        Transfer {
            chain_id,
            block_number: n,
            block_hash: b.hash,
            timestamp: b.timestamp,
            tx_hash,
            tx_index,
            position,
            from: addr(from),
            to: addr(to),
            asset,
            amount: U256::from(n * 1000 + u64::from(from) * 10 + u64::from(to)),
        }
    };
    let call = |a: &[u16]| Position::Call {
        trace_address: a.to_vec(),
    };
    let log = |log_index: u32, item: u16| Position::Log { log_index, item };
    let (t0, t1) = (tx(0), tx(1));
    let t2 = swapped(t1);
    // Listed out of order on purpose: the store sorts.
    let transfers = vec![
        t(
            t1,
            1,
            log(7, 1),
            5,
            6,
            Asset::Erc1155 {
                token,
                id: U256::from(2),
            },
        ),
        t(t0, 0, log(3, 0), 4, 5, Asset::Erc20 { token }),
        t(t0, 0, call(&[1]), 5, 4, Asset::Native),
        t(t0, 0, call(&[0, 1]), 4, 6, Asset::Native),
        t(
            t1,
            1,
            log(7, 0),
            5,
            4,
            Asset::Erc1155 {
                token,
                id: U256::from(2),
            },
        ),
        t(t0, 0, call(&[]), 4, 5, Asset::Native),
        t(
            t2,
            2,
            log(9, 0),
            6,
            4,
            Asset::Erc721 {
                token,
                id: U256::from(n),
            },
        ),
        t(t0, 0, call(&[0]), 5, 6, Asset::Native),
        // A zero-amount token transfer (address poisoning) and a payment to oneself.
        Transfer {
            amount: U256::ZERO,
            ..t(t2, 2, log(9, 1), 6, 4, Asset::Erc20 { token })
        },
        t(t1, 1, call(&[]), 5, 5, Asset::Native),
    ];
    BlockData {
        block: b,
        transfers,
        conversions: Vec::new(),
    }
}

/// What a query must return, computed from the written data.
/// Every transaction of `all` answers with its transfers, in block order.
fn tx_queries_match(s: &dyn Store, c: u64, all: &[Transfer], when: &str) {
    for t in all {
        assert_eq!(
            s.transfers_of_tx(c, t.tx_hash).expect("tx"),
            expected(all, |x| x.tx_hash == t.tx_hash, 0, MAX_LIMIT),
            "{when}: tx {}",
            t.tx_hash
        );
    }
}

/// "Out of" and "into" each address of `rich_block` from `from_block` answer what `all`
/// holds, in block order, at most `limit`.
fn address_queries_match(
    s: &dyn Store,
    c: u64,
    all: &[Transfer],
    from_block: u64,
    limit: usize,
    when: &str,
) {
    for a in [4, 5, 6, 9] {
        let a = addr(a);
        assert_eq!(
            s.transfers_from(c, a, from_block, limit).expect("from"),
            expected(all, |t| t.from == a, from_block, limit),
            "{when}: out of {a} from {from_block} limit {limit}"
        );
        assert_eq!(
            s.transfers_to(c, a, from_block, limit).expect("to"),
            expected(all, |t| t.to == a, from_block, limit),
            "{when}: into {a} from {from_block} limit {limit}"
        );
        for to_block in [0, from_block, from_block.saturating_add(2), u64::MAX] {
            address_entries_match(s, c, all, a, (from_block, to_block), limit, when);
            assert_eq!(
                s.transfers(
                    c,
                    TransferQuery::FromRange {
                        address: a,
                        from_block,
                        to_block,
                    },
                    limit
                )
                .expect("from range"),
                expected(
                    all,
                    |t| t.from == a && t.block_number <= to_block,
                    from_block,
                    limit
                ),
                "{when}: out of {a} in {from_block}..={to_block} limit {limit}"
            );
        }
    }
}

/// The address index's entries of `a` in both directions answer what `all` holds: the
/// place, the counterparty and whether the amount is zero of each transfer, in block order.
fn address_entries_match(
    s: &dyn Store,
    c: u64,
    all: &[Transfer],
    a: Address,
    (from_block, to_block): (u64, u64),
    limit: usize,
    when: &str,
) {
    for direction in [Direction::Out, Direction::In] {
        let side = |t: &Transfer| match direction {
            Direction::Out => (t.from, t.to),
            Direction::In => (t.to, t.from),
        };
        let want: Vec<AddressEntry> = expected(
            all,
            |t| side(t).0 == a && t.block_number <= to_block,
            from_block,
            limit,
        )
        .iter()
        .map(|t| AddressEntry {
            block_number: t.block_number,
            tx_index: t.tx_index,
            position: t.position.clone(),
            counterparty: side(t).1,
            zero_amount: t.amount.is_zero(),
        })
        .collect();
        let query = AddressQuery {
            address: a,
            direction,
            from_block,
            to_block,
        };
        assert_eq!(
            s.address_entries(c, query, limit).expect("address entries"),
            want,
            "{when}: entries {direction:?} of {a} in {from_block}..={to_block} limit {limit}"
        );
    }
}

fn expected(
    all: &[Transfer],
    keep: impl Fn(&Transfer) -> bool,
    from_block: u64,
    limit: usize,
) -> Vec<Transfer> {
    let mut v: Vec<Transfer> = all
        .iter()
        .filter(|t| t.block_number >= from_block && keep(t))
        .cloned()
        .collect();
    v.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    v.truncate(limit);
    v
}

#[test]
fn every_query_is_in_block_order_from_its_block_and_bounded() {
    on_both(106, |s, c| {
        let blocks: Vec<BlockData> = (0..6).map(|n| rich_block(c, n)).collect();
        // Three blocks in one write, then one per write.
        s.apply_blocks(c, &blocks[..3]).expect("write");
        for b in &blocks[3..] {
            s.apply_blocks(c, std::slice::from_ref(b)).expect("write");
        }
        let all: Vec<Transfer> = blocks.iter().flat_map(|b| b.transfers.clone()).collect();
        let token = addr(0xcc);
        for from_block in [0, 2, 5, 6, u64::MAX] {
            for limit in [0, 1, 3, 7, 1000, MAX_LIMIT] {
                address_queries_match(s, c, &all, from_block, limit, "");
                assert_eq!(
                    s.transfers_of_asset(c, None, from_block, limit)
                        .expect("native"),
                    expected(&all, |t| t.asset == Asset::Native, from_block, limit),
                    "native from {from_block} limit {limit}"
                );
                assert_eq!(
                    s.transfers_of_asset(c, Some(token), from_block, limit)
                        .expect("token"),
                    expected(&all, |t| t.asset.token() == Some(token), from_block, limit),
                    "token from {from_block} limit {limit}"
                );
                assert!(
                    s.transfers_of_asset(c, Some(addr(0xdd)), from_block, limit)
                        .expect("unknown token")
                        .is_empty()
                );
            }
        }
        tx_queries_match(s, c, &all, "");
        for t in &all {
            assert_eq!(
                s.transfers(c, TransferQuery::Tx { tx_hash: t.tx_hash }, 1)
                    .expect("tx"),
                expected(&all, |x| x.tx_hash == t.tx_hash, 0, 1),
            );
        }
        assert!(
            s.transfers_of_tx(c, B256::repeat_byte(0x42))
                .expect("unknown tx")
                .is_empty()
        );
        for query in [
            TransferQuery::From {
                address: addr(4),
                from_block: 0,
            },
            TransferQuery::To {
                address: addr(4),
                from_block: 0,
            },
            TransferQuery::Tx {
                tx_hash: all[0].tx_hash,
            },
            TransferQuery::Asset {
                token: None,
                from_block: 0,
            },
        ] {
            let err = s
                .transfers(c, query, MAX_LIMIT + 1)
                .expect_err("above the limit");
            assert!(
                matches!(err, StoreError::Limit(l) if l == MAX_LIMIT + 1),
                "{err}"
            );
        }
        assert_eq!(s.transfer_count(c).expect("count"), all.len() as u64);
        // Another chain sees none of it.
        assert!(
            s.transfers_from(c + 1000, addr(4), 0, 100)
                .expect("other chain")
                .is_empty()
        );
        assert_eq!(s.head(c + 1000).expect("other chain"), None);
    });
}

/// Which transfers a query gives.
type Keep = Box<dyn Fn(&Transfer) -> bool>;

/// Pages that go on after the last place of the one before (`transfers_page`,
/// `address_entries_page`) read every transfer once, in order, pages ending inside blocks
/// included (a block can hold more than a page of one address's transfers: anyone can emit
/// that many token events naming it); a cursor past the range gives nothing; a
/// transaction's or an asset's query refuses one.
#[test]
fn pages_after_a_place_give_every_transfer_once_even_inside_a_block() {
    on_both(131, |s, c| {
        let blocks: Vec<BlockData> = (0..5).map(|n| rich_block(c, n)).collect();
        s.apply_blocks(c, &blocks[..2]).expect("write");
        for b in &blocks[2..] {
            s.apply_blocks(c, std::slice::from_ref(b)).expect("write");
        }
        let all: Vec<Transfer> = blocks.iter().flat_map(|b| b.transfers.clone()).collect();
        let place = |t: &Transfer| Place::of(t);
        let mut queries: Vec<(TransferQuery, Keep)> = vec![(
            TransferQuery::Blocks {
                from_block: 1,
                to_block: 3,
            },
            Box::new(|t: &Transfer| (1..=3).contains(&t.block_number)),
        )];
        for a in [4u8, 5, 6] {
            let a = addr(a);
            queries.push((
                TransferQuery::From {
                    address: a,
                    from_block: 1,
                },
                Box::new(move |t: &Transfer| t.from == a && t.block_number >= 1),
            ));
            queries.push((
                TransferQuery::FromRange {
                    address: a,
                    from_block: 0,
                    to_block: 2,
                },
                Box::new(move |t: &Transfer| t.from == a && t.block_number <= 2),
            ));
            queries.push((
                TransferQuery::To {
                    address: a,
                    from_block: 0,
                },
                Box::new(move |t: &Transfer| t.to == a),
            ));
        }
        for (query, keep) in &queries {
            let want = expected(&all, |t| keep(t), 0, MAX_LIMIT);
            assert!(want.len() > 3, "{query:?} pages");
            for page in [1, 2, 3] {
                let mut got: Vec<Transfer> = Vec::new();
                loop {
                    let next = s
                        .transfers_page(c, *query, got.last().map(place).as_ref(), page)
                        .expect("page");
                    assert!(next.len() <= page);
                    let end = next.len() < page;
                    got.extend(next);
                    if end {
                        break;
                    }
                }
                assert_eq!(got, want, "{query:?} in pages of {page}");
            }
            // After each place: exactly what follows it.
            for (i, t) in want.iter().enumerate() {
                assert_eq!(
                    s.transfers_page(c, *query, Some(&place(t)), MAX_LIMIT)
                        .expect("after"),
                    want[i + 1..].to_vec(),
                    "{query:?} after {t:?}"
                );
            }
            // A cursor at another address's transfer, between places of this query's.
            for t in &all {
                let after = place(t);
                assert_eq!(
                    s.transfers_page(c, *query, Some(&after), MAX_LIMIT)
                        .expect("after"),
                    want.iter()
                        .filter(|w| place(w) > after)
                        .cloned()
                        .collect::<Vec<_>>(),
                    "{query:?} after {after:?}"
                );
            }
        }
        // The same for the address index's entries, both directions.
        for a in [4u8, 5, 6] {
            for direction in [Direction::Out, Direction::In] {
                let query = AddressQuery {
                    address: addr(a),
                    direction,
                    from_block: 1,
                    to_block: 3,
                };
                let want = s.address_entries(c, query, MAX_LIMIT).expect("entries");
                assert!(want.len() > 2, "{query:?}");
                for page in [1, 2] {
                    let mut got: Vec<AddressEntry> = Vec::new();
                    loop {
                        let after = got.last().map(Place::from);
                        let next = s
                            .address_entries_page(c, query, after.as_ref(), page)
                            .expect("page");
                        let end = next.len() < page;
                        got.extend(next);
                        if end {
                            break;
                        }
                    }
                    assert_eq!(got, want, "{query:?} in pages of {page}");
                }
            }
        }
        // Past the range: nothing.
        let last = place(all.last().expect("some"));
        assert!(
            s.transfers_page(
                c,
                TransferQuery::Blocks {
                    from_block: 0,
                    to_block: 2
                },
                Some(&last),
                10
            )
            .expect("past")
            .is_empty()
        );
        for query in [
            TransferQuery::Tx {
                tx_hash: all[0].tx_hash,
            },
            TransferQuery::Asset {
                token: None,
                from_block: 0,
            },
        ] {
            let err = s
                .transfers_page(c, query, Some(&last), 10)
                .expect_err("no cursor there");
            assert!(
                matches!(err, StoreError::Argument { field: "after", .. }),
                "{err}"
            );
        }
    });
}

/// Writes block 0, then a three-block write that panics in its second block, then checks
/// that nothing of it is visible and that the store still works.
fn interrupted_write_leaves_nothing(s: &dyn Store, c: u64, arm: &dyn Fn(usize)) {
    s.apply_blocks(c, &[block(c, 0, 0)]).expect("write");
    let write: Vec<BlockData> = (1..4).map(|n| block(c, n, 0)).collect();
    arm(6); // block 1 has transfers 1 to 4: the panic comes in block 2
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.apply_blocks(c, &write)));
    assert!(outcome.is_err(), "the injected panic happened");
    assert_eq!(s.head(c).expect("head"), Some(block_ref(0, 0)));
    assert_eq!(s.block(c, 1).expect("block"), None);
    let stats = s.stats(c).expect("stats");
    assert_eq!(
        (stats.blocks, stats.transfers, stats.conversions),
        (1, 4, 1)
    );
    assert!(
        s.transfers_of_tx(c, write[0].transfers[0].tx_hash)
            .expect("tx")
            .is_empty()
    );
    assert!(
        s.conversions_of_tx(c, write[0].conversions[0].tx_hash)
            .expect("conversions")
            .is_empty()
    );
    assert_eq!(s.transfers_from(c, addr(1), 1, 100).expect("from"), vec![]);
    // The same write goes through afterwards.
    assert_eq!(
        s.apply_blocks(c, &write).expect("write again"),
        vec![Applied::Written; 3]
    );
    assert_eq!(s.transfer_count(c).expect("count"), 16);
    // An interrupted import leaves nothing either.
    let mut imported = block(c, 20, 0).transfers;
    for t in &mut imported {
        t.block_hash = B256::ZERO;
    }
    arm(2);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        s.import_transfers(c, &imported)
    }));
    assert!(outcome.is_err(), "the injected panic happened");
    assert_eq!(s.transfer_count(c).expect("count"), 16);
    assert_eq!(s.import_transfers(c, &imported).expect("import"), 4);
}

#[test]
fn a_write_interrupted_by_a_panic_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let embedded = EmbeddedStore::open(&dir.path().join("store")).expect("open");
    interrupted_write_leaves_nothing(&embedded, 107, &|n| embedded.panic_during_next_write(n));
    let url = pg();
    if !url.is_empty() {
        let pg = PgStore::connect(url).expect("connect");
        interrupted_write_leaves_nothing(&pg, 107, &|n| pg.panic_during_next_write(n));
    }
}

#[test]
fn a_block_written_after_an_import_of_its_transfers_keeps_the_imported_ones() {
    on_both(108, |s, c| {
        let blocks: Vec<BlockData> = (0..4).map(|n| block(c, n, 0)).collect();
        let mut imported = blocks[3].transfers[..2].to_vec();
        for t in &mut imported {
            t.block_hash = B256::ZERO;
        }
        assert_eq!(s.import_transfers(c, &imported).expect("import"), 2);
        assert_eq!(
            s.apply_blocks(c, &blocks).expect("write"),
            vec![Applied::Written; 4]
        );
        assert_eq!(s.transfer_count(c).expect("count"), 16, "no duplicates");
        let tx = s
            .transfers_of_tx(c, blocks[3].transfers[0].tx_hash)
            .expect("tx");
        assert_eq!(tx, imported, "the imported copies stay as they were");
        // An unwind removes the block's own transfers and keeps the imported ones.
        s.unwind_above(c, 2).expect("unwind");
        assert_eq!(s.transfer_count(c).expect("count"), 14);
        assert_eq!(
            s.transfers_of_tx(c, blocks[3].transfers[0].tx_hash)
                .expect("tx"),
            imported
        );
        assert_eq!(
            s.transfers_of_asset(c, None, 3, 100).expect("native"),
            imported
        );
        assert_eq!(
            s.transfers_from(c, addr(1), 3, 100).expect("from"),
            imported[..1].to_vec()
        );
        // Written again, the block is whole once more.
        s.apply_blocks(c, &blocks[3..]).expect("write again");
        assert_eq!(s.transfer_count(c).expect("count"), 16);
    });
}

#[test]
fn postgres_store_survives_reconnect_and_migrates_once() {
    let url = pg();
    if url.is_empty() {
        return;
    }
    {
        // A chain of its own: the server is shared with the suite's other tests (109 is
        // `on_both`'s, and raced with it).
        let s = PgStore::connect(url).expect("connect");
        s.apply_blocks(4109, &[block(4109, 0, 0), block(4109, 1, 0)])
            .expect("write");
    }
    let s = PgStore::connect(url).expect("reconnect");
    assert_eq!(s.head(4109).expect("head"), Some(block_ref(1, 0)));
    assert_eq!(s.transfer_count(4109).expect("count"), 8);
    let mut c = postgres::Client::connect(url, postgres::NoTls).expect("client");
    let versions: Vec<i32> = c
        .query("SELECT version FROM holdfast_schema ORDER BY version", &[])
        .expect("versions")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, vec![1, 2], "each migration recorded once");
}

/// A PostgreSQL store whose last handle is dropped on an async runtime's thread (how
/// `holdfast ingest --store postgres…` ended) closes its connection without panicking: the
/// synchronous client blocks on a runtime of its own when closed.
#[test]
fn postgres_store_dropped_on_an_async_runtime_does_not_panic() {
    let url = pg();
    if url.is_empty() {
        return;
    }
    let s = PgStore::connect(url).expect("connect");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move { drop(s) });
}

/// `address_entries` on PostgreSQL reads the address indexes alone (an index-only scan with
/// no heap fetch once vacuumed), and a database at schema version 1, whose plain address
/// indexes do not cover it, is migrated to the covering ones and answers the same.
#[test]
fn postgres_address_entries_are_an_index_only_scan_after_migrating_from_version_1() {
    let Some(url) = crate::pg_db() else {
        return;
    };
    let c = 111;
    let blocks: Vec<BlockData> = (0..4).map(|n| rich_block(c, n)).collect();
    let all: Vec<Transfer> = blocks.iter().flat_map(|b| b.transfers.clone()).collect();
    PgStore::connect(&url)
        .expect("connect")
        .apply_blocks(c, &blocks)
        .expect("write");
    let mut db = postgres::Client::connect(&url, postgres::NoTls).expect("client");
    // Back to schema version 1 as released: the plain address indexes.
    db.batch_execute(
        "DROP INDEX transfers_from_entries; DROP INDEX transfers_to_entries;
         CREATE INDEX transfers_from ON transfers (chain_id, from_addr, block_number, tx_index, position);
         CREATE INDEX transfers_to ON transfers (chain_id, to_addr, block_number, tx_index, position);
         DELETE FROM holdfast_schema WHERE version > 1",
    )
    .expect("schema version 1");
    let plan = |db: &mut postgres::Client, side: &str, other: &str| -> String {
        db.batch_execute("VACUUM ANALYZE transfers")
            .expect("vacuum");
        let mut t = db.transaction().expect("transaction");
        // The table is tiny: without these the planner reads it whole.
        t.batch_execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off")
            .expect("set");
        let sql = format!(
            "EXPLAIN (ANALYZE, COSTS OFF) SELECT block_number, tx_index, position, {other}, amount = 0 FROM transfers WHERE chain_id = $1 AND {side} = $2 AND block_number >= $3 AND block_number <= $4 ORDER BY block_number, tx_index, position LIMIT $5"
        );
        let rows = t
            .query(
                &sql,
                &[&(c as i64), &addr(4).as_slice(), &0i64, &i64::MAX, &100i64],
            )
            .expect("explain");
        rows.iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let old = plan(&mut db, "from_addr", "to_addr");
    assert!(!old.contains("Index Only Scan"), "{old}");
    let s = PgStore::connect(&url).expect("migrates");
    let versions: Vec<i32> = db
        .query("SELECT version FROM holdfast_schema ORDER BY version", &[])
        .expect("versions")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, vec![1, 2]);
    for (side, other, index) in [
        ("from_addr", "to_addr", "transfers_from_entries"),
        ("to_addr", "from_addr", "transfers_to_entries"),
    ] {
        let p = plan(&mut db, side, other);
        assert!(
            p.contains(&format!("Index Only Scan using {index}")) && p.contains("Heap Fetches: 0"),
            "{p}"
        );
    }
    for from_block in [0, 2] {
        address_queries_match(&s, c, &all, from_block, MAX_LIMIT, "migrated");
    }
}
