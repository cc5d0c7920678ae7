//! With the embedded store (the behaviour suite runs both backends on the store methods).

use holdfast_primitives::BlockRef;
use holdfast_store::watch::{BlockCommit, EmbeddedWatchStore, NewAlert};

use super::*;

fn block(n: u64) -> BlockRef {
    let h = |n: u64| alloy_primitives::B256::left_padding_from(&n.to_be_bytes());
    BlockRef {
        number: n,
        hash: h(n),
        parent_hash: h(n.wrapping_sub(1)),
        timestamp: n,
    }
}

/// A store whose outbox holds `events` events (one alert per block).
fn store(dir: &std::path::Path, events: u64) -> EmbeddedWatchStore {
    let s = EmbeddedWatchStore::open(&dir.join("watch")).expect("open");
    for n in 1..=events {
        s.commit_block(&BlockCommit {
            chain_id: 1,
            block: block(n),
            state: Vec::new(),
            alerts: vec![NewAlert {
                id: format!("hf-{n}"),
                rule: "r".into(),
                severity: 2,
                raised_at_ms: 0,
                body: b"{}".to_vec(),
            }],
            confirm: Vec::new(),
            forget_below: 0,
            fence: None,
        })
        .expect("commit");
    }
    s
}

fn served(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|s| (*s).to_owned())
        .chain([RESPONDER_SINK.to_owned()])
        .collect()
}

#[test]
fn the_report_names_each_cursor_its_backlog_and_whether_the_file_serves_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(dir.path(), 5);
    s.advance_cursor("soc", 5).expect("advance");
    s.advance_cursor("old-slack", 2).expect("advance");
    s.advance_cursor(RESPONDER_SINK, 4).expect("advance");
    let r = report(&s, &served(&["soc", "mail"])).expect("report");
    assert_eq!(r.head, 5);
    let rows: Vec<_> = r
        .cursors
        .iter()
        .map(|c| (c.sink.as_str(), c.position, c.backlog, c.standing))
        .collect();
    assert_eq!(
        rows,
        [
            (RESPONDER_SINK, 4, 1, Standing::Responder),
            ("old-slack", 2, 3, Standing::Stale),
            ("soc", 5, 0, Standing::Configured),
        ]
    );
    assert_eq!(r.not_stored, ["mail"]);
    assert_eq!(
        r.stale().map(|c| c.sink.as_str()).collect::<Vec<_>>(),
        ["old-slack"]
    );
    let w = stale_warnings(&s, &served(&["soc", "mail"])).expect("warnings");
    assert_eq!(w.len(), 1, "{w:?}");
    for needle in [
        "sink old-slack",
        "stored at 2",
        "3 events behind the outbox head",
        "holdfast watch forget-sink <watch file> old-slack",
    ] {
        assert!(w[0].contains(needle), "{needle:?} in {}", w[0]);
    }
    assert_eq!(
        stale_warnings(&s, &served(&["soc", "old-slack"])).expect("warnings"),
        Vec::<String>::new()
    );
}

#[test]
fn forgetting_refuses_a_served_sink_and_an_unknown_one_and_removes_a_stale_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(dir.path(), 3);
    s.advance_cursor("soc", 3).expect("advance");
    s.advance_cursor("old", 1).expect("advance");
    let file = served(&["soc"]);
    let e = forget_stale(&s, &file, "soc").expect_err("configured");
    assert!(matches!(&e, ForgetError::Configured { sink } if sink == "soc"));
    assert!(e.to_string().contains("sink soc is configured"), "{e}");
    let e = forget_stale(&s, &file, RESPONDER_SINK).expect_err("responder");
    assert!(matches!(e, ForgetError::Responder { .. }), "{e}");
    for unknown in ["nope", "bad name", ""] {
        let e = forget_stale(&s, &file, unknown).expect_err("unknown");
        assert!(
            matches!(&e, ForgetError::Unknown { stored, .. } if stored == &["old", "soc"]),
            "{e}"
        );
        assert!(e.to_string().contains("stored: old, soc"), "{e}");
    }
    assert_eq!(s.cursors().expect("cursors").len(), 2, "nothing removed");
    assert_eq!(forget_stale(&s, &file, "old").expect("forget"), 1);
    assert_eq!(
        s.cursors()
            .expect("cursors")
            .into_iter()
            .map(|c| c.sink)
            .collect::<Vec<_>>(),
        ["soc"]
    );
    let e = forget_stale(&s, &file, "old").expect_err("gone");
    assert!(e.to_string().contains("stored: soc"), "{e}");
}
