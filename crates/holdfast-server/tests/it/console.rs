//! The web console through the router: every answer — pages, redirects, assets, refusals,
//! errors — carries the strict Content-Security-Policy and no inline script or style; state
//! changes need a session, its CSRF token and this origin. (The browser tests in
//! holdfast-cli drive the same pages in Chromium.)

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use holdfast_gate::Principal;
use holdfast_server::console::CSP;
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::errors::{state_with_gate, state_with_gate_store};

type Served = tokio::task::JoinHandle<std::io::Result<()>>;

/// `state` served as `holdfast serve` serves it, on a loopback port: its base URL, the
/// sender that stops it, and the server's task.
async fn on_loopback(
    state: holdfast_server::AppState,
) -> (String, tokio::sync::oneshot::Sender<()>, Served) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(holdfast_server::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    (base, stop, server)
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn send(
    state: &holdfast_server::AppState,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = holdfast_server::router(state.clone())
        .oneshot(req)
        .await
        .expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

#[tokio::test]
async fn every_console_answer_carries_the_csp_and_state_changes_need_csrf_and_origin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state_with_gate(dir.path());
    let id = state.sessions.open("ops-token").await.expect("session");
    let cookie = format!("holdfast_session={id}");
    let get = |uri: &str, session: bool| {
        let mut r = Request::get(uri).header("host", "console.test");
        if session {
            r = r.header("cookie", &cookie);
        }
        r.body(Body::empty()).expect("request")
    };
    let cases = [
        (get("/", false), StatusCode::SEE_OTHER),
        (get("/console/sign-in", false), StatusCode::OK),
        (get("/console/requests", false), StatusCode::SEE_OTHER),
        (get("/console/requests", true), StatusCode::OK),
        (
            get("/console/requests?view=decided&state=denied", true),
            StatusCode::OK,
        ),
        (
            get("/console/requests?view=nope", true),
            StatusCode::BAD_REQUEST,
        ),
        (get("/console/requests/0xabc", true), StatusCode::NOT_FOUND),
        (get("/console/audit", true), StatusCode::FORBIDDEN),
        (get("/console/alerts", true), StatusCode::NOT_FOUND),
        (get("/console/trace", true), StatusCode::OK),
        (
            get(
                "/console/trace?seed=0x1111111111111111111111111111111111111111&max_hops=0",
                true,
            ),
            StatusCode::BAD_REQUEST,
        ),
        // No transfer store (`serve --trace`): said on the page.
        (
            get(
                "/console/trace?seed=0x1111111111111111111111111111111111111111",
                true,
            ),
            StatusCode::NOT_FOUND,
        ),
        (
            get(
                "/console/trace/export?seed=0x1111111111111111111111111111111111111111&format=xlsx",
                true,
            ),
            StatusCode::BAD_REQUEST,
        ),
        (
            get("/console/trace/export?format=csv", false),
            StatusCode::SEE_OTHER,
        ),
        (get("/console/alerts/hf-00", true), StatusCode::NOT_FOUND),
        (get("/console/assets/trace.js", false), StatusCode::OK),
        (get("/console/assets/console.js", false), StatusCode::OK),
        (get("/console/assets/approve.js", false), StatusCode::OK),
        (get("/console/assets/console.css", false), StatusCode::OK),
        (get("/console/assets/nope.js", false), StatusCode::NOT_FOUND),
        (get("/console/nowhere", true), StatusCode::NOT_FOUND),
        (
            Request::put("/console/requests")
                .body(Body::empty())
                .expect("request"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (req, expected) in cases {
        let uri = req.uri().to_string();
        let (status, headers, body) = send(&state, req).await;
        assert_eq!(status, expected, "{uri}: {body}");
        // The trace page's refusals name the field and the value, or what is missing.
        for (needle, said) in [
            (
                "max_hops=0",
                "max_hops is &quot;0&quot;: expected a whole number from 1 to 64",
            ),
            (
                "format=xlsx",
                "format is &quot;xlsx&quot;: expected csv, graphml or dot",
            ),
            (
                "trace?seed=0x1111111111111111111111111111111111111111",
                "--trace",
            ),
        ] {
            if uri.ends_with(needle) {
                assert!(body.contains(said), "{uri}: {body}");
            }
        }
        assert_eq!(
            headers
                .get(header::CONTENT_SECURITY_POLICY)
                .map(|v| v.as_bytes()),
            Some(CSP.as_bytes()),
            "{uri}: {status}"
        );
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{uri}");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "{uri}");
        if headers
            .get(header::CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .is_some_and(|c| c.starts_with("text/html"))
        {
            assert!(!body.contains(" style="), "no inline style: {uri}");
            assert!(!body.contains("<style"), "no style element: {uri}");
            for script in body.split("<script").skip(1) {
                assert!(
                    script.starts_with(" type=\"module\" src=\"/console/assets/"),
                    "only the console's own script files: {uri}: <script{script}"
                );
                assert!(script.starts_with_and_then_empty(), "{uri}");
            }
        }
    }

    // A state change with the session: refused without the token, or from elsewhere.
    let page = send(&state, get("/console/requests", true)).await.2;
    let csrf = page
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("csrf meta")
        .to_owned();
    let post = |origin: Option<&str>, body: String| {
        let mut r = Request::post("/console/freeze")
            .header("host", "console.test")
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.body(Body::from(body)).expect("request")
    };
    for (origin, body) in [
        (Some("http://console.test"), "reason=x".to_owned()),
        (
            Some("http://console.test"),
            format!("csrf={}&reason=x", "0".repeat(64)),
        ),
        (Some("http://evil.test"), format!("csrf={csrf}&reason=x")),
        (None, format!("csrf={csrf}&reason=x")),
        (Some("null"), format!("csrf={csrf}&reason=x")),
    ] {
        let (status, headers, body) = send(&state, post(origin, body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin:?}: {body}");
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP);
    }
    let gate = state.gate.clone().expect("gate");
    assert!(
        !gate
            .store()
            .frozen(alloy::primitives::Address::ZERO)
            .expect("frozen"),
        "nothing was frozen"
    );
    let (status, headers, _) = send(
        &state,
        post(
            Some("http://console.test"),
            format!("csrf={csrf}&reason=drill"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/console/requests?done=frozen");
    assert!(
        gate.store()
            .frozen(alloy::primitives::Address::ZERO)
            .expect("frozen")
    );
}

/// Console pages, assets and exports are gzipped for a browser that accepts it, each page
/// with the CSRF token masked afresh (BREACH); the API's JSON and the console's JSON refusals
/// are not compressed.
#[tokio::test]
async fn console_answers_are_gzipped_with_a_fresh_csrf_mask_and_json_is_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state_with_gate(dir.path());
    let id = state.sessions.open("ops-token").await.expect("session");
    let cookie = format!("holdfast_session={id}");
    let get = |uri: &str, gzip: bool| {
        let mut r = Request::get(uri)
            .header("host", "console.test")
            .header("cookie", &cookie);
        if gzip {
            r = r.header(header::ACCEPT_ENCODING, "gzip, deflate, br");
        }
        r.body(Body::empty()).expect("request")
    };
    let raw = async |req: Request<Body>| {
        let resp = holdfast_server::router(state.clone())
            .oneshot(req)
            .await
            .expect("infallible");
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (headers, bytes)
    };
    for uri in [
        "/console/requests?view=held",
        "/console/requests?view=decided",
        "/console/trace",
        "/console/assets/console.css",
        "/console/assets/trace.js",
    ] {
        let (plain_h, plain) = raw(get(uri, false)).await;
        let (h, gz) = raw(get(uri, true)).await;
        assert!(plain_h.get(header::CONTENT_ENCODING).is_none(), "{uri}");
        assert_eq!(
            h.get(header::CONTENT_ENCODING).map(|v| v.as_bytes()),
            Some(&b"gzip"[..]),
            "{uri}"
        );
        assert!(gz.starts_with(&[0x1f, 0x8b]), "{uri}: a gzip stream");
        assert!(
            gz.len() < plain.len(),
            "{uri}: {} < {}",
            gz.len(),
            plain.len()
        );
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP, "{uri}");
    }
    // Each rendering carries another masked token (the meta and each form's too); all work.
    let page = |body: &[u8]| String::from_utf8_lossy(body).into_owned();
    let tokens = |p: &str| -> Vec<String> {
        p.split("csrf-token\" content=\"")
            .chain(p.split("name=\"csrf\" value=\""))
            .filter(|part| !part.starts_with('<'))
            .filter_map(|r| r.split('"').next().map(str::to_owned))
            .collect()
    };
    let one = tokens(&page(&raw(get("/console/requests", false)).await.1));
    let two = tokens(&page(&raw(get("/console/requests", false)).await.1));
    assert!(one.len() >= 3, "meta, sign-out and freeze forms: {one:?}");
    let mut all: Vec<&String> = one.iter().chain(&two).collect();
    all.sort();
    all.dedup();
    assert_eq!(
        all.len(),
        one.len() + two.len(),
        "no token repeats: {all:?}"
    );
    for t in all {
        assert_eq!(t.len(), 128, "{t}");
        let req = Request::post("/console/freeze")
            .header("host", "console.test")
            .header("origin", "http://console.test")
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={t}&reason=drill")))
            .expect("request");
        let (status, _, body) = send(&state, req).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{t}: {body}");
    }
    // JSON is never compressed: the API (with the session or not) and the console's refusals.
    for uri in [
        "/openapi.json",
        "/v1/guard/requests/0x01",
        "/v1/guard/audit",
        "/console/assets/nope.js",
    ] {
        let (h, body) = raw(get(uri, true)).await;
        assert!(
            h.get(header::CONTENT_ENCODING).is_none(),
            "{uri}: {:?}",
            page(&body)
        );
        assert!(body.starts_with(b"{"), "{uri}: {:?}", page(&body));
    }
}

/// The streamed audit export, gzipped, decompresses to the whole log (one JSON line per
/// entry), as do a page and an asset.
#[tokio::test]
async fn gzipped_answers_decompress_whole_the_streamed_audit_export_too() {
    use std::io::Read;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state_with_gate(dir.path());
    let root = Principal {
        name: "root".into(),
        roles: vec![holdfast_gate::Role::Admin],
        address: None,
    };
    let gate = state.gate.clone().expect("gate");
    for i in 0..3 {
        gate.freeze(None, &format!("drill {i}"), &root)
            .await
            .expect("freeze");
    }
    let cookie = format!(
        "holdfast_session={}",
        state.sessions.open("admin-token").await.expect("session")
    );
    for uri in [
        "/console/audit/export",
        "/console/audit",
        "/console/assets/trace.js",
    ] {
        let get = |gzip: bool| {
            let mut r = Request::get(uri)
                .header("host", "console.test")
                .header("cookie", &cookie);
            if gzip {
                r = r.header(header::ACCEPT_ENCODING, "gzip");
            }
            r.body(Body::empty()).expect("request")
        };
        let (_, _, plain) = send(&state, get(false)).await;
        let resp = holdfast_server::router(state.clone())
            .oneshot(get(true))
            .await
            .expect("infallible");
        assert_eq!(resp.headers()[header::CONTENT_ENCODING], "gzip", "{uri}");
        let gz = resp.into_body().collect().await.expect("body").to_bytes();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{uri}: not a whole gzip stream: {e}"));
        if uri.ends_with("export") {
            assert_eq!(text.lines().count(), 3, "{uri}: {text}");
            assert_eq!(text, plain, "{uri}");
        } else {
            // Pages differ only in their masked CSRF tokens.
            assert_eq!(text.len(), plain.len(), "{uri}");
        }
    }
}

trait EmptyScript {
    fn starts_with_and_then_empty(&self) -> bool;
}

impl EmptyScript for &str {
    /// `<script ...></script>`: the element has no content.
    fn starts_with_and_then_empty(&self) -> bool {
        self.split_once('>')
            .is_some_and(|(_, rest)| rest.starts_with("</script>"))
    }
}

/// The queue's filters page through a state's index: every matching request once, in
/// creation order, none that does not match; `until` ends the scan.
#[test]
fn filters_page_through_the_index() {
    use alloy::primitives::{Address, B256};
    use holdfast_server::console::filter::{Filter, page};
    use holdfast_store::gate::{
        DecisionKind, EmbeddedGateStore, GateRequest, GateStore, RequestMode, RequestState,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedGateStore::open(&dir.path().join("gate")).expect("store");
    for i in 0..40u64 {
        store
            .insert(
                &GateRequest {
                    id: format!("r{i:02}"),
                    payload_hash: B256::ZERO,
                    chain_id: 1,
                    wallet: Address::repeat_byte(if i % 4 == 0 { 0xaa } else { 0xbb }),
                    initiator: "svc".into(),
                    kind: RequestMode::Safe,
                    request: "{}".into(),
                    decision: DecisionKind::Hold,
                    rule: Some(if i % 2 == 0 { "even" } else { "odd" }.into()),
                    reasons: Vec::new(),
                    state: RequestState::Held,
                    created_at: 86_400 * i,
                    updated_at: 0,
                    release_at: Some(u64::MAX / 2),
                    need_approvals: 0,
                    group: None,
                    nonce: None,
                    signature: None,
                    tx_hash: None,
                    error: None,
                    outflows: Vec::new(),
                    report: None,
                },
                Vec::new(),
            )
            .expect("insert");
    }
    let all = |filter: &Filter| {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let (rows, next) = page(&store, RequestState::Held, after, filter, 3).expect("page");
            assert!(rows.len() <= 3);
            seen.extend(rows.into_iter().map(|r| r.id));
            match next {
                Some(n) => after = Some(n),
                None => return seen,
            }
        }
    };
    let q = |pairs: &[(&str, &str)]| {
        Filter::parse(
            &pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
        .expect("filter")
    };
    assert_eq!(all(&Filter::default()).len(), 40);
    let aa = all(&q(&[
        ("wallet", &Address::repeat_byte(0xaa).to_string()),
        ("rule", "even"),
    ]));
    assert_eq!(
        aa,
        (0..40)
            .step_by(4)
            .map(|i| format!("r{i:02}"))
            .collect::<Vec<_>>()
    );
    // Days 10 to 12 (1970-01-11 .. 1970-01-13).
    let days = all(&q(&[("since", "1970-01-11"), ("until", "1970-01-13")]));
    assert_eq!(days, ["r10", "r11", "r12"]);
    assert!(all(&q(&[("rule", "none")])).is_empty());
}

/// A console session is rate-limited on the API as its token is: signing in is no way
/// around the per-principal limit.
#[tokio::test]
async fn a_session_is_rate_limited_on_the_api_like_its_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut state = state_with_gate(dir.path());
    // 1 request a second, a burst of 2.
    state.rate = std::sync::Arc::new(holdfast_server::guard::RateLimiter::new(1.0));
    let cookie = format!(
        "holdfast_session={}",
        state.sessions.open("ops-token").await.expect("session")
    );
    let page = send(
        &state,
        Request::get("/console/requests")
            .header("host", "console.test")
            .header("cookie", &cookie)
            .body(Body::empty())
            .expect("request"),
    )
    .await
    .2;
    let csrf = page
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("csrf meta")
        .to_owned();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let req = Request::get("/v1/guard/requests/0xabc")
            .header("host", "console.test")
            .header("origin", "http://console.test")
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .body(Body::empty())
            .expect("request");
        statuses.push(send(&state, req).await.0);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::NOT_FOUND,
            StatusCode::NOT_FOUND,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "the session's principal has its token's budget"
    );
}

/// Token guessing is bounded per client address, served as `holdfast serve` serves (the
/// peer address is the connection's): after 10 failed sign-ins the 11th — even with a
/// right token — is answered 429 with a clear message and `Retry-After`; bearer tokens on
/// the API count too (a sibling route to the same guess), while another client is not
/// affected.
#[tokio::test(flavor = "multi_thread")]
async fn failed_sign_ins_and_unknown_bearer_tokens_are_bounded_per_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state_with_gate(dir.path());
    let (base, stop, server) = on_loopback(state).await;
    let client = no_redirects();
    let sign_in = |token: &str| {
        client
            .post(format!("{base}/console/sign-in"))
            .header("origin", &base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
            .send()
    };
    for i in 0..holdfast_server::console::throttle::MAX_FAILURES {
        let r = sign_in(&format!("guess-{i}")).await.expect("answer");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    let r = sign_in("ops-token").await.expect("answer");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
    let body = r.text().await.expect("body");
    assert!(
        body.contains("Too many failed sign-ins from this address (10 in 60 s): try again in"),
        "{body}"
    );
    // The API's bearer tokens: the same client is over its bound, right token or not.
    let api = |token: &str| {
        client
            .get(format!("{base}/v1/guard/requests/0xabc"))
            .bearer_auth(token)
            .send()
    };
    let r = api("ops-token").await.expect("answer");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], "rate_limited", "{v}");
    let _ = stop.send(());
    server.await.expect("joined").expect("served");

    // Bearer guesses alone reach the bound too (a fresh server; the oneshot router has no
    // peer address: one client).
    let state = state_with_gate(&dir.path().join("second"));
    let guess = |t: String| {
        Request::get("/v1/guard/requests/0xabc")
            .header("authorization", format!("Bearer {t}"))
            .body(Body::empty())
            .expect("request")
    };
    for i in 0..holdfast_server::console::throttle::MAX_FAILURES {
        let (status, _, body) = send(&state, guess(format!("guess-{i}"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    let (status, headers, body) = send(&state, guess("ops-token".into())).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(headers.contains_key("retry-after"));
    assert!(
        body.contains("Too many requests with an unknown token from this address"),
        "{body}"
    );
}

/// At most two console traces run at once: a third waits for a place, runs when one is
/// freed within its wait, and is refused with 503 when none is; one trace running does not
/// hold up a second.
#[tokio::test]
async fn at_most_two_traces_run_at_once_a_third_waits_then_is_refused() {
    use holdfast_server::console::trace::{self, MAX_RUNNING};
    use std::time::{Duration, Instant};
    assert_eq!(MAX_RUNNING, 2);
    let dir = tempfile::tempdir().expect("tempdir");
    // An empty transfer store: a trace that gets a place ends at once, saying so.
    let store = holdfast_store::EmbeddedStore::open(&dir.path().join("transfers")).expect("store");
    let state = state_with_gate(dir.path()).with_transfers(std::sync::Arc::new(store));
    let q = trace::parse(
        &[(
            "seed".to_owned(),
            "0x1111111111111111111111111111111111111111".to_owned(),
        )]
        .into(),
    )
    .expect("query")
    .expect("a seed");
    let ran = |r: Result<_, holdfast_server::error::ApiError>| match r {
        Err(e) if e.message.contains("holds no transfers") => true,
        Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE => false,
        other => panic!("unexpected: {:?}", other.err()),
    };

    // One trace running: a second runs at once.
    let first = trace::place(Duration::from_secs(1)).await.expect("a place");
    let t = Instant::now();
    assert!(ran(
        trace::run_within(&state, &q, Duration::from_secs(5)).await
    ));
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());

    // Two running: a third waits its whole wait, then is refused with 503.
    let second = trace::place(Duration::from_secs(1)).await.expect("a place");
    let wait = Duration::from_millis(400);
    let t = Instant::now();
    let refused = trace::run_within(&state, &q, wait).await;
    assert!(t.elapsed() >= wait, "it waited: {:?}", t.elapsed());
    let Err(e) = refused else {
        panic!("a third trace ran while two were running")
    };
    assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE, "{}", e.message);
    assert!(e.message.contains("2 traces are running"), "{}", e.message);

    // A place freed while it waits goes to the waiting trace, which then runs.
    let waiting = {
        let state = state.clone();
        let q = q.clone();
        tokio::spawn(async move { trace::run_within(&state, &q, Duration::from_secs(30)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the third waits while two run");
    drop(first);
    let r = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("it ran once a place was freed")
        .expect("joined");
    assert!(ran(r));
    drop(second);
}

/// Signs in through the form with `token`; the session cookie.
async fn sign_in(state: &holdfast_server::AppState, token: &str) -> String {
    let (status, headers, body) = send(
        state,
        Request::post("/console/sign-in")
            .header("host", "console.test")
            .header("origin", "http://console.test")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={token}")))
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let set = headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie");
    set.split(';').next().expect("cookie").to_owned()
}

/// The page at `uri` with `cookie`: its status and body.
async fn page_with(
    state: &holdfast_server::AppState,
    uri: &str,
    cookie: &str,
) -> (StatusCode, String) {
    let (status, _, body) = send(
        state,
        Request::get(uri)
            .header("host", "console.test")
            .header("cookie", cookie)
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    (status, body)
}

/// Signs out through the form of a page of `state`.
async fn sign_out(state: &holdfast_server::AppState, cookie: &str) {
    let (_, page) = page_with(state, "/console/requests", cookie).await;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf field on the page");
    let (status, _, body) = send(
        state,
        Request::post("/console/sign-out")
            .header("host", "console.test")
            .header("origin", "http://console.test")
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={csrf}")))
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
}

/// Sessions live in the guard's store: on PostgreSQL a session opened through one instance
/// is good on another sharing the database, and a sign-out on that one ends it on the first;
/// with the embedded store a session outlives a restart of the server.
#[tokio::test]
async fn sessions_are_shared_between_instances_and_outlive_a_restart() {
    let signed_in = |(status, body): (StatusCode, String)| {
        status == StatusCode::OK && body.contains("ops (operator)")
    };
    if std::env::var_os("HOLDFAST_TEST_SKIP_PG").is_none_or(|v| v != "1") {
        let pg = holdfast_store::testing::TempPostgres::start(false).expect("postgres");
        let dir = tempfile::tempdir().expect("tempdir");
        let connect = || {
            let url = pg.url().to_owned();
            async move {
                tokio::task::spawn_blocking(move || {
                    std::sync::Arc::new(
                        holdfast_store::gate::PgGateStore::connect(&url, 2).expect("connect"),
                    ) as std::sync::Arc<dyn holdfast_store::gate::GateStore>
                })
                .await
                .expect("connect")
            }
        };
        let (one, two) = (
            state_with_gate_store(dir.path(), connect().await),
            state_with_gate_store(dir.path(), connect().await),
        );
        let cookie = sign_in(&one, "ops-token").await;
        assert!(signed_in(
            page_with(&two, "/console/requests", &cookie).await
        ));
        sign_out(&two, &cookie).await;
        let (status, _) = page_with(&one, "/console/requests", &cookie).await;
        assert_eq!(
            status,
            StatusCode::SEE_OTHER,
            "signed out on every instance"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cookie = {
        let state = state_with_gate(dir.path());
        let cookie = sign_in(&state, "ops-token").await;
        assert!(signed_in(
            page_with(&state, "/console/requests", &cookie).await
        ));
        cookie
    };
    // The first server and its store are gone; a new one opens the same directory.
    let state = state_with_gate(dir.path());
    assert!(
        signed_in(page_with(&state, "/console/requests", &cookie).await),
        "still signed in after a restart"
    );
}

/// Behind a trusted reverse proxy (`serve --trusted-proxy`) the sign-in bound is per client
/// named in `X-Forwarded-For`: one client's guesses do not lock out another. Without the
/// proxy trusted, the header is ignored, so a guesser cannot dodge the bound by inventing
/// addresses.
#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_the_sign_in_bound_is_per_forwarded_client() {
    for trusted in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let proxies = if trusted {
            vec!["127.0.0.1".parse().expect("ip")]
        } else {
            Vec::new()
        };
        let state = state_with_gate(dir.path())
            .with_limits(holdfast_server::Limits::default().with_trusted_proxies(proxies));
        let (base, stop, server) = on_loopback(state).await;
        let client = no_redirects();
        let sign_in = |token: String, from: String| {
            client
                .post(format!("{base}/console/sign-in"))
                .header("origin", &base)
                .header("x-forwarded-for", from)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("token={token}"))
                .send()
        };
        for i in 0..holdfast_server::console::throttle::MAX_FAILURES {
            // Untrusted: each guess claims another address; trusted: one client guesses.
            let from = if trusted {
                "198.51.100.1".to_owned()
            } else {
                format!("198.51.100.{}", 10 + i)
            };
            let r = sign_in(format!("guess-{i}"), from).await.expect("answer");
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "guess {i}");
        }
        let guesser = sign_in("ops-token".into(), "198.51.100.1".into())
            .await
            .expect("answer");
        assert_eq!(guesser.status(), StatusCode::TOO_MANY_REQUESTS);
        let other = sign_in("ops-token".into(), "198.51.100.2".into())
            .await
            .expect("answer");
        let want = if trusted {
            StatusCode::SEE_OTHER
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(
            other.status(),
            want,
            "another client, proxy trusted: {trusted}"
        );
        let _ = stop.send(());
        server.await.expect("joined").expect("served");
    }
}
