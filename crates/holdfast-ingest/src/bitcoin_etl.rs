//! bitcoin-etl exports (github.com/blockchain-etl/bitcoin-etl, `export_blocks_and_transactions`
//! with the inputs enriched): `blocks.json` and `transactions.json`, one JSON object per line,
//! into the records the UTXO store keeps ([`TxRecord`]), so an investigator can trace from a
//! public dataset without running a node.
//!
//! Read the same way ingestion reads a block: each output's kind and address come from its
//! `script_hex` (bitcoin-etl's `addresses` must agree where it gives one address); each input
//! carries the spent output's `value` and address as bitcoin-etl enriched it (an export without
//! enrichment is refused: its input values are null). Everything is checked before anything is
//! written: each block's transactions are all there (`transaction_count`), at positions
//! 0..n, the coinbase first and only there, with the block's hash and time; `input_value`,
//! `output_value` and `fee`, where given, equal the sums; no transaction pays out more than it
//! spends. A bad line is an error naming the file, the line, the field and the value.
//!
//! bitcoin-etl's blocks carry no parent hash: imported blocks are stored with a zero parent,
//! under [`Network::import_id`], apart from the UTXO index built from a node.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use alloy_primitives::B256;
use holdfast_bitcoin::bitcoin::ScriptBuf;
use holdfast_bitcoin::{Network, Output, address};
use holdfast_primitives::BlockRef;
use holdfast_store::utxo::{OutPointKey, TxInput, TxOutput, TxRecord};
use serde_json::Value;

/// A bitcoin-etl export that cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum EtlError {
    #[error("{}: {source}", .file.display())]
    Io {
        source: std::io::Error,
        file: PathBuf,
    },
    #[error("{}:{line}: {field}: {value}: {expected}", .file.display())]
    Line {
        file: PathBuf,
        line: usize,
        field: String,
        value: String,
        expected: String,
    },
}

/// One block of an export with its transactions, in block order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtlBlock {
    pub block: BlockRef,
    pub transactions: Vec<TxRecord>,
}

/// Core's script types whose outputs have one address (bitcoin-etl's input `type`).
const ONE_ADDRESS: [&str; 7] = [
    "pubkey",
    "pubkeyhash",
    "scripthash",
    "witness_v0_keyhash",
    "witness_v0_scripthash",
    "witness_v1_taproot",
    "witness_unknown",
];

/// The place of a line, for errors.
struct At<'a> {
    file: &'a Path,
    line: usize,
}

impl At<'_> {
    fn err(&self, field: &str, value: impl std::fmt::Display, expected: &str) -> EtlError {
        let mut value = value.to_string();
        if value.len() > 120 {
            value.truncate(117);
            value.push_str("...");
        }
        EtlError::Line {
            file: self.file.to_owned(),
            line: self.line,
            field: field.to_owned(),
            value,
            expected: expected.to_owned(),
        }
    }

    fn get<'v>(&self, obj: &'v Value, field: &str) -> Result<&'v Value, EtlError> {
        obj.get(field)
            .ok_or_else(|| self.err(field, "missing", "a value"))
    }

    fn u64(&self, obj: &Value, field: &str, name: &str) -> Result<u64, EtlError> {
        let v = self.get(obj, field)?;
        v.as_u64()
            .ok_or_else(|| self.err(name, v, "a whole number ≥ 0"))
    }

    fn hash(&self, obj: &Value, field: &str, name: &str) -> Result<B256, EtlError> {
        let v = self.get(obj, field)?;
        let text = v.as_str().unwrap_or_default();
        let mut bytes = [0u8; 32];
        if text.len() != 64 || hex::decode_to_slice(text, &mut bytes).is_err() {
            return Err(self.err(name, v, "64 hex digits"));
        }
        bytes.reverse(); // shown reversed; stored in internal byte order
        Ok(B256::from(bytes))
    }

    fn array<'v>(&self, obj: &'v Value, field: &str) -> Result<&'v Vec<Value>, EtlError> {
        let v = self.get(obj, field)?;
        v.as_array().ok_or_else(|| self.err(field, v, "an array"))
    }
}

/// Reads a JSON-lines file, calling `each` with every non-blank line's object.
fn lines(
    path: &Path,
    mut each: impl FnMut(&At<'_>, &Value) -> Result<(), EtlError>,
) -> Result<(), EtlError> {
    let file = std::fs::File::open(path).map_err(|source| EtlError::Io {
        source,
        file: path.to_owned(),
    })?;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| EtlError::Io {
            source,
            file: path.to_owned(),
        })?;
        let at = At {
            file: path,
            line: i + 1,
        };
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| at.err("line", e, "one JSON object per line"))?;
        if !v.is_object() {
            return Err(at.err("line", &line, "a JSON object"));
        }
        each(&at, &v)?;
    }
    Ok(())
}

fn check_type(at: &At<'_>, v: &Value, want: &str) -> Result<(), EtlError> {
    match v.get("type") {
        None => Ok(()),
        Some(t) if t == want => Ok(()),
        Some(t) => Err(at.err("type", t, &format!("\"{want}\""))),
    }
}

/// A header line of `blocks.json`.
struct BlockLine {
    block: BlockRef,
    count: u64,
    line: usize,
}

/// A transaction line, with the block it names.
struct TxLine {
    block_number: u64,
    block_hash: B256,
    timestamp: u64,
    index: u64,
    tx: TxRecord,
    line: usize,
}

fn read_tx(at: &At<'_>, v: &Value, network: Network) -> Result<TxLine, EtlError> {
    check_type(at, v, "transaction")?;
    let txid = at.hash(v, "hash", "hash")?;
    let coinbase = at
        .get(v, "is_coinbase")?
        .as_bool()
        .ok_or_else(|| at.err("is_coinbase", &v["is_coinbase"], "true or false"))?;
    let mut inputs = Vec::new();
    for (i, input) in at.array(v, "inputs")?.iter().enumerate() {
        let f = |name: &str| format!("inputs[{i}].{name}");
        if at.u64(input, "index", &f("index"))? != i as u64 {
            return Err(at.err(&f("index"), &input["index"], &format!("{i} (its position)")));
        }
        let spent_txid = at.hash(
            input,
            "spent_transaction_hash",
            &f("spent_transaction_hash"),
        )?;
        let vout = at.u64(input, "spent_output_index", &f("spent_output_index"))?;
        let vout = u32::try_from(vout)
            .map_err(|_| at.err(&f("spent_output_index"), vout, "an output index"))?;
        let value = match input.get("value") {
            Some(Value::Null) | None => {
                return Err(at.err(
                    &f("value"),
                    "null",
                    "the spent output's value: export with the inputs enriched",
                ));
            }
            Some(x) => x
                .as_u64()
                .ok_or_else(|| at.err(&f("value"), x, "a whole number of satoshis"))?,
        };
        let kind = input.get("type").and_then(Value::as_str).unwrap_or("");
        let addresses = at.array(input, "addresses")?;
        let address = if ONE_ADDRESS.contains(&kind) {
            let [a] = &addresses[..] else {
                return Err(at.err(
                    &f("addresses"),
                    Value::Array(addresses.clone()),
                    &format!("one address for type {kind}"),
                ));
            };
            let text = a.as_str().unwrap_or_default();
            let (_, canonical) = address::parse(text, network)
                .map_err(|e| at.err(&f("addresses"), a, &e.to_string()))?;
            Some(canonical)
        } else {
            None
        };
        inputs.push(TxInput {
            prevout: OutPointKey {
                txid: spent_txid,
                vout,
            },
            value,
            address,
        });
    }
    let mut outputs = Vec::new();
    for (i, output) in at.array(v, "outputs")?.iter().enumerate() {
        let f = |name: &str| format!("outputs[{i}].{name}");
        if at.u64(output, "index", &f("index"))? != i as u64 {
            return Err(at.err(
                &f("index"),
                &output["index"],
                &format!("{i} (its position)"),
            ));
        }
        let value = at.u64(output, "value", &f("value"))?;
        if value > network.max_money() {
            return Err(at.err(&f("value"), value, "at most the network's money supply"));
        }
        let script_v = at.get(output, "script_hex")?;
        let script = script_v
            .as_str()
            .and_then(|s| hex::decode(s).ok())
            .ok_or_else(|| at.err(&f("script_hex"), script_v, "hex"))?;
        let model = Output::new(value, ScriptBuf::from_bytes(script), network);
        let given = at.array(output, "addresses")?;
        if let (Some(ours), [one]) = (&model.address, &given[..])
            && let Some(theirs) = one.as_str()
            && !theirs.starts_with("nonstandard")
            && address::parse(theirs, network).map(|(_, c)| c).as_ref() != Ok(ours)
        {
            return Err(at.err(
                &f("addresses"),
                one,
                &format!("{ours}, the address its script_hex pays"),
            ));
        }
        outputs.push(TxOutput {
            value,
            script: model.script.to_bytes(),
            address: model.address,
        });
    }
    if coinbase != inputs.is_empty() {
        return Err(at.err(
            "inputs",
            inputs.len(),
            if coinbase {
                "none for a coinbase"
            } else {
                "at least one for a transaction other than the coinbase"
            },
        ));
    }
    let tx = TxRecord {
        txid,
        coinbase,
        inputs,
        outputs,
    };
    let ins: u64 = tx.inputs.iter().map(|i| i.value).sum();
    let outs: u64 = tx.outputs.iter().map(|o| o.value).sum();
    if !coinbase && outs > ins {
        return Err(at.err(
            "outputs",
            format!("{outs} satoshis out"),
            &format!("at most the {ins} its inputs spend"),
        ));
    }
    for (field, want) in [
        ("input_value", if coinbase { 0 } else { ins }),
        ("output_value", outs),
    ] {
        if let Some(given) = v.get(field)
            && given.as_u64() != Some(want)
        {
            return Err(at.err(field, given, &format!("{want}, the sum")));
        }
    }
    if let Some(given) = v.get("fee") {
        let want = tx.fee().unwrap_or(0);
        if given.as_u64() != Some(want) {
            return Err(at.err("fee", given, &format!("{want}, inputs minus outputs")));
        }
    }
    Ok(TxLine {
        block_number: at.u64(v, "block_number", "block_number")?,
        block_hash: at.hash(v, "block_hash", "block_hash")?,
        timestamp: at.u64(v, "block_timestamp", "block_timestamp")?,
        index: at.u64(v, "index", "index")?,
        tx,
        line: at.line,
    })
}

/// Reads and checks a whole export; nothing is returned unless every line is right.
pub fn read_export(
    network: Network,
    blocks: &Path,
    transactions: &Path,
) -> Result<Vec<EtlBlock>, EtlError> {
    let mut headers: BTreeMap<u64, BlockLine> = BTreeMap::new();
    lines(blocks, |at, v| {
        check_type(at, v, "block")?;
        let number = at.u64(v, "number", "number")?;
        let line = BlockLine {
            block: BlockRef {
                number,
                hash: at.hash(v, "hash", "hash")?,
                parent_hash: B256::ZERO,
                timestamp: at.u64(v, "timestamp", "timestamp")?,
            },
            count: at.u64(v, "transaction_count", "transaction_count")?,
            line: at.line,
        };
        if let Some(first) = headers.get(&number) {
            return Err(at.err(
                "number",
                number,
                &format!("a block listed once (also on line {})", first.line),
            ));
        }
        headers.insert(number, line);
        Ok(())
    })?;
    let mut txs: BTreeMap<u64, Vec<TxLine>> = BTreeMap::new();
    lines(transactions, |at, v| {
        let t = read_tx(at, v, network)?;
        let Some(h) = headers.get(&t.block_number) else {
            return Err(at.err(
                "block_number",
                t.block_number,
                &format!("a block of {}", blocks.display()),
            ));
        };
        if t.block_hash != h.block.hash {
            return Err(at.err(
                "block_hash",
                &v["block_hash"],
                &format!(
                    "the hash of block {} in {}",
                    t.block_number,
                    blocks.display()
                ),
            ));
        }
        if t.timestamp != h.block.timestamp {
            return Err(at.err(
                "block_timestamp",
                t.timestamp,
                &format!(
                    "{}, block {}'s timestamp",
                    h.block.timestamp, t.block_number
                ),
            ));
        }
        txs.entry(t.block_number).or_default().push(t);
        Ok(())
    })?;
    let mut out = Vec::with_capacity(headers.len());
    for (number, h) in headers {
        let mut list = txs.remove(&number).unwrap_or_default();
        list.sort_by_key(|t| t.index);
        for (i, t) in list.iter().enumerate() {
            if t.index != i as u64 {
                let at = At {
                    file: transactions,
                    line: t.line,
                };
                return Err(at.err(
                    "index",
                    t.index,
                    &format!("position {i} in block {number}: positions 0..n, each once"),
                ));
            }
            if t.tx.coinbase != (i == 0) {
                let at = At {
                    file: transactions,
                    line: t.line,
                };
                return Err(at.err(
                    "is_coinbase",
                    t.tx.coinbase,
                    "true for the first transaction of a block and only for it",
                ));
            }
        }
        if list.len() as u64 != h.count {
            return Err(At {
                file: blocks,
                line: h.line,
            }
            .err(
                "transaction_count",
                h.count,
                &format!(
                    "{} transactions of block {number} in {}",
                    list.len(),
                    transactions.display()
                ),
            ));
        }
        out.push(EtlBlock {
            block: h.block,
            transactions: list.into_iter().map(|t| t.tx).collect(),
        });
    }
    Ok(out)
}
