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
