//! The watch's alerts in the API, on a real embedded watch store: list, filters and pages,
//! one alert, acknowledgement with the guard service's tokens and roles, errors naming the
//! field; and the live stream over a real socket (an event committed after the client
//! connected arrives; a reconnect with Last-Event-ID resumes without gaps or repeats;
//! heartbeats; the stream cap; streams end when the server stops).

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::B256;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use holdfast_gate::{GateConfig, Role};
use holdfast_primitives::BlockRef;
use holdfast_server::alerts::Streams;
use holdfast_server::{AppState, Limits};
use holdfast_store::watch::{BlockCommit, EmbeddedWatchStore, NewAlert, WatchStore};
use serde_json::{Value, json};

use super::errors::{state_with_gate, token};
use super::{call, state_for};

/// A read of the alerts, with a token of any role (reads need one, issue 15).
fn get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header("authorization", "Bearer init-token")
        .body(Body::empty())
        .expect("request")
}

/// The same without a token.
fn get_anonymous(uri: &str) -> Request<Body> {
    super::get(uri)
}

fn block(n: u64) -> BlockRef {
    let h = |n: u64| {
        let mut b = [0u8; 32];
        b[24..].copy_from_slice(&n.to_be_bytes());
        B256::from(b)
    };
    BlockRef {
        number: n,
        hash: h(n),
        parent_hash: h(n.wrapping_sub(1)),
        timestamp: 1_700_000_000 + n,
    }
}

/// Commits block `n` of chain 1 with alerts (id, rule, severity).
fn commit(store: &dyn WatchStore, n: u64, alerts: &[(&str, &str, u8)]) {
    let alerts = alerts
        .iter()
        .map(|(id, rule, severity)| NewAlert {
            id: (*id).into(),
            rule: (*rule).into(),
            severity: *severity,
            raised_at_ms: 1_000 + n,
            body: json!({"id": id, "rule": rule, "facts": [{"name": "amount", "value": "401,346 ETH"}]})
                .to_string()
                .into_bytes(),
        })
        .collect();
    store
        .commit_block(&BlockCommit {
            chain_id: 1,
            block: block(n),
            state: Vec::new(),
            alerts,
            confirm: Vec::new(),
            forget_below: 0,
            fence: None,
        })
        .expect("commit");
}

fn tokens() -> GateConfig {
    GateConfig {
        tokens: vec![
            token("svc", "init-token", Role::Initiator),
            token("ops", "ops-token", Role::Operator),
            token("root", "admin-token", Role::Admin),
        ],
        ..GateConfig::default()
    }
}

fn watch_store(dir: &std::path::Path) -> Arc<dyn WatchStore> {
    Arc::new(EmbeddedWatchStore::open(&dir.join("watch")).expect("store"))
}

fn ack(id: &str, token: Option<&str>) -> Request<Body> {
    let mut r = Request::post(format!("/v1/alerts/{id}/ack"));
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    r.body(Body::empty()).expect("request")
}

fn ids(v: &Value) -> Vec<&str> {
    v["alerts"]
        .as_array()
        .map(|a| a.iter().filter_map(|a| a["id"].as_str()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn alerts_are_listed_filtered_paged_and_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = watch_store(dir.path());
    commit(
        &*store,
        1,
        &[("hf-a", "singleton", 4), ("hf-b", "drain", 3)],
    );
    commit(&*store, 2, &[("hf-c", "grant", 1)]);
    commit(
        &*store,
        3,
        &[("hf-d", "drain", 2), ("hf-e", "poisoning", 0)],
    );
    store.unwind_above(1, 2, b"", None).expect("unwind"); // hf-d, hf-e retracted
    let state = state_for(dir.path(), None)
        .with_watch(store.clone())
        .with_tokens(tokens());

    // Reads need a token (issue 15: they took none).
    for uri in ["/v1/alerts", "/v1/alerts/hf-a", "/v1/alerts/stream"] {
        let (status, v) = call(&state, get_anonymous(uri)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}: {v}");
    }
    let (status, v) = call(&state, get("/v1/alerts")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(ids(&v), ["hf-e", "hf-d", "hf-c", "hf-b", "hf-a"]);
    assert_eq!(v["next_before"], Value::Null);
    let a = &v["alerts"][4];
    assert_eq!(
        (
            &a["severity"],
            &a["status"],
            &a["chain_id"],
            &a["block_number"],
            &a["confirmed"],
            &a["acknowledged"]
        ),
        (
            &json!("critical"),
            &json!("open"),
            &json!(1),
            &json!(1),
            &json!(false),
            &Value::Null
        )
    );
    assert_eq!(
        a["alert"]["facts"][0]["value"], "401,346 ETH",
        "the body passes through as JSON"
    );
    assert_eq!(a["block_hash"], block(1).hash.to_string());

    for (query, want) in [
        ("status=retracted", vec!["hf-e", "hf-d"]),
        ("rule=drain", vec!["hf-d", "hf-b"]),
        ("min_severity=high", vec!["hf-b", "hf-a"]),
        (
            "chain=1&status=open&min_severity=low",
            vec!["hf-c", "hf-b", "hf-a"],
        ),
        ("chain=2", vec![]),
        ("acknowledged=true", vec![]),
        ("before=hf-c", vec!["hf-b", "hf-a"]),
    ] {
        let (status, v) = call(&state, get(&format!("/v1/alerts?{query}"))).await;
        assert_eq!(status, StatusCode::OK, "{query}: {v}");
        assert_eq!(ids(&v), want, "{query}");
    }
    // Pages of two, following next_before, give the whole list once.
    let mut seen = Vec::new();
    let mut uri = "/v1/alerts?limit=2".to_owned();
    loop {
        let (status, v) = call(&state, get(&uri)).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        seen.extend(ids(&v).into_iter().map(str::to_owned));
        match v["next_before"].as_str() {
            Some(b) => uri = format!("/v1/alerts?limit=2&before={b}"),
            None => break,
        }
    }
    assert_eq!(seen, ["hf-e", "hf-d", "hf-c", "hf-b", "hf-a"]);

    // Bad filters: 400 naming the field.
    for (query, field, says) in [
        ("status=closed", "status", "expected open or retracted"),
        (
            "min_severity=severe",
            "min_severity",
            "info, low, medium, high, critical",
        ),
        ("chain=ethereum", "chain", "a chain id"),
        ("limit=0", "limit", "from 1 to 1000"),
        ("limit=1001", "limit", "from 1 to 1000"),
        ("acknowledged=maybe", "acknowledged", "true or false"),
        ("before=hf-none", "before", "the id of a stored alert"),
        ("before=a%20b", "before", "printable ASCII"),
        ("rule=", "rule", "printable ASCII"),
        ("sort=asc", "sort", "unknown query parameter"),
    ] {
        let (status, v) = call(&state, get(&format!("/v1/alerts?{query}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {v}");
        assert_eq!(v["error"]["field"], field, "{query}: {v}");
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(says), "{query}: {msg}");
    }

    // One alert.
    let (status, v) = call(&state, get("/v1/alerts/hf-c")).await;
    assert_eq!((status, &v["rule"]), (StatusCode::OK, &json!("grant")));
    let (status, v) = call(&state, get("/v1/alerts/hf-none")).await;
    assert_eq!(
        (status, &v["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found"))
    );
    let (status, v) = call(&state, get("/v1/alerts/a%20b")).await;
    assert_eq!(
        (status, &v["error"]["field"]),
        (StatusCode::BAD_REQUEST, &json!("id")),
        "{v}"
    );

    // Acknowledge: a token with the operator or admin role; the first stays.
    let (status, v) = call(&state, ack("hf-a", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    let (status, v) = call(&state, ack("hf-a", Some("wrong"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    let (status, v) = call(&state, ack("hf-a", Some("init-token"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(
        v["error"]["message"],
        "token \"svc\" lacks the operator or admin role"
    );
    let (status, v) = call(&state, ack("hf-a", Some("ops-token"))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["acknowledged"]["by"], "ops");
    let (status, v) = call(&state, ack("hf-a", Some("admin-token"))).await;
    assert_eq!(
        (status, &v["acknowledged"]["by"]),
        (StatusCode::OK, &json!("ops"))
    );
    let (status, _) = call(&state, ack("hf-none", Some("admin-token"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, v) = call(&state, get("/v1/alerts?acknowledged=true")).await;
    assert_eq!(ids(&v), ["hf-a"]);
    assert_eq!(
        store
            .alert("hf-a")
            .expect("read")
            .and_then(|a| a.acknowledged)
            .map(|a| a.0),
        Some("ops".into())
    );

    // With the guard service configured, its tokens are the ones checked.
    let gated = state_with_gate(dir.path()).with_watch(store.clone());
    let (status, v) = call(&gated, ack("hf-b", Some("ops-token"))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // A watch store but no tokens at all: acknowledging is not available.
    let untokened = state_for(dir.path(), None).with_watch(store.clone());
    let (status, v) = call(&untokened, ack("hf-c", Some("ops-token"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("needs API tokens")),
        "{v}"
    );
    // No watch store: every alert route answers the documented 404.
    let bare = state_for(dir.path(), None);
    for req in [
        get("/v1/alerts"),
        get("/v1/alerts/hf-a"),
        get("/v1/alerts/stream"),
        ack("hf-a", Some("ops-token")),
    ] {
        let (status, v) = call(&bare, req).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("watch is not configured")),
            "{v}"
        );
    }
}

/// Serves `state` on a fresh port until `stop` resolves.
async fn serve(
    state: AppState,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(holdfast_server::serve(listener, state, stop));
    addr
}

/// One server-sent event, or a comment.
#[derive(Debug, PartialEq)]
enum Sse {
    Event { id: u64, kind: String, data: Value },
    Comment(String),
}

/// A live-stream client over a real socket.
struct Client {
    resp: reqwest::Response,
    buf: String,
}

impl Client {
    async fn connect(
        addr: std::net::SocketAddr,
        last_event_id: Option<&str>,
    ) -> Result<Client, (u16, Value)> {
        let mut req = reqwest::Client::new()
            .get(format!("http://{addr}/v1/alerts/stream"))
            .bearer_auth("init-token");
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = req.send().await.expect("request");
        if resp.status() != 200 {
            let status = resp.status().as_u16();
            return Err((status, resp.json().await.unwrap_or(Value::Null)));
        }
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Ok(Client {
            resp,
            buf: String::new(),
        })
    }

    /// The next event or comment, within 10 s; `None` when the server ended the stream.
    async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some((block, rest)) = self.buf.split_once("\n\n") {
                let block = block.to_owned();
                self.buf = rest.to_owned();
                let mut id = None;
                let (mut kind, mut data) = (String::new(), String::new());
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        return Some(Sse::Comment(c.trim().to_owned()));
                    }
                    match line.split_once(':').map(|(k, v)| (k, v.trim_start())) {
                        Some(("id", v)) => id = v.parse().ok(),
                        Some(("event", v)) => kind = v.to_owned(),
                        Some(("data", v)) => data.push_str(v),
                        _ => panic!("unexpected line {line:?}"),
                    }
                }
                return Some(Sse::Event {
                    id: id.expect("every event has an id"),
                    kind,
                    data: serde_json::from_str(&data).expect("data is JSON"),
                });
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.resp.chunk())
                .await
                .expect("the stream answers within 10 s");
            match chunk {
                Ok(Some(c)) => self.buf.push_str(&String::from_utf8_lossy(&c)),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The next event within 10 s, skipping heartbeats.
    async fn event(&mut self) -> (u64, String, Value) {
        let wait = async {
            loop {
                match self.next().await {
                    Some(Sse::Event { id, kind, data }) => return (id, kind, data),
                    Some(Sse::Comment(_)) => {}
                    None => panic!("the stream ended"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("an event within 10 s")
    }
}

/// Events pruned from the outbox before a client read them are not skipped silently: the
/// stream says which are gone (`event: gap`, its id the last missing one, so a reconnect
/// resumes after it) and goes on with the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_pruned_before_a_client_read_them_are_reported_as_a_gap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = watch_store(dir.path());
    commit(&*store, 1, &[("hf-a", "drain", 3), ("hf-b", "drain", 3)]);
    commit(&*store, 2, &[("hf-c", "drain", 3), ("hf-d", "drain", 3)]);
    commit(&*store, 3, &[("hf-e", "drain", 3)]);
    // No sink has a cursor: every event but the newest 2 may go.
    assert_eq!(store.prune_outbox(&[], 2).expect("prune"), 3);
    let state = state_for(dir.path(), None)
        .with_watch(store.clone())
        .with_tokens(tokens())
        .with_streams(Streams::new(
            Duration::from_millis(20),
            Duration::from_millis(300),
        ));
    let addr = serve(state, std::future::pending()).await;
    let mut c = Client::connect(addr, Some("1")).await.expect("stream");
    let (id, kind, data) = c.event().await;
    assert_eq!((id, kind.as_str()), (3, "gap"), "{data}");
    assert_eq!(
        (&data["missing_from"], &data["missing_to"]),
        (&json!(2), &json!(3))
    );
    assert!(
        data["message"]
            .as_str()
            .is_some_and(|m| m.contains("reload the alerts list")),
        "{data}"
    );
    assert_eq!(c.event().await.0, 4, "then the events that are still there");
    assert_eq!(c.event().await.0, 5);
    // Resuming from the gap's id gets no second gap.
    let mut again = Client::connect(addr, Some("3")).await.expect("stream");
    assert_eq!(again.event().await.0, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_delivers_new_events_and_resumes_after_last_event_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = watch_store(dir.path());
    commit(&*store, 1, &[("hf-old", "drain", 3)]);
    let state = state_for(dir.path(), None)
        .with_watch(store.clone())
        .with_tokens(tokens())
        .with_streams(Streams::new(
            Duration::from_millis(20),
            Duration::from_millis(300),
        ));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let addr = serve(state.clone(), async move {
        let _ = stop_rx.await;
    })
    .await;

    // Connected first, then the block is committed: its events arrive (not the older one).
    let mut c = Client::connect(addr, None).await.expect("stream");
    let writer = store.clone();
    tokio::task::spawn_blocking(move || {
        commit(
            &*writer,
            2,
            &[("hf-x", "singleton", 4), ("hf-y", "drain", 3)],
        )
    })
    .await
    .expect("commit");
    let (id, kind, data) = c.event().await;
    assert_eq!((id, kind.as_str()), (2, "raised"));
    assert_eq!(
        (
            &data["seq"],
            &data["key"],
            &data["kind"],
            &data["alert_id"],
            &data["alert"]["rule"]
        ),
        (
            &json!(2),
            &json!("hf-x"),
            &json!("raised"),
            &json!("hf-x"),
            &json!("singleton")
        )
    );
    // Idle: a heartbeat comment.
    assert_eq!(c.event().await.0, 3);
    assert_eq!(c.next().await, Some(Sse::Comment("heartbeat".into())));
    assert_eq!(state.streams.open(), 1);
    drop(c);

    // While disconnected: a retraction and a new block.
    let writer = store.clone();
    tokio::task::spawn_blocking(move || {
        writer.unwind_above(1, 1, b"", None).expect("unwind");
        commit(&*writer, 2, &[("hf-z", "grant", 2)]);
    })
    .await
    .expect("write");
    // Reconnect after event 2: 3 again (it was read but the client resumes from 2), then
    // the rest, in order, each once.
    let mut c = Client::connect(addr, Some("2")).await.expect("stream");
    let mut got = Vec::new();
    for _ in 0..4 {
        let (id, kind, data) = c.event().await;
        got.push((
            id,
            kind,
            data["key"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    assert_eq!(
        got,
        [
            (3, "raised".into(), "hf-y".into()),
            (4, "retracted".into(), "hf-x:retracted".into()),
            (5, "retracted".into(), "hf-y:retracted".into()),
            (6, "raised".into(), "hf-z".into()),
        ]
    );
    // Resuming from 6 gets nothing more until the next commit.
    let mut resumed = Client::connect(addr, Some("6")).await.expect("stream");
    let writer = store.clone();
    tokio::task::spawn_blocking(move || commit(&*writer, 3, &[("hf-w", "drain", 1)]))
        .await
        .expect("commit");
    assert_eq!(resumed.event().await.0, 7);
    assert_eq!(c.event().await.0, 7);

    // Bad resumption points.
    for (id, says) in [
        ("abc", "expected an outbox number"),
        ("99", "past the newest event, 7"),
    ] {
        let (status, v) = Client::connect(addr, Some(id))
            .await
            .err()
            .expect("refused");
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["error"]["field"], "Last-Event-ID");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(says)),
            "{v}"
        );
    }

    // An empty Last-Event-ID is none: the stream starts at the newest event.
    let mut fresh = Client::connect(addr, Some("")).await.expect("stream");
    let writer = store.clone();
    tokio::task::spawn_blocking(move || commit(&*writer, 4, &[("hf-v", "drain", 1)]))
        .await
        .expect("commit");
    assert_eq!(fresh.event().await.0, 8);
    assert_eq!(c.event().await.0, 8);
    drop(fresh);

    // Stopping the server ends open streams at once (no wait for the grace period).
    let started = std::time::Instant::now();
    let _ = stop_tx.send(());
    loop {
        match c.next().await {
            None => break,
            Some(Sse::Comment(_)) => {}
            Some(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_are_capped_and_counted_as_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = watch_store(dir.path());
    // A cap of 4 connections allows 2 streams.
    let limits = Limits::new(
        Duration::from_secs(10),
        Duration::from_secs(10),
        Duration::from_secs(10),
        4,
    );
    let state = state_for(dir.path(), None)
        .with_watch(store)
        .with_tokens(tokens())
        .with_limits(limits.clone());
    let addr = serve(state.clone(), std::future::pending()).await;
    let a = Client::connect(addr, None).await.expect("first");
    let b = Client::connect(addr, None).await.expect("second");
    let (status, v) = Client::connect(addr, None)
        .await
        .err()
        .expect("third refused");
    assert_eq!(status, 503, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("2 live streams")),
        "{v}"
    );
    assert_eq!(state.streams.open(), 2);
    assert!(
        limits.open_connections() >= 2,
        "{}",
        limits.open_connections()
    );
    drop((a, b));
    // A closed stream frees its slot (once the server notices the closed socket).
    let mut again = None;
    for _ in 0..100 {
        if let Ok(c) = Client::connect(addr, None).await {
            again = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "a slot came free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_after_a_commit_delivers_without_waiting_for_the_poll() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = watch_store(dir.path());
    // Streams that would poll only once a minute.
    let state = state_for(dir.path(), None)
        .with_watch(store.clone())
        .with_tokens(tokens())
        .with_streams(Streams::new(
            Duration::from_secs(60),
            Duration::from_secs(60),
        ));
    let addr = serve(state.clone(), std::future::pending()).await;
    let mut c = Client::connect(addr, None).await.expect("stream");
    // Let the stream make its first (empty) read and start waiting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writer = store.clone();
    tokio::task::spawn_blocking(move || commit(&*writer, 1, &[("hf-now", "drain", 3)]))
        .await
        .expect("commit");
    let started = std::time::Instant::now();
    state.streams.wake();
    let (id, kind, _) = c.event().await;
    assert_eq!((id, kind.as_str()), (1, "raised"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
