//! bitcoin-etl exports into the UTXO store's transaction and address index. The fixtures are
//! bitcoin-etl's own (holdfast-bitcoin's `tests/fixtures/bitcoin-etl/`, provenance in its
//! README): real mainnet blocks as Bitcoin Core answered `getblock`, and what bitcoin-etl
//! exported from them. The same blocks rebuilt from Core's answers (each transaction's raw
//! hex), their inputs resolved from Core's `getrawtransaction` answers and turned into records
//! as ingestion does, must give exactly the records the export gives, and the same answers per
//! address on both backends; damaged exports are refused naming file, line, field and value.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use holdfast_bitcoin::bitcoin::block::{Header, Version};
use holdfast_bitcoin::bitcoin::consensus::{deserialize, serialize};
use holdfast_bitcoin::bitcoin::{
    BlockHash, CompactTarget, OutPoint, Transaction, TxMerkleNode, VarInt,
};
use holdfast_bitcoin::{Block, Network, Output};
use holdfast_ingest::bitcoin::{block_ref, store_transactions};
use holdfast_ingest::bitcoin_etl::{EtlBlock, EtlError, read_export};
use holdfast_store::testing::TempPostgres;
use holdfast_store::utxo::{EmbeddedUtxoStore, PgUtxoStore, UtxoStore};
use serde_json::Value;

fn case(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../holdfast-bitcoin/tests/fixtures/bitcoin-etl/test_export_blocks_job")
        .join(name)
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
}

fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    v.sort();
    v
}

/// The blocks of a case rebuilt from Core's `getblock` answers (header fields, each
/// transaction's hex), inputs resolved from its `getrawtransaction` answers, as records.
fn from_raw_blocks(dir: &Path) -> Vec<EtlBlock> {
    let parents: HashMap<OutPoint, Output> = files(dir, "rpc_response_getrawtransaction_")
        .iter()
        .flat_map(|p| {
            let hex = json(p)["hex"].as_str().expect("hex").to_owned();
            let tx: Transaction = deserialize(&hex::decode(hex).expect("hex")).expect("tx");
            let txid = tx.compute_txid();
            tx.output.into_iter().enumerate().map(move |(vout, o)| {
                (
                    OutPoint {
                        txid,
                        vout: vout as u32,
                    },
                    Output::new(o.value.to_sat(), o.script_pubkey, Network::Bitcoin),
                )
            })
        })
        .collect();
    let mut out = Vec::new();
    for path in files(dir, "rpc_response_getblock_") {
        if path.to_string_lossy().ends_with("_None.json") {
            continue; // bitcoin-etl's stub tip (see holdfast-bitcoin's etl tests)
        }
        let a = json(&path);
        let hash = |k: &str| a[k].as_str().map_or("00".repeat(32), str::to_owned);
        let header = Header {
            version: Version::from_consensus(a["version"].as_i64().expect("version") as i32),
            prev_blockhash: hash("previousblockhash")
                .parse::<BlockHash>()
                .expect("prev"),
            merkle_root: hash("merkleroot").parse::<TxMerkleNode>().expect("root"),
            time: a["time"].as_u64().expect("time") as u32,
            bits: CompactTarget::from_consensus(
                u32::from_str_radix(a["bits"].as_str().expect("bits"), 16).expect("bits"),
            ),
            nonce: a["nonce"].as_u64().expect("nonce") as u32,
        };
        let txs = a["tx"].as_array().expect("tx");
        let mut bytes = serialize(&header);
        bytes.extend(serialize(&VarInt(txs.len() as u64)));
        for tx in txs {
            bytes.extend(hex::decode(tx["hex"].as_str().expect("hex")).expect("hex"));
        }
        let height = a["height"].as_u64().expect("height");
        let mut block = Block::from_raw(Network::Bitcoin, &bytes, Some(height)).expect("block");
        assert_eq!(block.hash.to_string(), a["hash"].as_str().expect("hash"));
        block
            .resolve_inputs(|op| parents.get(op).cloned())
            .expect("resolved");
        let mut b = block_ref(&block, height);
        b.parent_hash = Default::default(); // bitcoin-etl's blocks name no parent
        out.push(EtlBlock {
            block: b,
            transactions: store_transactions(&block).expect("every input resolved"),
        });
    }
    out.sort_by_key(|b| b.block.number);
    out
}

fn export(dir: &Path) -> Result<Vec<EtlBlock>, EtlError> {
    read_export(
        Network::Bitcoin,
        &dir.join("expected_blocks.json"),
        &dir.join("expected_transactions.json"),
    )
}

/// Imports both into `store` (two chain ids) and compares every address's answers.
fn same_answers(store: &dyn UtxoStore, imported: &[EtlBlock], raw: &[EtlBlock]) -> usize {
    let (a, b) = (1_001, 2_001);
    for (chain, blocks) in [(a, imported), (b, raw)] {
        for e in blocks {
            store
                .import_block(chain, &e.block, &e.transactions)
                .expect("import");
        }
    }
    let addresses: BTreeSet<&str> = imported
        .iter()
        .flat_map(|e| &e.transactions)
        .flat_map(|t| {
            t.inputs
                .iter()
                .filter_map(|i| i.address.as_deref())
                .chain(t.outputs.iter().filter_map(|o| o.address.as_deref()))
        })
        .collect();
    for addr in &addresses {
        let x = store.address_transfers(a, addr, 0, 1000).expect("a");
        assert!(!x.is_empty(), "{addr}");
        assert_eq!(
            x,
            store.address_transfers(b, addr, 0, 1000).expect("b"),
            "{addr}"
        );
    }
    for e in imported {
        assert_eq!(
            store.block_transactions(a, e.block.number).expect("a"),
            store.block_transactions(b, e.block.number).expect("b")
        );
    }
    addresses.len()
}

#[test]
fn bitcoin_etl_exports_equal_the_raw_blocks_on_both_backends() {
    let dir = case("bitcoin/stream_50001_50002");
    let imported = export(&dir).expect("the enriched export");
    let raw = from_raw_blocks(&dir);
    assert_eq!(
        imported.iter().map(|b| b.block.number).collect::<Vec<_>>(),
        vec![50_001, 50_002]
    );
    // Record for record: txids, inputs (spent outpoint, value, address), outputs (value,
    // script, address), coinbase flags.
    assert_eq!(imported, raw);
    // The two-input transaction: 2 × 50 BTC in, 100 BTC out, fee 0 (bitcoin-etl's enriched
    // `fee`), both inputs P2PK with their keys' addresses.
    let t = &imported[0].transactions[1];
    assert_eq!(
        t.txid
            .iter()
            .rev()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        "7940cdde4d713e171849efc6bd89939185be270266c94e92369e3877ad89455a"
    );
    assert_eq!(t.fee(), Some(0));
    assert_eq!(
        t.inputs
            .iter()
            .map(|i| i.address.as_deref())
            .collect::<Vec<_>>(),
        vec![
            Some("1DoQeKfU3dYhN9bxMpFFcVUnufCPDqSPae"),
            Some("1PZMgkF2x161qvfP7dhoWSEEU3SjnQE1m9")
        ]
    );
    // Coinbase-only blocks too.
    for c in [
        "bitcoin/block_0",
        "bitcoin/block_1",
        "bitcoin/block_without_transactions",
    ] {
        assert_eq!(export(&case(c)).expect(c), from_raw_blocks(&case(c)), "{c}");
    }
    let dir_e = tempfile::tempdir().expect("tempdir");
    let embedded = EmbeddedUtxoStore::open(dir_e.path()).expect("open");
    let n = same_answers(&embedded, &imported, &raw);
    assert!(n >= 5, "{n} addresses");
    let pg = TempPostgres::start(false).expect("PostgreSQL (scripts/install-postgres)");
    let store = PgUtxoStore::connect(pg.url()).expect("connect");
    assert_eq!(same_answers(&store, &imported, &raw), n);
}

/// Writes `blocks` and `transactions` lines into a directory, for damaged exports.
fn write(dir: &Path, blocks: &str, transactions: &str) -> Result<Vec<EtlBlock>, EtlError> {
    std::fs::write(dir.join("expected_blocks.json"), blocks).expect("write");
    std::fs::write(dir.join("expected_transactions.json"), transactions).expect("write");
    export(dir)
}

#[test]
fn damaged_bitcoin_etl_exports_are_refused_naming_file_line_field_and_value() {
    let src = case("bitcoin/stream_50001_50002");
    let blocks = std::fs::read_to_string(src.join("expected_blocks.json")).expect("blocks");
    let txs = std::fs::read_to_string(src.join("expected_transactions.json")).expect("txs");
    let tmp = tempfile::tempdir().expect("tempdir");
    let refused = |b: &str, t: &str, needle: &str| {
        let e = write(tmp.path(), b, t).expect_err(needle).to_string();
        assert!(e.contains(needle), "expected {needle:?} in {e}");
    };
    // Unenriched inputs (bitcoin-etl's own un-enriched export of the same blocks).
    let plain = case("bitcoin/block_with_transactions");
    let e = export(&plain).expect_err("unenriched").to_string();
    assert!(
        e.contains("expected_transactions.json:2: inputs[0].value: null: the spent output's value: export with the inputs enriched"),
        "{e}"
    );
    // Each damage, on the line and field it is on.
    let line2 = |from: &str, to: &str| {
        let mut lines: Vec<String> = txs.lines().map(str::to_owned).collect();
        assert!(lines[1].contains(from), "{from}");
        lines[1] = lines[1].replacen(from, to, 1);
        lines.join("\n")
    };
    refused(
        &blocks,
        &line2("\"value\": 10000000000}", "\"value\": 10000000001}"),
        ":2: outputs: 10000000001 satoshis out: at most the 10000000000 its inputs spend",
    );
    refused(
        &blocks,
        &line2("\"fee\": 0", "\"fee\": 5"),
        ":2: fee: 5: 0, inputs minus outputs",
    );
    refused(
        &blocks,
        &line2("\"spent_output_index\": 0", "\"spent_output_index\": -1"),
        ":2: inputs[0].spent_output_index: -1: a whole number ≥ 0",
    );
    refused(
        &blocks,
        &line2("\"value\": 5000000000}, {", "\"value\": 50.5}, {"),
        ":2: inputs[0].value: 50.5: a whole number of satoshis",
    );
    refused(
        &blocks,
        &line2(
            "\"addresses\": [\"1HaHTfmvoUW6i6nhJf8jJs6tU4cHNmBQHQ\"]",
            "\"addresses\": [\"1DoQeKfU3dYhN9bxMpFFcVUnufCPDqSPae\"]",
        ),
        ":2: outputs[0].addresses: \"1DoQeKfU3dYhN9bxMpFFcVUnufCPDqSPae\": 1HaHTfmvoUW6i6nhJf8jJs6tU4cHNmBQHQ, the address its script_hex pays",
    );
    refused(
        &blocks,
        &line2(
            "\"addresses\": [\"1DoQeKfU3dYhN9bxMpFFcVUnufCPDqSPae\"]",
            "\"addresses\": [\"1DoQeKfU3dYhN9bxMpFFcVUnufCPDqSPaf\"]",
        ),
        ":2: inputs[0].addresses: \"1DoQeKfU3dYhN9bxMpFFcVUnufCPDqSPaf\"",
    );
    refused(
        &blocks,
        &line2("\"is_coinbase\": false", "\"is_coinbase\": true"),
        ":2: inputs: 2: none for a coinbase",
    );
    refused(
        &blocks,
        &line2("\"index\": 1, \"inputs\"", "\"index\": 0, \"inputs\""),
        "index",
    );
    refused(
        &blocks,
        &line2("\"block_number\": 50001", "\"block_number\": 50003"),
        ":2: block_number: 50003: a block of",
    );
    refused(
        &blocks,
        &line2("\"hash\": \"7940", "\"hash\": \"z940"),
        ":2: hash: \"z940",
    );
    refused(
        &blocks,
        &txs.lines().take(2).collect::<Vec<_>>().join("\n"),
        "expected_blocks.json:1: transaction_count: 3: 2 transactions of block 50001",
    );
    refused(
        &blocks.replacen("\"timestamp\": 1270917100", "\"timestamp\": 1270917101", 1),
        &txs,
        ":1: block_timestamp: 1270917100: 1270917101, block 50001's timestamp",
    );
    refused(
        &blocks,
        &format!("{}\n{{not json", txs.trim_end()),
        ":5: line:",
    );
    refused(
        &format!("{blocks}{}", blocks.lines().next().expect("line")),
        &txs,
        "expected_blocks.json:3: number: 50001: a block listed once (also on line 1)",
    );
}
