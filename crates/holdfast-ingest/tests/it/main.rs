//! Ingestion against a real anvil: the scenario's transfers exactly, reorgs, a node that
//! goes away and comes back.

mod bitcoin;
mod bitcoin_etl;
mod bitcoin_overlay;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alloy_primitives::{Address, B256, U256};
use holdfast_chain::{ChainError, ChainSource, SourceConfig, TraceMode};
use holdfast_ingest::{IngestOptions, Ingestor, Progress, Quiet};
use holdfast_primitives::Asset;
use holdfast_store::testing::TempPostgres;
use holdfast_store::{EmbeddedStore, PgStore, Store, TransferQuery};
use holdfast_testkit::{Anvil, Scenario};

async fn source(url: &str, mode: Option<TraceMode>) -> Arc<ChainSource> {
    let mut config = SourceConfig::new(url);
    config.trace_mode = mode;
    config.poll_interval = Duration::from_millis(100);
    Arc::new(ChainSource::connect(config).await.expect("connects"))
}

fn embedded() -> (tempfile::TempDir, Arc<EmbeddedStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("t")).expect("open"));
    (dir, store)
}

async fn ingest<S: Store + ?Sized + 'static>(
    src: Arc<ChainSource>,
    store: Arc<S>,
    options: IngestOptions,
) -> holdfast_ingest::Summary {
    let (_tx, rx) = tokio::sync::watch::channel(false);
    Ingestor::new(src, store, options)
        .run(&Quiet, rx)
        .await
        .expect("ingests")
}

type Key = (B256, Address, Address, Asset, U256);

/// Every stored transfer of the scenario's transactions, as (tx, from, to, asset, amount)
/// with multiplicity.
fn stored(
    store: &dyn Store,
    chain_id: u64,
    txs: impl IntoIterator<Item = B256>,
) -> BTreeMap<Key, usize> {
    let mut out = BTreeMap::new();
    for tx in txs {
        for t in store
            .transfers(chain_id, TransferQuery::Tx { tx_hash: tx }, 1000)
            .expect("query")
        {
            *out.entry((t.tx_hash, t.from, t.to, t.asset, t.amount))
                .or_insert(0) += 1;
        }
    }
    out
}

async fn check_scenario(mode: TraceMode, store: Arc<dyn Store>) {
    let node = Anvil::spawn().await.expect("anvil");
    let expected = Scenario::new(&node).run().await.expect("scenario");
    let src = source(&node.http_url(), Some(mode)).await;
    let chain = src.chain_id();
    let summary = ingest(src.clone(), store.clone(), IngestOptions::default()).await;
    assert_eq!(summary.head, Some(expected.last_block));
    // The checks use the synchronous store API: off the async threads.
    tokio::task::spawn_blocking(move || verify(mode, store.as_ref(), chain, &expected))
        .await
        .expect("checks");
}

fn verify(mode: TraceMode, store: &dyn Store, chain: u64, expected: &holdfast_testkit::Expected) {
    let mut want: BTreeMap<Key, usize> = BTreeMap::new();
    for t in &expected.transfers {
        *want.entry(*t).or_insert(0) += 1;
    }
    let txs: std::collections::BTreeSet<B256> = expected
        .transfers
        .iter()
        .map(|t| t.0)
        .chain(expected.failed.iter().copied())
        .chain(expected.reverted_frames.iter().map(|r| r.0))
        .collect();
    let got = stored(store, chain, txs.iter().copied());
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        extra.is_empty(),
        "{mode:?}: unexpected transfers {extra:#?}"
    );
    for (k, n) in &want {
        assert_eq!(
            got.get(k),
            Some(n),
            "{mode:?}: expected transfer {k:?} x{n}; stored for its tx: {:?}",
            got.iter().filter(|(g, _)| g.0 == k.0).collect::<Vec<_>>()
        );
    }
    for tx in &expected.failed {
        assert!(
            got.keys().all(|k| k.0 != *tx),
            "{mode:?}: a failed transaction moved something"
        );
    }
    for (tx, from, to, amount) in &expected.reverted_frames {
        assert!(
            !got.contains_key(&(*tx, *from, *to, Asset::Native, *amount)),
            "{mode:?}: reverted frame {from}->{to} stored"
        );
    }
    // Nothing else: every stored transfer is expected (the pair's LP-token mint included).
    let total: usize = want.values().sum();
    let lp = store
        .transfers(
            chain,
            TransferQuery::Asset {
                token: Some(expected.pair),
                from_block: 0,
            },
            100,
        )
        .expect("q");
    assert_eq!(
        lp.len(),
        expected.lp_mint_transfers,
        "{mode:?}: LP token mint transfers"
    );
    let stats = store.stats(chain).expect("stats");
    assert_eq!(
        stats.transfers as usize,
        total + expected.lp_mint_transfers,
        "{mode:?}: stored {} transfers, expected {total} + LP mints",
        stats.transfers
    );
    for (tx, kind, venue, account, amount_in) in &expected.conversions {
        let convs = store.conversions_of_tx(chain, *tx).expect("conversions");
        assert!(
            convs.iter().any(|c| c.kind == *kind
                && c.venue == *venue
                && c.account == *account
                && c.amount_in == *amount_in),
            "{mode:?}: conversion {kind:?} in {tx} missing: {convs:?}"
        );
    }
    // Against the node: per-asset sums are what the scenario moved.
    let sums = store.sum_by_asset(chain).expect("sums");
    let native: U256 = expected
        .transfers
        .iter()
        .filter(|t| t.3 == Asset::Native)
        .map(|t| t.4)
        .sum();
    assert_eq!(sums.get(&Asset::Native), Some(&native));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_is_ingested_exactly_with_geth_traces() {
    let (_dir, store) = embedded();
    check_scenario(TraceMode::Geth, store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_is_ingested_exactly_with_parity_traces_into_postgres() {
    let pg =
        TempPostgres::start(false).expect("PostgreSQL for the test (scripts/install-postgres)");
    let url = pg.url().to_owned();
    let store = Arc::new(
        tokio::task::spawn_blocking(move || PgStore::connect(&url).expect("connect"))
            .await
            .expect("task"),
    );
    check_scenario(TraceMode::Parity, store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_traces_only_internal_transfers_are_missing() {
    let node = Anvil::spawn().await.expect("anvil");
    let expected = Scenario::new(&node).run().await.expect("scenario");
    let (_dir, store) = embedded();
    let src = source(&node.http_url(), Some(TraceMode::None)).await;
    ingest(src.clone(), store.clone(), IngestOptions::default()).await;
    let got = stored(
        store.as_ref(),
        src.chain_id(),
        expected.transfers.iter().map(|t| t.0),
    );
    // Token transfers and top-level values are all there; the WETH unwrap's payout (an
    // internal call) is not.
    for t in expected.transfers.iter().filter(|t| t.3 != Asset::Native) {
        assert!(got.contains_key(t), "{t:?}");
    }
    assert!(
        !got.keys()
            .any(|k| k.1 == expected.weth && k.3 == Asset::Native),
        "internal payout without traces"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorgs_are_unwound_and_the_canonical_chain_ingested() {
    let node = Anvil::spawn().await.expect("anvil");
    let scenario = Scenario::new(&node);
    let first = scenario.eth_sends(8).await.expect("sends");
    let (_dir, store) = embedded();
    let src = source(&node.http_url(), None).await;
    let chain = src.chain_id();
    ingest(src.clone(), store.clone(), IngestOptions::default()).await;
    assert_eq!(store.head(chain).expect("head").map(|h| h.number), Some(8));
    // Replace the last 3 blocks (their transactions dropped), then the chain grows by one.
    node.reorg(3).await.expect("anvil_reorg");
    let summary = ingest(src.clone(), store.clone(), IngestOptions::default()).await;
    assert_eq!(summary.reorgs, 1, "{summary:?}");
    assert_eq!(summary.unwound_blocks, 3, "{summary:?}");
    for n in 0..=8 {
        assert_eq!(
            store.block(chain, n).expect("block").map(|b| b.hash),
            Some(src.block_ref(n).await.expect("node").hash),
            "block {n}"
        );
    }
    for (i, t) in first.iter().enumerate() {
        let kept = !store
            .transfers(chain, TransferQuery::Tx { tx_hash: t.0 }, 10)
            .expect("q")
            .is_empty();
        assert_eq!(
            kept,
            i < 5,
            "tx {i} of 8: orphaned transfers must be gone, the rest kept"
        );
    }
    // Growth after the reorg is ingested normally.
    scenario.eth_sends(2).await.expect("sends");
    let summary = ingest(src, store.clone(), IngestOptions::default()).await;
    assert_eq!((summary.blocks, summary.reorgs), (2, 0));
}

/// Counts node-unavailable events.
#[derive(Default)]
struct Watch(AtomicUsize);
impl Progress for Watch {
    fn node_unavailable(&self, _e: &ChainError, _retry_in: Duration) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A TCP proxy in front of the node that can be cut and restored.
struct Proxy {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(port: u16, upstream: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Proxy { port, task }
    }

    /// Cuts every connection and stops listening.
    fn cut(self) -> u16 {
        self.task.abort();
        self.port
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_goes_away_is_waited_for_then_resumed() {
    let node = Anvil::spawn().await.expect("anvil");
    let upstream: u16 = node
        .http_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    Scenario::new(&node).eth_sends(4).await.expect("sends");
    let proxy = Proxy::start(0, upstream).await;
    let src = source(&format!("http://127.0.0.1:{}", proxy.port), None).await;
    let chain = src.chain_id();
    let (_dir, store) = embedded();
    let watch = Arc::new(Watch::default());
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let options = IngestOptions {
        follow: true,
        to: Some(10),
        ..IngestOptions::default()
    };
    let run = {
        let (src, store, watch) = (src.clone(), store.clone(), watch.clone());
        tokio::spawn(async move {
            Ingestor::new(src, store, options)
                .run(watch.as_ref(), stop)
                .await
        })
    };
    for _ in 0..100 {
        if store
            .head(chain)
            .expect("head")
            .is_some_and(|h| h.number == 4)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.head(chain).expect("head").map(|h| h.number), Some(4));
    let port = proxy.cut();
    node.mine(6).await.expect("mine");
    for _ in 0..200 {
        if watch.0.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        watch.0.load(Ordering::SeqCst) > 0,
        "the outage was reported"
    );
    assert!(
        !run.is_finished(),
        "ingestion waits for the node instead of exiting"
    );
    let _proxy = Proxy::start(port, upstream).await;
    let summary = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("finishes after the node returns")
        .expect("task")
        .expect("ingests");
    assert_eq!(summary.head, Some(10));
    assert_eq!(store.stats(chain).expect("stats").blocks, 11);
}

/// PostgreSQL restarts while ingestion follows the node into it: the run waits the outage
/// out (the blocks mined meanwhile are written once the database is back) instead of
/// ending with the first failed write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_restart_is_waited_out_then_resumed() {
    if std::env::var_os("HOLDFAST_TEST_SKIP_PG").is_some_and(|v| v == "1") {
        return;
    }
    let node = Anvil::spawn().await.expect("anvil");
    Scenario::new(&node).eth_sends(4).await.expect("sends");
    let pg = Arc::new(
        tokio::task::spawn_blocking(|| TempPostgres::start(false))
            .await
            .expect("joins")
            .expect("PostgreSQL for the test (scripts/install-postgres)"),
    );
    let url = pg.url().to_owned();
    let store =
        tokio::task::spawn_blocking(move || Arc::new(PgStore::connect(&url).expect("connect")))
            .await
            .expect("joins");
    let src = source(&node.http_url(), None).await;
    let chain = src.chain_id();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let options = IngestOptions {
        follow: true,
        to: Some(10),
        ..IngestOptions::default()
    };
    let run = {
        let (src, store) = (src.clone(), store.clone());
        tokio::spawn(async move { Ingestor::new(src, store, options).run(&Quiet, stop).await })
    };
    let head = |store: Arc<PgStore>| async move {
        tokio::task::spawn_blocking(move || store.head(chain).ok().flatten().map(|h| h.number))
            .await
            .expect("joins")
    };
    for _ in 0..200 {
        if head(store.clone()).await == Some(4) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(head(store.clone()).await, Some(4));
    let p = pg.clone();
    tokio::task::spawn_blocking(move || p.stop().expect("stop"))
        .await
        .expect("joins");
    node.mine(6).await.expect("mine");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !run.is_finished(),
        "ingestion waits for the database instead of exiting"
    );
    let p = pg.clone();
    tokio::task::spawn_blocking(move || p.start_again().expect("start"))
        .await
        .expect("joins");
    let summary = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("finishes after the database returns")
        .expect("task")
        .expect("ingests");
    assert_eq!(summary.head, Some(10));
    let stats = tokio::task::spawn_blocking({
        let store = store.clone();
        move || store.stats(chain).expect("stats")
    })
    .await
    .expect("joins");
    assert_eq!(stats.blocks, 11);
    tokio::task::spawn_blocking(move || drop((store, pg)))
        .await
        .expect("joins");
}

/// Following over WebSocket: new heads arrive by subscription and are ingested.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_new_heads_over_websocket() {
    let node = Anvil::spawn().await.expect("anvil");
    Scenario::new(&node).eth_sends(2).await.expect("sends");
    // Polling so slow that only the subscription can deliver the heads in time.
    let mut config = SourceConfig::new(node.ws_url());
    config.poll_interval = Duration::from_secs(120);
    let src = Arc::new(ChainSource::connect(config).await.expect("connects"));
    let chain = src.chain_id();
    let (_dir, store) = embedded();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let options = IngestOptions {
        follow: true,
        to: Some(5),
        ..IngestOptions::default()
    };
    let run = {
        let (src, store) = (src.clone(), store.clone());
        tokio::spawn(async move { Ingestor::new(src, store, options).run(&Quiet, stop).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !run.is_finished(),
        "caught up at block 2, waiting for heads"
    );
    let later = Scenario::new(&node).eth_sends(3).await.expect("sends");
    let summary = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("follows by subscription")
        .expect("task")
        .expect("ingests");
    assert_eq!(summary.head, Some(5));
    for t in &later {
        assert_eq!(
            store
                .transfers(chain, TransferQuery::Tx { tx_hash: t.0 }, 10)
                .expect("q")
                .len(),
            1
        );
    }
}

/// The Bybit mechanism on real Safes: the execTransaction payouts and the attacker's sweep
/// (internal transfers out of the Safe proxies) are stored; the DELEGATECALL that swapped the
/// masterCopy moved no value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_executions_and_the_bybit_sweep_are_ingested() {
    let node = Anvil::spawn().await.expect("anvil");
    let heist = Scenario::new(&node).safe_heist().await.expect("heist");
    let (_dir, store) = embedded();
    let src = source(&node.http_url(), None).await;
    let chain = src.chain_id();
    ingest(src, store.clone(), IngestOptions::default()).await;
    let got = stored(
        store.as_ref(),
        chain,
        heist
            .transfers
            .iter()
            .map(|t| t.0)
            .chain([heist.delegatecall_tx]),
    );
    for t in &heist.transfers {
        assert_eq!(got.get(t), Some(&1), "{t:?} in {got:#?}");
    }
    assert!(
        got.keys().all(|k| k.0 != heist.delegatecall_tx),
        "the masterCopy swap moved nothing"
    );
    let out = store
        .transfers(
            chain,
            TransferQuery::From {
                address: heist.safe_111,
                from_block: 0,
            },
            100,
        )
        .expect("q");
    assert_eq!(
        out.last().map(|t| (t.tx_hash, t.to)),
        Some((heist.sweep_tx, heist.attacker))
    );
}

/// Uniswap V2 through the router (liquidity, ETH->token, token->token, a two-hop swap, a
/// slippage failure) and a 2-of-3 Safe 1.4.1 L2 (payouts, a multisend batch, a failed inner
/// call) then the Bybit takeover of a Safe 1.1.1: every recorded transfer is stored exactly
/// once, conversions are there, failed transactions and reverted frames moved nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_swaps_and_safe_activity_are_ingested_exactly() {
    let node = Anvil::spawn().await.expect("anvil");
    let scenario = Scenario::new(&node);
    let uniswap = scenario
        .uniswap_router()
        .await
        .expect("router activity")
        .record;
    let safes = scenario
        .safe_activity()
        .await
        .expect("safe activity")
        .record;
    let (_dir, store) = embedded();
    let src = source(&node.http_url(), Some(TraceMode::Parity)).await;
    let chain = src.chain_id();
    ingest(src, store.clone(), IngestOptions::default()).await;
    tokio::task::spawn_blocking(move || {
        for record in [uniswap, safes] {
            let mut want: BTreeMap<Key, usize> = BTreeMap::new();
            for t in &record.transfers {
                *want.entry(*t).or_insert(0) += 1;
            }
            let txs: std::collections::BTreeSet<B256> = record
                .transfers
                .iter()
                .map(|t| t.0)
                .chain(record.failed.iter().copied())
                .chain(record.reverted_frames.iter().map(|r| r.0))
                .collect();
            let got = stored(store.as_ref(), chain, txs.iter().copied());
            for (k, n) in &want {
                assert_eq!(got.get(k), Some(n), "expected {k:?} x{n}");
            }
            for tx in &record.failed {
                assert!(
                    got.keys().all(|k| k.0 != *tx),
                    "failed tx {tx} moved something"
                );
            }
            for (tx, from, to, amount) in &record.reverted_frames {
                assert!(
                    !got.contains_key(&(*tx, *from, *to, Asset::Native, *amount)),
                    "reverted frame {from}->{to} stored"
                );
            }
            for (tx, kind, venue, account, amount_in) in &record.conversions {
                let convs = store.conversions_of_tx(chain, *tx).expect("conversions");
                assert!(
                    convs.iter().any(|c| c.kind == *kind
                        && c.venue == *venue
                        && c.account == *account
                        && c.amount_in == *amount_in),
                    "conversion {kind:?} in {tx} missing: {convs:?}"
                );
            }
        }
    })
    .await
    .expect("checks");
}
