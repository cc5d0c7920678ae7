//! The watch's alerts (`/v1/alerts...`): list with filters and pages, one alert,
//! acknowledge (a bearer token with the operator or admin role, from the guard service's
//! token list), and the live stream of alert events ([`stream`], server-sent events).
//! Reading them needs a bearer token of any role, or a console session ([`reader`]): an
//! alert names the wallets watched and what threatens them.
//!
//! The server reads the watch's store ([`holdfast_store::watch::WatchStore`]) and passes the
//! alert bodies through as JSON: it does not know the watch's alert type. Without a
//! configured watch store every route answers 404.

pub mod stream;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use holdfast_gate::Role;
use holdfast_store::StoreError;
use holdfast_store::watch::{AlertQuery, AlertStatus, SEVERITY_NAMES, StoredAlert, WatchStore};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiPath, query_params};

pub use stream::Streams;

/// Alerts in one page when the query gives no `limit`.
pub const DEFAULT_PAGE: usize = 100;
/// Most alerts in one page.
pub const MAX_PAGE: usize = 1_000;
/// A page ends early once its alert bodies pass this many bytes (`next_before` continues).
pub const MAX_PAGE_BYTES: usize = 8 << 20;
/// Alerts read from the store at a time while a page is built.
const CHUNK: usize = 50;

pub(crate) fn store(state: &AppState) -> Result<Arc<dyn WatchStore>, ApiError> {
    state.watch.clone().ok_or_else(|| {
        ApiError::not_found(
            "the watch is not configured: start `holdfast serve` with --watch-config",
        )
    })
}

/// Reading alerts: a bearer token of any role from the guard configuration's tokens, or a
/// console session (its cookie; reads need no CSRF token).
pub(crate) async fn reader(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if headers.get(axum::http::header::AUTHORIZATION).is_none()
        && let Some(who) = crate::console::api_caller(state, headers, false).await
    {
        return who.map(|_| ());
    }
    let book = state.token_book().ok_or_else(|| {
        ApiError::not_found(
            "reading alerts needs API tokens: start `holdfast serve` with --guard-config (its [[token]] entries)",
        )
    })?;
    crate::guard::caller(state, headers, book).await.map(|_| ())
}

/// A store error as the client sees it: a bad argument names its field; a failure of the
/// store is logged here once and answered 503.
pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Argument { field, .. } => {
            let field = match field {
                "alert id" => "id",
                f => f,
            };
            ApiError::bad_request(field.to_owned(), e.to_string())
        }
        StoreError::Limit(_) => ApiError::bad_request("limit".to_owned(), e.to_string()),
        e => {
            tracing::error!(target: "server::alerts", error = %e, "the watch's store failed");
            ApiError::for_status(
                StatusCode::SERVICE_UNAVAILABLE,
                "the watch's store failed; see the server log",
            )
        }
    }
}

/// Runs a store call off the request threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal("reading the watch's store", &e))?
        .map_err(store_error)
}

/// An alert body as JSON (checked when it was committed; a body that does not parse now is
/// passed as a string rather than dropped).
pub(crate) fn body_json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// A stored alert as the API answers it.
pub fn alert_json(a: &StoredAlert) -> Value {
    json!({
        "id": a.id,
        "chain_id": a.chain_id,
        "block_number": a.block_number,
        "block_hash": a.block_hash.to_string(),
        "rule": a.rule,
        "severity": SEVERITY_NAMES.get(usize::from(a.severity)).copied().unwrap_or("critical"),
        "status": a.status.name(),
        "confirmed": a.confirmed,
        "acknowledged": a.acknowledged.as_ref().map(|(by, at)| json!({"by": by, "at_ms": at})),
        "raised_at_ms": a.raised_at_ms,
        "alert": body_json(&a.body),
    })
}

fn parse<T: std::str::FromStr>(key: &str, value: &str, expected: &str) -> Result<T, ApiError> {
    value.parse::<T>().map_err(|_| {
        ApiError::bad_request(
            key.to_owned(),
            format!("query parameter {key} is {value:?}; expected {expected}"),
        )
    })
}

/// The list's query string as a store query (its `limit` is the page size).
fn list_query(query: Option<&str>) -> Result<AlertQuery, ApiError> {
    let q = query_params(
        query,
        &[
            "chain",
            "rule",
            "status",
            "min_severity",
            "acknowledged",
            "before",
            "limit",
        ],
    )?;
    let get = |k: &str| q.get(k).map(String::as_str);
    let status = get("status")
        .map(|v| {
            AlertStatus::from_name(v).ok_or_else(|| {
                ApiError::bad_request(
                    "status".to_owned(),
                    format!("query parameter status is {v:?}; expected open or retracted"),
                )
            })
        })
        .transpose()?;
    let min_severity = get("min_severity")
        .map(|v| {
            SEVERITY_NAMES
                .iter()
                .position(|s| *s == v)
                .and_then(|p| u8::try_from(p).ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "min_severity".to_owned(),
                        format!(
                            "query parameter min_severity is {v:?}; expected one of {}",
                            SEVERITY_NAMES.join(", ")
                        ),
                    )
                })
        })
        .transpose()?;
    let limit = match get("limit") {
        Some(v) => {
            match parse::<usize>("limit", v, &format!("a whole number from 1 to {MAX_PAGE}")) {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => {
                    return Err(ApiError::bad_request(
                        "limit".to_owned(),
                        format!(
                            "query parameter limit is {v:?}; expected a whole number from 1 to {MAX_PAGE}"
                        ),
                    ));
                }
            }
        }
        None => DEFAULT_PAGE,
    };
    Ok(AlertQuery {
        chain_id: get("chain")
            .map(|v| parse("chain", v, "a chain id (a whole number)"))
            .transpose()?,
        rule: get("rule").map(str::to_owned),
        status,
        min_severity,
        acknowledged: get("acknowledged")
            .map(|v| parse("acknowledged", v, "true or false"))
            .transpose()?,
        before_id: get("before").map(str::to_owned),
        limit,
    })
}

/// `GET /v1/alerts`: newest first; `next_before` is the `before` of the next page, `null`
/// at the end.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let store = store(&state)?;
    reader(&state, &headers).await?;
    let query = list_query(query.as_deref())?;
    let page = blocking(move || {
        let mut out: Vec<StoredAlert> = Vec::new();
        let mut bytes = 0usize;
        let mut q = query.clone();
        loop {
            q.limit = CHUNK.min(query.limit - out.len());
            let chunk = store.alerts(&q)?;
            let exhausted = chunk.len() < q.limit;
            for a in chunk {
                bytes += a.body.len();
                out.push(a);
                if bytes > MAX_PAGE_BYTES {
                    return Ok((out, true));
                }
            }
            if exhausted {
                return Ok((out, false));
            }
            if out.len() == query.limit {
                return Ok((out, true));
            }
            q.before_id = out.last().map(|a| a.id.clone());
        }
    })
    .await?;
    let (alerts, more) = page;
    let next = more.then(|| alerts.last().map(|a| a.id.clone())).flatten();
    Ok(axum::Json(json!({
        "alerts": alerts.iter().map(alert_json).collect::<Vec<_>>(),
        "next_before": next,
    }))
    .into_response())
}

/// `GET /v1/alerts/{id}`.
pub async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let store = store(&state)?;
    reader(&state, &headers).await?;
    let found = {
        let id = id.clone();
        blocking(move || store.alert(&id)).await?
    };
    match found {
        Some(a) => Ok(axum::Json(alert_json(&a)).into_response()),
        None => Err(ApiError::not_found(format!("no alert {id:?}"))),
    }
}

/// `POST /v1/alerts/{id}/ack`: the caller's token needs the operator or admin role; the
/// first acknowledgement stays. No body is read.
pub async fn acknowledge(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    _body: Body,
) -> Result<Response, ApiError> {
    let store = store(&state)?;
    let book = state.token_book().ok_or_else(|| {
        ApiError::not_found(
            "acknowledging alerts needs API tokens: start `holdfast serve` with --guard-config (its [[token]] entries)",
        )
    })?;
    let who = crate::guard::caller(&state, &headers, book).await?;
    if !(who.has(Role::Operator) || who.has(Role::Admin)) {
        return Err(ApiError {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: format!("token {:?} lacks the operator or admin role", who.name),
            field: None,
        });
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let found = {
        let id = id.clone();
        blocking(move || store.acknowledge(&id, &who.name, now)).await?
    };
    match found {
        Some(a) => Ok(axum::Json(alert_json(&a)).into_response()),
        None => Err(ApiError::not_found(format!("no alert {id:?}"))),
    }
}

/// The OpenAPI paths of these routes.
pub fn openapi_paths(err: &dyn Fn(&str) -> Value) -> Vec<(&'static str, Value)> {
    let id = json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "maxLength": 200 } });
    let not_configured = "No such alert, or the watch is not configured";
    vec![
        (
            "/v1/alerts",
            json!({ "get": {
                "summary": "The watch's alerts, newest raised first, filtered and paged",
                "security": [ { "bearerToken": [] } ],
                "parameters": [
                    { "name": "chain", "in": "query", "schema": { "type": "integer" }, "description": "Chain id" },
                    { "name": "rule", "in": "query", "schema": { "type": "string" } },
                    { "name": "status", "in": "query", "schema": { "type": "string", "enum": ["open", "retracted"] } },
                    { "name": "min_severity", "in": "query", "schema": { "type": "string", "enum": SEVERITY_NAMES } },
                    { "name": "acknowledged", "in": "query", "schema": { "type": "boolean" } },
                    { "name": "before", "in": "query", "schema": { "type": "string" }, "description": "The next_before of the previous page" },
                    { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE } }
                ],
                "responses": {
                    "200": { "description": "A page of alerts; it ends early past 8 MiB of alert bodies. next_before is null at the end.", "content": { "application/json": { "schema": { "type": "object", "required": ["alerts", "next_before"], "properties": {
                        "alerts": { "type": "array", "items": { "$ref": "#/components/schemas/Alert" } },
                        "next_before": { "type": ["string", "null"] } } } } } },
                    "400": err("A bad filter (the field names it), or a before that names no alert"),
                    "401": err("Missing or unknown token (any role), and no console session"),
                    "404": err("The watch is not configured, or no API tokens are configured"),
                    "503": err("The watch's store failed")
                }
            }}),
        ),
        (
            "/v1/alerts/{id}",
            json!({ "get": {
                "summary": "One alert",
                "security": [ { "bearerToken": [] } ],
                "parameters": [ id ],
                "responses": {
                    "200": { "description": "The alert", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Alert" } } } },
                    "400": err("Not an alert id (1 to 200 printable ASCII characters)"),
                    "401": err("Missing or unknown token (any role), and no console session"),
                    "404": err(not_configured)
                }
            }}),
        ),
        (
            "/v1/alerts/{id}/ack",
            json!({ "post": {
                "summary": "Acknowledge an alert (the first acknowledgement stays)",
                "security": [ { "bearerToken": ["operator", "admin"] } ],
                "parameters": [ id ],
                "responses": {
                    "200": { "description": "The alert with its acknowledgement", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Alert" } } } },
                    "401": err("Missing or unknown token"),
                    "403": err("The token lacks the operator and admin roles"),
                    "404": err("No such alert, the watch is not configured, or no API tokens are configured"),
                    "429": err("The token is over its rate limit")
                }
            }}),
        ),
        (
            "/v1/alerts/stream",
            json!({ "get": {
                "summary": "Live stream of alert events (server-sent events): each event has id = its outbox number and event = raised, retracted or confirmed; data is {seq, key, kind, alert_id, alert}. Heartbeat comments keep the connection alive. It resumes after Last-Event-ID (or the query after), else starts at the newest event.",
                "security": [ { "bearerToken": [] } ],
                "parameters": [
                    { "name": "Last-Event-ID", "in": "header", "schema": { "type": "integer", "minimum": 0 } },
                    { "name": "after", "in": "query", "schema": { "type": "integer", "minimum": 0 }, "description": "Start after this outbox number (0: from the first event)" }
                ],
                "responses": {
                    "200": { "description": "The event stream", "content": { "text/event-stream": {} } },
                    "400": err("Last-Event-ID or after is not a whole number, or is past the newest event"),
                    "401": err("Missing or unknown token (any role), and no console session"),
                    "404": err("The watch is not configured"),
                    "503": err("Too many live streams are open, or the watch's store failed")
                }
            }}),
        ),
    ]
}

/// The OpenAPI schema of an alert.
pub fn openapi_schema() -> Value {
    json!({ "type": "object", "required": ["id", "chain_id", "block_number", "block_hash", "rule", "severity", "status", "confirmed", "acknowledged", "raised_at_ms", "alert"], "properties": {
        "id": { "type": "string", "description": "Deterministic: the same block gives the same ids, live and in replay" },
        "chain_id": { "type": "integer" },
        "block_number": { "type": "integer" },
        "block_hash": { "type": "string" },
        "rule": { "type": "string" },
        "severity": { "type": "string", "enum": SEVERITY_NAMES },
        "status": { "type": "string", "enum": ["open", "retracted"], "description": "retracted: its block was unwound by a reorg" },
        "confirmed": { "type": "boolean", "description": "Its block reached the configured confirmations" },
        "acknowledged": { "type": ["object", "null"], "properties": { "by": { "type": "string" }, "at_ms": { "type": "integer" } } },
        "raised_at_ms": { "type": "integer" },
        "alert": { "type": "object", "description": "The alert as the watch wrote it: rule, severity, facts in words, addresses with labels, links" } } })
}
