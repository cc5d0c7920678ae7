//! Submission: decide with the guard engine and record the request with its decision, in
//! one step per wallet when the policy reads the wallet's past (its outflows reserved
//! before the next decision of that wallet reads them); an allowed Safe transaction is
//! recorded already co-signed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, keccak256};
use holdfast_guard::approval::VerifiedApproval;
use holdfast_guard::facts::{History, PastOutflow, Source};
use holdfast_guard::policy::Decision;
use holdfast_guard::simulate::Simulator;
use holdfast_guard::{CheckOptions, Envelope, Guard, Report};
use holdfast_store::gate::{
    AuditKind, DecisionKind, GateRequest, GateStore, HistoryQuery, NewAudit, Outflow, RequestMode,
    RequestState, WalletHistory,
};
use serde_json::json;

use super::{Ctx, Gate, GateError, HISTORY_WINDOW, Outcome, require, sign};
use crate::config::{Principal, Role};

impl Gate {
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
            cx: self.cx.clone(),
            env,
            body: String::from_utf8_lossy(body).into_owned(),
            body_hash: keccak256(body),
            actor: who.name.clone(),
            forward,
            chain_id: self.chain_id(),
            id_seed: (self.instance, self.counter.fetch_add(1, Ordering::Relaxed)),
        };
        let (request, report) = self
            .cx
            .blocking(move |store| submission.record(store, sim))
            .await?;
        tracing::info!(target: "gate::decide", request_id = %request.id, decision = request.decision.name(), rule = ?request.rule, wallet = %request.wallet, "decided");
        let r = if request.state == RequestState::Signing {
            sign::sign(&self.cx, &self.guard, &request.id).await?
        } else {
            request
        };
        let mut out = self.outcome(&r).await?;
        out.report = Some(Box::new(report));
        Ok(out)
    }

    /// Decides request `r` again (with its approvals) on fresh state: the wallet's history
    /// read without its lock, the request's own reservation left out.
    pub(super) async fn decide_again(
        &self,
        env: &Envelope,
        approvals: Vec<VerifiedApproval>,
        request_id: &str,
    ) -> Result<Report, GateError> {
        let sim = self.simulator().await;
        let guard = self.guard.clone();
        let env = env.clone();
        let id = request_id.to_owned();
        let t = self.cx.now();
        self.cx
            .blocking(move |store| decide_again(store, &guard, &env, &approvals, sim, &id, t))
            .await
    }
}

/// A request id: unique per instance (its random seed), counter and time.
fn new_id(payload: B256, (instance, n): (B256, u64)) -> String {
    // Wall-clock nanoseconds only make ids unique, they decide nothing.
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
    let opts = CheckOptions::deciding(
        sim.as_ref().map(Option::as_deref).map_err(Clone::clone),
        history,
        approvals,
        now,
    );
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
    t: u64,
) -> Result<Report, GateError> {
    let (_, _, wallet) = guard
        .root_call(env)
        .map_err(|e| GateError::BadRequest(e.to_string()))?;
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
    cx: Ctx,
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
        let t = self.cx.now();
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
                DecisionKind::Deny,
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
                decision_kind(&e.decision),
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
                RequestMode::Forward
            } else {
                mode_of(report.kind)
            },
            request: self.body.clone(),
            decision,
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
            // What the console shows of the request: the engine's own report, as decided.
            report: serde_json::to_string(&report).ok(),
        };
        let mut entries = vec![
            self.cx.audit(
                AuditKind::Request,
                &id,
                &self.actor,
                json!({"kind": request.kind, "wallet": wallet, "chain_id": chain_id, "payload_hash": report.payload_hash, "body_hash": self.body_hash}),
            ),
            self.cx.audit(
                AuditKind::Decision,
                &id,
                "policy",
                json!({"decision": decision, "rule": rule, "reasons": reasons, "policy": report.policy, "release_at": release_at, "need_approvals": need, "group": group}),
            ),
        ];
        // A Safe co-signature needs nothing from the chain: sign now and record the request
        // already signed, in the same commit (the signature is stored before it is returned).
        if (state, request.kind) == (RequestState::Signing, RequestMode::Safe)
            && let Ok((signature, entry)) = sign::safe_signature(&self.cx, &request)
        {
            request.state = RequestState::Signed;
            request.signature = Some(signature);
            entries.push(entry);
        }
        Ok((request, entries, report))
    }
}

/// How a request the engine decided is signed once allowed.
fn mode_of(kind: holdfast_guard::facts::RequestKind) -> RequestMode {
    use holdfast_guard::facts::RequestKind as K;
    match kind {
        K::Transaction => RequestMode::Transaction,
        K::SignedTransaction => RequestMode::Signed,
        K::Safe => RequestMode::Safe,
        K::Withdrawal => RequestMode::Withdrawal,
    }
}

/// The engine's decision as the service records it.
pub(super) fn decision_kind(d: &Decision) -> DecisionKind {
    match d {
        Decision::Allow => DecisionKind::Allow,
        Decision::Hold { .. } => DecisionKind::Hold,
        Decision::RequireApprovals { .. } => DecisionKind::RequireApprovals,
        Decision::Deny => DecisionKind::Deny,
    }
}

/// What a request sends out, for velocity: the decoded movements, or the simulated ones
/// where the bytes say nothing.
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
