//! The guard service's state store, on both backends: transitions are atomic and exclusive
//! (two writers racing for one request: exactly one wins, also across two PostgreSQL
//! instances), nonces are never handed out twice, the audit chain stays one valid chain.

use std::sync::Arc;

use alloy_primitives::{Address, B256, Bytes, U256};
use holdfast_primitives::Asset;
use holdfast_store::StoreError;
use holdfast_store::gate::{
    ApprovalKind, AuditKind, Change, DecisionKind, EmbeddedGateStore, GateRequest, GateStore,
    HistoryQuery, NewAudit, Outflow, PgGateStore, RequestMode, RequestState, SessionLimits,
    StoredApproval, StoredSession, verify,
};

use crate::pg_db;

fn backends(check: impl Fn(&dyn Fn() -> Arc<dyn GateStore>)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let embedded: Arc<dyn GateStore> =
        Arc::new(EmbeddedGateStore::open(&dir.path().join("gate")).expect("open"));
    check(&|| embedded.clone());
    if let Some(url) = pg_db() {
        // Each call is another instance (its own connections) on the same database.
        check(&|| Arc::new(PgGateStore::connect(&url, 2).expect("connect")) as Arc<dyn GateStore>);
    }
}

fn request(id: &str, state: RequestState) -> GateRequest {
    GateRequest {
        id: id.into(),
        payload_hash: B256::repeat_byte(7),
        chain_id: 1,
        wallet: Address::repeat_byte(0xaa),
        initiator: "ops".into(),
        kind: RequestMode::Withdrawal,
        request: "{}".into(),
        decision: DecisionKind::Hold,
        rule: Some("r".into()),
        reasons: vec!["because".into()],
        state,
        created_at: 100,
        updated_at: 100,
        release_at: Some(200),
        need_approvals: 0,
        group: None,
        nonce: None,
        signature: None,
        tx_hash: None,
        error: None,
        outflows: vec![Outflow {
            to: Address::repeat_byte(0xbb),
            asset: Asset::Native,
            amount: U256::from(5),
        }],
        report: None,
    }
}

fn audit(kind: AuditKind, id: &str) -> NewAudit {
    NewAudit {
        at: 150,
        kind,
        request_id: Some(id.into()),
        actor: "test".into(),
        details: "{}".into(),
    }
}

/// Wallet 0xaa's outflows since `since`, reservations reported at `now`.
fn query(since: u64, now: u64) -> HistoryQuery {
    HistoryQuery {
        wallet: Address::repeat_byte(0xaa),
        since: Some(since),
        now,
        destinations: Vec::new(),
        exclude: None,
        max_records: 1000,
    }
}

fn full_audit(s: &dyn GateStore) -> Vec<holdfast_store::gate::AuditEntry> {
    s.audit(1, 1_000_000).expect("audit")
}

#[test]
fn transitions_are_checked_atomic_and_audited() {
    backends(|open| {
        let s = open();
        s.insert(
            &request("r1", RequestState::Held),
            vec![audit(AuditKind::Hold, "r1")],
        )
        .expect("insert");
        assert!(
            s.insert(&request("r1", RequestState::Held), vec![])
                .is_err(),
            "ids are unique"
        );
        assert_eq!(
            s.get("r1").expect("get").map(|r| r.state),
            Some(RequestState::Held)
        );
        assert_eq!(s.due_holds(199, 10).expect("due").len(), 0);
        assert_eq!(s.due_holds(200, 10).expect("due").len(), 1);
        // A transition from the wrong state does nothing.
        let none = s
            .transition(
                "r1",
                &[RequestState::AwaitingApprovals],
                Change {
                    state: Some(RequestState::Signing),
                    ..Change::default()
                },
                201,
                vec![audit(AuditKind::Release, "r1")],
            )
            .expect("transition");
        assert!(none.is_none());
        let r = s
            .transition(
                "r1",
                &[RequestState::Held],
                Change {
                    state: Some(RequestState::Signing),
                    allocate_nonce: Some(4),
                    ..Change::default()
                },
                201,
                vec![audit(AuditKind::Release, "r1")],
            )
            .expect("transition")
            .expect("was held");
        assert_eq!((r.state, r.nonce), (RequestState::Signing, Some(4)));
        assert!(
            s.due_holds(1000, 10).expect("due").is_empty(),
            "no longer held"
        );
        let r = s
            .transition(
                "r1",
                &[RequestState::Signing],
                Change {
                    state: Some(RequestState::Signed),
                    signature: Some(Bytes::from_static(&[1, 2])),
                    ..Change::default()
                },
                202,
                vec![audit(AuditKind::Signature, "r1")],
            )
            .expect("t")
            .expect("signing");
        assert_eq!(r.signature, Some(Bytes::from_static(&[1, 2])));
        let h = s.history(&query(0, 1000)).expect("history");
        assert_eq!(
            h.outflows.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
            vec![202],
            "a signed request's outflows count for velocity from its signing, and its reservation is gone"
        );
        assert_eq!(
            s.in_state(RequestState::Signed, 10)
                .expect("in state")
                .len(),
            1
        );
        let paid = s
            .history(&HistoryQuery {
                destinations: vec![Address::repeat_byte(0xbb), Address::repeat_byte(0xcc)],
                ..query(0, 1000)
            })
            .expect("first paid")
            .first_paid;
        assert_eq!(
            paid,
            vec![(Address::repeat_byte(0xbb), 202)],
            "first payments per destination"
        );
        let chain = full_audit(&*s);
        assert_eq!(chain.len(), 3);
        assert_eq!(verify(&chain), Ok(3));
        assert_eq!(
            chain.iter().map(|e| e.kind).collect::<Vec<_>>(),
            vec![AuditKind::Hold, AuditKind::Release, AuditKind::Signature]
        );
    });
}

#[test]
fn of_racing_writers_exactly_one_wins_and_nonces_are_never_reused() {
    backends(|open| {
        let s = open();
        for i in 0..20 {
            s.insert(&request(&format!("q{i}"), RequestState::Held), vec![])
                .expect("insert");
        }
        // Four writers (separate instances on PostgreSQL) try to release every request.
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let s = open();
                std::thread::spawn(move || {
                    let mut won = Vec::new();
                    for i in 0..20 {
                        let id = format!("q{i}");
                        let r = s
                            .transition(
                                &id,
                                &[RequestState::Held],
                                Change {
                                    state: Some(RequestState::Signing),
                                    allocate_nonce: Some(0),
                                    ..Change::default()
                                },
                                300,
                                vec![NewAudit {
                                    at: 300,
                                    kind: AuditKind::Release,
                                    request_id: Some(id.clone()),
                                    actor: format!("w{w}"),
                                    details: "{}".into(),
                                }],
                            )
                            .expect("transition");
                        if let Some(r) = r {
                            won.push((id, r.nonce.expect("nonce")));
                        }
                    }
                    won
                })
            })
            .collect();
        let mut wins: Vec<(String, u64)> = writers
            .into_iter()
            .flat_map(|t| t.join().expect("thread"))
            .collect();
        assert_eq!(
            wins.len(),
            20,
            "every request released exactly once: {wins:?}"
        );
        wins.sort_by_key(|(_, n)| *n);
        let nonces: Vec<u64> = wins.iter().map(|(_, n)| *n).collect();
        assert_eq!(
            nonces,
            (0..20).collect::<Vec<_>>(),
            "one nonce per release, none twice"
        );
        let chain = full_audit(&*s);
        assert_eq!(verify(&chain), Ok(20), "one chain across writers");
        // The floor (the node's pending nonce) wins over a lower stored one.
        s.insert(&request("late", RequestState::Held), vec![])
            .expect("insert");
        let r = s
            .transition(
                "late",
                &[RequestState::Held],
                Change {
                    state: Some(RequestState::Signing),
                    allocate_nonce: Some(50),
                    ..Change::default()
                },
                301,
                vec![],
            )
            .expect("t")
            .expect("held");
        assert_eq!(r.nonce, Some(50));
    });
}

#[test]
fn approvals_freezes_and_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gate");
    {
        let s = EmbeddedGateStore::open(&path).expect("open");
        s.insert(
            &request("a", RequestState::AwaitingApprovals),
            vec![audit(AuditKind::Decision, "a")],
        )
        .expect("insert");
        let ap = |who: u8| StoredApproval {
            request_id: "a".into(),
            approver: Address::repeat_byte(who),
            action: ApprovalKind::Approve,
            approval: "{}".into(),
            at: 10,
        };
        assert!(
            s.add_approval(&ap(1), audit(AuditKind::Approval, "a"), false)
                .expect("add")
        );
        assert!(
            !s.add_approval(&ap(1), audit(AuditKind::Approval, "a"), false)
                .expect("add"),
            "one approval per approver"
        );
        assert!(
            s.add_approval(&ap(2), audit(AuditKind::Approval, "a"), false)
                .expect("add")
        );
        assert_eq!(s.approvals("a").expect("list").len(), 2);
        let w = Address::repeat_byte(0xaa);
        assert!(!s.frozen(w).expect("frozen"));
        s.set_frozen(Some(w), true, audit(AuditKind::Freeze, "a"))
            .expect("freeze");
        assert!(s.frozen(w).expect("frozen"));
        assert!(!s.frozen(Address::repeat_byte(1)).expect("frozen"));
        s.set_frozen(None, true, audit(AuditKind::Freeze, "a"))
            .expect("freeze all");
        assert!(s.frozen(Address::repeat_byte(1)).expect("frozen"));
    }
    let s = EmbeddedGateStore::open(&path).expect("reopen");
    assert_eq!(s.approvals("a").expect("list").len(), 2);
    assert!(s.frozen(Address::repeat_byte(1)).expect("frozen"));
    assert_eq!(verify(&full_audit(&s)), Ok(5));
    if let Some(url) = pg_db() {
        let p = PgGateStore::connect(&url, 1).expect("connect");
        p.set_frozen(None, true, audit(AuditKind::Freeze, "x"))
            .expect("freeze");
        assert!(p.frozen(Address::ZERO).expect("frozen"));
        p.set_frozen(None, false, audit(AuditKind::Unfreeze, "x"))
            .expect("unfreeze");
        assert!(!p.frozen(Address::ZERO).expect("frozen"));
        let again = PgGateStore::connect(&url, 1).expect("second instance migrates nothing");
        assert_eq!(verify(&full_audit(&again)), Ok(2));
    }
}

#[test]
fn no_signature_is_recorded_once_a_freeze_is_in_force() {
    backends(|open| {
        let s = open();
        let n = 60;
        for i in 0..n {
            s.insert(&request(&format!("f{i}"), RequestState::Signing), vec![])
                .expect("insert");
        }
        let sign = |s: &dyn GateStore, id: &str| {
            s.transition(
                id,
                &[RequestState::Signing],
                Change {
                    state: Some(RequestState::Signed),
                    signature: Some(vec![1u8; 65].into()),
                    ..Change::default()
                },
                300,
                vec![NewAudit {
                    at: 300,
                    kind: AuditKind::Signature,
                    request_id: Some(id.to_owned()),
                    actor: "signer".into(),
                    details: "{}".into(),
                }],
            )
        };
        // Two signers (separate instances on PostgreSQL) race a freeze of the wallet.
        let signers: Vec<_> = (0..2)
            .map(|w| {
                let s = open();
                std::thread::spawn(move || {
                    let mut refused = 0;
                    for i in (w..n).step_by(2) {
                        match sign(&*s, &format!("f{i}")) {
                            Ok(r) => assert!(r.is_some(), "f{i} was in signing"),
                            Err(StoreError::Frozen { .. }) => refused += 1,
                            Err(e) => panic!("f{i}: {e}"),
                        }
                    }
                    refused
                })
            })
            .collect();
        let freezer = open();
        std::thread::sleep(std::time::Duration::from_millis(2));
        freezer
            .set_frozen(
                Some(Address::repeat_byte(0xaa)),
                true,
                audit(AuditKind::Freeze, "ops"),
            )
            .expect("freeze");
        let refused: usize = signers.into_iter().map(|t| t.join().expect("thread")).sum();
        // The audit log orders every step: each signature recorded comes before the freeze.
        let chain = full_audit(&*s);
        let freeze_at = chain
            .iter()
            .find(|e| e.kind == AuditKind::Freeze)
            .expect("freeze entry")
            .seq;
        let signed: Vec<u64> = chain
            .iter()
            .filter(|e| e.kind == AuditKind::Signature)
            .map(|e| e.seq)
            .collect();
        assert!(
            signed.iter().all(|&q| q < freeze_at),
            "signatures {signed:?} after the freeze at {freeze_at}"
        );
        assert_eq!(signed.len() + refused, n, "each request signed or refused");
        let stored_signed = (0..n)
            .filter(|i| {
                s.get(&format!("f{i}"))
                    .expect("get")
                    .is_some_and(|r| r.signature.is_some())
            })
            .count();
        assert_eq!(
            stored_signed,
            signed.len(),
            "no signature without its audit entry"
        );
        // Frozen: a request cannot be recorded already signed either, and nothing is written.
        let mut late = request("late", RequestState::Signed);
        late.signature = Some(vec![1u8; 65].into());
        assert!(matches!(
            s.insert(&late, vec![audit(AuditKind::Request, "late")]),
            Err(StoreError::Frozen { .. })
        ));
        assert!(s.get("late").expect("get").is_none());
        assert_eq!(verify(&full_audit(&*s)), Ok(chain.len() as u64));
    });
}

#[test]
fn concurrent_inserts_fail_only_the_bad_one() {
    backends(|open| {
        let s = open();
        s.insert(&request("dup", RequestState::Held), vec![])
            .expect("insert");
        let frozen = Address::repeat_byte(0xcc);
        s.set_frozen(Some(frozen), true, audit(AuditKind::Freeze, "ops"))
            .expect("freeze");
        // Eight writers insert at once (on PostgreSQL they are grouped into one transaction);
        // two of the inserts must fail: an id that exists, a signature for a frozen wallet.
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let s = open();
                std::thread::spawn(move || {
                    let mut out = Vec::new();
                    for i in 0..10 {
                        let id = match (w, i) {
                            (3, 5) => "dup".to_owned(),
                            _ => format!("c{w}-{i}"),
                        };
                        let mut r = request(&id, RequestState::Signed);
                        r.signature = Some(vec![1u8; 65].into());
                        if (w, i) == (5, 7) {
                            r.wallet = frozen;
                        }
                        out.push((id, s.insert(&r, vec![audit(AuditKind::Request, "c")])));
                    }
                    out
                })
            })
            .collect();
        let results: Vec<(String, Result<(), StoreError>)> = writers
            .into_iter()
            .flat_map(|t| t.join().expect("thread"))
            .collect();
        let failed: Vec<&String> = results
            .iter()
            .filter(|(_, r)| r.is_err())
            .map(|(id, _)| id)
            .collect();
        assert_eq!(
            failed,
            [&"dup".to_owned(), &"c5-7".to_owned()],
            "{results:?}"
        );
        assert!(matches!(
            results.iter().find(|(id, _)| id == "c5-7").map(|(_, r)| r),
            Some(Err(StoreError::Frozen { .. }))
        ));
        for (id, r) in &results {
            if r.is_ok() {
                assert!(s.get(id).expect("get").is_some(), "{id} stored");
            }
        }
        assert!(s.get("c5-7").expect("get").is_none());
        assert_eq!(
            s.get("dup").expect("get").map(|r| r.state),
            Some(RequestState::Held)
        );
        // 78 inserts with one audit entry each, and the freeze.
        assert_eq!(verify(&full_audit(&*s)), Ok(79));
    });
}

#[test]
fn reservations_count_until_signed_or_ended_unsigned() {
    backends(|open| {
        let s = open();
        let ats = |q: &HistoryQuery| {
            let h = s.history(q).expect("history");
            assert!(!h.truncated);
            h.outflows.iter().map(|(at, _)| *at).collect::<Vec<_>>()
        };
        for (id, state) in [
            ("held", RequestState::Held),
            ("awaiting", RequestState::AwaitingApprovals),
            ("signing", RequestState::Signing),
            ("denied", RequestState::Denied),
        ] {
            s.insert(&request(id, state), vec![audit(AuditKind::Request, id)])
                .expect("insert");
        }
        assert_eq!(
            ats(&query(5_000, 9_000)),
            vec![9_000; 3],
            "held, awaiting and signing requests are reserved, at now whatever the window; a denied one is not"
        );
        assert_eq!(
            ats(&HistoryQuery {
                exclude: Some("awaiting".into()),
                ..query(5_000, 9_000)
            }),
            vec![9_000; 2],
            "a request decided again does not count its own reservation"
        );
        let to = |id: &str, from: RequestState, state: RequestState| {
            s.transition(
                id,
                &[from],
                Change {
                    state: Some(state),
                    ..Change::default()
                },
                300,
                vec![audit(AuditKind::Decision, id)],
            )
            .expect("transition")
            .expect("in state");
        };
        to("held", RequestState::Held, RequestState::Signing);
        assert_eq!(
            ats(&query(5_000, 9_000)).len(),
            3,
            "released: still reserved"
        );
        to("held", RequestState::Signing, RequestState::Signed);
        to(
            "awaiting",
            RequestState::AwaitingApprovals,
            RequestState::Cancelled,
        );
        to("signing", RequestState::Signing, RequestState::Failed);
        assert_eq!(
            ats(&query(0, 9_000)),
            vec![300],
            "signed: counted from its signing time; cancelled and failed: released"
        );
        assert!(ats(&query(301, 9_000)).is_empty(), "out of the window");
        let h = s
            .history(&HistoryQuery {
                max_records: 0,
                ..query(0, 9_000)
            })
            .expect("history");
        assert!(
            h.truncated,
            "more records than read: said so, never a silent cut"
        );
    });
}

/// Ten decisions of one wallet race against a limit of four transfers' worth: each runs
/// under the wallet's lock and sees the reservations of those before it, so exactly four
/// are let through — in one process, and across PostgreSQL instances.
#[test]
fn racing_decisions_of_one_wallet_see_each_others_reservations() {
    backends(|open| {
        let stores: Vec<Arc<dyn GateStore>> = (0..3).map(|_| open()).collect();
        let threads: Vec<_> = (0..10)
            .map(|i| {
                let s = stores[i % stores.len()].clone();
                std::thread::spawn(move || {
                    let id = format!("race{i}");
                    let mut decide = |h: holdfast_store::gate::WalletHistory| {
                        let sent: U256 = h.outflows.iter().map(|(_, o)| o.amount).sum();
                        // Widen the race: every decision takes a while.
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        let state = if sent + U256::from(5) <= U256::from(20) {
                            RequestState::Signing
                        } else {
                            RequestState::Denied
                        };
                        Ok(Some((
                            request(&id, state),
                            vec![audit(AuditKind::Request, &id)],
                        )))
                    };
                    s.insert_decided(&query(0, 1000), &mut decide)
                        .expect("decided")
                        .expect("recorded")
                        .state
                })
            })
            .collect();
        let states: Vec<RequestState> = threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        assert_eq!(
            states
                .iter()
                .filter(|s| **s == RequestState::Signing)
                .count(),
            4,
            "{states:?}"
        );
        let chain = full_audit(&*stores[0]);
        assert_eq!(verify(&chain), Ok(10));
    });
}

/// Issue 13, item 8: a freeze is identified by its audit entry, not by the second it began,
/// so unfreeze approvals over one freeze cannot lift a new freeze of the same second; an
/// expired approval can be replaced by its approver.
#[test]
fn freezes_of_one_second_are_told_apart_and_approvals_can_be_renewed() {
    backends(|open| {
        let s = open();
        let w = Address::repeat_byte(0xaa);
        s.set_frozen(Some(w), true, audit(AuditKind::Freeze, "f"))
            .expect("freeze");
        let first = s.freeze_started(Some(w)).expect("read").expect("frozen");
        s.set_frozen(Some(w), true, audit(AuditKind::Freeze, "f"))
            .expect("freeze again");
        assert_eq!(
            s.freeze_started(Some(w)).expect("read"),
            Some(first),
            "a scope already frozen keeps its freeze"
        );
        s.set_frozen(Some(w), false, audit(AuditKind::Unfreeze, "f"))
            .expect("lift");
        assert_eq!(s.freeze_started(Some(w)).expect("read"), None);
        s.set_frozen(Some(w), true, audit(AuditKind::Freeze, "f"))
            .expect("freeze anew");
        let second = s.freeze_started(Some(w)).expect("read").expect("frozen");
        assert_eq!(second.at, first.at, "the same second");
        assert_ne!(second.id, first.id, "another freeze");

        s.insert(
            &request("ap", RequestState::AwaitingApprovals),
            vec![audit(AuditKind::Decision, "ap")],
        )
        .expect("insert");
        let ap = |body: &str| StoredApproval {
            request_id: "ap".into(),
            approver: Address::repeat_byte(1),
            action: ApprovalKind::Approve,
            approval: body.into(),
            at: 10,
        };
        assert!(
            s.add_approval(&ap("old"), audit(AuditKind::Approval, "ap"), false)
                .expect("add")
        );
        assert!(
            !s.add_approval(&ap("new"), audit(AuditKind::Approval, "ap"), false)
                .expect("add")
        );
        assert!(
            s.add_approval(&ap("new"), audit(AuditKind::Approval, "ap"), true)
                .expect("replace")
        );
        let list = s.approvals("ap").expect("list");
        assert_eq!(
            list.iter().map(|a| a.approval.as_str()).collect::<Vec<_>>(),
            vec!["new"]
        );
    });
}

/// The embedded store keeps each wallet's outflow records in memory after the first
/// decision reads them; what it lets go (past its bound) is read from the keyspace. Every
/// query answers what a fresh store, reading only the keyspace, answers.
#[test]
fn embedded_windows_in_memory_answer_as_the_keyspace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gate");
    let queries = |s: &dyn GateStore| -> Vec<Vec<(u64, Outflow)>> {
        [0, 103, 105, 107, 109, 200]
            .iter()
            .map(|since| s.history(&query(*since, 9_000)).expect("history").outflows)
            .collect()
    };
    let answers = {
        let s = EmbeddedGateStore::open(&path)
            .expect("open")
            .window_max_records(3);
        for i in 0..10u64 {
            let id = format!("w{i}");
            s.insert(&request(&id, RequestState::Signing), vec![])
                .expect("insert");
            // Loads the window before most writes, so later ones are applied to it.
            let _ = s.history(&query(0, 9_000)).expect("history");
            if i % 3 != 0 {
                s.transition(
                    &id,
                    &[RequestState::Signing],
                    Change {
                        state: Some(RequestState::Signed),
                        ..Change::default()
                    },
                    100 + i,
                    vec![],
                )
                .expect("transition")
                .expect("signing");
            }
        }
        s.transition(
            "w3",
            &[RequestState::Signing],
            Change {
                state: Some(RequestState::Failed),
                ..Change::default()
            },
            150,
            vec![],
        )
        .expect("transition")
        .expect("signing");
        queries(&s)
    };
    let fresh = EmbeddedGateStore::open(&path).expect("reopen");
    assert_eq!(answers, queries(&fresh));
    assert_eq!(
        answers[0].iter().filter(|(at, _)| *at == 9_000).count(),
        3,
        "w0, w6 and w9 still reserved; w3 released"
    );
}

/// The console's queue: pages of one state, oldest first, each starting after the last of
/// the previous page, equal ties of `created_at` ordered by id; a request's report is kept;
/// `audit_of` finds a request's entries.
#[test]
fn pages_of_a_state_and_the_audit_of_one_request() {
    backends(|open| {
        let s = open();
        for (i, at) in [(0u64, 300u64), (1, 100), (2, 100), (3, 200), (4, 100)] {
            let mut r = request(&format!("p{i}"), RequestState::Held);
            r.created_at = at;
            r.report = Some(format!("{{\"n\":{i}}}"));
            s.insert(&r, vec![audit(AuditKind::Hold, &format!("p{i}"))])
                .expect("insert");
        }
        s.insert(&request("other", RequestState::AwaitingApprovals), vec![])
            .expect("insert");
        let mut seen = Vec::new();
        let mut after: Option<(u64, String)> = None;
        loop {
            let page = s
                .in_state_after(
                    RequestState::Held,
                    after.as_ref().map(|(a, id)| (*a, id.as_str())),
                    2,
                )
                .expect("page");
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 2);
            after = page.last().map(|r| (r.created_at, r.id.clone()));
            seen.extend(page.into_iter().map(|r| r.id));
        }
        assert_eq!(seen, ["p1", "p2", "p4", "p3", "p0"]);
        assert_eq!(
            s.get("p3").expect("get").and_then(|r| r.report).as_deref(),
            Some("{\"n\":3}")
        );
        let trail = s.audit_of("p2", 100).expect("audit_of");
        assert_eq!(trail.len(), 1);
        assert_eq!(trail[0].request_id.as_deref(), Some("p2"));
        assert_eq!(s.audit_of("p0", 2).expect("audit_of").len(), 1);
        assert_eq!(s.audit_of("p4", 2).expect("audit_of").len(), 1);
    });
}

/// A request's audit trail is found however many entries the log took since: the first
/// entry of an old request and its latest, 30,000 entries apart, in order; `limit` takes
/// the oldest; another request whose id starts the same (`old1`) is not mixed in, nor
/// entries about no request.
#[test]
fn the_audit_trail_of_an_old_request_is_whole() {
    backends(|open| {
        let s = open();
        s.insert(
            &request("old", RequestState::Held),
            vec![audit(AuditKind::Hold, "old")],
        )
        .expect("insert");
        for chunk in 0..3 {
            let entries = (0..10_000)
                .map(|i| {
                    let mut a = audit(AuditKind::Hold, &format!("old{}", chunk * 10_000 + i));
                    if i % 2 == 0 {
                        a.request_id = None;
                    }
                    a
                })
                .collect();
            s.append_audit(entries).expect("append");
        }
        s.append_audit(vec![audit(AuditKind::Cancel, "old")])
            .expect("append");
        let trail = s.audit_of("old", 100).expect("audit_of");
        let kinds: Vec<_> = trail.iter().map(|e| (e.kind, e.seq)).collect();
        assert_eq!(
            kinds,
            [(AuditKind::Hold, 1), (AuditKind::Cancel, 30_002)],
            "both ends of the old request's trail, oldest first"
        );
        assert_eq!(s.audit_of("old", 1).expect("audit_of").len(), 1);
        let one = s.audit_of("old1", 100).expect("audit_of");
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].request_id.as_deref(), Some("old1"));
        assert!(s.audit_of("nobody", 100).expect("audit_of").is_empty());
    });
}

/// A PostgreSQL gate store from before the per-request audit index (schema version 2: no
/// `request_id` column) is migrated on connect and every old entry is found by request.
#[test]
fn postgres_migration_indexes_the_old_audit_log() {
    let Some(url) = pg_db() else { return };
    let s = PgGateStore::connect(&url, 1).expect("connect");
    s.insert(
        &request("before", RequestState::Held),
        vec![audit(AuditKind::Hold, "before")],
    )
    .expect("insert");
    s.append_audit(vec![audit(AuditKind::Cancel, "before")])
        .expect("append");
    drop(s);
    // Back to version 2 as the previous release left it.
    let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("client");
    c.batch_execute(
        "DROP TABLE gate_sessions; DROP INDEX gate_audit_request; \
         ALTER TABLE gate_audit DROP COLUMN request_id; \
         DELETE FROM holdfast_gate_schema WHERE version > 2;",
    )
    .expect("downgrade");
    let s = PgGateStore::connect(&url, 1).expect("connect migrates");
    let trail = s.audit_of("before", 10).expect("audit_of");
    assert_eq!(
        trail.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [AuditKind::Hold, AuditKind::Cancel]
    );
}

/// Console sessions in the guard's store: opened by one instance, seen and ended by
/// another; not live once expired; at most `max` kept, those that end soonest dropped
/// first; expired ones removed when a session is opened.
#[test]
fn sessions_are_shared_expire_and_are_bounded() {
    backends(|open| {
        let (a, b) = (open(), open());
        let max3 = SessionLimits {
            total: 3,
            per_token: 3,
        };
        let session = |who: &str, expires_at_ms| StoredSession {
            who: who.into(),
            csrf: [7; 32],
            expires_at_ms,
        };
        a.open_session([1; 32], &session("alice", 5_000), 1_000, max3)
            .expect("open");
        assert_eq!(
            b.session([1; 32], 1_000).expect("read"),
            Some(session("alice", 5_000)),
            "another instance sees it"
        );
        assert_eq!(b.session([1; 32], 5_000).expect("read"), None, "expired");
        assert_eq!(b.session([9; 32], 1_000).expect("read"), None);
        b.close_session([1; 32]).expect("close");
        assert_eq!(a.session([1; 32], 1_000).expect("read"), None, "closed");
        // Bounded at 3: opening a fourth drops the one that ends soonest.
        for (k, until) in [(2u8, 9_000u64), (3, 7_000), (4, 8_000)] {
            a.open_session([k; 32], &session("bob", until), 1_000, max3)
                .expect("open");
        }
        b.open_session([5; 32], &session("carol", 6_000), 1_000, max3)
            .expect("open");
        let live: Vec<u8> = (2..=5)
            .filter(|k| a.session([*k; 32], 1_000).expect("read").is_some())
            .collect();
        assert_eq!(live, [2, 4, 5], "the one ending at 7,000 dropped");
        // At 8,500 the ones ending at 6,000 and 8,000 are expired and removed on open.
        a.open_session([6; 32], &session("dave", 20_000), 8_500, max3)
            .expect("open");
        let kept: Vec<u8> = (2..=6)
            .filter(|k| a.session([*k; 32], 0).expect("read").is_some())
            .collect();
        assert_eq!(kept, [2, 6], "expired removed on open");

        // One token signing in over and over drops only its own oldest sessions.
        let (c, d) = (open(), open());
        let limits = SessionLimits {
            total: 100,
            per_token: 2,
        };
        for k in 10u8..13 {
            c.open_session(
                [k; 32],
                &session("other", 50_000 + u64::from(k)),
                9_000,
                limits,
            )
            .expect("open");
        }
        for k in 20u8..30 {
            d.open_session(
                [k; 32],
                &session("insider", 40_000 + u64::from(k)),
                9_000,
                limits,
            )
            .expect("open");
        }
        let live = |range: std::ops::Range<u8>| -> Vec<u8> {
            range
                .filter(|k| c.session([*k; 32], 9_000).expect("read").is_some())
                .collect()
        };
        assert_eq!(live(10..13), [11, 12], "the other token keeps its 2 newest");
        assert_eq!(
            live(20..30),
            [28, 29],
            "the insider keeps only 2, the latest"
        );
    });
}
