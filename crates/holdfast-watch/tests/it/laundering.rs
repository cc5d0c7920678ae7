//! The testkit's Lazarus-style laundering under the watch: the theft raises an outflow
//! alert whose `trace` response follows it, block by block; each exchange deposit the taint
//! reaches raises one `tainted_deposit` alert in the block of the deposit, with the amounts
//! FIFO and haircut give (the scenario computes them independently), the hop-by-hop path and
//! a freeze request written by `notify`. The decoys (a poisoning look-alike, a fake token,
//! dust) raise nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::U256;
use holdfast_intel::{IndexBuilder, IntelIndex, LabelRecord};
use holdfast_primitives::{Category, Confidence};
use holdfast_store::watch::{AlertQuery, EmbeddedWatchStore, WatchStore};
use holdfast_store::{EmbeddedStore, Store};
use holdfast_testkit::Anvil;
use holdfast_testkit::laundering::Laundering;
use holdfast_watch::{
    Alert, ChainOptions, DeliveryConfig, DetectorKind, IntelView, Responder, Runner, RunnerDeps,
};

struct Intel(Arc<IntelIndex>);
impl IntelView for Intel {
    fn index(&self) -> Arc<IntelIndex> {
        self.0.clone()
    }
}

fn watch_file(rpc: &str, victim: alloy_primitives::Address) -> String {
    format!(
        r#"
[[chain]]
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
name = "victim"
addresses = ["{victim}"]

[[rule]]
name = "theft"
detector = "outflow"
targets = ["victim"]
severity = "critical"
amount_above = {{ ETH = "50" }}
responses = ["trace"]
trace = {{ policies = ["fifo", "haircut"], hops = 10, deposit_rule = "loot-at-exchange" }}

[[rule]]
name = "loot-at-exchange"
detector = "tainted_deposit"
severity = "critical"
responses = ["notify"]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exchange_deposit_of_the_laundering_is_alerted_with_fifo_and_haircut_amounts() {
    let node = Anvil::spawn().await.expect("anvil");
    let l = Laundering::run(&node).await.expect("scenario");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = IndexBuilder::with_capacity(4);
    for (name, a) in &l.deposits {
        let mut r = LabelRecord::new(
            a.to_checksum(None),
            "test",
            Category::Exchange,
            Confidence(80),
        );
        r.name = Some((*name).to_owned());
        b.add(&r).expect("label");
    }
    let intel = Arc::new(b.finish());
    let config = holdfast_watch::config::validate(
        "watch.toml",
        &watch_file(&node.ws_url(), l.victim),
        dir.path(),
    )
    .expect("valid")
    .config;
    let transfers: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(&dir.path().join("t")).expect("store"));
    let watch: Arc<dyn WatchStore> =
        Arc::new(EmbeddedWatchStore::open(&dir.path().join("w")).expect("watch"));
    let notify_dir = dir.path().join("freeze-requests");
    let deps = RunnerDeps {
        transfers,
        watch: watch.clone(),
        intel: Arc::new(Intel(intel)),
        responder: Responder {
            freezer: None,
            labeler: None,
            notify_dir: Some(notify_dir.clone()),
        },
        owner: "test".into(),
        on_alert: None,
        on_block: None,
        env: Box::new(|_| None),
        chain_options: Some(ChainOptions {
            stop_after: Some(l.last_block),
            ..ChainOptions::default()
        }),
        delivery: DeliveryConfig::default(),
    };
    let runner = Runner::start(&config, deps).await.expect("starts");
    let (_stop, rx) = tokio::sync::watch::channel(false);
    tokio::time::timeout(Duration::from_secs(300), runner.run(rx))
        .await
        .expect("finishes")
        .expect("runs");

    let alerts: Vec<Alert> = watch
        .alerts(&AlertQuery {
            limit: 1000,
            ..AlertQuery::default()
        })
        .expect("alerts")
        .into_iter()
        .map(|a| serde_json::from_slice(&a.body).expect("json"))
        .collect();
    let theft: Vec<&Alert> = alerts.iter().filter(|a| a.rule == "theft").collect();
    assert_eq!(theft.len(), 1, "{alerts:#?}");
    assert_eq!(theft[0].tx_hash, Some(l.theft));
    let deposits: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.detector == DetectorKind::TaintedDeposit)
        .collect();
    let amounts = |a: &Alert, policy: &str, which: &str| -> BTreeMap<String, U256> {
        a.evidence["amounts"]
            .as_array()
            .expect("amounts")
            .iter()
            .find(|x| x["policy"] == policy)
            .unwrap_or_else(|| panic!("no {policy} amounts"))[which]
            .as_array()
            .expect("list")
            .iter()
            .map(|x| {
                (
                    x["asset"].to_string(),
                    x["amount"].as_str().expect("amount").parse().expect("U256"),
                )
            })
            .collect()
    };
    for (name, address) in &l.deposits {
        let mut mine: Vec<&&Alert> = deposits
            .iter()
            .filter(|a| a.evidence["deposit"] == serde_json::json!(address))
            .collect();
        assert!(!mine.is_empty(), "no alert for the {name} deposit");
        mine.sort_by_key(|a| a.block_number);
        for a in &mine {
            assert_eq!(a.evidence["service"], serde_json::json!(name));
            // Raised in the block of the tainted arrival, naming its transaction.
            assert_eq!(
                Some(a.block_number),
                a.evidence["arrived_block"].as_u64(),
                "{name}"
            );
            let tx = a.tx_hash.expect("tx");
            let receipt = node
                .rpc("eth_getTransactionReceipt", serde_json::json!([tx]))
                .await
                .expect("receipt");
            assert_eq!(
                receipt["blockNumber"].as_str().map(|h| u64::from_str_radix(
                    h.trim_start_matches("0x"),
                    16
                )
                .expect("hex")),
                Some(a.block_number),
                "{name}: the arrival is in the alert's block"
            );
            assert!(
                notify_dir.join(format!("{}.json", a.id)).exists(),
                "freeze request for {name}"
            );
        }
        for policy in ["fifo", "haircut"] {
            let want: BTreeMap<String, U256> = l.expected(policy).expect("amounts")[name]
                .iter()
                .map(|(asset, amount)| {
                    (
                        serde_json::to_value(asset).expect("asset").to_string(),
                        *amount,
                    )
                })
                .collect();
            let last = mine.last().expect("one");
            assert_eq!(
                amounts(last, policy, "total"),
                want,
                "{name}: final total under {policy}"
            );
            let mut sum: BTreeMap<String, U256> = BTreeMap::new();
            for a in &mine {
                for (k, v) in amounts(a, policy, "arrived") {
                    *sum.entry(k).or_default() += v;
                }
            }
            assert_eq!(
                sum, want,
                "{name}: the arrivals add up to the total under {policy}"
            );
        }
        let path = mine[0].evidence["path"].as_array().expect("path");
        assert_eq!(
            path.last().map(|h| &h["to"]),
            Some(&serde_json::json!(address))
        );
    }
    // Decoys: nothing names the look-alike or the fake token.
    let text = serde_json::to_string(&alerts).expect("json").to_lowercase();
    assert!(
        !text.contains(&l.look_alike.to_string().to_lowercase()),
        "look-alike alerted"
    );
    assert!(
        !text.contains(&l.fake_token.to_string().to_lowercase()),
        "fake token alerted"
    );
}
