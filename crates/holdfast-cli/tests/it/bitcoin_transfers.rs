//! `holdfast transfers ADDRESS --chain bitcoin` on the index the binary built from a real node
//! (litecoind in regtest): an address the wallet paid, then spent exactly (a raw transaction
//! spending only its output), lists the receipt and the spend with the node's amounts, block
//! and outpoint; malformed and foreign addresses are refused naming the value and the network.

use holdfast_testkit::Litecoind;
use serde_json::{Value, json};

use crate::{fails_with, holdfast, stderr, stdout};

fn coins(v: &Value) -> String {
    let sats = (v.as_f64().expect("amount") * 1e8).round() as u64;
    format!("{}.{:08}", sats / 100_000_000, sats % 100_000_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_chain_bitcoin_lists_receipts_and_spends() {
    let node = Litecoind::spawn().await.expect("litecoind");
    node.create_wallet("w").await.expect("wallet");
    let miner = node.new_address("w", "bech32").await.expect("address");
    let x = node.new_address("w", "bech32").await.expect("address");
    let legacy = node.new_address("w", "legacy").await.expect("address");
    let away = node.new_address("w", "p2sh-segwit").await.expect("address");
    node.mine(101, &miner).await.expect("mine");
    // x paid last: the wallet may spend its own unconfirmed outputs in a later payment.
    node.send("w", &legacy, "0.5").await.expect("send");
    let paid = node.send("w", &x, "4.25").await.expect("send");
    node.mine(1, &miner).await.expect("mine");
    let received_at = node.height().await.expect("height");
    // Spend exactly x's output (and nothing else) to `away`.
    let unspent = node
        .wallet_rpc("w", "listunspent", json!([1, 9999, [x]]))
        .await
        .expect("listunspent");
    let unspent = unspent.as_array().expect("list");
    assert_eq!(unspent.len(), 1, "{unspent:?}");
    let (out_txid, out_vout) = (
        unspent[0]["txid"].as_str().expect("txid").to_owned(),
        unspent[0]["vout"].as_u64().expect("vout"),
    );
    assert_eq!(out_txid, paid);
    let amount = coins(&unspent[0]["amount"]);
    assert_eq!(amount, "4.25000000");
    let raw = node
        .rpc(
            "createrawtransaction",
            json!([[{"txid": out_txid, "vout": out_vout}], {away.clone(): 4.2499}]),
        )
        .await
        .expect("create");
    let signed = node
        .wallet_rpc("w", "signrawtransactionwithwallet", json!([raw]))
        .await
        .expect("sign");
    let spend = node
        .rpc("sendrawtransaction", json!([signed["hex"]]))
        .await
        .expect("send raw");
    let spend = spend.as_str().expect("txid").to_owned();
    node.mine(1, &miner).await.expect("mine");
    let spent_at = node.height().await.expect("height");
    // The node's view of the payment: getrawtransaction (verbose) of the paying transaction.
    let tx = node
        .rpc("getrawtransaction", json!([paid, true]))
        .await
        .expect("getrawtransaction");
    let vout = &tx["vout"][out_vout as usize];
    assert_eq!(coins(&vout["value"]), amount);

    let (user, password) = node.user_password().expect("user/password");
    let url = node
        .rpc_url()
        .replace("http://", &format!("http://{user}:{password}@"));
    let data = tempfile::tempdir().expect("tempdir");
    let out = holdfast(
        data.path(),
        &["ingest", "--chain", "bitcoin", "--rpc", &url],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let out = holdfast(data.path(), &["transfers", &x, "--chain", "bitcoin"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let outpoint = format!("{paid}:{out_vout}");
    assert!(
        lines[0].starts_with(&format!("block {received_at:>8}  received")),
        "{text}"
    );
    assert!(
        lines[0].contains(&format!(" {amount} LTC  {outpoint}")),
        "{text}"
    );
    assert!(
        lines[1].starts_with(&format!("block {spent_at:>8}  spent")),
        "{text}"
    );
    assert!(
        lines[1].contains(&format!(" {amount} LTC  {outpoint}  by {spend} input 0")),
        "{text}"
    );
    // JSON, and the direction filter; upper-case bech32 is the same address.
    let out = holdfast(
        data.path(),
        &[
            "transfers",
            &x.to_uppercase(),
            "--chain",
            "bitcoin",
            "--json",
            "--direction",
            "out",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["direction"], "spent");
    assert_eq!(rows[0]["txid"], spend.as_str());
    assert_eq!(rows[0]["output"], outpoint.as_str());
    assert_eq!(rows[0]["value"], 425_000_000);
    assert_eq!(rows[0]["network"], "litecoin-regtest");
    assert_eq!(rows[0]["address"], x.as_str());
    // A legacy m…/n… address: several networks write it so, the index holds one of them.
    let out = holdfast(data.path(), &["transfers", &legacy, "--chain", "bitcoin"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(" received           0.50000000 LTC"),
        "{}",
        stdout(&out)
    );
    // The address that received the spend: its receipt, with the node's amount.
    let out = holdfast(data.path(), &["transfers", &away, "--chain", "bitcoin"]);
    assert!(
        stdout(&out).contains(" 4.24990000 LTC  "),
        "{}",
        stdout(&out)
    );

    // Refusals name the value and the network.
    let mut flipped = x.clone();
    let last = flipped.pop().expect("char");
    flipped.push(if last == 'q' { 'p' } else { 'q' });
    let out = holdfast(data.path(), &["transfers", &flipped, "--chain", "bitcoin"]);
    fails_with(
        &out,
        2,
        &format!("address {flipped:?}: not a valid segwit address"),
    );
    let mainnet = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4";
    let out = holdfast(
        data.path(),
        &[
            "transfers",
            mainnet,
            "--chain",
            "bitcoin",
            "--network",
            "litecoin-regtest",
        ],
    );
    fails_with(
        &out,
        2,
        &format!(
            "address {mainnet:?} is not a litecoin-regtest address (expected m…/n…, Q… or rltc1…); it is an address of bitcoin"
        ),
    );
    let out = holdfast(data.path(), &["transfers", mainnet, "--chain", "bitcoin"]);
    fails_with(
        &out,
        2,
        "is an address of bitcoin, and the index holds none of its blocks",
    );
    let out = holdfast(
        data.path(),
        &[
            "transfers",
            "0x00000000219ab540356cbb839cbe05303d7705fa",
            "--chain",
            "bitcoin",
        ],
    );
    fails_with(&out, 2, "\"0x00000000219ab540356cbb839cbe05303d7705fa\"");
    let out = holdfast(
        data.path(),
        &[
            "transfers",
            &x,
            "--chain",
            "bitcoin",
            "--network",
            "dogecoin",
        ],
    );
    fails_with(&out, 2, "--network");
}

fn etl_case(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../holdfast-bitcoin/tests/fixtures/bitcoin-etl/test_export_blocks_job/bitcoin")
        .join(name)
}

/// `holdfast import transfers transactions.json --chain bitcoin --blocks blocks.json` with
/// bitcoin-etl's enriched export of mainnet blocks 50,001–50,002, then `transfers` answers
/// from it; a damaged or unenriched export writes nothing.
#[test]
fn import_transfers_chain_bitcoin_reads_bitcoin_etl() {
    let dir = etl_case("stream_50001_50002");
    let (blocks, txs) = (
        dir.join("expected_blocks.json"),
        dir.join("expected_transactions.json"),
    );
    let (blocks, txs) = (blocks.to_str().expect("path"), txs.to_str().expect("path"));
    let data = tempfile::tempdir().expect("tempdir");
    let import = |data: &std::path::Path, txs: &str| {
        holdfast(
            data,
            &[
                "import",
                "transfers",
                txs,
                "--chain",
                "bitcoin",
                "--blocks",
                blocks,
            ],
        )
    };
    let out = import(data.path(), txs);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "bitcoin: 2 blocks in the export, 2 imported, 0 already there; 4 transactions"
        ),
        "{}",
        stderr(&out)
    );
    let out = import(data.path(), txs);
    assert!(
        stderr(&out).contains("0 imported, 2 already there"),
        "{}",
        stderr(&out)
    );
    // The address received the 100 BTC output of the two-input transaction and 50 BTC in the
    // block's third transaction (bitcoin-etl's export says so too); one of the two P2PK
    // outputs the two-input transaction spent.
    let spender = "7940cdde4d713e171849efc6bd89939185be270266c94e92369e3877ad89455a";
    let out = holdfast(
        data.path(),
        &[
            "transfers",
            "1HaHTfmvoUW6i6nhJf8jJs6tU4cHNmBQHQ",
            "--chain",
            "bitcoin",
        ],
    );
    assert_eq!(
        stdout(&out),
        format!(
            "block    50001  received         100.00000000 BTC  {spender}:0\nblock    50001  received          50.00000000 BTC  f84761459a00c6df3176ae5d94c99e69f25100d09548e5686bd0c354bb8cc60a:0\n"
        ),
        "{}",
        stderr(&out)
    );
    let out = holdfast(
        data.path(),
        &[
            "transfers",
            "1DoQeKfU3dYhN9bxMpFFcVUnufCPDqSPae",
            "--chain",
            "bitcoin",
        ],
    );
    assert_eq!(
        stdout(&out),
        format!(
            "block    50001  spent             50.00000000 BTC  76a8d70a757be5055f60be076b683897cadaad6b7bdf78c43e39b9d59cb4a6ea:0  by {spender} input 0\n"
        ),
        "{}",
        stderr(&out)
    );

    // Clusters over the imported history: the two-input transaction spends outputs of
    // 1DoQeKf… and 1PZMgkF… together (common-input ownership): one cluster of two.
    let cluster = |address: &str| {
        let out = holdfast(data.path(), &["screen", address, "--json"]);
        let v: Value = serde_json::from_str(stdout(&out).trim()).expect("json verdict");
        assert_eq!(v["cluster"]["status"], "clustered", "{v}");
        assert_eq!(v["cluster"]["network"], "bitcoin", "{v}");
        assert_eq!(v["cluster"]["size"], 2, "{v}");
        v["cluster"]["root"].clone()
    };
    assert_eq!(
        cluster("1DoQeKfU3dYhN9bxMpFFcVUnufCPDqSPae"),
        cluster("1PZMgkF2x161qvfP7dhoWSEEU3SjnQE1m9")
    );

    // A trace over the imported history (no node, no UTXO set): seeded on the two-input
    // transaction, its 100 BTC output to 1HaHT… is not spent within the two imported blocks,
    // so it is spender-unknown (not at rest: without coins, unspent cannot be told).
    let out = holdfast(
        data.path(),
        &["trace", "--chain", "bitcoin", "--seed", spender, "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("traced over imported bitcoin history"),
        "{}",
        stderr(&out)
    );
    let t: Value = serde_json::from_str(&stdout(&out)).expect("trace");
    assert_eq!(t["network"], "bitcoin");
    assert_eq!(t["head_height"], 50_002);
    assert_eq!(t["seeded"], 10_000_000_000u64, "{t}");
    assert_eq!(
        t["outputs"][0]["address"], "1HaHTfmvoUW6i6nhJf8jJs6tU4cHNmBQHQ",
        "{t}"
    );
    assert_eq!(t["outputs"][0]["state"], "spender-unknown", "{t}");
    assert_eq!(t["stats"]["spender_unknown"], 10_000_000_000u64, "{t}");
    assert_eq!(t["stats"]["at_rest"], 0, "{t}");

    // bitcoin-etl's unenriched export of the same blocks: refused, nothing written.
    let fresh = tempfile::tempdir().expect("tempdir");
    let plain = etl_case("block_with_transactions").join("expected_transactions.json");
    let out = import(fresh.path(), plain.to_str().expect("path"));
    fails_with(
        &out,
        2,
        "expected_transactions.json:2: inputs[0].value: null: the spent output's value: export with the inputs enriched",
    );
    // A damage on the last line: nothing of the earlier, valid block is written either.
    let damaged = fresh.path().join("transactions.json");
    let text = std::fs::read_to_string(txs).expect("read");
    let mut lines: Vec<&str> = text.lines().collect();
    let last =
        lines
            .pop()
            .expect("line")
            .replacen("\"is_coinbase\": true", "\"is_coinbase\": 1", 1);
    lines.push(&last);
    std::fs::write(&damaged, lines.join("\n")).expect("write");
    let out = import(fresh.path(), damaged.to_str().expect("path"));
    fails_with(
        &out,
        2,
        "transactions.json:4: is_coinbase: 1: true or false",
    );
    let out = holdfast(
        fresh.path(),
        &[
            "transfers",
            "1HaHTfmvoUW6i6nhJf8jJs6tU4cHNmBQHQ",
            "--chain",
            "bitcoin",
        ],
    );
    fails_with(&out, 2, "the index holds none of its blocks");
}
