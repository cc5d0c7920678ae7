//! `holdfast import transfers` and `holdfast transfers` against the store: nothing of a file
//! is lost or half-stored, and a query names the chains the store holds (issue 13).

use std::path::Path;

use holdfast_store::{EmbeddedStore, Store};

use crate::{holdfast, stderr, stdout};

const HEADER: &str = "hash,block_number,transaction_index,from_address,to_address,value,block_timestamp,receipt_status\n";
const FROM: &str = "0x1111111111111111111111111111111111111111";
const TO: &str = "0x2222222222222222222222222222222222222222";
const H1: &str = "0x1000000000000000000000000000000000000000000000000000000000000001";
const H2: &str = "0x2000000000000000000000000000000000000000000000000000000000000002";
const H3: &str = "0x3000000000000000000000000000000000000000000000000000000000000003";

fn row(hash: &str, block: u64, index: u32, value: u64) -> String {
    format!("{hash},{block},{index},{FROM},{TO},{value},1650000000,1\n")
}

fn write(dir: &Path, name: &str, rows: &[String]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{HEADER}{}", rows.join(""))).expect("write");
    path.to_str().expect("utf8").to_owned()
}

fn stored(data: &Path, chain_id: u64) -> u64 {
    EmbeddedStore::open(&data.join("store/transfers"))
        .expect("open")
        .transfer_count(chain_id)
        .expect("count")
}

/// Issue 13: two transactions at one block and transaction index were reported as
/// "2 transfers (1 new)" and the second was lost.
#[test]
fn two_transactions_at_one_place_fail_the_file_naming_both_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "tx.csv",
        &[row(H1, 15_000_000, 3, 5), row(H2, 15_000_000, 3, 7)],
    );
    let o = holdfast(dir.path(), &["import", "transfers", &file]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("tx.csv:3") && err.contains("line 2") && err.contains(H1) && err.contains(H2),
        "{err}"
    );
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stored(dir.path(), 1),
        0,
        "nothing of a failed file is stored"
    );
}

/// The same collision across two files: the second file is refused whole, naming its line
/// and the stored transfer.
#[test]
fn a_file_that_contradicts_the_store_is_refused_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = write(dir.path(), "a.csv", &[row(H1, 15_000_000, 3, 5)]);
    let o = holdfast(dir.path(), &["import", "transfers", &first]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("1 transfers (1 new)"), "{}", stdout(&o));
    let second = write(
        dir.path(),
        "b.csv",
        &[row(H3, 15_000_001, 0, 9), row(H2, 15_000_000, 3, 7)],
    );
    let o = holdfast(dir.path(), &["import", "transfers", &second]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("b.csv:3") && err.contains(H1) && err.contains(H2) && err.contains("nothing"),
        "{err}"
    );
    assert_eq!(
        stored(dir.path(), 1),
        1,
        "the fresh row of b.csv was not stored either"
    );
    // The same file again is no conflict: all already stored.
    let o = holdfast(dir.path(), &["import", "transfers", &first]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("(0 new)"), "{}", stdout(&o));
}

/// Issue 13: a receipt status other than 1 dropped the row silently, and a bad checksum was
/// accepted.
#[test]
fn bad_fields_fail_the_file_naming_row_column_and_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let status = dir.path().join("status.csv");
    std::fs::write(
        &status,
        format!(
            "{HEADER}{}{H2},15000000,4,{FROM},{TO},5,1650000000,success\n",
            row(H1, 15_000_000, 3, 5)
        ),
    )
    .expect("write");
    let o = holdfast(
        dir.path(),
        &["import", "transfers", status.to_str().expect("utf8")],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("status.csv:3") && err.contains("receipt_status") && err.contains("success"),
        "{err}"
    );
    let checksum = dir.path().join("checksum.csv");
    let bad = "0x098b716B8Aaf21512996dC57EB0615e2383E2f96";
    std::fs::write(
        &checksum,
        format!("{HEADER}{H1},15000000,3,{FROM},{bad},5,1650000000,1\n"),
    )
    .expect("write");
    let o = holdfast(
        dir.path(),
        &["import", "transfers", checksum.to_str().expect("utf8")],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("checksum.csv:2") && stderr(&o).contains(bad),
        "{}",
        stderr(&o)
    );
    assert_eq!(stored(dir.path(), 1), 0);
}

/// Issue 13: `holdfast transfers ADDRESS` answered nothing (exit 0) when the store held only
/// another chain than the default 1.
#[test]
fn transfers_uses_the_only_stored_chain_or_names_the_chains() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = holdfast(dir.path(), &["transfers", TO]);
    assert_eq!(o.status.code(), Some(2), "an empty store: {}", stderr(&o));
    assert!(
        stderr(&o).contains("no transfers of any chain"),
        "{}",
        stderr(&o)
    );

    let file = write(dir.path(), "tx.csv", &[row(H1, 15_000_000, 3, 5)]);
    let o = holdfast(
        dir.path(),
        &["import", "transfers", "--chain-id", "31337", &file],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = holdfast(dir.path(), &["transfers", "--json", TO]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(rows.len(), 1, "{}", stdout(&o));
    assert_eq!(rows[0]["chain_id"], 31337);

    let o = holdfast(dir.path(), &["transfers", "--chain-id", "1", TO]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("nothing for chain 1") && stderr(&o).contains("31337"),
        "{}",
        stderr(&o)
    );
    let o = holdfast(
        dir.path(),
        &["import", "transfers", "--chain-id", "5", &file],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = holdfast(dir.path(), &["transfers", TO]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("chains 5, 31337"), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    let o = holdfast(dir.path(), &["transfers", "--chain-id", "5", TO]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 1, "{}", stdout(&o));
    // `trace` reads the store the same way.
    let o = holdfast(dir.path(), &["trace", "--seed", FROM]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("chains 5, 31337"), "{}", stderr(&o));
}
