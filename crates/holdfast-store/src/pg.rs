//! The PostgreSQL backend, for several Holdfast instances sharing state. Same semantics as
//! the embedded store; blocks are written in one transaction with `COPY` for the transfers.
//! The schema is created on connect and versioned (`holdfast_schema`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::MutexGuard;
use std::sync::atomic::{AtomicUsize, Ordering};

use alloy_primitives::{Address, B256, U256};
use holdfast_primitives::{Asset, BlockRef, Conversion, Transfer};
use postgres::{Client, Row};

use crate::codec::{self, Reader};
use crate::{
    AddressEntry, AddressQuery, Applied, BlockData, Direction, Place, Store, StoreError,
    StoreStats, TransferQuery, check_after, check_limit, validate,
};
use crate::{admit, import};

/// Schema migrations, in order: `MIGRATIONS[i]` takes a database from version `i` to
/// `i + 1` (recorded in `holdfast_schema`). Append new ones; never edit a released one.
const MIGRATIONS: &[&str] = &["
CREATE TABLE blocks (
    chain_id BIGINT NOT NULL, number BIGINT NOT NULL,
    hash BYTEA NOT NULL, parent_hash BYTEA NOT NULL, ts BIGINT NOT NULL,
    PRIMARY KEY (chain_id, number));
CREATE TABLE transfers (
    chain_id BIGINT NOT NULL, block_number BIGINT NOT NULL, tx_index BIGINT NOT NULL, position BYTEA NOT NULL,
    tied BOOLEAN NOT NULL, block_hash BYTEA NOT NULL, ts BIGINT NOT NULL, tx_hash BYTEA NOT NULL,
    from_addr BYTEA NOT NULL, to_addr BYTEA NOT NULL, asset BYTEA NOT NULL, token BYTEA,
    amount NUMERIC(78, 0) NOT NULL,
    PRIMARY KEY (chain_id, block_number, tx_index, position));
CREATE INDEX transfers_from ON transfers (chain_id, from_addr, block_number, tx_index, position);
CREATE INDEX transfers_to ON transfers (chain_id, to_addr, block_number, tx_index, position);
CREATE INDEX transfers_tx ON transfers (chain_id, tx_hash);
CREATE INDEX transfers_token ON transfers (chain_id, token, block_number, tx_index, position);
CREATE TABLE conversions (
    chain_id BIGINT NOT NULL, block_number BIGINT NOT NULL, tx_index BIGINT NOT NULL, log_index BIGINT NOT NULL,
    tx_hash BYTEA NOT NULL, body BYTEA NOT NULL,
    PRIMARY KEY (chain_id, block_number, tx_index, log_index));
CREATE INDEX conversions_tx ON conversions (chain_id, tx_hash);
", "
-- The address indexes carry what a wallet's history reads (the counterparty, the amount),
-- so `Store::address_entries` is an index-only scan. They replace the plain ones (same keys).
CREATE INDEX transfers_from_entries ON transfers (chain_id, from_addr, block_number, tx_index, position) INCLUDE (to_addr, amount);
DROP INDEX transfers_from;
CREATE INDEX transfers_to_entries ON transfers (chain_id, to_addr, block_number, tx_index, position) INCLUDE (from_addr, amount);
DROP INDEX transfers_to;
"];

const SCHEMA: crate::pg_pool::Schema = crate::pg_pool::Schema {
    what: "transfer",
    table: "holdfast_schema",
    lock: 7_400_001,
    migrations: MIGRATIONS,
};

const COLUMNS: &str = "block_number, tx_index, position, block_hash, ts, tx_hash, from_addr, to_addr, asset, amount::text";
/// `COLUMNS` of the table aliased `t`.
const STORED: &str = "t.block_number, t.tx_index, t.position, t.block_hash, t.ts, t.tx_hash, t.from_addr, t.to_addr, t.asset, t.amount::text";

/// A PostgreSQL-backed store (one connection, serialized).
pub struct PgStore {
    /// One connection (writes are serialized by its lock); a pool of one so that dropping the
    /// store on an async runtime's thread does not panic (the pool closes it on a plain one).
    client: crate::pg_pool::Pool,
    /// Test hook: panic while staging a write, after this many transfers.
    fail_after: AtomicUsize,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

fn i64_of(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Postgres(format!("{v} does not fit a BIGINT")))
}

impl PgStore {
    /// Connects (`postgres://user@host:port/db`; no TLS: run it on a trusted network or a
    /// local socket) and creates or checks the schema.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        Ok(PgStore {
            client: crate::pg_pool::Pool::connect(url, 1, &SCHEMA)?,
            fail_after: AtomicUsize::new(usize::MAX),
        })
    }

    fn client(&self) -> Result<MutexGuard<'_, Client>, StoreError> {
        // A panic mid-write dropped its transaction, which rolled back: the connection is
        // clean, so a poisoned lock is safe to take over.
        Ok(self.client.client())
    }

    /// Test hook for the crash tests: the next write panics after staging `transfers`
    /// transfers, inside its transaction.
    #[doc(hidden)]
    pub fn panic_during_next_write(&self, transfers: usize) {
        self.fail_after.store(transfers, Ordering::SeqCst);
    }

    fn check_fail(&self, staged: usize) {
        if self
            .fail_after
            .compare_exchange(staged, usize::MAX, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            panic!("injected failure after staging {staged} transfers");
        }
    }

    /// Deletes everything (tests and benchmarks).
    pub fn truncate(&self) -> Result<(), StoreError> {
        self.client()?
            .batch_execute("TRUNCATE blocks, transfers, conversions")?;
        Ok(())
    }
}

/// One `COPY ... FROM STDIN` text-format row of a transfer.
fn copy_row(t: &Transfer, tied: bool, out: &mut String) {
    let hex = |b: &[u8]| {
        let mut s = String::with_capacity(3 + b.len() * 2);
        s.push_str("\\\\x");
        for x in b {
            let _ = write!(s, "{x:02x}");
        }
        s
    };
    let mut pos = Vec::new();
    codec::position(&t.position, &mut pos);
    let mut asset = Vec::new();
    codec::put_asset(&t.asset, &mut asset);
    let token = t
        .asset
        .token()
        .map_or_else(|| "\\N".to_owned(), |a| hex(a.as_slice()));
    let _ = writeln!(
        out,
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        t.chain_id,
        t.block_number,
        t.tx_index,
        hex(&pos),
        if tied { "t" } else { "f" },
        hex(t.block_hash.as_slice()),
        t.timestamp,
        hex(t.tx_hash.as_slice()),
        hex(t.from.as_slice()),
        hex(t.to.as_slice()),
        hex(&asset),
        token,
        t.amount
    );
}

fn copy_transfers(
    txn: &mut postgres::Transaction<'_>,
    table: &str,
    rows: &str,
) -> Result<(), StoreError> {
    let mut w = txn.copy_in(&format!("COPY {table} (chain_id, block_number, tx_index, position, tied, block_hash, ts, tx_hash, from_addr, to_addr, asset, token, amount) FROM STDIN"))?;
    w.write_all(rows.as_bytes())
        .map_err(|e| StoreError::Postgres(e.to_string()))?;
    w.finish()?;
    Ok(())
}

/// Inserts `COPY` rows, skipping those whose place is already stored; how many were new.
fn insert_skipping_stored(
    txn: &mut postgres::Transaction<'_>,
    rows: &str,
) -> Result<u64, StoreError> {
    txn.batch_execute(
        "CREATE TEMP TABLE IF NOT EXISTS stage (LIKE transfers) ON COMMIT DELETE ROWS",
    )?;
    copy_transfers(txn, "stage", rows)?;
    let new = txn.execute(
        "INSERT INTO transfers SELECT * FROM stage ON CONFLICT DO NOTHING",
        &[],
    )?;
    Ok(new)
}

fn b256(row: &Row, i: usize) -> Result<B256, StoreError> {
    let b: &[u8] = row.get(i);
    (b.len() == 32)
        .then(|| B256::from_slice(b))
        .ok_or_else(|| codec::corrupt("hash"))
}

fn address(row: &Row, i: usize) -> Result<Address, StoreError> {
    let b: &[u8] = row.get(i);
    (b.len() == 20)
        .then(|| Address::from_slice(b))
        .ok_or_else(|| codec::corrupt("address"))
}

fn transfer(chain_id: u64, row: &Row) -> Result<Transfer, StoreError> {
    let pos: &[u8] = row.get(2);
    let asset: &[u8] = row.get(8);
    let amount: String = row.get(9);
    Ok(Transfer {
        chain_id,
        block_number: u64::try_from(row.get::<_, i64>(0))
            .map_err(|_| codec::corrupt("block number"))?,
        tx_index: u32::try_from(row.get::<_, i64>(1)).map_err(|_| codec::corrupt("tx index"))?,
        position: codec::read_position(pos)?,
        block_hash: b256(row, 3)?,
        timestamp: u64::try_from(row.get::<_, i64>(4)).map_err(|_| codec::corrupt("timestamp"))?,
        tx_hash: b256(row, 5)?,
        from: address(row, 6)?,
        to: address(row, 7)?,
        asset: Reader(asset).asset()?,
        amount: U256::from_str_radix(&amount, 10).map_err(|_| codec::corrupt("amount"))?,
    })
}

fn block(number: u64, row: &Row) -> Result<BlockRef, StoreError> {
    Ok(BlockRef {
        number,
        hash: b256(row, 0)?,
        parent_hash: b256(row, 1)?,
        timestamp: u64::try_from(row.get::<_, i64>(2)).map_err(|_| codec::corrupt("timestamp"))?,
    })
}

/// A `transfers` query's conditions and their parameters, in order: `chain_id = $1`, then
/// what is added.
struct Where {
    clauses: Vec<String>,
    params: Vec<Box<dyn postgres::types::ToSql + Sync>>,
}

impl Where {
    fn new(chain_id: u64) -> Result<Where, StoreError> {
        Ok(Where {
            clauses: vec!["chain_id = $1".into()],
            params: vec![Box::new(i64_of(chain_id)?)],
        })
    }

    fn param(&mut self, p: impl postgres::types::ToSql + Sync + 'static) -> String {
        self.params.push(Box::new(p));
        format!("${}", self.params.len())
    }

    fn clause(&mut self, c: String) {
        self.clauses.push(c);
    }

    fn eq(&mut self, column: &str, value: Vec<u8>) {
        let p = self.param(value);
        self.clause(format!("{column} = {p}"));
    }

    /// Blocks `from..=to` (a bound past BIGINT is no bound).
    fn blocks(&mut self, from: u64, to: u64) {
        let p = self.param(i64::try_from(from).unwrap_or(i64::MAX));
        self.clause(format!("block_number >= {p}"));
        if let Ok(to) = i64::try_from(to) {
            let p = self.param(to);
            self.clause(format!("block_number <= {p}"));
        }
    }

    /// Places after `after` (a row comparison: the primary key's order, bytea compared as
    /// bytes like the embedded store's keys).
    fn after(&mut self, after: Option<&Place>) -> Result<(), StoreError> {
        if let Some(a) = after {
            let mut pos = Vec::new();
            codec::position(&a.position, &mut pos);
            let b = self.param(i64_of(a.block_number)?);
            let t = self.param(i64::from(a.tx_index));
            let p = self.param(pos);
            self.clause(format!(
                "(block_number, tx_index, position) > ({b}, {t}, {p})"
            ));
        }
        Ok(())
    }

    fn select(
        mut self,
        columns: &str,
        limit: usize,
    ) -> (String, Vec<Box<dyn postgres::types::ToSql + Sync>>) {
        let lim = self.param(limit as i64);
        (
            format!(
                "SELECT {columns} FROM transfers WHERE {} ORDER BY block_number, tx_index, position LIMIT {lim}",
                self.clauses.join(" AND ")
            ),
            self.params,
        )
    }
}

impl Store for PgStore {
    fn apply_blocks(
        &self,
        chain_id: u64,
        blocks: &[BlockData],
    ) -> Result<Vec<Applied>, StoreError> {
        validate(chain_id, blocks)?;
        let chain = i64_of(chain_id)?;
        let mut client = self.client()?;
        let mut txn = client.transaction()?;
        let mut applied = Vec::with_capacity(blocks.len());
        let mut rows = String::new();
        let mut staged = 0;
        let mut below: Option<BlockRef> = None;
        for b in blocks {
            let n = b.block.number;
            let stored = |txn: &mut postgres::Transaction<'_>,
                          m: u64|
             -> Result<Option<BlockRef>, StoreError> {
                txn.query_opt("SELECT hash, parent_hash, ts FROM blocks WHERE chain_id = $1 AND number = $2 FOR UPDATE", &[&chain, &i64_of(m)?])?
                    .map(|r| block(m, &r))
                    .transpose()
            };
            if !admit(chain_id, &b.block, below, |m| stored(&mut txn, m))? {
                applied.push(Applied::AlreadyPresent);
                below = Some(b.block);
                continue;
            }
            txn.execute(
                "INSERT INTO blocks (chain_id, number, hash, parent_hash, ts) VALUES ($1, $2, $3, $4, $5)",
                &[&chain, &i64_of(n)?, &b.block.hash.as_slice(), &b.block.parent_hash.as_slice(), &i64_of(b.block.timestamp)?],
            )?;
            for t in &b.transfers {
                copy_row(t, true, &mut rows);
                staged += 1;
                self.check_fail(staged);
            }
            for c in &b.conversions {
                let mut body = Vec::new();
                codec::conversion_value(c, &mut body);
                txn.execute(
                    "INSERT INTO conversions (chain_id, block_number, tx_index, log_index, tx_hash, body) VALUES ($1, $2, $3, $4, $5, $6)",
                    &[&chain, &i64_of(n)?, &i64::from(c.tx_index), &i64::from(c.log_index), &c.tx_hash.as_slice(), &body],
                )?;
            }
            below = Some(b.block);
            applied.push(Applied::Written);
        }
        if !rows.is_empty() {
            // Transfers imported earlier into these blocks stay as they are: then the rows go
            // through a staging table and skip what is stored.
            let (lo, hi) = (
                blocks[0].block.number,
                blocks[blocks.len() - 1].block.number,
            );
            let imported = txn
                .query_opt(
                    "SELECT 1 FROM transfers WHERE chain_id = $1 AND block_number BETWEEN $2 AND $3 AND NOT tied LIMIT 1",
                    &[&chain, &i64_of(lo)?, &i64_of(hi)?],
                )?
                .is_some();
            if imported {
                insert_skipping_stored(&mut txn, &rows)?;
            } else {
                copy_transfers(&mut txn, "transfers", &rows)?;
            }
        }
        txn.commit()?;
        Ok(applied)
    }

    fn unwind_above(&self, chain_id: u64, number: u64) -> Result<Vec<BlockRef>, StoreError> {
        let chain = i64_of(chain_id)?;
        let n = i64_of(number)?;
        let mut client = self.client()?;
        let mut txn = client.transaction()?;
        let rows = txn.query("SELECT number, hash, parent_hash, ts FROM blocks WHERE chain_id = $1 AND number > $2 ORDER BY number FOR UPDATE", &[&chain, &n])?;
        let mut removed = Vec::with_capacity(rows.len());
        for r in &rows {
            let num =
                u64::try_from(r.get::<_, i64>(0)).map_err(|_| codec::corrupt("block number"))?;
            removed.push(BlockRef {
                number: num,
                hash: B256::from_slice(r.get(1)),
                parent_hash: B256::from_slice(r.get(2)),
                timestamp: u64::try_from(r.get::<_, i64>(3)).unwrap_or_default(),
            });
        }
        txn.execute(
            "DELETE FROM transfers WHERE chain_id = $1 AND block_number > $2 AND tied",
            &[&chain, &n],
        )?;
        txn.execute(
            "DELETE FROM conversions WHERE chain_id = $1 AND block_number > $2",
            &[&chain, &n],
        )?;
        txn.execute(
            "DELETE FROM blocks WHERE chain_id = $1 AND number > $2",
            &[&chain, &n],
        )?;
        txn.commit()?;
        Ok(removed)
    }

    fn head(&self, chain_id: u64) -> Result<Option<BlockRef>, StoreError> {
        let row = self.client()?.query_opt("SELECT number, hash, parent_hash, ts FROM blocks WHERE chain_id = $1 ORDER BY number DESC LIMIT 1", &[&i64_of(chain_id)?])?;
        row.map(|r| {
            let n =
                u64::try_from(r.get::<_, i64>(0)).map_err(|_| codec::corrupt("block number"))?;
            Ok(BlockRef {
                number: n,
                hash: B256::from_slice(r.get(1)),
                parent_hash: B256::from_slice(r.get(2)),
                timestamp: u64::try_from(r.get::<_, i64>(3)).unwrap_or_default(),
            })
        })
        .transpose()
    }

    fn block(&self, chain_id: u64, number: u64) -> Result<Option<BlockRef>, StoreError> {
        let row = self.client()?.query_opt(
            "SELECT hash, parent_hash, ts FROM blocks WHERE chain_id = $1 AND number = $2",
            &[&i64_of(chain_id)?, &i64_of(number)?],
        )?;
        row.map(|r| block(number, &r)).transpose()
    }

    fn address_entries_page(
        &self,
        chain_id: u64,
        q: AddressQuery,
        after: Option<&Place>,
        limit: usize,
    ) -> Result<Vec<AddressEntry>, StoreError> {
        check_limit(limit)?;
        // Only columns of `transfers_from_entries` / `transfers_to_entries`: an index-only
        // scan (the heap is visited only for pages not yet marked all-visible by a vacuum).
        let (side, other) = match q.direction {
            Direction::Out => ("from_addr", "to_addr"),
            Direction::In => ("to_addr", "from_addr"),
        };
        let mut w = Where::new(chain_id)?;
        w.eq(side, q.address.as_slice().to_vec());
        w.blocks(q.from_block, q.to_block);
        w.after(after)?;
        let (sql, params) = w.select(
            &format!("block_number, tx_index, position, {other}, amount = 0"),
            limit,
        );
        let rows = self
            .client()?
            .query(&sql, &params.iter().map(|p| p.as_ref()).collect::<Vec<_>>())?;
        rows.iter()
            .map(|r| {
                Ok(AddressEntry {
                    block_number: u64::try_from(r.get::<_, i64>(0))
                        .map_err(|_| codec::corrupt("block number"))?,
                    tx_index: u32::try_from(r.get::<_, i64>(1))
                        .map_err(|_| codec::corrupt("tx index"))?,
                    position: codec::read_position(r.get(2))?,
                    counterparty: address(r, 3)?,
                    zero_amount: r.get(4),
                })
            })
            .collect()
    }

    fn transfers_page(
        &self,
        chain_id: u64,
        query: TransferQuery,
        after: Option<&Place>,
        limit: usize,
    ) -> Result<Vec<Transfer>, StoreError> {
        check_limit(limit)?;
        check_after(&query, after)?;
        let mut w = Where::new(chain_id)?;
        match query {
            TransferQuery::From {
                address,
                from_block,
            } => {
                w.eq("from_addr", address.as_slice().to_vec());
                w.blocks(from_block, u64::MAX);
            }
            TransferQuery::FromRange {
                address,
                from_block,
                to_block,
            } => {
                w.eq("from_addr", address.as_slice().to_vec());
                w.blocks(from_block, to_block);
            }
            TransferQuery::To {
                address,
                from_block,
            } => {
                w.eq("to_addr", address.as_slice().to_vec());
                w.blocks(from_block, u64::MAX);
            }
            TransferQuery::Tx { tx_hash } => w.eq("tx_hash", tx_hash.as_slice().to_vec()),
            TransferQuery::Asset {
                token: Some(token),
                from_block,
            } => {
                w.eq("token", token.as_slice().to_vec());
                w.blocks(from_block, u64::MAX);
            }
            TransferQuery::Asset {
                token: None,
                from_block,
            } => {
                w.clause("token IS NULL".into());
                w.blocks(from_block, u64::MAX);
            }
            TransferQuery::Blocks {
                from_block,
                to_block,
            } => w.blocks(from_block, to_block),
        }
        w.after(after)?;
        let (sql, params) = w.select(COLUMNS, limit);
        let rows = self
            .client()?
            .query(&sql, &params.iter().map(|p| p.as_ref()).collect::<Vec<_>>())?;
        rows.iter().map(|r| transfer(chain_id, r)).collect()
    }

    fn conversions_of_tx(
        &self,
        chain_id: u64,
        tx_hash: B256,
    ) -> Result<Vec<Conversion>, StoreError> {
        let rows = self.client()?.query(
            "SELECT c.block_number, c.tx_index, c.log_index, c.body, b.hash FROM conversions c JOIN blocks b ON b.chain_id = c.chain_id AND b.number = c.block_number WHERE c.chain_id = $1 AND c.tx_hash = $2 ORDER BY c.block_number, c.tx_index, c.log_index",
            &[&i64_of(chain_id)?, &tx_hash.as_slice()],
        )?;
        rows.iter()
            .map(|r| {
                let mut suffix = Vec::with_capacity(16);
                suffix.extend_from_slice(&(r.get::<_, i64>(0) as u64).to_be_bytes());
                suffix.extend_from_slice(&(r.get::<_, i64>(1) as u32).to_be_bytes());
                suffix.extend_from_slice(&(r.get::<_, i64>(2) as u32).to_be_bytes());
                codec::read_conversion(chain_id, &suffix, r.get(3), b256(r, 4)?)
            })
            .collect()
    }

    fn import_transfers(&self, chain_id: u64, transfers: &[Transfer]) -> Result<usize, StoreError> {
        let (keep, _) = import::check_batch(chain_id, transfers)?;
        let chain = i64_of(chain_id)?;
        let mut client = self.client()?;
        let mut txn = client.transaction()?;
        // Imports of one chain take turns, so that the check after the insert sees every
        // other import's rows (two imports could otherwise each put another transaction at
        // one block and index, at different positions).
        txn.execute(
            "SELECT pg_advisory_xact_lock(7400002, $1::int)",
            &[&((chain_id % (1 << 31)) as i32)],
        )?;
        let mut rows = String::new();
        for (n, &i) in keep.iter().enumerate() {
            copy_row(&transfers[i], false, &mut rows);
            self.check_fail(n + 1);
        }
        let new = insert_skipping_stored(&mut txn, &rows)?;
        // What was skipped, or stored beside, must agree with the import (crate::import).
        // After the insert, so that rows committed meanwhile are seen; the import's own rows
        // agree with themselves.
        let found = txn.query_opt(
            &format!(
                "SELECT {STORED}, s.block_number, s.tx_index, s.position FROM stage s JOIN transfers t
                   ON t.chain_id = s.chain_id AND t.block_number = s.block_number AND t.tx_index = s.tx_index
                 WHERE t.chain_id = $1 AND (
                   (t.position = s.position AND (t.tx_hash <> s.tx_hash OR t.from_addr <> s.from_addr
                     OR t.to_addr <> s.to_addr OR t.asset <> s.asset OR t.amount <> s.amount
                     OR (t.ts <> 0 AND s.ts <> 0 AND t.ts <> s.ts)))
                   OR (get_byte(t.position, 0) = 0 AND get_byte(s.position, 0) = 0 AND t.tx_hash <> s.tx_hash))
                 LIMIT 1"
            ),
            &[&chain],
        )?;
        if let Some(r) = found {
            let stored = transfer(chain_id, &r)?;
            let place = (
                u64::try_from(r.get::<_, i64>(10)).map_err(|_| codec::corrupt("block number"))?,
                u32::try_from(r.get::<_, i64>(11)).map_err(|_| codec::corrupt("tx index"))?,
                codec::read_position(r.get(12))?,
            );
            let index = keep
                .iter()
                .copied()
                .find(|&i| {
                    let t = &transfers[i];
                    (t.block_number, t.tx_index, &t.position) == (place.0, place.1, &place.2)
                })
                .ok_or_else(|| codec::corrupt("staged import row"))?;
            let t = &transfers[index];
            let why = import::conflict(&stored, t).unwrap_or(import::Conflict::SamePlace);
            return Err(import::error(index, t, &stored, why));
        }
        txn.commit()?;
        Ok(usize::try_from(new).unwrap_or(usize::MAX))
    }

    fn chains(&self) -> Result<Vec<u64>, StoreError> {
        // A skip scan of each primary key's leading column: one index probe per chain, not
        // a scan of the transfers.
        let rows = self.client()?.query(
            "WITH RECURSIVE
               b(id) AS (SELECT min(chain_id) FROM blocks
                         UNION ALL SELECT (SELECT min(chain_id) FROM blocks WHERE chain_id > b.id) FROM b WHERE b.id IS NOT NULL),
               t(id) AS (SELECT min(chain_id) FROM transfers
                         UNION ALL SELECT (SELECT min(chain_id) FROM transfers WHERE chain_id > t.id) FROM t WHERE t.id IS NOT NULL)
             SELECT id FROM b WHERE id IS NOT NULL UNION SELECT id FROM t WHERE id IS NOT NULL ORDER BY id",
            &[],
        )?;
        rows.iter()
            .map(|r| u64::try_from(r.get::<_, i64>(0)).map_err(|_| codec::corrupt("chain id")))
            .collect()
    }

    fn stats(&self, chain_id: u64) -> Result<StoreStats, StoreError> {
        let chain = i64_of(chain_id)?;
        let mut client = self.client()?;
        let count = |client: &mut Client, sql: &str| -> Result<u64, StoreError> {
            Ok(client.query_one(sql, &[&chain])?.get::<_, i64>(0) as u64)
        };
        let blocks = count(
            &mut client,
            "SELECT count(*) FROM blocks WHERE chain_id = $1",
        )?;
        let transfers = count(
            &mut client,
            "SELECT count(*) FROM transfers WHERE chain_id = $1",
        )?;
        let conversions = count(
            &mut client,
            "SELECT count(*) FROM conversions WHERE chain_id = $1",
        )?;
        let head: Option<i64> = client
            .query_one(
                "SELECT max(number) FROM blocks WHERE chain_id = $1",
                &[&chain],
            )?
            .get(0);
        Ok(StoreStats {
            blocks,
            transfers,
            conversions,
            head: head.map(|h| h as u64),
        })
    }

    fn sum_by_asset(&self, chain_id: u64) -> Result<BTreeMap<Asset, U256>, StoreError> {
        let rows = self.client()?.query(
            "SELECT asset, sum(amount)::text FROM transfers WHERE chain_id = $1 GROUP BY asset",
            &[&i64_of(chain_id)?],
        )?;
        let mut out = BTreeMap::new();
        for r in &rows {
            let asset = Reader(r.get(0)).asset()?;
            let sum: String = r.get(1);
            // Sums past 2^256 (impossible for real balances) saturate like the embedded store.
            out.insert(asset, U256::from_str_radix(&sum, 10).unwrap_or(U256::MAX));
        }
        Ok(out)
    }
}
