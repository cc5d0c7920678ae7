//! `holdfast screen ADDRESS` with the UTXO index's clusters, on a real node (litecoind in
//! regtest): an unlabelled address spent together with an address labelled as an exchange
//! inherits the exchange label from the cluster (named as inferred, with the member that
//! carries it, never as its own label); a CoinJoin-like transaction does not spread a label;
//! the block that merged them invalidated and the index unwound, the inherited label is gone.
//! Without a UTXO index the verdict says there is none. The same through the screening HTTP
//! API of `holdfast serve --clusters`.

use holdfast_testkit::Litecoind;
use serde_json::{Value, json};

use crate::bitcoin_trace::{output_of, run, spend_exactly};
use crate::{holdfast, stderr, stdout};

/// `holdfast serve` on a free port, killed on drop.
struct Serve {
    child: std::process::Child,
    url: String,
}

impl Serve {
    async fn start(data: &std::path::Path, extra: &[&str]) -> Serve {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .arg("--data-dir")
            .arg(data)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("HOLDFAST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("serve");
        let s = Serve {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if client
                .get(format!("{}/healthz", s.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("holdfast serve did not come up");
    }

    async fn screen(&self, address: &str) -> Value {
        let r = reqwest::get(format!("{}/v1/addresses/litecoin/{address}", self.url))
            .await
            .expect("get");
        assert!(r.status().is_success(), "{}", r.status());
        r.json().await.expect("json")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screen(data: &std::path::Path, store: Option<&str>, address: &str) -> Value {
    let out = run(data, store, &["screen", address, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(stdout(&out).trim()).expect("one JSON verdict")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screen_reports_the_cluster_and_its_inherited_labels() {
    screening_scenario(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screen_reports_the_cluster_and_its_inherited_labels_postgres() {
    let pg = holdfast_store::testing::TempPostgres::start(false)
        .expect("PostgreSQL (scripts/install-postgres)");
    screening_scenario(Some(pg.url())).await;
}

/// The scenario, on the embedded index or the PostgreSQL one at `store`.
async fn screening_scenario(store: Option<&str>) {
    let node = Litecoind::spawn().await.expect("litecoind");
    node.create_wallet("w").await.expect("wallet");
    let miner = node.new_address("w", "bech32").await.expect("address");
    node.mine(101, &miner).await.expect("mine");
    // exchange: labelled; deposit: unlabelled, later spent together with exchange's output;
    // mixed_in, r, s: the inputs of a CoinJoin-like transaction, mixed_in labelled.
    let mut addrs = Vec::new();
    for _ in 0..5 {
        addrs.push(node.new_address("w", "bech32").await.expect("address"));
    }
    let (exchange, deposit, mixed_in, r, s) =
        (&addrs[0], &addrs[1], &addrs[2], &addrs[3], &addrs[4]);
    let mut pay = serde_json::Map::new();
    for (a, amount) in addrs.iter().zip([1.0, 1.0, 0.5, 0.5, 0.5]) {
        pay.insert(a.clone(), json!(amount));
    }
    node.wallet_rpc("w", "sendmany", json!(["", pay]))
        .await
        .expect("sendmany");
    node.mine(1, &miner).await.expect("mine");
    let dest = node.new_address("w", "bech32").await.expect("address");
    spend_exactly(
        &node,
        &[
            output_of(&node, exchange).await,
            output_of(&node, deposit).await,
        ],
        json!({dest.clone(): 1.9999}),
    )
    .await;
    let mut mixed = serde_json::Map::new();
    for _ in 0..3 {
        mixed.insert(
            node.new_address("w", "bech32").await.expect("address"),
            json!(0.4999),
        );
    }
    spend_exactly(
        &node,
        &[
            output_of(&node, mixed_in).await,
            output_of(&node, r).await,
            output_of(&node, s).await,
        ],
        Value::Object(mixed),
    )
    .await;
    node.mine(1, &miner).await.expect("mine");

    let data = tempfile::tempdir().expect("tempdir");
    let list = data.path().join("exchange.csv");
    std::fs::write(&list, format!("{exchange}\n{mixed_in}\n")).expect("write");
    let out = run(
        data.path(),
        store,
        &[
            "intel",
            "import",
            list.to_str().expect("path"),
            "--category",
            "exchange",
            "--source",
            "test-exchange",
            "--name",
            "Regtest Exchange",
            "--confidence",
            "ownership",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // No UTXO index yet (embedded), or one without the network's blocks: said so.
    let v = screen(data.path(), store, deposit);
    assert_eq!(v["cluster"]["status"], "unavailable", "{v}");
    let note = v["cluster"]["note"].as_str().expect("note");
    if store.is_none() {
        assert!(note.contains("no UTXO index configured"), "{v}");
        assert!(
            !data.path().join("store/utxo").exists(),
            "screen created an index"
        );
        let api = Serve::start(data.path(), &[]).await;
        let v = api.screen(deposit).await;
        assert_eq!(v["cluster"]["status"], "unavailable", "{v}");
        drop(api);
        let out = holdfast(
            data.path(),
            &["serve", "--listen", "127.0.0.1:0", "--clusters"],
        );
        crate::fails_with(&out, 2, "--clusters: no UTXO index");
    } else {
        assert!(note.contains("holds no blocks of litecoin-regtest"), "{v}");
    }

    let (user, password) = node.user_password().expect("user/password");
    let url = node
        .rpc_url()
        .replace("http://", &format!("http://{user}:{password}@"));
    let ingest = || {
        let out = run(
            data.path(),
            store,
            &["ingest", "--chain", "bitcoin", "--rpc", &url, "--quiet"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    };
    ingest();

    // The deposit: no label of its own, the exchange's inherited from its cluster.
    let v = screen(data.path(), store, deposit);
    assert_eq!(v["labels"], json!([]), "{v}");
    let c = &v["cluster"];
    assert_eq!(c["status"], "clustered", "{v}");
    assert_eq!(c["network"], "litecoin-regtest");
    assert_eq!(c["size"], 2);
    assert_eq!(c["complete"], true);
    assert!(
        c["root"] == json!(exchange) || c["root"] == json!(deposit),
        "{c}"
    );
    let inherited = c["inherited"].as_array().expect("inherited");
    assert_eq!(inherited.len(), 1, "{c}");
    assert_eq!(inherited[0]["member"], json!(exchange));
    assert_eq!(inherited[0]["confidence"], 10);
    assert_eq!(inherited[0]["label"]["category"], "exchange");
    assert_eq!(inherited[0]["label"]["confidence"], 100);
    assert_eq!(inherited[0]["label"]["source"], "test-exchange");
    assert_eq!(inherited[0]["label"]["name"], "Regtest Exchange");
    // Human output: the cluster and the inferred label with its member.
    let out = run(data.path(), store, &["screen", deposit]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("cluster ") && text.contains("2 addresses"),
        "{text}"
    );
    assert!(
        text.contains("inferred from cluster")
            && text.contains(&format!(
                "member {exchange} is an exchange per test-exchange"
            )),
        "{text}"
    );
    // The exchange itself: its own label, nothing inherited.
    let v = screen(data.path(), store, exchange);
    assert_eq!(v["labels"].as_array().expect("labels").len(), 1);
    assert_eq!(v["cluster"]["inherited"], json!([]), "{v}");
    // The CoinJoin's other inputs: clusters of one, the label not spread.
    for x in [r, s] {
        let v = screen(data.path(), store, x);
        assert_eq!(v["cluster"]["size"], 1, "{v}");
        assert_eq!(v["cluster"]["inherited"], json!([]), "{v}");
    }

    // A batch file: the same cluster facts, in the JSON lines and in the CSV's cluster
    // column (the deposit inherits the exchange label; its risk counts it).
    let batch = data.path().join("batch.txt");
    std::fs::write(&batch, format!("{deposit}\n{r}\n")).expect("write");
    let out = run(
        data.path(),
        store,
        &[
            "screen",
            "--file",
            batch.to_str().expect("path"),
            "--format",
            "jsonl",
        ],
    );
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2, "{}", stderr(&out));
    assert_eq!(
        lines[0]["cluster"]["inherited"][0]["member"],
        json!(exchange)
    );
    assert_eq!(
        lines[0]["risk"],
        v_risk(&screen(data.path(), store, deposit))
    );
    assert_eq!(lines[1]["cluster"]["size"], 1);
    let out = run(
        data.path(),
        store,
        &[
            "screen",
            "--file",
            batch.to_str().expect("path"),
            "--format",
            "csv",
        ],
    );
    let csv = stdout(&out);
    let mut rows = csv.lines();
    assert!(
        rows.next().expect("header").ends_with(",reason,cluster"),
        "{csv}"
    );
    let first = rows.next().expect("deposit's row");
    assert!(
        first.contains("(2 addresses); inherits exchange (Regtest Exchange) from member")
            && first.contains(exchange.as_str()),
        "{csv}"
    );

    // The screening API with the index's clusters: the same facts.
    {
        let mut extra = vec!["--clusters"];
        if let Some(url) = store {
            extra.extend(["--store", url]);
        }
        let api = Serve::start(data.path(), &extra).await;
        let v = api.screen(deposit).await;
        assert_eq!(v["cluster"]["size"], 2, "{v}");
        assert_eq!(
            v["cluster"]["inherited"][0]["member"],
            json!(exchange),
            "{v}"
        );
        assert_eq!(v["cluster"]["inherited"][0]["confidence"], 10, "{v}");
        assert_eq!(v["labels"], json!([]), "{v}");
        let batch: Value = reqwest::Client::new()
            .post(format!("{}/v1/screen", api.url))
            .json(&json!({"addresses": [deposit, r]}))
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("json");
        let results = batch["results"].as_array().expect("results");
        assert_eq!(
            results[0]["cluster"]["inherited"][0]["member"],
            json!(exchange)
        );
        assert_eq!(results[1]["cluster"]["inherited"], json!([]), "{batch}");
        if store.is_none() {
            // The embedded index held by the server: screening still answers, with a note.
            let v = screen(data.path(), store, deposit);
            assert_eq!(v["cluster"]["status"], "unavailable", "{v}");
            assert!(
                v["cluster"]["note"]
                    .as_str()
                    .expect("note")
                    .contains("could not be read"),
                "{v}"
            );
        }
    }

    // The clusters rebuilt from the stored transactions: the same verdicts, and the undo
    // records the unwind below needs (issue 16).
    let before = [deposit, exchange, r, s].map(|a| screen(data.path(), store, a));
    let out = run(
        data.path(),
        store,
        &["clusters", "rebuild", "--chain", "bitcoin", "--quiet"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = stdout(&out);
    assert!(
        summary.contains("litecoin-regtest (from a node): rebuilt from ")
            && summary.contains("2 addresses in 1 clusters (largest 2)"),
        "{summary}"
    );
    assert_eq!(
        [deposit, exchange, r, s].map(|a| screen(data.path(), store, a)),
        before
    );
    let out = run(
        data.path(),
        store,
        &["clusters", "rebuild", "--chain", "evm"],
    );
    crate::fails_with(&out, 2, "Bitcoin-family chains only");

    // The block with the consolidation invalidated: the index unwinds it, the label is gone.
    let tip = node.rpc("getbestblockhash", json!([])).await.expect("best");
    node.rpc("invalidateblock", json!([tip.clone()]))
        .await
        .expect("invalidate");
    ingest();
    let v = screen(data.path(), store, deposit);
    assert_eq!(v["cluster"]["size"], 1, "{v}");
    assert_eq!(v["cluster"]["inherited"], json!([]), "{v}");
    assert_eq!(v["cluster"]["root"], json!(deposit));
    // Reconsidered: back.
    node.rpc("reconsiderblock", json!([tip]))
        .await
        .expect("reconsider");
    ingest();
    let v = screen(data.path(), store, deposit);
    assert_eq!(
        v["cluster"]["inherited"][0]["member"],
        json!(exchange),
        "{v}"
    );
}

/// The risk a verdict gives.
fn v_risk(v: &Value) -> Value {
    v["risk"].clone()
}
