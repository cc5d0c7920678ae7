//! Delivery against real receivers: retries until accepted, a sink down for seconds while
//! another keeps receiving, a restart resuming from the cursor, and the at-least-once
//! contract when an answer is lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use holdfast_watch::{Deliverer, DeliveryConfig, DeliveryMetrics, Severity};
use prometheus_client::registry::Registry;
use tokio::sync::Notify;

use crate::receivers::{Receiver, ReceiverOptions, TestChain, free_port};
use crate::sinks::{open_store, quick, sink, webhook};

const BOUND: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_the_first_requests_gets_every_key_after_retries() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open_store(dir.path());
    let mut chain = TestChain::new(store.clone());
    let rx = Receiver::start(ReceiverOptions {
        fail_first: 5,
        ..Default::default()
    })
    .await;
    let metrics = DeliveryMetrics::register(&mut Registry::default());
    let wake = Arc::new(Notify::new());
    let config = DeliveryConfig {
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(80),
        ..quick()
    };
    let d = Deliverer::spawn(
        store.clone(),
        vec![sink(webhook("flaky", &rx.url(), None), &[])],
        wake.clone(),
        metrics.clone(),
        config,
    );
    let alerts = chain.commit(3, Severity::High);
    wake.notify_waiters();
    rx.wait_for_keys(3, BOUND).await;
    d.shutdown().await;
    let counts = rx.counts();
    for a in &alerts {
        assert_eq!(counts.get(&a.id), Some(&1), "{} accepted once", a.id);
    }
    // The first key was refused five times, then accepted; the others went through at once.
    let attempts = rx.attempts();
    assert_eq!(attempts.len(), 8);
    assert!(
        attempts[..6].iter().all(|(k, _)| *k == alerts[0].id),
        "{attempts:?}"
    );
    assert_eq!(
        (
            metrics.failed_attempts("flaky"),
            metrics.retries("flaky"),
            metrics.delivered("flaky")
        ),
        (5, 5, 3)
    );
    assert_eq!(metrics.backlog("flaky"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_down_for_seconds_does_not_delay_another() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open_store(dir.path());
    let mut chain = TestChain::new(store.clone());
    let down_port = free_port();
    let up = Receiver::start(ReceiverOptions::default()).await;
    let metrics = DeliveryMetrics::register(&mut Registry::default());
    let wake = Arc::new(Notify::new());
    let config = DeliveryConfig {
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(800),
        ..quick()
    };
    let d = Deliverer::spawn(
        store.clone(),
        vec![
            sink(
                webhook("down", &format!("http://127.0.0.1:{down_port}/hook"), None),
                &[],
            ),
            sink(webhook("up", &up.url(), None), &[]),
        ],
        wake.clone(),
        metrics.clone(),
        config,
    );
    // Four seconds of blocks while "down" refuses connections: "up" has each one promptly.
    let mut expected = Vec::new();
    let started = Instant::now();
    let mut committed = Vec::new();
    while started.elapsed() < Duration::from_secs(4) {
        let a = chain.commit(1, Severity::Critical);
        committed.push(Instant::now());
        wake.notify_waiters();
        expected.push(a[0].id.clone());
        up.wait_for_keys(expected.len(), BOUND).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        metrics.failed_attempts("down") >= 2,
        "the down sink was tried"
    );
    assert_eq!(metrics.delivered("down"), 0);
    assert!(metrics.backlog("down") >= 1);
    // The outbox was pruned meanwhile (every 50 ms), yet it keeps every event the down
    // sink has not accepted, though "up" has them all.
    tokio::time::sleep(quick().prune_interval * 4).await;
    assert_eq!(
        outbox_ids(&store),
        expected,
        "nothing the down sink lacks is pruned"
    );
    // The down sink's receiver comes up on its port: it gets everything, in order, once.
    let down = Receiver::start(ReceiverOptions {
        port: Some(down_port),
        ..Default::default()
    })
    .await;
    down.wait_for_keys(expected.len(), BOUND).await;
    let start = Instant::now();
    while !outbox_ids(&store).is_empty() {
        assert!(start.elapsed() < BOUND, "delivered everywhere, then pruned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d.shutdown().await;
    let got: Vec<String> = down.accepted().into_iter().map(|r| r.key).collect();
    assert_eq!(got, expected);
    let got_up: Vec<String> = up.accepted().into_iter().map(|r| r.key).collect();
    assert_eq!(got_up, expected);
    let mut lags: Vec<Duration> = up
        .accepted()
        .iter()
        .zip(&committed)
        .map(|(r, c)| r.at.saturating_duration_since(*c))
        .collect();
    lags.sort();
    eprintln!(
        "up sink while the other was down: {} events, lag p50 {:?}, max {:?}",
        lags.len(),
        lags[lags.len() / 2],
        lags[lags.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_deliverer_resumes_from_its_cursor() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open_store(dir.path());
    let mut chain = TestChain::new(store.clone());
    let rx = Receiver::start(ReceiverOptions::default()).await;
    let spawn = |store| {
        Deliverer::spawn(
            store,
            vec![sink(webhook("hook", &rx.url(), None), &[])],
            Arc::new(Notify::new()),
            DeliveryMetrics::register(&mut Registry::default()),
            quick(),
        )
    };
    let mut expected = Vec::new();
    for _ in 0..5 {
        expected.extend(chain.commit(2, Severity::High).into_iter().map(|a| a.id));
    }
    let d = spawn(store.clone());
    rx.wait_for_keys(10, BOUND).await;
    d.shutdown().await;
    // Stopped: ten more alerts wait in the outbox.
    for _ in 0..5 {
        expected.extend(chain.commit(2, Severity::High).into_iter().map(|a| a.id));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.counts().len(), 10, "nothing sent while stopped");
    let d = spawn(store.clone());
    rx.wait_for_keys(20, BOUND).await;
    d.shutdown().await;
    let got: Vec<String> = rx.accepted().into_iter().map(|r| r.key).collect();
    assert_eq!(
        got, expected,
        "each once, in order: the cursor moved at the clean stop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_never_comes_means_the_event_is_sent_again_with_the_same_key() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open_store(dir.path());
    let mut chain = TestChain::new(store.clone());
    // The receiver records the first request, then never answers in time: as if the sender
    // died after the receiver took it but before the cursor moved.
    let rx = Receiver::start(ReceiverOptions {
        hang_first: 1,
        hang_for: Duration::from_secs(5),
        ..Default::default()
    })
    .await;
    let metrics = DeliveryMetrics::register(&mut Registry::default());
    let config = DeliveryConfig {
        attempt_timeout: Duration::from_millis(300),
        ..quick()
    };
    let d = Deliverer::spawn(
        store.clone(),
        vec![sink(webhook("hook", &rx.url(), None), &[])],
        Arc::new(Notify::new()),
        metrics.clone(),
        config,
    );
    let alerts = chain.commit(2, Severity::High);
    rx.wait_for_keys(2, BOUND).await;
    let start = Instant::now();
    while metrics.delivered("hook") < 2 {
        assert!(start.elapsed() < BOUND);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    d.shutdown().await;
    let counts = rx.counts();
    assert_eq!(
        counts.get(&alerts[0].id),
        Some(&2),
        "sent again, same key: {counts:?}"
    );
    assert_eq!(counts.get(&alerts[1].id), Some(&1));
    assert!(metrics.failed_attempts("hook") >= 1);
    // A receiver that dedups by key sees each alert exactly once.
    assert_eq!(counts.len(), 2);
}

/// Run as a child process by `kill_9_during_delivery_loses_nothing` (does nothing otherwise):
/// delivers the outbox in `HOLDFAST_CRASH_CHILD_DIR` to `HOLDFAST_CRASH_CHILD_URL` until
/// killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let (Some(dir), Some(url)) = (
        std::env::var_os("HOLDFAST_CRASH_CHILD_DIR"),
        std::env::var("HOLDFAST_CRASH_CHILD_URL").ok(),
    ) else {
        return;
    };
    let store = open_store(std::path::Path::new(&dir));
    let _d = Deliverer::spawn(
        store,
        vec![sink(webhook("hook", &url, None), &[])],
        Arc::new(Notify::new()),
        DeliveryMetrics::register(&mut Registry::default()),
        quick(),
    );
    tokio::time::sleep(Duration::from_secs(120)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_delivery_loses_nothing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store_dir = dir.path().join("watch");
    let rx = Receiver::start(ReceiverOptions {
        delay: Duration::from_millis(2),
        ..Default::default()
    })
    .await;
    let mut expected = Vec::new();
    {
        let store = open_store(&store_dir);
        let mut chain = TestChain::new(store);
        for _ in 0..100 {
            expected.extend(chain.commit(2, Severity::High).into_iter().map(|a| a.id));
        }
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    for kill_at in [20, 90] {
        let mut child = std::process::Command::new(&exe)
            .args(["deliver::crash_child", "--exact", "--test-threads", "1"])
            .env("HOLDFAST_CRASH_CHILD_DIR", &store_dir)
            .env("HOLDFAST_CRASH_CHILD_URL", rx.url())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        rx.wait_for_keys(kill_at, BOUND).await;
        child.kill().unwrap_or_else(|e| panic!("kill -9: {e}")); // SIGKILL
        let _ = child.wait();
    }
    let killed_at = rx.counts().len();
    assert!(
        killed_at < expected.len(),
        "killed before the end ({killed_at})"
    );
    // Restart on the same directory: the rest arrives, nothing is lost.
    let store = open_store(&store_dir);
    let d = Deliverer::spawn(
        store.clone(),
        vec![sink(webhook("hook", &rx.url(), None), &[])],
        Arc::new(Notify::new()),
        DeliveryMetrics::register(&mut Registry::default()),
        quick(),
    );
    rx.wait_for_keys(expected.len(), BOUND).await;
    // The pruner (every 50 ms, in the killed children too) empties the outbox once all is
    // delivered.
    let start = Instant::now();
    while !outbox_ids(&store).is_empty() {
        assert!(start.elapsed() < BOUND, "the outbox is pruned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d.shutdown().await;
    let counts = rx.counts();
    let mut got: Vec<&String> = counts.keys().collect();
    got.sort();
    let mut want: Vec<&String> = expected.iter().collect();
    want.sort();
    assert_eq!(got, want, "every alert received");
    let again: usize = counts.values().map(|n| n - 1).sum();
    // At least once: only events accepted after the last cursor write are sent again.
    assert!(again <= 2 * quick().batch, "{again} sent again");
    eprintln!("killed twice (after {killed_at} keys); {again} events sent again with their keys");
}

/// The alert ids of the events in the outbox, oldest first.
fn outbox_ids(store: &Arc<dyn holdfast_store::watch::WatchStore>) -> Vec<String> {
    store
        .outbox_since(0, holdfast_store::MAX_LIMIT)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|e| e.alert_id)
        .collect()
}

/// Runs `f` off the async threads (the PostgreSQL store's client blocks).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_another_instance_resumes_from_the_shared_cursor() {
    if std::env::var_os("HOLDFAST_TEST_SKIP_PG").is_some_and(|v| v == "1") {
        return;
    }
    let pg = blocking(|| holdfast_store::testing::TempPostgres::start(false))
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL could not be started (HOLDFAST_TEST_SKIP_PG=1 skips): {e}")
        });
    let url = pg.url().to_owned();
    let connect = |url: String| async move {
        blocking(move || {
            Arc::new(
                holdfast_store::watch::PgWatchStore::connect(&url, 2)
                    .unwrap_or_else(|e| panic!("{e}")),
            ) as Arc<dyn holdfast_store::watch::WatchStore>
        })
        .await
    };
    let rx = Receiver::start(ReceiverOptions::default()).await;
    let first = connect(url.clone()).await;
    let (mut chain, mut expected) = blocking({
        let first = first.clone();
        move || {
            let mut chain = TestChain::new(first);
            let ids: Vec<String> = (0..5)
                .flat_map(|_| chain.commit(2, Severity::High))
                .map(|a| a.id)
                .collect();
            (chain, ids)
        }
    })
    .await;
    let spawn = |store| {
        Deliverer::spawn(
            store,
            vec![sink(webhook("hook", &rx.url(), None), &[])],
            Arc::new(Notify::new()),
            DeliveryMetrics::register(&mut Registry::default()),
            quick(),
        )
    };
    let d = spawn(first.clone());
    rx.wait_for_keys(10, BOUND).await;
    d.shutdown().await;
    let (_chain, more) = blocking(move || {
        let ids: Vec<String> = (0..5)
            .flat_map(|_| chain.commit(2, Severity::High))
            .map(|a| a.id)
            .collect();
        (chain, ids)
    })
    .await;
    expected.extend(more);
    // Another instance, its own connections to the same database.
    let second = connect(url).await;
    let d = spawn(second);
    rx.wait_for_keys(20, BOUND).await;
    d.shutdown().await;
    let got: Vec<String> = rx.accepted().into_iter().map(|r| r.key).collect();
    assert_eq!(got, expected, "each once, in order, across instances");
    drop(first);
    blocking(move || drop(pg)).await;
}
