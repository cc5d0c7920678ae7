//! The guard service's state in PostgreSQL, shared by several instances. A transition
//! locks the request's row (`FOR UPDATE`) and checks its state inside the transaction, so
//! of two instances racing for one request exactly one changes it; audit appends lock the
//! chain's head row, so the chain has one order across instances. Every commit is durable
//! (PostgreSQL's default `synchronous_commit`).
//!
//! New requests are inserted in groups (see [`Inserts`]): one transaction, one head lock and
//! one WAL flush for all that arrived while the previous group committed.
//!
//! Its own versioned schema (`holdfast_gate_schema`), migrated under an advisory lock like
//! the transfer store's.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use alloy_primitives::{Address, B256};
use postgres::{GenericClient, Transaction};

use super::{
    AuditEntry, Change, Decided, Freeze, GateRequest, GateStore, HistoryQuery, NewAudit, Outflow,
    RequestState, StoredApproval, WalletHistory, apply,
};

/// The `at` of a reservation's outflow row: above every real time, so `at >= since` holds
/// every reservation.
const RESERVED: i64 = i64::MAX;

/// The advisory lock class of per-wallet decisions (`pg_advisory_xact_lock(class, key)`).
const WALLET_LOCK_CLASS: i32 = 7_400_003;

/// The advisory lock key of a wallet's decisions.
fn wallet_lock_key(wallet: Address) -> i32 {
    let mut k = [0u8; 4];
    k.copy_from_slice(&wallet[16..20]);
    i32::from_be_bytes(k)
}

/// A wallet's history, read through `c` (a connection, or a transaction holding the
/// wallet's lock).
fn read_history(c: &mut impl GenericClient, q: &HistoryQuery) -> Result<WalletHistory, StoreError> {
    let wallet = q.wallet.as_slice();
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM gate_meta WHERE key = 'frozen:*' OR key = $1",
            &[&format!("frozen:{}", q.wallet)],
        )?
        .get(0);
    let mut out = WalletHistory {
        frozen: n > 0,
        ..WalletHistory::default()
    };
    if let Some(since) = q.since {
        let limit = i64_of(q.max_records as u64 + 1)?;
        let exclude = q.exclude.clone().unwrap_or_default();
        let rows = c.query(
            "SELECT at, body FROM gate_outflows WHERE wallet = $1 AND at >= $2 \
             AND NOT (at = $3 AND request_id = $4) ORDER BY at, request_id LIMIT $5",
            &[&wallet, &i64_of(since)?, &RESERVED, &exclude, &limit],
        )?;
        out.truncated = rows.len() > q.max_records;
        for row in rows.iter().take(q.max_records) {
            let at: i64 = row.get(0);
            let at = if at == RESERVED {
                q.now
            } else {
                u64::try_from(at).unwrap_or(0)
            };
            let flows: Vec<Outflow> = parse(&row.get::<_, String>(1))?;
            out.outflows.extend(flows.into_iter().map(|f| (at, f)));
        }
    }
    if !q.destinations.is_empty() {
        let dests: Vec<&[u8]> = q.destinations.iter().map(|d| d.as_slice()).collect();
        out.first_paid = c
            .query(
                "SELECT dest, at FROM gate_first_paid WHERE wallet = $1 AND dest = ANY($2) ORDER BY dest",
                &[&wallet, &dests],
            )?
            .iter()
            .map(|row| {
                (
                    Address::from_slice(row.get::<_, &[u8]>(0)),
                    u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
                )
            })
            .collect();
    }
    Ok(out)
}
use crate::StoreError;
use crate::pg_pool::{Pool, Schema};

/// Append new migrations; never edit a released one.
const MIGRATIONS: &[&str] = &["
CREATE TABLE gate_requests (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, created_at BIGINT NOT NULL, release_at BIGINT,
    wallet BYTEA NOT NULL, chain_id BIGINT NOT NULL, body TEXT NOT NULL);
CREATE INDEX gate_requests_state ON gate_requests (state, created_at);
CREATE INDEX gate_requests_holds ON gate_requests (release_at) WHERE state = 'held';
CREATE TABLE gate_approvals (
    request_id TEXT NOT NULL, action TEXT NOT NULL, approver BYTEA NOT NULL, at BIGINT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (request_id, action, approver));
CREATE TABLE gate_outflows (
    wallet BYTEA NOT NULL, at BIGINT NOT NULL, request_id TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (wallet, at, request_id));
CREATE TABLE gate_audit (seq BIGINT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE gate_meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL);
INSERT INTO gate_meta (key, value) VALUES ('head', '\\x'::bytea);
", "
CREATE TABLE gate_first_paid (
    wallet BYTEA NOT NULL, dest BYTEA NOT NULL, at BIGINT NOT NULL, PRIMARY KEY (wallet, dest));
", "
ALTER TABLE gate_audit ADD COLUMN request_id TEXT;
UPDATE gate_audit SET request_id = body::jsonb ->> 'request_id';
CREATE INDEX gate_audit_request ON gate_audit (request_id, seq) WHERE request_id IS NOT NULL;
", "
CREATE TABLE gate_sessions (
    key BYTEA PRIMARY KEY, who TEXT NOT NULL, csrf BYTEA NOT NULL, expires_at_ms BIGINT NOT NULL);
CREATE INDEX gate_sessions_expiry ON gate_sessions (expires_at_ms);
"];

/// A pool of connections to one database.
pub struct PgGateStore {
    pool: Pool,
    inserts: Inserts,
}

const SCHEMA: Schema = Schema {
    what: "gate",
    table: "holdfast_gate_schema",
    lock: 7_400_002,
    migrations: MIGRATIONS,
};

/// Group insert. Every new request appends to the one audit chain, whose head row is locked
/// from the append to the commit, so concurrent inserts would commit one WAL flush at a time.
/// Instead, inserts that arrive while one is committing queue up, and the next leader writes
/// them all in one transaction: one head lock, one flush. If that transaction fails, each is
/// retried alone, so one bad request (a duplicate id, a frozen wallet) fails only itself.
#[derive(Debug, Default)]
struct Inserts {
    /// (queued inserts, a leader is writing)
    state: Mutex<(Vec<Queued>, bool)>,
    done: Condvar,
}

impl Inserts {
    fn lock(&self) -> MutexGuard<'_, (Vec<Queued>, bool)> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// At most this many requests in one group transaction.
const GROUP_MAX: usize = 64;

#[derive(Debug)]
struct Queued {
    request: GateRequest,
    audit: Vec<NewAudit>,
    result: Arc<Mutex<Option<Result<(), StoreError>>>>,
}

impl std::fmt::Debug for PgGateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgGateStore")
            .field("connections", &self.pool.len())
            .finish_non_exhaustive()
    }
}

fn i64_of(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Postgres(format!("{v} does not fit a BIGINT")))
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Postgres(e.to_string()))
}

fn parse<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("gate record: {e}")))
}

impl PgGateStore {
    /// Connects `connections` clients (no TLS: a trusted network or a local socket) and
    /// creates or checks the schema.
    pub fn connect(url: &str, connections: usize) -> Result<PgGateStore, StoreError> {
        Ok(PgGateStore {
            pool: Pool::connect(url, connections, &SCHEMA)?,
            inserts: Inserts::default(),
        })
    }

    pub(super) fn client(&self) -> MutexGuard<'_, postgres::Client> {
        self.pool.client()
    }

    /// Appends `audit` after the head; returns the entries' hashes.
    fn append(txn: &mut Transaction<'_>, audit: Vec<NewAudit>) -> Result<Vec<B256>, StoreError> {
        if audit.is_empty() {
            return Ok(Vec::new());
        }
        let head: Vec<u8> = txn
            .query_one(
                "SELECT value FROM gate_meta WHERE key = 'head' FOR UPDATE",
                &[],
            )?
            .get(0);
        let (mut seq, mut prev) = if head.len() == 40 {
            let mut n = [0u8; 8];
            n.copy_from_slice(&head[..8]);
            (u64::from_be_bytes(n), B256::from_slice(&head[8..]))
        } else {
            (0, B256::ZERO)
        };
        let (mut seqs, mut bodies, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
        let mut requests = Vec::new();
        for a in audit {
            seq += 1;
            let e = a.seal(seq, prev);
            prev = e.hash;
            hashes.push(e.hash);
            seqs.push(i64_of(seq)?);
            bodies.push(json(&e)?);
            requests.push(e.request_id);
        }
        let head = [&seq.to_be_bytes()[..], prev.as_slice()].concat();
        // One statement for the entries and the new head: the head row stays locked until
        // commit, so every round trip here is time no other writer can append.
        txn.execute(
            "WITH entries AS (INSERT INTO gate_audit (seq, body, request_id) \
             SELECT * FROM UNNEST($1::int8[], $2::text[], $4::text[])) \
             UPDATE gate_meta SET value = $3 WHERE key = 'head'",
            &[&seqs, &bodies, &head, &requests],
        )?;
        Ok(hashes)
    }

    /// Writes `group` in one transaction: the requests, then their audit entries in one
    /// append (in queue order), then the freeze check once per wallet that gets a signature.
    fn write_group(&self, group: &[Queued]) -> Result<(), StoreError> {
        let mut c = self.client();
        let mut txn = c.transaction()?;
        let mut entries = Vec::new();
        let mut signed = Vec::new();
        for q in group {
            Self::write(&mut txn, &q.request, true)?;
            Self::insert_outflows(&mut txn, &q.request)?;
            entries.extend(q.audit.iter().cloned());
            if q.request.signature.is_some() && !signed.contains(&q.request.wallet) {
                signed.push(q.request.wallet);
            }
        }
        Self::append(&mut txn, entries)?;
        for wallet in signed {
            Self::refuse_if_frozen(&mut txn, wallet)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Writes a group of inserts in one transaction, or, if that fails, each alone; sets
    /// every one's result.
    fn insert_group(&self, group: &[Queued]) {
        // A failed group transaction wrote nothing; the failure was one request's (or the
        // connection's): each is then tried alone, so only the bad one fails.
        let all_ok = group.len() > 1 && self.write_group(group).is_ok();
        for q in group {
            let r = if all_ok {
                Ok(())
            } else {
                self.write_group(std::slice::from_ref(q))
            };
            *q.result.lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
        }
    }

    /// Refuses (rolls back) a transaction that records a signature while a freeze covers the
    /// wallet. It holds the audit head row (every freeze also appends to the audit log), so a
    /// freeze committed before it is seen here, and one not yet committed comes after it.
    fn refuse_if_frozen(txn: &mut Transaction<'_>, wallet: Address) -> Result<(), StoreError> {
        txn.execute("SELECT 1 FROM gate_meta WHERE key = 'head' FOR UPDATE", &[])?;
        let n: i64 = txn
            .query_one(
                "SELECT count(*) FROM gate_meta WHERE key = 'frozen:*' OR key = $1",
                &[&format!("frozen:{wallet}")],
            )?
            .get(0);
        if n > 0 {
            return Err(StoreError::Frozen { wallet });
        }
        Ok(())
    }

    /// A new request's outflows: recorded if it is signed, reserved if it may be.
    fn insert_outflows(txn: &mut Transaction<'_>, r: &GateRequest) -> Result<(), StoreError> {
        if r.state == RequestState::Signed {
            Self::record_outflows(txn, r, r.updated_at)
        } else if r.state.reserves() && !r.outflows.is_empty() {
            txn.execute(
                "INSERT INTO gate_outflows (wallet, at, request_id, body) VALUES ($1, $2, $3, $4)",
                &[&r.wallet.as_slice(), &RESERVED, &r.id, &json(&r.outflows)?],
            )?;
            Ok(())
        } else {
            Ok(())
        }
    }

    /// A signed request's outflows (velocity) and first payments (new destinations).
    fn record_outflows(
        txn: &mut Transaction<'_>,
        r: &GateRequest,
        at: u64,
    ) -> Result<(), StoreError> {
        if r.outflows.is_empty() {
            return Ok(());
        }
        txn.execute(
            "INSERT INTO gate_outflows (wallet, at, request_id, body) VALUES ($1, $2, $3, $4)",
            &[
                &r.wallet.as_slice(),
                &i64_of(at)?,
                &r.id,
                &json(&r.outflows)?,
            ],
        )?;
        for o in &r.outflows {
            txn.execute(
                "INSERT INTO gate_first_paid (wallet, dest, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&r.wallet.as_slice(), &o.to.as_slice(), &i64_of(at)?],
            )?;
        }
        Ok(())
    }

    fn write(txn: &mut Transaction<'_>, r: &GateRequest, insert: bool) -> Result<(), StoreError> {
        let release = r.release_at.map(i64_of).transpose()?;
        if insert {
            txn.execute(
                "INSERT INTO gate_requests (id, state, created_at, release_at, wallet, chain_id, body) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&r.id, &r.state.name(), &i64_of(r.created_at)?, &release, &r.wallet.as_slice(), &i64_of(r.chain_id)?, &json(r)?],
            )?;
        } else {
            txn.execute(
                "UPDATE gate_requests SET state = $2, release_at = $3, body = $4 WHERE id = $1",
                &[&r.id, &r.state.name(), &release, &json(r)?],
            )?;
        }
        Ok(())
    }
}

impl GateStore for PgGateStore {
    fn insert(&self, request: &GateRequest, audit: Vec<NewAudit>) -> Result<(), StoreError> {
        let result = Arc::new(Mutex::new(None));
        let mut state = self.inserts.lock();
        state.0.push(Queued {
            request: request.clone(),
            audit,
            result: result.clone(),
        });
        loop {
            if let Some(r) = result.lock().unwrap_or_else(PoisonError::into_inner).take() {
                return r;
            }
            if state.1 {
                state = self
                    .inserts
                    .done
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Lead: write what is queued (this insert among it), then wake the others.
            state.1 = true;
            let n = state.0.len().min(GROUP_MAX);
            let group: Vec<Queued> = state.0.drain(..n).collect();
            drop(state);
            // Whatever happens in the group, every writer waiting on it gets an answer (and
            // the leader's flag is cleared below), so no insert waits forever.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.insert_group(&group)
            }));
            for q in &group {
                let mut r = q.result.lock().unwrap_or_else(PoisonError::into_inner);
                if r.is_none() {
                    *r = Some(Err(StoreError::Postgres(format!(
                        "the grouped insert stopped unexpectedly; check whether request {} was recorded",
                        q.request.id
                    ))));
                }
            }
            state = self.inserts.lock();
            state.1 = false;
            self.inserts.done.notify_all();
        }
    }

    fn get(&self, id: &str) -> Result<Option<GateRequest>, StoreError> {
        let mut c = self.client();
        c.query_opt("SELECT body FROM gate_requests WHERE id = $1", &[&id])?
            .map(|row| parse(&row.get::<_, String>(0)))
            .transpose()
    }

    fn transition(
        &self,
        id: &str,
        from: &[RequestState],
        change: Change,
        now: u64,
        audit: Vec<NewAudit>,
    ) -> Result<Option<GateRequest>, StoreError> {
        let mut c = self.client();
        let mut txn = c.transaction()?;
        let Some(row) = txn.query_opt(
            "SELECT body FROM gate_requests WHERE id = $1 FOR UPDATE",
            &[&id],
        )?
        else {
            return Ok(None);
        };
        let mut r: GateRequest = parse(&row.get::<_, String>(0))?;
        if !from.contains(&r.state) {
            return Ok(None);
        }
        let nonce = match change.allocate_nonce.filter(|_| r.nonce.is_none()) {
            Some(floor) => {
                let key = format!("nonce:{}:{}", r.wallet, r.chain_id);
                let stored = txn
                    .query_opt(
                        "SELECT value FROM gate_meta WHERE key = $1 FOR UPDATE",
                        &[&key],
                    )?
                    .map(|row| row.get::<_, Vec<u8>>(0))
                    .filter(|v| v.len() == 8)
                    .map(|v| {
                        let mut n = [0u8; 8];
                        n.copy_from_slice(&v);
                        u64::from_be_bytes(n)
                    })
                    .unwrap_or(0);
                let n = stored.max(floor);
                txn.execute(
                    "INSERT INTO gate_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    &[&key, &(n + 1).to_be_bytes().to_vec()],
                )?;
                Some(n)
            }
            None => None,
        };
        let was_signed = matches!(r.state, RequestState::Signed | RequestState::Broadcast);
        let was_reserved = r.state.reserves();
        apply(&mut r, &change, nonce, now);
        if was_reserved && !r.state.reserves() {
            txn.execute(
                "DELETE FROM gate_outflows WHERE wallet = $1 AND at = $2 AND request_id = $3",
                &[&r.wallet.as_slice(), &RESERVED, &r.id],
            )?;
        }
        if !was_signed && matches!(r.state, RequestState::Signed) {
            Self::record_outflows(&mut txn, &r, now)?;
        }
        Self::write(&mut txn, &r, false)?;
        Self::append(&mut txn, audit)?;
        if change.signature.is_some() {
            Self::refuse_if_frozen(&mut txn, r.wallet)?;
        }
        txn.commit()?;
        Ok(Some(r))
    }

    fn in_state(&self, state: RequestState, limit: usize) -> Result<Vec<GateRequest>, StoreError> {
        let mut c = self.client();
        c.query(
            "SELECT body FROM gate_requests WHERE state = $1 ORDER BY created_at, id LIMIT $2",
            &[&state.name(), &i64_of(limit as u64)?],
        )?
        .iter()
        .map(|row| parse(&row.get::<_, String>(0)))
        .collect()
    }

    fn in_state_after(
        &self,
        state: RequestState,
        after: Option<(u64, &str)>,
        limit: usize,
    ) -> Result<Vec<GateRequest>, StoreError> {
        let mut c = self.client();
        let (at, id) = after.unwrap_or((0, ""));
        let at = if after.is_some() { i64_of(at)? } else { -1 };
        c.query(
            "SELECT body FROM gate_requests WHERE state = $1 AND (created_at, id) > ($2, $3) ORDER BY created_at, id LIMIT $4",
            &[&state.name(), &at, &id, &i64_of(limit as u64)?],
        )?
        .iter()
        .map(|row| parse(&row.get::<_, String>(0)))
        .collect()
    }

    fn due_holds(&self, now: u64, limit: usize) -> Result<Vec<GateRequest>, StoreError> {
        let mut c = self.client();
        c.query(
            "SELECT body FROM gate_requests WHERE state = 'held' AND release_at <= $1 ORDER BY release_at, id LIMIT $2",
            &[&i64_of(now)?, &i64_of(limit as u64)?],
        )?
        .iter()
        .map(|row| parse(&row.get::<_, String>(0)))
        .collect()
    }

    fn add_approval(
        &self,
        approval: &StoredApproval,
        audit: NewAudit,
        replace: bool,
    ) -> Result<bool, StoreError> {
        let mut c = self.client();
        let mut txn = c.transaction()?;
        let n = txn.execute(
            if replace {
                "INSERT INTO gate_approvals (request_id, action, approver, at, body) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (request_id, action, approver) DO UPDATE SET at = EXCLUDED.at, body = EXCLUDED.body"
            } else {
                "INSERT INTO gate_approvals (request_id, action, approver, at, body) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"
            },
            &[&approval.request_id, &approval.action.name(), &approval.approver.as_slice(), &i64_of(approval.at)?, &json(approval)?],
        )?;
        if n == 0 {
            return Ok(false);
        }
        Self::append(&mut txn, vec![audit])?;
        txn.commit()?;
        Ok(true)
    }

    fn approvals(&self, request_id: &str) -> Result<Vec<StoredApproval>, StoreError> {
        let mut c = self.client();
        c.query(
            "SELECT body FROM gate_approvals WHERE request_id = $1 ORDER BY at, approver",
            &[&request_id],
        )?
        .iter()
        .map(|row| parse(&row.get::<_, String>(0)))
        .collect()
    }

    fn insert_decided(
        &self,
        query: &HistoryQuery,
        decide: &mut dyn FnMut(WalletHistory) -> Result<Decided, StoreError>,
    ) -> Result<Option<GateRequest>, StoreError> {
        let mut c = self.client();
        let mut txn = c.transaction()?;
        // Held until commit: the next decision of this wallet, in any instance, waits here
        // and then reads what this one wrote.
        txn.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&WALLET_LOCK_CLASS, &wallet_lock_key(query.wallet)],
        )?;
        let history = read_history(&mut txn, query)?;
        let Some((request, audit)) = decide(history)? else {
            return Ok(None);
        };
        query.holds_lock_of(&request)?;
        Self::write(&mut txn, &request, true)?;
        Self::insert_outflows(&mut txn, &request)?;
        Self::append(&mut txn, audit)?;
        if request.signature.is_some() {
            Self::refuse_if_frozen(&mut txn, request.wallet)?;
        }
        txn.commit()?;
        Ok(Some(request))
    }

    fn history(&self, query: &HistoryQuery) -> Result<WalletHistory, StoreError> {
        let mut c = self.client();
        read_history(&mut *c, query)
    }

    fn set_frozen(
        &self,
        scope: Option<Address>,
        frozen: bool,
        audit: NewAudit,
    ) -> Result<(), StoreError> {
        let key = match scope {
            Some(w) => format!("frozen:{w}"),
            None => "frozen:*".to_owned(),
        };
        let mut c = self.client();
        let mut txn = c.transaction()?;
        let at = audit.at;
        let ids = Self::append(&mut txn, vec![audit])?;
        if frozen {
            // The freeze's id is its audit entry's hash; a scope already frozen keeps its own.
            let freeze = Freeze {
                at,
                id: ids.first().copied().unwrap_or_default(),
            };
            txn.execute(
                "INSERT INTO gate_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &freeze.encode()],
            )?;
        } else {
            txn.execute("DELETE FROM gate_meta WHERE key = $1", &[&key])?;
        }
        txn.commit()?;
        Ok(())
    }

    fn frozen(&self, wallet: Address) -> Result<bool, StoreError> {
        let mut c = self.client();
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM gate_meta WHERE key = 'frozen:*' OR key = $1",
                &[&format!("frozen:{wallet}")],
            )?
            .get(0);
        Ok(n > 0)
    }

    fn freeze_started(&self, scope: Option<Address>) -> Result<Option<Freeze>, StoreError> {
        let key = match scope {
            Some(w) => format!("frozen:{w}"),
            None => "frozen:*".to_owned(),
        };
        let mut c = self.client();
        Ok(
            c.query_opt("SELECT value FROM gate_meta WHERE key = $1", &[&key])?
                .map(|row| Freeze::decode(&row.get::<_, Vec<u8>>(0))),
        )
    }

    fn append_audit(&self, audit: Vec<NewAudit>) -> Result<(), StoreError> {
        let mut c = self.client();
        let mut txn = c.transaction()?;
        Self::append(&mut txn, audit)?;
        txn.commit()?;
        Ok(())
    }

    fn audit_of(&self, id: &str, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let mut c = self.client();
        c.query(
            "SELECT body FROM gate_audit WHERE request_id = $1 ORDER BY seq LIMIT $2",
            &[&id, &i64_of(limit as u64)?],
        )?
        .iter()
        .map(|row| parse(&row.get::<_, String>(0)))
        .collect()
    }

    fn audit(&self, from_seq: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let mut c = self.client();
        c.query(
            "SELECT body FROM gate_audit WHERE seq >= $1 ORDER BY seq LIMIT $2",
            &[&i64_of(from_seq)?, &i64_of(limit as u64)?],
        )?
        .iter()
        .map(|row| parse(&row.get::<_, String>(0)))
        .collect()
    }
}
