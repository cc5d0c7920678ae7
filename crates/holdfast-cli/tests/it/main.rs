//! The `holdfast` binary end to end: exit codes, output formats, persistence of imports,
//! batch screening. Each test uses its own data directory.

mod bitcoin;
mod bitcoin_screen;
mod bitcoin_trace;
mod bitcoin_transfers;
mod console;
mod crosschain;
mod gate;
mod guard;
mod guard_requests;
mod imports;
mod trace;

use std::path::Path;
use std::process::{Command, Output};

const LAZARUS: &str = "0x098B716B8Aaf21512996dC57EB0615e2383E2f96";
const CLEAN: &str = "0x00000000000000000000000000000000000b0b0b";

pub(crate) fn holdfast(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("HOLDFAST_LOG", "error")
        .output()
        .expect("runs the binary")
}

/// A `holdfast` that runs until dropped (`trace --follow`), its standard output read line by
/// line as it comes.
pub(crate) struct Follower {
    child: std::process::Child,
    rx: std::sync::mpsc::Receiver<String>,
    /// Every line read so far.
    pub lines: Vec<String>,
}

impl Follower {
    pub(crate) fn spawn(data: &Path, args: &[&str]) -> Follower {
        let mut child = Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .arg("--data-dir")
            .arg(data)
            .args(args)
            .env("HOLDFAST_LOG", "error")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Follower {
            child,
            rx,
            lines: Vec::new(),
        }
    }

    /// Reads lines for `wait`, or (with `until`) only until some line contains each of them.
    pub(crate) fn collect(&mut self, wait: std::time::Duration, until: Option<&[&str]>) {
        let end = std::time::Instant::now() + wait;
        while until.is_none_or(|u| !u.iter().all(|w| self.lines.iter().any(|l| l.contains(w)))) {
            match self
                .rx
                .recv_timeout(end.saturating_duration_since(std::time::Instant::now()))
            {
                Ok(l) => self.lines.push(l),
                Err(_) => break,
            }
        }
    }

    /// How many lines contain `needle`.
    pub(crate) fn count(&self, needle: &str) -> usize {
        self.lines.iter().filter(|l| l.contains(needle)).count()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The run exited with `code` and its error output mentions `needle`.
fn fails_with(o: &Output, code: i32, needle: &str) {
    assert_eq!(o.status.code(), Some(code), "{}", stderr(o));
    assert!(
        stderr(o).contains(needle),
        "expected {needle:?} in: {}",
        stderr(o)
    );
}

#[test]
fn exit_codes_follow_grep() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clean = holdfast(dir.path(), &["screen", CLEAN]);
    assert_eq!(clean.status.code(), Some(0), "{}", stderr(&clean));
    assert!(stdout(&clean).contains("NONE"), "{}", stdout(&clean));

    let hit = holdfast(dir.path(), &["screen", CLEAN, LAZARUS]);
    assert_eq!(hit.status.code(), Some(1));
    let out = stdout(&hit);
    assert!(out.contains("SEVERE"), "{out}");
    assert!(out.contains("ofac-sdn"), "{out}");
    assert!(out.contains("LAZARUS GROUP"), "{out}");

    // Raising the bar above the verdict gives 0 again.
    let lenient = holdfast(dir.path(), &["screen", "--fail-on", "severe", CLEAN]);
    assert_eq!(lenient.status.code(), Some(0));

    // One invalid address: exit 2 and no verdict at all, not even for the valid ones.
    let bad = holdfast(
        dir.path(),
        &[
            "screen",
            CLEAN,
            "0x098b716B8Aaf21512996dC57EB0615e2383E2f96",
        ],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(stdout(&bad), "", "nothing may look clean on error");
    assert!(stderr(&bad).contains("checksum"), "{}", stderr(&bad));

    let unknown_chain = holdfast(dir.path(), &["screen", "--chain", "dogechain", CLEAN]);
    fails_with(&unknown_chain, 2, "dogechain");
}

#[test]
fn json_verdicts_and_as_of() {
    let dir = tempfile::tempdir().expect("tempdir");
    let router = "0xd90e2f925DA726b50C4Ed8D0Fb90Ad053324F31b"; // Tornado Cash: Router
    let before = holdfast(
        dir.path(),
        &["screen", "--json", "--as-of", "2025-03-20", router],
    );
    let after = holdfast(
        dir.path(),
        &[
            "screen",
            "--json",
            "--as-of",
            "2025-03-21",
            "--fail-on",
            "severe",
            router,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(stdout(&before).trim()).expect("one JSON line");
    assert_eq!(v["risk"], "severe");
    assert_eq!(before.status.code(), Some(1));
    let w: serde_json::Value = serde_json::from_str(stdout(&after).trim()).expect("one JSON line");
    assert_ne!(w["risk"], "severe", "{w}");
    assert_eq!(after.status.code(), Some(0));
    let ofac = w["labels"]
        .as_array()
        .expect("labels")
        .iter()
        .find(|l| l["source"] == "ofac-sdn")
        .expect("still shown");
    assert_eq!(ofac["active"], false);
    assert_eq!(ofac["delisted_on"], "2025-03-21");
}

#[test]
fn import_persists_for_later_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("fbi-2026.csv");
    // A fresh list of addresses no shipped source labels.
    std::fs::write(&list, "address\n0x1111111111111111111111111111111111111111\nbc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4\n").expect("write");
    let before = holdfast(
        dir.path(),
        &[
            "screen",
            "--json",
            "0x1111111111111111111111111111111111111111",
        ],
    );
    assert_eq!(before.status.code(), Some(0));

    let imp = holdfast(
        dir.path(),
        &[
            "intel",
            "import",
            list.to_str().expect("utf8"),
            "--category",
            "dprk-attributed",
            "--source",
            "fbi-2026",
            "--actor",
            "lazarusgroup",
            "--confidence",
            "authority_data",
        ],
    );
    assert_eq!(imp.status.code(), Some(0), "{}", stderr(&imp));
    assert!(
        stdout(&imp).contains("imported 2 labels"),
        "{}",
        stdout(&imp)
    );

    let after = holdfast(
        dir.path(),
        &[
            "screen",
            "--json",
            "0x1111111111111111111111111111111111111111",
            "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
        ],
    );
    assert_eq!(after.status.code(), Some(1), "{}", stderr(&after));
    for line in stdout(&after).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        assert_eq!(v["risk"], "severe", "{v}");
        assert!(
            v["labels"]
                .as_array()
                .expect("labels")
                .iter()
                .any(|l| l["source"] == "fbi-2026" && l["actor"] == "lazarusgroup"),
            "{v}"
        );
    }

    let stats = holdfast(dir.path(), &["intel", "stats"]);
    assert_eq!(stats.status.code(), Some(0));
    assert!(stdout(&stats).contains("fbi-2026"), "{}", stdout(&stats));
    assert!(stdout(&stats).contains("ofac-sdn"), "{}", stdout(&stats));
}

#[test]
fn import_errors_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("list.txt");
    std::fs::write(
        &list,
        "0x1111111111111111111111111111111111111111\nnot-an-address\n",
    )
    .expect("write");
    let imp = holdfast(
        dir.path(),
        &[
            "intel",
            "import",
            list.to_str().expect("utf8"),
            "--category",
            "hack",
        ],
    );
    fails_with(&imp, 2, "not-an-address");
    assert!(
        stderr(&imp).contains("line 2"),
        "the line is named: {}",
        stderr(&imp)
    );
    let v = holdfast(
        dir.path(),
        &["screen", "0x1111111111111111111111111111111111111111"],
    );
    assert_eq!(
        v.status.code(),
        Some(0),
        "the valid line was not imported either"
    );

    let no_cat = holdfast(
        dir.path(),
        &["intel", "import", list.to_str().expect("utf8")],
    );
    fails_with(&no_cat, 2, "--category");
}

#[test]
fn batch_file_to_csv_and_jsonl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("deposits.csv");
    let mut text = String::from("customer,address\n");
    for i in 0..3000 {
        text.push_str(&format!("c{i},0x{i:040x}\n"));
    }
    text.push_str(&format!("lazarus,{LAZARUS}\n"));
    std::fs::write(&input, text).expect("write");

    let out = dir.path().join("verdicts.csv");
    let run = holdfast(
        dir.path(),
        &[
            "screen",
            "--file",
            input.to_str().expect("utf8"),
            "-o",
            out.to_str().expect("utf8"),
        ],
    );
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("screened 3001 addresses"),
        "{}",
        stderr(&run)
    );
    let mut reader = csv::Reader::from_path(&out).expect("csv");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 3001);
    let severe: Vec<_> = rows.iter().filter(|r| &r[2] == "severe").collect();
    assert_eq!(severe.len(), 1);
    assert_eq!(&severe[0][1], LAZARUS);
    assert!(severe[0][4].contains("ofac-sdn"), "{:?}", severe[0]);

    let jsonl = holdfast(
        dir.path(),
        &[
            "screen",
            "--file",
            input.to_str().expect("utf8"),
            "--format",
            "jsonl",
        ],
    );
    assert_eq!(jsonl.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = stdout(&jsonl)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3001);
    assert_eq!(lines[3000]["risk"], "severe");

    // A bad line anywhere: exit 2, the line named, no output written.
    std::fs::write(&input, format!("address\n{LAZARUS}\n0x12\n")).expect("write");
    let out2 = dir.path().join("none.csv");
    let bad = holdfast(
        dir.path(),
        &[
            "screen",
            "--file",
            input.to_str().expect("utf8"),
            "-o",
            out2.to_str().expect("utf8"),
        ],
    );
    fails_with(&bad, 2, "deposits.csv:3");
    assert!(!out2.exists(), "no partial output on error");
}

#[test]
fn sdn_xml_update_through_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let xml = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../holdfast-intel/tests/fixtures/sdn_advanced_sample.xml"
    );
    let up = holdfast(dir.path(), &["intel", "update", "--sdn-xml", xml]);
    assert_eq!(up.status.code(), Some(0), "{}", stderr(&up));
    assert!(
        stdout(&up).contains("digital currency addresses"),
        "{}",
        stdout(&up)
    );
    let not_xml = dir.path().join("x.xml");
    std::fs::write(&not_xml, "<html><body>not a list</body></html>").expect("write");
    let bad = holdfast(
        dir.path(),
        &[
            "intel",
            "update",
            "--sdn-xml",
            not_xml.to_str().expect("utf8"),
        ],
    );
    fails_with(&bad, 2, "x.xml");
}

mod chain {
    //! `holdfast ingest` / `transfers` / `import transfers` against a real anvil.

    use std::process::{Command, Stdio};
    use std::time::Duration;

    use alloy_primitives::{B256, U256};
    use holdfast_primitives::Asset;
    use holdfast_store::{EmbeddedStore, Store};
    use holdfast_testkit::{Anvil, Scenario, dev_account};

    fn ingest_cmd(data: &std::path::Path, rpc: &str, extra: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_holdfast"));
        c.arg("--data-dir")
            .arg(data)
            .args(["--quiet", "ingest", "--rpc", rpc])
            .args(extra)
            .env("HOLDFAST_LOG", "error");
        c
    }

    /// kill -9 in the middle of a backfill, then run again: every block, transfer and wei is
    /// there exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_9_during_backfill_then_resume_loses_and_duplicates_nothing() {
        let node = Anvil::spawn().await.expect("anvil");
        let sends = Scenario::new(&node).eth_sends(120).await.expect("activity");
        let head = node.block_number().await.expect("head");
        let dir = tempfile::tempdir().expect("tempdir");
        // Throttled so that the kill lands mid-run; with an index buffer of 7 transfers, so
        // that the store writes its index out in the background all along and the kill can
        // land in the middle of that too.
        let mut child = ingest_cmd(
            dir.path(),
            &node.http_url(),
            &["--rps", "40", "--index-buffer", "7"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        child.kill().expect("kill -9");
        let _ = child.wait();
        let store_path = dir.path().join("store/transfers");
        let partial = {
            let store = EmbeddedStore::open(&store_path).expect("the store opens after a crash");
            store.stats(31337).expect("stats")
        };
        assert!(
            partial.blocks > 0 && partial.blocks < head + 1,
            "killed mid-run: {partial:?} of {} blocks",
            head + 1
        );
        let out = ingest_cmd(dir.path(), &node.http_url(), &[])
            .output()
            .expect("resume");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let store = EmbeddedStore::open(&store_path).expect("open");
        let stats = store.stats(31337).expect("stats");
        assert_eq!(stats.blocks, head + 1);
        assert_eq!(stats.transfers, sends.len() as u64);
        let sum: U256 = sends.iter().map(|s| s.4).sum();
        assert_eq!(
            store.sum_by_asset(31337).expect("sums").get(&Asset::Native),
            Some(&sum),
            "per-asset sums equal the node's"
        );
        // Every address's transfers, out and in, are there exactly once and in order.
        for who in (3..6).map(dev_account) {
            let expected: Vec<B256> = sends.iter().filter(|s| s.1 == who).map(|s| s.0).collect();
            let got: Vec<B256> = store
                .transfers_from(31337, who, 0, 10_000)
                .expect("from")
                .iter()
                .map(|t| t.tx_hash)
                .collect();
            assert_eq!(got, expected, "out of {who}");
        }
        for who in (6..10).map(dev_account) {
            let expected = sends.iter().filter(|s| s.2 == who).count();
            let got = store.transfers_to(31337, who, 0, 10_000).expect("to");
            assert_eq!(got.len(), expected, "into {who}");
        }
        let resumed = String::from_utf8_lossy(&out.stderr);
        assert!(
            resumed.contains(&format!("{} blocks", head + 1 - partial.blocks)),
            "resumed from the checkpoint: {resumed}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn transfers_lists_what_ingest_stored() {
        let node = Anvil::spawn().await.expect("anvil");
        let sends = Scenario::new(&node).eth_sends(3).await.expect("activity");
        let dir = tempfile::tempdir().expect("tempdir");
        let out = ingest_cmd(dir.path(), &node.http_url(), &[])
            .output()
            .expect("ingest");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let who = sends[0].2.to_string();
        let list = Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["transfers", "--chain-id", "31337", "--json", &who])
            .output()
            .expect("transfers");
        assert!(
            list.status.success(),
            "{}",
            String::from_utf8_lossy(&list.stderr)
        );
        let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&list.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(
            rows.len(),
            sends
                .iter()
                .filter(|s| s.1 == sends[0].2 || s.2 == sends[0].2)
                .count()
        );
        let bad = Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["transfers", "0x123"])
            .output()
            .expect("run");
        assert_eq!(bad.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&bad.stderr).contains("0x123"));
    }

    #[test]
    fn import_transfers_from_a_blockchain_etl_export() {
        let dir = tempfile::tempdir().expect("tempdir");
        let csv = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../holdfast-chain/tests/fixtures/ethereum-etl/test_export_traces_job/block_with_subtraces/expected_traces.csv"
        );
        let run = || {
            Command::new(env!("CARGO_BIN_EXE_holdfast"))
                .arg("--data-dir")
                .arg(dir.path())
                .args(["import", "transfers", csv])
                .output()
                .expect("import")
        };
        let first = run();
        assert!(
            first.status.success(),
            "{}",
            String::from_utf8_lossy(&first.stderr)
        );
        let text = String::from_utf8_lossy(&first.stdout).into_owned();
        assert!(
            text.contains("traces export") && text.contains("2 transfers (2 new)"),
            "{text}"
        );
        let again = run();
        assert!(
            String::from_utf8_lossy(&again.stdout).contains("(0 new)"),
            "idempotent"
        );
        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, "token_address,from_address,to_address,value,transaction_hash,log_index,block_number\n0x1,0x2,0x3,4,0x5,6,7\n").expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["import", "transfers"])
            .arg(&bad)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("bad.csv:2") && err.contains("token_address"),
            "{err}"
        );
    }
}
mod watch;
