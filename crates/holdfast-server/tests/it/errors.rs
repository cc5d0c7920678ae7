//! Every error answer is the documented JSON (`{"error": {"code", "message", "field"?}}`),
//! through the router with the guard service configured: body limits, path parameters that
//! are not UTF-8, bad and repeated query parameters, 405, 414, unknown routes, and refusals
//! that say what is refused in one clean sentence.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use holdfast_gate::config::{Token, token_hash};
use holdfast_gate::{Gate, GateConfig, Role};
use holdfast_guard::{Guard, Policy};
use holdfast_server::AppState;
use holdfast_store::gate::{EmbeddedGateStore, GateStore};
use serde_json::{Value, json};

use super::{LAZARUS, call, get, state_for};

pub(super) fn token(name: &str, secret: &str, role: Role) -> Token {
    let hash = alloy::primitives::hex::decode(token_hash(secret)).expect("hex");
    Token {
        name: name.into(),
        sha256: hash.try_into().expect("32 bytes"),
        roles: vec![role],
        address: None,
    }
}

/// The screening API and the guard service (no node: nothing here is signed).
pub(super) fn state_with_gate(dir: &std::path::Path) -> AppState {
    let store = Arc::new(EmbeddedGateStore::open(&dir.join("gate")).expect("store"));
    state_with_gate_store(dir, store)
}

/// The same with the guard's state in `store`.
pub(super) fn state_with_gate_store(dir: &std::path::Path, store: Arc<dyn GateStore>) -> AppState {
    let policy = "[policy]\nname = \"errors\"\n[assets.ETH]\nnative = true\ndecimals = 18\n\
                  [groups.officers]\nmembers = [\"0x00000000000000000000000000000000000000a1\", \"0x00000000000000000000000000000000000000a2\"]\n\
                  [[rule]]\nname = \"big\"\nwhen = { asset_in = [\"ETH\"], amount_above = \"1\" }\naction = \"deny\"\n";
    let intel = Arc::new(holdfast_intel::load(None).expect("intel").index);
    let guard = Guard::new(
        Arc::new(Policy::parse("errors.toml", policy).expect("policy")),
        intel,
    );
    let config = GateConfig {
        simulate: false,
        unfreeze_group: Some("officers".into()),
        tokens: vec![
            token("svc", "init-token", Role::Initiator),
            token("ops", "ops-token", Role::Operator),
            token("root", "admin-token", Role::Admin),
        ],
        ..GateConfig::default()
    };
    let gate = Arc::new(Gate::new(store, guard, None, None, config));
    state_for(dir, None).with_gate(gate, 1_000.0)
}

fn with_token(method: &str, uri: &str, token: &str, body: impl Into<Body>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body.into())
        .expect("request")
}

/// Asserts the documented shape and returns the message.
fn documented(uri: &str, status: StatusCode, want: StatusCode, v: &Value) -> String {
    assert_eq!(status, want, "{uri}: {v}");
    let code = v["error"]["code"].as_str().unwrap_or_default();
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        !code.is_empty() && !msg.is_empty(),
        "{uri}: not the documented JSON: {v}"
    );
    msg.to_owned()
}

#[tokio::test]
async fn every_error_answer_is_the_documented_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state_with_gate(dir.path());
    let guard_limit = holdfast_guard::request::MAX_REQUEST_BYTES;
    // (request, status, field)
    let cases: Vec<(Request<Body>, StatusCode, Option<&str>)> = vec![
        // A guard body over the guard's limit but under the screening API's: 413 (it was
        // taken by the HTTP layer and refused later as a 400).
        (
            with_token(
                "POST",
                "/v1/guard/requests",
                "init-token",
                vec![b' '; guard_limit + 1],
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
        ),
        (
            with_token(
                "POST",
                "/v1/guard/requests",
                "init-token",
                vec![b' '; 3 << 20],
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
        ),
        (
            with_token("POST", "/v1/guard/freeze", "ops-token", vec![b' '; 3 << 20]),
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
        ),
        // Path parameters that are not UTF-8 once decoded.
        (
            with_token(
                "GET",
                "/v1/guard/requests/%FF%FE",
                "init-token",
                Body::empty(),
            ),
            StatusCode::BAD_REQUEST,
            Some("id"),
        ),
        (
            get("/v1/addresses/ethereum/%C3%28"),
            StatusCode::BAD_REQUEST,
            Some("address"),
        ),
        (
            get("/v1/addresses/%FF/0x00"),
            StatusCode::BAD_REQUEST,
            Some("chain"),
        ),
        // Query strings: not a number, repeated, unknown, not UTF-8.
        (
            with_token(
                "GET",
                "/v1/guard/audit?limit=abc",
                "admin-token",
                Body::empty(),
            ),
            StatusCode::BAD_REQUEST,
            Some("limit"),
        ),
        (
            with_token(
                "GET",
                "/v1/guard/audit?from=-1",
                "admin-token",
                Body::empty(),
            ),
            StatusCode::BAD_REQUEST,
            Some("from"),
        ),
        (
            with_token(
                "GET",
                "/v1/guard/audit?limit=1&limit=2",
                "admin-token",
                Body::empty(),
            ),
            StatusCode::BAD_REQUEST,
            Some("limit"),
        ),
        (
            with_token(
                "GET",
                "/v1/guard/audit?from=1&frm=2",
                "admin-token",
                Body::empty(),
            ),
            StatusCode::BAD_REQUEST,
            Some("frm"),
        ),
        (
            get(&format!(
                "/v1/addresses/ethereum/{LAZARUS}?as_of=2020-01-01&as_of=2025-03-01"
            )),
            StatusCode::BAD_REQUEST,
            Some("as_of"),
        ),
        (
            get(&format!("/v1/addresses/ethereum/{LAZARUS}?as_of=%FF")),
            StatusCode::BAD_REQUEST,
            Some("as_of"),
        ),
        // A parameter without a name (found by the http_api fuzz target): the query is
        // named, never an empty field.
        (
            get(&format!("/v1/addresses/ethereum/{LAZARUS}?=&024-01-01")),
            StatusCode::BAD_REQUEST,
            Some("query"),
        ),
        (
            get(&format!("/v1/addresses/ethereum/{LAZARUS}?%FF=1")),
            StatusCode::BAD_REQUEST,
            Some("query"),
        ),
        // A name of blanks only (`+` is a space; found by the same target later): the same.
        (
            get(&format!("/v1/addresses/ethereum/{LAZARUS}?+&024-01-01")),
            StatusCode::BAD_REQUEST,
            Some("query"),
        ),
        (
            get(&format!("/v1/addresses/ethereum/{LAZARUS}?%20%09=1")),
            StatusCode::BAD_REQUEST,
            Some("query"),
        ),
        // Wrong method, unknown route, target too long.
        (get("/v1/screen"), StatusCode::METHOD_NOT_ALLOWED, None),
        (
            with_token("DELETE", "/v1/guard/freeze", "ops-token", Body::empty()),
            StatusCode::METHOD_NOT_ALLOWED,
            None,
        ),
        (get("/v1/nothing/here"), StatusCode::NOT_FOUND, None),
        (
            get(&format!("/v1/addresses/ethereum/{}", "a".repeat(9000))),
            StatusCode::URI_TOO_LONG,
            None,
        ),
    ];
    for (req, want, field) in cases {
        let uri: String = req.uri().to_string().chars().take(80).collect();
        let (status, v) = call(&state, req).await;
        let msg = documented(&uri, status, want, &v);
        if let Some(f) = field {
            assert_eq!(v["error"]["field"], f, "{uri}: {v}");
            assert!(msg.contains(f), "{uri}: the message names {f}: {msg}");
        }
        if want == StatusCode::PAYLOAD_TOO_LARGE {
            assert!(
                msg.contains(&guard_limit.to_string()),
                "{uri}: the guard's limit: {msg}"
            );
        }
        if want == StatusCode::METHOD_NOT_ALLOWED {
            assert!(msg.contains("allowed: POST"), "{uri}: {msg}");
        }
    }
    // A repeated parameter is never resolved by picking one.
    let (_, v) = call(
        &state,
        with_token(
            "GET",
            "/v1/guard/audit?limit=1&limit=2",
            "admin-token",
            Body::empty(),
        ),
    )
    .await;
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("more than once")),
        "{v}"
    );
}

#[tokio::test]
async fn refusals_say_what_is_refused_in_one_sentence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state_with_gate(dir.path());
    // A token without the role.
    let (status, v) = call(
        &state,
        with_token("GET", "/v1/guard/audit", "init-token", Body::empty()),
    )
    .await;
    let msg = documented("audit", status, StatusCode::FORBIDDEN, &v);
    assert_eq!(msg, "token \"svc\" lacks the admin role");
    let (status, v) = call(
        &state,
        with_token(
            "POST",
            "/v1/guard/freeze",
            "init-token",
            json!({"reason": "drill"}).to_string(),
        ),
    )
    .await;
    let msg = documented("freeze", status, StatusCode::FORBIDDEN, &v);
    assert_eq!(msg, "token \"svc\" lacks the operator role");
    // An unfreeze without its quorum: the reason, not "<reason> lacks the approval quorum
    // role".
    let (status, v) = call(
        &state,
        with_token(
            "POST",
            "/v1/guard/freeze",
            "ops-token",
            json!({"reason": "drill"}).to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = call(
        &state,
        with_token(
            "POST",
            "/v1/guard/unfreeze",
            "admin-token",
            json!({"approvals": []}).to_string(),
        ),
    )
    .await;
    let msg = documented("unfreeze", status, StatusCode::FORBIDDEN, &v);
    assert!(
        msg.starts_with("unfreeze refused: 0 valid unfreeze approval(s)")
            && msg.contains("2 needed")
            && !msg.contains("lacks the"),
        "{msg}"
    );
}
