//! The watch's state store, one behaviour suite on both backends: a block's alerts, outbox
//! events and checkpoint are one atomic commit (refused whole on a parent mismatch, a stale
//! fence, a bad alert, an injected failure); unwinds retract; alerts are queried, paged and
//! acknowledged; sinks' cursors. Races, leases and crashes: `races`. Forgetting a cursor
//! and the kept Safe searches: `meta`.

mod meta;
mod races;

use std::sync::Arc;

use alloy_primitives::B256;
use holdfast_primitives::BlockRef;
use holdfast_store::watch::{
    AlertEventKind, AlertQuery, AlertStatus, BlockCommit, EmbeddedWatchStore, MAX_ALERT_BYTES,
    NewAlert, PgWatchStore, WatchStore,
};
use holdfast_store::{MAX_LIMIT, StoreError};

use crate::pg_db;

/// Runs `check` on each backend. `make()` gives the store again (embedded: the same one;
/// PostgreSQL: another instance, its own connections, on the same database).
pub(crate) fn backends(check: impl Fn(&dyn Fn() -> Arc<dyn WatchStore>)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let embedded: Arc<dyn WatchStore> =
        Arc::new(EmbeddedWatchStore::open(&dir.path().join("watch")).expect("open"));
    check(&|| embedded.clone());
    if let Some(url) = pg_db() {
        check(&|| {
            Arc::new(PgWatchStore::connect(&url, 2).expect("connect")) as Arc<dyn WatchStore>
        });
    }
}

pub(crate) fn hash(chain: u64, n: u64, fork: u8) -> B256 {
    let mut h = [fork; 32];
    h[..8].copy_from_slice(&chain.to_be_bytes());
    h[8..16].copy_from_slice(&n.to_be_bytes());
    B256::from(h)
}

/// Block `n` of fork `fork` whose parent is block `n - 1` of fork `parent_fork`.
pub(crate) fn block(chain: u64, n: u64, fork: u8, parent_fork: u8) -> BlockRef {
    BlockRef {
        number: n,
        hash: hash(chain, n, fork),
        parent_hash: hash(chain, n.wrapping_sub(1), parent_fork),
        timestamp: 1_700_000_000 + n * 12,
    }
}

pub(crate) fn alert(id: &str, rule: &str, severity: u8) -> NewAlert {
    NewAlert {
        id: id.into(),
        rule: rule.into(),
        severity,
        raised_at_ms: 1_000,
        body: format!("{{\"id\":\"{id}\",\"rule\":\"{rule}\"}}").into_bytes(),
    }
}

pub(crate) fn commit(block: BlockRef, chain: u64, alerts: Vec<NewAlert>) -> BlockCommit {
    BlockCommit {
        chain_id: chain,
        state: format!("state after {}", block.number).into_bytes(),
        block,
        alerts,
        confirm: Vec::new(),
        forget_below: 0,
        fence: None,
    }
}

/// Commits blocks `from..=to` of fork 0 on `chain`, with alert `<chain>-<n>` in each block
/// whose number is a multiple of `every`.
pub(crate) fn run(s: &dyn WatchStore, chain: u64, from: u64, to: u64, every: u64) {
    for n in from..=to {
        let alerts = if n % every == 0 {
            vec![alert(&format!("c{chain}-{n}"), "drain", (n % 5) as u8)]
        } else {
            Vec::new()
        };
        s.commit_block(&commit(block(chain, n, 0, 0), chain, alerts))
            .unwrap_or_else(|e| panic!("commit {chain}/{n}: {e}"));
    }
}

/// Everything a failed write must leave as it was.
fn snapshot(s: &dyn WatchStore, chain: u64) -> impl PartialEq + std::fmt::Debug {
    let q = AlertQuery {
        limit: MAX_LIMIT,
        ..AlertQuery::default()
    };
    (
        s.checkpoint(chain).expect("checkpoint"),
        s.outbox_head().expect("head"),
        s.outbox_since(0, MAX_LIMIT).expect("outbox"),
        s.alerts(&q).expect("alerts"),
    )
}

#[test]
fn a_commit_records_the_block_its_alerts_and_their_events() {
    backends(|make| {
        let s = make();
        assert_eq!(s.checkpoint(1).expect("checkpoint"), None);
        assert_eq!(s.outbox_head().expect("head"), 0);
        // Any block may start a chain's watch.
        let b5 = block(1, 5, 0, 0);
        s.commit_block(&commit(
            b5,
            1,
            vec![alert("a", "singleton", 4), alert("b", "drain", 2)],
        ))
        .expect("commit");
        let b6 = block(1, 6, 0, 0);
        s.commit_block(&commit(b6, 1, vec![])).expect("commit");
        let cp = s.checkpoint(1).expect("checkpoint").expect("some");
        assert_eq!((cp.block, cp.state.as_slice()), (b6, &b"state after 6"[..]));
        assert_eq!(s.processed_block(1, 5).expect("read"), Some(b5));
        assert_eq!(s.processed_block(1, 4).expect("read"), None);
        let a = s.alert("a").expect("read").expect("stored");
        assert_eq!(
            (
                a.chain_id,
                a.block_number,
                a.block_hash,
                a.rule.as_str(),
                a.severity,
                a.status,
                a.confirmed,
                a.acknowledged.clone()
            ),
            (
                1,
                5,
                b5.hash,
                "singleton",
                4,
                AlertStatus::Open,
                false,
                None
            )
        );
        assert_eq!(a.body, alert("a", "singleton", 4).body);
        let events = s.outbox_since(0, 10).expect("outbox");
        let seen: Vec<(u64, &str, AlertEventKind)> = events
            .iter()
            .map(|e| (e.seq, e.alert_id.as_str(), e.kind))
            .collect();
        assert_eq!(
            seen,
            [
                (1, "a", AlertEventKind::Raised),
                (2, "b", AlertEventKind::Raised)
            ]
        );
        assert_eq!(events[0].key(), "a");
        assert_eq!(s.outbox_head().expect("head"), 2);
        assert_eq!(s.outbox_since(1, 10).expect("outbox").len(), 1);
        assert_eq!(s.outbox_since(2, 10).expect("outbox"), []);
        assert_eq!(s.outbox_since(0, 1).expect("outbox").len(), 1);
        // Another instance sees the same.
        assert_eq!(
            make().alert("b").expect("read").map(|a| a.block_number),
            Some(5)
        );
        // Another chain is independent.
        s.commit_block(&commit(block(2, 1, 0, 0), 2, vec![]))
            .expect("other chain");
        assert_eq!(
            s.checkpoint(1).expect("checkpoint").map(|c| c.block.number),
            Some(6)
        );
    });
}

#[test]
fn a_refused_commit_writes_nothing() {
    backends(|make| {
        let s = make();
        run(&*s, 1, 1, 3, 1);
        let before = snapshot(&*s, 1);
        let next = block(1, 4, 0, 0);
        let with = |f: &dyn Fn(&mut BlockCommit)| {
            let mut c = commit(
                next,
                1,
                vec![alert("new-1", "r", 1), alert("new-2", "r", 1)],
            );
            f(&mut c);
            s.commit_block(&c).expect_err("refused")
        };
        // Not the checkpoint's child: another parent, a gap, the same block again.
        let e = with(&|c| c.block = block(1, 4, 0, 9));
        assert!(
            matches!(
                e,
                StoreError::ParentMismatch {
                    number: 4,
                    below: 3,
                    ..
                }
            ),
            "{e}"
        );
        let e = with(&|c| c.block = block(1, 5, 0, 0));
        assert!(matches!(e, StoreError::Invalid { number: 5, .. }), "{e}");
        let e = with(&|c| c.block = block(1, 3, 0, 0));
        assert!(matches!(e, StoreError::Invalid { number: 3, .. }), "{e}");
        // A bad alert anywhere in the block: too large, not JSON, no id, a severity above 4.
        let e = with(&|c| c.alerts[1].body = vec![b' '; MAX_ALERT_BYTES + 1]);
        assert!(
            e.to_string().contains("new-2: body is 1048577 bytes"),
            "{e}"
        );
        let e = with(&|c| c.alerts[1].body = b"{\"unterminated".to_vec());
        assert!(e.to_string().contains("new-2: body is not JSON"), "{e}");
        let e = with(&|c| c.alerts[1].id = String::new());
        assert!(e.to_string().contains("alert id \"\": expected"), "{e}");
        let e = with(&|c| c.alerts[0].severity = 5);
        assert!(e.to_string().contains("severity 5 is above 4"), "{e}");
        let e = with(&|c| c.state = vec![0; holdfast_store::watch::MAX_STATE_BYTES + 1]);
        assert!(e.to_string().contains("state is"), "{e}");
        // A fence on a chain nobody leased.
        let e = with(&|c| c.fence = Some(1));
        assert!(
            matches!(
                e,
                StoreError::LeaseLost {
                    chain_id: 1,
                    fence: Some(1),
                    holder: None,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(snapshot(&*s, 1), before);
        assert_eq!(s.alert("new-1").expect("read"), None);
        // The same block, right, then commits.
        s.commit_block(&commit(next, 1, vec![alert("new-1", "r", 1)]))
            .expect("commit");
    });
}

#[test]
fn a_commit_that_fails_before_it_is_written_leaves_nothing() {
    fn check<S: WatchStore>(s: &S, fail: &dyn Fn(&S)) {
        run(s, 1, 1, 4, 2);
        let before = snapshot(s, 1);
        fail(s);
        let c = BlockCommit {
            confirm: vec!["c1-2".into()],
            forget_below: 4,
            ..commit(
                block(1, 5, 0, 0),
                1,
                vec![alert("x", "r", 1), alert("y", "r", 2)],
            )
        };
        assert!(s.commit_block(&c).is_err());
        assert_eq!(snapshot(s, 1), before);
        assert_eq!(s.alert("x").expect("read"), None);
        assert!(
            s.processed_block(1, 2).expect("read").is_some(),
            "nothing forgotten"
        );
        fail(s);
        assert!(s.unwind_above(1, 2, b"u", None).is_err());
        assert_eq!(snapshot(s, 1), before);
        assert_eq!(
            s.alert("c1-4").expect("read").map(|a| a.status),
            Some(AlertStatus::Open)
        );
        // Then the same commit succeeds whole.
        s.commit_block(&c).expect("commit");
        assert_eq!(s.outbox_head().expect("head"), 5);
        assert_eq!(s.processed_block(1, 3).expect("read"), None);
        assert_eq!(
            s.alert("c1-2").expect("read").map(|a| a.confirmed),
            Some(true)
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    check(&EmbeddedWatchStore::open(dir.path()).expect("open"), &|s| {
        s.fail_next_commit()
    });
    if let Some(url) = pg_db() {
        check(&PgWatchStore::connect(&url, 1).expect("connect"), &|s| {
            s.fail_next_commit()
        });
    }
}

#[test]
fn an_unwind_retracts_the_alerts_above_and_a_block_coming_back_raises_them_again() {
    backends(|make| {
        let s = make();
        run(&*s, 1, 1, 6, 2); // alerts at 2, 4, 6
        s.acknowledge("c1-6", "ops", 77).expect("ack");
        let retracted = s.unwind_above(1, 3, b"back at 3", None).expect("unwind");
        let ids: Vec<(&str, AlertStatus)> = retracted
            .iter()
            .map(|a| (a.id.as_str(), a.status))
            .collect();
        assert_eq!(
            ids,
            [
                ("c1-4", AlertStatus::Retracted),
                ("c1-6", AlertStatus::Retracted)
            ]
        );
        let cp = s.checkpoint(1).expect("read").expect("some");
        assert_eq!(
            (cp.block, cp.state.as_slice()),
            (block(1, 3, 0, 0), &b"back at 3"[..])
        );
        assert_eq!(s.processed_block(1, 4).expect("read"), None);
        assert_eq!(
            s.alert("c1-2").expect("read").map(|a| a.status),
            Some(AlertStatus::Open)
        );
        let tail: Vec<(u64, String, AlertEventKind)> = s
            .outbox_since(3, 10)
            .expect("outbox")
            .into_iter()
            .map(|e| (e.seq, e.key(), e.kind))
            .collect();
        assert_eq!(
            tail,
            [
                (4, "c1-4:retracted".to_owned(), AlertEventKind::Retracted),
                (5, "c1-6:retracted".to_owned(), AlertEventKind::Retracted)
            ]
        );
        // Unwinding again above 3 retracts nothing more.
        assert_eq!(s.unwind_above(1, 3, b"again", None).expect("unwind"), []);
        // Another fork at 4: its own alert; the old block 4's alert stays retracted.
        s.commit_block(&commit(block(1, 4, 1, 0), 1, vec![alert("fork-4", "r", 1)]))
            .expect("fork");
        assert_eq!(
            s.alert("c1-4").expect("read").map(|a| a.status),
            Some(AlertStatus::Retracted)
        );
        // Back to the first fork: block 4 again raises its alert again, with a new event.
        s.unwind_above(1, 3, b"", None).expect("unwind the fork");
        run(&*s, 1, 4, 6, 2);
        let a = s.alert("c1-6").expect("read").expect("stored");
        assert_eq!((a.status, a.confirmed), (AlertStatus::Open, false));
        assert_eq!(
            a.acknowledged,
            Some(("ops".to_owned(), 77)),
            "an acknowledgement stays"
        );
        let raised: Vec<String> = s
            .outbox_since(0, 100)
            .expect("outbox")
            .into_iter()
            .filter(|e| e.alert_id == "c1-6")
            .map(|e| e.key())
            .collect();
        assert_eq!(raised, ["c1-6", "c1-6:retracted", "c1-6"]);
        // Unwinding above the checkpoint, or to a block never processed, is refused.
        let e = s.unwind_above(1, 9, b"", None).expect_err("above");
        assert!(
            e.to_string().contains("above the watch's checkpoint"),
            "{e}"
        );
        let e = s.unwind_above(7, 1, b"", None).expect_err("no checkpoint");
        assert!(e.to_string().contains("no checkpoint"), "{e}");
    });
}

#[test]
fn processed_blocks_below_the_reorg_depth_are_forgotten() {
    backends(|make| {
        let s = make();
        for n in 1..=10u64 {
            let c = BlockCommit {
                forget_below: n.saturating_sub(4),
                ..commit(block(1, n, 0, 0), 1, vec![alert(&format!("f{n}"), "r", 1)])
            };
            s.commit_block(&c).expect("commit");
        }
        // The last commit (block 10) forgot every block below 6.
        assert_eq!(s.processed_block(1, 5).expect("read"), None);
        assert_eq!(
            s.processed_block(1, 6).expect("read"),
            Some(block(1, 6, 0, 0))
        );
        let e = s.unwind_above(1, 4, b"", None).expect_err("forgotten");
        assert!(e.to_string().contains("forgotten"), "{e}");
        let r = s.unwind_above(1, 8, b"", None).expect("unwind");
        assert_eq!(
            r.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            ["f9", "f10"]
        );
        // An unwind to the checkpoint itself changes only the state.
        assert_eq!(s.unwind_above(1, 8, b"s", None).expect("unwind"), []);
        assert_eq!(
            s.checkpoint(1).expect("read").map(|c| c.state),
            Some(b"s".to_vec())
        );
        // Alerts of forgotten blocks are kept (only the unwind bookkeeping goes).
        assert_eq!(
            s.alert("f1").expect("read").map(|a| a.status),
            Some(AlertStatus::Open)
        );
        // A depth that jumps past the block and comes back down: what is remembered then is
        // forgotten once the depth passes it again.
        let with = |n: u64, forget_below: u64| BlockCommit {
            forget_below,
            ..commit(block(1, n, 0, 0), 1, vec![])
        };
        s.commit_block(&with(9, 100)).expect("commit");
        assert_eq!(s.processed_block(1, 9).expect("read"), None);
        s.commit_block(&with(10, 0)).expect("commit");
        s.commit_block(&with(11, 0)).expect("commit");
        assert!(s.processed_block(1, 10).expect("read").is_some());
        s.commit_block(&with(12, 11)).expect("commit");
        assert_eq!(s.processed_block(1, 10).expect("read"), None);
        assert!(s.processed_block(1, 11).expect("read").is_some());
    });
}

#[test]
fn confirmations_are_recorded_once_and_only_for_open_alerts_of_the_chain() {
    backends(|make| {
        let s = make();
        run(&*s, 1, 1, 2, 1);
        run(&*s, 2, 1, 1, 1);
        s.unwind_above(1, 1, b"", None).expect("unwind"); // c1-2 retracted
        let c = BlockCommit {
            confirm: vec![
                "c1-1".into(),
                "c1-1".into(),
                "c1-2".into(),
                "c2-1".into(),
                "unknown".into(),
                "now".into(),
            ],
            ..commit(block(1, 2, 1, 0), 1, vec![alert("now", "r", 3)])
        };
        s.commit_block(&c).expect("commit");
        let kinds: Vec<String> = s
            .outbox_since(4, 10)
            .expect("outbox")
            .iter()
            .map(|e| e.key())
            .collect();
        assert_eq!(kinds, ["now", "c1-1:confirmed", "now:confirmed"]);
        assert_eq!(
            s.alert("c1-1").expect("read").map(|a| a.confirmed),
            Some(true)
        );
        assert_eq!(
            s.alert("now").expect("read").map(|a| a.confirmed),
            Some(true)
        );
        assert_eq!(
            s.alert("c2-1").expect("read").map(|a| a.confirmed),
            Some(false)
        );
        assert_eq!(
            s.alert("c1-2").expect("read").map(|a| a.confirmed),
            Some(false)
        );
        // Confirmed again later: nothing.
        let c = BlockCommit {
            confirm: vec!["c1-1".into()],
            ..commit(block(1, 3, 0, 1), 1, vec![])
        };
        s.commit_block(&c).expect("commit");
        assert_eq!(s.outbox_head().expect("head"), 7);
        // The same id twice in a block is raised once.
        let c = commit(
            block(1, 4, 0, 0),
            1,
            vec![alert("twice", "r", 1), alert("twice", "r", 1)],
        );
        s.commit_block(&c).expect("commit");
        assert_eq!(s.outbox_head().expect("head"), 8);
    });
}

#[test]
fn alerts_are_listed_newest_first_filtered_and_paged() {
    backends(|make| {
        let s = make();
        run(&*s, 1, 1, 20, 1); // c1-1 .. c1-20, severity n % 5
        run(&*s, 2, 1, 5, 1);
        s.unwind_above(1, 18, b"", None).expect("unwind"); // c1-19, c1-20 retracted
        s.acknowledge("c1-3", "ops", 1).expect("ack");
        let q = |f: &dyn Fn(&mut AlertQuery)| {
            let mut q = AlertQuery {
                limit: 100,
                ..AlertQuery::default()
            };
            f(&mut q);
            s.alerts(&q)
                .expect("query")
                .into_iter()
                .map(|a| a.id)
                .collect::<Vec<_>>()
        };
        let all = q(&|_| {});
        assert_eq!(all.len(), 25);
        assert_eq!(&all[..6], ["c2-5", "c2-4", "c2-3", "c2-2", "c2-1", "c1-20"]);
        assert_eq!(
            q(&|q| q.chain_id = Some(2)),
            ["c2-5", "c2-4", "c2-3", "c2-2", "c2-1"]
        );
        assert_eq!(
            q(&|q| q.status = Some(AlertStatus::Retracted)),
            ["c1-20", "c1-19"]
        );
        assert_eq!(q(&|q| q.acknowledged = Some(true)), ["c1-3"]);
        assert_eq!(q(&|q| q.acknowledged = Some(false)).len(), 24);
        assert_eq!(
            q(&|q| {
                q.chain_id = Some(1);
                q.min_severity = Some(4);
                q.status = Some(AlertStatus::Open);
            }),
            ["c1-14", "c1-9", "c1-4"]
        );
        assert_eq!(
            q(&|q| q.rule = Some("nothing".into())),
            Vec::<String>::new()
        );
        // Pages: each after the last id of the previous one, together the whole list.
        let mut pages = Vec::new();
        let mut before = None;
        loop {
            let page = q(&|q| {
                q.limit = 7;
                q.before_id = before.clone();
            });
            if page.is_empty() {
                break;
            }
            before = page.last().cloned();
            pages.extend(page);
        }
        assert_eq!(pages, all);
        assert_eq!(q(&|q| q.before_id = Some("c2-1".into()))[0], "c1-20");
        // Raised again after a retraction: newest.
        run(&*s, 1, 19, 19, 1);
        assert_eq!(&q(&|q| q.limit = 2)[..], ["c1-19", "c2-5"]);
        // Bounds and bad arguments.
        assert_eq!(q(&|q| q.limit = 0), Vec::<String>::new());
        let err = |f: &dyn Fn(&mut AlertQuery)| {
            let mut q = AlertQuery {
                limit: 10,
                ..AlertQuery::default()
            };
            f(&mut q);
            s.alerts(&q).expect_err("refused").to_string()
        };
        assert!(matches!(
            s.alerts(&AlertQuery {
                limit: MAX_LIMIT + 1,
                ..AlertQuery::default()
            }),
            Err(StoreError::Limit(_))
        ));
        assert!(
            err(&|q| q.before_id = Some("nope".into())).starts_with("before \"nope\": expected")
        );
        assert!(err(&|q| q.min_severity = Some(5)).starts_with("min_severity \"5\""));
        assert!(err(&|q| q.rule = Some("a b".into())).starts_with("rule \"a b\""));
    });
}

#[test]
fn the_first_acknowledgement_stays() {
    backends(|make| {
        let s = make();
        run(&*s, 1, 1, 1, 1);
        let a = s
            .acknowledge("c1-1", "Alice Ops", 10)
            .expect("ack")
            .expect("found");
        assert_eq!(a.acknowledged, Some(("Alice Ops".to_owned(), 10)));
        let a = make()
            .acknowledge("c1-1", "bob", 20)
            .expect("ack")
            .expect("found");
        assert_eq!(a.acknowledged, Some(("Alice Ops".to_owned(), 10)));
        assert_eq!(s.acknowledge("missing", "bob", 20).expect("ack"), None);
        let e = s.acknowledge("c1-1", "", 20).expect_err("no name");
        assert!(e.to_string().starts_with("acknowledged by \"\""), "{e}");
        assert!(s.acknowledge("c1-1", "a\nb", 20).is_err());
        assert!(s.alert("with space").is_err());
        // An acknowledgement is not an alert event.
        assert_eq!(s.outbox_head().expect("head"), 1);
    });
}

#[test]
fn each_sink_reads_after_its_own_cursor() {
    backends(|make| {
        let s = make();
        run(&*s, 1, 1, 5, 1);
        assert_eq!(s.cursor("webhook").expect("cursor"), 0);
        let first = s.outbox_after_cursor("webhook", 2).expect("read");
        assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        s.advance_cursor("webhook", 2).expect("advance");
        assert_eq!(make().cursor("webhook").expect("cursor"), 2);
        assert_eq!(
            s.outbox_after_cursor("webhook", 10)
                .expect("read")
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>(),
            [3, 4, 5]
        );
        // Never backwards; another sink is independent.
        s.advance_cursor("webhook", 1).expect("advance");
        assert_eq!(s.cursor("webhook").expect("cursor"), 2);
        assert_eq!(s.outbox_after_cursor("slack", 10).expect("read").len(), 5);
        // Past the head: refused (it would skip events written later).
        let e = s.advance_cursor("webhook", 6).expect_err("past head");
        assert!(e.to_string().contains("at most the outbox head, 5"), "{e}");
        assert!(s.advance_cursor("", 1).is_err());
        assert!(matches!(
            s.outbox_since(0, MAX_LIMIT + 1),
            Err(StoreError::Limit(_))
        ));
        assert_eq!(s.outbox_since(u64::MAX, 10).expect("read"), []);
    });
}

/// Pruning deletes only the events every sink has delivered: a sink being served that
/// never delivered anything (down since the start) keeps the whole outbox, the lowest
/// cursor of the served sinks and of every stored one (another instance's sink) bounds the
/// deletion, and the head stays, so numbers are never reused.
#[test]
fn the_outbox_is_pruned_below_every_sinks_cursor_and_never_past_an_undelivered_event() {
    backends(|make| {
        let s = make();
        run(&*s, 1, 1, 5, 1);
        let seqs = |v: Vec<holdfast_store::watch::OutboxEvent>| {
            v.iter().map(|e| e.seq).collect::<Vec<_>>()
        };
        let served = ["webhook", "down"];
        s.advance_cursor("webhook", 4).expect("advance");
        assert_eq!(s.prune_outbox(&served, 0).expect("prune"), 0);
        assert_eq!(
            seqs(s.outbox_after_cursor("down", 10).expect("read")),
            [1, 2, 3, 4, 5],
            "the down sink's events are all kept"
        );
        // That prune registered "down" (a cursor at 0): another instance, which serves
        // only "webhook", keeps its events too.
        assert_eq!(make().prune_outbox(&["webhook"], 0).expect("prune"), 0);
        assert_eq!(seqs(s.outbox_since(0, 10).expect("read")).len(), 5);
        s.advance_cursor("down", 2).expect("advance");
        assert_eq!(s.prune_outbox(&served, 0).expect("prune"), 2);
        assert_eq!(
            seqs(s.outbox_after_cursor("down", 10).expect("read")),
            [3, 4, 5]
        );
        assert_eq!(
            seqs(s.outbox_after_cursor("webhook", 10).expect("read")),
            [5]
        );
        // A stored cursor of a sink served elsewhere bounds it too.
        s.advance_cursor("elsewhere", 3).expect("advance");
        s.advance_cursor("down", 5).expect("advance");
        assert_eq!(s.prune_outbox(&served, 0).expect("prune"), 1);
        assert_eq!(seqs(make().outbox_since(0, 10).expect("read")), [4, 5]);
        assert_eq!(s.prune_outbox(&served, 0).expect("prune again"), 0);
        // The head stays: the next events number on from it.
        assert_eq!(s.outbox_head().expect("head"), 5);
        run(&*s, 1, 6, 6, 1);
        assert_eq!(seqs(s.outbox_after_cursor("down", 10).expect("read")), [6]);
        assert_eq!(seqs(s.outbox_since(0, 10).expect("read")), [4, 5, 6]);
        // The newest `keep` stay even when every sink has them.
        for sink in ["webhook", "elsewhere", "down"] {
            s.advance_cursor(sink, 6).expect("advance");
        }
        assert_eq!(s.prune_outbox(&served, 2).expect("prune, keep 2"), 1);
        assert_eq!(seqs(s.outbox_since(0, 10).expect("read")), [5, 6]);
        let e = s
            .prune_outbox(&["webhook", ""], 0)
            .expect_err("a bad sink name");
        assert!(e.to_string().contains("sink"), "{e}");
        assert_eq!(seqs(s.outbox_since(0, 10).expect("read")), [5, 6]);
        assert_eq!(s.prune_outbox(&served, 0).expect("prune"), 2);
        assert_eq!(s.outbox_since(0, 10).expect("read"), []);
        assert_eq!(s.outbox_head().expect("head"), 6);
    });
}

/// A first look at a block raises its alerts before the block is committed; the commit
/// keeps those it raises again (no second event), retracts the others (a look the full
/// block did not confirm, or a block replaced before its commit), and an unwind retracts
/// early alerts above it like any other.
#[test]
fn early_alerts_are_kept_by_the_commit_that_confirms_them_and_retracted_otherwise() {
    backends(|make| {
        let s = make();
        let chain = 3;
        s.commit_block(&commit(block(chain, 5, 0, 0), chain, vec![]))
            .expect("commit 5");
        let b6 = block(chain, 6, 0, 0);
        let early = [alert("x", "drain", 3), alert("y", "grant", 2)];
        assert_eq!(s.raise_early(chain, &b6, &early, None).expect("early"), 2);
        assert_eq!(
            s.raise_early(chain, &b6, &early, None).expect("again"),
            0,
            "already open: no second event"
        );
        let cp = s.checkpoint(chain).expect("checkpoint").expect("some");
        assert_eq!(
            cp.block.number, 5,
            "an early raise does not move the checkpoint"
        );
        let x = s.alert("x").expect("read").expect("stored");
        assert_eq!(
            (x.block_number, x.block_hash, x.status),
            (6, b6.hash, AlertStatus::Open)
        );
        // Not the checkpoint's child: refused, nothing written.
        let before = snapshot(&*s, chain);
        assert!(
            s.raise_early(
                chain,
                &block(chain, 8, 0, 0),
                &[alert("q", "drain", 1)],
                None
            )
            .is_err()
        );
        assert!(
            s.raise_early(
                chain,
                &block(chain, 6, 1, 1),
                &[alert("q", "drain", 1)],
                None
            )
            .is_err(),
            "a block on another parent"
        );
        assert_eq!(snapshot(&*s, chain), before);
        // The block's commit raises x again (kept) and z, not y.
        s.commit_block(&commit(
            b6,
            chain,
            vec![alert("x", "drain", 3), alert("z", "drain", 1)],
        ))
        .expect("commit 6");
        // A block replaced before its commit: the early alert of the old one is retracted.
        s.raise_early(
            chain,
            &block(chain, 7, 0, 0),
            &[alert("w", "drain", 1)],
            None,
        )
        .expect("early 7");
        s.commit_block(&commit(
            block(chain, 7, 1, 0),
            chain,
            vec![alert("v", "drain", 1)],
        ))
        .expect("commit 7 of another fork");
        // An unwind retracts an early alert above the checkpoint.
        s.raise_early(
            chain,
            &block(chain, 8, 1, 1),
            &[alert("u", "drain", 1)],
            None,
        )
        .expect("early 8");
        let retracted = s
            .unwind_above(chain, 7, b"state after 7", None)
            .expect("unwind");
        assert_eq!(
            retracted.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            ["u"]
        );
        let events: Vec<(String, AlertEventKind)> = s
            .outbox_since(0, MAX_LIMIT)
            .expect("outbox")
            .into_iter()
            .map(|e| (e.alert_id, e.kind))
            .collect();
        use AlertEventKind::{Raised, Retracted};
        let want: Vec<(String, AlertEventKind)> = [
            ("x", Raised),
            ("y", Raised),
            ("y", Retracted),
            ("z", Raised),
            ("w", Raised),
            ("w", Retracted),
            ("v", Raised),
            ("u", Raised),
            ("u", Retracted),
        ]
        .into_iter()
        .map(|(id, k)| (id.to_owned(), k))
        .collect();
        assert_eq!(events, want);
        for (id, status) in [
            ("x", AlertStatus::Open),
            ("y", AlertStatus::Retracted),
            ("z", AlertStatus::Open),
            ("w", AlertStatus::Retracted),
            ("v", AlertStatus::Open),
            ("u", AlertStatus::Retracted),
        ] {
            assert_eq!(
                s.alert(id).expect("read").map(|a| a.status),
                Some(status),
                "alert {id}"
            );
        }
    });
}
