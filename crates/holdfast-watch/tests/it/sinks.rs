//! Each sink against a real receiver: the webhook's signature and keys, the Slack payload,
//! e-mail through a real SMTP server (aiosmtpd).

use std::sync::Arc;
use std::time::Duration;

use holdfast_store::watch::WatchStore;
use holdfast_watch::sink::SinkSpec;
use holdfast_watch::{Deliverer, DeliveryConfig, DeliveryMetrics, Severity, Sink};
use prometheus_client::registry::Registry;
use tokio::sync::Notify;

use crate::receivers::{Receiver, ReceiverOptions, SmtpServer, TestChain};
use holdfast_store::watch::EmbeddedWatchStore;

pub fn open_store(dir: &std::path::Path) -> Arc<dyn WatchStore> {
    Arc::new(
        EmbeddedWatchStore::open(dir).unwrap_or_else(|e| panic!("opening the watch store: {e}")),
    )
}

pub fn quick() -> DeliveryConfig {
    DeliveryConfig {
        batch: 64,
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(500),
        poll_interval: Duration::from_millis(200),
        attempt_timeout: Duration::from_secs(10),
        prune_interval: Duration::from_millis(50),
        prune_keep: 0,
    }
}

pub fn sink(spec: SinkSpec, env: &[(&str, &str)]) -> Sink {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    Sink::from_spec(&spec, &move |k| {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

pub fn webhook(name: &str, url: &str, secret_env: Option<&str>) -> SinkSpec {
    SinkSpec::Webhook {
        name: name.into(),
        url: url.into(),
        secret_env: secret_env.map(Into::into),
        min_severity: None,
    }
}

const BOUND: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_events_are_signed_carry_their_key_and_come_in_order() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open_store(dir.path());
    let mut chain = TestChain::new(store.clone());
    let rx = Receiver::start(ReceiverOptions {
        secret: Some(b"hook-secret".to_vec()),
        ..Default::default()
    })
    .await;
    let wake = Arc::new(Notify::new());
    let metrics = DeliveryMetrics::register(&mut Registry::default());
    let d = Deliverer::spawn(
        store.clone(),
        vec![sink(
            webhook("hook", &rx.url(), Some("HOOK_SECRET")),
            &[("HOOK_SECRET", "hook-secret")],
        )],
        wake.clone(),
        metrics.clone(),
        quick(),
    );
    let a = chain.commit_with(&[Severity::Critical, Severity::Low]);
    let b = chain.commit(1, Severity::High);
    wake.notify_waiters();
    chain.unwind_above(1);
    let c = chain.commit(1, Severity::Medium);
    wake.notify_waiters();
    let expected = [
        a[0].id.clone(),
        a[1].id.clone(),
        b[0].id.clone(),
        format!("{}:retracted", b[0].id),
        c[0].id.clone(),
    ];
    rx.wait_for_keys(expected.len(), BOUND).await;
    d.shutdown().await;
    assert!(rx.bad().is_empty(), "refused: {:?}", rx.bad());
    let got = rx.accepted();
    assert_eq!(
        got.iter().map(|r| r.key.clone()).collect::<Vec<_>>(),
        expected
    );
    assert!(
        got.windows(2).all(|w| w[0].seq < w[1].seq),
        "in outbox order"
    );
    assert_eq!(got[3].event, "retracted");
    assert_eq!(got[3].body["alert"]["id"], b[0].id.as_str());
    assert_eq!(got[0].event, "raised");
    assert_eq!(got[0].body["alert"]["severity"], "critical");
    assert_eq!(metrics.delivered("hook"), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_by_the_receiver_and_retried() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open_store(dir.path());
    let mut chain = TestChain::new(store.clone());
    let rx = Receiver::start(ReceiverOptions {
        secret: Some(b"right".to_vec()),
        ..Default::default()
    })
    .await;
    let metrics = DeliveryMetrics::register(&mut Registry::default());
    let d = Deliverer::spawn(
        store.clone(),
        vec![sink(
            webhook("hook", &rx.url(), Some("S")),
            &[("S", "wrong")],
        )],
        Arc::new(Notify::new()),
        metrics.clone(),
        quick(),
    );
    chain.commit(1, Severity::High);
    let start = std::time::Instant::now();
    while metrics.failed_attempts("hook") < 2 {
        assert!(start.elapsed() < BOUND, "no refused attempts");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    d.shutdown().await;
    assert!(rx.accepted().is_empty());
    assert!(
        rx.bad()
            .iter()
            .all(|b| b.contains("signature does not match")),
        "{:?}",
        rx.bad()
    );
    assert_eq!(
        store.outbox_after_cursor("hook", 10).map(|v| v.len()).ok(),
        Some(1),
        "the cursor did not move"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_payload_reaches_a_slack_compatible_receiver() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open_store(dir.path());
    let mut chain = TestChain::new(store.clone());
    let rx = Receiver::start(ReceiverOptions::default()).await;
    let wake = Arc::new(Notify::new());
    let d = Deliverer::spawn(
        store.clone(),
        vec![sink(
            SinkSpec::Slack {
                name: "slack".into(),
                url: rx.url(),
                min_severity: Some("high".into()),
            },
            &[],
        )],
        wake.clone(),
        DeliveryMetrics::register(&mut Registry::default()),
        quick(),
    );
    chain.commit(1, Severity::Low); // below min_severity: not sent
    let a = chain.commit(1, Severity::Critical);
    chain.unwind_above(1);
    wake.notify_waiters();
    rx.wait_for_keys(2, BOUND).await;
    d.shutdown().await;
    let got = rx.accepted();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].key, a[0].id);
    let raised = &got[0].body;
    assert_eq!(raised["text"], format!("[CRITICAL] {}", a[0].title));
    assert_eq!(raised["blocks"][0]["type"], "header");
    let text = raised.to_string();
    for needle in [
        "*new owner*",
        "Treasury",
        "https://explorer.test/block/2|block",
        "0 confirmations",
        "owner-change",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    assert!(
        got[1].body["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("RETRACTED")),
        "{}",
        got[1].body
    );
}

/// The body of a quoted-printable message, decoded (soft line breaks joined, `=XX` bytes).
fn qp_body(message: &str) -> String {
    let body = message
        .split_once("\n\n")
        .map_or("", |(_, b)| b)
        .replace("=\r\n", "")
        .replace("=\n", "");
    let bytes = body.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        if let (b'=', Some(b)) = (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A header's value, unfolded (a long header continues on lines starting with white space).
fn header(message: &str, name: &str) -> Option<String> {
    let mut unfolded: Vec<String> = Vec::new();
    for line in message.lines().take_while(|l| !l.is_empty()) {
        match (line.starts_with([' ', '\t']), unfolded.last_mut()) {
            (true, Some(last)) => last.push_str(line),
            _ => unfolded.push(line.to_owned()),
        }
    }
    unfolded.into_iter().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|r| r.strip_prefix(": "))
            .map(str::to_owned)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_reaches_a_real_smtp_server() {
    let smtp = SmtpServer::start().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open_store(dir.path());
    let mut chain = TestChain::new(store.clone());
    let wake = Arc::new(Notify::new());
    let spec = SinkSpec::Email {
        name: "mail".into(),
        server: format!("smtp://127.0.0.1:{}", smtp.port),
        from: "Holdfast <watch@holdfast.test>".into(),
        to: vec!["soc@bank.test".into(), "oncall@bank.test".into()],
        username: None,
        password_env: None,
        min_severity: None,
        tls_ca_file: None,
    };
    let d = Deliverer::spawn(
        store.clone(),
        vec![sink(spec, &[])],
        wake.clone(),
        DeliveryMetrics::register(&mut Registry::default()),
        quick(),
    );
    chain.commit(0, Severity::Info);
    let a = chain.commit(1, Severity::Critical);
    chain.unwind_above(1);
    wake.notify_waiters();
    let mut messages = smtp.wait_for_messages(2).await;
    d.shutdown().await;
    messages.sort_by_key(|m| header(m, "Subject"));
    let (raised, retracted) = (&messages[0], &messages[1]);
    assert_eq!(
        header(raised, "Subject"),
        Some(format!("[Holdfast CRITICAL] {}", a[0].title))
    );
    assert_eq!(
        header(retracted, "Subject"),
        Some(format!("[Holdfast CRITICAL] Retracted: {}", a[0].title))
    );
    assert_eq!(
        header(raised, "Message-ID"),
        Some(format!("<{}@holdfast>", a[0].id))
    );
    assert_eq!(
        header(retracted, "Message-ID"),
        Some(format!("<{}.retracted@holdfast>", a[0].id))
    );
    assert_eq!(
        header(retracted, "In-Reply-To"),
        Some(format!("<{}@holdfast>", a[0].id))
    );
    assert_eq!(
        header(raised, "X-MailFrom"),
        Some("watch@holdfast.test".to_owned())
    );
    assert_eq!(
        header(raised, "X-RcptTo"),
        Some("soc@bank.test, oncall@bank.test".to_owned())
    );
    let body = qp_body(raised);
    for needle in [
        "The watched contract's owner changed",
        "new owner: 0xbad",
        "watched contract (Treasury)",
        "block: https://explorer.test/block/2",
        "Raised at 0 confirmations",
    ] {
        assert!(body.contains(needle), "{needle} in {body}");
    }
    assert!(
        qp_body(retracted).contains("unwound by a reorg"),
        "{retracted}"
    );
}

/// Run as a child process by `stdout_sink_writes_one_json_line_per_event` (does nothing
/// otherwise): delivers three alerts to a stdout sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_sink_child() {
    if std::env::var_os("HOLDFAST_STDOUT_SINK_CHILD").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open_store(dir.path());
    let mut chain = TestChain::new(store.clone());
    let metrics = DeliveryMetrics::register(&mut Registry::default());
    let d = Deliverer::spawn(
        store.clone(),
        vec![sink(
            SinkSpec::Stdout {
                name: "stdout".into(),
                min_severity: Some("medium".into()),
            },
            &[],
        )],
        Arc::new(Notify::new()),
        metrics.clone(),
        quick(),
    );
    chain.commit(0, Severity::Info);
    chain.commit_with(&[Severity::High, Severity::Low, Severity::Critical]);
    chain.unwind_above(1);
    let start = std::time::Instant::now();
    while metrics.delivered("stdout") < 4 {
        assert!(start.elapsed() < BOUND, "stdout sink did not deliver");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    d.shutdown().await;
}

#[test]
fn stdout_sink_writes_one_json_line_per_event() {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(exe)
        .args([
            "sinks::stdout_sink_child",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("HOLDFAST_STDOUT_SINK_CHILD", "1")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        // libtest writes "test … ... " before the child's first line.
        .filter_map(|l| l.find("{\"event\"").map(|i| &l[i..]))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let events: Vec<(String, String)> = lines
        .iter()
        .map(|v| {
            (
                v["event"].as_str().unwrap_or_default().to_owned(),
                v["alert"]["severity"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    // The low alert is below min_severity: neither its raise nor its retraction is written.
    assert_eq!(
        events,
        [
            ("raised".to_owned(), "high".to_owned()),
            ("raised".to_owned(), "critical".to_owned()),
            ("retracted".to_owned(), "high".to_owned()),
            ("retracted".to_owned(), "critical".to_owned()),
        ],
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .all(|v| v["key"].as_str().is_some() && v["seq"].as_u64().is_some())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_is_never_sent_to_a_server_without_starttls() {
    // AUTH offered in the clear, no STARTTLS: a client that sent the password would log in.
    let smtp = SmtpServer::start_with(true).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open_store(dir.path());
    let mut chain = TestChain::new(store.clone());
    let spec = SinkSpec::Email {
        name: "mail".into(),
        server: format!("smtp://127.0.0.1:{}", smtp.port),
        from: "watch@holdfast.test".into(),
        to: vec!["soc@bank.test".into()],
        username: Some("watch".into()),
        password_env: Some("SMTP_PASSWORD".into()),
        min_severity: None,
        tls_ca_file: None,
    };
    let metrics = DeliveryMetrics::register(&mut Registry::default());
    let d = Deliverer::spawn(
        store.clone(),
        vec![sink(spec, &[("SMTP_PASSWORD", "hunter2")])],
        Arc::new(Notify::new()),
        metrics.clone(),
        quick(),
    );
    chain.commit(1, Severity::Critical);
    let start = std::time::Instant::now();
    while metrics.failed_attempts("mail") < 2 && smtp.logins().is_empty() {
        assert!(start.elapsed() < BOUND, "no failed attempt");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    d.shutdown().await;
    assert_eq!(
        smtp.logins(),
        "",
        "the password reached a server without TLS"
    );
    assert!(smtp.messages().is_empty());
    assert_eq!(metrics.delivered("mail"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_with_a_password_goes_over_starttls_to_a_server_of_a_private_ca() {
    let certs = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (ca, cert, key) = crate::receivers::throwaway_ca(certs.path());
    let smtp = SmtpServer::start_tls(&cert, &key).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open_store(dir.path());
    let mut chain = TestChain::new(store.clone());
    let spec = |name: &str, ca: Option<String>| SinkSpec::Email {
        name: name.into(),
        server: format!("smtp://127.0.0.1:{}", smtp.port),
        from: "watch@holdfast.test".into(),
        to: vec!["soc@bank.test".into()],
        username: Some("watch".into()),
        password_env: Some("SMTP_PASSWORD".into()),
        min_severity: None,
        tls_ca_file: ca,
    };
    let env = [("SMTP_PASSWORD", "hunter2")];
    let metrics = DeliveryMetrics::register(&mut Registry::default());
    let d = Deliverer::spawn(
        store.clone(),
        vec![
            sink(spec("trusting", Some(ca.display().to_string())), &env),
            // The Mozilla roots alone do not trust the private CA: refused, retried.
            sink(spec("strict", None), &env),
        ],
        Arc::new(Notify::new()),
        metrics.clone(),
        quick(),
    );
    let a = chain.commit(1, Severity::Critical);
    let messages = smtp.wait_for_messages(1).await;
    let start = std::time::Instant::now();
    while metrics.failed_attempts("strict") < 2 {
        assert!(start.elapsed() < BOUND, "the strict sink did not fail");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    d.shutdown().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(
        header(&messages[0], "Message-ID"),
        Some(format!("<{}@holdfast>", a[0].id))
    );
    assert!(
        smtp.logins().contains("hunter2"),
        "logged in over TLS: {}",
        smtp.logins()
    );
    assert_eq!(
        smtp.logins().lines().count(),
        1,
        "only the trusting sink logged in"
    );
    assert_eq!(metrics.delivered("strict"), 0);
}

#[test]
fn a_bad_tls_ca_file_is_an_error_naming_the_field() {
    let spec = SinkSpec::Email {
        name: "mail".into(),
        server: "smtp://127.0.0.1:25".into(),
        from: "a@holdfast.test".into(),
        to: vec!["b@holdfast.test".into()],
        username: None,
        password_env: None,
        min_severity: None,
        tls_ca_file: Some("/nonexistent/ca.pem".into()),
    };
    let e = Sink::from_spec(&spec, &|_| None)
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!((e.sink.as_str(), e.field), ("mail", "tls_ca_file"));
    assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
}
