//! The sinks' cursors listed and forgotten, and the watch's kept Safe searches, on both
//! backends.

use alloy_primitives::B256;
use holdfast_store::StoreError;
use holdfast_store::watch::WatchStore;

use super::{backends, run};

/// A sink no instance serves any more keeps its stored cursor, and that cursor bounds every
/// prune: forgetting it removes that cursor alone (atomically; the others and the outbox
/// stay), after which pruning proceeds past it. Issue 14: a sink removed from the watch
/// file held pruning back for ever.
#[test]
fn a_forgotten_sink_cursor_no_longer_holds_pruning_back() {
    backends(|make| {
        let s = make();
        run(&*s, 1, 1, 6, 1);
        let seqs = |v: Vec<holdfast_store::watch::OutboxEvent>| {
            v.iter().map(|e| e.seq).collect::<Vec<_>>()
        };
        let cursors = |s: &dyn WatchStore| {
            s.cursors()
                .expect("cursors")
                .into_iter()
                .map(|c| (c.sink, c.seq))
                .collect::<Vec<_>>()
        };
        assert_eq!(cursors(&*s), []);
        // "old" was served once and delivered up to 2; "soc" and the responder are served
        // now and have everything.
        s.advance_cursor("old", 2).expect("advance");
        s.advance_cursor("soc", 6).expect("advance");
        s.advance_cursor("holdfast:responder", 6).expect("advance");
        let served = ["soc", "holdfast:responder"];
        assert_eq!(s.prune_outbox(&served, 0).expect("prune"), 2);
        assert_eq!(seqs(s.outbox_since(0, 10).expect("read")), [3, 4, 5, 6]);
        assert_eq!(s.prune_outbox(&served, 0).expect("prune again"), 0);
        assert_eq!(
            cursors(&*make()),
            [
                ("holdfast:responder".to_owned(), 6),
                ("old".to_owned(), 2),
                ("soc".to_owned(), 6)
            ],
            "every stored cursor, by name"
        );
        // Forgetting it removes that cursor only and returns where it stood.
        assert_eq!(s.forget_cursor("old").expect("forget"), Some(2));
        assert_eq!(
            cursors(&*make()),
            [("holdfast:responder".to_owned(), 6), ("soc".to_owned(), 6)]
        );
        assert_eq!(s.cursor("soc").expect("cursor"), 6);
        assert_eq!(seqs(s.outbox_since(0, 10).expect("read")), [3, 4, 5, 6]);
        // Again, or a name never stored: nothing to forget, nothing written.
        assert_eq!(s.forget_cursor("old").expect("forget again"), None);
        assert_eq!(s.forget_cursor("never").expect("forget unknown"), None);
        assert!(s.forget_cursor("").is_err(), "a bad name is refused");
        assert_eq!(cursors(&*s).len(), 2);
        // Pruning now proceeds past where "old" stood.
        assert_eq!(make().prune_outbox(&served, 0).expect("prune"), 4);
        assert_eq!(s.outbox_since(0, 10).expect("read"), []);
        assert_eq!(s.outbox_head().expect("head"), 6);
        // A sink forgotten while still served is registered again at 0 by its next prune
        // (it then holds everything back again; nothing of it is lost).
        run(&*s, 1, 7, 8, 1);
        assert_eq!(s.forget_cursor("soc").expect("forget"), Some(6));
        assert_eq!(s.prune_outbox(&served, 0).expect("prune"), 0);
        assert_eq!(s.cursor("soc").expect("cursor"), 0);
        assert_eq!(seqs(s.outbox_since(0, 10).expect("read")), [7, 8]);
    });
}

/// What a search for the Safes of some owners found on a chain is kept per chain and
/// owners, replaced whole, read back by another instance, and checked before it is written.
#[test]
fn safe_searches_are_kept_per_chain_and_owners() {
    use alloy_primitives::Address;
    use holdfast_store::watch::{MAX_SEARCH_OWNERS, SafeSearch};
    backends(|make| {
        let s = make();
        let (x, y) = (Address::repeat_byte(0x11), Address::repeat_byte(0x22));
        let search = SafeSearch {
            chain_id: 1,
            owners: vec![x, y],
            from: 10,
            to: 500,
            to_hash: B256::repeat_byte(5),
            safes: vec![Address::repeat_byte(0xa1), Address::repeat_byte(0xb2)],
        };
        assert_eq!(s.safe_search(1, &[x, y]).expect("read"), None);
        s.put_safe_search(&search).expect("put");
        assert_eq!(
            make().safe_search(1, &[x, y]).expect("read"),
            Some(search.clone())
        );
        // Another owner set, another chain: not this search.
        assert_eq!(s.safe_search(1, &[x]).expect("read"), None);
        assert_eq!(s.safe_search(2, &[x, y]).expect("read"), None);
        // Replaced whole by the next search.
        let next = SafeSearch {
            to: 800,
            to_hash: B256::repeat_byte(8),
            safes: vec![Address::repeat_byte(0xb2), Address::repeat_byte(0xc3)],
            ..search.clone()
        };
        s.put_safe_search(&next).expect("put");
        assert_eq!(
            make().safe_search(1, &[x, y]).expect("read"),
            Some(next.clone())
        );
        // Refused, nothing written: unsorted or duplicated owners or Safes, no owner, too
        // many owners, `to` below `from`.
        for bad in [
            SafeSearch {
                owners: vec![y, x],
                ..next.clone()
            },
            SafeSearch {
                owners: Vec::new(),
                ..next.clone()
            },
            SafeSearch {
                owners: vec![x; MAX_SEARCH_OWNERS + 1],
                ..next.clone()
            },
            SafeSearch {
                safes: vec![x, x],
                ..next.clone()
            },
            SafeSearch {
                from: 900,
                ..next.clone()
            },
        ] {
            let e = s.put_safe_search(&bad).expect_err("refused");
            assert!(matches!(e, StoreError::Argument { .. }), "{e}");
        }
        assert!(s.safe_search(1, &[y, x]).is_err(), "unsorted owners");
        assert_eq!(s.safe_search(1, &[x, y]).expect("read"), Some(next));
        // A search that found nothing is kept too (its range is searched).
        let none = SafeSearch {
            chain_id: 1,
            owners: vec![y],
            from: 0,
            to: 0,
            to_hash: B256::ZERO,
            safes: Vec::new(),
        };
        s.put_safe_search(&none).expect("put");
        assert_eq!(make().safe_search(1, &[y]).expect("read"), Some(none));
    });
}
