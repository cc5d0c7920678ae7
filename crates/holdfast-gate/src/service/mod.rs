//! [`Gate`]: the guard service as the state machine it is. A request is decided by the
//! guard engine and recorded with its decision; only an allow — at once, when its hold
//! expires uncancelled, or when its approvals are in — leads to a signature:
//!
//! ```text
//!            submit ──► denied
//!              │
//!   ┌──────────┼───────────────┐
//!   ▼          ▼               ▼
//! held ──► signing ◄── awaiting_approvals        (cancel: held / awaiting ──► cancelled)
//!  release     │   approve
//!              ▼
//!           signed ──► broadcast ──► included    (a failure: signing / signed ──► failed)
//! ```
//!
//! One module per transition, each a function over a small context ([`Ctx`]: the store, the
//! node, the key and the clock): [`submit`] (decide, record, reserve the outflows), [`sign`]
//! (per [`RequestMode`]: Safe co-signature, hot-wallet transaction, firewall send or
//! forward, and the broadcast), [`approve`], [`cancel`], [`freeze`] (and unfreeze), and
//! [`release`] (the background task, which moves every non-final state that can move:
//! due holds, interrupted signing, unsent transactions, quorums left undecided,
//! inclusions).
//!
//! Every step is a store transition with its audit entries, so a crash at any point leaves
//! a state the background task resumes from, and of several instances on one PostgreSQL
//! only one performs each step. Fail closed: a store or node error is an error answer,
//! never a signature.

mod approve;
mod cancel;
mod freeze;
mod release;
mod sign;
mod submit;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, Bytes, keccak256};
use holdfast_chain::ChainSource;
use holdfast_guard::Guard;
use holdfast_guard::Report;
use holdfast_guard::approval::{SignedApproval, VerifiedApproval};
use holdfast_guard::rpc::RpcState;
use holdfast_guard::simulate::{Fork, SimOptions, Simulator};
use holdfast_store::gate::{
    AuditKind, Change, DecisionKind, GateRequest, GateStore, NewAudit, RequestState,
};
use serde::Serialize;
use serde_json::json;

use crate::clock::{Clock, SystemClock};
use crate::config::{GateConfig, Principal, Role};
use crate::signer::Signer;

pub use freeze::unfreeze_hash;
pub use submit::HISTORY_MAX_RECORDS;

/// How far back velocity limits and new-destination checks look.
pub const HISTORY_WINDOW: Duration = Duration::from_secs(30 * 86_400);
/// A request left in `signing` this long (its instance died mid-way) is taken over.
pub const SIGNING_LEASE: Duration = Duration::from_secs(30);

/// Why a call was refused. Each says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    #[error("{0}")]
    BadRequest(String),
    /// The caller's token lacks the role the call needs.
    #[error("token {who:?} lacks the {} role", role.name())]
    Forbidden { who: String, role: Role },
    /// The caller may make the call, but what it brought does not count (an approval that
    /// does not count for this request, too few unfreeze approvals); the reason says why.
    #[error("{0}")]
    Refused(String),
    #[error("no request {0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The store or the node failed: nothing was signed.
    #[error("{0}: nothing was signed")]
    Unavailable(String),
}

impl From<holdfast_store::StoreError> for GateError {
    fn from(e: holdfast_store::StoreError) -> Self {
        match e {
            holdfast_store::StoreError::Frozen { .. } => {
                GateError::Conflict(format!("{e}; nothing was signed"))
            }
            e => GateError::Unavailable(format!("the guard's state store failed ({e})")),
        }
    }
}

/// What a caller learns about a request.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub id: String,
    pub state: RequestState,
    pub decision: DecisionKind,
    pub rule: Option<String>,
    pub reasons: Vec<String>,
    pub payload_hash: B256,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approvals: Option<ApprovalStatus>,
    /// The co-signer's signature over the safeTxHash (65 bytes), or the signed transaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<Bytes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<Address>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_hash: Option<B256>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The full decision report (on submission).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<Box<Report>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApprovalStatus {
    pub need: u32,
    pub group: Option<String>,
    /// The approvers whose approvals count now.
    pub have: Vec<Address>,
}

/// What every transition works with: the state store, the node, the key and the clock.
#[derive(Clone)]
pub struct Ctx {
    pub store: Arc<dyn GateStore>,
    pub chain: Option<Arc<ChainSource>>,
    pub signer: Option<Arc<dyn Signer>>,
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("store", &self.store)
            .field("signer", &self.signer.as_ref().map(|s| s.address()))
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// An audit entry about request `id`, stamped now.
    pub fn audit(
        &self,
        kind: AuditKind,
        id: &str,
        actor: &str,
        details: serde_json::Value,
    ) -> NewAudit {
        NewAudit {
            at: self.now(),
            kind,
            request_id: Some(id.to_owned()),
            actor: actor.to_owned(),
            details: details.to_string(),
        }
    }

    /// Runs `f` on a blocking thread with the store: everything a request needs of the
    /// store and the engine is done in one such call, not one thread hop per step.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, GateError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn GateStore) -> Result<T, GateError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&*store))
            .await
            .map_err(|e| GateError::Unavailable(e.to_string()))?
    }

    /// Runs a store call on a blocking thread (the stores are synchronous).
    pub async fn db<T, F>(&self, f: F) -> Result<T, GateError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn GateStore) -> Result<T, holdfast_store::StoreError> + Send + 'static,
    {
        self.blocking(move |store| f(store).map_err(GateError::from))
            .await
    }

    pub async fn get(&self, id: &str) -> Result<GateRequest, GateError> {
        let key = id.to_owned();
        self.db(move |store| store.get(&key))
            .await?
            .ok_or_else(|| GateError::NotFound(id.to_owned()))
    }

    /// One store transition of request `id` from one of `from`, stamped now.
    pub async fn transition(
        &self,
        id: &str,
        from: &'static [RequestState],
        change: Change,
        entries: Vec<NewAudit>,
    ) -> Result<Option<GateRequest>, GateError> {
        let id = id.to_owned();
        let t = self.now();
        self.db(move |store| store.transition(&id, from, change, t, entries))
            .await
    }

    /// Moves request `id` to `failed` with `error` (nothing was signed or sent).
    pub async fn fail(
        &self,
        id: &str,
        from: &'static [RequestState],
        error: String,
    ) -> Result<GateRequest, GateError> {
        tracing::warn!(target: "gate::sign", request_id = %id, %error, "not signed");
        let change = Change {
            state: Some(RequestState::Failed),
            error: Some(error.clone()),
            ..Change::default()
        };
        let entries = vec![self.audit(AuditKind::Failure, id, "holdfast", json!({"error": error}))];
        match self.transition(id, from, change, entries).await? {
            Some(r) => Ok(r),
            None => self.get(id).await,
        }
    }

    /// The approvals stored for request `id` whose signatures check out now.
    pub async fn verified_approvals(&self, id: &str) -> Result<Vec<VerifiedApproval>, GateError> {
        self.verified_approvals_if(id, 0).await
    }

    /// The same, when at least `min` approvals are stored for request `id` (else none, and
    /// no signature is checked: the background task's round over every waiting request).
    pub async fn verified_approvals_if(
        &self,
        id: &str,
        min: usize,
    ) -> Result<Vec<VerifiedApproval>, GateError> {
        let rid = id.to_owned();
        let stored = self.db(move |store| store.approvals(&rid)).await?;
        if stored.len() < min {
            return Ok(Vec::new());
        }
        let t = self.now();
        Ok(stored
            .iter()
            .filter_map(|a| serde_json::from_str::<SignedApproval>(&a.approval).ok())
            .filter_map(|a| a.verify(t).ok())
            .collect())
    }
}

/// The guard service.
pub struct Gate {
    cx: Ctx,
    guard: Guard,
    config: GateConfig,
    fork: tokio::sync::Mutex<Option<(Instant, Arc<Simulator>)>>,
    instance: B256,
    counter: AtomicU64,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("cx", &self.cx)
            .finish_non_exhaustive()
    }
}

/// Unix seconds on the system's clock.
pub fn now() -> u64 {
    SystemClock.now()
}

fn require(who: &Principal, role: Role) -> Result<(), GateError> {
    if who.has(role) {
        Ok(())
    } else {
        Err(GateError::Forbidden {
            who: who.name.clone(),
            role,
        })
    }
}

impl Gate {
    pub fn new(
        store: Arc<dyn GateStore>,
        guard: Guard,
        chain: Option<Arc<ChainSource>>,
        signer: Option<Arc<dyn Signer>>,
        config: GateConfig,
    ) -> Gate {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Gate {
            cx: Ctx {
                store,
                chain,
                signer,
                clock: Arc::new(SystemClock),
            },
            guard,
            config,
            fork: tokio::sync::Mutex::new(None),
            instance: keccak256(
                [&nanos.to_be_bytes()[..], &std::process::id().to_be_bytes()].concat(),
            ),
            counter: AtomicU64::new(0),
        }
    }

    /// The same service deciding by `clock` (tests move time without sleeping).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Gate {
        self.cx.clock = clock;
        self
    }

    pub fn store(&self) -> &Arc<dyn GateStore> {
        &self.cx.store
    }

    pub fn config(&self) -> &GateConfig {
        &self.config
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    pub fn signer_address(&self) -> Option<Address> {
        self.cx.signer.as_ref().map(|s| s.address())
    }

    /// The chain the service works on (the node's), `None` without a node.
    pub fn chain_id(&self) -> Option<u64> {
        self.cx.chain.as_ref().map(|c| c.chain_id())
    }

    /// A simulator on recent state (re-pinned every `fork_max_age`), `Ok(None)` when the
    /// service simulates nothing, `Err` when it should and cannot (the policy then sees a
    /// failed simulation).
    async fn simulator(&self) -> Result<Option<Arc<Simulator>>, String> {
        let Some(chain) = self.cx.chain.as_ref().filter(|_| self.config.simulate) else {
            return Ok(None);
        };
        let mut cached = self.fork.lock().await;
        if let Some((at, sim)) = cached.as_ref()
            && at.elapsed() < self.config.fork_max_age
        {
            return Ok(Some(sim.clone()));
        }
        let state = RpcState::on(chain.clone(), None)
            .await
            .map_err(|e| format!("cannot read the chain: {e}"))?;
        let fork = Fork::new(Arc::new(state)).map_err(|e| e.to_string())?;
        let sim = Arc::new(Simulator::new(
            fork,
            SimOptions {
                budget: self.config.sim_budget,
            },
        ));
        *cached = Some((Instant::now(), sim.clone()));
        Ok(Some(sim))
    }

    /// A request as the caller sees it.
    pub async fn status(&self, id: &str) -> Result<Outcome, GateError> {
        let r = self.cx.get(id).await?;
        self.outcome(&r).await
    }

    async fn outcome(&self, r: &GateRequest) -> Result<Outcome, GateError> {
        let approvals = if r.need_approvals > 0 {
            let verified = self.cx.verified_approvals(&r.id).await?;
            let members = approve::members(&self.guard, r);
            Some(ApprovalStatus {
                need: r.need_approvals,
                group: r.group.clone(),
                // Only what counts now (an expired approval is not shown as counted).
                have: holdfast_guard::approval::counted(
                    &verified,
                    &approve::quorum(r, &members, self.cx.now()),
                ),
            })
        } else {
            None
        };
        Ok(Outcome {
            id: r.id.clone(),
            state: r.state,
            decision: r.decision,
            rule: r.rule.clone(),
            reasons: r.reasons.clone(),
            payload_hash: r.payload_hash,
            release_at: r.release_at,
            approvals,
            signature: r.signature.clone(),
            signer: r.signature.as_ref().and(self.signer_address()),
            tx_hash: r.tx_hash,
            nonce: r.nonce,
            error: r.error.clone(),
            report: None,
        })
    }
}

#[cfg(test)]
mod tests;
