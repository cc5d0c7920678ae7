//! holdfast-server integration tests: through the router (`oneshot`) and a real socket.

mod alerts;
mod console;
mod errors;
mod firewall;
mod limits;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use holdfast_intel::DataDir;
use holdfast_server::{AppState, Loader};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const LAZARUS: &str = "0x098B716B8Aaf21512996dC57EB0615e2383E2f96";

fn state_for(dir: &std::path::Path, token: Option<&str>) -> AppState {
    let data = DataDir::new(dir);
    let loader: Arc<Loader> = Arc::new(move || holdfast_intel::load(Some(&data)));
    AppState::new(loader, token.map(str::to_owned)).expect("intel loads")
}

async fn call(state: &AppState, req: Request<Body>) -> (StatusCode, Value) {
    let resp = holdfast_server::router(state.clone())
        .oneshot(req)
        .await
        .expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

fn post_json(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(body.into())
        .expect("request")
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

#[tokio::test]
async fn screen_batch_and_single() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state_for(dir.path(), None);
    let body = json!({ "addresses": [LAZARUS, "0x000000000000000000000000000000000000dEaD", "TBHTJqAy4DhHhmT3dNceJYNRz4SdLofLre"] }).to_string();
    let (status, v) = call(&state, post_json("/v1/screen", body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["risk"], "severe");
    assert_eq!(v["results"][0]["risk"], "severe");
    assert_eq!(v["results"][2]["risk"], "severe");
    assert_eq!(v["results"].as_array().map(Vec::len), Some(3));

    let (status, v) = call(
        &state,
        get(&format!("/v1/addresses/eth/{}", LAZARUS.to_lowercase())),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["address"], LAZARUS);
    assert!(
        v["labels"]
            .as_array()
            .is_some_and(|l| l.iter().any(|l| l["name"] == "LAZARUS GROUP"))
    );

    let (status, v) = call(
        &state,
        get("/v1/addresses/ethereum/0xd90e2f925DA726b50C4Ed8D0Fb90Ad053324F31b?as_of=2025-03-01"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["risk"], "severe", "Tornado Cash before its delisting");
}

#[tokio::test]
async fn bad_requests_are_4xx_json_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state_for(dir.path(), None);
    let cases: Vec<(Request<Body>, StatusCode, Option<&str>)> = vec![
        (
            get("/v1/addresses/ethereum/0xZZ8B716B8Aaf21512996dC57EB0615e2383E2f96"),
            StatusCode::BAD_REQUEST,
            Some("address"),
        ),
        (
            get("/v1/addresses/ethereum/0x098B716B8Aaf21512996dC57EB0615e2383E2f9"),
            StatusCode::BAD_REQUEST,
            Some("address"),
        ),
        (
            get("/v1/addresses/ethereum/0x098b716B8Aaf21512996dC57EB0615e2383E2f96"),
            StatusCode::BAD_REQUEST,
            Some("address"),
        ),
        (
            get("/v1/addresses/dogechain/0x098B716B8Aaf21512996dC57EB0615e2383E2f96"),
            StatusCode::BAD_REQUEST,
            Some("chain"),
        ),
        (
            get(
                "/v1/addresses/ethereum/0x098B716B8Aaf21512996dC57EB0615e2383E2f96?as_of=yesterday",
            ),
            StatusCode::BAD_REQUEST,
            Some("as_of"),
        ),
        (
            get(
                "/v1/addresses/ethereum/0x098B716B8Aaf21512996dC57EB0615e2383E2f96?asof=2025-01-01",
            ),
            StatusCode::BAD_REQUEST,
            Some("asof"),
        ),
        (
            post_json("/v1/screen", json!({ "addresses": [""] }).to_string()),
            StatusCode::BAD_REQUEST,
            Some("addresses[0]"),
        ),
        (
            post_json(
                "/v1/screen",
                json!({ "addresses": [LAZARUS, "0xnothex"] }).to_string(),
            ),
            StatusCode::BAD_REQUEST,
            Some("addresses[1]"),
        ),
        (
            post_json("/v1/screen", json!({ "addresses": [] }).to_string()),
            StatusCode::BAD_REQUEST,
            Some("addresses"),
        ),
        (
            post_json("/v1/screen", json!({ "adresses": [LAZARUS] }).to_string()),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            post_json("/v1/screen", json!({ "addresses": [5] }).to_string()),
            StatusCode::BAD_REQUEST,
            Some("addresses[0]"),
        ),
        (
            post_json(
                "/v1/screen",
                json!({ "addresses": [LAZARUS], "chain": "mars" }).to_string(),
            ),
            StatusCode::BAD_REQUEST,
            Some("chain"),
        ),
        (
            post_json("/v1/screen", "{not json"),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            post_json("/v1/screen", vec![b'['; 1 << 20]),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            post_json("/v1/screen", vec![b' '; 3 << 20]),
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
        ),
        (
            Request::post("/v1/screen")
                .header("content-type", "text/plain")
                .body(Body::from("x"))
                .expect("req"),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (get("/v2/nothing"), StatusCode::NOT_FOUND, None),
    ];
    for (req, want, field) in cases {
        let uri = req.uri().to_string();
        let (status, v) = call(&state, req).await;
        assert_eq!(status, want, "{uri}: {v}");
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(!msg.is_empty(), "{uri}: no message in {v}");
        assert!(
            !msg.contains("panicked") && !msg.contains("src/"),
            "{uri}: leaks internals: {msg}"
        );
        if let Some(f) = field {
            assert_eq!(v["error"]["field"], f, "{uri}: {v}");
        }
    }
}

#[tokio::test]
async fn batch_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state_for(dir.path(), None);
    // 10,000 addresses: accepted.
    let ok: Vec<String> = (0..10_000u32).map(|i| format!("0x{i:040x}")).collect();
    let (status, v) = call(
        &state,
        post_json("/v1/screen", json!({ "addresses": ok }).to_string()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        v.to_string().chars().take(300).collect::<String>()
    );
    assert_eq!(v["results"].as_array().map(Vec::len), Some(10_000));
    // 10,001 short ones fit the body limit but not the batch limit.
    let over: Vec<String> = (0..10_001u32).map(|i| format!("0x{i:040x}")).collect();
    let (status, v) = call(
        &state,
        post_json("/v1/screen", json!({ "addresses": over }).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("10000")),
        "{v}"
    );
    // 100,000: the body limit answers first.
    let huge: Vec<String> = (0..100_000u32).map(|i| format!("0x{i:040x}")).collect();
    let (status, v) = call(
        &state,
        post_json("/v1/screen", json!({ "addresses": huge }).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
}

#[tokio::test]
async fn health_metrics_and_openapi_cover_every_route() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state_for(dir.path(), None);
    let (status, v) = call(&state, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(v["labels"].as_u64().is_some_and(|n| n > 40_000), "{v}");
    let _ = call(&state, get(&format!("/v1/addresses/ethereum/{LAZARUS}"))).await;
    let (status, v) = call(&state, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let text = v.as_str().expect("text");
    assert!(text.contains("holdfast_http_requests_total{route=\"/v1/addresses/{chain}/{address}\",status=\"200\"} 1"), "{text}");
    assert!(
        text.contains("holdfast_screened_addresses_total{risk=\"severe\"} 1"),
        "{text}"
    );
    assert!(text.contains("holdfast_intel_labels "), "{text}");
    let (status, doc) = call(&state, get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .into_iter()
                .flatten()
                .map(move |(m, _)| (m.clone(), p.clone()))
        })
        .collect();
    documented.sort();
    let mut routes: Vec<(String, String)> = holdfast_server::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    routes.sort();
    assert_eq!(documented, routes);
    // Every route in ROUTES is really served (not a 404 from the fallback).
    for (method, path) in holdfast_server::ROUTES {
        let uri = path
            .replace("{chain}", "ethereum")
            .replace("{address}", LAZARUS);
        let req = Request::builder()
            .method(method.to_uppercase().as_str())
            .uri(&uri)
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .expect("req");
        let (status, v) = call(&state, req).await;
        assert!(
            status != StatusCode::NOT_FOUND
                || v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("admin")
                        || m.contains("guard service is not configured")
                        || m.contains("watch is not configured")),
            "{method} {uri}: {status} {v}"
        );
    }
}

#[tokio::test]
async fn admin_reload_needs_the_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state_for(dir.path(), Some("s3cret-token"));
    let (status, _) = call(
        &state,
        Request::post("/v1/admin/reload")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(
        &state,
        Request::post("/v1/admin/reload")
            .header("authorization", "Bearer wrong")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, v) = call(
        &state,
        Request::post("/v1/admin/reload")
            .header("authorization", "Bearer s3cret-token")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(
        !format!("{state:?}").contains("s3cret"),
        "the token never appears in Debug output"
    );
    let disabled = state_for(dir.path(), None);
    let (status, _) = call(
        &disabled,
        Request::post("/v1/admin/reload")
            .header("authorization", "Bearer x")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A real socket, many concurrent clients, and reloads that add a label mid-way: every
/// request succeeds and sees either the old intel or the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_concurrent_load_loses_no_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state_for(dir.path(), Some("tok"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(holdfast_server::serve(listener, state.clone(), async {
        let _ = stop_rx.await;
    }));
    let target = "0x00000000000000000000000000000000000b0b0b";
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/v1/addresses/ethereum/{target}");
    let mut workers = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        let url = url.clone();
        workers.push(tokio::spawn(async move {
            let mut seen = (0usize, 0usize);
            for _ in 0..150 {
                let resp = client.get(&url).send().await.expect("request succeeds");
                assert_eq!(resp.status(), 200);
                let v: Value = resp.json().await.expect("json");
                match v["risk"].as_str() {
                    Some("none") => seen.0 += 1,
                    Some("severe") => seen.1 += 1,
                    other => panic!("neither old nor new intel: {other:?} {v}"),
                }
            }
            seen
        }));
    }
    // Mid-way, import a label and reload (three times, to overlap with traffic).
    let list = dir.path().join("new.txt");
    std::fs::write(&list, format!("{target}\n")).expect("write");
    holdfast_intel::import::import_file(
        &DataDir::new(dir.path()),
        &list,
        &holdfast_intel::import::ImportOptions {
            category: Some(holdfast_primitives::Category::Sanctioned),
            confidence: Some(holdfast_primitives::Confidence::AUTHORITY_DATA),
            ..Default::default()
        },
    )
    .expect("import");
    for _ in 0..3 {
        let resp = client
            .post(format!("http://{addr}/v1/admin/reload"))
            .bearer_auth("tok")
            .send()
            .await
            .expect("reload");
        assert_eq!(resp.status(), 200);
    }
    let mut total = (0, 0);
    for w in workers {
        let (a, b) = w.await.expect("worker");
        total.0 += a;
        total.1 += b;
    }
    assert_eq!(total.0 + total.1, 8 * 150);
    // After the last reload everything sees the new label.
    let v: Value = client
        .get(&url)
        .send()
        .await
        .expect("req")
        .json()
        .await
        .expect("json");
    assert_eq!(v["risk"], "severe");
    let _ = stop_tx.send(());
    server.await.expect("join").expect("served");
}
