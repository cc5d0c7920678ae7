//! The Bybit heist (testkit's `safe_heist`, Safe 1.1.1) under the watch with the real
//! detectors, the stores, a webhook receiver and a real guard service: the singleton change
//! is alerted in the block that made it (naming the DELEGATECALL and the new
//! implementation), the sweep raises a drain alert, and the `freeze` response stops the guard
//! service from co-signing anything for the Safe.

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::Address;
use holdfast_gate::{Gate, GateConfig, Principal, Role};
use holdfast_guard::{Guard, Policy};
use holdfast_intel::IntelIndex;
use holdfast_store::gate::{EmbeddedGateStore, GateStore, RequestState};
use holdfast_store::watch::{AlertQuery, EmbeddedWatchStore, WatchStore};
use holdfast_store::{EmbeddedStore, Store};
use holdfast_testkit::{Anvil, Scenario};
use holdfast_watch::respond::BoxFuture;
use holdfast_watch::{
    Alert, ChainOptions, DeliveryConfig, DetectorKind, Freezer, IntelView, Responder, Runner,
    RunnerDeps, Severity,
};

use crate::receivers::{Receiver, ReceiverOptions};

/// The guard service's freeze, in-process (as `holdfast serve` wires it).
#[derive(Debug)]
struct GateFreezer(Arc<Gate>);

impl Freezer for GateFreezer {
    fn freeze(&self, wallet: Address, reason: String) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let who = Principal {
                name: "watch".into(),
                roles: vec![Role::Operator],
                address: None,
            };
            self.0
                .freeze(Some(wallet), &reason, &who)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

struct Intel(Arc<IntelIndex>);
impl IntelView for Intel {
    fn index(&self) -> Arc<IntelIndex> {
        self.0.clone()
    }
}

fn intel_with_exchange(deposit: Address) -> Arc<IntelIndex> {
    let mut records = holdfast_intel::sources::shipped().expect("shipped").records;
    let mut r = holdfast_intel::LabelRecord::new(
        deposit.to_checksum(None),
        "test",
        holdfast_primitives::Category::Exchange,
        holdfast_primitives::Confidence(80),
    );
    r.name = Some("Test Exchange".into());
    records.push(r);
    Arc::new(holdfast_intel::datadir::build(&records, &mut Vec::new()))
}

fn intel() -> Arc<IntelIndex> {
    Arc::new(holdfast_intel::load(None).expect("intel").index)
}

fn watch_file(rpc: &str, safe: Address, hook: &str) -> String {
    format!(
        r#"
[[chain]]
name = "anvil"
rpc = "{rpc}"
chain_id = 31337
confirmations = 2
start_block = 1

[[asset]]
symbol = "ETH"
chain = "anvil"
kind = "native"

[[set]]
name = "treasury"
addresses = ["{safe}"]

[[rule]]
name = "treasury-takeover"
detector = "critical_storage"
targets = ["treasury"]
severity = "critical"
responses = ["freeze", "trace"]
trace = {{ policies = ["fifo"], hops = 4, deposit_rule = "loot" }}

[[rule]]
name = "treasury-drain"
detector = "outflow"
targets = ["treasury"]
severity = "critical"
drain = {{ percent = 20, blocks = 50, assets = ["ETH"] }}

[[rule]]
name = "loot"
detector = "tainted_deposit"
severity = "critical"

[[sink]]
kind = "webhook"
name = "soc"
url = "{hook}"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bybit_takeover_and_sweep_are_alerted_and_the_guard_frozen() {
    let node = Anvil::spawn().await.expect("anvil");
    let heist = Scenario::new(&node).safe_heist().await.expect("heist");
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(ReceiverOptions::default()).await;
    let file = watch_file(&node.ws_url(), heist.safe_111, &receiver.url());
    let config = holdfast_watch::config::validate("watch.toml", &file, dir.path())
        .expect("valid watch file")
        .config;

    // The guard service, with its own state.
    let gate_store: Arc<dyn GateStore> =
        Arc::new(EmbeddedGateStore::open(&dir.path().join("gate")).expect("gate store"));
    let chain = Arc::new(
        holdfast_chain::ChainSource::connect(holdfast_guard::rpc::source_config(&node.http_url()))
            .await
            .expect("node"),
    );
    let policy = format!(
        "[policy]\nname = \"treasury\"\n\n[wallets.treasury]\naddress = \"{}\"\nchain_id = 31337\nsafe_version = \"1.1.1\"\n",
        heist.safe_111
    );
    let guard = Guard::new(
        Arc::new(Policy::parse("policy.toml", &policy).expect("policy")),
        intel(),
    );
    let gate = Arc::new(Gate::new(
        gate_store.clone(),
        guard,
        Some(chain),
        None,
        GateConfig {
            rpc: Some(node.http_url()),
            ..GateConfig::default()
        },
    ));

    let transfers: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(&dir.path().join("t")).expect("store"));
    let watch: Arc<dyn WatchStore> =
        Arc::new(EmbeddedWatchStore::open(&dir.path().join("w")).expect("watch"));
    let head = node.block_number().await.expect("head");
    let deps = RunnerDeps {
        transfers,
        watch: watch.clone(),
        // The attacker's address stands for an exchange deposit: the takeover's trace (seeded
        // from the Safe, the DELEGATECALL moved nothing) must reach it through the sweep.
        intel: Arc::new(Intel(intel_with_exchange(heist.attacker))),
        responder: Responder {
            freezer: Some(Arc::new(GateFreezer(gate.clone()))),
            labeler: None,
            notify_dir: None,
        },
        owner: "test".into(),
        on_alert: None,
        on_block: None,
        env: Box::new(|_| None),
        chain_options: Some(ChainOptions {
            stop_after: Some(head),
            ..ChainOptions::default()
        }),
        delivery: DeliveryConfig::default(),
    };
    let runner = Runner::start(&config, deps).await.expect("starts");
    let (_stop, rx) = tokio::sync::watch::channel(false);
    tokio::time::timeout(Duration::from_secs(120), runner.run(rx))
        .await
        .expect("finishes")
        .expect("runs");

    let alerts: Vec<Alert> = watch
        .alerts(&AlertQuery {
            limit: 100,
            ..AlertQuery::default()
        })
        .expect("alerts")
        .into_iter()
        .map(|a| serde_json::from_slice(&a.body).expect("alert json"))
        .collect();
    let takeover: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.detector == DetectorKind::CriticalStorage)
        .collect();
    assert_eq!(
        takeover.len(),
        1,
        "one alert for the singleton change: {alerts:#?}"
    );
    let t = takeover[0];
    assert_eq!(t.tx_hash, Some(heist.delegatecall_tx));
    assert_eq!(t.severity, Severity::Critical);
    let receipt = node
        .rpc(
            "eth_getTransactionReceipt",
            serde_json::json!([heist.delegatecall_tx]),
        )
        .await
        .expect("receipt");
    let block: u64 = u64::from_str_radix(
        receipt["blockNumber"]
            .as_str()
            .expect("number")
            .trim_start_matches("0x"),
        16,
    )
    .expect("hex");
    assert_eq!(
        t.block_number, block,
        "raised in the block that made the change"
    );
    let words = format!("{} {} {:?}", t.title, t.summary, t.facts);
    assert!(
        words.contains("DELEGATECALL"),
        "names the DELEGATECALL: {words}"
    );
    assert!(
        words
            .to_lowercase()
            .contains(&heist.sweeper.to_string().to_lowercase()),
        "names the new implementation {}: {words}",
        heist.sweeper
    );
    let drains: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.detector == DetectorKind::Outflow && a.tx_hash == Some(heist.sweep_tx))
        .collect();
    assert_eq!(
        drains.len(),
        1,
        "one drain alert for the sweep: {alerts:#?}"
    );

    let loot: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.detector == DetectorKind::TaintedDeposit)
        .collect();
    assert_eq!(loot.len(), 1, "the sweep reached the exchange: {alerts:#?}");
    assert_eq!(loot[0].tx_hash, Some(heist.sweep_tx));
    assert_eq!(
        loot[0].evidence["deposit"],
        serde_json::json!(heist.attacker)
    );

    // The sink received each alert once, by id.
    receiver
        .wait_for_keys(alerts.len(), Duration::from_secs(20))
        .await;
    let counts = receiver.counts();
    for a in &alerts {
        assert_eq!(counts.get(&a.id), Some(&1), "{} delivered once", a.id);
    }

    // The freeze response: the guard refuses anything for the Safe.
    assert!(gate_store.frozen(heist.safe_111).expect("frozen?"));
    let body = serde_json::json!({
        "safe": heist.safe_111, "chainId": 31337, "to": heist.attacker, "value": "1",
        "data": "0x", "operation": 0, "nonce": "3", "safeTxGas": 0, "baseGas": 0, "gasPrice": "0",
    })
    .to_string();
    let initiator = Principal {
        name: "ops".into(),
        roles: vec![Role::Initiator],
        address: None,
    };
    let o = gate
        .submit(body.as_bytes(), &initiator)
        .await
        .expect("decided");
    assert_eq!(o.state, RequestState::Denied);
    assert_eq!(o.rule.as_deref(), Some("emergency freeze"));
}
