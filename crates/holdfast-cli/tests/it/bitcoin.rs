//! `holdfast ingest --chain bitcoin` against a real node (litecoind in regtest): the UTXO
//! index the binary builds holds what the node's UTXO set holds, a second run resumes, the
//! cookie file authenticates, and `--from` is refused.

use holdfast_testkit::{Litecoind, LitecoindOptions};
use serde_json::json;

use crate::{fails_with, holdfast, stderr, stdout};

/// The node's `gettxoutsetinfo` as the binary prints it: outputs and total.
async fn node_set(node: &Litecoind) -> String {
    let info = node
        .rpc("gettxoutsetinfo", json!([]))
        .await
        .expect("gettxoutsetinfo");
    let total = (info["total_amount"].as_f64().expect("total") * 1e8).round() as u64;
    format!("{} unspent outputs holding {total} ", info["txouts"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_chain_bitcoin_builds_the_nodes_utxo_set() {
    let node = Litecoind::spawn().await.expect("litecoind");
    node.create_wallet("w").await.expect("wallet");
    let a = node.new_address("w", "bech32").await.expect("address");
    let b = node.new_address("w", "p2sh-segwit").await.expect("address");
    node.mine(102, &a).await.expect("mine");
    node.send("w", &b, "12.5").await.expect("send");
    node.mine(1, &b).await.expect("mine");
    let (user, password) = node.user_password().expect("user/password");
    let url = node
        .rpc_url()
        .replace("http://", &format!("http://{user}:{password}@"));
    let data = tempfile::tempdir().expect("tempdir");

    let out = holdfast(
        data.path(),
        &["ingest", "--chain", "bitcoin", "--rpc", &url],
    );
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("litecoin-regtest via http://127.0.0.1:"),
        "{text}"
    );
    assert!(!text.contains(password), "the password is shown: {text}");
    assert!(text.contains(": 104 blocks, 105 transactions"), "{text}");
    assert!(text.contains("index head 103;"), "{text}");
    assert!(text.contains(&node_set(&node).await), "{text}");

    // Resumed: only the new block.
    node.mine(1, &a).await.expect("mine");
    let out = holdfast(
        data.path(),
        &["ingest", "--chain", "bitcoin", "--rpc", &url],
    );
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(": 1 blocks, 1 transactions"), "{text}");
    assert!(text.contains(&node_set(&node).await), "{text}");

    let out = holdfast(
        data.path(),
        &["ingest", "--chain", "bitcoin", "--rpc", &url, "--from", "5"],
    );
    fails_with(
        &out,
        2,
        "--from: the UTXO index is built from the genesis block",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_chain_bitcoin_with_the_cookie_file() {
    let node = Litecoind::spawn_opts(LitecoindOptions {
        cookie_auth: true,
        ..LitecoindOptions::default()
    })
    .await
    .expect("litecoind");
    node.create_wallet("w").await.expect("wallet");
    let a = node.new_address("w", "legacy").await.expect("address");
    node.mine(3, &a).await.expect("mine");
    let data = tempfile::tempdir().expect("tempdir");
    let cookie = node.cookie_path();
    let out = holdfast(
        data.path(),
        &[
            "ingest",
            "--chain",
            "bitcoin",
            "--rpc",
            &node.rpc_url(),
            "--rpc-cookie",
            cookie.to_str().expect("path"),
        ],
    );
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(": 4 blocks, 4 transactions"), "{text}");
    assert!(text.contains(&node_set(&node).await), "{text}");

    // Without credentials the node refuses, and the error says so.
    let out = holdfast(
        data.path(),
        &["ingest", "--chain", "bitcoin", "--rpc", &node.rpc_url()],
    );
    fails_with(&out, 2, "getblockchaininfo: the node at http://127.0.0.1:");
}

/// `holdfast ingest --chain bitcoin --follow` killed with SIGKILL again and again mid-run,
/// into the embedded index or PostgreSQL (`pg`: its URL): every restart resumes from a
/// complete block, the finished index is the node's set, and the address index lists every
/// payment to an address exactly once.
async fn survives_kill_9(pg: Option<&str>) {
    let node = Litecoind::spawn().await.expect("litecoind");
    node.create_wallet("w").await.expect("wallet");
    let a = node.new_address("w", "bech32").await.expect("address");
    let b = node.new_address("w", "legacy").await.expect("address");
    node.mine(110, &a).await.expect("mine");
    // Blocks with transactions spending earlier ones, so a kill can fall between any two.
    for round in 0..30 {
        for _ in 0..3 {
            let to = if round % 2 == 0 { &b } else { &a };
            node.send("w", to, "0.7").await.expect("send");
        }
        node.mine(10, &a).await.expect("mine");
    }
    let tip = node.height().await.expect("height");
    let (user, password) = node.user_password().expect("user/password");
    let url = node
        .rpc_url()
        .replace("http://", &format!("http://{user}:{password}@"));
    let data = tempfile::tempdir().expect("tempdir");
    let head = || {
        use holdfast_store::utxo::UtxoStore;
        let index: Box<dyn UtxoStore> = match pg {
            Some(url) => Box::new(
                holdfast_store::utxo::PgUtxoStore::connect(url)
                    .expect("the index opens after a kill"),
            ),
            None => Box::new(
                holdfast_store::utxo::EmbeddedUtxoStore::open(&data.path().join("store/utxo"))
                    .expect("the index opens after a kill"),
            ),
        };
        index
            .head(LITECOIN_REGTEST_INDEX_ID)
            .expect("head")
            .map(|h| h.number)
    };
    let store_args: Vec<&str> = pg.map_or(Vec::new(), |url| vec!["--store", url]);
    let mut heads = Vec::new();
    for i in 0..12u64 {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .arg("--data-dir")
            .arg(data.path())
            .args(&store_args)
            .args(["ingest", "--chain", "bitcoin", "--rpc", &url, "--follow"])
            .env("HOLDFAST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        tokio::time::sleep(std::time::Duration::from_millis(60 + 25 * i)).await;
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the run ended by itself"
        );
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        heads.push(tokio::task::block_in_place(head)); // the postgres client blocks
    }
    // Each run resumed where the killed one stopped (never lower), and several were killed
    // while blocks were still being written.
    assert!(heads.windows(2).all(|w| w[0] <= w[1]), "{heads:?}");
    let mid_run = heads.iter().filter(|h| h.is_none_or(|h| h < tip)).count();
    assert!(
        mid_run >= 3,
        "only {mid_run} kills landed before the index was complete: {heads:?}"
    );
    eprintln!("index head after each kill: {heads:?} (tip {tip})");
    let left = heads.last().copied().flatten().map_or(0, |h| h + 1);
    let args = |rest: &[&'static str]| -> Vec<String> {
        store_args
            .iter()
            .map(|s| s.to_string())
            .chain(rest.iter().map(|s| s.to_string()))
            .collect()
    };
    let mut ingest = args(&["ingest", "--chain", "bitcoin", "--rpc"]);
    ingest.push(url.clone());
    let ingest: Vec<&str> = ingest.iter().map(String::as_str).collect();
    let out = holdfast(data.path(), &ingest);
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("index head {tip};")), "{text}");
    assert!(
        text.contains(&format!(": {} blocks,", tip + 1 - left)),
        "resumed from block {left}: {text}"
    );
    assert!(text.contains(&node_set(&node).await), "{text}");
    // `b` was paid 0.7 LTC three times in each of 15 rounds: 45 receipts, each listed once.
    let mut list = args(&["transfers", "--chain", "bitcoin", "--direction", "in"]);
    list.push(b.clone());
    let list: Vec<&str> = list.iter().map(String::as_str).collect();
    let out = holdfast(data.path(), &list);
    assert!(out.status.success(), "{}", stderr(&out));
    let receipts = stdout(&out);
    assert_eq!(receipts.lines().count(), 45, "{receipts}");
    assert!(
        receipts.lines().all(|l| l.contains(" 0.70000000 LTC ")),
        "{receipts}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_chain_bitcoin_survives_kill_9() {
    survives_kill_9(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_chain_bitcoin_into_postgres_survives_kill_9() {
    let pg = holdfast_store::testing::TempPostgres::start(false)
        .expect("PostgreSQL for the test (scripts/install-postgres)");
    survives_kill_9(Some(pg.url())).await;
}

/// The chain id the index keeps Litecoin regtest under (`Network::index_id`).
const LITECOIN_REGTEST_INDEX_ID: u64 = 13;

/// `holdfast ingest --chain bitcoin --blocks-dir`: a stopped node's block files into the
/// index, the same UTXO set the node held; it cannot be given with `--rpc`, and a directory
/// without block files is refused naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_chain_bitcoin_from_a_blocks_directory() {
    let mut node = Litecoind::spawn().await.expect("litecoind");
    node.create_wallet("w").await.expect("wallet");
    let a = node.new_address("w", "bech32").await.expect("address");
    let b = node.new_address("w", "p2sh-segwit").await.expect("address");
    node.mine(102, &a).await.expect("mine");
    node.send("w", &b, "12.5").await.expect("send");
    node.mine(1, &b).await.expect("mine");
    let set = node_set(&node).await;
    let tip = node.rpc("getbestblockhash", json!([])).await.expect("best");
    let tip = tip.as_str().expect("hash").to_owned();
    node.stop().await.expect("stop");
    let blocks = node.datadir().join("regtest/blocks");
    let blocks = blocks.to_str().expect("utf8");
    let data = tempfile::tempdir().expect("tempdir");

    let out = holdfast(
        data.path(),
        &["ingest", "--chain", "bitcoin", "--blocks-dir", blocks],
    );
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "litecoin-regtest: best chain of 104 blocks, tip {tip} "
        )),
        "{text}"
    );
    assert!(text.contains(": 104 blocks, 105 transactions"), "{text}");
    assert!(text.contains("index head 103;"), "{text}");
    assert!(text.contains(&set), "{text}");
    let out = holdfast(
        data.path(),
        &["transfers", &b, "--chain", "bitcoin", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("1250000000"), "{}", stdout(&out));

    let out = holdfast(
        data.path(),
        &[
            "ingest",
            "--chain",
            "bitcoin",
            "--blocks-dir",
            blocks,
            "--rpc",
            "http://127.0.0.1:1",
        ],
    );
    fails_with(&out, 2, "--rpc");
    let empty = tempfile::tempdir().expect("tempdir");
    let out = holdfast(
        data.path(),
        &[
            "ingest",
            "--chain",
            "bitcoin",
            "--blocks-dir",
            empty.path().to_str().expect("utf8"),
        ],
    );
    fails_with(&out, 2, "no blk*.dat files");
}
