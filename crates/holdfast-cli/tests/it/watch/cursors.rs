//! Issue 14: a sink removed from the watch file kept its stored cursor, which held the
//! outbox's pruning back for ever, silently. End to end: a watch with two sinks, the file
//! edited to one, the start's warning, `watch cursors` showing the stale one,
//! `watch forget-sink` refusing the configured one and an unknown name and removing the
//! stale one, and the next run's prune deleting the delivered events past it.

use std::path::Path;
use std::process::Command;

use alloy_primitives::{Address, B256, Bytes, U256};
use holdfast_store::watch::{EmbeddedWatchStore, PgWatchStore, WatchStore};
use holdfast_testkit::{Anvil, dev_account};

use crate::{holdfast, stderr, stdout};

fn watch_file(rpc: &str, wallet: Address, sinks: &[&str]) -> String {
    let mut f = format!(
        r#"[[chain]]
name = "anvil"
rpc = "{rpc}"
chain_id = 31337
confirmations = 0
start_block = 1

[[asset]]
symbol = "ETH"
chain = "anvil"
kind = "native"

[[set]]
name = "hot"
addresses = ["{wallet}"]

[[rule]]
name = "hot-large"
detector = "outflow"
targets = ["hot"]
amount_above = {{ ETH = "0.5" }}
"#
    );
    for s in sinks {
        f.push_str(&format!("\n[[sink]]\nkind = \"stdout\"\nname = \"{s}\"\n"));
    }
    f
}

/// `n` payments of 1 ETH from `wallet` (one alert each); returns the head.
async fn pay(node: &Anvil, wallet: Address, n: u64, salt: u64) -> u64 {
    for i in 0..n {
        node.send(
            wallet,
            Some(Address::from_word(B256::from(U256::from(salt + i)))),
            U256::from(10u64).pow(U256::from(18)),
            Bytes::new(),
            None,
        )
        .await
        .expect("pay");
    }
    node.block_number().await.expect("head")
}

/// A bounded watch run that prunes everything delivered (`--prune-keep 0`); its stderr
/// (warnings included).
fn run(data: &Path, store: Option<&str>, config: &Path, last: u64) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_holdfast"));
    c.arg("--data-dir").arg(data);
    if let Some(url) = store {
        c.args(["--store", url]);
    }
    let o = c
        .args(["watch", "--config"])
        .arg(config)
        .args(["--prune-keep", "0", "--stop-after-block", &last.to_string()])
        .env("HOLDFAST_LOG", "warn,watch::alert=off")
        .output()
        .expect("runs holdfast watch");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stderr(&o)
}

fn outbox(data: &Path, store: Option<&str>) -> (u64, Vec<u64>) {
    let s: Box<dyn WatchStore> = match store {
        Some(url) => Box::new(PgWatchStore::connect(url, 1).expect("pg")),
        None => Box::new(EmbeddedWatchStore::open(&data.join("store/watch")).expect("open")),
    };
    let seqs = s
        .outbox_since(0, 1000)
        .expect("read")
        .iter()
        .map(|e| e.seq)
        .collect();
    (s.outbox_head().expect("head"), seqs)
}

#[test]
fn a_removed_sinks_cursor_is_listed_forgotten_and_then_pruned_past() {
    scenario(None);
}

#[test]
fn a_removed_sinks_cursor_is_listed_forgotten_and_then_pruned_past_on_postgres() {
    let pg = holdfast_store::testing::TempPostgres::start(false).expect("postgres");
    scenario(Some(pg.url()));
}

fn scenario(store: Option<&str>) {
    // `holdfast` with the store given.
    let holdfast = |data: &Path, args: &[&str]| {
        let mut all: Vec<&str> = store.map(|u| vec!["--store", u]).unwrap_or_default();
        all.extend_from_slice(args);
        holdfast(data, &all)
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let node = rt.block_on(Anvil::spawn()).expect("anvil");
    let wallet = dev_account(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = dir.path().join("watch.toml");
    let write = |sinks: &[&str]| {
        std::fs::write(&config, watch_file(&node.http_url(), wallet, sinks)).expect("write")
    };
    let file = config.to_str().expect("utf-8");

    // Two sinks take every event.
    write(&["log", "old-log"]);
    let first = rt.block_on(pay(&node, wallet, 3, 0x1000));
    let err = run(&data, store, &config, first);
    assert!(!err.contains("not in the watch file"), "{err}");
    let (head1, _) = outbox(&data, store);
    assert!(head1 >= 3, "one event per payment: {head1}");

    // The file loses "old-log"; the next run warns about its cursor and delivers to "log".
    write(&["log"]);
    let second = rt.block_on(pay(&node, wallet, 3, 0x2000));
    let err = run(&data, store, &config, second);
    for needle in [
        "sink old-log is not in the watch file",
        &format!("stored at {head1}"),
        "holdfast watch forget-sink <watch file> old-log",
    ] {
        assert!(err.contains(needle), "{needle:?} in: {err}");
    }
    let (head2, seqs) = outbox(&data, store);
    assert!(head2 > head1);
    assert!(
        seqs.iter().any(|s| *s > head1),
        "held back by old-log: {seqs:?}"
    );

    // `cursors` lists each stored cursor, the stale one marked (exit status 1).
    let o = holdfast(&data, &["watch", "cursors", file]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    let line = |sink: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(sink))
            .unwrap_or_else(|| panic!("{sink} in: {out}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        line("old-log")[1..3],
        [head1.to_string(), (head2 - head1).to_string()]
    );
    assert!(line("old-log").join(" ").contains("stale"), "{out}");
    assert_eq!(
        line("log")[1..4],
        [head2.to_string(), "0".into(), "yes".into()]
    );
    assert_eq!(line("holdfast:responder")[1], head2.to_string());
    assert!(out.contains("forget-sink"), "{out}");
    let o = holdfast(&data, &["watch", "cursors", "--json", file]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("json");
    assert_eq!(v["head"], head2);
    let stale: Vec<_> = v["cursors"]
        .as_array()
        .expect("cursors")
        .iter()
        .filter(|c| c["standing"] == "stale")
        .collect();
    assert_eq!(stale.len(), 1, "{v}");
    assert_eq!(stale[0]["sink"], "old-log");
    assert_eq!(stale[0]["backlog"], head2 - head1);

    // `forget-sink` refuses a sink the file configures, the responder and an unknown name.
    let o = holdfast(&data, &["watch", "forget-sink", file, "log"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("sink log is configured"),
        "{}",
        stderr(&o)
    );
    let o = holdfast(&data, &["watch", "forget-sink", file, "holdfast:responder"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("responder"), "{}", stderr(&o));
    let o = holdfast(&data, &["watch", "forget-sink", file, "old-logs"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("stored: holdfast:responder, log, old-log"),
        "{}",
        stderr(&o)
    );
    // …and removes the stale one.
    let o = holdfast(&data, &["watch", "forget-sink", file, "old-log"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("stood at {head1}")),
        "{}",
        stdout(&o)
    );
    let o = holdfast(&data, &["watch", "cursors", file]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(!stdout(&o).contains("old-log"), "{}", stdout(&o));

    // The next run neither warns nor holds back: its prune deletes what both served sinks
    // delivered, past where old-log stood.
    let third = rt.block_on(pay(&node, wallet, 1, 0x3000));
    let err = run(&data, store, &config, third);
    assert!(!err.contains("not in the watch file"), "{err}");
    let (_, seqs) = outbox(&data, store);
    assert!(
        seqs.iter().all(|s| *s > head2),
        "every event up to {head2} pruned: {seqs:?}"
    );
    drop(node);
}
