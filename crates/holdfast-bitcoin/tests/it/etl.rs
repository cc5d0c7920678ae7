//! bitcoin-etl's fixtures: Bitcoin Core's RPC answers for real mainnet blocks, and what
//! bitcoin-etl exported from them. The block is rebuilt from the answer (header fields and
//! each transaction's `hex`), decoded here, and every transaction, input, output, address,
//! value and (where bitcoin-etl enriched the inputs) fee must equal bitcoin-etl's export.

use std::collections::HashMap;
use std::path::Path;

use holdfast_bitcoin::bitcoin::block::{Header, Version};
use holdfast_bitcoin::bitcoin::consensus::{deserialize, serialize};
use holdfast_bitcoin::bitcoin::{
    BlockHash, CompactTarget, OutPoint, Transaction, TxMerkleNode, VarInt,
};
use holdfast_bitcoin::{Block, BlockError, Network, Output, Tx};
use serde_json::Value;

use crate::fixture;

const CASES: &str = "bitcoin-etl/test_export_blocks_job";

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn files(case: &str, prefix: &str) -> Vec<std::path::PathBuf> {
    let dir = fixture(&format!("{CASES}/{case}"));
    let mut v: Vec<_> = std::fs::read_dir(&dir)
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

/// The consensus bytes of a `getblock` answer: the header from its fields, then each
/// transaction's hex (from the answer, or from `getrawtransaction` answers by txid).
fn raw_block(answer: &Value, raw_txs: &HashMap<String, String>) -> Vec<u8> {
    let hash = |k: &str| -> String { answer[k].as_str().map_or("00".repeat(32), str::to_owned) };
    let header = Header {
        version: Version::from_consensus(answer["version"].as_i64().expect("version") as i32),
        prev_blockhash: hash("previousblockhash")
            .parse::<BlockHash>()
            .expect("prev"),
        merkle_root: hash("merkleroot").parse::<TxMerkleNode>().expect("root"),
        time: answer["time"].as_u64().expect("time") as u32,
        bits: CompactTarget::from_consensus(
            u32::from_str_radix(answer["bits"].as_str().expect("bits"), 16).expect("hex"),
        ),
        nonce: answer["nonce"].as_u64().expect("nonce") as u32,
    };
    let txs = answer["tx"].as_array().expect("tx");
    let mut bytes = serialize(&header);
    bytes.extend(serialize(&VarInt(txs.len() as u64)));
    for tx in txs {
        let hex = match tx {
            Value::String(txid) => raw_txs
                .get(txid)
                .unwrap_or_else(|| panic!("no hex for {txid}"))
                .clone(),
            tx => tx["hex"].as_str().expect("hex").to_owned(),
        };
        bytes.extend(hex::decode(hex).expect("hex"));
    }
    bytes
}

/// `getrawtransaction` answers by txid (the txid checked against the hex).
fn raw_transactions(case: &str) -> HashMap<String, String> {
    files(case, "rpc_response_getrawtransaction_")
        .iter()
        .map(|p| {
            let v = json(p);
            let hex = v["hex"].as_str().expect("hex").to_owned();
            let tx: Transaction = deserialize(&hex::decode(&hex).expect("hex")).expect("tx");
            assert_eq!(
                tx.compute_txid().to_string(),
                v["txid"].as_str().expect("txid")
            );
            (v["txid"].as_str().expect("txid").to_owned(), hex)
        })
        .collect()
}

/// Every block of a case, decoded, with its inputs resolved from the case's
/// `getrawtransaction` answers (bitcoin-etl's enrichment source).
fn blocks(case: &str) -> Vec<Block> {
    let raw_txs = raw_transactions(case);
    let parents: HashMap<OutPoint, Output> = raw_txs
        .values()
        .flat_map(|hex| {
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
    for path in files(case, "rpc_response_getblock_") {
        if path.to_string_lossy().ends_with("_None.json") {
            continue; // the stub tip, see `the_stub_tip_is_refused`
        }
        let answer = json(&path);
        let height = answer["height"].as_u64().expect("height");
        let bytes = raw_block(&answer, &raw_txs);
        let mut block = Block::from_raw(Network::Bitcoin, &bytes, Some(height))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            block.hash.to_string(),
            answer["hash"].as_str().expect("hash")
        );
        let hash_file = fixture(&format!(
            "{CASES}/{case}/rpc_response_getblockhash_{height}.json"
        ));
        assert_eq!(json(&hash_file), Value::String(block.hash.to_string()));
        block
            .resolve_inputs(|op| parents.get(op).cloned())
            .expect("no overspend");
        out.push(block);
    }
    out
}

/// One exported transaction against the model.
fn check_tx(case: &str, block: &Block, index: usize, tx: &Tx, expected: &Value) {
    let at = format!("{case} {}", tx.txid);
    let num = |v: &Value| v.as_u64();
    assert_eq!(
        expected["hash"].as_str(),
        Some(tx.txid.to_string().as_str()),
        "{at}"
    );
    assert_eq!(num(&expected["block_number"]), block.height, "{at}");
    assert_eq!(
        expected["block_hash"].as_str(),
        Some(block.hash.to_string().as_str()),
        "{at}"
    );
    assert_eq!(
        num(&expected["block_timestamp"]),
        Some(u64::from(block.time)),
        "{at}"
    );
    assert_eq!(expected["is_coinbase"].as_bool(), Some(tx.coinbase), "{at}");
    if !expected["index"].is_null() {
        assert_eq!(num(&expected["index"]), Some(index as u64), "{at}");
    }
    assert_eq!(num(&expected["size"]), Some(tx.size as u64), "{at}");
    if !expected["virtual_size"].is_null() {
        assert_eq!(
            num(&expected["virtual_size"]),
            Some(tx.vsize as u64),
            "{at}"
        );
    }
    let outputs = expected["outputs"].as_array().expect("outputs");
    assert_eq!(outputs.len(), tx.outputs.len(), "{at}");
    assert_eq!(
        num(&expected["output_count"]),
        Some(tx.outputs.len() as u64),
        "{at}"
    );
    for (i, (out, exp)) in tx.outputs.iter().zip(outputs).enumerate() {
        assert_eq!(num(&exp["index"]), Some(i as u64), "{at}");
        assert_eq!(
            exp["type"].as_str(),
            Some(out.kind.core_name()),
            "{at} output {i}"
        );
        assert_eq!(
            exp["script_hex"].as_str(),
            Some(hex::encode(out.script.as_bytes()).as_str()),
            "{at} output {i}"
        );
        assert_eq!(num(&exp["value"]), Some(out.value), "{at} output {i}");
        let addresses: Vec<&str> = exp["addresses"]
            .as_array()
            .expect("addresses")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            keys(&addresses),
            keys(&out.address.as_deref().into_iter().collect::<Vec<_>>()),
            "{at} output {i}"
        );
    }
    let inputs = expected["inputs"].as_array().expect("inputs");
    assert_eq!(inputs.len(), tx.inputs.len(), "{at}");
    let mut enriched = !inputs.is_empty();
    for (i, (input, exp)) in tx.inputs.iter().zip(inputs).enumerate() {
        assert_eq!(
            exp["spent_transaction_hash"].as_str(),
            Some(input.prevout.txid.to_string().as_str()),
            "{at} input {i}"
        );
        assert_eq!(
            num(&exp["spent_output_index"]),
            Some(u64::from(input.prevout.vout)),
            "{at} input {i}"
        );
        assert_eq!(
            num(&exp["sequence"]),
            Some(u64::from(input.sequence)),
            "{at} input {i}"
        );
        if exp["value"].is_null() {
            enriched = false;
            continue;
        }
        let spent = input
            .spent
            .as_ref()
            .unwrap_or_else(|| panic!("{at} input {i} unresolved"));
        assert_eq!(num(&exp["value"]), Some(spent.value), "{at} input {i}");
        assert_eq!(
            exp["type"].as_str(),
            Some(spent.kind.core_name()),
            "{at} input {i}"
        );
        let addresses: Vec<&str> = exp["addresses"]
            .as_array()
            .expect("addresses")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            addresses,
            spent.address.as_deref().into_iter().collect::<Vec<_>>(),
            "{at} input {i}"
        );
    }
    assert_eq!(
        num(&expected["output_value"]),
        Some(tx.output_value()),
        "{at}"
    );
    if tx.coinbase {
        assert_eq!(num(&expected["fee"]), Some(0), "{at}");
        assert_eq!(tx.fee(), None);
    } else if enriched {
        assert_eq!(num(&expected["input_value"]), tx.input_value(), "{at}");
        assert_eq!(num(&expected["fee"]), tx.fee(), "{at}");
    } else {
        // Exported without the spent outputs: bitcoin-etl writes input value 0 and a fee of
        // minus the outputs; the model has no fee.
        assert_eq!(num(&expected["input_value"]), Some(0), "{at}");
        assert_eq!(
            expected["fee"].as_i64(),
            Some(-(tx.output_value() as i64)),
            "{at}"
        );
        assert_eq!(tx.fee(), None, "{at}");
    }
}

/// The addresses as screening knows them: a Bitcoin Cash node writes cashaddr
/// (`bitcoincash:q…`), whose key is its legacy form's, the form the model writes for a block
/// mined before the fork.
fn keys(addresses: &[&str]) -> Vec<holdfast_intel::address::AddressKey> {
    addresses
        .iter()
        .map(|a| {
            holdfast_intel::address::parse(a, None)
                .unwrap_or_else(|e| panic!("{e}"))
                .key
        })
        .collect()
}

fn check_case(case: &str) -> usize {
    let blocks = blocks(case);
    let text = std::fs::read_to_string(fixture(&format!(
        "{CASES}/{case}/expected_transactions.json"
    )))
    .expect("expected");
    let expected: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let mut checked = 0;
    for exp in &expected {
        let hash = exp["block_hash"].as_str().expect("block_hash");
        let block = blocks
            .iter()
            .find(|b| b.hash.to_string() == hash)
            .unwrap_or_else(|| panic!("{case}: no block {hash}"));
        let txid = exp["hash"].as_str().expect("hash");
        let (index, tx) = block
            .txs
            .iter()
            .enumerate()
            .find(|(_, t)| t.txid.to_string() == txid)
            .unwrap_or_else(|| panic!("{case}: no tx {txid}"));
        check_tx(case, block, index, tx, exp);
        checked += 1;
    }
    // And nothing the model has that the export lacks.
    let total: usize = blocks.iter().map(|b| b.txs.len()).sum();
    assert_eq!(checked, total, "{case}");
    checked
}

#[test]
fn every_exported_transaction_matches() {
    let cases = [
        ("bitcoin/block_0", 1),
        ("bitcoin/block_1", 1),
        ("bitcoin/block_without_transactions", 1),
        ("bitcoin/block_with_transactions", 4),
        ("bitcoin/stream_50001_50002", 4),
        ("bitcoin_cash/block_with_duplicate_txid", 1),
    ];
    for (case, txs) in cases {
        assert_eq!(check_case(case), txs, "{case}");
    }
}

/// The enriched case: tx 7940cdde spends two 2010 coinbases (P2PK, 50 BTC each) into 100 BTC.
#[test]
fn inputs_resolved_from_the_parents_give_bitcoin_etls_fee() {
    let blocks = blocks("bitcoin/stream_50001_50002");
    let tx = blocks
        .iter()
        .flat_map(|b| &b.txs)
        .find(|t| t.txid.to_string().starts_with("7940cdde"))
        .expect("tx");
    let addresses: Vec<_> = tx
        .inputs
        .iter()
        .map(|i| i.spent.as_ref().and_then(|o| o.address.clone()))
        .collect();
    assert_eq!(
        addresses,
        [
            Some("1DoQeKfU3dYhN9bxMpFFcVUnufCPDqSPae".to_owned()),
            Some("1PZMgkF2x161qvfP7dhoWSEEU3SjnQE1m9".to_owned())
        ]
    );
    assert_eq!(
        (tx.input_value(), tx.fee()),
        (Some(10_000_000_000), Some(0))
    );
}

/// bitcoin-etl's stub tip (`getblock` of block 500,000's hash with block 50,001's fields and no
/// transactions) is not a block: refused, naming it.
#[test]
fn the_stub_tip_is_refused() {
    let path = files("bitcoin/stream_50001_50002", "rpc_response_getblock_")
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("_None.json"))
        .expect("stub");
    let answer = json(&path);
    let bytes = raw_block(&answer, &HashMap::new());
    let e = Block::from_raw(Network::Bitcoin, &bytes, Some(500_000)).expect_err("stub");
    assert!(
        matches!(&e, BlockError::Decode(d) if d.field == "tx count"),
        "{e}"
    );
    assert!(e.to_string().starts_with("block 500000 ("), "{e}");
}
