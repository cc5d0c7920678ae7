//! A Bitcoin-family chain into the UTXO index, from a real node (litecoind in regtest): the
//! index equals the node's own UTXO set (`gettxoutsetinfo`, `gettxout`) after a backfill,
//! after a reorg the sync unwinds, and after resuming; its address index and fees equal the
//! node's own decoding of its chain; on the embedded store and PostgreSQL.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::B256;
use holdfast_bitcoin::bitcoin::hashes::Hash;
use holdfast_bitcoin::bitcoin::{OutPoint, Txid};
use holdfast_bitcoin::{RpcAuth, RpcConfig, RpcSource};
use holdfast_ingest::bitcoin::{UtxoProgress, key_of, sync_utxo, sync_utxo_with};
use holdfast_store::testing::TempPostgres;
use holdfast_store::utxo::{Direction, EmbeddedUtxoStore, PgUtxoStore, UtxoCounts, UtxoStore};
use holdfast_testkit::Litecoind;
use serde_json::{Value, json};

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

const CHAIN: u64 = 9_002;

fn sats(v: &Value) -> u64 {
    (v.as_f64().expect("amount") * 1e8).round() as u64
}

async fn node_counts(node: &Litecoind) -> UtxoCounts {
    let info = node
        .rpc("gettxoutsetinfo", json!([]))
        .await
        .expect("gettxoutsetinfo");
    UtxoCounts {
        outputs: info["txouts"].as_u64().expect("txouts"),
        total: sats(&info["total_amount"]),
    }
}

async fn head_is_the_nodes(node: &Litecoind, store: &Arc<dyn UtxoStore>) {
    let best: holdfast_bitcoin::bitcoin::BlockHash = node
        .rpc("getbestblockhash", json!([]))
        .await
        .expect("best")
        .as_str()
        .expect("hash")
        .parse()
        .expect("hash");
    let s = store.clone();
    let head = tokio::task::spawn_blocking(move || s.head(CHAIN))
        .await
        .expect("task")
        .expect("head")
        .expect("a head");
    assert_eq!(head.hash, B256::from(best.to_byte_array()));
    assert_eq!(head.number, node.height().await.expect("height"));
}

/// Every confirmed output the wallet holds unspent (the mature ones: listunspent leaves
/// immature coinbases out) is in the index with the node's value and address.
async fn wallet_outputs_are_indexed(node: &Litecoind, store: &Arc<dyn UtxoStore>) {
    let unspent = node
        .wallet_rpc("w", "listunspent", json!([0]))
        .await
        .expect("listunspent");
    let unspent = unspent.as_array().expect("list");
    assert!(unspent.len() > 5, "{unspent:?}");
    for u in unspent {
        let op = OutPoint {
            txid: u["txid"]
                .as_str()
                .expect("txid")
                .parse::<Txid>()
                .expect("txid"),
            vout: u["vout"].as_u64().expect("vout") as u32,
        };
        let (s, key) = (store.clone(), key_of(&op));
        let record = tokio::task::spawn_blocking(move || s.utxo(CHAIN, &key))
            .await
            .expect("task")
            .expect("utxo");
        let record = record.unwrap_or_else(|| panic!("{op} unspent on the node, not in the index"));
        assert_eq!(record.value, sats(&u["amount"]), "{op}");
        assert_eq!(record.address.as_deref(), u["address"].as_str(), "{op}");
    }
}

/// The address index equals what the node's own decoding of its best chain says
/// (`getblock <hash> 2`: each output's address and value, each input's spent output followed
/// back along the chain): every receipt and spend of every address the node names, at its
/// height, position, index and value; and each transaction's stored fee equals the node's (its
/// `getblock` fee where given, else the resolved inputs' values from its own outputs).
async fn address_index_is_the_nodes(node: &Litecoind, store: &Arc<dyn UtxoStore>) {
    type Entry = (u64, u32, Direction, u32, u64);
    let tip = node.height().await.expect("height");
    let mut outputs: HashMap<(String, u64), (Option<String>, u64)> = HashMap::new();
    let mut expected: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    let mut fees: Vec<(String, u64, u64)> = Vec::new();
    for h in 0..=tip {
        let hash = node.rpc("getblockhash", json!([h])).await.expect("hash");
        let block = node.rpc("getblock", json!([hash, 2])).await.expect("block");
        for (pos, tx) in block["tx"].as_array().expect("txs").iter().enumerate() {
            let txid = tx["txid"].as_str().expect("txid").to_owned();
            let mut inputs = 0;
            let mut coinbase = false;
            for (i, vin) in tx["vin"].as_array().expect("vin").iter().enumerate() {
                if vin.get("coinbase").is_some() {
                    coinbase = true;
                    continue;
                }
                let prev = (
                    vin["txid"].as_str().expect("txid").to_owned(),
                    vin["vout"].as_u64().expect("vout"),
                );
                let (address, value) = outputs.get(&prev).cloned().expect("spent output");
                inputs += value;
                if let Some(a) = address {
                    expected.entry(a).or_default().push((
                        h,
                        pos as u32,
                        Direction::Spent,
                        i as u32,
                        value,
                    ));
                }
            }
            let mut outs = 0;
            for (v, vout) in tx["vout"].as_array().expect("vout").iter().enumerate() {
                let spk = &vout["scriptPubKey"];
                let address = spk["address"]
                    .as_str()
                    .or_else(|| spk["addresses"].get(0).and_then(Value::as_str))
                    .map(str::to_owned);
                let value = sats(&vout["value"]);
                outs += value;
                outputs.insert((txid.clone(), v as u64), (address.clone(), value));
                if let Some(a) = address {
                    expected.entry(a).or_default().push((
                        h,
                        pos as u32,
                        Direction::Received,
                        v as u32,
                        value,
                    ));
                }
            }
            if !coinbase {
                fees.push((txid, h, inputs - outs));
            }
        }
    }
    assert!(expected.len() >= 3, "{expected:?}");
    for (address, mut want) in expected {
        want.sort();
        let (s, a) = (store.clone(), address.clone());
        let got = tokio::task::spawn_blocking(move || s.address_transfers(CHAIN, &a, 0, 10_000))
            .await
            .expect("task")
            .expect("transfers");
        let got: Vec<Entry> = got
            .iter()
            .map(|t| (t.height, t.tx_index, t.direction, t.index, t.value))
            .collect();
        assert_eq!(got, want, "{address}");
    }
    for (txid, height, fee) in fees {
        let key = B256::from(txid.parse::<Txid>().expect("txid").to_byte_array());
        let s = store.clone();
        let found = tokio::task::spawn_blocking(move || s.transaction(CHAIN, &key))
            .await
            .expect("task")
            .expect("tx");
        assert_eq!(found.len(), 1, "{txid}");
        assert_eq!(found[0].0, height, "{txid}");
        assert_eq!(found[0].2.fee(), Some(fee), "{txid}");
    }
}

/// The fees the wallet paid (`gettransaction`) equal the stored transactions' fees.
async fn wallet_fees_are_stored(node: &Litecoind, store: &Arc<dyn UtxoStore>, txids: &[String]) {
    for txid in txids {
        let t = node
            .wallet_rpc("w", "gettransaction", json!([txid]))
            .await
            .expect("gettransaction");
        if t["confirmations"].as_i64().unwrap_or(0) < 1 {
            continue;
        }
        let fee = sats(&json!(-t["fee"].as_f64().expect("fee")));
        let key = B256::from(txid.parse::<Txid>().expect("txid").to_byte_array());
        let s = store.clone();
        let found = tokio::task::spawn_blocking(move || s.transaction(CHAIN, &key))
            .await
            .expect("task")
            .expect("tx");
        assert_eq!(found.len(), 1, "{txid}");
        assert_eq!(found[0].2.fee(), Some(fee), "{txid}");
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Event {
    Range(u64, u64),
    Block(u64, u64),
    Reorg(u64, usize),
}

/// Records what a sync reports.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<Event>>);

impl UtxoProgress for Recorder {
    fn range(&self, from: u64, to: u64) {
        self.0.lock().expect("lock").push(Event::Range(from, to));
    }
    fn block(&self, height: u64, txs: u64) {
        self.0.lock().expect("lock").push(Event::Block(height, txs));
    }
    fn reorg(&self, fork: u64, unwound: &[holdfast_primitives::BlockRef]) {
        self.0
            .lock()
            .expect("lock")
            .push(Event::Reorg(fork, unwound.len()));
    }
}

async fn check(store: Arc<dyn UtxoStore>) {
    let node = Litecoind::spawn().await.expect("litecoind");
    node.create_wallet("w").await.expect("wallet");
    let a = node.new_address("w", "bech32").await.expect("address");
    let b = node.new_address("w", "p2sh-segwit").await.expect("address");
    let c = node.new_address("w", "legacy").await.expect("address");
    node.mine(105, &a).await.expect("mine");
    let mut sent = Vec::new();
    for (to, amount) in [(&b, "4"), (&c, "1.5"), (&a, "0.3")] {
        sent.push(node.send("w", to, amount).await.expect("send"));
    }
    node.mine(1, &c).await.expect("mine");
    sent.push(node.send("w", &c, "6").await.expect("send")); // spends change of the block before
    node.mine(1, &b).await.expect("mine");

    let (user, password) = node.user_password().expect("user/password");
    let mut config = RpcConfig::new(
        node.rpc_url(),
        RpcAuth::UserPass {
            user: user.into(),
            password: password.into(),
        },
    );
    config.timeout = Duration::from_secs(20);
    let source = RpcSource::connect(config).await.expect("connect");

    let recorder = Recorder::default();
    let report = sync_utxo_with(&source, &store, CHAIN, None, 10, &recorder)
        .await
        .expect("sync");
    assert_eq!(report.blocks, 108);
    // Blocks 0-96, more than 10 below the tip, in bulk (one call: they hold far fewer than
    // BULK_TXS transactions); 97-107 one by one, with undo records for the reorg below.
    assert_eq!(report.bulk_blocks, 97);
    // Progress: the range first, then every block once, in order, with its transactions.
    let events = std::mem::take(&mut *recorder.0.lock().expect("lock"));
    assert_eq!(events[0], Event::Range(0, 107));
    let blocks: Vec<(u64, u64)> = events[1..]
        .iter()
        .map(|e| match e {
            Event::Block(h, t) => (*h, *t),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        blocks.iter().map(|b| b.0).collect::<Vec<_>>(),
        (0..=107).collect::<Vec<_>>()
    );
    assert_eq!(blocks.iter().map(|b| b.1).sum::<u64>(), report.txs);
    assert!(report.unwound.is_empty());
    let s = store.clone();
    assert_eq!(
        tokio::task::spawn_blocking(move || s.counts(CHAIN))
            .await
            .expect("task")
            .expect("counts"),
        node_counts(&node).await
    );
    head_is_the_nodes(&node, &store).await;
    wallet_outputs_are_indexed(&node, &store).await;
    address_index_is_the_nodes(&node, &store).await;
    wallet_fees_are_stored(&node, &store, &sent).await;

    // The last two blocks replaced by three others; their transactions go back to the
    // mempool and one of them is mined again.
    let old = node.rpc("getblockhash", json!([106])).await.expect("hash");
    node.rpc("invalidateblock", json!([old]))
        .await
        .expect("invalidate");
    node.mine(3, &a).await.expect("mine");
    let report = sync_utxo_with(&source, &store, CHAIN, None, 10, &recorder)
        .await
        .expect("sync after the reorg");
    assert_eq!((report.unwound.len(), report.blocks), (2, 3));
    let events = std::mem::take(&mut *recorder.0.lock().expect("lock"));
    // The stored head is off the node's chain: unwound first, then the new range.
    assert_eq!(events[0], Event::Reorg(105, 2), "{events:?}");
    assert_eq!(events[1], Event::Range(106, 108), "{events:?}");
    assert_eq!(events.len(), 5, "{events:?}");
    assert_eq!(report.unwound[0].number, 106);
    let s = store.clone();
    assert_eq!(
        tokio::task::spawn_blocking(move || s.counts(CHAIN))
            .await
            .expect("task")
            .expect("counts"),
        node_counts(&node).await
    );
    head_is_the_nodes(&node, &store).await;
    wallet_outputs_are_indexed(&node, &store).await;
    address_index_is_the_nodes(&node, &store).await;
    wallet_fees_are_stored(&node, &store, &sent).await;

    // Resuming: nothing to do, then the next block only.
    assert_eq!(
        sync_utxo(&source, &store, CHAIN, None, 10)
            .await
            .expect("resume")
            .blocks,
        0
    );
    node.mine(1, &b).await.expect("mine");
    assert_eq!(
        sync_utxo(&source, &store, CHAIN, None, 10)
            .await
            .expect("resume")
            .blocks,
        1
    );
    let s = store.clone();
    assert_eq!(
        tokio::task::spawn_blocking(move || s.counts(CHAIN))
            .await
            .expect("task")
            .expect("counts"),
        node_counts(&node).await
    );
    // The node's chain gets shorter (its tip invalidated, nothing mined): the index follows it
    // down.
    let tip = node.rpc("getbestblockhash", json!([])).await.expect("best");
    node.rpc("invalidateblock", json!([tip]))
        .await
        .expect("invalidate");
    let report = sync_utxo(&source, &store, CHAIN, None, 10)
        .await
        .expect("sync down");
    assert_eq!((report.unwound.len(), report.blocks), (1, 0));
    let s = store.clone();
    assert_eq!(
        tokio::task::spawn_blocking(move || s.counts(CHAIN))
            .await
            .expect("task")
            .expect("counts"),
        node_counts(&node).await
    );
    head_is_the_nodes(&node, &store).await;
    address_index_is_the_nodes(&node, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litecoind_into_the_embedded_utxo_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn UtxoStore> = Arc::new(EmbeddedUtxoStore::open(dir.path()).expect("open"));
    check(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litecoind_into_the_postgres_utxo_index() {
    let pg =
        TempPostgres::start(false).expect("PostgreSQL for the test (scripts/install-postgres)");
    let url = pg.url().to_owned();
    let store: Arc<dyn UtxoStore> = Arc::new(
        tokio::task::spawn_blocking(move || PgUtxoStore::connect(&url).expect("connect"))
            .await
            .expect("task"),
    );
    check(store.clone()).await;
    drop(store);
}

/// Following the node: new blocks arrive in the index; the node killed and restarted
/// mid-run is waited for, not given up on; the follower stops when asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_waits_out_a_node_outage() {
    use holdfast_ingest::bitcoin::{FollowOptions, follow_utxo};

    let mut node = Litecoind::spawn().await.expect("litecoind");
    node.create_wallet("w").await.expect("wallet");
    let a = node.new_address("w", "bech32").await.expect("address");
    node.mine(101, &a).await.expect("mine");
    let (user, password) = node.user_password().expect("user/password");
    let mut config = RpcConfig::new(
        node.rpc_url(),
        RpcAuth::UserPass {
            user: user.into(),
            password: password.into(),
        },
    );
    config.timeout = Duration::from_secs(5);
    config.max_retries = 0;
    let source = RpcSource::connect(config).await.expect("connect");
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn UtxoStore> = Arc::new(EmbeddedUtxoStore::open(dir.path()).expect("open"));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let follower = {
        let store = store.clone();
        tokio::spawn(async move {
            let options = FollowOptions {
                poll_interval: Duration::from_millis(100),
                max_backoff: Duration::from_millis(500),
                ..FollowOptions::default()
            };
            follow_utxo(&source, &store, CHAIN, &options, stop_rx, |_| {}).await
        })
    };
    let head = |store: Arc<dyn UtxoStore>| async move {
        tokio::task::spawn_blocking(move || s_head(&*store))
            .await
            .expect("task")
    };
    let wait_for = |height: u64| {
        let store = store.clone();
        async move {
            for _ in 0..200 {
                if head(store.clone()).await == Some(height) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("the index did not reach block {height}");
        }
    };
    wait_for(101).await;
    // gettxoutsetinfo flushes the node's chain state, so it comes back at the same tip.
    node_counts(&node).await;
    node.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !follower.is_finished(),
        "the follower gave up on a node outage"
    );
    node.restart().await.expect("restart");
    node.rpc("loadwallet", json!(["w"]))
        .await
        .expect("loadwallet");
    let b = node.new_address("w", "legacy").await.expect("address");
    node.mine(3, &b).await.expect("mine");
    let tip = node.height().await.expect("height");
    assert_eq!(tip, 104);
    wait_for(tip).await;
    let s = store.clone();
    assert_eq!(
        tokio::task::spawn_blocking(move || s.counts(CHAIN))
            .await
            .expect("task")
            .expect("counts"),
        node_counts(&node).await
    );
    stop_tx.send(true).expect("stop");
    let total = follower.await.expect("task").expect("follow");
    assert_eq!((total.blocks, total.unwound.len()), (105, 0));
}

fn s_head(store: &dyn UtxoStore) -> Option<u64> {
    store.head(CHAIN).expect("head").map(|h| h.number)
}

/// Clusters from a real node: a consolidation of two addresses' outputs merges them; a
/// CoinJoin-like transaction (three owners' inputs, three equal outputs) merges none; the
/// block holding both invalidated, the index follows the node down and the merge is gone;
/// reconsidered, it is back.
async fn clusters_on_the_node(store: Arc<dyn UtxoStore>) {
    let node = Litecoind::spawn().await.expect("litecoind");
    node.create_wallet("w").await.expect("wallet");
    let miner = node.new_address("w", "bech32").await.expect("address");
    node.mine(101, &miner).await.expect("mine");
    let mut addrs = Vec::new();
    for _ in 0..5 {
        addrs.push(node.new_address("w", "bech32").await.expect("address"));
    }
    // One payment to all five (separate sends could spend each other's unconfirmed outputs).
    let mut pay = serde_json::Map::new();
    for (a, amount) in addrs.iter().zip([1.0, 1.0, 0.5, 0.5, 0.5]) {
        pay.insert(a.clone(), json!(amount));
    }
    node.wallet_rpc("w", "sendmany", json!(["", pay]))
        .await
        .expect("sendmany");
    node.mine(1, &miner).await.expect("mine");
    let (p, q, r, s, t) = (&addrs[0], &addrs[1], &addrs[2], &addrs[3], &addrs[4]);
    let dest = node.new_address("w", "bech32").await.expect("address");
    spend_exactly(
        &node,
        &[output_of(&node, p).await, output_of(&node, q).await],
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
    let coinjoin = spend_exactly(
        &node,
        &[
            output_of(&node, r).await,
            output_of(&node, s).await,
            output_of(&node, t).await,
        ],
        Value::Object(mixed),
    )
    .await;
    node.mine(1, &miner).await.expect("mine");

    let (user, password) = node.user_password().expect("user/password");
    let config = RpcConfig::new(
        node.rpc_url(),
        RpcAuth::UserPass {
            user: user.into(),
            password: password.into(),
        },
    );
    let source = RpcSource::connect(config).await.expect("connect");
    let cluster = |a: &String| {
        let (st, a) = (store.clone(), a.clone());
        async move {
            tokio::task::spawn_blocking(move || st.cluster(CHAIN, &a))
                .await
                .expect("task")
                .expect("cluster")
        }
    };
    sync_utxo(&source, &store, CHAIN, None, 10)
        .await
        .expect("sync");
    assert_eq!(cluster(p).await, cluster(q).await);
    assert_eq!(cluster(p).await.size, 2);
    for x in [r, s, t] {
        assert_eq!(cluster(x).await.size, 1, "{x} merged by the CoinJoin");
    }
    let key = B256::from(coinjoin.parse::<Txid>().expect("txid").to_byte_array());
    let st = store.clone();
    let stored = tokio::task::spawn_blocking(move || st.transaction(CHAIN, &key))
        .await
        .expect("task")
        .expect("tx");
    assert!(holdfast_store::utxo::is_coinjoin(&stored[0].2));

    // The block with both transactions invalidated: the index follows the node down.
    let tip = node.rpc("getbestblockhash", json!([])).await.expect("best");
    node.rpc("invalidateblock", json!([tip.clone()]))
        .await
        .expect("invalidate");
    let report = sync_utxo(&source, &store, CHAIN, None, 10)
        .await
        .expect("down");
    assert_eq!(report.unwound.len(), 1);
    assert_eq!(cluster(p).await.size, 1);
    assert_ne!(cluster(p).await, cluster(q).await);
    node.rpc("reconsiderblock", json!([tip]))
        .await
        .expect("reconsider");
    sync_utxo(&source, &store, CHAIN, None, 10)
        .await
        .expect("back");
    assert_eq!(cluster(p).await, cluster(q).await);
    assert_eq!(cluster(q).await.size, 2);
    assert_eq!(cluster(r).await.size, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_on_litecoind_embedded() {
    let dir = tempfile::tempdir().expect("tempdir");
    clusters_on_the_node(Arc::new(EmbeddedUtxoStore::open(dir.path()).expect("open"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_on_litecoind_postgres() {
    let pg = TempPostgres::start(false).expect("PostgreSQL (scripts/install-postgres)");
    let url = pg.url().to_owned();
    let store: Arc<dyn UtxoStore> = Arc::new(
        tokio::task::spawn_blocking(move || PgUtxoStore::connect(&url).expect("connect"))
            .await
            .expect("task"),
    );
    clusters_on_the_node(store.clone()).await;
    drop(store);
}

/// Every block of the index at heights `0..=tip`: its reference and transactions.
fn index_blocks(
    store: &dyn UtxoStore,
    tip: u64,
) -> Vec<(
    holdfast_primitives::BlockRef,
    Vec<holdfast_store::utxo::TxRecord>,
)> {
    (0..=tip)
        .map(|h| {
            (
                store.block(CHAIN, h).expect("block").expect("stored"),
                store.block_transactions(CHAIN, h).expect("transactions"),
            )
        })
        .collect()
}

/// A stopped node's blocks directory (its `blk*.dat` files, holding the blocks a reorg
/// dropped beside the best chain) gives the same index as ingesting from the node over RPC:
/// every block, transaction, unspent output and count; resuming adds nothing; an index whose
/// head is on a branch the directory's best chain left is refused, naming both blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocks_directory_gives_the_index_the_node_gives() {
    use holdfast_bitcoin::blkdir::BlocksDir;
    use holdfast_ingest::bitcoin::{
        BitcoinIngestError, NoProgress, sync_utxo_from_dir, sync_utxo_from_dir_in,
    };

    let mut node = Litecoind::spawn().await.expect("litecoind");
    node.create_wallet("w").await.expect("wallet");
    let a = node.new_address("w", "bech32").await.expect("address");
    let b = node.new_address("w", "p2sh-segwit").await.expect("address");
    let c = node.new_address("w", "legacy").await.expect("address");
    node.mine(105, &a).await.expect("mine");
    for (to, amount) in [(&b, "4"), (&c, "1.5"), (&a, "0.3")] {
        node.send("w", to, amount).await.expect("send");
    }
    node.mine(1, &c).await.expect("mine");
    node.send("w", &c, "6").await.expect("send");
    node.mine(1, &b).await.expect("mine");
    let (user, password) = node.user_password().expect("user/password");
    let mut config = RpcConfig::new(
        node.rpc_url(),
        RpcAuth::UserPass {
            user: user.into(),
            password: password.into(),
        },
    );
    config.timeout = Duration::from_secs(20);
    let source = RpcSource::connect(config).await.expect("connect");
    // An index that followed the chain before the reorg below (head: the dropped block 107).
    let dir = tempfile::tempdir().expect("tempdir");
    let before: Arc<dyn UtxoStore> =
        Arc::new(EmbeddedUtxoStore::open(&dir.path().join("before")).expect("open"));
    sync_utxo(&source, &before, CHAIN, None, 10)
        .await
        .expect("sync");
    // Blocks 106 and 107 replaced by three others (they stay in the block files).
    let old = node.rpc("getblockhash", json!([106])).await.expect("hash");
    node.rpc("invalidateblock", json!([old]))
        .await
        .expect("invalidate");
    node.mine(3, &a).await.expect("mine");
    node.send("w", &b, "2").await.expect("send");
    node.mine(1, &a).await.expect("mine");
    let tip = node.height().await.expect("height");
    assert_eq!(tip, 109);
    let rpc_index = Arc::new(EmbeddedUtxoStore::open(&dir.path().join("rpc")).expect("open"));
    let by_rpc: Arc<dyn UtxoStore> = rpc_index.clone();
    sync_utxo(&source, &by_rpc, CHAIN, None, 10)
        .await
        .expect("sync");
    let counts = node_counts(&node).await;
    // Stopped, so that nothing writes the files while they are read.
    drop(source);
    node.stop().await.expect("stop");

    let blocks_dir = node.datadir().join("regtest/blocks");
    let by_dir_path = dir.path().join("dir");
    let per_block_path = dir.path().join("per-block");
    let (blocks, by_dir, per_block, report, again, refused) =
        tokio::task::spawn_blocking(move || {
            let blocks = BlocksDir::open(&blocks_dir).expect("blocks directory");
            let by_dir = EmbeddedUtxoStore::open(&by_dir_path).expect("open");
            let report = sync_utxo_from_dir(&blocks, &by_dir, CHAIN, None, 10, &NoProgress)
                .expect("from dir");
            let again =
                sync_utxo_from_dir(&blocks, &by_dir, CHAIN, None, 10, &NoProgress).expect("resume");
            let refused = sync_utxo_from_dir(&blocks, &*before, CHAIN, None, 10, &NoProgress)
                .expect_err("a head off the directory's best chain");
            // A bulk call per block up to the tip's parent: each written while the next is
            // gathered, which may spend what the one being written creates (the wallet's
            // sends spend its change).
            let per_block = EmbeddedUtxoStore::open(&per_block_path).expect("open");
            let r = sync_utxo_from_dir_in(&blocks, &per_block, CHAIN, (None, 0), 1, &NoProgress)
                .expect("a call per block");
            assert_eq!(r.bulk_blocks, blocks.len() - 1);
            (blocks, by_dir, per_block, report, again, refused)
        })
        .await
        .expect("task");
    assert_eq!(
        blocks.network(),
        holdfast_bitcoin::Network::LitecoinRegtest,
        "the network is the genesis block's"
    );
    assert_eq!(blocks.len(), tip + 1);
    assert_eq!(blocks.off_chain(), 2, "the two blocks the reorg dropped");
    assert_eq!((report.blocks, report.bulk_blocks), (tip + 1, tip - 10));
    assert_eq!(again.blocks, 0, "resuming adds nothing");
    assert!(
        matches!(
            refused,
            BitcoinIngestError::NotOnDirChain { height: 107, .. }
        ),
        "{refused}"
    );
    assert!(refused.to_string().contains("block 107"), "{refused}");
    assert_eq!(by_dir.counts(CHAIN).expect("counts"), counts);
    assert_eq!(per_block.counts(CHAIN).expect("counts"), counts);
    assert_eq!(
        index_blocks(&per_block, tip),
        index_blocks(&*by_rpc, tip),
        "a call per block, each written while the next is gathered"
    );
    assert_eq!(
        index_blocks(&by_dir, tip),
        index_blocks(&*by_rpc, tip),
        "every block and transaction as over RPC"
    );
    for address in [&a, &b, &c] {
        assert_eq!(
            by_dir
                .address_transfers(CHAIN, address, 0, 10_000)
                .expect("by dir"),
            by_rpc
                .address_transfers(CHAIN, address, 0, 10_000)
                .expect("by rpc"),
            "{address}"
        );
    }
    // Byte for byte the index RPC ingestion wrote (the last 10 blocks' undo records, written
    // one by one there and in bulk here, included), but the bulk writes' mark.
    let unmarked = |s: &EmbeddedUtxoStore| {
        let mut c = s.contents().expect("contents");
        for (space, entries) in &mut c {
            if *space == "utxo.coins" {
                entries.retain(|(k, _)| !k.ends_with(&[0xff; 36]));
            }
        }
        c
    };
    assert_eq!(unmarked(&by_dir), unmarked(&rpc_index));
    // So a node can unwind the directory's last 10 blocks as it would its own, no further.
    let deepest = (tip - 10) as u64;
    for index in [&by_dir, &*rpc_index] {
        let e = index
            .unwind_above(CHAIN, deepest - 2)
            .expect_err("below the undo records");
        assert!(e.to_string().contains("undo record was pruned"), "{e}");
        let unwound = index.unwind_above(CHAIN, deepest - 1).expect("unwind");
        assert_eq!(unwound.len(), 11);
    }
    assert_eq!(
        by_dir.contents().expect("contents"),
        rpc_index.contents().expect("contents")
    );
}
