//! [`Gate`]: one decision path for every enforcement mode. A request is decided by the
//! guard engine and recorded with its decision; only an allow — at once, when its hold
//! expires uncancelled, or when its approvals are in — leads to a signature:
//!
//! - a Safe transaction: Holdfast signs the safeTxHash it computed itself (co-signer);
//! - a withdrawal or a transaction from the hot wallet whose key Holdfast holds: it builds,
//!   signs and broadcasts the transaction, with nonces allocated in the store (gateway);
//! - a transaction signed elsewhere (the JSON-RPC firewall): it is broadcast as it is.
//!
//! Every step is a store transition with its audit entries, so a crash at any point leaves
//! a state the background task ([`Gate::tick`]) resumes from, and of several instances on
//! one PostgreSQL only one performs each step. Fail closed: a store or node error is an
//! error answer, never a signature.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::primitives::{Address, B256, Bytes, TxKind, keccak256};
use holdfast_chain::ChainSource;
use holdfast_guard::approval::{
    ApprovalAction, Quorum, SignedApproval, VerifiedApproval, counted, counts_for,
};
use holdfast_guard::facts::{History, PastOutflow, Source};
use holdfast_guard::policy::Decision;
use holdfast_guard::rpc::RpcState;
use holdfast_guard::simulate::{Fork, SimOptions, Simulator};
use holdfast_guard::{CheckOptions, Envelope, Guard, Report};
use holdfast_store::gate::{
    AuditKind, Change, Freeze, GateRequest, GateStore, HistoryQuery, NewAudit, Outflow,
    RequestState, StoredApproval, WalletHistory,
};
use serde::Serialize;
use serde_json::json;

use crate::config::{GateConfig, Principal, Role};
use crate::signer::Signer;

/// How far back velocity limits and new-destination checks look.
pub const HISTORY_WINDOW: Duration = Duration::from_secs(30 * 86_400);
/// A request left in `signing` this long (its instance died mid-way) is taken over.
pub const SIGNING_LEASE: Duration = Duration::from_secs(30);

/// Why a call was refused. Each says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{who} lacks the {role} role")]
    Forbidden { who: String, role: &'static str },
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
    pub decision: String,
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
    pub have: Vec<Address>,
}

/// The guard service.
pub struct Gate {
    store: Arc<dyn GateStore>,
    guard: Guard,
    chain: Option<Arc<ChainSource>>,
    signer: Option<Arc<dyn Signer>>,
    config: GateConfig,
    fork: tokio::sync::Mutex<Option<(Instant, Arc<Simulator>)>>,
    instance: B256,
    counter: AtomicU64,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("store", &self.store)
            .field("signer", &self.signer.as_ref().map(|s| s.address()))
            .finish_non_exhaustive()
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn audit(kind: AuditKind, id: &str, actor: &str, details: serde_json::Value) -> NewAudit {
    NewAudit {
        at: now(),
        kind,
        request_id: Some(id.to_owned()),
        actor: actor.to_owned(),
        details: details.to_string(),
    }
}

fn require(who: &Principal, role: Role) -> Result<(), GateError> {
    if who.has(role) {
        Ok(())
    } else {
        Err(GateError::Forbidden {
            who: who.name.clone(),
            role: role.name(),
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
            store,
            guard,
            chain,
            signer,
            config,
            fork: tokio::sync::Mutex::new(None),
            instance: keccak256(
                [&nanos.to_be_bytes()[..], &std::process::id().to_be_bytes()].concat(),
            ),
            counter: AtomicU64::new(0),
        }
    }

    pub fn store(&self) -> &Arc<dyn GateStore> {
        &self.store
    }

    pub fn config(&self) -> &GateConfig {
        &self.config
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    pub fn signer_address(&self) -> Option<Address> {
        self.signer.as_ref().map(|s| s.address())
    }

    /// The chain the service works on (the node's), `None` without a node.
    pub fn chain_id(&self) -> Option<u64> {
        self.chain.as_ref().map(|c| c.chain_id())
    }

    /// A simulator on recent state (re-pinned every `fork_max_age`), `Ok(None)` when the
    /// service simulates nothing, `Err` when it should and cannot (the policy then sees a
    /// failed simulation).
    async fn simulator(&self) -> Result<Option<Arc<Simulator>>, String> {
        let Some(chain) = self.chain.as_ref().filter(|_| self.config.simulate) else {
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

    /// Runs a store call on a blocking thread (the stores are synchronous).
    async fn db<T, F>(&self, f: F) -> Result<T, GateError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn GateStore) -> Result<T, holdfast_store::StoreError> + Send + 'static,
    {
        self.blocking(move |store| f(store).map_err(GateError::from))
            .await
    }

    /// Runs the guard engine with the history the policy needs, in one blocking call.
    async fn decide(
        &self,
        env: &Envelope,
        approvals: Vec<VerifiedApproval>,
        request_id: &str,
    ) -> Result<Report, GateError> {
        let sim = self.simulator().await;
        let guard = self.guard.clone();
        let env = env.clone();
        let id = request_id.to_owned();
        self.blocking(move |store| decide_again(store, &guard, &env, &approvals, sim, &id))
            .await
    }

    /// Runs `f` on a blocking thread with the store: everything a request needs of the store
    /// and the engine is done in one such call, not one thread hop per step.
    async fn blocking<T, F>(&self, f: F) -> Result<T, GateError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn GateStore) -> Result<T, GateError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&*store))
            .await
            .map_err(|e| GateError::Unavailable(e.to_string()))?
    }

    /// Submits a request: decides, records, and signs what is allowed.
    pub async fn submit(&self, body: &[u8], who: &Principal) -> Result<Outcome, GateError> {
        self.submit_as(body, who, false).await
    }

    /// Submits an `eth_sendTransaction` for the node's own account (the JSON-RPC firewall):
    /// decided like any request; once allowed it is forwarded to the node, which signs it.
    pub async fn submit_forward(&self, body: &[u8], who: &Principal) -> Result<Outcome, GateError> {
        self.submit_as(body, who, true).await
    }

    async fn submit_as(
        &self,
        body: &[u8],
        who: &Principal,
        forward: bool,
    ) -> Result<Outcome, GateError> {
        require(who, Role::Initiator)?;
        let mut env = holdfast_guard::request::parse(body)
            .map_err(|e| GateError::BadRequest(e.to_string()))?;
        // The caller is who the token says, whatever the body claims.
        env.initiator = Some(
            who.address
                .map_or_else(|| who.name.clone(), |a| a.to_string()),
        );
        let sim = self.simulator().await;
        let submission = Submission {
            guard: self.guard.clone(),
            signer: self.signer.clone(),
            env,
            body: String::from_utf8_lossy(body).into_owned(),
            body_hash: keccak256(body),
            actor: who.name.clone(),
            forward,
            chain_id: self.chain_id(),
            id_seed: (self.instance, self.counter.fetch_add(1, Ordering::Relaxed)),
        };
        let (request, report) = self
            .blocking(move |store| submission.record(store, sim))
            .await?;
        tracing::info!(target: "gate::decide", request_id = %request.id, decision = %request.decision, rule = ?request.rule, wallet = %request.wallet, "decided");
        let r = if request.state == RequestState::Signing {
            self.sign(&request.id).await?
        } else {
            request
        };
        let mut out = self.outcome(&r).await?;
        out.report = Some(Box::new(report));
        Ok(out)
    }

    /// A request as the caller sees it.
    pub async fn status(&self, id: &str) -> Result<Outcome, GateError> {
        let r = self.get(id).await?;
        self.outcome(&r).await
    }

    async fn get(&self, id: &str) -> Result<GateRequest, GateError> {
        let key = id.to_owned();
        self.db(move |store| store.get(&key))
            .await?
            .ok_or_else(|| GateError::NotFound(id.to_owned()))
    }

    async fn outcome(&self, r: &GateRequest) -> Result<Outcome, GateError> {
        let approvals = if r.need_approvals > 0 {
            let id = r.id.clone();
            let stored = self.db(move |store| store.approvals(&id)).await?;
            let t = now();
            let verified: Vec<VerifiedApproval> = stored
                .iter()
                .filter_map(|a| serde_json::from_str::<SignedApproval>(&a.approval).ok())
                .filter_map(|a| a.verify(t).ok())
                .collect();
            let members = self.members(r);
            Some(ApprovalStatus {
                need: r.need_approvals,
                group: r.group.clone(),
                // Only what counts now (an expired approval is not shown as counted).
                have: counted(&verified, &self.quorum(r, &members, t)),
            })
        } else {
            None
        };
        Ok(Outcome {
            id: r.id.clone(),
            state: r.state,
            decision: r.decision.clone(),
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

    async fn transition(
        &self,
        id: &str,
        from: &'static [RequestState],
        change: Change,
        entries: Vec<NewAudit>,
    ) -> Result<Option<GateRequest>, GateError> {
        let id = id.to_owned();
        self.db(move |store| store.transition(&id, from, change, now(), entries))
            .await
    }

    async fn fail(
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
        let entries = vec![audit(
            AuditKind::Failure,
            id,
            "holdfast",
            json!({"error": error}),
        )];
        match self.transition(id, from, change, entries).await? {
            Some(r) => Ok(r),
            None => self.get(id).await,
        }
    }

    /// Signs a request in `signing` (and broadcasts it in gateway mode). Safe to call again
    /// on the same request: only one signature is ever stored.
    async fn sign(&self, id: &str) -> Result<GateRequest, GateError> {
        let r = self.get(id).await?;
        if r.state != RequestState::Signing {
            return Ok(r);
        }
        let wallet = r.wallet;
        if self.db(move |store| store.frozen(wallet)).await? {
            return self
                .fail(
                    id,
                    &[RequestState::Signing],
                    "signing is frozen for this wallet; submit again once the freeze is lifted"
                        .into(),
                )
                .await;
        }
        let signer = self.signer.clone();
        let no_key = "this service has no signing key configured ([signer] in the configuration)";
        match r.kind.as_str() {
            "safe" => {
                let Some(signer) = signer else {
                    return self.fail(id, &[RequestState::Signing], no_key.into()).await;
                };
                let sig = match signer.sign_hash(&r.payload_hash) {
                    Ok(s) => s,
                    Err(e) => return self.fail(id, &[RequestState::Signing], e.to_string()).await,
                };
                let change = Change {
                    state: Some(RequestState::Signed),
                    signature: Some(sig.as_bytes().to_vec().into()),
                    ..Change::default()
                };
                let entries = vec![audit(
                    AuditKind::Signature,
                    id,
                    "holdfast",
                    json!({"mode": "safe co-signer", "signer": signer.address(), "safe_tx_hash": r.payload_hash}),
                )];
                let done = self
                    .transition(id, &[RequestState::Signing], change, entries)
                    .await?;
                match done {
                    Some(r) => {
                        tracing::info!(target: "gate::sign", request_id = %id, safe = %r.wallet, "co-signed the safeTxHash");
                        Ok(r)
                    }
                    None => self.get(id).await,
                }
            }
            "signed" => {
                // Signed elsewhere (the firewall): broadcast exactly these bytes.
                let env = holdfast_guard::request::parse(r.request.as_bytes())
                    .map_err(|e| GateError::BadRequest(e.to_string()))?;
                let raw = raw_of(&r.request)?;
                let hash = match &env.request {
                    holdfast_guard::Request::Transaction(t) => t.signed.as_ref().map(|s| s.hash),
                    _ => None,
                };
                let change = Change {
                    state: Some(RequestState::Signed),
                    signature: Some(raw),
                    tx_hash: hash,
                    ..Change::default()
                };
                let entries = vec![audit(
                    AuditKind::Signature,
                    id,
                    "holdfast",
                    json!({"mode": "firewall", "tx_hash": hash}),
                )];
                match self
                    .transition(id, &[RequestState::Signing], change, entries)
                    .await?
                {
                    Some(_) => self.broadcast(id).await,
                    None => self.get(id).await,
                }
            }
            "forward" => self.forward(&r).await,
            _ => match signer {
                Some(signer) => self.sign_transaction(&r, signer).await,
                None => self.fail(id, &[RequestState::Signing], no_key.into()).await,
            },
        }
    }

    /// Firewall mode for `eth_sendTransaction`: the node signs. Claimed (signed state, no
    /// hash) before it is sent, so that a crash in between is reported, never sent twice.
    async fn forward(&self, r: &GateRequest) -> Result<GateRequest, GateError> {
        let id = r.id.as_str();
        let Some(chain) = self.chain.clone() else {
            return self
                .fail(
                    id,
                    &[RequestState::Signing],
                    "forwarding needs a node (gate.rpc)".into(),
                )
                .await;
        };
        let claim = Change {
            state: Some(RequestState::Signed),
            ..Change::default()
        };
        if self
            .transition(id, &[RequestState::Signing], claim, vec![])
            .await?
            .is_none()
        {
            return self.get(id).await;
        }
        let tx: serde_json::Value =
            serde_json::from_str(&r.request).map_err(|e| GateError::BadRequest(e.to_string()))?;
        match chain.send_transaction(&tx).await {
            Ok(hash) => {
                let entries = vec![audit(
                    AuditKind::Broadcast,
                    id,
                    "holdfast",
                    json!({"mode": "firewall forward", "tx_hash": hash}),
                )];
                let change = Change {
                    state: Some(RequestState::Broadcast),
                    tx_hash: Some(hash),
                    ..Change::default()
                };
                Ok(self
                    .transition(id, &[RequestState::Signed], change, entries)
                    .await?
                    .unwrap_or(r.clone()))
            }
            Err(e) => {
                self.fail(
                    id,
                    &[RequestState::Signed],
                    format!("the node refused the transaction: {e}"),
                )
                .await
            }
        }
    }

    /// Gateway mode: build, sign and broadcast the hot wallet's transaction.
    async fn sign_transaction(
        &self,
        r: &GateRequest,
        signer: Arc<dyn Signer>,
    ) -> Result<GateRequest, GateError> {
        let id = r.id.as_str();
        let Some(chain) = self.chain.clone() else {
            return self
                .fail(
                    id,
                    &[RequestState::Signing],
                    "the gateway needs a node (gate.rpc) to send transactions".into(),
                )
                .await;
        };
        if r.wallet != signer.address() {
            return self
                .fail(id, &[RequestState::Signing], format!("wallet {} is not the key this service holds ({}): it can only co-sign Safes and send from its own hot wallet", r.wallet, signer.address()))
                .await;
        }
        let env = holdfast_guard::request::parse(r.request.as_bytes())
            .map_err(|e| GateError::BadRequest(e.to_string()))?;
        let (_, call, _) = self
            .guard
            .root_call(&env)
            .map_err(|e| GateError::BadRequest(e.to_string()))?;
        let floor = chain
            .pending_nonce(r.wallet)
            .await
            .map_err(|e| GateError::Unavailable(format!("reading the nonce: {e}")))?;
        let Some(r) = self
            .transition(
                id,
                &[RequestState::Signing],
                Change {
                    allocate_nonce: Some(floor),
                    ..Change::default()
                },
                vec![],
            )
            .await?
        else {
            return self.get(id).await;
        };
        let nonce = r.nonce.unwrap_or(floor);
        let gas = match &env.request {
            holdfast_guard::Request::Transaction(t) if t.gas.is_some() => t.gas.unwrap_or_default(),
            _ => {
                let g = chain
                    .estimate_gas(r.wallet, call.to, call.value, &call.data)
                    .await
                    .map_err(|e| GateError::Unavailable(format!("estimating gas: {e}")));
                match g {
                    Ok(g) => g + g / 5 + 10_000,
                    Err(e) => return self.fail(id, &[RequestState::Signing], e.to_string()).await,
                }
            }
        };
        let fees = chain
            .fees()
            .await
            .map_err(|e| GateError::Unavailable(format!("reading fees: {e}")))?;
        let tx = TxEip1559 {
            chain_id: r.chain_id,
            nonce,
            gas_limit: gas,
            max_fee_per_gas: fees.base_fee * 2 + fees.priority_fee,
            max_priority_fee_per_gas: fees.priority_fee,
            to: call.to.map_or(TxKind::Create, TxKind::Call),
            value: call.value,
            access_list: Default::default(),
            input: call.data.clone(),
        };
        let sig = match signer.sign_hash(&tx.signature_hash()) {
            Ok(s) => s,
            Err(e) => return self.fail(id, &[RequestState::Signing], e.to_string()).await,
        };
        let envelope: TxEnvelope = tx.into_signed(sig).into();
        let hash = *envelope.tx_hash();
        let raw: Bytes = envelope.encoded_2718().into();
        let change = Change {
            state: Some(RequestState::Signed),
            signature: Some(raw),
            tx_hash: Some(hash),
            ..Change::default()
        };
        let entries = vec![audit(
            AuditKind::Signature,
            id,
            "holdfast",
            json!({"mode": "hot-wallet gateway", "signer": signer.address(), "nonce": nonce, "tx_hash": hash}),
        )];
        match self
            .transition(id, &[RequestState::Signing], change, entries)
            .await?
        {
            Some(_) => self.broadcast(id).await,
            None => self.get(id).await,
        }
    }

    /// Sends a signed transaction (idempotent: the same bytes, the same hash).
    async fn broadcast(&self, id: &str) -> Result<GateRequest, GateError> {
        let r = self.get(id).await?;
        let (Some(raw), Some(hash), Some(chain)) =
            (r.signature.clone(), r.tx_hash, self.chain.clone())
        else {
            return Ok(r);
        };
        if r.state != RequestState::Signed {
            return Ok(r);
        }
        match chain.send_raw(&raw, hash).await {
            Ok(h) => {
                let entries = vec![audit(
                    AuditKind::Broadcast,
                    id,
                    "holdfast",
                    json!({"tx_hash": h}),
                )];
                let change = Change {
                    state: Some(RequestState::Broadcast),
                    ..Change::default()
                };
                Ok(self
                    .transition(id, &[RequestState::Signed], change, entries)
                    .await?
                    .unwrap_or(r))
            }
            Err(e) => {
                // Stays signed: the background task sends it again.
                tracing::warn!(target: "gate::broadcast", request_id = %id, tx_hash = %hash, error = %e, "broadcast failed; will retry");
                Ok(r)
            }
        }
    }

    /// What an approval of request `r` must match to count, at `now`.
    fn quorum<'a>(&self, r: &'a GateRequest, members: &'a [Address], now: u64) -> Quorum<'a> {
        Quorum {
            action: ApprovalAction::Approve,
            request_id: Some(r.id.parse().unwrap_or_default()),
            payload_hash: r.payload_hash,
            chain_id: Some(r.chain_id),
            group: r.group.as_deref().unwrap_or_default(),
            members,
            initiator: r.initiator.parse::<Address>().ok(),
            now,
        }
    }

    /// The members of the group request `r` waits on.
    fn members(&self, r: &GateRequest) -> Vec<Address> {
        r.group
            .as_ref()
            .and_then(|g| self.guard.policy().groups.get(g))
            .cloned()
            .unwrap_or_default()
    }

    /// Adds a signed approval; signs once the policy is satisfied. An approver who already
    /// approved gets the request decided again (which resumes a decision a crash
    /// interrupted) and a conflict if it still waits: an approval counts once. An expired
    /// approval is replaced by its approver's new one.
    pub async fn approve(
        &self,
        id: &str,
        approval: SignedApproval,
        who: &Principal,
    ) -> Result<Outcome, GateError> {
        require(who, Role::Approver)?;
        let r = self.get(id).await?;
        let reject = |reason: String| async move {
            let entry = audit(
                AuditKind::ApprovalRejected,
                id,
                &who.name,
                json!({"reason": reason}),
            );
            let _ = self.db(move |store| store.append_audit(vec![entry])).await;
            reason
        };
        if r.state != RequestState::AwaitingApprovals {
            return Err(GateError::Conflict(format!(
                "request {id} is {}: it takes no approvals",
                r.state.name()
            )));
        }
        let t = now();
        let v = match approval.verify(t) {
            Ok(v) => v,
            Err(e) => {
                return Err(GateError::BadRequest(
                    reject(format!("approval rejected: {e}")).await,
                ));
            }
        };
        let members = self.members(&r);
        if let Err(why) = counts_for(&v, &self.quorum(&r, &members, t)) {
            return Err(GateError::Forbidden {
                who: reject(format!("approval rejected: {why}")).await,
                role: "member of the approving group",
            });
        }
        // The approver's earlier approval, if it still counts, stands; if it expired, this
        // one replaces it.
        let rid = r.id.clone();
        let stored = self.db(move |store| store.approvals(&rid)).await?;
        let earlier = stored
            .iter()
            .filter(|a| a.action == ApprovalAction::Approve.name() && a.approver == v.approver)
            .filter_map(|a| serde_json::from_str::<SignedApproval>(&a.approval).ok())
            .any(|a| {
                a.verify(t)
                    .is_ok_and(|e| counts_for(&e, &self.quorum(&r, &members, t)).is_ok())
            });
        if !earlier {
            let stored = StoredApproval {
                request_id: r.id.clone(),
                approver: v.approver,
                action: ApprovalAction::Approve.name().into(),
                approval: serde_json::to_string(&approval).unwrap_or_default(),
                at: t,
            };
            let entry = audit(
                AuditKind::Approval,
                id,
                &who.name,
                json!({"approver": v.approver, "payload_hash": v.payload_hash, "deadline": v.deadline}),
            );
            self.db(move |store| store.add_approval(&stored, entry, true))
                .await?;
        }
        let r = self.decide_approvals(r).await?;
        if earlier && r.state == RequestState::AwaitingApprovals {
            return Err(GateError::Conflict(format!(
                "{} has already approved request {id} (a replayed approval counts once)",
                v.approver
            )));
        }
        self.outcome(&r).await
    }

    /// Decides request `r` (awaiting approvals) again with every approval stored for it,
    /// and signs it if that allows it. Returns the request as it then is.
    async fn decide_approvals(&self, r: GateRequest) -> Result<GateRequest, GateError> {
        let id = r.id.clone();
        let rid = r.id.clone();
        let all = self.db(move |store| store.approvals(&rid)).await?;
        let t = now();
        let verified: Vec<VerifiedApproval> = all
            .iter()
            .filter_map(|a| serde_json::from_str::<SignedApproval>(&a.approval).ok())
            .filter_map(|a| a.verify(t).ok())
            .collect();
        let env = holdfast_guard::request::parse(r.request.as_bytes())
            .map_err(|e| GateError::BadRequest(e.to_string()))?;
        let env = Envelope {
            initiator: Some(r.initiator.clone()),
            ..env
        };
        let report = self.decide(&env, verified, &r.id).await?;
        if report.payload_hash != r.payload_hash {
            return Err(GateError::Conflict(
                "the request decodes to another payload than when it was submitted".into(),
            ));
        }
        let (state, decision) = match &report.evaluation.decision {
            Decision::Allow => (RequestState::Signing, "allow"),
            Decision::Deny => (RequestState::Denied, "deny"),
            Decision::Hold { .. } | Decision::RequireApprovals { .. } => {
                return self.get(&id).await;
            }
        };
        let entries = vec![audit(
            AuditKind::Decision,
            &id,
            "policy",
            json!({"decision": decision, "rule": report.evaluation.rule, "reasons": report.evaluation.reasons}),
        )];
        let change = Change {
            state: Some(state),
            ..Change::default()
        };
        match self
            .transition(&id, &[RequestState::AwaitingApprovals], change, entries)
            .await?
        {
            Some(_) if state == RequestState::Signing => self.sign(&id).await,
            _ => self.get(&id).await,
        }
    }

    /// Cancels a held request or one awaiting approvals: it is never signed.
    pub async fn cancel(
        &self,
        id: &str,
        reason: &str,
        who: &Principal,
    ) -> Result<Outcome, GateError> {
        require(who, Role::Operator)?;
        let entries = vec![audit(
            AuditKind::Cancel,
            id,
            &who.name,
            json!({"reason": reason}),
        )];
        let change = Change {
            state: Some(RequestState::Cancelled),
            ..Change::default()
        };
        match self
            .transition(
                id,
                &[RequestState::Held, RequestState::AwaitingApprovals],
                change,
                entries,
            )
            .await?
        {
            Some(r) => {
                tracing::info!(target: "gate::cancel", request_id = %id, by = %who.name, "cancelled");
                self.outcome(&r).await
            }
            None => {
                let r = self.get(id).await?;
                Err(GateError::Conflict(format!(
                    "request {id} is {}: only held requests and requests awaiting approvals can be cancelled",
                    r.state.name()
                )))
            }
        }
    }

    /// Stops all signing for `scope` (a wallet) or everything (`None`).
    pub async fn freeze(
        &self,
        scope: Option<Address>,
        reason: &str,
        who: &Principal,
    ) -> Result<(), GateError> {
        if !who.has(Role::Operator) && !who.has(Role::Admin) {
            return Err(GateError::Forbidden {
                who: who.name.clone(),
                role: "operator",
            });
        }
        let entry = NewAudit {
            at: now(),
            kind: AuditKind::Freeze,
            request_id: None,
            actor: who.name.clone(),
            details: json!({"scope": scope, "reason": reason}).to_string(),
        };
        self.db(move |store| store.set_frozen(scope, true, entry))
            .await?;
        tracing::warn!(target: "gate::freeze", scope = ?scope, by = %who.name, "signing frozen");
        Ok(())
    }

    /// What an unfreeze approval of `scope` signs: bound to the freeze it lifts.
    pub async fn unfreeze_hash(&self, scope: Option<Address>) -> Result<Option<B256>, GateError> {
        let started = self.db(move |store| store.freeze_started(scope)).await?;
        Ok(started.map(|f| unfreeze_hash(scope, &f)))
    }

    /// Lifts a freeze: needs `unfreeze_approvals` distinct members of `unfreeze_group`,
    /// each an EIP-712 approval with action `unfreeze` over [`Gate::unfreeze_hash`].
    pub async fn unfreeze(
        &self,
        scope: Option<Address>,
        approvals: &[SignedApproval],
        who: &Principal,
    ) -> Result<(), GateError> {
        require(who, Role::Admin)?;
        let Some(hash) = self.unfreeze_hash(scope).await? else {
            return Err(GateError::Conflict("that scope is not frozen".into()));
        };
        let group = self.config.unfreeze_group.as_ref().ok_or_else(|| GateError::Conflict("no unfreeze_group is configured: a freeze can only be lifted by a quorum of a policy group".into()))?;
        let members = self
            .guard
            .policy()
            .groups
            .get(group)
            .cloned()
            .unwrap_or_default();
        let t = now();
        let verified: Vec<VerifiedApproval> =
            approvals.iter().filter_map(|a| a.verify(t).ok()).collect();
        let approvers = counted(
            &verified,
            &Quorum {
                action: ApprovalAction::Unfreeze,
                request_id: Some(hash),
                payload_hash: hash,
                chain_id: self.chain_id(),
                group,
                members: &members,
                initiator: None,
                now: t,
            },
        );
        if approvers.len() < self.config.unfreeze_approvals as usize {
            return Err(GateError::Forbidden {
                who: format!(
                    "{} valid unfreeze approval(s) from group {group:?}, {} needed",
                    approvers.len(),
                    self.config.unfreeze_approvals
                ),
                role: "approval quorum",
            });
        }
        let entry = NewAudit {
            at: t,
            kind: AuditKind::Unfreeze,
            request_id: None,
            actor: who.name.clone(),
            details: json!({"scope": scope, "approvers": approvers}).to_string(),
        };
        self.db(move |store| store.set_frozen(scope, false, entry))
            .await?;
        tracing::warn!(target: "gate::freeze", scope = ?scope, "freeze lifted");
        Ok(())
    }

    /// One round of the background task: release due holds, resume interrupted signing,
    /// re-send signed transactions, record inclusions. Returns how many requests it moved.
    pub async fn tick(&self) -> Result<usize, GateError> {
        let mut moved = 0;
        let t = now();
        let due = self.db(move |store| store.due_holds(t, 256)).await?;
        for r in due {
            let wallet = r.wallet;
            if self.db(move |store| store.frozen(wallet)).await? {
                continue;
            }
            let entries = vec![audit(
                AuditKind::Release,
                &r.id,
                "holdfast",
                json!({"release_at": r.release_at}),
            )];
            let change = Change {
                state: Some(RequestState::Signing),
                ..Change::default()
            };
            if self
                .transition(&r.id, &[RequestState::Held], change, entries)
                .await?
                .is_some()
            {
                tracing::info!(target: "gate::release", request_id = %r.id, "hold expired uncancelled: released");
                self.sign(&r.id).await?;
                moved += 1;
            }
        }
        for (state, age) in [
            (RequestState::Signing, SIGNING_LEASE),
            (RequestState::Signed, Duration::from_secs(5)),
        ] {
            let stale = self.db(move |store| store.in_state(state, 256)).await?;
            for r in stale
                .into_iter()
                .filter(|r| now().saturating_sub(r.updated_at) >= age.as_secs())
            {
                match state {
                    RequestState::Signing => {
                        self.sign(&r.id).await?;
                    }
                    _ if r.kind == "forward" && r.tx_hash.is_none() => {
                        // Claimed and then interrupted: whether the node sent it is unknown.
                        self.fail(&r.id, &[RequestState::Signed], "interrupted while forwarding: check the node for a transaction from this account before submitting again".into()).await?;
                    }
                    _ => {
                        self.broadcast(&r.id).await?;
                    }
                }
                moved += 1;
            }
        }
        // Requests whose stored approvals already reach their quorum but were not decided
        // again (the process died between storing the last approval and deciding).
        let waiting = self
            .db(move |store| store.in_state(RequestState::AwaitingApprovals, 256))
            .await?;
        for r in waiting {
            let rid = r.id.clone();
            let stored = self.db(move |store| store.approvals(&rid)).await?;
            let t = now();
            let verified: Vec<VerifiedApproval> = stored
                .iter()
                .filter_map(|a| serde_json::from_str::<SignedApproval>(&a.approval).ok())
                .filter_map(|a| a.verify(t).ok())
                .collect();
            let members = self.members(&r);
            if counted(&verified, &self.quorum(&r, &members, t)).len() < r.need_approvals as usize {
                continue;
            }
            tracing::info!(target: "gate::approve", request_id = %r.id, "quorum stored but not decided: deciding again");
            if self.decide_approvals(r).await?.state != RequestState::AwaitingApprovals {
                moved += 1;
            }
        }
        if let Some(chain) = self.chain.clone() {
            let sent = self
                .db(move |store| store.in_state(RequestState::Broadcast, 256))
                .await?;
            for r in sent {
                let Some(hash) = r.tx_hash else { continue };
                if let Ok(Some(inc)) = chain.inclusion(hash).await {
                    let entries = vec![audit(
                        AuditKind::Broadcast,
                        &r.id,
                        "holdfast",
                        json!({"included_in": inc.block_number, "success": inc.success}),
                    )];
                    let change = Change {
                        state: Some(RequestState::Included),
                        error: (!inc.success).then(|| "the transaction reverted".to_owned()),
                        ..Change::default()
                    };
                    if self
                        .transition(&r.id, &[RequestState::Broadcast], change, entries)
                        .await?
                        .is_some()
                    {
                        moved += 1;
                    }
                }
            }
        }
        Ok(moved)
    }

    /// Runs [`Gate::tick`] every `release_interval` until `shutdown` resolves.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut interval = tokio::time::interval(self.config.release_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = interval.tick() => {
                    if let Err(e) = self.tick().await {
                        tracing::error!(target: "gate::release", error = %e, "background round failed; retrying next round");
                    }
                }
            }
        }
    }
}

/// The payload an unfreeze approval signs: the scope and the freeze it lifts (when it began
/// and its id, so approvals over one freeze never lift another, even of the same second).
pub fn unfreeze_hash(scope: Option<Address>, freeze: &Freeze) -> B256 {
    keccak256(
        [
            b"holdfast.unfreeze.v2".as_slice(),
            scope.unwrap_or_default().as_slice(),
            &freeze.at.to_be_bytes(),
            freeze.id.as_slice(),
        ]
        .concat(),
    )
}

fn raw_of(request: &str) -> Result<Bytes, GateError> {
    let v: serde_json::Value =
        serde_json::from_str(request).map_err(|e| GateError::BadRequest(e.to_string()))?;
    let hex = v
        .get("raw")
        .or_else(|| v.get("rawTransaction"))
        .and_then(|x| x.as_str())
        .ok_or_else(|| GateError::BadRequest("no raw transaction".into()))?;
    alloy::primitives::hex::decode(hex)
        .map(Bytes::from)
        .map_err(|e| GateError::BadRequest(e.to_string()))
}

/// What a request sends out, for velocity: the decoded movements, or the simulated ones
/// where the bytes say nothing.
/// A request id: unique per instance (its random seed), counter and time.
fn new_id(payload: B256, (instance, n): (B256, u64)) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    keccak256(
        [
            payload.as_slice(),
            instance.as_slice(),
            &n.to_be_bytes(),
            &nanos.to_be_bytes(),
        ]
        .concat(),
    )
    .to_string()
}

/// At most this many outflow records of one wallet are read for a decision. A wallet with
/// more in its longest velocity window is not summed from a partial list: its velocity
/// limits count as exceeded (fail closed), and the reason says why.
pub const HISTORY_MAX_RECORDS: usize = 100_000;

/// What the policy needs of the wallet's past, and no more: outflows within its longest
/// velocity window (reservations of undecided requests included), and first payments of
/// the request's destinations if a rule asks. `None` when the policy needs nothing.
fn history_query(
    guard: &Guard,
    wallet: Address,
    env: &Envelope,
    now: u64,
    exclude: Option<String>,
) -> Result<Option<HistoryQuery>, GateError> {
    let (window, first_paid) = guard.policy().history_needs();
    let destinations = if first_paid {
        guard
            .decoded_destinations(env)
            .map_err(|e| GateError::BadRequest(e.to_string()))?
    } else {
        Vec::new()
    };
    if window.is_none() && !first_paid {
        return Ok(None);
    }
    Ok(Some(HistoryQuery {
        wallet,
        since: window.map(|w| now.saturating_sub(w.as_secs().min(HISTORY_WINDOW.as_secs()))),
        now,
        destinations,
        exclude,
        max_records: HISTORY_MAX_RECORDS,
    }))
}

/// The store's history of a wallet as the policy sees it.
fn history_of(h: WalletHistory) -> History {
    History {
        known: true,
        truncated: h.truncated,
        outflows: h
            .outflows
            .into_iter()
            .map(|(at, o)| PastOutflow {
                to: o.to,
                asset: o.asset,
                amount: o.amount,
                at,
            })
            .collect(),
        first_paid: h.first_paid,
    }
}

/// The guard engine on a request, with the wallet's history given.
fn decide_with(
    guard: &Guard,
    env: &Envelope,
    approvals: &[VerifiedApproval],
    sim: Result<Option<Arc<Simulator>>, String>,
    history: History,
    now: u64,
) -> Result<Report, GateError> {
    let (sim, sim_failure) = match sim {
        Ok(s) => (s, None),
        Err(e) => (None, Some(e)),
    };
    let opts = CheckOptions {
        simulator: sim.as_deref(),
        safe_version: None,
        history,
        approvals,
        now,
        sim_failure,
    };
    guard
        .check(env, &opts)
        .map_err(|e| GateError::BadRequest(e.to_string()))
}

/// The guard engine on a request already recorded (decided again with its approvals): the
/// wallet's history read without its lock, this request's own reservation left out.
fn decide_again(
    store: &dyn GateStore,
    guard: &Guard,
    env: &Envelope,
    approvals: &[VerifiedApproval],
    sim: Result<Option<Arc<Simulator>>, String>,
    request_id: &str,
) -> Result<Report, GateError> {
    let (_, _, wallet) = guard
        .root_call(env)
        .map_err(|e| GateError::BadRequest(e.to_string()))?;
    let t = now();
    let history = match history_query(guard, wallet, env, t, Some(request_id.to_owned()))? {
        Some(q) => history_of(store.history(&q)?),
        None => History {
            known: true,
            ..History::default()
        },
    };
    decide_with(guard, env, approvals, sim, history, t)
}

/// A submitted request on its way to the store: decided, and recorded with its decision
/// (and, for an allowed Safe transaction, Holdfast's co-signature) in one commit.
struct Submission {
    guard: Guard,
    signer: Option<Arc<dyn Signer>>,
    env: Envelope,
    body: String,
    body_hash: B256,
    actor: String,
    forward: bool,
    chain_id: Option<u64>,
    id_seed: (B256, u64),
}

impl Submission {
    /// Decides and records the request. When the policy looks at the wallet's past, the
    /// decision runs under the wallet's lock in the store and the request is recorded with
    /// its outflows reserved before the lock is released, so racing requests of one wallet
    /// are decided one after another, each seeing the ones before it.
    fn record(
        self,
        store: &dyn GateStore,
        sim: Result<Option<Arc<Simulator>>, String>,
    ) -> Result<(GateRequest, Report), GateError> {
        let (_, _, wallet) = self
            .guard
            .root_call(&self.env)
            .map_err(|e| GateError::BadRequest(e.to_string()))?;
        let t = now();
        let Some(query) = history_query(&self.guard, wallet, &self.env, t, None)? else {
            let history = History {
                known: true,
                ..History::default()
            };
            let frozen = store.frozen(wallet)?;
            let (request, entries, report) = self.decide(sim, history, frozen, t)?;
            store.insert(&request, entries)?;
            return Ok((request, report));
        };
        let mut sim = Some(sim);
        let mut outcome: Option<Result<(GateRequest, Report), GateError>> = None;
        store.insert_decided(&query, &mut |h| {
            let frozen = h.frozen;
            let sim = sim.take().unwrap_or(Ok(None));
            match self.decide(sim, history_of(h), frozen, t) {
                Ok((request, entries, report)) => {
                    outcome = Some(Ok((request.clone(), report)));
                    Ok(Some((request, entries)))
                }
                Err(e) => {
                    outcome = Some(Err(e));
                    Ok(None)
                }
            }
        })?;
        outcome.unwrap_or_else(|| {
            Err(GateError::Unavailable(
                "the store did not run the decision".into(),
            ))
        })
    }

    /// The decision on the request given the wallet's history, and the request as it is to
    /// be recorded with its audit entries.
    fn decide(
        &self,
        sim: Result<Option<Arc<Simulator>>, String>,
        history: History,
        frozen: bool,
        t: u64,
    ) -> Result<(GateRequest, Vec<NewAudit>, Report), GateError> {
        let env = &self.env;
        let report = decide_with(&self.guard, env, &[], sim, history, t)?;
        let chain_id = report.chain_id.or(self.chain_id).unwrap_or_default();
        let id = new_id(report.payload_hash, self.id_seed);
        let wallet = report.wallet;
        let (state, release_at, need, group, reasons, decision, rule) = if frozen {
            let mut reasons = vec![
                "signing is frozen for this wallet: an emergency freeze is in force".to_owned(),
            ];
            reasons.extend(report.evaluation.reasons.iter().cloned());
            (
                RequestState::Denied,
                None,
                0,
                None,
                reasons,
                "deny".to_owned(),
                Some("emergency freeze".to_owned()),
            )
        } else {
            let e = &report.evaluation;
            let (state, release_at, need, group) = match &e.decision {
                Decision::Allow => (RequestState::Signing, None, 0, None),
                Decision::Deny => (RequestState::Denied, None, 0, None),
                Decision::Hold { hold_seconds } => {
                    (RequestState::Held, Some(t + hold_seconds), 0, None)
                }
                Decision::RequireApprovals { need, group, .. } => (
                    RequestState::AwaitingApprovals,
                    None,
                    *need,
                    Some(group.clone()),
                ),
            };
            (
                state,
                release_at,
                need,
                group,
                e.reasons.clone(),
                e.decision.name().to_owned(),
                e.rule.clone(),
            )
        };
        let mut request = GateRequest {
            id: id.clone(),
            payload_hash: report.payload_hash,
            chain_id,
            wallet,
            initiator: env.initiator.clone().unwrap_or_default(),
            kind: if self.forward {
                "forward".to_owned()
            } else {
                report.kind.name().to_owned()
            },
            request: self.body.clone(),
            decision: decision.clone(),
            rule: rule.clone(),
            reasons: reasons.clone(),
            state,
            created_at: t,
            updated_at: t,
            release_at,
            need_approvals: need,
            group: group.clone(),
            nonce: None,
            signature: None,
            tx_hash: None,
            error: None,
            outflows: outflows(&report),
        };
        let mut entries = vec![
            audit(
                AuditKind::Request,
                &id,
                &self.actor,
                json!({"kind": request.kind, "wallet": wallet, "chain_id": chain_id, "payload_hash": report.payload_hash, "body_hash": self.body_hash}),
            ),
            audit(
                AuditKind::Decision,
                &id,
                "policy",
                json!({"decision": decision, "rule": rule, "reasons": reasons, "policy": report.policy, "release_at": release_at, "need_approvals": need, "group": group}),
            ),
        ];
        // A Safe co-signature needs nothing from the chain: sign now and record the request
        // already signed, in the same commit (the signature is stored before it is returned).
        if let (RequestState::Signing, "safe", Some(signer)) =
            (state, request.kind.as_str(), self.signer.as_ref())
            && let Ok(sig) = signer.sign_hash(&request.payload_hash)
        {
            request.state = RequestState::Signed;
            request.signature = Some(sig.as_bytes().to_vec().into());
            entries.push(audit(
                AuditKind::Signature,
                &id,
                "holdfast",
                json!({"mode": "safe co-signer", "signer": signer.address(), "safe_tx_hash": request.payload_hash}),
            ));
        }
        Ok((request, entries, report))
    }
}

fn outflows(report: &Report) -> Vec<Outflow> {
    let decoded: Vec<Outflow> = report
        .movements
        .iter()
        .filter(|m| m.source == Source::Decoded)
        .map(|m| Outflow {
            to: m.to,
            asset: m.asset,
            amount: m.amount,
        })
        .collect();
    if !decoded.is_empty() {
        return decoded;
    }
    report
        .movements
        .iter()
        .map(|m| Outflow {
            to: m.to,
            asset: m.asset,
            amount: m.amount,
        })
        .collect()
}
