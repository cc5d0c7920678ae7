//! Rebuilding a chain's clusters from the stored transactions, on both backends: the same
//! clusters as the block-by-block writes, undo records that let an unwind afterwards restore
//! the earlier clusters, and an interrupted rebuild either changing nothing (PostgreSQL, one
//! transaction) or leaving the chain marked, every cluster read, block write and unwind
//! refused until a rebuild finishes (embedded); imported history clustered out of order
//! clustered again in block order.

use std::cell::Cell;

use alloy_primitives::B256;
use holdfast_primitives::BlockRef;
use holdfast_store::StoreError;
use holdfast_store::utxo::{
    EmbeddedUtxoStore, NoProgress, OutPointKey, PgUtxoStore, RebuildOptions, RebuildProgress,
    RebuildStep, TxInput, TxOutput, TxRecord, UtxoChanges, UtxoRecord, UtxoStore, is_coinjoin,
};

use crate::utxo::{CHAIN, block};

/// Undo records kept by the stores under test: the newest five blocks.
const KEEP: u64 = 5;
const BLOCKS: u64 = 14;

fn addr(n: u64) -> String {
    format!("bcrt1qrb{n:02}")
}

/// A chain of `BLOCKS` blocks over 24 addresses: each block a coinbase paying four of them,
/// then transactions spending one to four earlier outputs (consolidations link clusters), some
/// CoinJoin-like (three or more inputs of several owners, three equal outputs).
fn chain() -> Vec<(BlockRef, UtxoChanges)> {
    let mut rng = 0x0c1d_5e7e_u64 | 1;
    let mut next = move || {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut unspent: Vec<(OutPointKey, UtxoRecord)> = Vec::new();
    let mut out = Vec::new();
    for h in 1..=BLOCKS {
        let txid = |i: u64| {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&h.to_be_bytes());
            b[8..16].copy_from_slice(&i.to_be_bytes());
            B256::from(b)
        };
        let record = |value, coinbase, a: u64| UtxoRecord {
            value,
            height: h,
            coinbase,
            script: vec![0x00, 0x14, a as u8],
            address: Some(addr(a)),
        };
        let mut changes = UtxoChanges::default();
        let coinbase: Vec<(OutPointKey, UtxoRecord)> = (0..4)
            .map(|v| {
                (
                    OutPointKey {
                        txid: txid(0),
                        vout: v,
                    },
                    record(1_000_000, true, next() % 24),
                )
            })
            .collect();
        let as_output = |r: &UtxoRecord| TxOutput {
            value: r.value,
            script: r.script.clone(),
            address: r.address.clone(),
        };
        changes.transactions.push(TxRecord {
            txid: txid(0),
            coinbase: true,
            inputs: vec![],
            outputs: coinbase.iter().map(|(_, r)| as_output(r)).collect(),
        });
        let mut created = coinbase;
        for i in 1..=(next() % 5) {
            if unspent.is_empty() {
                break;
            }
            let n = (1 + next() % 4).min(unspent.len() as u64);
            let ins: Vec<(OutPointKey, UtxoRecord)> = (0..n)
                .map(|_| unspent.swap_remove((next() % unspent.len() as u64) as usize))
                .collect();
            let total: u64 = ins.iter().map(|(_, r)| r.value).sum();
            let mix = n >= 3 && next() % 3 == 0;
            let outs: Vec<u64> = if mix {
                vec![total / 4; 3]
            } else {
                vec![total / 2, total / 3]
            };
            let outs: Vec<(OutPointKey, UtxoRecord)> = outs
                .iter()
                .enumerate()
                .map(|(v, value)| {
                    (
                        OutPointKey {
                            txid: txid(i),
                            vout: v as u32,
                        },
                        record(*value, false, next() % 24),
                    )
                })
                .collect();
            changes.transactions.push(TxRecord {
                txid: txid(i),
                coinbase: false,
                inputs: ins
                    .iter()
                    .map(|(op, r)| TxInput {
                        prevout: *op,
                        value: r.value,
                        address: r.address.clone(),
                    })
                    .collect(),
                outputs: outs.iter().map(|(_, r)| as_output(r)).collect(),
            });
            changes.spent.extend(ins);
            created.extend(outs);
        }
        unspent.extend(created.iter().cloned());
        changes.created = created;
        out.push((block(h, 0, 0), changes));
    }
    out
}

/// Every address's cluster: root, size and members (sorted).
fn clusters(s: &dyn UtxoStore) -> Vec<(String, u64, Vec<String>)> {
    clusters_of(s, CHAIN)
}

fn clusters_of(s: &dyn UtxoStore, chain: u64) -> Vec<(String, u64, Vec<String>)> {
    (0..24)
        .map(|n| {
            let c = s.cluster(chain, &addr(n)).expect("cluster");
            let mut members = s.cluster_members(chain, &c.root, 100).expect("members");
            assert_eq!(members.len() as u64, c.size);
            members.sort();
            (c.root, c.size, members)
        })
        .collect()
}

/// A progress that stops the rebuild at its first write.
struct StopAtWrite(Cell<u32>);
impl RebuildProgress for StopAtWrite {
    fn step(&self, step: RebuildStep) -> bool {
        self.0.set(self.0.get() + 1);
        !matches!(step, RebuildStep::Write { .. })
    }
}

struct StopAtRead;
impl RebuildProgress for StopAtRead {
    fn step(&self, _: RebuildStep) -> bool {
        false
    }
}

fn rebuilding(r: Result<impl std::fmt::Debug, StoreError>) {
    match r {
        Err(e @ StoreError::ClustersRebuilding { chain_id: CHAIN }) => {
            assert!(e.to_string().contains("holdfast clusters rebuild"), "{e}");
        }
        other => panic!("expected the rebuild mark's refusal, got {other:?}"),
    }
}

/// `marks`: the backend marks a partial rebuild (embedded) rather than rolling it back.
fn rebuild_equals_ingestion(s: &dyn UtxoStore, marks: bool) {
    let blocks = chain();
    assert!(
        blocks
            .iter()
            .flat_map(|(_, c)| &c.transactions)
            .any(is_coinjoin),
        "the chain has a CoinJoin-like transaction"
    );
    let mut states = vec![clusters(s)];
    for (b, c) in &blocks {
        s.apply_block(CHAIN, b, c).expect("apply");
        states.push(clusters(s));
    }
    assert!(
        states[BLOCKS as usize].iter().any(|(_, n, _)| *n >= 4),
        "clusters grew: {:?}",
        states[BLOCKS as usize]
    );

    // Stopped while reading: nothing changed, on both backends.
    match s.rebuild_clusters(CHAIN, RebuildOptions::default(), &StopAtRead) {
        Err(StoreError::Interrupted {
            chain_id: CHAIN, ..
        }) => {}
        other => panic!("expected an interruption, got {other:?}"),
    }
    // Over the memory limit: refused before anything is written.
    let tight = RebuildOptions {
        memory_limit: Some(16),
    };
    match s.rebuild_clusters(CHAIN, tight, &NoProgress) {
        Err(StoreError::Invalid { what, .. }) => assert!(what.contains("limit"), "{what}"),
        other => panic!("expected the memory limit's refusal, got {other:?}"),
    }
    assert_eq!(clusters(s), states[BLOCKS as usize]);

    // The rebuild: the same clusters.
    let report = s
        .rebuild_clusters(CHAIN, RebuildOptions::default(), &NoProgress)
        .expect("rebuild");
    assert_eq!(report.blocks, BLOCKS);
    assert_eq!(
        report.transactions,
        blocks
            .iter()
            .map(|(_, c)| c.transactions.len() as u64)
            .sum::<u64>()
    );
    assert_eq!(report.undo_blocks, KEEP);
    let last = &states[BLOCKS as usize];
    let mut roots: Vec<&String> = last.iter().filter(|c| c.1 > 1).map(|c| &c.0).collect();
    roots.sort();
    roots.dedup();
    assert_eq!(report.clusters, roots.len() as u64);
    assert_eq!(report.largest, last.iter().map(|c| c.1).max().unwrap_or(0));
    assert_eq!(
        report.addresses,
        last.iter().filter(|c| c.1 > 1).count() as u64
    );
    assert_eq!(clusters(s), states[BLOCKS as usize]);

    // Unwinds after the rebuild restore the earlier clusters (its undo records), and the
    // blocks written again give the same clusters.
    s.unwind_above(CHAIN, BLOCKS - 2).expect("unwind two");
    assert_eq!(clusters(s), states[(BLOCKS - 2) as usize]);
    s.unwind_above(CHAIN, BLOCKS - KEEP)
        .expect("unwind to the oldest kept");
    assert_eq!(clusters(s), states[(BLOCKS - KEEP) as usize]);
    for (b, c) in &blocks[(BLOCKS - KEEP) as usize..] {
        s.apply_block(CHAIN, b, c).expect("again");
    }
    assert_eq!(clusters(s), states[BLOCKS as usize]);

    // Stopped at its first write.
    let stop = StopAtWrite(Cell::new(0));
    match s.rebuild_clusters(CHAIN, RebuildOptions::default(), &stop) {
        Err(StoreError::Interrupted {
            chain_id: CHAIN, ..
        }) => {}
        other => panic!("expected an interruption, got {other:?}"),
    }
    if marks {
        // Marked: refused, never read half-written.
        rebuilding(s.cluster(CHAIN, &addr(0)));
        rebuilding(s.cluster_members(CHAIN, &addr(0), 10));
        rebuilding(s.unwind_above(CHAIN, BLOCKS - 1));
        let next = chain_tail();
        rebuilding(s.apply_block(CHAIN, &next.0, &next.1));
    } else {
        // One transaction: nothing changed.
        assert_eq!(clusters(s), states[BLOCKS as usize]);
    }
    // Run again: whole, and writable again.
    s.rebuild_clusters(CHAIN, RebuildOptions::default(), &NoProgress)
        .expect("rebuild again");
    assert_eq!(clusters(s), states[BLOCKS as usize]);
    s.unwind_above(CHAIN, BLOCKS - 1).expect("unwind one");
    assert_eq!(clusters(s), states[(BLOCKS - 1) as usize]);
}

/// Imported history clustered in the order it came (here newest block first) is clustered
/// again in block order by a rebuild: the same partition before and after, and after it the
/// very entries (roots included) of the same history imported oldest first; the entries the
/// rebuild does not overwrite are gone (every member listing is whole).
fn imported_out_of_order_is_rebuilt_in_block_order(s: &dyn UtxoStore) {
    const BACKWARDS: u64 = 1_013;
    const FORWARDS: u64 = 1_014;
    let blocks = chain();
    for (b, c) in blocks.iter().rev() {
        s.import_block(BACKWARDS, b, &c.transactions)
            .expect("import");
    }
    for (b, c) in &blocks {
        s.import_block(FORWARDS, b, &c.transactions)
            .expect("import");
    }
    let partition = |chain| -> Vec<Vec<String>> {
        clusters_of(s, chain)
            .into_iter()
            .map(|(_, _, m)| m)
            .collect()
    };
    let (backwards, forwards) = (clusters_of(s, BACKWARDS), clusters_of(s, FORWARDS));
    assert_eq!(partition(BACKWARDS), partition(FORWARDS));
    assert_ne!(backwards, forwards, "the import order changed some roots");
    let report = s
        .rebuild_clusters(BACKWARDS, RebuildOptions::default(), &NoProgress)
        .expect("rebuild");
    assert_eq!(report.blocks, BLOCKS);
    assert_eq!(report.undo_blocks, 0, "imports keep no undo records");
    assert_eq!(clusters_of(s, BACKWARDS), forwards);
    // The other chain untouched.
    assert_eq!(clusters_of(s, FORWARDS), forwards);
}

/// A block on top of the chain (one coinbase), to see a write refused.
fn chain_tail() -> (BlockRef, UtxoChanges) {
    let h = BLOCKS + 1;
    let op = OutPointKey {
        txid: B256::repeat_byte(0xee),
        vout: 0,
    };
    let r = UtxoRecord {
        value: 5,
        height: h,
        coinbase: true,
        script: vec![0x51],
        address: None,
    };
    (
        block(h, 0, 0),
        UtxoChanges {
            created: vec![(op, r.clone())],
            transactions: vec![TxRecord {
                txid: op.txid,
                coinbase: true,
                inputs: vec![],
                outputs: vec![TxOutput {
                    value: r.value,
                    script: r.script,
                    address: None,
                }],
            }],
            ..Default::default()
        },
    )
}

#[test]
fn rebuild_embedded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = EmbeddedUtxoStore::open_with(dir.path(), Some(KEEP)).expect("open");
    rebuild_equals_ingestion(&s, true);
    imported_out_of_order_is_rebuilt_in_block_order(&s);
}

/// The mark outlives the process: reopened, the chain is still refused until a rebuild.
#[test]
fn rebuild_mark_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let before = {
        let s = EmbeddedUtxoStore::open_with(dir.path(), Some(KEEP)).expect("open");
        for (b, c) in &chain() {
            s.apply_block(CHAIN, b, c).expect("apply");
        }
        let before = clusters(&s);
        let stop = StopAtWrite(Cell::new(0));
        assert!(
            s.rebuild_clusters(CHAIN, RebuildOptions::default(), &stop)
                .is_err()
        );
        before
    };
    let s = EmbeddedUtxoStore::open_with(dir.path(), Some(KEEP)).expect("reopen");
    rebuilding(s.cluster(CHAIN, &addr(0)));
    s.rebuild_clusters(CHAIN, RebuildOptions::default(), &NoProgress)
        .expect("rebuild");
    assert_eq!(clusters(&s), before);
    // Another chain was never marked.
    assert_eq!(s.cluster(CHAIN + 1, &addr(0)).expect("other").size, 1);
}

#[test]
fn rebuild_postgres() {
    let Some(url) = crate::pg_db() else { return };
    let s = PgUtxoStore::connect_with(&url, Some(KEEP)).expect("connect");
    rebuild_equals_ingestion(&s, false);
    imported_out_of_order_is_rebuilt_in_block_order(&s);
}
