//! Unit tests with an in-memory outbox (the integration tests use the real stores).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use holdfast_primitives::BlockRef;
use holdfast_store::StoreError;
use holdfast_store::watch::{
    AlertEventKind, AlertQuery, BlockCommit, NewAlert, StoredAlert, WatchCheckpoint,
};

use super::*;
use crate::alert::Severity;
use crate::sink::SinkSpec;
use crate::sink::tests_support::{alert, outbox_event};

/// The outbox part of [`WatchStore`], in memory; `fail_reads` makes the next reads fail.
#[derive(Debug, Default)]
struct MemoryOutbox {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    events: Vec<OutboxEvent>,
    /// The highest number given (events may have been pruned since).
    head: u64,
    cursors: HashMap<String, u64>,
    fail_reads: usize,
    reads: usize,
}

impl MemoryOutbox {
    fn push(&self, severity: Severity) -> u64 {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.head += 1;
        let seq = g.head;
        let mut a = alert(severity, 1);
        a.id = format!("hf-{seq}");
        g.events.push(outbox_event(seq, AlertEventKind::Raised, &a));
        seq
    }

    fn cursor(&self, sink: &str) -> u64 {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.cursors.get(sink).copied().unwrap_or(0)
    }

    fn reads(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).reads
    }

    fn fail_next_reads(&self, n: usize) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fail_reads = n;
    }
}

fn unsupported() -> StoreError {
    StoreError::Invalid {
        chain_id: 0,
        number: 0,
        what: "not supported by the in-memory outbox".into(),
    }
}

impl WatchStore for MemoryOutbox {
    fn checkpoint(&self, _: u64) -> Result<Option<WatchCheckpoint>, StoreError> {
        Err(unsupported())
    }
    fn processed_block(&self, _: u64, _: u64) -> Result<Option<BlockRef>, StoreError> {
        Err(unsupported())
    }
    fn commit_block(&self, _: &BlockCommit) -> Result<(), StoreError> {
        Err(unsupported())
    }
    fn raise_early(
        &self,
        _: u64,
        _: &holdfast_primitives::BlockRef,
        _: &[NewAlert],
        _: Option<u64>,
    ) -> Result<usize, StoreError> {
        Err(unsupported())
    }
    fn unwind_above(
        &self,
        _: u64,
        _: u64,
        _: &[u8],
        _: Option<u64>,
    ) -> Result<Vec<StoredAlert>, StoreError> {
        Err(unsupported())
    }
    fn alert(&self, _: &str) -> Result<Option<StoredAlert>, StoreError> {
        Err(unsupported())
    }
    fn alerts(&self, _: &AlertQuery) -> Result<Vec<StoredAlert>, StoreError> {
        Err(unsupported())
    }
    fn acknowledge(&self, _: &str, _: &str, _: u64) -> Result<Option<StoredAlert>, StoreError> {
        Err(unsupported())
    }
    fn outbox_after_cursor(
        &self,
        sink: &str,
        limit: usize,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let cursor = WatchStore::cursor(self, sink)?;
        self.outbox_since(cursor, limit)
    }
    fn advance_cursor(&self, sink: &str, seq: u64) -> Result<(), StoreError> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let c = g.cursors.entry(sink.to_owned()).or_insert(0);
        *c = (*c).max(seq);
        Ok(())
    }
    fn cursor(&self, sink: &str) -> Result<u64, StoreError> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Ok(g.cursors.get(sink).copied().unwrap_or(0))
    }
    fn cursors(&self) -> Result<Vec<holdfast_store::watch::SinkCursor>, StoreError> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = g
            .cursors
            .iter()
            .map(|(sink, seq)| holdfast_store::watch::SinkCursor {
                sink: sink.clone(),
                seq: *seq,
            })
            .collect();
        v.sort_by(|a, b| a.sink.cmp(&b.sink));
        Ok(v)
    }
    fn forget_cursor(&self, sink: &str) -> Result<Option<u64>, StoreError> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Ok(g.cursors.remove(sink))
    }
    fn prune_outbox(&self, sinks: &[&str], keep: u64) -> Result<u64, StoreError> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let newest = g.head.saturating_sub(keep);
        let served = sinks
            .iter()
            .map(|s| g.cursors.get(*s).copied().unwrap_or(0));
        let low = served
            .chain(g.cursors.values().copied())
            .chain([newest])
            .min()
            .unwrap_or(0);
        let before = g.events.len();
        g.events.retain(|e| e.seq > low);
        Ok((before - g.events.len()) as u64)
    }
    fn outbox_since(&self, after: u64, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.reads += 1;
        if g.fail_reads > 0 {
            g.fail_reads -= 1;
            return Err(StoreError::Invalid {
                chain_id: 0,
                number: 0,
                what: "injected read failure".into(),
            });
        }
        Ok(g.events
            .iter()
            .filter(|e| e.seq > after)
            .take(limit)
            .cloned()
            .collect())
    }
    fn lease(&self, _: u64) -> Result<Option<holdfast_store::watch::Lease>, StoreError> {
        Err(unsupported())
    }
    fn outbox_head(&self) -> Result<u64, StoreError> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Ok(g.head)
    }
    fn acquire_lease(&self, _: u64, _: &str, _: u64, _: u64) -> Result<Option<u64>, StoreError> {
        Err(unsupported())
    }
    fn release_lease(&self, _: u64, _: &str) -> Result<(), StoreError> {
        Err(unsupported())
    }
    fn safe_search(
        &self,
        _: u64,
        _: &[alloy_primitives::Address],
    ) -> Result<Option<holdfast_store::watch::SafeSearch>, StoreError> {
        Err(unsupported())
    }
    fn put_safe_search(&self, _: &holdfast_store::watch::SafeSearch) -> Result<(), StoreError> {
        Err(unsupported())
    }
}

fn stdout_sink(name: &str, min: Option<&str>) -> Sink {
    Sink::from_spec(
        &SinkSpec::Stdout {
            name: name.into(),
            min_severity: min.map(Into::into),
        },
        &|_| None,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A webhook to 127.0.0.1 port 1, where nothing listens: every attempt is refused at once.
/// (A port that was free a moment ago may be taken by a receiver of a test running beside
/// this one, and a sink meant to be down would then hang on it.)
fn closed_port_webhook(name: &str) -> Sink {
    let port = 1;
    Sink::from_spec(
        &SinkSpec::Webhook {
            name: name.into(),
            url: format!("http://127.0.0.1:{port}/hook"),
            secret_env: None,
            min_severity: None,
        },
        &|_| None,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Waits (liveness bound only) until `cond` holds.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not within 20 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn fast() -> DeliveryConfig {
    DeliveryConfig {
        batch: 2,
        backoff_min: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        poll_interval: Duration::from_millis(20),
        attempt_timeout: Duration::from_secs(5),
        prune_interval: Duration::from_millis(20),
        prune_keep: 0,
    }
}

#[test]
fn backoff_grows_exponentially_and_is_capped() {
    let b = Backoff {
        min: Duration::from_millis(250),
        max: Duration::from_secs(60),
    };
    let ceilings: Vec<Duration> = (0..12).map(|n| b.ceiling(n)).collect();
    assert_eq!(ceilings[0], Duration::from_millis(250));
    assert_eq!(ceilings[1], Duration::from_millis(500));
    assert_eq!(ceilings[5], Duration::from_secs(8));
    assert_eq!(
        ceilings[8],
        Duration::from_secs(60),
        "250 ms · 2⁸ = 64 s, capped"
    );
    assert!(ceilings.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(60));
    let mut rng = rand::rng();
    let draws: Vec<Duration> = (0..2000).map(|_| b.delay(3, &mut rng)).collect();
    assert!(draws.iter().all(|d| *d <= Duration::from_secs(2)));
    // Full jitter: spread over the whole range, not clustered at the ceiling.
    assert!(draws.iter().any(|d| *d < Duration::from_millis(500)));
    assert!(draws.iter().any(|d| *d > Duration::from_millis(1500)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_delivered_in_order_and_filtered_ones_still_move_the_cursor() {
    let store = Arc::new(MemoryOutbox::default());
    for s in [
        Severity::Low,
        Severity::Critical,
        Severity::Medium,
        Severity::Low,
        Severity::High,
    ] {
        store.push(s);
    }
    let metrics = DeliveryMetrics::register(&mut Registry::default());
    let d = Deliverer::spawn(
        store.clone(),
        vec![
            stdout_sink("all", None),
            stdout_sink("urgent", Some("high")),
        ],
        Arc::new(Notify::new()),
        metrics.clone(),
        fast(),
    );
    eventually("both cursors at 5", || {
        store.cursor("all") == 5 && store.cursor("urgent") == 5
    })
    .await;
    d.shutdown().await;
    assert_eq!((metrics.delivered("all"), metrics.filtered("all")), (5, 0));
    assert_eq!(
        (metrics.delivered("urgent"), metrics.filtered("urgent")),
        (2, 3)
    );
    assert_eq!(metrics.backlog("urgent"), 0);
    assert!(metrics.last_success("urgent") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_sink_keeps_its_cursor_retries_and_does_not_hold_others() {
    let store = Arc::new(MemoryOutbox::default());
    store.push(Severity::High);
    store.push(Severity::High);
    let metrics = DeliveryMetrics::register(&mut Registry::default());
    let d = Deliverer::spawn(
        store.clone(),
        vec![closed_port_webhook("down"), stdout_sink("up", None)],
        Arc::new(Notify::new()),
        metrics.clone(),
        fast(),
    );
    eventually("the up sink delivered both", || store.cursor("up") == 2).await;
    eventually("several failed attempts", || {
        metrics.failed_attempts("down") >= 4
    })
    .await;
    assert_eq!(
        store.cursor("down"),
        0,
        "never past an event the sink did not accept"
    );
    assert_eq!(metrics.delivered("down"), 0);
    assert!(metrics.retries("down") >= 3);
    assert_eq!(metrics.backlog("down"), 2);
    d.shutdown().await;
}

/// The CI failure of 2026-12-05: on a loaded machine the delivery task handled both events
/// before its newly spawned cursor writer first ran; the writer took the position it first
/// saw as already stored and never wrote it (cursor left at 0: every event sent again after
/// a restart, pruning held back). Here the position moves, and the sender is gone, before the
/// writer starts: the move must still be stored.
#[tokio::test(flavor = "current_thread")]
async fn a_position_moved_before_the_cursor_writer_first_runs_is_still_written() {
    let store = Arc::new(MemoryOutbox::default());
    store.push(Severity::High);
    store.push(Severity::High);
    let (moved, to_write) = watch::channel(0u64);
    moved.send_replace(1);
    moved.send_replace(2);
    drop(moved);
    let backoff = Backoff {
        min: Duration::from_millis(5),
        max: Duration::from_millis(20),
    };
    write_cursor(store.clone(), "up".into(), (0, to_write), backoff).await;
    assert_eq!(store.cursor("up"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_a_long_wait_between_retries_at_once() {
    let store = Arc::new(MemoryOutbox::default());
    store.push(Severity::High);
    let metrics = DeliveryMetrics::register(&mut Registry::default());
    let config = DeliveryConfig {
        backoff_min: Duration::from_secs(3600),
        backoff_max: Duration::from_secs(3600),
        ..fast()
    };
    let d = Deliverer::spawn(
        store.clone(),
        vec![closed_port_webhook("down")],
        Arc::new(Notify::new()),
        metrics.clone(),
        config,
    );
    eventually("a failed attempt", || metrics.failed_attempts("down") >= 1).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(20), d.shutdown())
        .await
        .unwrap_or_else(|_| panic!("shutdown waited out the backoff"));
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engines_ping_wakes_an_idle_sink_without_waiting_for_the_poll() {
    let store = Arc::new(MemoryOutbox::default());
    let wake = Arc::new(Notify::new());
    let metrics = DeliveryMetrics::register(&mut Registry::default());
    let config = DeliveryConfig {
        poll_interval: Duration::from_secs(3600),
        ..fast()
    };
    let d = Deliverer::spawn(
        store.clone(),
        vec![stdout_sink("s", None)],
        wake.clone(),
        metrics.clone(),
        config,
    );
    // Let the task read the empty outbox and go to sleep on the hour-long poll.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for n in 1..=3 {
        store.push(Severity::High);
        wake.notify_waiters();
        eventually("the ping delivered the event", || store.cursor("s") == n).await;
    }
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_read_failures_are_retried() {
    let store = Arc::new(MemoryOutbox::default());
    store.push(Severity::High);
    store.fail_next_reads(3);
    let metrics = DeliveryMetrics::register(&mut Registry::default());
    let d = Deliverer::spawn(
        store.clone(),
        vec![stdout_sink("s", None)],
        Arc::new(Notify::new()),
        metrics.clone(),
        fast(),
    );
    eventually("delivered after the store recovered", || {
        store.cursor("s") == 1
    })
    .await;
    d.shutdown().await;
    assert_eq!(metrics.delivered("s"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_deliverer_stops_its_tasks() {
    let store = Arc::new(MemoryOutbox::default());
    let metrics = DeliveryMetrics::register(&mut Registry::default());
    let config = DeliveryConfig {
        poll_interval: Duration::from_millis(5),
        ..fast()
    };
    let d = Deliverer::spawn(
        store.clone(),
        vec![stdout_sink("s", None)],
        Arc::new(Notify::new()),
        metrics,
        config,
    );
    eventually("the task polls", || store.reads() >= 2).await;
    drop(d);
    // Let the task see the drop, then check it reads no more (it polled every 5 ms).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reads = store.reads();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        store.reads() <= reads + 1,
        "still reading: {} → {}",
        reads,
        store.reads()
    );
}

#[test]
fn metrics_are_registered_under_their_names() {
    let mut registry = Registry::with_prefix("holdfast");
    let m = DeliveryMetrics::register(&mut registry);
    m.track("hook");
    m.delivered
        .get_or_create(&SinkLabels {
            sink: "hook".into(),
        })
        .inc();
    m.backlog
        .get_or_create(&SinkLabels {
            sink: "hook".into(),
        })
        .set(3);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        text.contains("holdfast_watch_delivery_delivered_total{sink=\"hook\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("holdfast_watch_delivery_backlog{sink=\"hook\"} 3"),
        "{text}"
    );
    for name in [
        "failed_attempts_total",
        "retries_total",
        "last_success_seconds",
        "filtered_total",
    ] {
        assert!(
            text.contains(&format!(
                "holdfast_watch_delivery_{name}{{sink=\"hook\"}} 0"
            )),
            "{name}: {text}"
        );
    }
}
