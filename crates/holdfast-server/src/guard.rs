//! The guard service's HTTP API (`/v1/guard/...`) and the JSON-RPC firewall.
//!
//! Every guard route needs a bearer token whose SHA-256 is in the service configuration;
//! the token's roles decide what it may call (initiator: submit; operator: cancel, freeze;
//! approver: approve; admin: audit log, unfreeze). Each token is rate-limited. Without a
//! configured guard service the routes answer 404.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use alloy_primitives::Address;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use holdfast_gate::{Gate, GateError, Principal, Role};
use holdfast_guard::approval::SignedApproval;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;

/// Requests per second allowed per token (with a burst of twice that).
pub const DEFAULT_RATE: f64 = 2_000.0;

/// A token bucket per principal.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(rate: f64) -> Self {
        RateLimiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn allow(&self, who: &str) -> bool {
        let mut b = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let burst = self.rate * 2.0;
        let (tokens, at) = b.entry(who.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl From<GateError> for ApiError {
    fn from(e: GateError) -> Self {
        use axum::http::StatusCode;
        let (status, code) = match &e {
            GateError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            GateError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            GateError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            GateError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            GateError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        };
        if matches!(e, GateError::Unavailable(_)) {
            tracing::error!(target: "server::guard", error = %e, "guard unavailable");
        }
        ApiError {
            status,
            code,
            message: e.to_string(),
            field: None,
        }
    }
}

fn gate(state: &AppState) -> Result<&Arc<Gate>, ApiError> {
    state.gate.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "the guard service is not configured: start `holdfast serve` with --guard-config",
        )
    })
}

/// The caller, from `Authorization: Bearer ...`, rate-limited.
fn principal(state: &AppState, headers: &HeaderMap) -> Result<(Arc<Gate>, Principal), ApiError> {
    let g = gate(state)?.clone();
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let who = g.config().principal(token).ok_or_else(|| {
        ApiError::unauthorized("missing or unknown token (Authorization: Bearer ...)")
    })?;
    if !state.rate.allow(&who.name) {
        return Err(ApiError {
            status: axum::http::StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            message: format!("token {:?} is over its rate limit; slow down", who.name),
            field: None,
        });
    }
    Ok((g, who))
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        ApiError::bad_request((path != ".").then_some(path), e.inner().to_string())
    })
}

pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (g, who) = principal(&state, &headers)?;
    let out = g.submit(&body, &who).await?;
    state.metrics.decision(out.decision.name());
    Ok(axum::Json(out).into_response())
}

pub async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (g, _) = principal(&state, &headers)?;
    Ok(axum::Json(g.status(&id).await?).into_response())
}

pub async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (g, who) = principal(&state, &headers)?;
    let approval: SignedApproval = json_body(&body)?;
    Ok(axum::Json(g.approve(&id, approval, &who).await?).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    reason: String,
}

pub async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (g, who) = principal(&state, &headers)?;
    let b: CancelBody = json_body(&body)?;
    Ok(axum::Json(g.cancel(&id, &b.reason, &who).await?).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FreezeBody {
    /// A wallet; absent: everything.
    #[serde(default)]
    wallet: Option<Address>,
    reason: String,
}

pub async fn freeze(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (g, who) = principal(&state, &headers)?;
    let b: FreezeBody = json_body(&body)?;
    g.freeze(b.wallet, &b.reason, &who).await?;
    let hash = g.unfreeze_hash(b.wallet).await?;
    Ok(
        axum::Json(json!({"frozen": true, "wallet": b.wallet, "unfreeze_hash": hash}))
            .into_response(),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnfreezeBody {
    #[serde(default)]
    wallet: Option<Address>,
    approvals: Vec<SignedApproval>,
}

pub async fn unfreeze(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (g, who) = principal(&state, &headers)?;
    let b: UnfreezeBody = json_body(&body)?;
    g.unfreeze(b.wallet, &b.approvals, &who).await?;
    Ok(axum::Json(json!({"frozen": false, "wallet": b.wallet})).into_response())
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    from: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

pub async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let (g, who) = principal(&state, &headers)?;
    if !who.has(Role::Admin) {
        return Err(GateError::Forbidden {
            who: who.name,
            role: "admin",
        }
        .into());
    }
    let limit = q.limit.unwrap_or(1000).min(10_000);
    let store = g.store().clone();
    let from = q.from.unwrap_or(1);
    let entries = tokio::task::spawn_blocking(move || store.audit(from, limit))
        .await
        .map_err(|e| ApiError::internal("reading the audit log", &e))?
        .map_err(|e| ApiError::from(GateError::from(e)))?;
    Ok(axum::Json(entries).into_response())
}

/// The JSON-RPC firewall: in front of a node, `eth_sendRawTransaction` and
/// `eth_sendTransaction` are decided by the guard; a denied one gets a JSON-RPC error that
/// says why, a held one is kept and sent on release (a cancelled one never), every other
/// method passes through unchanged.
#[derive(Debug, Clone)]
pub struct Firewall {
    pub gate: Arc<Gate>,
    pub upstream: String,
    pub client: reqwest::Client,
    /// Who the firewall submits as (an initiator).
    pub principal: Principal,
}

/// JSON-RPC error code for a request Holdfast refused or is holding.
pub const REFUSED: i64 = -32_003;

impl Firewall {
    async fn forward(&self, call: &Value) -> Value {
        let id = call.get("id").cloned().unwrap_or(Value::Null);
        match self.client.post(&self.upstream).json(call).send().await {
            Ok(r) => r.json::<Value>().await.unwrap_or_else(|e| {
                rpc_error(&id, -32_603, &format!("the node's answer is not JSON: {e}"))
            }),
            Err(e) => rpc_error(
                &id,
                -32_603,
                &format!("the node cannot be reached: {}", e.without_url()),
            ),
        }
    }

    async fn one(&self, call: Value) -> Value {
        let id = call.get("id").cloned().unwrap_or(Value::Null);
        let method = call.get("method").and_then(Value::as_str).unwrap_or("");
        let param = call.get("params").and_then(|p| p.get(0)).cloned();
        let body = match (method, param) {
            ("eth_sendRawTransaction", Some(Value::String(raw))) => json!({"raw": raw}),
            ("eth_sendTransaction", Some(tx @ Value::Object(_))) => tx,
            ("eth_sendRawTransaction" | "eth_sendTransaction", _) => {
                return rpc_error(&id, -32_602, "invalid params: expected one transaction");
            }
            _ => return self.forward(&call).await,
        };
        let bytes = body.to_string().into_bytes();
        let forward = method == "eth_sendTransaction";
        let out = if forward {
            self.gate.submit_forward(&bytes, &self.principal).await
        } else {
            self.gate.submit(&bytes, &self.principal).await
        };
        match out {
            Err(e) => rpc_error(&id, REFUSED, &format!("Holdfast could not decide: {e}")),
            Ok(o) => {
                use holdfast_store::gate::RequestState as S;
                match o.state {
                    S::Broadcast | S::Included | S::Signed if o.tx_hash.is_some() => {
                        json!({"jsonrpc": "2.0", "id": id, "result": o.tx_hash})
                    }
                    S::Held => rpc_error_data(
                        &id,
                        &format!(
                            "held by Holdfast until {} (request {}): it will be sent then unless an operator cancels it",
                            o.release_at.unwrap_or_default(),
                            o.id
                        ),
                        &o,
                    ),
                    S::AwaitingApprovals => rpc_error_data(
                        &id,
                        &format!(
                            "Holdfast needs approvals (request {}): it will be sent once they are in",
                            o.id
                        ),
                        &o,
                    ),
                    _ => rpc_error_data(
                        &id,
                        &format!(
                            "denied by Holdfast{}: {}",
                            o.rule
                                .as_ref()
                                .map(|r| format!(" (rule {r:?})"))
                                .unwrap_or_default(),
                            o.reasons.join("; ")
                        ),
                        &o,
                    ),
                }
            }
        }
    }

    /// Answers a JSON-RPC body (one call or a batch).
    pub async fn handle(&self, body: &[u8]) -> Value {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Array(calls)) if calls.len() <= 100 => {
                let mut out = Vec::with_capacity(calls.len());
                for c in calls {
                    out.push(self.one(c).await);
                }
                Value::Array(out)
            }
            Ok(Value::Array(_)) => {
                rpc_error(&Value::Null, -32_600, "batches are limited to 100 calls")
            }
            Ok(call @ Value::Object(_)) => self.one(call).await,
            Ok(_) => rpc_error(&Value::Null, -32_600, "invalid request"),
            Err(e) => rpc_error(&Value::Null, -32_700, &format!("parse error: {e}")),
        }
    }
}

fn rpc_error(id: &Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

fn rpc_error_data(id: &Value, message: &str, o: &holdfast_gate::Outcome) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": REFUSED, "message": message, "data": {"request_id": o.id, "state": o.state, "decision": o.decision, "rule": o.rule, "reasons": o.reasons}}})
}

/// The firewall's router: JSON-RPC on `/`.
pub fn firewall_router(fw: Firewall) -> axum::Router {
    use axum::routing::post;
    axum::Router::new()
        .route(
            "/",
            post(|State(fw): State<Firewall>, body: Bytes| async move {
                axum::Json(fw.handle(&body).await)
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(
            holdfast_guard::request::MAX_REQUEST_BYTES,
        ))
        .with_state(fw)
}
