//! The transactions of a Bitcoin-family block and the address index, as the UTXO index keeps
//! them: written with the block's coin changes in the same atomic write, removed exactly on
//! unwind.
//!
//! A [`TxRecord`] holds a transaction's inputs resolved (the spent output's value and
//! address, as the block's [`UtxoChanges::spent`] or an earlier transaction of the same block
//! gives them: never asked of a node), its outputs (value, script, address: the script kind
//! and OP_RETURN data are the script's) and its coinbase flag; its fee is the difference. The
//! address index ([`AddressTransfer`]) has one entry per output paying an address
//! ([`Direction::Received`]) and one per input spending such an output ([`Direction::Spent`]),
//! keyed by (address, height, position in the block, direction, output or input index).

use std::collections::HashMap;

use alloy_primitives::B256;

use super::{MAX_ADDRESS_BYTES, OutPointKey, UtxoChanges};
use crate::StoreError;
use crate::codec::{Reader, corrupt};
use postgres::Transaction;

/// One input: the output it spends, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxInput {
    pub prevout: OutPointKey,
    /// The spent output's value, in the smallest unit.
    pub value: u64,
    /// The spent output's address, if it has one.
    pub address: Option<String>,
}

/// One output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOutput {
    /// In the smallest unit.
    pub value: u64,
    /// The locking script (its kind and any OP_RETURN data are read from it).
    pub script: Vec<u8>,
    pub address: Option<String>,
}

/// A transaction at its position in a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRecord {
    /// Internal byte order (rust-bitcoin's `Txid::to_byte_array`).
    pub txid: B256,
    pub coinbase: bool,
    /// Empty for the coinbase.
    pub inputs: Vec<TxInput>,
    pub outputs: Vec<TxOutput>,
}

impl TxRecord {
    /// Inputs minus outputs; `None` for the coinbase (it pays itself the fees).
    pub fn fee(&self) -> Option<u64> {
        if self.coinbase {
            return None;
        }
        let ins: u64 = self.inputs.iter().map(|i| i.value).sum();
        let outs: u64 = self.outputs.iter().map(|o| o.value).sum();
        ins.checked_sub(outs)
    }
}

/// Whether an address entry is an output paying the address or an input spending one of its
/// outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    Received,
    Spent,
}

impl Direction {
    fn code(self) -> u8 {
        match self {
            Direction::Received => 0,
            Direction::Spent => 1,
        }
    }

    pub(crate) fn from_code(c: u8) -> Result<Direction, StoreError> {
        match c {
            0 => Ok(Direction::Received),
            1 => Ok(Direction::Spent),
            _ => Err(corrupt("address entry direction")),
        }
    }
}

/// One entry of an address's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressTransfer {
    pub height: u64,
    /// The transaction's position in its block.
    pub tx_index: u32,
    /// The receiving or spending transaction.
    pub txid: B256,
    pub direction: Direction,
    /// The output index (received) or the input index (spent) in `txid`.
    pub index: u32,
    pub value: u64,
    /// The output received or spent: `txid:index` for a receipt, the spent outpoint for a
    /// spend.
    pub outpoint: OutPointKey,
}

/// Most entries one [`super::UtxoStore::address_transfers`] call returns.
pub const MAX_TRANSFERS: usize = 100_000;

/// The address entries of `tx` at (`height`, `tx_index`), with their address.
pub(crate) fn entries(height: u64, tx_index: u32, tx: &TxRecord) -> Vec<(&str, AddressTransfer)> {
    let mut out = Vec::new();
    for (vin, i) in tx.inputs.iter().enumerate() {
        if let Some(a) = &i.address {
            out.push((
                a.as_str(),
                AddressTransfer {
                    height,
                    tx_index,
                    txid: tx.txid,
                    direction: Direction::Spent,
                    index: vin as u32,
                    value: i.value,
                    outpoint: i.prevout,
                },
            ));
        }
    }
    for (vout, o) in tx.outputs.iter().enumerate() {
        if let Some(a) = &o.address {
            out.push((
                a.as_str(),
                AddressTransfer {
                    height,
                    tx_index,
                    txid: tx.txid,
                    direction: Direction::Received,
                    index: vout as u32,
                    value: o.value,
                    outpoint: OutPointKey {
                        txid: tx.txid,
                        vout: vout as u32,
                    },
                },
            ));
        }
    }
    out
}

/// Checks a block's transactions against its coin changes: the coinbase first and only
/// there, every input resolved either from an earlier transaction of the block or from an
/// output the changes spend (with the same value and address), every spent output consumed by
/// exactly one input, every created output one of the transactions' outputs with the same
/// content, no transaction paying out more than it spends. An empty list is a block written
/// without its transactions (the coin index only).
pub(crate) fn validate(
    changes: &UtxoChanges,
    invalid: impl Fn(String) -> StoreError,
) -> Result<(), StoreError> {
    if changes.transactions.is_empty() {
        return Ok(());
    }
    validate_txs(&changes.transactions, Some(changes), invalid)
}

/// Checks a block's transactions on their own (history imported without a UTXO set: inputs
/// not spending the block's own outputs are taken as given).
pub(crate) fn validate_history(
    txs: &[TxRecord],
    invalid: impl Fn(String) -> StoreError,
) -> Result<(), StoreError> {
    if txs.is_empty() {
        return Err(invalid("a block has at least its coinbase".into()));
    }
    validate_txs(txs, None, invalid)
}

fn validate_txs(
    txs: &[TxRecord],
    changes: Option<&UtxoChanges>,
    invalid: impl Fn(String) -> StoreError,
) -> Result<(), StoreError> {
    let no_spends = Vec::new();
    let spent_list = changes.map_or(&no_spends, |c| &c.spent);
    let spent: HashMap<&OutPointKey, &super::UtxoRecord> =
        spent_list.iter().map(|(op, r)| (op, r)).collect();
    let mut used = 0usize;
    let mut earlier: HashMap<OutPointKey, (u64, Option<&str>)> = HashMap::new();
    let mut seen_spends = std::collections::HashSet::new();
    for (ix, tx) in txs.iter().enumerate() {
        let place = |what: String| invalid(format!("tx {ix} ({}): {what}", show(&tx.txid)));
        if tx.coinbase != (ix == 0) {
            return Err(place(if ix == 0 {
                "the first transaction must be the coinbase".into()
            } else {
                "only the first transaction may be a coinbase".into()
            }));
        }
        if tx.coinbase && !tx.inputs.is_empty() {
            return Err(place("a coinbase has no inputs to resolve".into()));
        }
        if !tx.coinbase && tx.inputs.is_empty() {
            return Err(place(
                "a transaction other than the coinbase needs inputs".into(),
            ));
        }
        for (vin, i) in tx.inputs.iter().enumerate() {
            if !seen_spends.insert(i.prevout) {
                return Err(place(format!("input {vin} spends {} twice", i.prevout)));
            }
            if let Some(&(value, address)) = earlier.get(&i.prevout) {
                if value != i.value || address != i.address.as_deref() {
                    return Err(place(format!(
                        "input {vin} ({}): value or address differs from the block's own output",
                        i.prevout
                    )));
                }
            } else if changes.is_none() {
                if i.address
                    .as_ref()
                    .is_some_and(|a| a.is_empty() || a.len() > MAX_ADDRESS_BYTES)
                {
                    return Err(place(format!(
                        "input {vin}: address empty or longer than {MAX_ADDRESS_BYTES} bytes"
                    )));
                }
            } else {
                match spent.get(&i.prevout) {
                    Some(r) if r.value == i.value && r.address == i.address => used += 1,
                    Some(_) => {
                        return Err(place(format!(
                            "input {vin} ({}): value or address differs from the spent output",
                            i.prevout
                        )));
                    }
                    None => {
                        return Err(place(format!(
                            "input {vin} ({}) is resolved from neither the block nor its spent outputs",
                            i.prevout
                        )));
                    }
                }
            }
        }
        if tx.fee().is_none() && !tx.coinbase {
            return Err(place("its outputs exceed its inputs".into()));
        }
        for (vout, o) in tx.outputs.iter().enumerate() {
            if o.address
                .as_ref()
                .is_some_and(|a| a.is_empty() || a.len() > MAX_ADDRESS_BYTES)
            {
                return Err(place(format!(
                    "output {vout}: address empty or longer than {MAX_ADDRESS_BYTES} bytes"
                )));
            }
            earlier.insert(
                OutPointKey {
                    txid: tx.txid,
                    vout: vout as u32,
                },
                (o.value, o.address.as_deref()),
            );
        }
    }
    let Some(changes) = changes else {
        return Ok(());
    };
    if used != spent.len() {
        return Err(invalid(format!(
            "the block's transactions spend {used} outputs from the index but its changes spend {}",
            spent.len()
        )));
    }
    let outputs: HashMap<OutPointKey, &TxOutput> = txs
        .iter()
        .flat_map(|t| {
            t.outputs.iter().enumerate().map(|(v, o)| {
                (
                    OutPointKey {
                        txid: t.txid,
                        vout: v as u32,
                    },
                    o,
                )
            })
        })
        .collect();
    for (op, r) in &changes.created {
        match outputs.get(op) {
            Some(o) if o.value == r.value && o.script == r.script && o.address == r.address => {}
            _ => {
                return Err(invalid(format!(
                    "created output {op} is not one of the block's transactions' outputs"
                )));
            }
        }
    }
    Ok(())
}

/// A txid as Bitcoin shows it (reversed hex).
pub fn show(txid: &B256) -> String {
    txid.iter().rev().map(|b| format!("{b:02x}")).collect()
}

/// The byte encoding of a transaction (both backends store these bytes).
pub(crate) fn encode(tx: &TxRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + 48 * tx.inputs.len() + 40 * tx.outputs.len());
    out.extend_from_slice(tx.txid.as_slice());
    out.push(u8::from(tx.coinbase));
    out.extend_from_slice(&(tx.inputs.len() as u32).to_be_bytes());
    for i in &tx.inputs {
        super::bytes::outpoint(&i.prevout, &mut out);
        out.extend_from_slice(&i.value.to_be_bytes());
        address(i.address.as_deref(), &mut out);
    }
    out.extend_from_slice(&(tx.outputs.len() as u32).to_be_bytes());
    for o in &tx.outputs {
        out.extend_from_slice(&o.value.to_be_bytes());
        out.extend_from_slice(&(o.script.len() as u32).to_be_bytes());
        out.extend_from_slice(&o.script);
        address(o.address.as_deref(), &mut out);
    }
    out
}

fn address(a: Option<&str>, out: &mut Vec<u8>) {
    match a {
        Some(a) => {
            out.push(a.len() as u8);
            out.extend_from_slice(a.as_bytes());
        }
        None => out.push(0),
    }
}

fn read_address(r: &mut Reader<'_>) -> Result<Option<String>, StoreError> {
    let n = usize::from(r.u8()?);
    if n == 0 {
        return Ok(None);
    }
    String::from_utf8(r.take(n)?.to_vec())
        .map(Some)
        .map_err(|_| corrupt("transaction address"))
}

pub(crate) fn decode(v: &[u8]) -> Result<TxRecord, StoreError> {
    let mut r = Reader(v);
    let txid = r.b256()?;
    let coinbase = match r.u8()? {
        0 => false,
        1 => true,
        _ => return Err(corrupt("transaction coinbase flag")),
    };
    let n = r.u32()? as usize;
    let mut inputs = Vec::with_capacity(n.min(r.0.len() / 45));
    for _ in 0..n {
        let prevout = super::bytes::read_outpoint(&mut r)?;
        inputs.push(TxInput {
            prevout,
            value: r.u64()?,
            address: read_address(&mut r)?,
        });
    }
    let n = r.u32()? as usize;
    let mut outputs = Vec::with_capacity(n.min(r.0.len() / 13));
    for _ in 0..n {
        let value = r.u64()?;
        let len = r.u32()? as usize;
        let script = r.take(len)?.to_vec();
        outputs.push(TxOutput {
            value,
            script,
            address: read_address(&mut r)?,
        });
    }
    if !r.0.is_empty() {
        return Err(corrupt("transaction record: trailing bytes"));
    }
    Ok(TxRecord {
        txid,
        coinbase,
        inputs,
        outputs,
    })
}

/// The value of an address entry (its key holds address, height, position, direction, index).
pub(crate) fn entry_value(t: &AddressTransfer) -> Vec<u8> {
    let mut out = Vec::with_capacity(76);
    out.extend_from_slice(t.txid.as_slice());
    out.extend_from_slice(&t.value.to_be_bytes());
    super::bytes::outpoint(&t.outpoint, &mut out);
    out
}

pub(crate) fn direction_code(d: Direction) -> u8 {
    d.code()
}

/// PostgreSQL: inserts a block's transactions and address entries (two statements).
pub(crate) fn pg_write(
    tx: &mut Transaction<'_>,
    chain_id: u64,
    height: u64,
    list: &[TxRecord],
) -> Result<(), StoreError> {
    if list.is_empty() {
        return Ok(());
    }
    let (chain, h) = (i64_of(chain_id)?, i64_of(height)?);
    let positions: Vec<i32> = (0..list.len() as i32).collect();
    let txids: Vec<&[u8]> = list.iter().map(|t| t.txid.as_slice()).collect();
    let bodies: Vec<Vec<u8>> = list.iter().map(encode).collect();
    tx.execute(
        "INSERT INTO utxo_txs (chain_id, height, position, txid, body)
         SELECT $1, $2, * FROM unnest($3::int[], $4::bytea[], $5::bytea[])",
        &[&chain, &h, &positions, &txids, &bodies],
    )?;
    let mut addresses = Vec::new();
    let mut e_pos = Vec::new();
    let mut dirs = Vec::new();
    let mut ns = Vec::new();
    let mut e_txids = Vec::new();
    let mut values = Vec::new();
    let mut o_txids = Vec::new();
    let mut o_vouts = Vec::new();
    for (i, t) in list.iter().enumerate() {
        for (a, e) in entries(height, i as u32, t) {
            addresses.push(a);
            e_pos.push(i as i32);
            dirs.push(i16::from(direction_code(e.direction)));
            ns.push(e.index as i32);
            e_txids.push(e.txid.as_slice().to_vec());
            values.push(i64_of(e.value)?);
            o_txids.push(e.outpoint.txid.as_slice().to_vec());
            o_vouts.push(i64::from(e.outpoint.vout));
        }
    }
    if !addresses.is_empty() {
        tx.execute(
            "INSERT INTO utxo_transfers (chain_id, height, address, position, direction, n, txid, value, out_txid, out_vout)
             SELECT $1, $2, * FROM unnest($3::text[], $4::int[], $5::smallint[], $6::int[], $7::bytea[], $8::bigint[], $9::bytea[], $10::bigint[])",
            &[&chain, &h, &addresses, &e_pos, &dirs, &ns, &e_txids, &values, &o_txids, &o_vouts],
        )?;
    }
    Ok(())
}

fn i64_of(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Postgres(format!("{v} does not fit a BIGINT")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_refuses_damage() {
        let tx = TxRecord {
            txid: B256::repeat_byte(7),
            coinbase: false,
            inputs: vec![TxInput {
                prevout: OutPointKey {
                    txid: B256::repeat_byte(1),
                    vout: 3,
                },
                value: 5_000,
                address: Some("rltc1qxyz".into()),
            }],
            outputs: vec![
                TxOutput {
                    value: 4_000,
                    script: vec![0x6a, 2, 1, 2],
                    address: None,
                },
                TxOutput {
                    value: 500,
                    script: vec![0, 20],
                    address: Some("Qabc".into()),
                },
            ],
        };
        let bytes = encode(&tx);
        assert_eq!(decode(&bytes).unwrap(), tx);
        assert_eq!(tx.fee(), Some(500));
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }
}
