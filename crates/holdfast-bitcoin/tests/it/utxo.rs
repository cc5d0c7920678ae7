//! Connecting and disconnecting real blocks against a UTXO set: btcd's fork set reorganised,
//! rust-bitcoinkernel's regtest chain connected and unwound, the BIP30 replacement, and a real
//! node's `gettxoutsetinfo` through a reorg.

use std::time::Duration;

use holdfast_bitcoin::bitcoin::hashes::Hash;
use holdfast_bitcoin::bitcoin::{OutPoint, Txid};
use holdfast_bitcoin::blkfile::BlkFile;
use holdfast_bitcoin::utxo::{BlockChanges, ConnectError, MemoryUtxoSet, UtxoStats, connect};
use holdfast_bitcoin::{Block, Network, RpcAuth, RpcConfig, RpcSource};
use holdfast_testkit::Litecoind;
use serde_json::json;

use crate::read;

fn btcd(file: &str) -> Vec<Block> {
    let bytes = read(&format!("btcd/{file}"));
    BlkFile::new(file, &bytes, Network::Bitcoin)
        .map(|f| Block::from_raw(Network::Bitcoin, f.expect("frame").bytes, None).expect("block"))
        .collect()
}

fn txid(hex: &str) -> Txid {
    hex.parse().expect("txid")
}

/// Connects `blocks` from `height` on, returning each block's changes.
fn connect_all(set: &mut MemoryUtxoSet, blocks: &mut [Block], height: u64) -> Vec<BlockChanges> {
    blocks
        .iter_mut()
        .enumerate()
        .map(|(i, b)| {
            let changes = connect(b, height + i as u64, set).expect("connects");
            set.apply(&changes);
            changes
        })
        .collect()
}

#[test]
fn btcds_reorg_unwound_gives_the_set_of_the_winning_branch() {
    let mut main = btcd("blk_0_to_4.dat");
    let mut side: Vec<Block> = ["blk_3A.dat", "blk_4A.dat", "blk_5A.dat"]
        .iter()
        .flat_map(|f| btcd(f))
        .collect();

    // The winning branch connected directly: 0, 1, 2, 3A, 4A, 5A.
    let mut direct = MemoryUtxoSet::new();
    connect_all(&mut direct, &mut main[..3].to_vec(), 0);
    connect_all(&mut direct, &mut side.clone(), 3);

    // As a node sees it: 0..4, then 4 and 3 unwound, then 3A, 4A, 5A.
    let mut set = MemoryUtxoSet::new();
    let changes = connect_all(&mut set, &mut main, 0);
    assert_eq!(
        changes[0].created,
        [],
        "the genesis coinbase never enters the set"
    );
    let payment = OutPoint {
        txid: txid("509866fa6b6a33190bbf03473bc798adad72d08418832e7b391fb95a71fdc42c"),
        vout: 0,
    };
    assert_eq!(
        set.get(&payment)
            .and_then(|u| u.output.address.clone())
            .as_deref(),
        Some("1JyMKvPHkrCQd8jQrqTR1rBsAd1VpRhTiE")
    );
    let before_3 = {
        let mut s = MemoryUtxoSet::new();
        connect_all(&mut s, &mut main[..3].to_vec(), 0);
        s
    };
    set.revert(&changes[4]);
    set.revert(&changes[3]);
    assert_eq!(
        set, before_3,
        "unwinding 4 and 3 restores the set after block 2 exactly"
    );
    connect_all(&mut set, &mut side, 3);
    assert_eq!(set, direct);
    // The 10 BTC now went to 1NiEGX… instead; the conflicting payment is gone.
    assert_eq!(set.get(&payment), None);
    let conflict = OutPoint {
        txid: txid("c4d8535471dded0c0a48ed5e5e421340112b2ae8073ee013b1230e8030e9d648"),
        vout: 0,
    };
    let utxo = set.get(&conflict).expect("unspent");
    assert_eq!(
        (
            utxo.height,
            utxo.output.value,
            utxo.output.address.as_deref()
        ),
        (
            3,
            10 * 100_000_000,
            Some("1NiEGXeURREqqMjCvjCeZn6SwEBZ9AdVet")
        )
    );
    // Inputs are resolved by connecting: 3A's spend of 29c25cf0:0 carries its 10 BTC.
    let spend = side[0]
        .txs
        .iter()
        .find(|t| t.txid == conflict.txid)
        .expect("tx");
    assert_eq!(spend.fee(), Some(0));
}

#[test]
fn a_block_whose_inputs_are_not_in_the_set_is_refused_whole() {
    let mut main = btcd("blk_0_to_4.dat");
    let mut set = MemoryUtxoSet::new();
    connect_all(&mut set, &mut main[..2], 0);
    let snapshot = set.clone();
    let before = main[3].clone();
    // Block 3 on the set after block 1: its inputs spend block 2's outputs.
    let e = connect(&mut main[3], 3, &set).expect_err("missing");
    assert!(
        matches!(e, ConnectError::MissingInput { height: 3, .. }),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.starts_with("block 3 (00000000bc358930"), "{msg}");
    assert!(
        msg.contains("spends 29c25cf0ca03c7b3a0c001bd02e479c2d50f60119463c81d5bd24bdeaaca477f:"),
        "{msg}"
    );
    assert_eq!(main[3], before, "nothing resolved");
    assert_eq!(set, snapshot);
}

#[test]
fn the_regtest_chain_connects_and_unwinds_to_nothing() {
    let text = String::from_utf8(read("bitcoinkernel/block_data.txt")).expect("utf-8");
    let mut blocks: Vec<Block> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            Block::from_raw(
                Network::BitcoinRegtest,
                &hex::decode(l.trim()).expect("hex"),
                Some(i as u64 + 1),
            )
            .expect("block")
        })
        .collect();
    let mut set = MemoryUtxoSet::new();
    let changes = connect_all(&mut set, &mut blocks, 1);
    // Every coin minted is in the set except the fees, which the coinbases took back.
    let minted: u64 = blocks.iter().map(Block::coinbase_value).sum();
    let fees: u64 = blocks.iter().map(|b| b.fees().expect("resolved")).sum();
    // 462 outputs, of which 206 are the coinbases' witness commitments (OP_RETURN, never in
    // the set), 26 spent; the coinbase subsidy halves at height 150 on regtest.
    assert_eq!(
        set.stats(),
        UtxoStats {
            outputs: 462 - 206 - 26,
            total: minted - fees
        }
    );
    assert_eq!(minted - fees, (149 * 50 + 57 * 25) * 100_000_000);
    let spent: usize = changes.iter().map(|c| c.spent.len()).sum();
    let created: usize = changes.iter().map(|c| c.created.len()).sum();
    assert_eq!((spent, created), (26, set.len() + 26));
    for c in changes.iter().rev() {
        set.revert(c);
    }
    assert!(set.is_empty());
}

/// The two 2010 coinbases with the same txid (BIP30): the second replaces the first, and
/// unwinding the second restores it.
#[test]
fn a_duplicate_coinbase_replaces_and_the_undo_restores() {
    let dir = "bitcoin-etl/test_export_blocks_job/bitcoin_cash/block_with_duplicate_txid";
    let raw: serde_json::Value = serde_json::from_slice(&read(&format!(
        "{dir}/rpc_response_getrawtransaction_e3bf3d07d4b0375638d5f1db5255fe07ba2c4cb067cd81b84ee974b6585fb468.json"
    )))
    .expect("json");
    let tx: holdfast_bitcoin::bitcoin::Transaction =
        holdfast_bitcoin::bitcoin::consensus::deserialize(
            &hex::decode(raw["hex"].as_str().expect("hex")).expect("hex"),
        )
        .expect("tx");
    let block = |prev: holdfast_bitcoin::bitcoin::BlockHash, time: u32| {
        let mut b = holdfast_bitcoin::bitcoin::Block {
            header: holdfast_bitcoin::bitcoin::block::Header {
                version: holdfast_bitcoin::bitcoin::block::Version::ONE,
                prev_blockhash: prev,
                merkle_root: holdfast_bitcoin::bitcoin::TxMerkleNode::all_zeros(),
                time,
                bits: holdfast_bitcoin::bitcoin::CompactTarget::from_consensus(0x1d00ffff),
                nonce: 0,
            },
            txdata: vec![tx.clone()],
        };
        b.header.merkle_root = b.compute_merkle_root().expect("root");
        Block::from_bitcoin(Network::Bitcoin, &b, None).expect("block")
    };
    let mut first = block(holdfast_bitcoin::bitcoin::BlockHash::all_zeros(), 1);
    let mut second = block(first.hash, 2);
    let mut set = MemoryUtxoSet::new();
    let c1 = connect(&mut first, 91_722, &set).expect("first");
    set.apply(&c1);
    let c2 = connect(&mut second, 91_880, &set).expect("second");
    assert_eq!(c2.replaced.len(), 1);
    assert_eq!(c2.replaced[0].1.height, 91_722);
    set.apply(&c2);
    let op = c1.created[0].0;
    assert_eq!(
        (set.len(), set.get(&op).map(|u| u.height)),
        (1, Some(91_880))
    );
    set.revert(&c2);
    assert_eq!(
        (set.len(), set.get(&op).map(|u| u.height)),
        (1, Some(91_722))
    );
}

async fn node_stats(node: &Litecoind) -> UtxoStats {
    let info = node
        .rpc("gettxoutsetinfo", json!([]))
        .await
        .expect("gettxoutsetinfo");
    UtxoStats {
        outputs: info["txouts"].as_u64().expect("txouts"),
        total: (info["total_amount"].as_f64().expect("total") * 1e8).round() as u64,
    }
}

/// The set built from the blocks read over RPC equals the node's own (`gettxoutsetinfo`: count
/// and total), before and after a reorg followed by unwinding to the fork point.
#[tokio::test(flavor = "multi_thread")]
async fn the_set_equals_the_nodes_through_a_reorg() {
    let node = Litecoind::spawn().await.expect("litecoind");
    node.create_wallet("w").await.expect("wallet");
    let a = node.new_address("w", "bech32").await.expect("address");
    let b = node.new_address("w", "p2sh-segwit").await.expect("address");
    node.mine(110, &a).await.expect("mine");
    for (to, amount) in [(&b, "3"), (&a, "1.5"), (&b, "0.25")] {
        node.send("w", to, amount).await.expect("send");
    }
    node.mine(1, &a).await.expect("mine");
    node.send("w", &b, "7").await.expect("send");
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
    let mut set = MemoryUtxoSet::new();
    let mut applied: Vec<BlockChanges> = Vec::new();
    let tip = source.chain_info().await.expect("info").blocks;
    for height in 0..=tip {
        let mut block = source.block_at(height).await.expect("block");
        let changes = connect(&mut block, height, &set).expect("connects");
        set.apply(&changes);
        applied.push(changes);
    }
    assert_eq!(set.stats(), node_stats(&node).await);

    // Replace the last two blocks (with their transactions back in the mempool) by three.
    let fork = tip - 2;
    let old = source.block_hash(fork + 1).await.expect("hash");
    node.rpc("invalidateblock", json!([old.to_string()]))
        .await
        .expect("invalidate");
    node.mine(3, &b).await.expect("mine");
    // Follow as the ingestor will: unwind above the highest height whose hash did not change.
    let mut height = applied.len() as u64 - 1;
    while source.block_hash(height).await.ok() != Some(applied[height as usize].hash) {
        let changes = applied.pop().expect("above the fork");
        set.revert(&changes);
        height -= 1;
    }
    assert_eq!(height, fork);
    let new_tip = source.chain_info().await.expect("info").blocks;
    for height in fork + 1..=new_tip {
        let mut block = source.block_at(height).await.expect("block");
        let changes = connect(&mut block, height, &set).expect("connects");
        set.apply(&changes);
        applied.push(changes);
    }
    assert_eq!(set.stats(), node_stats(&node).await);
}
