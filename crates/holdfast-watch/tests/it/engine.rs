//! The engine on anvil with the embedded stores: one commit per block with its alerts, the
//! same ids after a restart, reorgs retracting the dropped block's alerts and raising the new
//! chain's, confirmations.
//!
//! The rule here is a test rule (every native payment from the watched wallet), so these
//! tests exercise the engine alone; the real detectors have their own tests.

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, Bytes, U256};
use holdfast_chain::{BlockDetail, ChainSource, SourceConfig};
use holdfast_intel::IntelIndex;
use holdfast_primitives::Asset;
use holdfast_store::watch::{AlertEventKind, AlertStatus, EmbeddedWatchStore, WatchStore};
use holdfast_store::{EmbeddedStore, Store};
use holdfast_testkit::{Anvil, dev_account};
use holdfast_watch::detect::RulesError;
use holdfast_watch::{
    AddressNote, Alert, ChainInfo, ChainOptions, ChainWatch, DetectorKind, Involvement, Place,
    Rules, Severity, Shared, Start, TracePlan, Units, WatchMetrics, alert_id,
};
use serde_json::json;

/// Every native payment from `wallet` is an alert.
#[derive(Debug)]
pub struct PaymentsFrom {
    pub wallet: Address,
}

impl Rules for PaymentsFrom {
    fn detect(
        &self,
        chain: &ChainInfo,
        block: &BlockDetail,
        state: &mut serde_json::Value,
    ) -> Result<Vec<Alert>, RulesError> {
        // The state counts blocks seen, to check it is carried through commits and unwinds.
        let seen = state.get("blocks").and_then(|v| v.as_u64()).unwrap_or(0);
        *state = json!({ "blocks": seen + 1 });
        let b = block.block();
        Ok(block
            .transfers
            .transfers
            .iter()
            .filter(|t| t.from == self.wallet && t.asset == Asset::Native)
            .map(|t| {
                let place = Place::Transfer {
                    tx_index: t.tx_index,
                    position: t.position.to_string(),
                };
                Alert {
                    id: alert_id(chain.chain_id, b.hash, "payments", &place),
                    chain_id: chain.chain_id,
                    chain: chain.name.clone(),
                    block_number: b.number,
                    block_hash: b.hash,
                    block_timestamp: b.timestamp,
                    tx_hash: Some(t.tx_hash),
                    place,
                    rule: "payments".into(),
                    detector: DetectorKind::Outflow,
                    severity: Severity::High,
                    title: format!("{} paid {} wei to {}", t.from, t.amount, t.to),
                    summary: String::new(),
                    facts: Vec::new(),
                    addresses: vec![AddressNote {
                        address: t.from,
                        role: "watched wallet".into(),
                        involvement: Involvement::Watched,
                        labels: Vec::new(),
                    }],
                    links: Vec::new(),
                    confirmations: 0,
                    responses: Vec::new(),
                    evidence: serde_json::Value::Null,
                }
            })
            .collect())
    }

    fn trace_plan(&self, _rule: &str) -> Option<TracePlan> {
        None
    }
}

/// The engine's shared parts over these stores, no intel.
pub fn shared(
    transfers: Arc<dyn Store>,
    watch: Arc<dyn WatchStore>,
    rules: Arc<dyn Rules>,
) -> Shared {
    Shared {
        transfers,
        watch,
        rules,
        intel: Arc::new(arc_swap::ArcSwap::from_pointee(IntelIndex::default())),
        units: Arc::new(Units::new()),
        notify: Arc::new(tokio::sync::Notify::new()),
        metrics: WatchMetrics::new(),
        owner: "test".into(),
        on_alert: None,
        on_block: None,
    }
}

pub struct Rig {
    pub _dir: tempfile::TempDir,
    pub transfers: Arc<EmbeddedStore>,
    pub watch: Arc<EmbeddedWatchStore>,
    pub source: Arc<ChainSource>,
    pub chain: ChainInfo,
}

impl Rig {
    pub async fn new(node: &Anvil) -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let transfers = Arc::new(EmbeddedStore::open(&dir.path().join("t")).expect("store"));
        let watch = Arc::new(EmbeddedWatchStore::open(&dir.path().join("w")).expect("watch"));
        let mut config = SourceConfig::new(node.http_url());
        config.poll_interval = Duration::from_millis(50);
        // As the runner prefers (and the first look needs).
        config.trace_mode = Some(holdfast_chain::TraceMode::Parity);
        let source = Arc::new(ChainSource::connect(config).await.expect("node"));
        let chain = ChainInfo {
            chain_id: source.chain_id(),
            name: "anvil".into(),
            explorer: None,
        };
        Rig {
            _dir: dir,
            transfers,
            watch,
            source,
            chain,
        }
    }

    pub fn shared(&self, rules: Arc<dyn Rules>) -> Shared {
        shared(self.transfers.clone(), self.watch.clone(), rules)
    }

    /// Runs the watch from block `start` (or the checkpoint) up to block `last`.
    pub async fn run_to(
        &self,
        rules: Arc<dyn Rules>,
        start: u64,
        last: u64,
        confirmations: u64,
    ) -> holdfast_watch::RunSummary {
        let options = ChainOptions {
            start: Start::Block(start),
            confirmations,
            stop_after: Some(last),
            ..ChainOptions::default()
        };
        let mut w = ChainWatch::new(
            self.chain.clone(),
            self.source.clone(),
            options,
            self.shared(rules),
        );
        let (_tx, rx) = tokio::sync::watch::channel(false);
        tokio::time::timeout(Duration::from_secs(60), w.run(rx))
            .await
            .expect("the run ends")
            .expect("the run succeeds")
    }
}

async fn pay(node: &Anvil, from: Address, to: Address, wei: u64) -> alloy_primitives::B256 {
    node.send(from, Some(to), U256::from(wei), Bytes::new(), None)
        .await
        .expect("payment")
        .0
}

fn events(watch: &dyn WatchStore) -> Vec<(AlertEventKind, String)> {
    watch
        .outbox_after_cursor("test-reader", 10_000)
        .expect("outbox")
        .into_iter()
        .map(|e| (e.kind, e.alert_id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_block_commits_its_alerts_once_and_a_rerun_adds_nothing() {
    let node = Anvil::spawn().await.expect("anvil");
    let rig = Rig::new(&node).await;
    let wallet = dev_account(1);
    let rules: Arc<dyn Rules> = Arc::new(PaymentsFrom { wallet });
    for i in 0..3 {
        pay(&node, wallet, dev_account(5), 1000 + i).await;
        pay(&node, dev_account(2), dev_account(5), 7).await;
    }
    let head = node.block_number().await.expect("head");
    let s = rig.run_to(rules.clone(), 1, head, 0).await;
    assert_eq!(s.blocks, head, "{s:?}");
    assert_eq!(s.alerts, 3, "{s:?}");
    let cp = rig
        .watch
        .checkpoint(rig.chain.chain_id)
        .expect("cp")
        .expect("some");
    assert_eq!(cp.block.number, head);
    let state: serde_json::Value = serde_json::from_slice(&cp.state).expect("state");
    assert_eq!(
        state["detect"]["blocks"],
        json!(head),
        "the state is carried block to block"
    );
    // The transfers are stored too (the ingestion path).
    assert_eq!(
        rig.transfers
            .head(rig.chain.chain_id)
            .expect("head")
            .map(|b| b.number),
        Some(head)
    );
    let raised = events(rig.watch.as_ref());
    assert_eq!(raised.len(), 3);
    // Running again from the checkpoint over the same chain adds nothing.
    let again = rig.run_to(rules, 1, head, 0).await;
    assert_eq!(again.alerts, 0, "{again:?}");
    assert_eq!(events(rig.watch.as_ref()).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_retracts_the_dropped_blocks_alerts_and_raises_the_new_chains() {
    let node = Anvil::spawn().await.expect("anvil");
    let rig = Rig::new(&node).await;
    let wallet = dev_account(1);
    let rules: Arc<dyn Rules> = Arc::new(PaymentsFrom { wallet });
    pay(&node, wallet, dev_account(5), 1).await;
    pay(&node, wallet, dev_account(6), 2).await;
    let head = node.block_number().await.expect("head");
    rig.run_to(rules.clone(), 1, head, 1).await;
    let before: Vec<_> = events(rig.watch.as_ref())
        .into_iter()
        .filter(|e| e.0 == AlertEventKind::Raised)
        .collect();
    assert_eq!(before.len(), 2);
    // The last block is replaced by one carrying another payment from the wallet.
    node.rpc(
        "anvil_reorg",
        json!([1, [[{"from": wallet, "to": dev_account(7), "value": "0x3"}, 0]]]),
    )
    .await
    .expect("anvil_reorg");
    let head2 = node.block_number().await.expect("head");
    assert_eq!(head2, head);
    let s = rig.run_to(rules, 1, head2, 1).await;
    assert_eq!(s.reorgs, 1, "{s:?}");
    assert_eq!(s.retracted, 1, "{s:?}");
    assert_eq!(s.alerts, 1, "{s:?}");
    let all = events(rig.watch.as_ref());
    let kinds: Vec<AlertEventKind> = all.iter().map(|e| e.0).collect();
    // raised, raised (first run; the first confirmed once the second block is on top of it),
    // then the second retracted and the new one raised.
    assert!(kinds.contains(&AlertEventKind::Retracted), "{all:?}");
    let retracted = &all
        .iter()
        .find(|e| e.0 == AlertEventKind::Retracted)
        .expect("one")
        .1;
    assert_eq!(
        retracted, &before[1].1,
        "the dropped block's alert is the one retracted"
    );
    let stored = rig.watch.alert(retracted).expect("get").expect("kept");
    assert_eq!(stored.status, AlertStatus::Retracted);
    let new = all.last().expect("some");
    assert_eq!(new.0, AlertEventKind::Raised);
    assert_ne!(
        &new.1, retracted,
        "the new chain's alert has its own id (its block hash)"
    );
    let first = rig.watch.alert(&before[0].1).expect("get").expect("kept");
    assert_eq!(
        first.status,
        AlertStatus::Open,
        "the block below the fork keeps its alert"
    );
    assert!(
        first.confirmed,
        "and it is confirmed once a block is on top of it"
    );
}

/// A TCP relay in front of the node that can be cut: the node "goes away" for the watch.
struct Relay {
    port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: u16) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (u, c) = (up.clone(), conns.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !u.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: the node is down
                }
                let h = tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                c.lock().expect("lock").push(h);
            }
        });
        Relay {
            port,
            up,
            conns,
            _task: task,
        }
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for h in self.conns.lock().expect("lock").drain(..) {
            h.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_outage_is_waited_out_and_loses_no_alert() {
    let node = Anvil::spawn().await.expect("anvil");
    let relay = Relay::start(node.port()).await;
    let wallet = dev_account(1);
    pay(&node, wallet, dev_account(5), 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let transfers = Arc::new(EmbeddedStore::open(&dir.path().join("t")).expect("store"));
    let watch = Arc::new(EmbeddedWatchStore::open(&dir.path().join("w")).expect("watch"));
    let mut config = SourceConfig::new(format!("http://127.0.0.1:{}", relay.port));
    config.poll_interval = Duration::from_millis(50);
    config.timeout = Duration::from_secs(2);
    config.max_retries = 1;
    let source = Arc::new(ChainSource::connect(config).await.expect("node"));
    let chain = ChainInfo {
        chain_id: source.chain_id(),
        name: "anvil".into(),
        explorer: None,
    };
    let rig = Rig {
        _dir: tempfile::tempdir().expect("unused"),
        transfers: transfers.clone(),
        watch: watch.clone(),
        source: source.clone(),
        chain: chain.clone(),
    };
    let rules: Arc<dyn Rules> = Arc::new(PaymentsFrom { wallet });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut w = ChainWatch::new(
        chain.clone(),
        source,
        ChainOptions {
            start: Start::Block(1),
            confirmations: 0,
            ..ChainOptions::default()
        },
        rig.shared(rules),
    );
    let run = tokio::spawn(async move { w.run(stop_rx).await });
    let wait_for = |n: usize| {
        let watch = watch.clone();
        async move {
            let started = std::time::Instant::now();
            while events(watch.as_ref()).len() < n {
                assert!(started.elapsed() < Duration::from_secs(60), "no alert {n}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_for(1).await;
    // The node goes away; payments happen meanwhile; it comes back.
    relay.cut();
    pay(&node, wallet, dev_account(6), 2).await;
    pay(&node, wallet, dev_account(7), 3).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        events(rig.watch.as_ref()).len(),
        1,
        "nothing while the node is away"
    );
    relay.restore();
    wait_for(3).await;
    let _ = stop_tx.send(true);
    let summary = run
        .await
        .expect("joins")
        .expect("the outage is not an error");
    assert_eq!(summary.alerts, 3, "{summary:?}");
}

/// `PaymentsFrom` with a first look: the preview is the same rule on a copy of the state.
#[derive(Debug)]
struct Previewing(PaymentsFrom);

impl Rules for Previewing {
    fn detect(
        &self,
        chain: &ChainInfo,
        block: &BlockDetail,
        state: &mut serde_json::Value,
    ) -> Result<Vec<Alert>, RulesError> {
        self.0.detect(chain, block, state)
    }

    fn preview(
        &self,
        chain: &ChainInfo,
        block: &BlockDetail,
        state: &serde_json::Value,
        _early: &holdfast_watch::detect::EarlyStorage,
    ) -> Result<Vec<Alert>, RulesError> {
        assert!(block.state.is_none(), "the first look reads no state diffs");
        self.0.detect(chain, block, &mut state.clone())
    }

    fn trace_plan(&self, _rule: &str) -> Option<TracePlan> {
        None
    }
}

/// An alert as the callback saw it: id, block, and the checkpoint's block at that moment.
type Announced = (String, u64, Option<u64>);

/// A new head's alert is raised by the first look, before the block's commit moves the
/// checkpoint (the callback reads the checkpoint when the alert is announced), and the
/// block's commit confirms it: one `raised` event, no retraction. With the first look off,
/// the same alert comes with the commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_head_is_alerted_by_the_first_look_before_its_commit_and_once() {
    for first_look in [true, false] {
        let node = Anvil::spawn().await.expect("anvil");
        let rig = Rig::new(&node).await;
        let wallet = dev_account(1);
        let rules: Arc<dyn Rules> = Arc::new(Previewing(PaymentsFrom { wallet }));
        let head = node.block_number().await.expect("head");
        let seen: Arc<std::sync::Mutex<Vec<Announced>>> = Arc::default();
        let mut shared = rig.shared(rules);
        let (store, record) = (rig.watch.clone(), seen.clone());
        let chain_id = rig.chain.chain_id;
        shared.on_alert = Some(Arc::new(move |a: &Alert, _| {
            let cp = store
                .checkpoint(chain_id)
                .expect("checkpoint")
                .map(|c| c.block.number);
            record
                .lock()
                .expect("lock")
                .push((a.id.clone(), a.block_number, cp));
        }));
        let options = ChainOptions {
            start: Start::Block(head + 1),
            confirmations: 0,
            stop_after: Some(head + 1),
            first_look,
            ..ChainOptions::default()
        };
        let mut w = ChainWatch::new(rig.chain.clone(), rig.source.clone(), options, shared);
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let run = tokio::spawn(async move { w.run(rx).await });
        // The watch is at the head (its anchor committed) before the payment is mined.
        let watch = rig.watch.clone();
        tokio::time::timeout(Duration::from_secs(30), async {
            while watch.checkpoint(chain_id).expect("cp").is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the watch anchors");
        tokio::time::sleep(Duration::from_millis(200)).await;
        pay(&node, wallet, dev_account(5), 4242).await;
        let summary = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("the run ends")
            .expect("joins")
            .expect("the run succeeds");
        assert_eq!(summary.alerts, 1, "{summary:?}");
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(seen.len(), 1, "announced once: {seen:?}");
        let (id, block, cp) = &seen[0];
        assert_eq!(*block, head + 1);
        if first_look {
            assert_eq!(*cp, Some(head), "raised before the block's commit");
        } else {
            assert_eq!(*cp, Some(head + 1), "raised with the block's commit");
        }
        assert_eq!(
            events(rig.watch.as_ref()),
            [(AlertEventKind::Raised, id.clone())],
            "one event: the commit kept the early alert"
        );
        let stored = rig.watch.alert(id).expect("read").expect("stored");
        assert_eq!(stored.status, AlertStatus::Open);
    }
}

/// `holdfast watch replay`'s path over what the live run stored: the same alerts, with the
/// same ids, blocks without transfers between them skipped; a later range alone gives that
/// range's alerts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_of_the_stored_blocks_raises_the_live_runs_alerts_with_their_ids() {
    let node = Anvil::spawn().await.expect("anvil");
    let rig = Rig::new(&node).await;
    let wallet = dev_account(1);
    let rules: Arc<dyn Rules> = Arc::new(PaymentsFrom { wallet });
    for i in 0..4 {
        pay(&node, wallet, dev_account(5), 1000 + i).await;
        pay(&node, dev_account(2), dev_account(6), 7).await;
        // Empty blocks between (the store has no transfer in them).
        node.mine(3).await.expect("mine");
    }
    let head = node.block_number().await.expect("head");
    let live = rig.run_to(rules.clone(), 1, head, 0).await;
    assert_eq!(live.alerts, 4, "{live:?}");
    let mut live_ids: Vec<String> = events(rig.watch.as_ref())
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    live_ids.sort();

    let replay = |from: u64| {
        let mut ids = Vec::new();
        let mut state = holdfast_watch::WatchState::default();
        let mut done = Vec::new();
        let s = holdfast_watch::replay::replay(
            rig.transfers.as_ref(),
            rules.as_ref(),
            &IntelIndex::default(),
            &Units::new(),
            &rig.chain,
            from,
            head,
            &mut state,
            &mut |a| ids.push(a.id),
            &mut |n| done.push(n),
        )
        .expect("replay");
        ids.sort();
        assert!(
            done.windows(2).all(|w| w[0] <= w[1]),
            "progress only grows: {done:?}"
        );
        (s, ids)
    };
    let (s, ids) = replay(1);
    assert_eq!(ids, live_ids, "the same alerts, with the same ids");
    // Every block with a transfer (two payments each, one per block: anvil mines a block
    // per transaction), the empty ones skipped.
    assert_eq!((s.blocks, s.transfers, s.alerts), (8, 8, 4), "{s:?}");
    // From the block after the second watched payment: the last two alerts only.
    let third = rig
        .transfers
        .transfers(
            rig.chain.chain_id,
            holdfast_store::TransferQuery::From {
                address: wallet,
                from_block: 0,
            },
            10,
        )
        .expect("payments")[2]
        .block_number;
    let (s, ids) = replay(third);
    assert_eq!(s.alerts, 2, "{s:?}");
    assert!(ids.iter().all(|id| live_ids.contains(id)), "{ids:?}");
}

/// A crash (or a store outage) after a block's transfers were stored and before the watch
/// committed it, and a reorg of that block while the watch was away: the transfer store
/// holds a block the node no longer has, right above the checkpoint. The watch unwinds it
/// and goes on (before, the transfer store refused the new block as a conflict on every
/// run: the watch could not resume at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_but_uncommitted_block_that_a_reorg_dropped_does_not_stop_the_watch() {
    let node = Anvil::spawn().await.expect("anvil");
    let rig = Rig::new(&node).await;
    let wallet = dev_account(1);
    let rules: Arc<dyn Rules> = Arc::new(PaymentsFrom { wallet });
    pay(&node, wallet, dev_account(5), 1).await;
    let head = node.block_number().await.expect("head");
    rig.run_to(rules.clone(), 1, head, 0).await;
    // The next block: its transfers stored, then the crash before its commit.
    pay(&node, wallet, dev_account(6), 2).await;
    let dropped = rig.source.fetch_detail(head + 1).await.expect("detail");
    rig.transfers
        .apply_block(
            rig.chain.chain_id,
            dropped.block(),
            &dropped.transfers.transfers,
            &dropped.transfers.conversions,
        )
        .expect("stored");
    // While the watch is away, a reorg replaces that block.
    node.rpc(
        "anvil_reorg",
        json!([1, [[{"from": wallet, "to": dev_account(7), "value": "0x3"}, 0]]]),
    )
    .await
    .expect("anvil_reorg");
    let new = rig.source.block_ref(head + 1).await.expect("block");
    assert_ne!(new.hash, dropped.block().hash, "the reorg replaced it");
    let s = rig.run_to(rules, 1, head + 1, 0).await;
    assert_eq!(s.alerts, 1, "{s:?}");
    let raised: Vec<_> = events(rig.watch.as_ref())
        .into_iter()
        .filter(|e| e.0 == AlertEventKind::Raised)
        .map(|e| rig.watch.alert(&e.1).expect("get").expect("stored"))
        .filter(|a| a.block_number == head + 1)
        .collect();
    assert_eq!(raised.len(), 1, "one alert for the new block");
    let alert = &raised[0];
    let body = String::from_utf8_lossy(&alert.body);
    assert_eq!(alert.block_hash, new.hash, "raised on the node's block");
    assert!(
        body.contains(&dev_account(7).to_string()),
        "the new block's payment: {body}"
    );
    assert_eq!(
        rig.transfers
            .block(rig.chain.chain_id, head + 1)
            .expect("block")
            .map(|b| b.hash),
        Some(new.hash),
        "the transfer store holds the node's block"
    );
    let paid: Vec<Address> = rig
        .transfers
        .transfers(
            rig.chain.chain_id,
            holdfast_store::TransferQuery::From {
                address: wallet,
                from_block: head + 1,
            },
            10,
        )
        .expect("payments")
        .into_iter()
        .map(|t| t.to)
        .collect();
    assert_eq!(paid, vec![dev_account(7)], "the dropped payment is gone");
}

/// PostgreSQL restarts while the watch runs on it (its state and the transfers): the watch
/// waits the outage out, reconnects, and raises every alert, including those of blocks
/// mined while the database was down; the run ends without error (before, the first failed
/// query ended the chain's run, and the runner stopped every chain).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_restart_is_waited_out_and_loses_no_alert() {
    if std::env::var_os("HOLDFAST_TEST_SKIP_PG").is_some_and(|v| v == "1") {
        return;
    }
    let blocking = |f: Box<dyn FnOnce() + Send>| tokio::task::spawn_blocking(f);
    let pg = tokio::task::spawn_blocking(|| holdfast_store::testing::TempPostgres::start(false))
        .await
        .expect("joins")
        .unwrap_or_else(|e| {
            panic!("PostgreSQL could not be started (HOLDFAST_TEST_SKIP_PG=1 skips): {e}")
        });
    let pg = Arc::new(pg);
    let url = pg.url().to_owned();
    let (transfers, watch) = tokio::task::spawn_blocking(move || {
        (
            Arc::new(holdfast_store::PgStore::connect(&url).expect("pg store")),
            Arc::new(holdfast_store::watch::PgWatchStore::connect(&url, 2).expect("pg watch")),
        )
    })
    .await
    .expect("joins");
    let node = Anvil::spawn().await.expect("anvil");
    let wallet = dev_account(1);
    pay(&node, wallet, dev_account(5), 1).await;
    let mut config = SourceConfig::new(node.http_url());
    config.poll_interval = Duration::from_millis(50);
    let source = Arc::new(ChainSource::connect(config).await.expect("node"));
    let chain = ChainInfo {
        chain_id: source.chain_id(),
        name: "anvil".into(),
        explorer: None,
    };
    let rules: Arc<dyn Rules> = Arc::new(PaymentsFrom { wallet });
    let shared = shared(transfers.clone(), watch.clone(), rules);
    let metrics = shared.metrics.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut w = ChainWatch::new(
        chain.clone(),
        source,
        ChainOptions {
            start: Start::Block(1),
            confirmations: 0,
            ..ChainOptions::default()
        },
        shared,
    );
    let run = tokio::spawn(async move { w.run(stop_rx).await });
    let raised = |n: usize| {
        let watch = watch.clone();
        async move {
            let started = std::time::Instant::now();
            loop {
                let w = watch.clone();
                // Read while the database may be away: an error is "not yet".
                let got = tokio::task::spawn_blocking(move || {
                    w.outbox_after_cursor("test-reader", 10_000)
                        .map(|e| e.len())
                })
                .await
                .expect("joins");
                if let Ok(got) = got
                    && got >= n
                {
                    return got;
                }
                assert!(started.elapsed() < Duration::from_secs(90), "no alert {n}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(raised(1).await, 1);
    // The restart: every session ended; payments meanwhile; the server back on the same
    // port with the same data.
    let p = pg.clone();
    blocking(Box::new(move || p.stop().expect("stop")))
        .await
        .expect("joins");
    pay(&node, wallet, dev_account(6), 2).await;
    pay(&node, wallet, dev_account(7), 3).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let p = pg.clone();
    blocking(Box::new(move || p.start_again().expect("start")))
        .await
        .expect("joins");
    pay(&node, wallet, dev_account(8), 4).await;
    assert_eq!(raised(4).await, 4);
    let w = watch.clone();
    let all = tokio::task::spawn_blocking(move || events(w.as_ref()))
        .await
        .expect("joins");
    let mut ids: Vec<&String> = all.iter().map(|(_, id)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (all.len(), ids.len()),
        (4, 4),
        "every alert raised once, nothing else (no confirmation at 0 confirmations): {all:?}"
    );
    let _ = stop_tx.send(true);
    let summary = run
        .await
        .expect("joins")
        .expect("the restart is not an error");
    assert_eq!(summary.alerts, 4, "{summary:?}");
    let outages = metrics
        .store_errors
        .get_or_create(&holdfast_watch::metrics::ChainLabels {
            chain: "anvil".into(),
        })
        .get();
    assert!(outages >= 1, "the outage was met and counted: {outages}");
    tokio::task::spawn_blocking(move || {
        drop((transfers, watch));
        drop(pg);
    })
    .await
    .expect("joins");
}
