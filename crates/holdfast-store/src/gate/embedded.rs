//! The guard service's state in a fjall directory (`<data-dir>/store/gate`), for one
//! process. Writes are serialized by a mutex and committed as one atomic batch across the
//! keyspaces; every commit is fsynced before it returns — a signature must not be forgotten
//! on a power cut — with group commit, so that concurrent writers share one fsync.
//!
//! | keyspace | key | value |
//! |---|---|---|
//! | `gate.requests` | id | the request (JSON) |
//! | `gate.states` | state, created_at, id | — |
//! | `gate.holds` | release_at, id | — (held requests only) |
//! | `gate.approvals` | request id, 0, action, 0, approver | the approval (JSON) |
//! | `gate.outflows` | wallet, at, id | the outflows (JSON); `at` = `u64::MAX` for a reservation |
//! | `gate.audit` | seq | the entry (JSON) |
//! | `gate.meta` | `head` / `n` wallet chain / `f` scope | audit head / next nonce / frozen since |
//! | `gate.firstpaid` | wallet, destination | when the wallet first paid it |

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use alloy_primitives::{Address, B256};
use fjall::Readable;

use super::{
    AuditEntry, Change, Decided, Freeze, GateRequest, GateStore, HistoryQuery, NewAudit, Outflow,
    RequestState, StoredApproval, WalletHistory, apply,
};
use crate::StoreError;
use crate::group_commit::{Batch, FjallDir, GroupCommit, WriterGuard};

const SPACES: [&str; 10] = [
    "gate.requests",
    "gate.states",
    "gate.holds",
    "gate.approvals",
    "gate.outflows",
    "gate.audit",
    "gate.meta",
    "gate.firstpaid",
    "gate.audit_by_request",
    "gate.sessions",
];
const REQUESTS: usize = 0;
const STATES: usize = 1;
const HOLDS: usize = 2;
const APPROVALS: usize = 3;
const OUTFLOWS: usize = 4;
const AUDIT: usize = 5;
const META: usize = 6;
const FIRST_PAID: usize = 7;
/// The audit entries of each request: key (request id's length, u32) ‖ id ‖ seq, no
/// value. Written in the batch that writes the entry; `META` `audit_indexed` is the last
/// seq it covers (a store written before the index existed is indexed at open).
const AUDIT_BY_REQUEST: usize = 8;
const AUDIT_INDEXED: &[u8] = b"audit_indexed";
/// Console sessions (`super::session`): SHA-256 of the id → expiry ‖ CSRF secret ‖ name.
const SESSIONS: usize = 9;

/// The prefix of request `id`'s keys in [`AUDIT_BY_REQUEST`]: the length first, so no id's
/// prefix is another id's (`old` never reads `old1`'s entries).
fn audit_request_prefix(id: &str) -> Vec<u8> {
    let len = u32::try_from(id.len()).unwrap_or(u32::MAX);
    [&len.to_be_bytes()[..], id.as_bytes()].concat()
}

fn audit_request_key(id: &str, seq: u64) -> Vec<u8> {
    [audit_request_prefix(id), seq.to_be_bytes().to_vec()].concat()
}

/// Decisions that need a wallet's history run under one of these locks, chosen by wallet.
const WALLET_STRIPES: usize = 64;

/// The `at` of a reservation's outflow key: above every real time, so a range from any
/// `since` holds every reservation.
const RESERVED: u64 = u64::MAX;

fn outflow_key(wallet: Address, at: u64, id: &str) -> Vec<u8> {
    [wallet.as_slice(), &at.to_be_bytes(), id.as_bytes()].concat()
}

/// The outflow records of one wallet held in memory: key suffix (`at`, id) → outflows, and
/// the earliest `at` from which the map holds every record (older ones were let go).
#[derive(Debug, Default)]
struct Window {
    records: BTreeMap<Vec<u8>, Vec<Outflow>>,
    horizon: u64,
}

/// Most records one wallet's window keeps in memory; past it the older half is let go and
/// a decision looking further back reads the keyspace.
const WINDOW_MAX_RECORDS: usize = 200_000;

/// The embedded guard state.
pub struct EmbeddedGateStore {
    pub(super) dir: FjallDir,
    group: GroupCommit,
    /// Serializes the decisions of one wallet (see [`GateStore::insert_decided`]).
    wallets: Vec<Mutex<()>>,
    /// The outflow records of the wallets decisions have read, kept equal to
    /// `gate.outflows` (every committed write to it is applied here after its commit), so
    /// that a decision does not parse its whole window from disk each time. The store has
    /// one process, so nothing else writes the keyspace.
    windows: Mutex<HashMap<Address, Window>>,
    /// Most records one wallet's window keeps in memory.
    window_max: usize,
}

impl std::fmt::Debug for EmbeddedGateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedGateStore")
            .field("path", &self.dir.path)
            .finish_non_exhaustive()
    }
}

fn state_byte(s: RequestState) -> u8 {
    s as u8
}

fn index_key(r: &GateRequest) -> Vec<u8> {
    [
        &[state_byte(r.state)][..],
        &r.created_at.to_be_bytes(),
        r.id.as_bytes(),
    ]
    .concat()
}

fn hold_key(at: u64, id: &str) -> Vec<u8> {
    [&at.to_be_bytes()[..], id.as_bytes()].concat()
}

fn nonce_key(wallet: Address, chain_id: u64) -> Vec<u8> {
    [&b"n"[..], wallet.as_slice(), &chain_id.to_be_bytes()].concat()
}

fn freeze_key(scope: Option<Address>) -> Vec<u8> {
    match scope {
        Some(w) => [&b"f"[..], w.as_slice()].concat(),
        None => b"f*".to_vec(),
    }
}

impl EmbeddedGateStore {
    pub fn open(path: &Path) -> Result<EmbeddedGateStore, StoreError> {
        let store = EmbeddedGateStore {
            dir: FjallDir::open(path, &SPACES)?,
            group: GroupCommit::default(),
            wallets: (0..WALLET_STRIPES).map(|_| Mutex::new(())).collect(),
            windows: Mutex::new(HashMap::new()),
            window_max: WINDOW_MAX_RECORDS,
        };
        store.index_audit()?;
        Ok(store)
    }

    /// Adds to the per-request audit index the entries written before it covered them
    /// (a store from before the index: the whole log, once), in batches, each with the
    /// seq it reaches; a crash part way resumes from there at the next open.
    fn index_audit(&self) -> Result<(), StoreError> {
        const BATCH: usize = 10_000;
        let (head, _) = self.head()?;
        let mut done = self.audit_indexed()?;
        if done > head {
            return Err(StoreError::Corrupt(format!(
                "gate audit index reaches entry {done} past the log's head {head}"
            )));
        }
        while done < head {
            let guard = self.lock();
            let mut batch = Batch::default();
            let snap = self.dir.db.snapshot();
            let mut last = done;
            for g in snap
                .range(&self.dir.spaces[AUDIT], (done + 1).to_be_bytes().to_vec()..)
                .take(BATCH)
            {
                let (_, v) = g.into_inner().map_err(|e| self.err(e))?;
                let e: AuditEntry = self.parse(&v)?;
                if let Some(id) = &e.request_id {
                    batch.put(AUDIT_BY_REQUEST, audit_request_key(id, e.seq), Vec::new());
                }
                last = e.seq;
            }
            if last == done {
                return Err(StoreError::Corrupt(format!(
                    "gate audit log ends at entry {done}, its head says {head}"
                )));
            }
            batch.put(META, AUDIT_INDEXED.to_vec(), last.to_be_bytes().to_vec());
            self.commit(guard, batch, Vec::new())?;
            done = last;
        }
        Ok(())
    }

    pub(super) fn sessions_space(&self) -> usize {
        SESSIONS
    }

    /// Commits `batch` (no audit entry) and waits for its fsync.
    pub(super) fn commit_batch(
        &self,
        guard: WriterGuard<'_>,
        batch: Batch,
    ) -> Result<(), StoreError> {
        self.commit(guard, batch, Vec::new())
    }

    /// The last audit entry the per-request index covers.
    fn audit_indexed(&self) -> Result<u64, StoreError> {
        match self.read(META, AUDIT_INDEXED)? {
            Some(v) => <[u8; 8]>::try_from(v.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt("gate audit index mark".into())),
            None => Ok(0),
        }
    }

    /// Keeps at most `n` outflow records per wallet in memory (default 200 000); a decision
    /// looking back past what is kept reads the keyspace.
    #[must_use]
    pub fn window_max_records(mut self, n: usize) -> EmbeddedGateStore {
        self.window_max = n.max(1);
        self
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        self.dir.err(e)
    }

    fn json<T: serde::Serialize>(&self, v: &T) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(v).map_err(|e| self.err(e))
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, v: &[u8]) -> Result<T, StoreError> {
        serde_json::from_slice(v).map_err(|e| StoreError::Corrupt(format!("gate record: {e}")))
    }

    fn read(&self, space: usize, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.dir.read(space, key)
    }

    /// Commits `batch` with the audit entries sealed after the current head, then waits for
    /// an fsync that covers it. Must be called with the writer lock held; releases it
    /// before waiting.
    fn commit(
        &self,
        guard: WriterGuard<'_>,
        batch: Batch,
        audit: Vec<NewAudit>,
    ) -> Result<(), StoreError> {
        let ticket = self.write(guard, batch, audit)?;
        self.sync_up_to(ticket)
    }

    /// Writes `batch` with its audit entries (visible to readers at once) and releases the
    /// writer lock; returns the ticket to wait on with [`Self::sync_up_to`] before the
    /// write may be reported durable. A later write is later in the journal, so whatever a
    /// reader decides from a write that is visible but not yet fsynced is lost with it, if
    /// it is lost.
    fn write(
        &self,
        guard: WriterGuard<'_>,
        mut batch: Batch,
        audit: Vec<NewAudit>,
    ) -> Result<u64, StoreError> {
        if !audit.is_empty() {
            let (mut seq, mut prev) = self.head()?;
            for a in audit {
                seq += 1;
                let e = a.seal(seq, prev);
                prev = e.hash;
                if let Some(id) = &e.request_id {
                    batch.put(AUDIT_BY_REQUEST, audit_request_key(id, seq), Vec::new());
                }
                batch.put(AUDIT, seq.to_be_bytes(), self.json(&e)?);
            }
            batch.put(
                META,
                b"head".to_vec(),
                [&seq.to_be_bytes()[..], prev.as_slice()].concat(),
            );
            batch.put(META, AUDIT_INDEXED.to_vec(), seq.to_be_bytes().to_vec());
        }
        let outflow_ops: Vec<(Vec<u8>, Option<Vec<u8>>)> = batch
            .ops
            .iter()
            .filter(|(space, _, _)| *space == OUTFLOWS)
            .map(|(_, k, v)| (k.clone(), v.clone()))
            .collect();
        self.dir.write(batch)?;
        self.apply_to_windows(outflow_ops);
        Ok(self.group.written(guard))
    }

    fn sync_up_to(&self, mine: u64) -> Result<(), StoreError> {
        self.group.sync_up_to(mine, || self.dir.persist())
    }

    fn head(&self) -> Result<(u64, B256), StoreError> {
        match self.read(META, b"head")? {
            Some(v) if v.len() == 40 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&v[..8]);
                Ok((u64::from_be_bytes(n), B256::from_slice(&v[8..])))
            }
            Some(_) => Err(StoreError::Corrupt("gate audit head".into())),
            None => Ok((0, B256::ZERO)),
        }
    }

    /// A request's outflows reserved (velocity), until it is signed or ends unsigned.
    fn reserve_outflows(&self, batch: &mut Batch, r: &GateRequest) -> Result<(), StoreError> {
        if !r.outflows.is_empty() {
            batch.put(
                OUTFLOWS,
                outflow_key(r.wallet, RESERVED, &r.id),
                self.json(&r.outflows)?,
            );
        }
        Ok(())
    }

    /// A signed request's outflows (velocity) and first payments (new destinations).
    fn record_outflows(
        &self,
        batch: &mut Batch,
        r: &GateRequest,
        at: u64,
    ) -> Result<(), StoreError> {
        if r.outflows.is_empty() {
            return Ok(());
        }
        batch.put(
            OUTFLOWS,
            outflow_key(r.wallet, at, &r.id),
            self.json(&r.outflows)?,
        );
        for o in &r.outflows {
            let k = [r.wallet.as_slice(), o.to.as_slice()].concat();
            if self.read(FIRST_PAID, &k)?.is_none() {
                batch.put(FIRST_PAID, k, at.to_be_bytes().to_vec());
            }
        }
        Ok(())
    }

    pub(super) fn lock(&self) -> WriterGuard<'_> {
        self.group.lock()
    }

    fn index(&self, batch: &mut Batch, r: &GateRequest) {
        batch.put(STATES, index_key(r), Vec::new());
        if let (RequestState::Held, Some(at)) = (r.state, r.release_at) {
            batch.put(HOLDS, hold_key(at, &r.id), Vec::new());
        }
    }

    fn unindex(&self, batch: &mut Batch, r: &GateRequest) {
        batch.del(STATES, index_key(r));
        if let Some(at) = r.release_at {
            batch.del(HOLDS, hold_key(at, &r.id));
        }
    }
}

impl EmbeddedGateStore {
    /// Writes a new request; returns the ticket of its fsync.
    fn insert_unsynced(
        &self,
        request: &GateRequest,
        audit: Vec<NewAudit>,
    ) -> Result<u64, StoreError> {
        let guard = self.lock();
        if request.signature.is_some() && self.frozen(request.wallet)? {
            return Err(StoreError::Frozen {
                wallet: request.wallet,
            });
        }
        if self.read(REQUESTS, request.id.as_bytes())?.is_some() {
            return Err(StoreError::Invalid {
                chain_id: request.chain_id,
                number: 0,
                what: format!("request {} exists already", request.id),
            });
        }
        let mut batch = Batch::default();
        batch.put(
            REQUESTS,
            request.id.as_bytes().to_vec(),
            self.json(request)?,
        );
        self.index(&mut batch, request);
        if request.state == RequestState::Signed {
            self.record_outflows(&mut batch, request, request.updated_at)?;
        } else if request.state.reserves() {
            self.reserve_outflows(&mut batch, request)?;
        }
        self.write(guard, batch, audit)
    }

    /// Applies committed writes of `gate.outflows` to the windows in memory. Called under
    /// the writer lock after the commit, so in commit order; a put or delete applied twice
    /// (a window loaded from a snapshot that already held it) changes nothing.
    fn apply_to_windows(&self, ops: Vec<(Vec<u8>, Option<Vec<u8>>)>) {
        if ops.is_empty() {
            return;
        }
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        for (k, v) in ops {
            if k.len() < 28 {
                continue;
            }
            let wallet = Address::from_slice(&k[..20]);
            let Some(w) = windows.get_mut(&wallet) else {
                continue;
            };
            match v.map(|v| serde_json::from_slice::<Vec<Outflow>>(&v)) {
                Some(Ok(flows)) => {
                    w.records.insert(k[20..].to_vec(), flows);
                }
                None => {
                    w.records.remove(&k[20..]);
                }
                // Cannot happen (the store wrote it a moment ago); if it did, the window is
                // read again from the keyspace rather than kept wrong.
                Some(Err(_)) => {
                    windows.remove(&wallet);
                }
            }
        }
    }

    /// Signed outflows since `since` and reservations: from the wallet's window in memory
    /// (loaded from one snapshot the first time), or from the keyspace when `since` is older
    /// than what the window holds.
    fn read_outflows(
        &self,
        q: &HistoryQuery,
        since: u64,
        out: &mut WalletHistory,
    ) -> Result<(), StoreError> {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let w = match windows.entry(q.wallet) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                // Under the windows lock: a write committed meanwhile is applied after this
                // load (it waits for the lock), and applying it again changes nothing.
                let snap = self.dir.db.snapshot();
                let mut w = Window::default();
                for g in snap.prefix(&self.dir.spaces[OUTFLOWS], q.wallet.as_slice()) {
                    let (k, v) = g.into_inner().map_err(|e| self.err(e))?;
                    if k.len() < 28 {
                        continue;
                    }
                    w.records.insert(k[20..].to_vec(), self.parse(&v)?);
                }
                e.insert(w)
            }
        };
        if since < w.horizon {
            drop(windows);
            return self.read_outflows_from_disk(q, since, out);
        }
        let mut records = 0usize;
        for (k, flows) in w.records.range(since.to_be_bytes().to_vec()..) {
            let mut at = [0u8; 8];
            at.copy_from_slice(&k[..8]);
            let at = u64::from_be_bytes(at);
            if at == RESERVED && q.exclude.as_deref().map(str::as_bytes) == Some(&k[8..]) {
                continue;
            }
            records += 1;
            if records > q.max_records {
                out.truncated = true;
                break;
            }
            let at = if at == RESERVED { q.now } else { at };
            out.outflows.extend(flows.iter().map(|f| (at, f.clone())));
        }
        if w.records.len() > self.window_max {
            // Let the older half go; what is before the new horizon is read from disk.
            let keep = w.records.split_off(
                &w.records
                    .keys()
                    .nth(w.records.len() / 2)
                    .cloned()
                    .unwrap_or_default(),
            );
            w.records = keep;
            // Records of the first kept `at` with smaller ids went: that second is before
            // the horizon too.
            let mut at = [0u8; 8];
            if let Some(k) = w.records.keys().next() {
                at.copy_from_slice(&k[..8]);
            }
            w.horizon = u64::from_be_bytes(at).saturating_add(1);
        }
        Ok(())
    }

    /// Signed outflows since `since` and reservations, from one snapshot of the keyspace.
    fn read_outflows_from_disk(
        &self,
        q: &HistoryQuery,
        since: u64,
        out: &mut WalletHistory,
    ) -> Result<(), StoreError> {
        let snap = self.dir.db.snapshot();
        let start = outflow_key(q.wallet, since, "");
        let mut records = 0usize;
        for g in snap.range(&self.dir.spaces[OUTFLOWS], start..) {
            let (k, v) = g.into_inner().map_err(|e| self.err(e))?;
            if !k.starts_with(q.wallet.as_slice()) || k.len() < 28 {
                break;
            }
            let mut at = [0u8; 8];
            at.copy_from_slice(&k[20..28]);
            let at = u64::from_be_bytes(at);
            if at == RESERVED && q.exclude.as_deref().map(str::as_bytes) == Some(&k[28..]) {
                continue;
            }
            records += 1;
            if records > q.max_records {
                out.truncated = true;
                break;
            }
            let at = if at == RESERVED { q.now } else { at };
            let flows: Vec<Outflow> = self.parse(&v)?;
            out.outflows.extend(flows.into_iter().map(|f| (at, f)));
        }
        Ok(())
    }

    fn first_paid(
        &self,
        wallet: Address,
        destinations: &[Address],
    ) -> Result<Vec<(Address, u64)>, StoreError> {
        let mut out = Vec::new();
        for d in destinations {
            if let Some(v) = self.read(FIRST_PAID, &[wallet.as_slice(), d.as_slice()].concat())? {
                let mut n = [0u8; 8];
                if v.len() == 8 {
                    n.copy_from_slice(&v);
                }
                out.push((*d, u64::from_be_bytes(n)));
            }
        }
        Ok(out)
    }
}

impl GateStore for EmbeddedGateStore {
    fn insert(&self, request: &GateRequest, audit: Vec<NewAudit>) -> Result<(), StoreError> {
        let ticket = self.insert_unsynced(request, audit)?;
        self.sync_up_to(ticket)
    }

    fn insert_decided(
        &self,
        query: &HistoryQuery,
        decide: &mut dyn FnMut(WalletHistory) -> Result<Decided, StoreError>,
    ) -> Result<Option<GateRequest>, StoreError> {
        let stripe = usize::from(query.wallet[19]) % WALLET_STRIPES;
        let wallet_lock = self.wallets[stripe]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let history = self.history(query)?;
        let Some((request, audit)) = decide(history)? else {
            return Ok(None);
        };
        query.holds_lock_of(&request)?;
        let ticket = self.insert_unsynced(&request, audit)?;
        // The next decision of this wallet may read this one now: it is later in the journal,
        // so it cannot outlive it.
        drop(wallet_lock);
        self.sync_up_to(ticket)?;
        Ok(Some(request))
    }

    fn history(&self, query: &HistoryQuery) -> Result<WalletHistory, StoreError> {
        let mut out = WalletHistory {
            frozen: self.frozen(query.wallet)?,
            ..WalletHistory::default()
        };
        if let Some(since) = query.since {
            self.read_outflows(query, since, &mut out)?;
        }
        out.first_paid = self.first_paid(query.wallet, &query.destinations)?;
        Ok(out)
    }

    fn get(&self, id: &str) -> Result<Option<GateRequest>, StoreError> {
        self.read(REQUESTS, id.as_bytes())?
            .map(|v| self.parse(&v))
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
        let guard = self.lock();
        let Some(mut r) = self.get(id)? else {
            return Ok(None);
        };
        if !from.contains(&r.state) {
            return Ok(None);
        }
        // Under the writer lock, as `set_frozen` writes: a freeze is either before this
        // signature is recorded (and stops it) or after it.
        if change.signature.is_some() && self.frozen(r.wallet)? {
            return Err(StoreError::Frozen { wallet: r.wallet });
        }
        let mut batch = Batch::default();
        self.unindex(&mut batch, &r);
        let nonce = match change.allocate_nonce.filter(|_| r.nonce.is_none()) {
            Some(floor) => {
                let key = nonce_key(r.wallet, r.chain_id);
                let stored = match self.read(META, &key)? {
                    Some(v) if v.len() == 8 => {
                        let mut n = [0u8; 8];
                        n.copy_from_slice(&v);
                        u64::from_be_bytes(n)
                    }
                    _ => 0,
                };
                let n = stored.max(floor);
                batch.put(META, key, (n + 1).to_be_bytes());
                Some(n)
            }
            None => None,
        };
        let was_signed = matches!(r.state, RequestState::Signed | RequestState::Broadcast);
        let was_reserved = r.state.reserves();
        apply(&mut r, &change, nonce, now);
        if was_reserved && !r.state.reserves() {
            batch.del(OUTFLOWS, outflow_key(r.wallet, RESERVED, &r.id));
        }
        if !was_signed && matches!(r.state, RequestState::Signed) {
            self.record_outflows(&mut batch, &r, now)?;
        }
        batch.put(REQUESTS, r.id.as_bytes().to_vec(), self.json(&r)?);
        self.index(&mut batch, &r);
        self.commit(guard, batch, audit)?;
        Ok(Some(r))
    }

    fn in_state(&self, state: RequestState, limit: usize) -> Result<Vec<GateRequest>, StoreError> {
        let snap = self.dir.db.snapshot();
        let mut out = Vec::new();
        for g in snap
            .prefix(&self.dir.spaces[STATES], [state_byte(state)])
            .take(limit)
        {
            let (k, _) = g.into_inner().map_err(|e| self.err(e))?;
            let id = std::str::from_utf8(&k[9..])
                .map_err(|_| StoreError::Corrupt("gate index".into()))?;
            if let Some(v) = snap
                .get(&self.dir.spaces[REQUESTS], id.as_bytes())
                .map_err(|e| self.err(e))?
            {
                out.push(self.parse(&v)?);
            }
        }
        Ok(out)
    }

    fn in_state_after(
        &self,
        state: RequestState,
        after: Option<(u64, &str)>,
        limit: usize,
    ) -> Result<Vec<GateRequest>, StoreError> {
        let snap = self.dir.db.snapshot();
        let s = state_byte(state);
        // Keys are (state, created_at, id): the page starts just past the last key of the
        // previous one and ends with the state's keys.
        let start = match after {
            Some((at, id)) => [&[s][..], &at.to_be_bytes(), id.as_bytes(), &[0]].concat(),
            None => vec![s],
        };
        let mut out = Vec::new();
        for g in snap.range(&self.dir.spaces[STATES], start..vec![s.saturating_add(1)]) {
            if out.len() >= limit {
                break;
            }
            let (k, _) = g.into_inner().map_err(|e| self.err(e))?;
            if k.first() != Some(&s) {
                break;
            }
            let id = std::str::from_utf8(&k[9..])
                .map_err(|_| StoreError::Corrupt("gate index".into()))?;
            if let Some(v) = snap
                .get(&self.dir.spaces[REQUESTS], id.as_bytes())
                .map_err(|e| self.err(e))?
            {
                out.push(self.parse(&v)?);
            }
        }
        Ok(out)
    }

    fn due_holds(&self, now: u64, limit: usize) -> Result<Vec<GateRequest>, StoreError> {
        let snap = self.dir.db.snapshot();
        let mut out = Vec::new();
        let end = (now.saturating_add(1)).to_be_bytes();
        for g in snap
            .range(&self.dir.spaces[HOLDS], ..end.to_vec())
            .take(limit)
        {
            let (k, _) = g.into_inner().map_err(|e| self.err(e))?;
            let id = std::str::from_utf8(&k[8..])
                .map_err(|_| StoreError::Corrupt("gate holds".into()))?;
            if let Some(v) = snap
                .get(&self.dir.spaces[REQUESTS], id.as_bytes())
                .map_err(|e| self.err(e))?
            {
                let r: GateRequest = self.parse(&v)?;
                if r.state == RequestState::Held {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    fn add_approval(
        &self,
        approval: &StoredApproval,
        audit: NewAudit,
        replace: bool,
    ) -> Result<bool, StoreError> {
        let guard = self.lock();
        let key = [
            approval.request_id.as_bytes(),
            &[0],
            approval.action.name().as_bytes(),
            &[0],
            approval.approver.as_slice(),
        ]
        .concat();
        if !replace && self.read(APPROVALS, &key)?.is_some() {
            return Ok(false);
        }
        let mut batch = Batch::default();
        batch.put(APPROVALS, key, self.json(approval)?);
        self.commit(guard, batch, vec![audit])?;
        Ok(true)
    }

    fn approvals(&self, request_id: &str) -> Result<Vec<StoredApproval>, StoreError> {
        let snap = self.dir.db.snapshot();
        let prefix = [request_id.as_bytes(), &[0]].concat();
        snap.prefix(&self.dir.spaces[APPROVALS], prefix)
            .map(|g| {
                let (_, v) = g.into_inner().map_err(|e| self.err(e))?;
                self.parse(&v)
            })
            .collect()
    }

    fn set_frozen(
        &self,
        scope: Option<Address>,
        frozen: bool,
        audit: NewAudit,
    ) -> Result<(), StoreError> {
        let guard = self.lock();
        let mut batch = Batch::default();
        if frozen {
            if self.read(META, &freeze_key(scope))?.is_some() {
                // Already frozen: keep when it began.
                return self.commit(guard, batch, vec![audit]);
            }
            // The freeze's id is its audit entry's hash: sealed here as the commit below
            // seals it (first entry after the head, under the writer lock).
            let (seq, prev) = self.head()?;
            let id = audit.clone().seal(seq + 1, prev).hash;
            let freeze = Freeze { at: audit.at, id };
            batch.put(META, freeze_key(scope), freeze.encode());
        } else {
            batch.del(META, freeze_key(scope));
        }
        self.commit(guard, batch, vec![audit])
    }

    fn frozen(&self, wallet: Address) -> Result<bool, StoreError> {
        Ok(self.read(META, &freeze_key(None))?.is_some()
            || self.read(META, &freeze_key(Some(wallet)))?.is_some())
    }

    fn freeze_started(&self, scope: Option<Address>) -> Result<Option<Freeze>, StoreError> {
        Ok(self
            .read(META, &freeze_key(scope))?
            .map(|v| Freeze::decode(&v)))
    }

    fn append_audit(&self, audit: Vec<NewAudit>) -> Result<(), StoreError> {
        let guard = self.lock();
        self.commit(guard, Batch::default(), audit)
    }

    fn audit_of(&self, id: &str, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let snap = self.dir.db.snapshot();
        let prefix = audit_request_prefix(id);
        let mut out = Vec::new();
        for g in snap
            .prefix(&self.dir.spaces[AUDIT_BY_REQUEST], &prefix)
            .take(limit)
        {
            let (key, _) = g.into_inner().map_err(|e| self.err(e))?;
            let seq = key
                .get(prefix.len()..)
                .and_then(|s| <[u8; 8]>::try_from(s).ok())
                .ok_or_else(|| StoreError::Corrupt("gate audit index key".into()))?;
            let v = snap
                .get(&self.dir.spaces[AUDIT], seq)
                .map_err(|e| self.err(e))?
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "gate audit index names entry {} that is not in the log",
                        u64::from_be_bytes(seq)
                    ))
                })?;
            out.push(self.parse(&v)?);
        }
        Ok(out)
    }

    fn audit(&self, from_seq: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let snap = self.dir.db.snapshot();
        snap.range(&self.dir.spaces[AUDIT], from_seq.to_be_bytes().to_vec()..)
            .take(limit)
            .map(|g| {
                let (_, v) = g.into_inner().map_err(|e| self.err(e))?;
                self.parse(&v)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::AuditKind;

    fn entry(id: Option<&str>) -> NewAudit {
        NewAudit {
            at: 1,
            kind: AuditKind::Hold,
            request_id: id.map(str::to_owned),
            actor: "test".into(),
            details: "{}".into(),
        }
    }

    /// A store written before the per-request index existed (simulated: the index rows and
    /// its mark removed) is indexed when it is opened, and the trail is whole again. Also
    /// resumes from a mark part way (a crash during the indexing).
    #[test]
    fn a_store_from_before_the_index_is_indexed_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gate");
        {
            let s = EmbeddedGateStore::open(&path).expect("open");
            let entries: Vec<NewAudit> = (0..25_000)
                .map(|i| entry(if i % 3 == 0 { Some("a") } else { None }))
                .chain([entry(Some("b"))])
                .collect();
            s.append_audit(entries).expect("append");
            assert_eq!(s.audit_of("a", usize::MAX).expect("audit_of").len(), 8_334);
            // Undo the index as an older version would have left the store: no rows, no
            // mark — and then a mark part way, as a crash during indexing leaves it.
            for (mark, rows) in [(None, 0usize), (Some(12_000u64), 4_000)] {
                let snap = s.dir.db.snapshot();
                let mut batch = Batch::default();
                for g in snap.iter(&s.dir.spaces[AUDIT_BY_REQUEST]) {
                    let (k, _) = g.into_inner().expect("key");
                    batch.del(AUDIT_BY_REQUEST, k.to_vec());
                }
                match mark {
                    None => batch.del(META, AUDIT_INDEXED.to_vec()),
                    Some(m) => batch.put(META, AUDIT_INDEXED.to_vec(), m.to_be_bytes().to_vec()),
                }
                s.dir.write(batch).expect("write");
                s.dir.persist().expect("persist");
                assert!(s.audit_of("b", 10).expect("audit_of").is_empty());
                s.index_audit().expect("index");
                let a = s.audit_of("a", usize::MAX).expect("audit_of");
                // With a mark at 12,000, entries below it are taken as indexed already.
                assert_eq!(a.len(), 8_334 - rows, "mark {mark:?}");
                assert!(a.windows(2).all(|w| w[0].seq < w[1].seq));
                assert_eq!(s.audit_of("b", 10).expect("audit_of")[0].seq, 25_001);
            }
        }
        // Reopening leaves a complete index as it is.
        let s = EmbeddedGateStore::open(&path).expect("reopen");
        assert_eq!(s.audit_indexed().expect("mark"), 25_001);
    }
}
