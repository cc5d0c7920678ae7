//! The guard service's HTTP API (`/v1/guard/...`); the JSON-RPC firewall is
//! [`crate::firewall`] (re-exported here).
//!
//! Every guard route needs a bearer token whose SHA-256 is in the service configuration;
//! the token's roles decide what it may call (initiator: submit; operator: cancel, freeze;
//! approver: approve; admin: audit log, unfreeze). Each token is rate-limited. Bodies are
//! limited to [`GUARD_MAX_BODY_BYTES`]. Without a configured guard service the routes
//! answer 404.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use alloy_primitives::Address;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use holdfast_gate::{Gate, GateConfig, GateError, Principal, Role};
use holdfast_guard::approval::SignedApproval;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::body::read_body;
use crate::error::{ApiError, ApiPath, query_params};
pub use crate::firewall::{Firewall, REFUSED, firewall_router};

/// Largest body of a guard route: the guard's own request limit (1 MiB), so that a body
/// the HTTP layer takes is never refused later for its size.
pub const GUARD_MAX_BODY_BYTES: usize = holdfast_guard::request::MAX_REQUEST_BYTES;

/// Most audit entries in one answer.
pub const MAX_AUDIT_LIMIT: usize = 10_000;

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
            GateError::Forbidden { .. } | GateError::Refused(_) => {
                (StatusCode::FORBIDDEN, "forbidden")
            }
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

/// A guard route's body, at most [`GUARD_MAX_BODY_BYTES`].
async fn guard_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    Ok(read_body(
        headers,
        body,
        GUARD_MAX_BODY_BYTES,
        state.limits.body_timeout,
    )
    .await?)
}

fn gate(state: &AppState) -> Result<&Arc<Gate>, ApiError> {
    state.gate.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "the guard service is not configured: start `holdfast serve` with --guard-config",
        )
    })
}

/// The caller, from `Authorization: Bearer ...`, rate-limited.
async fn principal(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Arc<Gate>, Principal), ApiError> {
    let g = gate(state)?.clone();
    let who = caller(state, headers, g.config()).await?;
    Ok((g, who))
}

/// The caller, from `Authorization: Bearer ...` checked against `book`'s tokens (the guard
/// service's configuration), rate-limited per token; without a token, a console session
/// with its CSRF token and this console's origin.
pub(crate) async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    book: &GateConfig,
) -> Result<Principal, ApiError> {
    // A console session stands for its user when no token is sent; every guard route but
    // the status read changes state, and all of them need the session's CSRF token then.
    let session = match headers.get(header::AUTHORIZATION) {
        None => crate::console::api_caller(state, headers, true)
            .await
            .transpose()?,
        Some(_) => None,
    };
    let who = match session {
        Some(who) => who,
        None => {
            let token = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            book.principal(token).ok_or_else(|| {
                ApiError::unauthorized("missing or unknown token (Authorization: Bearer ...)")
            })?
        }
    };
    // A session is rate-limited as its token is: the console is no way around the limit.
    if !state.rate.allow(&who.name) {
        return Err(ApiError {
            status: axum::http::StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            message: format!("token {:?} is over its rate limit; slow down", who.name),
            field: None,
        });
    }
    Ok(who)
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
    body: Body,
) -> Result<Response, ApiError> {
    let (g, who) = principal(&state, &headers).await?;
    let body = guard_body(&state, &headers, body).await?;
    let out = g.submit(&body, &who).await?;
    state.metrics.decision(out.decision.name());
    Ok(axum::Json(out).into_response())
}

pub async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let (g, _) = principal(&state, &headers).await?;
    Ok(axum::Json(g.status(&id).await?).into_response())
}

pub async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let (g, who) = principal(&state, &headers).await?;
    let body = guard_body(&state, &headers, body).await?;
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
    ApiPath(id): ApiPath<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let (g, who) = principal(&state, &headers).await?;
    let body = guard_body(&state, &headers, body).await?;
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
    body: Body,
) -> Result<Response, ApiError> {
    let (g, who) = principal(&state, &headers).await?;
    let body = guard_body(&state, &headers, body).await?;
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
    body: Body,
) -> Result<Response, ApiError> {
    let (g, who) = principal(&state, &headers).await?;
    let body = guard_body(&state, &headers, body).await?;
    let b: UnfreezeBody = json_body(&body)?;
    g.unfreeze(b.wallet, &b.approvals, &who).await?;
    Ok(axum::Json(json!({"frozen": false, "wallet": b.wallet})).into_response())
}

/// A whole-number query parameter.
fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ApiError> {
    value.parse::<T>().map_err(|_| {
        ApiError::bad_request(
            key.to_owned(),
            format!("query parameter {key} is {value:?}; expected a whole number"),
        )
    })
}

pub async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (g, who) = principal(&state, &headers).await?;
    if !who.has(Role::Admin) {
        return Err(GateError::Forbidden {
            who: who.name,
            role: Role::Admin,
        }
        .into());
    }
    let q = query_params(query.as_deref(), &["from", "limit"])?;
    let from: u64 = q
        .get("from")
        .map(|v| number("from", v))
        .transpose()?
        .unwrap_or(1);
    let limit: usize = q
        .get("limit")
        .map(|v| number("limit", v))
        .transpose()?
        .unwrap_or(1000);
    let limit = limit.min(MAX_AUDIT_LIMIT);
    let store = g.store().clone();
    let entries = tokio::task::spawn_blocking(move || store.audit(from, limit))
        .await
        .map_err(|e| ApiError::internal("reading the audit log", &e))?
        .map_err(|e| ApiError::from(GateError::from(e)))?;
    Ok(axum::Json(entries).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_messages_are_one_sentence() {
        assert_eq!(
            ApiError::from(GateError::Forbidden {
                who: "svc".into(),
                role: Role::Admin,
            })
            .message,
            "token \"svc\" lacks the admin role"
        );
        let e = ApiError::from(GateError::Refused(
            "approval rejected: 0x00000000000000000000000000000000000000a1 is not a member of group \"officers\"".into(),
        ));
        assert_eq!(e.status, axum::http::StatusCode::FORBIDDEN);
        assert_eq!(
            e.message,
            "approval rejected: 0x00000000000000000000000000000000000000a1 is not a member of group \"officers\""
        );
    }
}
