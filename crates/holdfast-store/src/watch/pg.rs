//! The watch's state in PostgreSQL, shared by several instances.
//!
//! A commit or unwind is one transaction that takes, in this order: the chain's advisory
//! lock (commits of one chain are serialized even without a lease), the chain's lease row
//! `FOR SHARE` (a takeover, which updates the row, waits until the commit is over, and a
//! commit after a takeover sees the new token and is refused), the rows of the alerts it
//! changes, and last the outbox head row (`watch_head`), which it advances and holds until
//! commit. So the outbox is appended one transaction at a time and in commit order: an event
//! that becomes visible later never has a lower number than one visible before it, whatever
//! the chains committing concurrently. The head row is taken last and is the only row all
//! commits share, so it is held for the last few statements only.
//!
//! Its own versioned schema (`holdfast_watch_schema`), migrated under an advisory lock like
//! the other stores'.

use alloy_primitives::{Address, B256};
use holdfast_primitives::BlockRef;
use postgres::{GenericClient, Row, Transaction};

use super::{
    AlertEventKind, AlertQuery, AlertStatus, BlockCommit, Lease, NewAlert, OutboxEvent, SafeSearch,
    SinkCursor, StoredAlert, WatchCheckpoint, WatchStore, check_child, check_commit, check_fence,
    check_name, check_query, check_who, next_lease, past_head, unknown_before,
};
use crate::pg_pool::{Pool, Schema};
use crate::{StoreError, check_limit};

/// Append new migrations; never edit a released one.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE watch_checkpoints (
    chain_id BIGINT PRIMARY KEY, number BIGINT NOT NULL, hash BYTEA NOT NULL,
    parent_hash BYTEA NOT NULL, ts BIGINT NOT NULL, state BYTEA NOT NULL);
CREATE TABLE watch_blocks (
    chain_id BIGINT NOT NULL, number BIGINT NOT NULL, hash BYTEA NOT NULL,
    parent_hash BYTEA NOT NULL, ts BIGINT NOT NULL, PRIMARY KEY (chain_id, number));
CREATE TABLE watch_alerts (
    id TEXT PRIMARY KEY, chain_id BIGINT NOT NULL, block_number BIGINT NOT NULL,
    block_hash BYTEA NOT NULL, rule TEXT NOT NULL, severity SMALLINT NOT NULL,
    raised_at BIGINT NOT NULL, status TEXT NOT NULL, confirmed BOOLEAN NOT NULL,
    ack_by TEXT, ack_at BIGINT, rank BIGINT NOT NULL, body BYTEA NOT NULL);
CREATE UNIQUE INDEX watch_alerts_rank ON watch_alerts (rank);
CREATE INDEX watch_alerts_block ON watch_alerts (chain_id, block_number);
CREATE TABLE watch_outbox (
    seq BIGINT PRIMARY KEY, alert_id TEXT NOT NULL, kind TEXT NOT NULL, body BYTEA NOT NULL);
CREATE TABLE watch_cursors (sink TEXT PRIMARY KEY, seq BIGINT NOT NULL);
CREATE TABLE watch_leases (
    chain_id BIGINT PRIMARY KEY, owner TEXT NOT NULL, expires_at BIGINT NOT NULL,
    token BIGINT NOT NULL);
CREATE TABLE watch_head (one BOOLEAN PRIMARY KEY CHECK (one), seq BIGINT NOT NULL);
INSERT INTO watch_head (one, seq) VALUES (TRUE, 0);
",
    "
CREATE TABLE watch_safe_searches (
    chain_id BIGINT NOT NULL, owners_hash BYTEA NOT NULL, owners BYTEA NOT NULL,
    from_block BIGINT NOT NULL, to_block BIGINT NOT NULL, to_hash BYTEA NOT NULL,
    safes BYTEA NOT NULL,
    PRIMARY KEY (chain_id, owners_hash));
",
];

const SCHEMA: Schema = Schema {
    what: "watch",
    table: "holdfast_watch_schema",
    lock: 7_400_004,
    migrations: MIGRATIONS,
};

/// The advisory lock class of a chain's commits (`pg_advisory_xact_lock(class, key)`).
const CHAIN_LOCK_CLASS: i32 = 7_400_005;

const ALERT_COLUMNS: &str = "id, chain_id, block_number, block_hash, rule, severity, raised_at, status, confirmed, ack_by, ack_at, body, rank";

/// The watch state in PostgreSQL.
pub struct PgWatchStore {
    pool: Pool,
    #[cfg(any(test, feature = "test-utils"))]
    fail_next: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for PgWatchStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgWatchStore")
            .field("connections", &self.pool.len())
            .finish_non_exhaustive()
    }
}

fn i64_of(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Postgres(format!("{v} does not fit a BIGINT")))
}

fn u64_of(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("watch: negative number {v}")))
}

/// The chain's key in the advisory lock class (chains that share one only wait for each
/// other).
fn chain_lock_key(chain_id: u64) -> i32 {
    (chain_id as u32) as i32
}

fn block_of(number: i64, hash: &[u8], parent: &[u8], ts: i64) -> Result<BlockRef, StoreError> {
    if hash.len() != 32 || parent.len() != 32 {
        return Err(StoreError::Corrupt("watch block hash".into()));
    }
    Ok(BlockRef {
        number: u64_of(number)?,
        hash: B256::from_slice(hash),
        parent_hash: B256::from_slice(parent),
        timestamp: u64_of(ts)?,
    })
}

/// An alert row (columns [`ALERT_COLUMNS`]) and its rank.
fn alert_of(row: &Row) -> Result<(StoredAlert, u64), StoreError> {
    let hash: &[u8] = row.get(3);
    if hash.len() != 32 {
        return Err(StoreError::Corrupt("watch alert block hash".into()));
    }
    let status: &str = row.get(7);
    let ack_by: Option<String> = row.get(9);
    let ack_at: Option<i64> = row.get(10);
    Ok((
        StoredAlert {
            id: row.get(0),
            chain_id: u64_of(row.get(1))?,
            block_number: u64_of(row.get(2))?,
            block_hash: B256::from_slice(hash),
            rule: row.get(4),
            severity: u8::try_from(row.get::<_, i16>(5))
                .map_err(|_| StoreError::Corrupt("watch alert severity".into()))?,
            raised_at_ms: u64_of(row.get(6))?,
            status: AlertStatus::from_name(status)
                .ok_or_else(|| StoreError::Corrupt(format!("watch alert status {status:?}")))?,
            confirmed: row.get(8),
            acknowledged: match (ack_by, ack_at) {
                (Some(who), Some(at)) => Some((who, u64_of(at)?)),
                _ => None,
            },
            body: row.get(11),
        },
        u64_of(row.get(12))?,
    ))
}

fn read_lease(
    c: &mut impl GenericClient,
    chain_id: u64,
    lock: &str,
) -> Result<Option<Lease>, StoreError> {
    c.query_opt(
        &format!("SELECT owner, expires_at, token FROM watch_leases WHERE chain_id = $1 {lock}"),
        &[&i64_of(chain_id)?],
    )?
    .map(|row| {
        let owner: String = row.get(0);
        Ok(Lease {
            chain_id,
            owner: (!owner.is_empty()).then_some(owner),
            expires_at_ms: u64_of(row.get(1))?,
            token: u64_of(row.get(2))?,
        })
    })
    .transpose()
}

fn read_checkpoint(
    c: &mut impl GenericClient,
    chain_id: u64,
) -> Result<Option<WatchCheckpoint>, StoreError> {
    c.query_opt(
        "SELECT number, hash, parent_hash, ts, state FROM watch_checkpoints WHERE chain_id = $1",
        &[&i64_of(chain_id)?],
    )?
    .map(|row| {
        Ok(WatchCheckpoint {
            chain_id,
            block: block_of(row.get(0), row.get(1), row.get(2), row.get(3))?,
            state: row.get(4),
        })
    })
    .transpose()
}

/// Events to append at the end of a transaction, after the head is locked.
#[derive(Default)]
struct Appends {
    events: Vec<(AlertEventKind, StoredAlert)>,
}

impl PgWatchStore {
    /// Connects `connections` clients (no TLS: a trusted network or a local socket) and
    /// creates or checks the schema.
    pub fn connect(url: &str, connections: usize) -> Result<PgWatchStore, StoreError> {
        Ok(PgWatchStore {
            pool: Pool::connect(url, connections, &SCHEMA)?,
            #[cfg(any(test, feature = "test-utils"))]
            fail_next: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Test hook: the next commit or unwind runs every statement and then fails instead of
    /// committing (the transaction rolls back).
    #[cfg(any(test, feature = "test-utils"))]
    pub fn fail_next_commit(&self) {
        self.fail_next
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn injected_failure(&self) -> Result<(), StoreError> {
        #[cfg(any(test, feature = "test-utils"))]
        if self
            .fail_next
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(StoreError::Postgres(
                "injected failure before the commit".into(),
            ));
        }
        Ok(())
    }

    /// Takes the chain's lock and checks the fence, at the start of a commit or unwind.
    fn enter(
        tx: &mut Transaction<'_>,
        chain_id: u64,
        fence: Option<u64>,
    ) -> Result<(), StoreError> {
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&CHAIN_LOCK_CLASS, &chain_lock_key(chain_id)],
        )?;
        let lease = read_lease(tx, chain_id, "FOR SHARE")?;
        check_fence(chain_id, lease.as_ref(), fence)
    }

    /// Locks the outbox head, numbers `appends` after it, writes the alerts at their new
    /// state (a raise sets the rank) and the events, and advances the head: the last
    /// statements of a transaction.
    fn append(tx: &mut Transaction<'_>, appends: Appends) -> Result<(), StoreError> {
        if appends.events.is_empty() {
            return Ok(());
        }
        let n = i64_of(appends.events.len() as u64)?;
        let end: i64 = tx
            .query_one("UPDATE watch_head SET seq = seq + $1 RETURNING seq", &[&n])?
            .get(0);
        let first = end - n + 1;
        let (mut seqs, mut ids, mut kinds, mut bodies) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        // Each alert's last state, and the number of its raise if this transaction raised it.
        let mut rows: Vec<(Option<i64>, &StoredAlert)> = Vec::new();
        for (i, (kind, a)) in appends.events.iter().enumerate() {
            let seq = first + i as i64;
            seqs.push(seq);
            ids.push(a.id.as_str());
            kinds.push(kind.name());
            bodies.push(a.body.as_slice());
            let raised = (*kind == AlertEventKind::Raised).then_some(seq);
            match rows.iter_mut().find(|(_, r)| r.id == a.id) {
                Some(row) => *row = (raised.or(row.0), a),
                None => rows.push((raised, a)),
            }
        }
        for (raised, a) in rows {
            if let Some(rank) = raised {
                tx.execute(
                    "INSERT INTO watch_alerts (id, chain_id, block_number, block_hash, rule, severity, raised_at, status, confirmed, ack_by, ack_at, rank, body) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL, $10, $11) \
                     ON CONFLICT (id) DO UPDATE SET chain_id = EXCLUDED.chain_id, block_number = EXCLUDED.block_number, \
                     block_hash = EXCLUDED.block_hash, rule = EXCLUDED.rule, severity = EXCLUDED.severity, \
                     raised_at = EXCLUDED.raised_at, status = EXCLUDED.status, confirmed = EXCLUDED.confirmed, \
                     rank = EXCLUDED.rank, body = EXCLUDED.body",
                    &[
                        &a.id, &i64_of(a.chain_id)?, &i64_of(a.block_number)?, &a.block_hash.as_slice(),
                        &a.rule, &i16::from(a.severity), &i64_of(a.raised_at_ms)?, &a.status.name(),
                        &a.confirmed, &rank, &a.body,
                    ],
                )?;
            } else {
                tx.execute(
                    "UPDATE watch_alerts SET status = $2, confirmed = $3 WHERE id = $1",
                    &[&a.id, &a.status.name(), &a.confirmed],
                )?;
            }
        }
        tx.execute(
            "INSERT INTO watch_outbox (seq, alert_id, kind, body) SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::bytea[])",
            &[&seqs, &ids, &kinds, &bodies],
        )?;
        Ok(())
    }
}

impl WatchStore for PgWatchStore {
    fn checkpoint(&self, chain_id: u64) -> Result<Option<WatchCheckpoint>, StoreError> {
        read_checkpoint(&mut *self.pool.client(), chain_id)
    }

    fn processed_block(&self, chain_id: u64, number: u64) -> Result<Option<BlockRef>, StoreError> {
        self.pool
            .client()
            .query_opt(
                "SELECT number, hash, parent_hash, ts FROM watch_blocks WHERE chain_id = $1 AND number = $2",
                &[&i64_of(chain_id)?, &i64_of(number)?],
            )?
            .map(|row| block_of(row.get(0), row.get(1), row.get(2), row.get(3)))
            .transpose()
    }

    fn commit_block(&self, c: &BlockCommit) -> Result<(), StoreError> {
        check_commit(c)?;
        let chain = c.chain_id;
        let number = c.block.number;
        let mut client = self.pool.client();
        let mut tx = client.transaction()?;
        Self::enter(&mut tx, chain, c.fence)?;
        let checkpoint = read_checkpoint(&mut tx, chain)?;
        check_child(chain, checkpoint.as_ref().map(|cp| &cp.block), &c.block)?;
        let mut ids: Vec<&str> = c.alerts.iter().map(|a| a.id.as_str()).collect();
        ids.extend(c.confirm.iter().map(String::as_str));
        let mut stored: std::collections::HashMap<String, StoredAlert> = tx
            .query(
                &format!("SELECT {ALERT_COLUMNS} FROM watch_alerts WHERE id = ANY($1) ORDER BY id FOR UPDATE"),
                &[&ids],
            )?
            .iter()
            .map(|row| alert_of(row).map(|(a, _)| (a.id.clone(), a)))
            .collect::<Result<_, _>>()?;
        let mut appends = Appends::default();
        // Alerts raised early for this block that the commit does not raise again.
        let keep: Vec<&str> = c.alerts.iter().map(|a| a.id.as_str()).collect();
        for row in tx.query(
            &format!(
                "SELECT {ALERT_COLUMNS} FROM watch_alerts WHERE chain_id = $1 AND block_number = $2 AND status = 'open' AND NOT (id = ANY($3)) ORDER BY rank FOR UPDATE"
            ),
            &[&i64_of(chain)?, &i64_of(number)?, &keep],
        )? {
            let (mut a, _) = alert_of(&row)?;
            a.status = AlertStatus::Retracted;
            appends.events.push((AlertEventKind::Retracted, a));
        }
        for a in &c.alerts {
            let old = stored.get(&a.id);
            if old.is_some_and(|o| o.status == AlertStatus::Open) {
                continue;
            }
            let alert =
                StoredAlert::raised(a, chain, &c.block, old.and_then(|o| o.acknowledged.clone()));
            stored.insert(a.id.clone(), alert.clone());
            appends.events.push((AlertEventKind::Raised, alert));
        }
        for id in &c.confirm {
            let Some(a) = stored.get_mut(id) else {
                continue;
            };
            if a.chain_id != chain || a.status != AlertStatus::Open || a.confirmed {
                continue;
            }
            a.confirmed = true;
            appends.events.push((AlertEventKind::Confirmed, a.clone()));
        }
        let chain_i = i64_of(chain)?;
        tx.execute(
            "DELETE FROM watch_blocks WHERE chain_id = $1 AND number < $2",
            &[&chain_i, &i64_of(c.forget_below.min(i64::MAX as u64))?],
        )?;
        let (n, hash, parent, ts) = (
            i64_of(number)?,
            c.block.hash.as_slice(),
            c.block.parent_hash.as_slice(),
            i64_of(c.block.timestamp)?,
        );
        if number >= c.forget_below {
            tx.execute(
                "INSERT INTO watch_blocks (chain_id, number, hash, parent_hash, ts) VALUES ($1, $2, $3, $4, $5)",
                &[&chain_i, &n, &hash, &parent, &ts],
            )?;
        }
        tx.execute(
            "INSERT INTO watch_checkpoints (chain_id, number, hash, parent_hash, ts, state) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (chain_id) DO UPDATE SET number = EXCLUDED.number, hash = EXCLUDED.hash, \
             parent_hash = EXCLUDED.parent_hash, ts = EXCLUDED.ts, state = EXCLUDED.state",
            &[&chain_i, &n, &hash, &parent, &ts, &c.state],
        )?;
        Self::append(&mut tx, appends)?;
        self.injected_failure()?;
        tx.commit()?;
        Ok(())
    }

    fn raise_early(
        &self,
        chain_id: u64,
        block: &BlockRef,
        alerts: &[NewAlert],
        fence: Option<u64>,
    ) -> Result<usize, StoreError> {
        check_commit(&BlockCommit {
            chain_id,
            block: *block,
            state: Vec::new(),
            alerts: alerts.to_vec(),
            confirm: Vec::new(),
            forget_below: 0,
            fence,
        })?;
        let mut client = self.pool.client();
        let mut tx = client.transaction()?;
        Self::enter(&mut tx, chain_id, fence)?;
        let checkpoint = read_checkpoint(&mut tx, chain_id)?;
        check_child(chain_id, checkpoint.as_ref().map(|cp| &cp.block), block)?;
        let ids: Vec<&str> = alerts.iter().map(|a| a.id.as_str()).collect();
        let stored: std::collections::HashMap<String, StoredAlert> = tx
            .query(
                &format!("SELECT {ALERT_COLUMNS} FROM watch_alerts WHERE id = ANY($1) ORDER BY id FOR UPDATE"),
                &[&ids],
            )?
            .iter()
            .map(|row| alert_of(row).map(|(a, _)| (a.id.clone(), a)))
            .collect::<Result<_, _>>()?;
        let mut appends = Appends::default();
        for a in alerts {
            let old = stored.get(&a.id);
            if old.is_some_and(|o| o.status == AlertStatus::Open)
                || appends.events.iter().any(|(_, e)| e.id == a.id)
            {
                continue;
            }
            let alert =
                StoredAlert::raised(a, chain_id, block, old.and_then(|o| o.acknowledged.clone()));
            appends.events.push((AlertEventKind::Raised, alert));
        }
        let raised = appends.events.len();
        Self::append(&mut tx, appends)?;
        self.injected_failure()?;
        tx.commit()?;
        Ok(raised)
    }

    fn unwind_above(
        &self,
        chain_id: u64,
        number: u64,
        state: &[u8],
        fence: Option<u64>,
    ) -> Result<Vec<StoredAlert>, StoreError> {
        super::check_unwind_state(chain_id, number, state)?;
        let invalid = |what: String| StoreError::Invalid {
            chain_id,
            number,
            what,
        };
        let mut client = self.pool.client();
        let mut tx = client.transaction()?;
        Self::enter(&mut tx, chain_id, fence)?;
        let Some(checkpoint) = read_checkpoint(&mut tx, chain_id)? else {
            return Err(invalid(
                "cannot unwind: the watch has no checkpoint on this chain".into(),
            ));
        };
        let top = checkpoint.block;
        if number > top.number {
            return Err(invalid(format!(
                "cannot unwind to a block above the watch's checkpoint, block {}",
                top.number
            )));
        }
        let (chain_i, n) = (i64_of(chain_id)?, i64_of(number)?);
        let target = if number == top.number {
            top
        } else {
            let row = tx
                .query_opt(
                    "SELECT number, hash, parent_hash, ts FROM watch_blocks WHERE chain_id = $1 AND number = $2",
                    &[&chain_i, &n],
                )?
                .ok_or_else(|| invalid("cannot unwind to it: the block is forgotten (below the reorg depth)".into()))?;
            block_of(row.get(0), row.get(1), row.get(2), row.get(3))?
        };
        let mut appends = Appends::default();
        let mut retracted = Vec::new();
        for row in tx.query(
            &format!(
                "SELECT {ALERT_COLUMNS} FROM watch_alerts WHERE chain_id = $1 AND block_number > $2 AND status = 'open' ORDER BY rank FOR UPDATE"
            ),
            &[&chain_i, &n],
        )? {
            let (mut a, _) = alert_of(&row)?;
            a.status = AlertStatus::Retracted;
            retracted.push(a.clone());
            appends.events.push((AlertEventKind::Retracted, a));
        }
        tx.execute(
            "DELETE FROM watch_blocks WHERE chain_id = $1 AND number > $2",
            &[&chain_i, &n],
        )?;
        tx.execute(
            "UPDATE watch_checkpoints SET number = $2, hash = $3, parent_hash = $4, ts = $5, state = $6 WHERE chain_id = $1",
            &[&chain_i, &i64_of(target.number)?, &target.hash.as_slice(), &target.parent_hash.as_slice(), &i64_of(target.timestamp)?, &state],
        )?;
        Self::append(&mut tx, appends)?;
        self.injected_failure()?;
        tx.commit()?;
        Ok(retracted)
    }

    fn alert(&self, id: &str) -> Result<Option<StoredAlert>, StoreError> {
        check_name("alert id", id)?;
        self.pool
            .client()
            .query_opt(
                &format!("SELECT {ALERT_COLUMNS} FROM watch_alerts WHERE id = $1"),
                &[&id],
            )?
            .map(|row| alert_of(&row).map(|(a, _)| a))
            .transpose()
    }

    fn alerts(&self, q: &AlertQuery) -> Result<Vec<StoredAlert>, StoreError> {
        check_query(q)?;
        if q.limit == 0 {
            return Ok(Vec::new());
        }
        let mut c = self.pool.client();
        let before = match &q.before_id {
            Some(id) => c
                .query_opt("SELECT rank FROM watch_alerts WHERE id = $1", &[id])?
                .map(|row| row.get::<_, i64>(0))
                .ok_or_else(|| unknown_before(id))?,
            None => i64::MAX,
        };
        let chain = q.chain_id.map(i64_of).transpose()?;
        c.query(
            &format!(
                "SELECT {ALERT_COLUMNS} FROM watch_alerts WHERE rank < $1 \
                 AND ($2::int8 IS NULL OR chain_id = $2) AND ($3::text IS NULL OR rule = $3) \
                 AND ($4::text IS NULL OR status = $4) AND severity >= $5 \
                 AND ($6::bool IS NULL OR (ack_by IS NOT NULL) = $6) \
                 ORDER BY rank DESC LIMIT $7"
            ),
            &[
                &before,
                &chain,
                &q.rule,
                &q.status.map(AlertStatus::name),
                &i16::from(q.min_severity.unwrap_or(0)),
                &q.acknowledged,
                &i64_of(q.limit as u64)?,
            ],
        )?
        .iter()
        .map(|row| alert_of(row).map(|(a, _)| a))
        .collect()
    }

    fn acknowledge(
        &self,
        id: &str,
        who: &str,
        at_ms: u64,
    ) -> Result<Option<StoredAlert>, StoreError> {
        check_name("alert id", id)?;
        check_who(who)?;
        let mut c = self.pool.client();
        // The first acknowledgement stays: a later one changes nothing.
        c.execute(
            "UPDATE watch_alerts SET ack_by = $2, ack_at = $3 WHERE id = $1 AND ack_by IS NULL",
            &[&id, &who, &i64_of(at_ms)?],
        )?;
        c.query_opt(
            &format!("SELECT {ALERT_COLUMNS} FROM watch_alerts WHERE id = $1"),
            &[&id],
        )?
        .map(|row| alert_of(&row).map(|(a, _)| a))
        .transpose()
    }

    fn outbox_after_cursor(
        &self,
        sink: &str,
        limit: usize,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let cursor = self.cursor(sink)?;
        self.outbox_since(cursor, limit)
    }

    fn advance_cursor(&self, sink: &str, seq: u64) -> Result<(), StoreError> {
        check_name("sink", sink)?;
        let head = self.outbox_head()?;
        if seq > head {
            return Err(past_head(seq, head));
        }
        self.pool.client().execute(
            "INSERT INTO watch_cursors (sink, seq) VALUES ($1, $2) \
             ON CONFLICT (sink) DO UPDATE SET seq = GREATEST(watch_cursors.seq, EXCLUDED.seq)",
            &[&sink, &i64_of(seq)?],
        )?;
        Ok(())
    }

    fn cursor(&self, sink: &str) -> Result<u64, StoreError> {
        check_name("sink", sink)?;
        self.pool
            .client()
            .query_opt("SELECT seq FROM watch_cursors WHERE sink = $1", &[&sink])?
            .map_or(Ok(0), |row| u64_of(row.get(0)))
    }

    fn cursors(&self) -> Result<Vec<SinkCursor>, StoreError> {
        self.pool
            .client()
            .query(
                "SELECT sink, seq FROM watch_cursors ORDER BY sink COLLATE \"C\"",
                &[],
            )?
            .iter()
            .map(|row| {
                Ok(SinkCursor {
                    sink: row.get(0),
                    seq: u64_of(row.get(1))?,
                })
            })
            .collect()
    }

    fn forget_cursor(&self, sink: &str) -> Result<Option<u64>, StoreError> {
        check_name("sink", sink)?;
        self.pool
            .client()
            .query_opt(
                "DELETE FROM watch_cursors WHERE sink = $1 RETURNING seq",
                &[&sink],
            )?
            .map(|row| u64_of(row.get(0)))
            .transpose()
    }

    fn outbox_since(&self, after_seq: u64, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        check_limit(limit)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        self.pool
            .client()
            .query(
                "SELECT seq, alert_id, kind, body FROM watch_outbox WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after, &i64_of(limit as u64)?],
            )?
            .iter()
            .map(|row| {
                let kind: &str = row.get(2);
                Ok(OutboxEvent {
                    seq: u64_of(row.get(0))?,
                    alert_id: row.get(1),
                    kind: AlertEventKind::from_name(kind).ok_or_else(|| {
                        StoreError::Corrupt(format!("watch outbox event kind {kind:?}"))
                    })?,
                    body: row.get(3),
                })
            })
            .collect()
    }

    fn prune_outbox(&self, sinks: &[&str], keep: u64) -> Result<u64, StoreError> {
        for sink in sinks {
            check_name("sink", sink)?;
        }
        let names: Vec<String> = sinks.iter().map(|s| (*s).to_owned()).collect();
        let mut client = self.pool.client();
        let mut tx = client.transaction()?;
        // The served sinks without a cursor are registered at 0, so that every other
        // instance's prune keeps their events too.
        tx.execute(
            "INSERT INTO watch_cursors (sink, seq) SELECT unnest($1::text[]), 0 ON CONFLICT (sink) DO NOTHING",
            &[&names],
        )?;
        // The lowest stored cursor, served sinks included. Cursors only move forward, so one
        // advanced by another instance meanwhile only makes this bound more cautious.
        let deleted = tx.execute(
            "WITH low AS (
               SELECT LEAST((SELECT seq FROM watch_head) - $2,
                            coalesce((SELECT min(seq) FROM watch_cursors), 0)) AS seq)
             DELETE FROM watch_outbox WHERE seq IN (
               SELECT seq FROM watch_outbox WHERE seq <= (SELECT seq FROM low) ORDER BY seq LIMIT $1)",
            &[&i64_of(super::MAX_PRUNE as u64)?, &i64_of(keep)?],
        )?;
        tx.commit()?;
        Ok(deleted)
    }

    fn outbox_head(&self) -> Result<u64, StoreError> {
        u64_of(
            self.pool
                .client()
                .query_one("SELECT seq FROM watch_head", &[])?
                .get(0),
        )
    }

    fn acquire_lease(
        &self,
        chain_id: u64,
        owner: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        check_name("lease owner", owner)?;
        let chain = i64_of(chain_id)?;
        let mut c = self.pool.client();
        let mut tx = c.transaction()?;
        // The row exists before it is locked, so racing acquirers queue on it: one wins.
        tx.execute(
            "INSERT INTO watch_leases (chain_id, owner, expires_at, token) VALUES ($1, '', 0, 0) ON CONFLICT DO NOTHING",
            &[&chain],
        )?;
        let current = read_lease(&mut tx, chain_id, "FOR UPDATE")?;
        let Some(next) = next_lease(chain_id, current.as_ref(), owner, now_ms, ttl_ms) else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE watch_leases SET owner = $2, expires_at = $3, token = $4 WHERE chain_id = $1",
            &[
                &chain,
                &owner,
                &i64_of(next.expires_at_ms)?,
                &i64_of(next.token)?,
            ],
        )?;
        tx.commit()?;
        Ok(Some(next.token))
    }

    fn release_lease(&self, chain_id: u64, owner: &str) -> Result<(), StoreError> {
        check_name("lease owner", owner)?;
        self.pool.client().execute(
            "UPDATE watch_leases SET owner = '', expires_at = 0 WHERE chain_id = $1 AND owner = $2",
            &[&i64_of(chain_id)?, &owner],
        )?;
        Ok(())
    }

    fn lease(&self, chain_id: u64) -> Result<Option<Lease>, StoreError> {
        read_lease(&mut *self.pool.client(), chain_id, "")
            .map(|l| l.filter(|l| l.token > 0 || l.owner.is_some()))
    }

    fn safe_search(
        &self,
        chain_id: u64,
        owners: &[Address],
    ) -> Result<Option<SafeSearch>, StoreError> {
        use super::safes::{check_owners, concat, owners_key, split};
        check_owners(owners)?;
        let Some(row) = self.pool.client().query_opt(
            "SELECT owners, from_block, to_block, safes, to_hash FROM watch_safe_searches WHERE chain_id = $1 AND owners_hash = $2",
            &[&i64_of(chain_id)?, &owners_key(owners).as_slice()],
        )?
        else {
            return Ok(None);
        };
        let stored: Vec<u8> = row.get(0);
        // Another owners list with the same hash: not this one's.
        if stored != concat(owners) {
            return Ok(None);
        }
        let safes: Vec<u8> = row.get(3);
        let to_hash: &[u8] = row.get(4);
        Ok(Some(SafeSearch {
            chain_id,
            owners: owners.to_vec(),
            from: u64_of(row.get(1))?,
            to: u64_of(row.get(2))?,
            to_hash: B256::try_from(to_hash)
                .map_err(|_| StoreError::Corrupt("watch safe search hash".into()))?,
            safes: split(&safes, "safe search safes")?,
        }))
    }

    fn put_safe_search(&self, s: &SafeSearch) -> Result<(), StoreError> {
        use super::safes::{check_search, concat, owners_key};
        check_search(s)?;
        self.pool.client().execute(
            "INSERT INTO watch_safe_searches (chain_id, owners_hash, owners, from_block, to_block, to_hash, safes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (chain_id, owners_hash) DO UPDATE SET \
             owners = EXCLUDED.owners, from_block = EXCLUDED.from_block, to_block = EXCLUDED.to_block, \
             to_hash = EXCLUDED.to_hash, safes = EXCLUDED.safes",
            &[
                &i64_of(s.chain_id)?,
                &owners_key(&s.owners).as_slice(),
                &concat(&s.owners),
                &i64_of(s.from)?,
                &i64_of(s.to)?,
                &s.to_hash.as_slice(),
                &concat(&s.safes),
            ],
        )?;
        Ok(())
    }
}
