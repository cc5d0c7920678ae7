//! `safes_owned_by` with `safes_from_block`: the Safes an owner already holds are found from
//! the chain's logs and confirmed by each Safe's own `getOwners()` — Safe 1.1.1 (no
//! `SafeSetup`), 1.4.1 set up with the owner, the owner added later; not a Safe the owner
//! left, nor others' Safes — and the watch, started after they were made, alerts on them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, Bytes, U256, keccak256};
use holdfast_chain::{ChainSource, SourceConfig};
use holdfast_intel::IntelIndex;
use holdfast_store::watch::{AlertQuery, EmbeddedWatchStore, WatchStore};
use holdfast_store::{EmbeddedStore, Store};
use holdfast_testkit::safe::{self, Operation, SafeInfra, SafeVersion};
use holdfast_testkit::{Anvil, dev_account};
use holdfast_watch::discover::safes_owned_by;
use holdfast_watch::{
    Alert, ChainOptions, DeliveryConfig, DetectorKind, IntelView, Responder, Runner, RunnerDeps,
};

pub(crate) struct Intel(pub(crate) Arc<IntelIndex>);
impl IntelView for Intel {
    fn index(&self) -> Arc<IntelIndex> {
        self.0.clone()
    }
}

pub(crate) fn calldata(sig: &str, words: &[[u8; 32]]) -> Bytes {
    let mut d = keccak256(sig)[..4].to_vec();
    for w in words {
        d.extend_from_slice(w);
    }
    d.into()
}

pub(crate) fn num(n: u64) -> [u8; 32] {
    U256::from(n).to_be_bytes()
}

pub(crate) struct Safes {
    /// 1.1.1, owner X from setup (no `SafeSetup` event).
    pub(crate) a: Address,
    /// 1.4.1, owners Y and X from setup.
    pub(crate) b: Address,
    /// 1.4.1, owner Y, X added later (`AddedOwner`).
    pub(crate) c: Address,
    /// 1.4.1, owners X and Y, X removed later: not X's any more.
    pub(crate) d: Address,
    /// 1.1.1, owner Y only.
    pub(crate) e: Address,
}

pub(crate) async fn safes(node: &Anvil, x: Address, y: Address) -> Safes {
    let from = dev_account(0);
    let v111 = SafeInfra::deploy(node, SafeVersion::V1_1_1, from)
        .await
        .expect("1.1.1");
    let v141 = SafeInfra::deploy(node, SafeVersion::V1_4_1, from)
        .await
        .expect("1.4.1");
    let a = v111.create_safe(node, from, &[x], 1).await.expect("a");
    let b = v141.create_safe(node, from, &[y, x], 1).await.expect("b");
    let c = v141.create_safe(node, from, &[y], 1).await.expect("c");
    let d = v141.create_safe(node, from, &[x, y], 1).await.expect("d");
    let e = v111.create_safe(node, from, &[y], 1).await.expect("e");
    safe::exec(
        node,
        c,
        &[y],
        c,
        U256::ZERO,
        calldata(
            "addOwnerWithThreshold(address,uint256)",
            &[x.into_word().0, num(1)],
        ),
        Operation::Call,
    )
    .await
    .expect("X added to c");
    // d's owners list: sentinel → X → Y; X's predecessor is the sentinel.
    safe::exec(
        node,
        d,
        &[y],
        d,
        U256::ZERO,
        calldata(
            "removeOwner(address,address,uint256)",
            &[
                Address::with_last_byte(1).into_word().0,
                x.into_word().0,
                num(1),
            ],
        ),
        Operation::Call,
    )
    .await
    .expect("X removed from d");
    Safes { a, b, c, d, e }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_safe_an_owner_holds_is_found_and_confirmed_by_the_safe_itself() {
    let node = Anvil::spawn().await.expect("anvil");
    let (x, y) = (dev_account(1), dev_account(2));
    let s = safes(&node, x, y).await;
    let source = ChainSource::connect(SourceConfig::new(node.http_url()))
        .await
        .expect("node");
    let head = node.block_number().await.expect("head");
    let done = std::sync::atomic::AtomicU64::new(0);
    let found = safes_owned_by(&source, &BTreeSet::from([x]), 0, head, &|n| {
        done.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    })
    .await
    .expect("search");
    let got: BTreeSet<Address> = found.safes.keys().copied().collect();
    assert_eq!(got, BTreeSet::from([s.a, s.b, s.c]), "d: X left; e: Y's");
    assert!(!got.contains(&s.d) && !got.contains(&s.e));
    assert_eq!(done.into_inner(), head + 1, "progress covers the range");
    // Y holds b, c, d and e.
    let of_y = safes_owned_by(&source, &BTreeSet::from([y]), 0, head, &|_| {})
        .await
        .expect("search");
    assert_eq!(
        of_y.safes.keys().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([s.b, s.c, s.d, s.e])
    );
    // A range after the Safes were made finds nothing of them.
    let later = safes_owned_by(&source, &BTreeSet::from([x]), head, head, &|_| {})
        .await
        .expect("search");
    assert!(later.safes.is_empty(), "{later:?}");
}

pub(crate) fn watch_file(rpc: &str, x: Address, start: u64, discover: bool) -> String {
    let from = if discover {
        "safes_from_block = 0\n"
    } else {
        ""
    };
    format!(
        "[[chain]]\nname = \"anvil\"\nrpc = \"{rpc}\"\nchain_id = 31337\nconfirmations = 0\nstart_block = {start}\n\n\
         [[asset]]\nsymbol = \"ETH\"\nchain = \"anvil\"\nkind = \"native\"\n\n\
         [[set]]\nname = \"x-safes\"\nsafes_owned_by = [\"{x}\"]\n{from}\n\
         [[rule]]\nname = \"config\"\ndetector = \"critical_storage\"\ntargets = [\"x-safes\"]\nseverity = \"critical\"\n\n\
         [[sink]]\nkind = \"stdout\"\nname = \"out\"\n"
    )
}

/// Runs the watch file from its start block to `stop` with a fresh store; its alerts.
pub(crate) async fn run_watch(text: &str, stop: u64) -> Vec<Alert> {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = holdfast_watch::config::validate("watch.toml", text, dir.path())
        .expect("valid watch file")
        .config;
    let transfers: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(&dir.path().join("t")).expect("store"));
    let watch: Arc<dyn WatchStore> =
        Arc::new(EmbeddedWatchStore::open(&dir.path().join("w")).expect("watch"));
    let deps = RunnerDeps {
        transfers,
        watch: watch.clone(),
        intel: Arc::new(Intel(Arc::new(
            holdfast_intel::load(None).expect("intel").index,
        ))),
        responder: Responder {
            freezer: None,
            labeler: None,
            notify_dir: None,
        },
        owner: "test".into(),
        on_alert: None,
        on_block: None,
        env: Box::new(|_| None),
        chain_options: Some(ChainOptions {
            stop_after: Some(stop),
            ..ChainOptions::default()
        }),
        delivery: DeliveryConfig::default(),
    };
    let runner = Runner::start(&config, deps).await.expect("starts");
    let (_stop, rx) = tokio::sync::watch::channel(false);
    tokio::time::timeout(Duration::from_secs(60), runner.run(rx))
        .await
        .expect("finishes")
        .expect("runs");
    watch
        .alerts(&AlertQuery {
            limit: 100,
            ..AlertQuery::default()
        })
        .expect("alerts")
        .into_iter()
        .map(|a| serde_json::from_slice(&a.body).expect("alert json"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_started_later_alerts_on_the_safes_the_owner_already_held() {
    let node = Anvil::spawn().await.expect("anvil");
    let (x, y) = (dev_account(1), dev_account(2));
    let s = safes(&node, x, y).await;
    let start = node.block_number().await.expect("head") + 1;
    // After the watch's start block: X's 1.1.1 Safe and Y's change their fallback handler.
    for (safe, owner) in [(s.a, x), (s.e, y)] {
        safe::exec(
            &node,
            safe,
            &[owner],
            safe,
            U256::ZERO,
            safe::set_fallback_handler(Address::repeat_byte(0x42)),
            Operation::Call,
        )
        .await
        .expect("fallback handler set");
    }
    let head = node.block_number().await.expect("head");
    let alerts = run_watch(&watch_file(&node.ws_url(), x, start, true), head).await;
    let critical: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.detector == DetectorKind::CriticalStorage)
        .collect();
    assert_eq!(critical.len(), 1, "{alerts:#?}");
    assert_eq!(critical[0].addresses[0].address, s.a);
    assert!(
        critical[0].title.contains("fallback handler"),
        "{}",
        critical[0].title
    );
    // Without the search the watch never saw a's setup: silent.
    let blind = run_watch(&watch_file(&node.ws_url(), x, start, false), head).await;
    assert!(blind.is_empty(), "{blind:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_from_above_the_head_is_refused_at_start() {
    let node = Anvil::spawn().await.expect("anvil");
    let dir = tempfile::tempdir().expect("tempdir");
    let text = watch_file(&node.ws_url(), dev_account(1), 0, true)
        .replace("safes_from_block = 0", "safes_from_block = 999");
    let config = holdfast_watch::config::validate("watch.toml", &text, dir.path())
        .expect("valid watch file")
        .config;
    let deps = RunnerDeps {
        transfers: Arc::new(EmbeddedStore::open(&dir.path().join("t")).expect("store")),
        watch: Arc::new(EmbeddedWatchStore::open(&dir.path().join("w")).expect("watch")),
        intel: Arc::new(Intel(Arc::new(
            holdfast_intel::load(None).expect("intel").index,
        ))),
        responder: Responder {
            freezer: None,
            labeler: None,
            notify_dir: None,
        },
        owner: "test".into(),
        on_alert: None,
        on_block: None,
        env: Box::new(|_| None),
        chain_options: None,
        delivery: DeliveryConfig::default(),
    };
    let err = Runner::start(&config, deps).await.expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("safes_from_block 999") && text.contains("anvil"),
        "{text}"
    );
}
