//! The block model the store will hold: [`Block`] → [`Tx`] → [`Input`]s (outpoints, later
//! resolved to the [`Output`] they spend) and [`Output`]s (value in the smallest unit, script,
//! [`ScriptKind`], address on the block's [`Network`]).
//!
//! Built from a decoded block by [`Block::from_raw`] / [`Block::from_bitcoin`], which check
//! what the header commits to (merkle root, segwit witness commitment), that only the first
//! transaction is a coinbase, and that no output exceeds the network's money supply. Inputs
//! start unresolved; [`Block::resolve_inputs`] fills them from the block's own earlier outputs
//! first, then from a caller's lookup (the store's UTXO index, or a fixture's spent outputs);
//! a transaction whose inputs are all resolved has a [`Tx::fee`].

use std::collections::HashMap;

use bitcoin::{BlockHash, OutPoint, ScriptBuf, Txid};

use crate::decode::{DecodeError, Place, decode_block};
use crate::network::Network;
use crate::script::ScriptKind;

/// A block on `network`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub network: Network,
    pub hash: BlockHash,
    pub prev: BlockHash,
    /// Known when the block came from a node by height; `None` from a raw file.
    pub height: Option<u64>,
    /// Header time, Unix seconds.
    pub time: u32,
    pub txs: Vec<Tx>,
}

/// A transaction, at its position in the block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tx {
    pub txid: Txid,
    /// The block's first transaction: it spends nothing (its one null input is not kept).
    pub coinbase: bool,
    /// What it spends (empty for the coinbase).
    pub inputs: Vec<Input>,
    /// What it creates, output `i` at index `i`.
    pub outputs: Vec<Output>,
    /// Serialized size with witnesses, bytes.
    pub size: usize,
    /// Virtual size (weight / 4, rounded up), vbytes.
    pub vsize: usize,
}

/// One input: the output it spends, and that output once resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub prevout: OutPoint,
    pub sequence: u32,
    /// The spent output (its value, script, kind, address), once resolved.
    pub spent: Option<Output>,
}

/// One output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// In the smallest unit (satoshis, litoshis).
    pub value: u64,
    pub script: ScriptBuf,
    pub kind: ScriptKind,
    /// The address it pays on the block's network (`None` for OP_RETURN, bare multisig and
    /// non-standard scripts).
    pub address: Option<String>,
}

impl Output {
    /// Classifies `script` and renders its address on `network`.
    pub fn new(value: u64, script: ScriptBuf, network: Network) -> Output {
        let kind = ScriptKind::of(&script);
        let address = kind.address(&script, network);
        Output {
            value,
            script,
            kind,
            address,
        }
    }
}

/// A block that decoded but says something no valid block does, or whose bytes do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("{place}: {field}: {reason}")]
    Invalid {
        place: Box<Place>,
        field: String,
        reason: String,
    },
}

/// An input resolution that cannot be right: a transaction spending more than its inputs
/// hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("block {block}, tx {txid}: outputs total {outputs} but the resolved inputs total {inputs}")]
pub struct Overspend {
    pub block: BlockHash,
    pub txid: Txid,
    pub inputs: u64,
    pub outputs: u64,
}

impl Block {
    /// Decodes a consensus-serialized block of `network` and builds the model (see
    /// [`Block::from_bitcoin`] for what is checked).
    pub fn from_raw(
        network: Network,
        bytes: &[u8],
        height: Option<u64>,
    ) -> Result<Block, BlockError> {
        let block = decode_block(bytes, height)?;
        Block::from_bitcoin(network, &block, height)
    }

    /// Builds the model from a decoded block, after checking the merkle root and the witness
    /// commitment against the transactions, that the first transaction and only it is a
    /// coinbase, and that every output value is within `network`'s money supply.
    pub fn from_bitcoin(
        network: Network,
        block: &bitcoin::Block,
        height: Option<u64>,
    ) -> Result<Block, BlockError> {
        let hash = block.block_hash();
        let invalid = |tx: Option<usize>, field: &str, reason: String| BlockError::Invalid {
            place: Box::new(Place {
                block: Some(hash),
                height,
                tx,
            }),
            field: field.to_owned(),
            reason,
        };
        if !block.check_merkle_root() {
            return Err(invalid(
                None,
                "merkle root",
                format!(
                    "the header's {} is not the root of the block's {} txids",
                    block.header.merkle_root,
                    block.txdata.len()
                ),
            ));
        }
        if !block.check_witness_commitment() {
            return Err(invalid(
                None,
                "witness commitment",
                "the coinbase's commitment does not match the transactions' witnesses".into(),
            ));
        }
        let max = network.max_money();
        let mut txs = Vec::with_capacity(block.txdata.len());
        for (i, tx) in block.txdata.iter().enumerate() {
            let coinbase = tx.is_coinbase();
            if coinbase != (i == 0) {
                let reason = if i == 0 {
                    "the first transaction is not a coinbase"
                } else {
                    "a coinbase after the first transaction"
                };
                return Err(invalid(Some(i), "inputs", reason.into()));
            }
            let mut outputs = Vec::with_capacity(tx.output.len());
            let mut total: u64 = 0;
            for (o, out) in tx.output.iter().enumerate() {
                let value = out.value.to_sat();
                total = total.saturating_add(value);
                if value > max || total > max {
                    return Err(invalid(
                        Some(i),
                        &format!("output {o} value"),
                        format!(
                            "{value} (outputs so far {total}) exceeds {network}'s supply of {max}"
                        ),
                    ));
                }
                outputs.push(Output::new(value, out.script_pubkey.clone(), network));
            }
            let inputs = if coinbase {
                Vec::new()
            } else {
                tx.input
                    .iter()
                    .map(|i| Input {
                        prevout: i.previous_output,
                        sequence: i.sequence.0,
                        spent: None,
                    })
                    .collect()
            };
            txs.push(Tx {
                txid: tx.compute_txid(),
                coinbase,
                inputs,
                outputs,
                size: tx.total_size(),
                vsize: tx.vsize(),
            });
        }
        Ok(Block {
            network,
            hash,
            prev: block.header.prev_blockhash,
            height,
            time: block.header.time,
            txs,
        })
    }

    /// Resolves every unresolved input: from the outputs of earlier transactions in this block
    /// first (an output spent in the block that created it), then from `lookup`. Returns how
    /// many inputs stay unresolved. A transaction whose resolved inputs hold less than its
    /// outputs is an [`Overspend`] (a wrong lookup, since no valid block has one), and nothing
    /// is resolved.
    pub fn resolve_inputs(
        &mut self,
        mut lookup: impl FnMut(&OutPoint) -> Option<Output>,
    ) -> Result<usize, Overspend> {
        let mut resolved: Vec<Vec<Option<Output>>> = Vec::with_capacity(self.txs.len());
        let mut created: HashMap<OutPoint, &Output> = HashMap::new();
        let mut unresolved = 0;
        for tx in &self.txs {
            let mut spent = Vec::with_capacity(tx.inputs.len());
            for input in &tx.inputs {
                let out = match &input.spent {
                    Some(out) => Some(out.clone()),
                    None => created
                        .get(&input.prevout)
                        .map(|o| (*o).clone())
                        .or_else(|| lookup(&input.prevout)),
                };
                unresolved += usize::from(out.is_none());
                spent.push(out);
            }
            if spent.iter().all(Option::is_some) && !tx.coinbase {
                let inputs = spent
                    .iter()
                    .flatten()
                    .fold(0u64, |a, o| a.saturating_add(o.value));
                let outputs = tx.output_value();
                if inputs < outputs {
                    return Err(Overspend {
                        block: self.hash,
                        txid: tx.txid,
                        inputs,
                        outputs,
                    });
                }
            }
            for (vout, out) in tx.outputs.iter().enumerate() {
                created.insert(
                    OutPoint {
                        txid: tx.txid,
                        vout: vout as u32,
                    },
                    out,
                );
            }
            resolved.push(spent);
        }
        for (tx, spent) in self.txs.iter_mut().zip(resolved) {
            for (input, out) in tx.inputs.iter_mut().zip(spent) {
                input.spent = out;
            }
        }
        Ok(unresolved)
    }

    /// The sum of the fees of every transaction, when every input is resolved.
    pub fn fees(&self) -> Option<u64> {
        self.txs
            .iter()
            .filter(|t| !t.coinbase)
            .try_fold(0u64, |a, t| a.checked_add(t.fee()?))
    }

    /// The coinbase's outputs: subsidy plus the fees the miner claimed.
    pub fn coinbase_value(&self) -> u64 {
        self.txs
            .first()
            .filter(|t| t.coinbase)
            .map_or(0, Tx::output_value)
    }
}

impl Tx {
    pub fn output_value(&self) -> u64 {
        self.outputs.iter().map(|o| o.value).sum()
    }

    /// The inputs' total, when every input is resolved (`Some(0)` for the coinbase).
    pub fn input_value(&self) -> Option<u64> {
        self.inputs
            .iter()
            .try_fold(0u64, |a, i| a.checked_add(i.spent.as_ref()?.value))
    }

    /// Inputs minus outputs, when every input is resolved; `None` for the coinbase (it pays
    /// itself the subsidy and the fees).
    pub fn fee(&self) -> Option<u64> {
        if self.coinbase {
            return None;
        }
        self.input_value()?.checked_sub(self.output_value())
    }
}
