//! One behaviour suite, run on both backends.

use std::sync::OnceLock;

use alloy_primitives::{Address, B256, U256};
use holdfast_primitives::{Asset, BlockRef, Conversion, ConversionKind, Position, Transfer};
use holdfast_store::testing::TempPostgres;
use holdfast_store::{
    Applied, BlockData, EmbeddedStore, PgStore, Store, StoreError, TransferQuery,
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

/// Runs `check` on a fresh embedded store and on PostgreSQL (distinct chain ids keep
/// parallel tests apart on the shared server).
fn on_both(chain_id: u64, check: impl Fn(&dyn Store, u64)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let embedded = EmbeddedStore::open(&dir.path().join("store")).expect("open");
    check(&embedded, chain_id);
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
