//! The HTTP API's JSON bodies, through the real router (`holdfast_server::router`, driven
//! with `tower::ServiceExt::oneshot` on a current-thread runtime), with a guard service on
//! an embedded store in a temporary directory (no node, no signer) and a token holding
//! every role.
//!
//! The first input byte picks the route, the rest is the body (or, for the one GET, the
//! path and query): `POST /v1/screen`, `POST /v1/guard/requests` (submit),
//! `.../approvals`, `.../cancel`, `/v1/guard/freeze`, `/v1/guard/unfreeze`,
//! `GET /v1/addresses/{chain}/{address}`.
//!
//! Checks: no panic; bounded memory; never a 500; every answer is JSON, and every error
//! answer is `{"error": {"code", "message", "field"?}}` with a message fit for
//! a person and, when there is one, a non-empty field.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use holdfast_fuzz::{Bound, bounded, check_field, check_message, run};
use holdfast_gate::config::Token;
use holdfast_gate::{Gate, GateConfig, Role};
use holdfast_guard::{Guard, Policy};
use holdfast_server::{AppState, router};
use holdfast_store::gate::EmbeddedGateStore;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const TOKEN: &str = "fuzz-token";

const ROUTES: &[&str] = &[
    "/v1/screen",
    "/v1/guard/requests",
    "/v1/guard/requests/fuzz-request/approvals",
    "/v1/guard/requests/fuzz-request/cancel",
    "/v1/guard/freeze",
    "/v1/guard/unfreeze",
];

/// What does no I/O and starts no thread, built once before AFL's fork server: the intel
/// and the guard.
fn shared() -> (AppState, Guard) {
    let loader: Arc<holdfast_server::Loader> = Arc::new(|| holdfast_intel::load(None));
    let state = AppState::new(loader, None).expect("the shipped intel loads");
    let policy = Policy::default_policy().expect("the built-in policy parses");
    let intel = holdfast_intel::load(None).expect("the shipped intel loads");
    (state, Guard::new(Arc::new(policy), Arc::new(intel.index)))
}

/// What each fuzzed process needs of its own (a process forked by AFL must not share a store
/// or a runtime's threads with its parent): a runtime, a store in a fresh directory, the
/// guard service and the router.
struct Process {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    _dir: tempfile::TempDir,
}

fn process(state: &AppState, guard: &Guard) -> Process {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let store =
        Arc::new(EmbeddedGateStore::open(&dir.path().join("gate")).expect("the gate store opens"));
    let mut sha256 = [0u8; 32];
    alloy_primitives::hex::decode_to_slice(holdfast_gate::config::token_hash(TOKEN), &mut sha256)
        .expect("a SHA-256 in hex");
    let config = GateConfig {
        simulate: false,
        tokens: vec![Token {
            name: "fuzz".into(),
            sha256,
            roles: vec![Role::Initiator, Role::Operator, Role::Approver, Role::Admin],
            address: None,
        }],
        ..GateConfig::default()
    };
    let app = rt.block_on(async {
        let gate = Arc::new(Gate::new(store, guard.clone(), None, None, config));
        router(state.clone().with_gate(gate, 1e12))
    });
    Process { rt, app, _dir: dir }
}

static PROCESS: OnceLock<Process> = OnceLock::new();

fn main() {
    let (state, guard) = shared();
    run(move |data| {
        let Process { rt, app, .. } = PROCESS.get_or_init(|| process(&state, &guard));
        let Some((&selector, rest)) = data.split_first() else {
            return;
        };
        let request = match ROUTES.get(usize::from(selector) % (ROUTES.len() + 1)) {
            Some(route) => Request::post(*route)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .body(Body::from(rest.to_vec())),
            None => {
                let Ok(path) = std::str::from_utf8(rest) else {
                    return;
                };
                Request::get(format!("/v1/addresses/{path}")).body(Body::empty())
            }
        };
        let Ok(request) = request else {
            return;
        };
        bounded(Bound::DEFAULT, data, || {
            let (status, body) = rt.block_on(async {
                let response = app.clone().oneshot(request).await.expect("infallible");
                let status = response.status();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .expect("the body is read")
                    .to_bytes();
                (status, body)
            });
            assert_ne!(
                status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "500: {}",
                String::from_utf8_lossy(&body)
            );
            let json: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
                panic!(
                    "{status}: the answer is not JSON ({e}): {}",
                    String::from_utf8_lossy(&body)
                )
            });
            if status.is_client_error() || status.is_server_error() {
                let error = &json["error"];
                let message = error["message"].as_str().unwrap_or_else(|| {
                    panic!("{status}: an error answer without error.message: {json}")
                });
                check_message("http", message);
                assert!(
                    error["code"].as_str().is_some_and(|c| !c.is_empty()),
                    "{status}: an error answer without error.code: {json}"
                );
                if let Some(field) = error.get("field") {
                    let field = field
                        .as_str()
                        .unwrap_or_else(|| panic!("{status}: error.field is not a string: {json}"));
                    // An unknown key is named as it is, even when it is empty or blank
                    // (`{"": 1}`: field "", "unknown field ``").
                    if !message.contains("unknown field") {
                        check_field("http", field, message);
                    }
                }
            }
        });
    });
}
