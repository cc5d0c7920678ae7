//! `holdfast trace` on imported transfers: a blockchain-etl export with an exchange labelled
//! by `intel import`, and the real Ronin/Lazarus transfers (data/trace/ronin-lazarus).

use std::path::Path;

use crate::{holdfast, stderr, stdout};

const THIEF: &str = "0x1111111111111111111111111111111111111111";
const MIXED: &str = "0x3333333333333333333333333333333333333333";
const DEPOSIT: &str = "0x7777777777777777777777777777777777777777";

fn write_export(dir: &Path) -> std::path::PathBuf {
    let rows = [
        // hash, block, index, from, to, wei
        (
            "01",
            100,
            "0x2222222222222222222222222222222222222222",
            MIXED,
            3000,
        ),
        ("02", 101, THIEF, MIXED, 2000),
        (
            "03",
            102,
            MIXED,
            "0x4444444444444444444444444444444444444444",
            4000,
        ),
        ("04", 103, MIXED, DEPOSIT, 1000),
    ];
    let mut csv = String::from(
        "hash,block_number,transaction_index,from_address,to_address,value,block_timestamp,receipt_status\n",
    );
    for (h, b, from, to, v) in rows {
        csv.push_str(&format!("0x{h:0>64},{b},0,{from},{to},{v},{},1\n", b * 12));
    }
    let path = dir.join("transactions.csv");
    std::fs::write(&path, csv).expect("write export");
    path
}

#[test]
fn traces_an_imported_export_to_a_labelled_exchange() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let export = write_export(dir.path());
    let o = holdfast(
        &data,
        &["import", "transfers", export.to_str().expect("utf8")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    label_deposit_as_exchange(dir.path(), &data);

    // FIFO: the mixed account's queue is [3000 clean, 2000 stolen]; the 4000 payment takes
    // 3000 + 1000 stolen, the 1000 deposit the remaining 1000 stolen.
    let o = holdfast(
        &data,
        &["trace", "--seed", THIEF, "--policy", "fifo", "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let t: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(t["targets"][0]["service"]["name"], "Binance 14");
    assert_eq!(t["targets"][0]["deposit"], DEPOSIT);
    assert_eq!(t["targets"][0]["amounts"][0]["amount"], "1000");
    assert_eq!(t["targets"][0]["path"].as_array().map(Vec::len), Some(2));

    // Haircut: 2000/5000 × 4000 = 1600 out, then all of the 1000 deposit × 400/1000 = 400.
    let o = holdfast(&data, &["trace", "--seed", THIEF, "--label"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("freeze target: Binance 14 (exchange)"),
        "{text}"
    );
    assert!(text.contains("400 native"), "{text}");
    assert!(stderr(&o).contains("tainted labels"), "{}", stderr(&o));
    // The labels make screening flag the mixed account (exit 1 = at or above --fail-on).
    let o = holdfast(&data, &["screen", MIXED]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("tainted"), "{}", stdout(&o));

    for (format, needle) in [
        ("csv", "address,role,hops"),
        ("dot", "digraph"),
        ("graphml", "<graphml"),
    ] {
        let o = holdfast(&data, &["trace", "--seed", THIEF, "--format", format]);
        assert!(
            o.status.success() && stdout(&o).contains(needle),
            "{format}: {}",
            stderr(&o)
        );
    }

    let o = holdfast(&data, &["trace", "--seed", "0xabc"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("seed \"0xabc\": expected"),
        "{}",
        stderr(&o)
    );
    let o = holdfast(&data, &["trace", "--seed", THIEF, "--amount", "12x"]);
    assert!(stderr(&o).contains("--amount \"12x\""), "{}", stderr(&o));
    let o = holdfast(&data, &["trace", "--seed", THIEF, "--max-hops", "0"]);
    assert!(stderr(&o).contains("max_hops"), "{}", stderr(&o));
}

/// The real Ronin bridge exploiter's ETH transfers (Dune export, MIT): the trace reaches the
/// six other addresses OFAC listed for Lazarus with exactly what the exploiter sent them;
/// the labelled services in the data (a Binance hot wallet that paid the exploiter before
/// the theft, the Ronin bridge itself) are never tainted.
#[test]
fn ronin_exploiter_real_transfers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/trace/ronin-lazarus"
    );
    let o = holdfast(
        dir.path(),
        &["import", "transfers", &format!("{root}/transactions.csv")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let listed: Vec<String> = std::fs::read_to_string(format!("{root}/LazarusGroup.txt"))
        .expect("list")
        .split(',')
        .map(|s| {
            s.trim()
                .trim_matches('\'')
                .replace("\\x", "0x")
                .to_lowercase()
        })
        .filter(|s| s.len() == 42)
        .collect();
    let exploiter = "0x098b716b8aaf21512996dc57eb0615e2383e2f96";
    let expected = [
        (
            "0x35fb6f6db4fb05e6a4ce86f2c93691425626d4b1",
            "33568152000000000000000",
        ),
        (
            "0xf7b31119c2682c88d88d455dbb9d5932c65cf1be",
            "25127519200000000000000",
        ),
        (
            "0x3e37627deaa754090fbfbb8bd226c1ce66d255e9",
            "23528800000000000000000",
        ),
    ];
    for policy in ["poison", "haircut", "fifo", "lifo", "tiho"] {
        let o = holdfast(
            dir.path(),
            &["trace", "--seed", exploiter, "--policy", policy, "--json"],
        );
        assert!(o.status.success(), "{policy}: {}", stderr(&o));
        let t: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
        let reached: Vec<&serde_json::Value> = t["addresses"]
            .as_array()
            .expect("addresses")
            .iter()
            .collect();
        let find = |a: &str| reached.iter().find(|r| r["address"] == a).copied();
        for l in listed.iter().filter(|l| l.as_str() != exploiter) {
            assert!(find(l).is_some(), "{policy}: OFAC-listed {l} not reached");
        }
        for (a, wei) in expected {
            assert_eq!(
                find(a).expect("reached")["received"][0]["amount"],
                wei,
                "{policy} {a}"
            );
        }
        for never in [
            "0x4976a4a02f38326660d17bf34b431dc6e2eb2327",
            "0x1a2a1c938ce3ec39b6d47113c7955baa9dd454f2",
        ] {
            assert!(find(never).is_none(), "{policy}: {never} tainted");
        }
        assert_eq!(t["targets"].as_array().map(Vec::len), Some(0), "{policy}");
    }
}

/// `--follow` against a PostgreSQL store: the trace runs before the theft's later hops are
/// stored, and prints the exchange the moment an import brings them.
#[test]
fn follow_prints_a_line_when_taint_reaches_a_service() {
    let pg = holdfast_store::testing::TempPostgres::start(false)
        .expect("PostgreSQL for the test (scripts/install-postgres)");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let export = write_export(dir.path());
    let text = std::fs::read_to_string(&export).expect("export");
    let lines: Vec<&str> = text.lines().collect();
    let first = dir.path().join("first.csv");
    let rest = dir.path().join("rest.csv");
    std::fs::write(
        &first,
        format!("{}\n{}\n{}\n", lines[0], lines[1], lines[2]),
    )
    .expect("write");
    std::fs::write(&rest, format!("{}\n{}\n{}\n", lines[0], lines[3], lines[4])).expect("write");
    label_deposit_as_exchange(dir.path(), &data);
    let store = ["--store", pg.url()];
    let import = |f: &Path| {
        let o = holdfast(
            &data,
            &[
                &store[..],
                &["import", "transfers", f.to_str().expect("utf8")],
            ]
            .concat(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
    };
    import(&first);
    let mut f = crate::Follower::spawn(
        &data,
        &[
            &store[..],
            &[
                "trace",
                "--seed",
                THIEF,
                "--policy",
                "fifo",
                "--follow",
                "--interval",
                "1",
            ],
        ]
        .concat(),
    );
    f.collect(std::time::Duration::from_millis(1500), None);
    assert!(
        f.lines.is_empty(),
        "no service is reached before the deposit is stored: {:?}",
        f.lines
    );
    import(&rest);
    f.collect(std::time::Duration::from_secs(30), Some(&["taint reached"]));
    let line = f
        .lines
        .first()
        .expect("a line when taint reaches the exchange");
    assert!(
        line.contains("taint reached Binance 14 (exchange) deposit"),
        "{line}"
    );
    assert!(line.contains("1000 native"), "{line}");
}

/// Labels `DEPOSIT` as an exchange deposit ("Binance 14") in the data directory's intel.
fn label_deposit_as_exchange(dir: &Path, data: &Path) {
    let list = dir.join("exchange.txt");
    std::fs::write(&list, format!("{DEPOSIT}\n")).expect("list");
    let o = holdfast(
        data,
        &[
            "intel",
            "import",
            list.to_str().expect("utf8"),
            "--category",
            "exchange",
            "--name",
            "Binance 14",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}
