//! The UTXO index in PostgreSQL, its own versioned schema (`holdfast_utxo_schema`). A block's
//! write is one transaction under the chain's advisory lock: the spent and replaced rows are
//! deleted and returned (and must equal the changes' records), the created rows inserted (none
//! may exist), the undo record, the block and the counts written; any mismatch rolls it all
//! back. The block's transactions (`utxo_txs`) and address entries (`utxo_transfers`) are
//! inserted in the same transaction and deleted by height on unwind, and so are the spent-by entries
//! (`utxo_spent`, schema version 5: `super::spent`). Array parameters (`unnest`) keep a block to a few statements whatever its size.
//! A rebuild of a chain's clusters is one transaction under the chain's lock: the stored
//! transactions streamed in block order, the chain's cluster rows deleted and the new ones
//! copied in (binary `COPY`), so it is seen whole or not at all.

use std::collections::HashMap;

use alloy_primitives::B256;
use holdfast_primitives::BlockRef;
use postgres::Transaction;

use super::cluster::{self, Cluster, Node};
use super::rebuild::{Feed, RebuildOptions, RebuildProgress, RebuildReport};
use super::txs::{self, AddressTransfer, Direction, TxRecord};
use super::{
    KeepUndo, OutPointKey, Undo, UtxoChanges, UtxoCounts, UtxoRecord, UtxoStore, bytes, counted,
    not_held, validate,
};
use crate::pg_pool::{Pool, Schema};
use crate::{Applied, StoreError, admit};

const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE utxo_blocks (
    chain_id BIGINT NOT NULL, number BIGINT NOT NULL,
    hash BYTEA NOT NULL, parent_hash BYTEA NOT NULL, ts BIGINT NOT NULL,
    PRIMARY KEY (chain_id, number));
CREATE TABLE utxo_coins (
    chain_id BIGINT NOT NULL, txid BYTEA NOT NULL, vout BIGINT NOT NULL,
    value BIGINT NOT NULL, height BIGINT NOT NULL, coinbase BOOLEAN NOT NULL,
    script BYTEA NOT NULL, address TEXT,
    PRIMARY KEY (chain_id, txid, vout));
CREATE TABLE utxo_undo (
    chain_id BIGINT NOT NULL, number BIGINT NOT NULL, body BYTEA NOT NULL,
    PRIMARY KEY (chain_id, number));
CREATE TABLE utxo_counts (
    chain_id BIGINT PRIMARY KEY, outputs BIGINT NOT NULL, total BIGINT NOT NULL);
",
    "
CREATE TABLE utxo_txs (
    chain_id BIGINT NOT NULL, height BIGINT NOT NULL, position INT NOT NULL,
    txid BYTEA NOT NULL, body BYTEA NOT NULL,
    PRIMARY KEY (chain_id, height, position));
CREATE INDEX utxo_txs_txid ON utxo_txs (chain_id, txid);
CREATE TABLE utxo_transfers (
    chain_id BIGINT NOT NULL, address TEXT NOT NULL, height BIGINT NOT NULL,
    position INT NOT NULL, direction SMALLINT NOT NULL, n INT NOT NULL,
    txid BYTEA NOT NULL, value BIGINT NOT NULL, out_txid BYTEA NOT NULL, out_vout BIGINT NOT NULL,
    PRIMARY KEY (chain_id, address, height, position, direction, n));
CREATE INDEX utxo_transfers_height ON utxo_transfers (chain_id, height);
",
    "
CREATE TABLE utxo_clusters (
    chain_id BIGINT NOT NULL, address TEXT NOT NULL, parent TEXT NOT NULL, size BIGINT NOT NULL,
    PRIMARY KEY (chain_id, address));
CREATE TABLE utxo_clusters_undo (
    chain_id BIGINT NOT NULL, number BIGINT NOT NULL, body BYTEA NOT NULL,
    PRIMARY KEY (chain_id, number));
",
    // A cluster's members, down from its root.
    "
CREATE INDEX utxo_clusters_parent ON utxo_clusters (chain_id, parent);
",
    // The spent-by index (empty for blocks written before it: rebuild to have it whole).
    super::spent::PG_MIGRATION,
];

const SCHEMA: Schema = Schema {
    what: "UTXO",
    table: "holdfast_utxo_schema",
    lock: 7_400_006,
    migrations: MIGRATIONS,
};

/// The advisory lock class of a chain's writes (`pg_advisory_xact_lock(class, key)`).
const CHAIN_LOCK_CLASS: i32 = 7_400_007;

/// The PostgreSQL UTXO index (a small pool of connections).
pub struct PgUtxoStore {
    pool: Pool,
    keep_undo: KeepUndo,
}

impl std::fmt::Debug for PgUtxoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgUtxoStore").finish_non_exhaustive()
    }
}

fn i64_of(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Postgres(format!("{v} does not fit a BIGINT")))
}

fn u64_of(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative value {v}")))
}

fn block_of(number: i64, hash: &[u8], parent: &[u8], ts: i64) -> Result<BlockRef, StoreError> {
    if hash.len() != 32 || parent.len() != 32 {
        return Err(StoreError::Corrupt("UTXO block hash".into()));
    }
    Ok(BlockRef {
        number: u64_of(number)?,
        hash: B256::from_slice(hash),
        parent_hash: B256::from_slice(parent),
        timestamp: u64_of(ts)?,
    })
}

/// Columns of a list of outputs, for `unnest`.
struct Columns {
    txids: Vec<Vec<u8>>,
    vouts: Vec<i64>,
    values: Vec<i64>,
    heights: Vec<i64>,
    coinbases: Vec<bool>,
    scripts: Vec<Vec<u8>>,
    addresses: Vec<Option<String>>,
}

fn columns(list: &[(OutPointKey, UtxoRecord)]) -> Result<Columns, StoreError> {
    let mut c = Columns {
        txids: Vec::with_capacity(list.len()),
        vouts: Vec::with_capacity(list.len()),
        values: Vec::with_capacity(list.len()),
        heights: Vec::with_capacity(list.len()),
        coinbases: Vec::with_capacity(list.len()),
        scripts: Vec::with_capacity(list.len()),
        addresses: Vec::with_capacity(list.len()),
    };
    for (op, r) in list {
        c.txids.push(op.txid.to_vec());
        c.vouts.push(i64::from(op.vout));
        c.values.push(i64_of(r.value)?);
        c.heights.push(i64_of(r.height)?);
        c.coinbases.push(r.coinbase);
        c.scripts.push(r.script.clone());
        c.addresses.push(r.address.clone());
    }
    Ok(c)
}

fn outpoint_of(txid: &[u8], vout: i64) -> Result<OutPointKey, StoreError> {
    if txid.len() != 32 {
        return Err(StoreError::Corrupt("UTXO txid".into()));
    }
    Ok(OutPointKey {
        txid: B256::from_slice(txid),
        vout: u32::try_from(vout).map_err(|_| StoreError::Corrupt("UTXO vout".into()))?,
    })
}

fn record_of(row: &postgres::Row) -> Result<UtxoRecord, StoreError> {
    Ok(UtxoRecord {
        value: u64_of(row.get("value"))?,
        height: u64_of(row.get("height"))?,
        coinbase: row.get("coinbase"),
        script: row.get("script"),
        address: row.get("address"),
    })
}

impl PgUtxoStore {
    /// Checks `block` against the index in `tx` and writes it with its changes (the caller
    /// has validated them and commits).
    fn write_block(
        &self,
        tx: &mut Transaction<'_>,
        chain_id: u64,
        block: &BlockRef,
        changes: &UtxoChanges,
    ) -> Result<Applied, StoreError> {
        let number = block.number;
        let tx = &mut *tx;
        let mut stored: HashMap<u64, Option<BlockRef>> = HashMap::new();
        for n in [Some(number), number.checked_sub(1)].into_iter().flatten() {
            stored.insert(n, Self::read_block(tx, chain_id, n)?);
        }
        if !admit(chain_id, block, None, |n| {
            Ok(stored.get(&n).copied().flatten())
        })? {
            return Ok(Applied::AlreadyPresent);
        }
        super::follows_head(chain_id, Self::read_head(tx, chain_id)?, number)?;
        for (what, list) in [("spent", &changes.spent), ("replaced", &changes.replaced)] {
            let held = Self::delete(tx, chain_id, list)?;
            for (op, r) in list.iter() {
                match held.get(op) {
                    Some(h) if h == r => {}
                    h => return Err(not_held(chain_id, number, what, op, h.is_some())),
                }
            }
        }
        if let Some(op) = Self::insert(tx, chain_id, &changes.created)?.first() {
            return Err(StoreError::Invalid {
                chain_id,
                number,
                what: format!(
                    "created output {op} is already unspent in the index and not listed as replaced"
                ),
            });
        }
        let counts = counted(Self::read_counts(tx, chain_id)?, changes)?;
        Self::write_counts(tx, chain_id, counts)?;
        if let Some(old) = super::pruned_by(number, self.keep_undo) {
            tx.execute(
                "DELETE FROM utxo_undo WHERE chain_id = $1 AND number = $2",
                &[&i64_of(chain_id)?, &i64_of(old)?],
            )?;
        }
        tx.execute(
            "INSERT INTO utxo_undo (chain_id, number, body) VALUES ($1, $2, $3)",
            &[
                &i64_of(chain_id)?,
                &i64_of(number)?,
                &bytes::undo(&Undo::of(changes)),
            ],
        )?;
        txs::pg_write(tx, chain_id, number, &changes.transactions)?;
        super::spent::pg_write(tx, chain_id, number, &changes.transactions)?;
        let uf = cluster_block(tx, chain_id, &changes.transactions)?;
        tx.execute(
            "INSERT INTO utxo_clusters_undo (chain_id, number, body) VALUES ($1, $2, $3)",
            &[
                &i64_of(chain_id)?,
                &i64_of(number)?,
                &cluster::encode_undo(&uf.old),
            ],
        )?;
        if let Some(old) = super::pruned_by(number, self.keep_undo) {
            tx.execute(
                "DELETE FROM utxo_clusters_undo WHERE chain_id = $1 AND number = $2",
                &[&i64_of(chain_id)?, &i64_of(old)?],
            )?;
        }
        tx.execute(
            "INSERT INTO utxo_blocks (chain_id, number, hash, parent_hash, ts) VALUES ($1, $2, $3, $4, $5)",
            &[
                &i64_of(chain_id)?,
                &i64_of(number)?,
                &block.hash.as_slice(),
                &block.parent_hash.as_slice(),
                &i64_of(block.timestamp)?,
            ],
        )?;
        Ok(Applied::Written)
    }

    /// Connects (`postgres://user@host:port/db`; no TLS: a trusted network or a local socket)
    /// and creates or checks the schema.
    pub fn connect(url: &str) -> Result<PgUtxoStore, StoreError> {
        PgUtxoStore::connect_with(url, None)
    }

    /// Connects, keeping the undo records of the newest `keep_undo` blocks only.
    pub fn connect_with(url: &str, keep_undo: KeepUndo) -> Result<PgUtxoStore, StoreError> {
        Ok(PgUtxoStore {
            pool: Pool::connect(url, 2, &SCHEMA)?,
            keep_undo,
        })
    }

    fn enter(tx: &mut Transaction<'_>, chain_id: u64) -> Result<(), StoreError> {
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&CHAIN_LOCK_CLASS, &((chain_id as u32) as i32)],
        )?;
        Ok(())
    }

    fn read_block(
        tx: &mut Transaction<'_>,
        chain_id: u64,
        number: u64,
    ) -> Result<Option<BlockRef>, StoreError> {
        tx.query_opt(
            "SELECT number, hash, parent_hash, ts FROM utxo_blocks WHERE chain_id = $1 AND number = $2",
            &[&i64_of(chain_id)?, &i64_of(number)?],
        )?
        .map(|r| block_of(r.get(0), r.get(1), r.get(2), r.get(3)))
        .transpose()
    }

    fn read_head(
        tx: &mut impl postgres::GenericClient,
        chain_id: u64,
    ) -> Result<Option<BlockRef>, StoreError> {
        tx.query_opt(
            "SELECT number, hash, parent_hash, ts FROM utxo_blocks WHERE chain_id = $1 ORDER BY number DESC LIMIT 1",
            &[&i64_of(chain_id)?],
        )?
        .map(|r| block_of(r.get(0), r.get(1), r.get(2), r.get(3)))
        .transpose()
    }

    fn read_counts(
        tx: &mut impl postgres::GenericClient,
        chain_id: u64,
    ) -> Result<UtxoCounts, StoreError> {
        Ok(tx
            .query_opt(
                "SELECT outputs, total FROM utxo_counts WHERE chain_id = $1",
                &[&i64_of(chain_id)?],
            )?
            .map(|r| -> Result<UtxoCounts, StoreError> {
                Ok(UtxoCounts {
                    outputs: u64_of(r.get(0))?,
                    total: u64_of(r.get(1))?,
                })
            })
            .transpose()?
            .unwrap_or_default())
    }

    fn write_counts(
        tx: &mut Transaction<'_>,
        chain_id: u64,
        c: UtxoCounts,
    ) -> Result<(), StoreError> {
        tx.execute(
            "INSERT INTO utxo_counts (chain_id, outputs, total) VALUES ($1, $2, $3)
             ON CONFLICT (chain_id) DO UPDATE SET outputs = EXCLUDED.outputs, total = EXCLUDED.total",
            &[&i64_of(chain_id)?, &i64_of(c.outputs)?, &i64_of(c.total)?],
        )?;
        Ok(())
    }

    /// Deletes `list`'s outpoints and returns the rows deleted, by outpoint.
    fn delete(
        tx: &mut Transaction<'_>,
        chain_id: u64,
        list: &[(OutPointKey, UtxoRecord)],
    ) -> Result<HashMap<OutPointKey, UtxoRecord>, StoreError> {
        if list.is_empty() {
            return Ok(HashMap::new());
        }
        let c = columns(list)?;
        let rows = tx.query(
            "DELETE FROM utxo_coins c USING unnest($2::bytea[], $3::bigint[]) AS d(txid, vout)
             WHERE c.chain_id = $1 AND c.txid = d.txid AND c.vout = d.vout
             RETURNING c.txid, c.vout, c.value, c.height, c.coinbase, c.script, c.address",
            &[&i64_of(chain_id)?, &c.txids, &c.vouts],
        )?;
        rows.iter()
            .map(|r| Ok((outpoint_of(r.get("txid"), r.get("vout"))?, record_of(r)?)))
            .collect()
    }

    /// Deletes the outpoints of `list`; how many rows went.
    fn delete_outpoints(
        tx: &mut Transaction<'_>,
        chain_id: u64,
        list: &[(OutPointKey, u64)],
    ) -> Result<u64, StoreError> {
        if list.is_empty() {
            return Ok(0);
        }
        let txids: Vec<&[u8]> = list.iter().map(|(op, _)| op.txid.as_slice()).collect();
        let vouts: Vec<i64> = list.iter().map(|(op, _)| i64::from(op.vout)).collect();
        Ok(tx.execute(
            "DELETE FROM utxo_coins c USING unnest($2::bytea[], $3::bigint[]) AS d(txid, vout)
             WHERE c.chain_id = $1 AND c.txid = d.txid AND c.vout = d.vout",
            &[&i64_of(chain_id)?, &txids, &vouts],
        )?)
    }

    /// Inserts `list`; returns the outpoints that were already there (not inserted).
    fn insert(
        tx: &mut Transaction<'_>,
        chain_id: u64,
        list: &[(OutPointKey, UtxoRecord)],
    ) -> Result<Vec<OutPointKey>, StoreError> {
        if list.is_empty() {
            return Ok(Vec::new());
        }
        let c = columns(list)?;
        let rows = tx.query(
            "INSERT INTO utxo_coins (chain_id, txid, vout, value, height, coinbase, script, address)
             SELECT $1, * FROM unnest($2::bytea[], $3::bigint[], $4::bigint[], $5::bigint[], $6::boolean[], $7::bytea[], $8::text[])
             ON CONFLICT DO NOTHING RETURNING txid, vout",
            &[&i64_of(chain_id)?, &c.txids, &c.vouts, &c.values, &c.heights, &c.coinbases, &c.scripts, &c.addresses],
        )?;
        let inserted: std::collections::HashSet<OutPointKey> = rows
            .iter()
            .map(|r| outpoint_of(r.get(0), r.get(1)))
            .collect::<Result<_, _>>()?;
        Ok(list
            .iter()
            .map(|(op, _)| *op)
            .filter(|op| !inserted.contains(op))
            .collect())
    }
}

fn read_node(
    tx: &mut impl postgres::GenericClient,
    chain_id: u64,
    address: &str,
) -> Result<Option<Node>, StoreError> {
    tx.query_opt(
        "SELECT parent, size FROM utxo_clusters WHERE chain_id = $1 AND address = $2",
        &[&i64_of(chain_id)?, &address],
    )?
    .map(|r| {
        Ok(Node {
            parent: r.get(0),
            size: u64_of(r.get(1))?,
        })
    })
    .transpose()
}

/// Runs a block's merges against the stored union-find and writes the changed entries (the
/// block's input addresses read in one query, their parents one by one); the changes, for an
/// undo record.
fn cluster_block(
    tx: &mut Transaction<'_>,
    chain_id: u64,
    transactions: &[TxRecord],
) -> Result<cluster::UfChanges, StoreError> {
    let groups = cluster::merges(transactions);
    let mut known = read_nodes(tx, chain_id, groups.iter().flatten().copied())?;
    let uf = cluster::apply(&groups, |a| match known.get(a) {
        Some(n) => Ok(n.clone()),
        None => {
            let n = read_node(tx, chain_id, a)?;
            known.insert(a.to_owned(), n.clone());
            Ok(n)
        }
    })?;
    write_nodes(tx, chain_id, &uf.new)?;
    Ok(uf)
}

/// The entries of `addresses` (`None` where there is none), in one query.
fn read_nodes<'a>(
    tx: &mut Transaction<'_>,
    chain_id: u64,
    addresses: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, Option<Node>>, StoreError> {
    let mut known: HashMap<String, Option<Node>> =
        addresses.map(|a| (a.to_owned(), None)).collect();
    if known.is_empty() {
        return Ok(known);
    }
    let list: Vec<&str> = known.keys().map(String::as_str).collect();
    let rows = tx.query(
        "SELECT address, parent, size FROM utxo_clusters WHERE chain_id = $1 AND address = ANY($2)",
        &[&i64_of(chain_id)?, &list],
    )?;
    for r in rows {
        let address: String = r.get(0);
        known.insert(
            address,
            Some(Node {
                parent: r.get(1),
                size: u64_of(r.get(2))?,
            }),
        );
    }
    Ok(known)
}

/// Writes `nodes` in one statement.
fn write_nodes(
    tx: &mut Transaction<'_>,
    chain_id: u64,
    nodes: &[(String, Node)],
) -> Result<(), StoreError> {
    if nodes.is_empty() {
        return Ok(());
    }
    let addresses: Vec<&str> = nodes.iter().map(|(a, _)| a.as_str()).collect();
    let parents: Vec<&str> = nodes.iter().map(|(_, n)| n.parent.as_str()).collect();
    let sizes: Vec<i64> = nodes
        .iter()
        .map(|(_, n)| i64_of(n.size))
        .collect::<Result<_, _>>()?;
    tx.execute(
        "INSERT INTO utxo_clusters (chain_id, address, parent, size)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[])
         ON CONFLICT (chain_id, address) DO UPDATE SET parent = EXCLUDED.parent, size = EXCLUDED.size",
        &[&i64_of(chain_id)?, &addresses, &parents, &sizes],
    )?;
    Ok(())
}

fn write_node(
    tx: &mut Transaction<'_>,
    chain_id: u64,
    address: &str,
    node: Option<&Node>,
) -> Result<(), StoreError> {
    match node {
        Some(n) => tx.execute(
            "INSERT INTO utxo_clusters (chain_id, address, parent, size) VALUES ($1, $2, $3, $4)
             ON CONFLICT (chain_id, address) DO UPDATE SET parent = EXCLUDED.parent, size = EXCLUDED.size",
            &[&i64_of(chain_id)?, &address, &n.parent, &i64_of(n.size)?],
        )?,
        None => tx.execute(
            "DELETE FROM utxo_clusters WHERE chain_id = $1 AND address = $2",
            &[&i64_of(chain_id)?, &address],
        )?,
    };
    Ok(())
}

impl UtxoStore for PgUtxoStore {
    fn apply_block(
        &self,
        chain_id: u64,
        block: &BlockRef,
        changes: &UtxoChanges,
    ) -> Result<Applied, StoreError> {
        validate(chain_id, block, changes)?;
        let mut client = self.pool.client();
        let mut tx = client.transaction()?;
        Self::enter(&mut tx, chain_id)?;
        let applied = self.write_block(&mut tx, chain_id, block, changes)?;
        if applied == Applied::Written {
            tx.commit()?;
        }
        Ok(applied)
    }

    /// All or nothing, in one transaction (with undo records: this backend is not the
    /// backfill's).
    fn apply_blocks(
        &self,
        chain_id: u64,
        blocks: &[(BlockRef, UtxoChanges)],
    ) -> Result<Vec<Applied>, StoreError> {
        super::check_consecutive(chain_id, blocks)?;
        for (b, c) in blocks {
            validate(chain_id, b, c)?;
        }
        let mut client = self.pool.client();
        let mut tx = client.transaction()?;
        Self::enter(&mut tx, chain_id)?;
        let mut out = Vec::with_capacity(blocks.len());
        for (b, c) in blocks {
            let applied = self.write_block(&mut tx, chain_id, b, c)?;
            if applied == Applied::AlreadyPresent && out.contains(&Applied::Written) {
                return Err(super::stored_after_new(chain_id, b.number));
            }
            out.push(applied);
        }
        tx.commit()?;
        Ok(out)
    }

    /// Every block's undo record is kept here ([`UtxoStore::apply_blocks`]).
    fn apply_blocks_keeping_undo(
        &self,
        chain_id: u64,
        blocks: &[(BlockRef, UtxoChanges)],
        _undo_from: u64,
    ) -> Result<Vec<Applied>, StoreError> {
        self.apply_blocks(chain_id, blocks)
    }

    fn unwind_above(&self, chain_id: u64, number: u64) -> Result<Vec<BlockRef>, StoreError> {
        let Some(first) = number.checked_add(1) else {
            return Ok(Vec::new());
        };
        let mut client = self.pool.client();
        let mut tx = client.transaction()?;
        Self::enter(&mut tx, chain_id)?;
        let rows = tx.query(
            "SELECT b.number, b.hash, b.parent_hash, b.ts, u.body FROM utxo_blocks b
             LEFT JOIN utxo_undo u ON u.chain_id = b.chain_id AND u.number = b.number
             WHERE b.chain_id = $1 AND b.number >= $2 ORDER BY b.number DESC",
            &[&i64_of(chain_id)?, &i64_of(first)?],
        )?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut counts = Self::read_counts(&mut tx, chain_id)?;
        let mut removed = Vec::with_capacity(rows.len());
        for row in &rows {
            let block = block_of(row.get(0), row.get(1), row.get(2), row.get(3))?;
            let body: Option<Vec<u8>> = row.get(4);
            let undo =
                bytes::read_undo(&body.ok_or_else(|| super::undo_pruned(chain_id, block.number))?)?;
            let removed_rows = Self::delete_outpoints(&mut tx, chain_id, &undo.created)?;
            if removed_rows != undo.created.len() as u64 {
                return Err(StoreError::Corrupt(format!(
                    "block {}: outputs it created are missing from the index",
                    block.number
                )));
            }
            if let Some(op) = Self::insert(&mut tx, chain_id, &undo.restored)?.first() {
                return Err(StoreError::Corrupt(format!(
                    "block {}: output {op} it spent is unspent again",
                    block.number
                )));
            }
            counts = undo.revert(counts)?;
            let cundo: Option<Vec<u8>> = tx
                .query_opt(
                    "SELECT body FROM utxo_clusters_undo WHERE chain_id = $1 AND number = $2",
                    &[&i64_of(chain_id)?, &i64_of(block.number)?],
                )?
                .map(|r| r.get(0));
            for (a, old) in cundo
                .map(|b| cluster::decode_undo(&b))
                .transpose()?
                .unwrap_or_default()
            {
                write_node(&mut tx, chain_id, &a, old.as_ref())?;
            }
            removed.push(block);
        }
        tx.execute(
            "DELETE FROM utxo_clusters_undo WHERE chain_id = $1 AND number >= $2",
            &[&i64_of(chain_id)?, &i64_of(first)?],
        )?;
        tx.execute(
            "DELETE FROM utxo_undo WHERE chain_id = $1 AND number >= $2",
            &[&i64_of(chain_id)?, &i64_of(first)?],
        )?;
        tx.execute(
            "DELETE FROM utxo_txs WHERE chain_id = $1 AND height >= $2",
            &[&i64_of(chain_id)?, &i64_of(first)?],
        )?;
        tx.execute(
            "DELETE FROM utxo_transfers WHERE chain_id = $1 AND height >= $2",
            &[&i64_of(chain_id)?, &i64_of(first)?],
        )?;
        super::spent::pg_unwind(&mut tx, chain_id, first)?;
        tx.execute(
            "DELETE FROM utxo_blocks WHERE chain_id = $1 AND number >= $2",
            &[&i64_of(chain_id)?, &i64_of(first)?],
        )?;
        Self::write_counts(&mut tx, chain_id, counts)?;
        tx.commit()?;
        removed.reverse();
        Ok(removed)
    }

    fn head(&self, chain_id: u64) -> Result<Option<BlockRef>, StoreError> {
        Self::read_head(&mut *self.pool.client(), chain_id)
    }

    fn block(&self, chain_id: u64, number: u64) -> Result<Option<BlockRef>, StoreError> {
        let mut client = self.pool.client();
        client
            .query_opt(
                "SELECT number, hash, parent_hash, ts FROM utxo_blocks WHERE chain_id = $1 AND number = $2",
                &[&i64_of(chain_id)?, &i64_of(number)?],
            )?
            .map(|r| block_of(r.get(0), r.get(1), r.get(2), r.get(3)))
            .transpose()
    }

    fn utxo(
        &self,
        chain_id: u64,
        outpoint: &OutPointKey,
    ) -> Result<Option<UtxoRecord>, StoreError> {
        let mut client = self.pool.client();
        client
            .query_opt(
                "SELECT value, height, coinbase, script, address FROM utxo_coins
                 WHERE chain_id = $1 AND txid = $2 AND vout = $3",
                &[
                    &i64_of(chain_id)?,
                    &outpoint.txid.as_slice(),
                    &i64::from(outpoint.vout),
                ],
            )?
            .map(|r| record_of(&r))
            .transpose()
    }

    fn counts(&self, chain_id: u64) -> Result<UtxoCounts, StoreError> {
        Self::read_counts(&mut *self.pool.client(), chain_id)
    }

    fn utxos(
        &self,
        chain_id: u64,
        outpoints: &[OutPointKey],
    ) -> Result<Vec<Option<UtxoRecord>>, StoreError> {
        super::check_batch(outpoints.len())?;
        if outpoints.is_empty() {
            return Ok(Vec::new());
        }
        let txids: Vec<&[u8]> = outpoints.iter().map(|op| op.txid.as_slice()).collect();
        let vouts: Vec<i64> = outpoints.iter().map(|op| i64::from(op.vout)).collect();
        let rows = self.pool.client().query(
            "SELECT c.txid, c.vout, c.value, c.height, c.coinbase, c.script, c.address
             FROM unnest($2::bytea[], $3::bigint[]) AS q(txid, vout)
             JOIN utxo_coins c ON c.chain_id = $1 AND c.txid = q.txid AND c.vout = q.vout",
            &[&i64_of(chain_id)?, &txids, &vouts],
        )?;
        let mut found: HashMap<OutPointKey, UtxoRecord> = HashMap::with_capacity(rows.len());
        for r in &rows {
            found.insert(outpoint_of(r.get("txid"), r.get("vout"))?, record_of(r)?);
        }
        Ok(outpoints.iter().map(|op| found.get(op).cloned()).collect())
    }

    fn cluster(&self, chain_id: u64, address: &str) -> Result<Cluster, StoreError> {
        let mut client = self.pool.client();
        cluster::find(address, |a| read_node(&mut *client, chain_id, a))
    }

    fn cluster_members(
        &self,
        chain_id: u64,
        root: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let mut client = self.pool.client();
        // One snapshot for the whole walk: a block written meanwhile is seen whole or not.
        let mut tx = client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let chain = i64_of(chain_id)?;
        let out = cluster::members(root, limit, |parents, room| {
            let room = i64::try_from(room).unwrap_or(i64::MAX);
            let rows = tx.query(
                "SELECT address FROM utxo_clusters
                 WHERE chain_id = $1 AND parent = ANY($2) AND address <> parent
                 ORDER BY parent, address LIMIT $3",
                &[&chain, &parents, &room],
            )?;
            Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
        })?;
        tx.commit()?;
        Ok(out)
    }

    fn import_block(
        &self,
        chain_id: u64,
        block: &BlockRef,
        transactions: &[TxRecord],
    ) -> Result<Applied, StoreError> {
        let mut client = self.pool.client();
        let mut tx = client.transaction()?;
        Self::enter(&mut tx, chain_id)?;
        let stored = Self::read_block(&mut tx, chain_id, block.number)?;
        if !super::admit_import(chain_id, block, transactions, stored)? {
            return Ok(Applied::AlreadyPresent);
        }
        txs::pg_write(&mut tx, chain_id, block.number, transactions)?;
        super::spent::pg_write(&mut tx, chain_id, block.number, transactions)?;
        // Clusters over imported history too (an import is never unwound: no undo record).
        cluster_block(&mut tx, chain_id, transactions)?;
        tx.execute(
            "INSERT INTO utxo_blocks (chain_id, number, hash, parent_hash, ts) VALUES ($1, $2, $3, $4, $5)",
            &[
                &i64_of(chain_id)?,
                &i64_of(block.number)?,
                &block.hash.as_slice(),
                &block.parent_hash.as_slice(),
                &i64_of(block.timestamp)?,
            ],
        )?;
        tx.commit()?;
        Ok(Applied::Written)
    }

    fn rebuild_clusters(
        &self,
        chain_id: u64,
        options: RebuildOptions,
        progress: &dyn RebuildProgress,
    ) -> Result<RebuildReport, StoreError> {
        use postgres::fallible_iterator::FallibleIterator;
        use postgres::types::Type;
        let chain = i64_of(chain_id)?;
        let mut client = self.pool.client();
        let mut tx = client.transaction()?;
        Self::enter(&mut tx, chain_id)?;
        let head = Self::read_head(&mut tx, chain_id)?.map_or(0, |b| b.number);
        let kept = tx
            .query(
                "SELECT number FROM utxo_undo WHERE chain_id = $1",
                &[&chain],
            )?
            .iter()
            .map(|r| u64_of(r.get(0)))
            .collect::<Result<_, _>>()?;
        let mut feed = Feed::new(chain_id, head, kept, options, progress);
        {
            let mut rows = tx.query_raw(
                "SELECT height, body FROM utxo_txs WHERE chain_id = $1 ORDER BY height, position",
                [&chain],
            )?;
            while let Some(r) = rows.next()? {
                feed.tx(u64_of(r.get(0))?, txs::decode(r.get(1))?)?;
            }
        }
        feed.finish()?;
        let started = std::time::Instant::now();
        let nodes = feed.build.nodes().count() as u64;
        let total = 2 + nodes + feed.undo.len() as u64;
        let left = "nothing was changed (one transaction, rolled back)";
        tx.execute("DELETE FROM utxo_clusters WHERE chain_id = $1", &[&chain])?;
        tx.execute(
            "DELETE FROM utxo_clusters_undo WHERE chain_id = $1",
            &[&chain],
        )?;
        feed.written(2, total, left)?;
        {
            let sink = tx.copy_in(
                "COPY utxo_clusters (chain_id, address, parent, size) FROM STDIN (FORMAT binary)",
            )?;
            let mut w = postgres::binary_copy::BinaryCopyInWriter::new(
                sink,
                &[Type::INT8, Type::TEXT, Type::TEXT, Type::INT8],
            );
            let mut done = 2u64;
            for (a, parent, size) in feed.build.nodes() {
                w.write(&[&chain, &a, &parent, &i64_of(size)?])?;
                done += 1;
                if done.is_multiple_of(100_000) {
                    feed.written(done, total, left)?;
                }
            }
            w.finish()?;
        }
        for chunk in feed.undo.chunks(1_000) {
            let numbers: Vec<i64> = chunk
                .iter()
                .map(|(h, _)| i64_of(*h))
                .collect::<Result<_, _>>()?;
            let bodies: Vec<&[u8]> = chunk.iter().map(|(_, b)| b.as_slice()).collect();
            tx.execute(
                "INSERT INTO utxo_clusters_undo (chain_id, number, body)
                 SELECT $1, * FROM unnest($2::bigint[], $3::bytea[])",
                &[&chain, &numbers, &bodies],
            )?;
        }
        feed.written(total, total, left)?;
        tx.commit()?;
        let mut report = feed.report.clone();
        report.write_time = started.elapsed();
        Ok(report)
    }

    fn block_transactions(&self, chain_id: u64, number: u64) -> Result<Vec<TxRecord>, StoreError> {
        let rows = self.pool.client().query(
            "SELECT body FROM utxo_txs WHERE chain_id = $1 AND height = $2 ORDER BY position",
            &[&i64_of(chain_id)?, &i64_of(number)?],
        )?;
        rows.iter().map(|r| txs::decode(r.get(0))).collect()
    }

    fn transaction(
        &self,
        chain_id: u64,
        txid: &B256,
    ) -> Result<Vec<(u64, u32, TxRecord)>, StoreError> {
        let rows = self.pool.client().query(
            "SELECT height, position, body FROM utxo_txs WHERE chain_id = $1 AND txid = $2 ORDER BY height",
            &[&i64_of(chain_id)?, &txid.as_slice()],
        )?;
        rows.iter()
            .map(|r| {
                let pos: i32 = r.get(1);
                Ok((
                    u64_of(r.get(0))?,
                    u32::try_from(pos).map_err(|_| StoreError::Corrupt("tx position".into()))?,
                    txs::decode(r.get(2))?,
                ))
            })
            .collect()
    }

    fn address_transfers(
        &self,
        chain_id: u64,
        address: &str,
        from_height: u64,
        limit: usize,
    ) -> Result<Vec<AddressTransfer>, StoreError> {
        super::check_limit(limit)?;
        let rows = self.pool.client().query(
            "SELECT height, position, direction, n, txid, value, out_txid, out_vout FROM utxo_transfers
             WHERE chain_id = $1 AND address = $2 AND height >= $3
             ORDER BY height, position, direction, n LIMIT $4",
            &[&i64_of(chain_id)?, &address, &i64_of(from_height)?, &(limit as i64)],
        )?;
        let corrupt = |w: &str| StoreError::Corrupt(format!("address entry {w}"));
        rows.iter()
            .map(|r| {
                let txid: &[u8] = r.get(4);
                if txid.len() != 32 {
                    return Err(corrupt("txid"));
                }
                let pos: i32 = r.get(1);
                let n: i32 = r.get(3);
                let dir: i16 = r.get(2);
                Ok(AddressTransfer {
                    height: u64_of(r.get(0))?,
                    tx_index: u32::try_from(pos).map_err(|_| corrupt("position"))?,
                    direction: Direction::from_code(
                        u8::try_from(dir).map_err(|_| corrupt("direction"))?,
                    )?,
                    index: u32::try_from(n).map_err(|_| corrupt("index"))?,
                    txid: B256::from_slice(txid),
                    value: u64_of(r.get(5))?,
                    outpoint: outpoint_of(r.get(6), r.get(7))?,
                })
            })
            .collect()
    }

    fn spenders(
        &self,
        chain_id: u64,
        outpoints: &[OutPointKey],
    ) -> Result<Vec<Option<super::Spender>>, StoreError> {
        super::spent::pg_read(&mut *self.pool.client(), chain_id, outpoints)
    }

    fn transactions(
        &self,
        chain_id: u64,
        txids: &[B256],
    ) -> Result<Vec<Vec<super::PlacedTx>>, StoreError> {
        super::spent::pg_transactions(&mut *self.pool.client(), chain_id, txids)
    }
}
