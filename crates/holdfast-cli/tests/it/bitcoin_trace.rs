//! `holdfast trace --chain bitcoin` on a real node (litecoind in regtest), ingested with the
//! real ingest path (`holdfast ingest --chain bitcoin`): a theft, a peel to an exchange, a
//! consolidation with clean coins, a payment with an OP_RETURN memo to an address of an
//! exchange's cluster (unlabelled itself: the label is a member's), a CoinJoin-like
//! transaction. Traced under each policy with the amounts computed by hand below; the CoinJoin
//! stops the trace and is reported; the block holding it invalidated, the index unwound, its
//! spent-by rows are gone (the coins it spent are at rest again), and back when reconsidered.
//! On the embedded index and PostgreSQL.

use holdfast_store::utxo::{EmbeddedUtxoStore, OutPointKey, PgUtxoStore, UtxoStore};
use holdfast_testkit::Litecoind;
use serde_json::{Value, json};

use crate::{holdfast, stderr, stdout};

/// The testkit's `spend_exactly` from wallet `w`.
pub(crate) async fn spend_exactly(
    node: &Litecoind,
    inputs: &[(String, u64)],
    outputs: Value,
) -> String {
    node.spend_exactly("w", inputs, outputs)
        .await
        .expect("spend")
}

/// The testkit's `output_of` in wallet `w`.
pub(crate) async fn output_of(node: &Litecoind, address: &str) -> (String, u64) {
    node.output_of("w", address).await.expect("the one output")
}

/// `holdfast` with `--store URL` first when given.
pub(crate) fn run(
    data: &std::path::Path,
    store: Option<&str>,
    args: &[&str],
) -> std::process::Output {
    let mut all: Vec<&str> = Vec::new();
    if let Some(url) = store {
        all.extend(["--store", url]);
    }
    all.extend(args);
    holdfast(data, &all)
}

fn trace(data: &std::path::Path, store: Option<&str>, args: &[&str]) -> Value {
    let mut all = vec!["trace", "--chain", "bitcoin", "--json"];
    all.extend(args);
    let out = run(data, store, &all);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("one JSON trace")
}

fn at(t: &Value, address: &str) -> u64 {
    t["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .filter(|x| x["address"] == address)
        .map(|x| x["tainted"].as_u64().expect("tainted"))
        .sum()
}

fn mixed(t: &Value) -> u64 {
    t["mixers"]
        .as_array()
        .expect("mixers")
        .iter()
        .map(|x| x["tainted"].as_u64().expect("tainted"))
        .sum()
}

/// The spender of `txid:vout` in the index (the embedded one opened here, when no process
/// holds it, or PostgreSQL).
fn spender_of(data: &std::path::Path, store: Option<&str>, txid: &str, vout: u64) -> bool {
    let op = OutPointKey {
        txid: holdfast_trace::utxo::parse_txid(txid).expect("txid"),
        vout: vout as u32,
    };
    // Off the async runtime (the synchronous PostgreSQL client runs one of its own).
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let index: Box<dyn UtxoStore> = match store {
                    Some(url) => Box::new(PgUtxoStore::connect(url).expect("pg")),
                    None => {
                        Box::new(EmbeddedUtxoStore::open(&data.join("store/utxo")).expect("open"))
                    }
                };
                let chain = holdfast_bitcoin::Network::LitecoinRegtest.index_id();
                index.spenders(chain, &[op]).expect("spenders")[0].is_some()
            })
            .join()
            .expect("thread")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_chain_bitcoin_follows_a_laundering_on_litecoind() {
    laundering(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_chain_bitcoin_follows_a_laundering_on_litecoind_postgres() {
    let pg = holdfast_store::testing::TempPostgres::start(false)
        .expect("PostgreSQL (scripts/install-postgres)");
    laundering(Some(pg.url())).await;
}

/// The laundering, in litoshis (1 LTC = 100,000,000):
/// - funding: T (the thief) 1.0; clean C1 1.0, C3 0.5, C4 0.5; EX2a and EX2b 0.1 each;
/// - EX2a and EX2b spent together (one owner: their cluster; EX2a is labelled an exchange);
/// - peel P spends T's 1.0: EX1 (an exchange) 0.2, P2 0.79, fee 0.01;
/// - consolidation M spends P2 (0.79) and C1 (1.0): M0 1.5, C2 0.28, fee 0.01;
/// - D spends M0 (1.5): an OP_RETURN memo of 0, EX2b 1.0, D2 0.49, fee 0.01;
/// - CoinJoin J spends D2, C3, C4 (0.49 + 0.5 + 0.5): 0.4 ×3 and C5 0.28, fee 0.01;
/// - a second theft (T2 1.0) peeled three times: 0.1 to EX1 each time, the change 0.89, 0.78,
///   0.67, fees 0.01 (mined before the CoinJoin, which stays the tip).
///
/// Per policy from T's output (1.0 tainted; the arithmetic of `holdfast-trace`'s
/// `tests/it/utxo.rs` at 1,000 times the scale):
/// - poison: EX1 20,000,000; EX2b 100,000,000; fees 3 × 1,000,000; C2 at rest 28,000,000;
///   the CoinJoin 49,000,000.
/// - haircut: M: T = 79,000,000 of 179,000,000: M0 ⌊79e6·150e6/179e6⌋ = 66,201,117, C2
///   ⌊79e6·28e6/179e6⌋ = 12,357,541, fee ⌊441,340.8⌋ = 441,340 + the remainder 2 = 441,342.
///   D: T = 66,201,117 of 150,000,000: EX2b 66,201,117·2/3 = 44,134,078 (exact), D2
///   ⌊66,201,117·49/150⌋ = ⌊21,625,698.2⌋ = 21,625,698, fee ⌊441,340.8⌋ = 441,340 + the
///   remainder 1 = 441,341. Fees 1,000,000 + 441,342 + 441,341 = 1,882,683; the CoinJoin
///   21,625,698; at rest C2 12,357,541. Sum with EX1: 100,000,000.
/// - FIFO: M0 takes the first 1.5 of the line (0.79 tainted, then 1.0 clean): 79,000,000; EX2b
///   (vout 1, after the 0-value memo) the first 1.0 of M0: 79,000,000; fees 1,000,000 (P's).
/// - LIFO: the line of M is P2 (0.79, tainted) then C1 (1.0): M0 takes its last 1.5,
///   [0.29, 1.79), of which P2's [0.29, 0.79) = 50,000,000; C2 takes [0.01, 0.29):
///   28,000,000; the fee [0, 0.01): 1,000,000. D: M0's taint is its first
///   50,000,000; EX2b takes M0's last 1.0: clean; D2 [0.01, 0.5): 49,000,000; the fee
///   1,000,000. Fees 3,000,000; the CoinJoin 49,000,000; C2 at rest 28,000,000.
/// - TIHO: M0 (the highest) 79,000,000; EX2b (the highest of D) 79,000,000; fees 1,000,000.
async fn laundering(store: Option<&str>) {
    let node = Litecoind::spawn().await.expect("litecoind");
    node.create_wallet("w").await.expect("wallet");
    let miner = node.new_address("w", "bech32").await.expect("address");
    node.mine(101, &miner).await.expect("mine");
    let mut a = Vec::new();
    for _ in 0..12 {
        a.push(node.new_address("w", "bech32").await.expect("address"));
    }
    let [t, c1, c3, c4, ex1, ex2a, ex2b, p2, m0, c2, d2, c5] =
        <[String; 12]>::try_from(a).expect("12");
    let t2 = node.new_address("w", "bech32").await.expect("address");
    let mut pay = serde_json::Map::new();
    pay.insert(t2.clone(), json!(1.0));
    for (x, amount) in [
        (&t, 1.0),
        (&c1, 1.0),
        (&c3, 0.5),
        (&c4, 0.5),
        (&ex2a, 0.1),
        (&ex2b, 0.1),
    ] {
        pay.insert(x.clone(), json!(amount));
    }
    node.wallet_rpc("w", "sendmany", json!(["", pay]))
        .await
        .expect("sendmany");
    node.mine(1, &miner).await.expect("mine");
    let theft = output_of(&node, &t).await;
    let sink = node.new_address("w", "bech32").await.expect("address");
    spend_exactly(
        &node,
        &[output_of(&node, &ex2a).await, output_of(&node, &ex2b).await],
        json!([{sink: 0.1999}]),
    )
    .await;
    node.mine(1, &miner).await.expect("mine");
    spend_exactly(
        &node,
        std::slice::from_ref(&theft),
        json!([{ex1.clone(): 0.2}, {p2.clone(): 0.79}]),
    )
    .await;
    node.mine(1, &miner).await.expect("mine");
    spend_exactly(
        &node,
        &[output_of(&node, &p2).await, output_of(&node, &c1).await],
        json!([{m0.clone(): 1.5}, {c2.clone(): 0.28}]),
    )
    .await;
    node.mine(1, &miner).await.expect("mine");
    spend_exactly(
        &node,
        &[output_of(&node, &m0).await],
        json!([{"data": "4f55543a"}, {ex2b.clone(): 1.0}, {d2.clone(): 0.49}]),
    )
    .await;
    node.mine(1, &miner).await.expect("mine");
    // The peel chain of the second theft: 0.1 to EX1 at each of three hops.
    let second = output_of(&node, &t2).await;
    let mut change = second.clone();
    let mut peels = Vec::new();
    for left in [0.89, 0.78, 0.67] {
        let next = node.new_address("w", "bech32").await.expect("address");
        spend_exactly(
            &node,
            std::slice::from_ref(&change),
            json!([{ex1.clone(): 0.1}, {next.clone(): left}]),
        )
        .await;
        node.mine(1, &miner).await.expect("mine");
        change = output_of(&node, &next).await;
        peels.push(next);
    }
    let d2_out = output_of(&node, &d2).await;
    let mut join = Vec::new();
    for _ in 0..3 {
        join.push(json!({node.new_address("w", "bech32").await.expect("address"): 0.4}));
    }
    join.push(json!({c5.clone(): 0.28}));
    let coinjoin = spend_exactly(
        &node,
        &[
            d2_out.clone(),
            output_of(&node, &c3).await,
            output_of(&node, &c4).await,
        ],
        Value::Array(join),
    )
    .await;
    node.mine(1, &miner).await.expect("mine");

    let data = tempfile::tempdir().expect("tempdir");
    let list = data.path().join("exchange.csv");
    std::fs::write(&list, format!("{ex1}\n{ex2a}\n")).expect("write");
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

    let seed = format!("{}:{}", theft.0, theft.1);
    let best = node.rpc("getbestblockhash", json!([])).await.expect("best");
    // (policy, EX2b, fees, at rest, CoinJoin)
    let expected = [
        ("poison", 100_000_000, 3_000_000, 28_000_000, 49_000_000),
        ("haircut", 44_134_078, 1_882_683, 12_357_541, 21_625_698),
        ("fifo", 79_000_000, 1_000_000, 0, 0),
        ("lifo", 0, 3_000_000, 28_000_000, 49_000_000),
        ("tiho", 79_000_000, 1_000_000, 0, 0),
    ];
    for (policy, ex2, fees, rest, mixer) in expected {
        let v = trace(data.path(), store, &["--seed", &seed, "--policy", policy]);
        assert_eq!(v["network"], "litecoin-regtest");
        assert_eq!(v["head_hash"], best, "the head read, as the node shows it");
        assert_eq!(v["seeded"], 100_000_000, "{policy}");
        assert_eq!(at(&v, &ex1), 20_000_000, "{policy}: {v}");
        assert_eq!(at(&v, &ex2b), ex2, "{policy}: {v}");
        assert_eq!(v["stats"]["lost_to_fees"], fees, "{policy}");
        assert_eq!(v["stats"]["at_rest"], rest, "{policy}");
        assert_eq!(mixed(&v), mixer, "{policy}");
        if mixer > 0 {
            assert_eq!(v["mixers"][0]["at"], coinjoin, "{policy}");
        }
        if ex2 > 0 {
            // A freeze target through the cluster: EX2b carries no label, EX2a does.
            let x = v["targets"]
                .as_array()
                .expect("targets")
                .iter()
                .find(|x| x["address"] == ex2b.as_str())
                .expect("EX2b");
            assert_eq!(x["via_member"], ex2a.as_str(), "{policy}");
            assert_eq!(x["service"]["name"], "Regtest Exchange");
            let path: Vec<&str> = x["path"]
                .as_array()
                .expect("path")
                .iter()
                .map(|h| h["address"].as_str().expect("address"))
                .collect();
            assert_eq!(
                path,
                vec![t.as_str(), p2.as_str(), m0.as_str(), ex2b.as_str()]
            );
            assert_eq!(x["path"][0]["outpoint"], seed.as_str());
        }
    }
    // The peel chain, every policy alike (one wholly tainted input each time): EX1 3 ×
    // 10,000,000, fees 3 × 1,000,000, the last change 67,000,000 at rest; the third deposit's
    // path goes through the two changes before it.
    let seed2 = format!("{}:{}", second.0, second.1);
    for policy in ["poison", "haircut", "fifo", "lifo", "tiho"] {
        let v = trace(data.path(), store, &["--seed", &seed2, "--policy", policy]);
        assert_eq!(at(&v, &ex1), 30_000_000, "{policy}: {v}");
        assert_eq!(
            v["targets"].as_array().expect("targets").len(),
            3,
            "{policy}"
        );
        assert_eq!(v["stats"]["lost_to_fees"], 3_000_000, "{policy}");
        assert_eq!(v["stats"]["at_rest"], 67_000_000, "{policy}");
        let last: Vec<&str> = v["targets"][2]["path"]
            .as_array()
            .expect("path")
            .iter()
            .map(|h| h["address"].as_str().expect("address"))
            .collect();
        assert_eq!(
            last,
            vec![
                t2.as_str(),
                peels[0].as_str(),
                peels[1].as_str(),
                ex1.as_str()
            ],
            "{policy}"
        );
    }
    // The thief's address as the seed; the text report; the hop limit.
    let v = trace(data.path(), store, &["--seed", &t, "--policy", "tiho"]);
    assert_eq!(at(&v, &ex2b), 79_000_000);
    let out = run(
        data.path(),
        store,
        &[
            "trace", "--chain", "bitcoin", "--seed", &seed, "--hops", "1",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("freeze target: Regtest Exchange (exchange)"),
        "{text}"
    );
    assert!(text.contains("0.20000000 LTC tainted"), "{text}");
    assert!(text.contains("beyond --max-hops 0.79000000 LTC"), "{text}");
    // --label: the peel chain's addresses become `tainted` in intel (screening flags them);
    // the exchange deposit it stopped at is a freeze target, not a launderer.
    let out = run(
        data.path(),
        store,
        &["trace", "--chain", "bitcoin", "--seed", &seed2, "--label"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("tainted labels for trace"),
        "{}",
        stderr(&out)
    );
    let screen = |address: &str| -> Value {
        let out = run(data.path(), store, &["screen", address, "--json"]);
        serde_json::from_str(stdout(&out).trim()).expect("json verdict")
    };
    for a in [&t2, &peels[0], &peels[1], &peels[2]] {
        let v = screen(a);
        let labels = v["labels"].to_string();
        assert!(labels.contains("tainted"), "{a}: {v}");
    }
    let v = screen(&ex1);
    assert!(!v["labels"].to_string().contains("\"tainted\""), "{v}");

    // Bad and ambiguous seeds, named.
    let out = run(data.path(), store, &["trace", "--seed", &theft.0]);
    crate::fails_with(
        &out,
        2,
        "64 hex digits are a Bitcoin txid or an EVM transaction hash",
    );
    let out = run(
        data.path(),
        store,
        &[
            "trace",
            "--chain",
            "bitcoin",
            "--seed",
            &format!("{}:9", theft.0),
        ],
    );
    crate::fails_with(&out, 2, "expected an output of its transaction");
    let out = run(
        data.path(),
        store,
        &[
            "trace",
            "--chain",
            "bitcoin",
            "--seed",
            "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
        ],
    );
    crate::fails_with(&out, 2, "the UTXO index holds none of their blocks");

    // The CoinJoin's block invalidated: the index unwinds it and its spent-by rows.
    assert!(spender_of(data.path(), store, &d2_out.0, d2_out.1));
    let tip = node.rpc("getbestblockhash", json!([])).await.expect("best");
    node.rpc("invalidateblock", json!([tip.clone()]))
        .await
        .expect("invalidate");
    ingest();
    assert!(
        !spender_of(data.path(), store, &d2_out.0, d2_out.1),
        "the unwound CoinJoin still spends D2"
    );
    let v = trace(data.path(), store, &["--seed", &seed, "--policy", "poison"]);
    assert_eq!(mixed(&v), 0);
    assert_eq!(v["stats"]["at_rest"], 28_000_000 + 49_000_000);
    node.rpc("reconsiderblock", json!([tip]))
        .await
        .expect("reconsider");
    ingest();
    assert!(spender_of(data.path(), store, &d2_out.0, d2_out.1));
    let v = trace(data.path(), store, &["--seed", &seed, "--policy", "poison"]);
    assert_eq!(mixed(&v), 49_000_000);
}

/// `trace --chain bitcoin --follow` against an index that ingestion keeps writing (PostgreSQL):
/// started before the thief moves the coins, it prints nothing; once the spend to an exchange
/// is mined and ingested, one line names the exchange, the output and the amount, and later
/// rounds do not repeat it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_a_bitcoin_trace_prints_the_exchange_once_when_the_coins_arrive() {
    use std::time::Duration;

    let pg = holdfast_store::testing::TempPostgres::start(false)
        .expect("PostgreSQL (scripts/install-postgres)");
    let store = Some(pg.url());
    let node = Litecoind::spawn().await.expect("litecoind");
    node.create_wallet("w").await.expect("wallet");
    let miner = node.new_address("w", "bech32").await.expect("address");
    node.mine(101, &miner).await.expect("mine");
    let (t, ex) = (
        node.new_address("w", "bech32").await.expect("address"),
        node.new_address("w", "bech32").await.expect("address"),
    );
    node.wallet_rpc("w", "sendtoaddress", json!([t, 1.0]))
        .await
        .expect("send");
    node.mine(1, &miner).await.expect("mine");
    let theft = output_of(&node, &t).await;

    let data = tempfile::tempdir().expect("tempdir");
    let list = data.path().join("exchange.txt");
    std::fs::write(&list, format!("{ex}\n")).expect("write");
    let out = run(
        data.path(),
        store,
        &[
            "intel",
            "import",
            list.to_str().expect("path"),
            "--category",
            "exchange",
            "--name",
            "Regtest Exchange",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
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

    let seed = format!("{}:{}", theft.0, theft.1);
    let mut f = crate::Follower::spawn(
        data.path(),
        &[
            "--store",
            pg.url(),
            "trace",
            "--chain",
            "bitcoin",
            "--seed",
            &seed,
            "--follow",
            "--interval",
            "1",
        ],
    );
    f.collect(Duration::from_secs(3), None);
    assert!(f.lines.is_empty(), "nothing reached yet: {:?}", f.lines);

    let spend = spend_exactly(&node, &[theft], json!([{ex.clone(): 0.999}])).await;
    node.mine(1, &miner).await.expect("mine");
    ingest();
    let wanted = format!("taint reached Regtest Exchange (exchange) {ex} at {spend}:0");
    f.collect(Duration::from_secs(60), Some(&[wanted.as_str()]));
    // A few more rounds: not printed again.
    f.collect(Duration::from_secs(3), None);
    assert_eq!(f.count(&wanted), 1, "once: {:#?}", f.lines);
    let hit = f
        .lines
        .iter()
        .find(|l| l.contains(&wanted))
        .expect("the line");
    assert!(hit.ends_with("0.99900000 LTC tainted"), "{hit}");
}
