//! Leases and fencing, writers of several chains racing while a reader follows the outbox,
//! and crashes: a reopened (or killed) embedded store holds exactly the committed blocks.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use holdfast_store::StoreError;
use holdfast_store::watch::{AlertQuery, BlockCommit, EmbeddedWatchStore, WatchStore};

use super::{alert, backends, block, commit, run};

#[test]
fn a_lease_is_taken_over_after_expiry_and_the_old_owner_is_fenced_off() {
    backends(|make| {
        let (a, b) = (make(), make());
        assert_eq!(a.lease(1).expect("read"), None);
        let ta = a
            .acquire_lease(1, "a", 1_000, 500)
            .expect("acquire")
            .expect("free");
        assert_eq!(
            a.acquire_lease(1, "a", 1_200, 500).expect("renew"),
            Some(ta)
        );
        assert_eq!(
            b.acquire_lease(1, "b", 1_600, 500).expect("acquire"),
            None,
            "held until 1700"
        );
        let fenced = |t: u64, n: u64| BlockCommit {
            fence: Some(t),
            ..commit(block(1, n, 0, 0), 1, vec![alert(&format!("l{n}"), "r", 1)])
        };
        a.commit_block(&fenced(ta, 1)).expect("owner commits");
        // Without a fence on a leased chain: refused.
        let e = a
            .commit_block(&commit(block(1, 2, 0, 0), 1, vec![]))
            .expect_err("unfenced");
        assert!(
            matches!(e, StoreError::LeaseLost { fence: None, .. }),
            "{e}"
        );
        // Expired: b takes over with a new token; a's next commit and unwind are refused.
        let tb = b
            .acquire_lease(1, "b", 1_700, 500)
            .expect("acquire")
            .expect("expired");
        assert!(tb > ta);
        let lease = b.lease(1).expect("read").expect("some");
        assert_eq!(
            (lease.owner.as_deref(), lease.token, lease.expires_at_ms),
            (Some("b"), tb, 2_200)
        );
        let head = a.outbox_head().expect("head");
        let e = a.commit_block(&fenced(ta, 2)).expect_err("stale");
        assert!(
            matches!(&e, StoreError::LeaseLost { chain_id: 1, fence: Some(f), holder: Some(h), token } if *f == ta && h == "b" && *token == tb),
            "{e}"
        );
        assert!(e.to_string().contains("stop watching the chain"), "{e}");
        assert!(a.unwind_above(1, 1, b"", Some(ta)).is_err());
        assert_eq!(a.alert("l2").expect("read"), None);
        assert_eq!(a.outbox_head().expect("head"), head);
        // b resumes from the checkpoint a left.
        assert_eq!(
            b.checkpoint(1).expect("read").map(|c| c.block.number),
            Some(1)
        );
        b.commit_block(&fenced(tb, 2)).expect("new owner commits");
        assert_eq!(a.acquire_lease(1, "a", 1_800, 500).expect("acquire"), None);
        // Released: the next acquirer (even b itself) gets a new token at once.
        a.release_lease(1, "b-not").expect("not the owner: nothing");
        b.release_lease(1, "b").expect("release");
        let e = b.commit_block(&fenced(tb, 3)).expect_err("released");
        assert!(
            matches!(e, StoreError::LeaseLost { holder: None, .. }),
            "{e}"
        );
        let ta2 = a
            .acquire_lease(1, "a", 1_801, 500)
            .expect("acquire")
            .expect("released");
        assert!(ta2 > tb);
        a.commit_block(&fenced(ta2, 3)).expect("commits");
        // Leases are per chain.
        assert!(
            b.acquire_lease(2, "b", 1_801, 500)
                .expect("acquire")
                .is_some()
        );
    });
}

#[test]
fn of_racing_acquirers_one_wins() {
    backends(|make| {
        for round in 0..5u64 {
            let chain = 100 + round;
            let n = 6;
            let barrier = Arc::new(Barrier::new(n));
            let wins: Vec<Option<u64>> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..n)
                    .map(|i| {
                        let s = make();
                        let barrier = barrier.clone();
                        scope.spawn(move || {
                            barrier.wait();
                            s.acquire_lease(chain, &format!("owner-{i}"), 1_000, 60_000)
                                .expect("acquire")
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("thread"))
                    .collect()
            });
            assert_eq!(wins.iter().flatten().count(), 1, "round {round}: {wins:?}");
        }
    });
}

/// Writers of several chains commit concurrently (on PostgreSQL each its own instance)
/// while a reader follows the outbox by the last number it read: it sees every event
/// exactly once, in order, with no number skipped — the number of an event committed later
/// is never below one already read.
#[test]
fn racing_writers_never_make_a_following_reader_skip_an_event() {
    backends(|make| {
        let chains = 4u64;
        let blocks = 60u64;
        let done = AtomicBool::new(false);
        let read = std::thread::scope(|scope| {
            let reader = {
                let s = make();
                let done = &done;
                scope.spawn(move || {
                    let mut last = 0u64;
                    let mut seen = Vec::new();
                    loop {
                        let finished = done.load(Ordering::SeqCst);
                        let events = s.outbox_since(last, 50).expect("read");
                        for e in &events {
                            assert_eq!(e.seq, last + 1, "after {last} the reader got {}", e.seq);
                            last = e.seq;
                            seen.push(e.alert_id.clone());
                        }
                        if finished && events.is_empty() {
                            return seen;
                        }
                    }
                })
            };
            // Set when the writers are done, also when one failed (the reader stops then).
            struct Done<'a>(&'a AtomicBool);
            impl Drop for Done<'_> {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
            let done_on_exit = Done(&done);
            let writers: Vec<_> = (1..=chains)
                .map(|chain| {
                    let s = make();
                    scope.spawn(move || {
                        for n in 1..=blocks {
                            let alerts = (0..1 + n % 3)
                                .map(|i| alert(&format!("r{chain}-{n}-{i}"), "drain", 1))
                                .collect();
                            s.commit_block(&commit(block(chain, n, 0, 0), chain, alerts))
                                .expect("commit");
                        }
                    })
                })
                .collect();
            let failed = writers.into_iter().filter_map(|w| w.join().err()).count();
            drop(done_on_exit);
            assert_eq!(failed, 0, "writers failed");
            reader.join().expect("reader")
        });
        let expected: usize =
            (1..=blocks).map(|n| 1 + (n % 3) as usize).sum::<usize>() * chains as usize;
        assert_eq!(read.len(), expected);
        assert_eq!(
            read.iter().collect::<HashSet<_>>().len(),
            expected,
            "each event once"
        );
        for chain in 1..=chains {
            let cp = make().checkpoint(chain).expect("read").expect("some");
            assert_eq!(cp.block.number, blocks);
        }
    });
}

/// Checks that the store holds exactly the blocks `first..=checkpoint` of `run(.., every)`
/// and their alerts and events, whole, and nothing above.
fn assert_whole(s: &dyn WatchStore, chain: u64, first: u64, every: u64) -> u64 {
    let top = s
        .checkpoint(chain)
        .expect("read")
        .map_or(0, |c| c.block.number);
    assert_eq!(
        s.checkpoint(chain).expect("read").map(|c| c.block),
        (top > 0).then(|| block(chain, top, 0, 0))
    );
    let events = s
        .outbox_since(0, holdfast_store::MAX_LIMIT)
        .expect("outbox");
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "numbers without gaps"
    );
    assert_eq!(s.outbox_head().expect("head"), events.len() as u64);
    let expected: Vec<String> = (first..=top)
        .filter(|n| n % every == 0)
        .map(|n| format!("c{chain}-{n}"))
        .collect();
    let ids: Vec<String> = events.iter().map(|e| e.alert_id.clone()).collect();
    assert_eq!(ids, expected, "one event per alert of each committed block");
    for n in first..=top {
        assert_eq!(
            s.processed_block(chain, n).expect("read"),
            Some(block(chain, n, 0, 0))
        );
    }
    assert_eq!(s.processed_block(chain, top + 1).expect("read"), None);
    let q = AlertQuery {
        limit: holdfast_store::MAX_LIMIT,
        ..AlertQuery::default()
    };
    assert_eq!(s.alerts(&q).expect("alerts").len(), expected.len());
    top
}

#[test]
fn a_reopened_embedded_store_holds_exactly_the_committed_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let s = EmbeddedWatchStore::open(dir.path()).expect("open");
        run(&s, 1, 1, 30, 3);
        s.fail_next_commit();
        assert!(
            s.commit_block(&commit(block(1, 31, 0, 0), 1, vec![alert("c1-31", "r", 1)]))
                .is_err()
        );
    }
    let s = EmbeddedWatchStore::open(dir.path()).expect("reopen");
    assert_eq!(assert_whole(&s, 1, 1, 3), 30);
    // It continues where it stopped, numbering after the head.
    run(&s, 1, 31, 33, 3);
    assert_eq!(assert_whole(&s, 1, 1, 3), 33);
}

const CRASH_DIR: &str = "HOLDFAST_WATCH_CRASH_DIR";

/// The child of the kill test: commits blocks from its checkpoint on, printing each one's
/// number once the commit returned. Does nothing in a normal test run.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_DIR) else {
        return;
    };
    let s = EmbeddedWatchStore::open(std::path::Path::new(&dir)).expect("open");
    let from = s
        .checkpoint(1)
        .expect("read")
        .map_or(1, |c| c.block.number + 1);
    let mut out = std::io::stdout().lock();
    for n in from.. {
        run(&s, 1, n, n, 3);
        writeln!(out, "committed {n}").expect("print");
        out.flush().expect("flush");
    }
}

/// kill -9 while committing, three times: every block reported committed is there, whole,
/// and nothing of a block that was not.
#[test]
fn an_embedded_store_killed_while_committing_holds_every_committed_block_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut reported = 0;
    for round in 0..3u64 {
        let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
            .args(["--exact", "watch::races::crash_child", "--nocapture"])
            .env(CRASH_DIR, dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let stop_after = 20 + round * 7;
        let mut n = 0;
        while n < stop_after {
            let line = lines.next().expect("child output").expect("line");
            if let Some(b) = line.strip_prefix("committed ") {
                reported = b.parse().expect("number");
                n += 1;
            }
        }
        child.kill().expect("kill -9");
        child.wait().expect("wait");
        let s = EmbeddedWatchStore::open(dir.path()).expect("reopen");
        let top = assert_whole(&s, 1, 1, 3);
        assert!(
            top >= reported,
            "round {round}: block {reported} was reported committed, the store holds up to {top}"
        );
    }
}
