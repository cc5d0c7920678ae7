//! The spent-by index: for every output a stored transaction spends, the input that spends
//! it (the spending txid, the input index, and the spending transaction's height and position
//! in its block). Derived from a block's transactions and written with them in the same atomic
//! write (blocks and imports alike), removed exactly with them on unwind. Forward tracing asks
//! it of every tainted output ([`super::UtxoStore::spenders`]), one batch per hop; an output
//! paying no address (bare multisig, non-standard) is found as well as any other.
//!
//! Embedded: keyspace `utxo.spent`, (chain, txid, vout) → (spending txid, input, height,
//! position). PostgreSQL: table `utxo_spent` (schema version 5), the same key, deleted by
//! height on unwind.

use std::collections::HashMap;

use alloy_primitives::B256;
use postgres::Transaction;

use super::OutPointKey;
use super::txs::{self, TxRecord};
use crate::StoreError;
use crate::codec::{Reader, corrupt};

/// The input that spends an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Spender {
    /// The spending transaction (internal byte order).
    pub txid: B256,
    /// The input's index in it.
    pub vin: u32,
    /// The spending transaction's block height and position in that block.
    pub height: u64,
    pub position: u32,
}

/// A stored transaction with its block height and position in the block.
pub type PlacedTx = (u64, u32, TxRecord);

/// Most outpoints or txids one [`super::UtxoStore::spenders`] or
/// [`super::UtxoStore::transactions`] call takes: one hop of a trace is one or a few calls.
pub const MAX_READ_BATCH: usize = 10_000;

pub(crate) fn check_read_batch(field: &'static str, n: usize) -> Result<(), StoreError> {
    if n > MAX_READ_BATCH {
        return Err(StoreError::Argument {
            field,
            value: n.to_string(),
            expected: format!("at most {MAX_READ_BATCH} per call"),
        });
    }
    Ok(())
}

/// The spent-by entries of a block's transactions at `height`.
pub(crate) fn entries(
    height: u64,
    list: &[TxRecord],
) -> impl Iterator<Item = (OutPointKey, Spender)> + '_ {
    list.iter().enumerate().flat_map(move |(pos, tx)| {
        tx.inputs.iter().enumerate().map(move |(vin, i)| {
            (
                i.prevout,
                Spender {
                    txid: tx.txid,
                    vin: vin as u32,
                    height,
                    position: pos as u32,
                },
            )
        })
    })
}

/// The embedded value of an entry.
pub(crate) fn encode(s: &Spender) -> Vec<u8> {
    let mut v = Vec::with_capacity(48);
    v.extend_from_slice(s.txid.as_slice());
    v.extend_from_slice(&s.vin.to_be_bytes());
    v.extend_from_slice(&s.height.to_be_bytes());
    v.extend_from_slice(&s.position.to_be_bytes());
    v
}

pub(crate) fn decode(v: &[u8]) -> Result<Spender, StoreError> {
    let mut r = Reader(v);
    let s = Spender {
        txid: r.b256()?,
        vin: r.u32()?,
        height: r.u64()?,
        position: r.u32()?,
    };
    if !r.0.is_empty() {
        return Err(corrupt("spent-by entry: trailing bytes"));
    }
    Ok(s)
}

fn i64_of(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Postgres(format!("{v} does not fit a BIGINT")))
}

/// PostgreSQL: the table, as migration 5 creates it.
pub(crate) const PG_MIGRATION: &str = "
CREATE TABLE utxo_spent (
    chain_id BIGINT NOT NULL, txid BYTEA NOT NULL, vout BIGINT NOT NULL,
    spender BYTEA NOT NULL, vin INT NOT NULL, height BIGINT NOT NULL, position INT NOT NULL,
    PRIMARY KEY (chain_id, txid, vout));
CREATE INDEX utxo_spent_height ON utxo_spent (chain_id, height);
";

/// PostgreSQL: inserts the spent-by entries of a block's transactions (one statement).
pub(crate) fn pg_write(
    tx: &mut Transaction<'_>,
    chain_id: u64,
    height: u64,
    list: &[TxRecord],
) -> Result<(), StoreError> {
    let (mut txids, mut vouts, mut spenders, mut vins, mut positions) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (op, s) in entries(height, list) {
        txids.push(op.txid.to_vec());
        vouts.push(i64::from(op.vout));
        spenders.push(s.txid.to_vec());
        vins.push(s.vin as i32);
        positions.push(s.position as i32);
    }
    if txids.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO utxo_spent (chain_id, height, txid, vout, spender, vin, position)
         SELECT $1, $2, * FROM unnest($3::bytea[], $4::bigint[], $5::bytea[], $6::int[], $7::int[])",
        &[
            &i64_of(chain_id)?,
            &i64_of(height)?,
            &txids,
            &vouts,
            &spenders,
            &vins,
            &positions,
        ],
    )?;
    Ok(())
}

/// PostgreSQL: deletes the entries of the blocks from `first` up.
pub(crate) fn pg_unwind(
    tx: &mut Transaction<'_>,
    chain_id: u64,
    first: u64,
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM utxo_spent WHERE chain_id = $1 AND height >= $2",
        &[&i64_of(chain_id)?, &i64_of(first)?],
    )?;
    Ok(())
}

/// PostgreSQL: the spenders of `outpoints`, in their order, in one query.
pub(crate) fn pg_read(
    client: &mut impl postgres::GenericClient,
    chain_id: u64,
    outpoints: &[OutPointKey],
) -> Result<Vec<Option<Spender>>, StoreError> {
    check_read_batch("outpoints", outpoints.len())?;
    if outpoints.is_empty() {
        return Ok(Vec::new());
    }
    let txids: Vec<&[u8]> = outpoints.iter().map(|op| op.txid.as_slice()).collect();
    let vouts: Vec<i64> = outpoints.iter().map(|op| i64::from(op.vout)).collect();
    let rows = client.query(
        "SELECT s.txid, s.vout, s.spender, s.vin, s.height, s.position
         FROM unnest($2::bytea[], $3::bigint[]) AS q(txid, vout)
         JOIN utxo_spent s ON s.chain_id = $1 AND s.txid = q.txid AND s.vout = q.vout",
        &[&i64_of(chain_id)?, &txids, &vouts],
    )?;
    let bad = |w: &str| StoreError::Corrupt(format!("spent-by entry {w}"));
    let mut found = HashMap::with_capacity(rows.len());
    for r in &rows {
        let (txid, spender): (&[u8], &[u8]) = (r.get(0), r.get(2));
        if txid.len() != 32 || spender.len() != 32 {
            return Err(bad("txid"));
        }
        let vout: i64 = r.get(1);
        let (vin, height, pos): (i32, i64, i32) = (r.get(3), r.get(4), r.get(5));
        found.insert(
            OutPointKey {
                txid: B256::from_slice(txid),
                vout: u32::try_from(vout).map_err(|_| bad("vout"))?,
            },
            Spender {
                txid: B256::from_slice(spender),
                vin: u32::try_from(vin).map_err(|_| bad("vin"))?,
                height: u64::try_from(height).map_err(|_| bad("height"))?,
                position: u32::try_from(pos).map_err(|_| bad("position"))?,
            },
        );
    }
    Ok(outpoints.iter().map(|op| found.get(op).copied()).collect())
}

/// PostgreSQL: the stored transactions of each of `txids`, in their order (each lowest height
/// first), in one query.
pub(crate) fn pg_transactions(
    client: &mut impl postgres::GenericClient,
    chain_id: u64,
    ids: &[B256],
) -> Result<Vec<Vec<PlacedTx>>, StoreError> {
    check_read_batch("txids", ids.len())?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<&[u8]> = ids.iter().map(|t| t.as_slice()).collect();
    let rows = client.query(
        "SELECT height, position, body FROM utxo_txs
         WHERE chain_id = $1 AND txid = ANY($2) ORDER BY height",
        &[&i64_of(chain_id)?, &list],
    )?;
    let mut found: HashMap<B256, Vec<PlacedTx>> = HashMap::new();
    for r in &rows {
        let (h, p): (i64, i32) = (r.get(0), r.get(1));
        let tx = txs::decode(r.get(2))?;
        found.entry(tx.txid).or_default().push((
            u64::try_from(h).map_err(|_| corrupt("tx height"))?,
            u32::try_from(p).map_err(|_| corrupt("tx position"))?,
            tx,
        ));
    }
    Ok(ids
        .iter()
        .map(|t| found.get(t).cloned().unwrap_or_default())
        .collect())
}
