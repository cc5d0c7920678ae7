//! Handlers. Each answers JSON; errors go through [`ApiError`].

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, RawQuery, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use holdfast_intel::cluster::ClusterScreenError;
use holdfast_intel::{ScreenOptions, Verdict};
use holdfast_primitives::{Chain, Date, RiskLevel};

use crate::body::read_body;
use crate::error::{ApiError, ApiPath, query_params};
use crate::metrics::{RequestLabels, RiskLabels, RouteLabels};
use crate::{AppState, MAX_BATCH, MAX_BODY_BYTES};

/// Every route of the API. The OpenAPI document ([`crate::openapi`]) lists the same set; a
/// test keeps the two equal.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/screen"),
    ("get", "/v1/addresses/{chain}/{address}"),
    ("post", "/v1/admin/reload"),
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("post", "/v1/guard/requests"),
    ("get", "/v1/guard/requests/{id}"),
    ("post", "/v1/guard/requests/{id}/approvals"),
    ("post", "/v1/guard/requests/{id}/cancel"),
    ("post", "/v1/guard/freeze"),
    ("post", "/v1/guard/unfreeze"),
    ("get", "/v1/guard/audit"),
    ("get", "/v1/alerts"),
    ("get", "/v1/alerts/stream"),
    ("get", "/v1/alerts/{id}"),
    ("post", "/v1/alerts/{id}/ack"),
];

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/screen", post(screen_batch))
        .route("/v1/addresses/{chain}/{address}", get(screen_one))
        .route("/v1/admin/reload", post(reload))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_doc))
        .route("/v1/guard/requests", post(crate::guard::submit))
        .route("/v1/guard/requests/{id}", get(crate::guard::status))
        .route(
            "/v1/guard/requests/{id}/approvals",
            post(crate::guard::approve),
        )
        .route("/v1/guard/requests/{id}/cancel", post(crate::guard::cancel))
        .route("/v1/guard/freeze", post(crate::guard::freeze))
        .route("/v1/guard/unfreeze", post(crate::guard::unfreeze))
        .route("/v1/guard/audit", get(crate::guard::audit))
        .route("/v1/alerts", get(crate::alerts::list))
        .route("/v1/alerts/stream", get(crate::alerts::stream::stream))
        .route("/v1/alerts/{id}", get(crate::alerts::one))
        .route("/v1/alerts/{id}/ack", post(crate::alerts::acknowledge))
        .merge(crate::console::router())
        .fallback(|| async { ApiError::not_found("no such route; see /openapi.json") })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::console::throttle::bearer,
        ))
        .layer(middleware::from_fn(crate::error::json_errors))
        .layer(middleware::from_fn(crate::console::headers))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Counts and times every request by matched route and status.
async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    let m = &state.metrics;
    m.latency
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(start.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&RequestLabels {
            route,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScreenRequest {
    addresses: Vec<String>,
    #[serde(default)]
    chain: Option<String>,
    #[serde(default)]
    as_of: Option<String>,
}

#[derive(Debug, serde::Serialize)]
struct ScreenResponse {
    as_of: Date,
    /// Highest risk over the batch.
    risk: RiskLevel,
    results: Vec<Verdict>,
}

fn parse_chain(field: &str, s: &str) -> Result<Chain, ApiError> {
    s.parse::<Chain>()
        .map_err(|e| ApiError::bad_request(field.to_owned(), e.to_string()))
}

fn parse_as_of(s: Option<&str>) -> Result<Date, ApiError> {
    match s {
        None => Ok(Date::today()),
        Some(s) => s
            .parse::<Date>()
            .map_err(|e| ApiError::bad_request("as_of".to_owned(), e.to_string())),
    }
}

async fn screen_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_body(&headers, body, MAX_BODY_BYTES, state.limits.body_timeout).await?;
    if let Some(ct) = headers.get(header::CONTENT_TYPE)
        && !ct.to_str().unwrap_or("").starts_with("application/json")
    {
        return Err(ApiError::bad_request(
            None,
            "content-type must be application/json".to_owned(),
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(&body);
    let req: ScreenRequest = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != ".").then_some(path);
        ApiError::bad_request(field, format!("invalid request body: {}", e.inner()))
    })?;
    if req.addresses.is_empty() {
        return Err(ApiError::bad_request(
            "addresses".to_owned(),
            "at least one address is required".to_owned(),
        ));
    }
    if req.addresses.len() > MAX_BATCH {
        return Err(ApiError::too_large(format!(
            "{} addresses in one request; at most {MAX_BATCH}",
            req.addresses.len()
        )));
    }
    let chain = req
        .chain
        .as_deref()
        .map(|c| parse_chain("chain", c))
        .transpose()?;
    let options = ScreenOptions {
        chain,
        as_of: parse_as_of(req.as_of.as_deref())?,
    };
    let intel = state.intel.load_full();
    let clusters = state.clusters.clone();
    let addresses = req.addresses;
    // Cluster lookups read the UTXO index (blocking): off the request threads.
    let (results, errors) = tokio::task::spawn_blocking(move || {
        let mut results = Vec::with_capacity(addresses.len());
        let mut errors = Vec::new();
        for (i, a) in addresses.iter().enumerate() {
            match intel
                .index
                .screen_clustered(a, &options, clusters.as_deref())
            {
                Ok(v) => results.push(v),
                Err(e) => errors.push((i, e)),
            }
        }
        (results, errors)
    })
    .await
    .map_err(|e| ApiError::internal("screening", &e))?;
    if let Some((_, ClusterScreenError::Source(e))) = errors
        .iter()
        .find(|(_, e)| matches!(e, ClusterScreenError::Source(_)))
    {
        return Err(ApiError::internal("reading address clusters", e));
    }
    if let Some((i, e)) = errors.first() {
        let more = if errors.len() > 1 {
            format!(" ({} invalid addresses in all)", errors.len())
        } else {
            String::new()
        };
        return Err(ApiError::bad_request(
            format!("addresses[{i}]"),
            format!("{e}{more}"),
        ));
    }
    let risk = results.iter().map(|v| v.risk).max().unwrap_or_default();
    for v in &results {
        state
            .metrics
            .screened
            .get_or_create(&RiskLabels {
                risk: v.risk.name(),
            })
            .inc();
    }
    Ok(axum::Json(ScreenResponse {
        as_of: options.as_of,
        risk,
        results,
    })
    .into_response())
}

async fn screen_one(
    State(state): State<AppState>,
    ApiPath((chain, address)): ApiPath<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let chain = parse_chain("chain", &chain)?;
    let query = query_params(query.as_deref(), &["as_of"])?;
    let options = ScreenOptions {
        chain: Some(chain),
        as_of: parse_as_of(query.get("as_of").map(String::as_str))?,
    };
    let intel = state.intel.load_full();
    let clusters = state.clusters.clone();
    let verdict = tokio::task::spawn_blocking(move || {
        intel
            .index
            .screen_clustered(&address, &options, clusters.as_deref())
    })
    .await
    .map_err(|e| ApiError::internal("screening", &e))?
    .map_err(|e| match e {
        ClusterScreenError::Address(e) => {
            ApiError::bad_request("address".to_owned(), e.to_string())
        }
        ClusterScreenError::Source(e) => ApiError::internal("reading address clusters", &e),
    })?;
    state
        .metrics
        .screened
        .get_or_create(&RiskLabels {
            risk: verdict.risk.name(),
        })
        .inc();
    Ok(axum::Json(verdict).into_response())
}

/// Compares in time independent of where the strings differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn reload(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(expected) = state.admin_token.as_deref() else {
        return Err(ApiError::not_found(
            "admin endpoints are disabled: start the server with an admin token (--admin-token-file or HOLDFAST_ADMIN_TOKEN)",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(ApiError::unauthorized(
            "missing or wrong admin token (Authorization: Bearer ...)",
        ));
    }
    let intel = state
        .reload()
        .await
        .map_err(|e| ApiError::internal("reloading intel", &e))?;
    Ok(axum::Json(serde_json::json!({
        "status": "reloaded",
        "labels": intel.index.label_count(),
        "addresses": intel.index.address_count(),
        "report": intel.report,
    }))
    .into_response())
}

async fn healthz(State(state): State<AppState>) -> Response {
    let intel = state.intel.load();
    let loaded_at = intel
        .loaded_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    axum::Json(serde_json::json!({
        "status": "ok",
        "labels": intel.index.label_count(),
        "addresses": intel.index.address_count(),
        "loaded_at_unix": loaded_at,
        "sdn_update": intel.report.sdn_update,
    }))
    .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

async fn openapi_doc() -> Response {
    axum::Json(crate::openapi()).into_response()
}
