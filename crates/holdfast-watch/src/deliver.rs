//! From the outbox to the sinks, at least once.
//!
//! [`Deliverer::spawn`] starts one task per sink. Each reads the outbox after its own position
//! ([`WatchStore::outbox_since`], from the sink's cursor at start), skips events below the
//! sink's `min_severity` (its position still moves), sends the rest in sequence order, and
//! moves past an event only after the sink accepted it. The position is written as the
//! durable cursor by a separate task, one write at a time to the latest position, so delivery
//! never waits for an fsync and a burst of events shares them. A failed attempt is retried after a capped exponential
//! backoff with full jitter ([`Backoff`]) until the sink accepts: the event is never skipped,
//! and the events behind it wait (order per sink is kept). Sinks are independent tasks: one
//! that is down delays nobody else, and the caller (the engine) only pings a
//! [`tokio::sync::Notify`] after each commit; a periodic poll covers a missed ping.
//!
//! The contract is **at least once**: if the process dies after a sink accepted an event but
//! before its cursor was written, the event is sent again after restart with the same
//! idempotency key ([`SinkEvent::key`]); receivers dedup by key. Nothing is lost: the cursor never passes
//! an event the sink did not accept.
//!
//! A pruner task deletes the outbox events every sink has delivered, every
//! `prune_interval` (module `prune`; a down sink keeps its events).
//!
//! Per-sink metrics ([`DeliveryMetrics`]): events delivered, events filtered by severity,
//! failed attempts, retries, the time of the last success, and the backlog (outbox head −
//! the sink's position).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use holdfast_store::watch::{OutboxEvent, WatchStore};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rand::Rng;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::sink::{SendError, Sink, SinkEvent};

/// How the deliverer reads, retries and waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Outbox events read per store call.
    pub batch: usize,
    /// Retries back off exponentially from this ceiling…
    pub backoff_min: Duration,
    /// …up to this one (each wait is drawn uniformly below the ceiling: full jitter).
    pub backoff_max: Duration,
    /// A sink with nothing to send looks at the outbox at least this often (the engine's
    /// ping usually wakes it first).
    pub poll_interval: Duration,
    /// One attempt (connect, send, answer) that takes longer fails and is retried.
    pub attempt_timeout: Duration,
    /// How often the outbox is pruned of the events every sink has delivered (module
    /// `prune`).
    pub prune_interval: Duration,
    /// The newest events kept even when every sink has delivered them: readers without a
    /// cursor (the API's live stream resuming after `Last-Event-ID`) can resume that far
    /// back.
    pub prune_keep: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            batch: 256,
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(30),
            prune_interval: Duration::from_secs(10),
            prune_keep: 100_000,
        }
    }
}

/// Capped exponential backoff with full jitter: before retry `n` (0 for the first retry)
/// the deliverer waits a time drawn uniformly from `[0, min(max, min · 2ⁿ)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The upper bound of the wait before retry `attempt`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// A wait before retry `attempt`, drawn from `rng`.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(attempt);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=nanos))
    }
}

/// The label of every delivery metric.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabels {
    pub sink: String,
}

/// Per-sink delivery metrics, registered once into the service's registry.
#[derive(Debug, Default)]
pub struct DeliveryMetrics {
    delivered: Family<SinkLabels, Counter>,
    filtered: Family<SinkLabels, Counter>,
    failed_attempts: Family<SinkLabels, Counter>,
    retries: Family<SinkLabels, Counter>,
    last_success: Family<SinkLabels, Gauge<f64, AtomicU64>>,
    backlog: Family<SinkLabels, Gauge>,
}

impl DeliveryMetrics {
    /// Registers the metrics (`watch_delivery_*`) into `registry` and returns them.
    pub fn register(registry: &mut Registry) -> Arc<DeliveryMetrics> {
        let m = DeliveryMetrics::default();
        m.register_into(registry);
        Arc::new(m)
    }

    /// Registers these metrics (shared handles) into `registry`.
    pub fn register_into(&self, registry: &mut Registry) {
        let m = self;
        registry.register(
            "watch_delivery_delivered",
            "Alert events a sink accepted",
            m.delivered.clone(),
        );
        registry.register(
            "watch_delivery_filtered",
            "Alert events a sink skipped (below its min_severity)",
            m.filtered.clone(),
        );
        registry.register(
            "watch_delivery_failed_attempts",
            "Delivery attempts that failed (refused, unreachable, timed out)",
            m.failed_attempts.clone(),
        );
        registry.register(
            "watch_delivery_retries",
            "Delivery attempts that were retries of a failed one",
            m.retries.clone(),
        );
        registry.register(
            "watch_delivery_last_success_seconds",
            "Unix time of the sink's last accepted event",
            m.last_success.clone(),
        );
        registry.register(
            "watch_delivery_backlog",
            "Outbox events the sink has not yet accepted or skipped (outbox head - cursor)",
            m.backlog.clone(),
        );
    }

    fn labels(sink: &str) -> SinkLabels {
        SinkLabels {
            sink: sink.to_owned(),
        }
    }

    /// Creates the sink's series (at 0), so they show before the first event.
    pub fn track(&self, sink: &str) {
        let l = Self::labels(sink);
        let _ = self.delivered.get_or_create(&l);
        let _ = self.filtered.get_or_create(&l);
        let _ = self.failed_attempts.get_or_create(&l);
        let _ = self.retries.get_or_create(&l);
        let _ = self.last_success.get_or_create(&l);
        let _ = self.backlog.get_or_create(&l);
    }

    pub fn delivered(&self, sink: &str) -> u64 {
        self.delivered.get_or_create(&Self::labels(sink)).get()
    }

    pub fn filtered(&self, sink: &str) -> u64 {
        self.filtered.get_or_create(&Self::labels(sink)).get()
    }

    pub fn failed_attempts(&self, sink: &str) -> u64 {
        self.failed_attempts
            .get_or_create(&Self::labels(sink))
            .get()
    }

    pub fn retries(&self, sink: &str) -> u64 {
        self.retries.get_or_create(&Self::labels(sink)).get()
    }

    /// Unix seconds of the last success, 0 before the first.
    pub fn last_success(&self, sink: &str) -> f64 {
        self.last_success.get_or_create(&Self::labels(sink)).get()
    }

    pub fn backlog(&self, sink: &str) -> i64 {
        self.backlog.get_or_create(&Self::labels(sink)).get()
    }
}

/// The running delivery tasks, one per sink. Stop them with [`Deliverer::shutdown`];
/// dropping the handle stops them too (without waiting).
#[derive(Debug)]
pub struct Deliverer {
    stop: watch::Sender<bool>,
    tasks: Vec<(String, JoinHandle<()>)>,
    pruner: JoinHandle<()>,
}

impl Deliverer {
    /// Starts one task per sink (on the current tokio runtime) and returns at once.
    /// `wake` is the engine's ping: call `notify_waiters()` on it after each commit that
    /// wrote outbox events.
    pub fn spawn(
        store: Arc<dyn WatchStore>,
        sinks: Vec<Sink>,
        wake: Arc<Notify>,
        metrics: Arc<DeliveryMetrics>,
        config: DeliveryConfig,
    ) -> Deliverer {
        let (stop, stopped) = watch::channel(false);
        let names: Vec<String> = sinks.iter().map(|s| s.name().to_owned()).collect();
        let pruner = tokio::spawn(prune::run(
            Arc::clone(&store),
            names,
            (config.prune_interval, config.prune_keep),
            stopped.clone(),
        ));
        let tasks = sinks
            .into_iter()
            .map(|sink| {
                let name = sink.name().to_owned();
                metrics.track(&name);
                let task = SinkTask {
                    store: Arc::clone(&store),
                    sink,
                    wake: Arc::clone(&wake),
                    metrics: Arc::clone(&metrics),
                    config: config.clone(),
                    stopped: stopped.clone(),
                };
                (name, tokio::spawn(task.run()))
            })
            .collect();
        Deliverer {
            stop,
            tasks,
            pruner,
        }
    }

    /// The sinks being served.
    pub fn sinks(&self) -> impl Iterator<Item = &str> {
        self.tasks.iter().map(|(n, _)| n.as_str())
    }

    /// Stops every task: an attempt under way finishes (within the attempt timeout) and its
    /// cursor moves if the sink accepted; nothing new starts; a wait between retries ends at
    /// once. Events not yet delivered stay in the outbox for the next start.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for (name, task) in self.tasks {
            if let Err(e) = task.await {
                warn!(target: "watch::deliver", sink = %name, error = %e, "delivery task ended abnormally");
            }
        }
        if let Err(e) = self.pruner.await {
            warn!(target: "watch::deliver", error = %e, "the outbox pruner ended abnormally");
        }
    }
}

struct SinkTask {
    store: Arc<dyn WatchStore>,
    sink: Sink,
    wake: Arc<Notify>,
    metrics: Arc<DeliveryMetrics>,
    config: DeliveryConfig,
    stopped: watch::Receiver<bool>,
}

/// How a store call on the blocking pool failed.
#[derive(Debug, thiserror::Error)]
enum StoreCallError {
    #[error(transparent)]
    Store(#[from] holdfast_store::StoreError),
    #[error("the store call's thread ended: {0}")]
    Join(#[from] tokio::task::JoinError),
}

enum Sent {
    Accepted,
    Stopped,
}

impl SinkTask {
    fn name(&self) -> &str {
        self.sink.name()
    }

    /// Stopped by [`Deliverer::shutdown`], or the [`Deliverer`] was dropped.
    fn is_stopped(&self) -> bool {
        *self.stopped.borrow() || self.stopped.has_changed().is_err()
    }

    /// Waits `d`, or less if the deliverer is stopped; returns whether it was stopped.
    async fn sleep_or_stop(&mut self, d: Duration) -> bool {
        if self.is_stopped() {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(d) => self.is_stopped(),
            _ = self.stopped.changed() => true,
        }
    }

    async fn run(mut self) {
        let labels = DeliveryMetrics::labels(self.name());
        let backoff = Backoff {
            min: self.config.backoff_min,
            max: self.config.backoff_max,
        };
        debug!(target: "watch::deliver", sink = %self.name(), "delivery started");
        // Where the sink stands: the durable cursor at start, then the last event handled
        // (sent or skipped), kept here so the next read need not wait for the cursor write.
        let Some(mut position) = self.start_position(backoff).await else {
            return;
        };
        let (moved, to_write) = watch::channel(position);
        let writer = tokio::spawn(write_cursor(
            Arc::clone(&self.store),
            self.name().to_owned(),
            (position, to_write),
            backoff,
        ));
        let mut store_failures = 0u32;
        while !self.is_stopped() {
            // Registered before the read: a ping between the read and the wait is not lost.
            let wake = Arc::clone(&self.wake);
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (events, head) = match self.read(position).await {
                Ok(r) => {
                    store_failures = 0;
                    r
                }
                Err(e) => {
                    let wait = backoff.delay(store_failures, &mut rand::rng());
                    store_failures = store_failures.saturating_add(1);
                    warn!(target: "watch::deliver", sink = %self.name(), error = %e, retry_in = ?wait, "reading the outbox failed");
                    if self.sleep_or_stop(wait).await {
                        break;
                    }
                    continue;
                }
            };
            let backlog = |seq: u64| i64::try_from(head.saturating_sub(seq)).unwrap_or(i64::MAX);
            let gauge = self.metrics.backlog.get_or_create(&labels).clone();
            gauge.set(backlog(position));
            if events.is_empty() {
                let poll = self.config.poll_interval;
                tokio::select! {
                    () = &mut notified => {}
                    () = tokio::time::sleep(poll) => {}
                    _ = self.stopped.changed() => {}
                }
                continue;
            }
            for event in &events {
                if self.is_stopped() {
                    break;
                }
                let event = SinkEvent::from_outbox(event);
                if self.sink.wants(&event) {
                    match self.send_until_accepted(&event, backoff, &labels).await {
                        Sent::Accepted => {}
                        Sent::Stopped => break,
                    }
                } else {
                    self.metrics.filtered.get_or_create(&labels).inc();
                }
                position = event.seq;
                moved.send_replace(position);
                gauge.set(backlog(position));
            }
        }
        // The writer stores the last position and ends.
        drop(moved);
        if let Err(e) = writer.await {
            warn!(target: "watch::deliver", sink = %self.name(), error = %e, "the cursor writer ended abnormally");
        }
        debug!(target: "watch::deliver", sink = %self.name(), "delivery stopped");
    }

    /// The sink's durable cursor, retried until the store answers; `None` if stopped first.
    async fn start_position(&mut self, backoff: Backoff) -> Option<u64> {
        let mut failures = 0u32;
        loop {
            let store = Arc::clone(&self.store);
            let name = self.name().to_owned();
            let res = tokio::task::spawn_blocking(move || store.cursor(&name))
                .await
                .map_err(StoreCallError::from)
                .and_then(|r| r.map_err(StoreCallError::from));
            match res {
                Ok(c) => return Some(c),
                Err(e) => {
                    let wait = backoff.delay(failures, &mut rand::rng());
                    failures = failures.saturating_add(1);
                    warn!(target: "watch::deliver", sink = %self.name(), error = %e, retry_in = ?wait, "reading the delivery cursor failed");
                    if self.sleep_or_stop(wait).await {
                        return None;
                    }
                }
            }
        }
    }

    /// The events after `position` and the outbox head.
    async fn read(&self, position: u64) -> Result<(Vec<OutboxEvent>, u64), StoreCallError> {
        let store = Arc::clone(&self.store);
        let batch = self.config.batch.max(1);
        Ok(tokio::task::spawn_blocking(move || {
            let events = store.outbox_since(position, batch)?;
            let head = store.outbox_head()?;
            Ok::<_, holdfast_store::StoreError>((events, head))
        })
        .await??)
    }

    async fn send_until_accepted(
        &mut self,
        event: &SinkEvent,
        backoff: Backoff,
        labels: &SinkLabels,
    ) -> Sent {
        let mut attempt = 0u32;
        loop {
            if attempt > 0 {
                self.metrics.retries.get_or_create(labels).inc();
            }
            let timeout = self.config.attempt_timeout;
            let result = match tokio::time::timeout(timeout, self.sink.send(event)).await {
                Ok(r) => r,
                Err(_) => Err(SendError::Timeout {
                    sink: self.name().to_owned(),
                    timeout,
                }),
            };
            match result {
                Ok(()) => {
                    self.metrics.delivered.get_or_create(labels).inc();
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64());
                    self.metrics.last_success.get_or_create(labels).set(now);
                    if attempt > 0 {
                        info!(target: "watch::deliver", sink = %self.name(), seq = event.seq, key = %event.key, attempts = attempt + 1, "delivered after retries");
                    }
                    return Sent::Accepted;
                }
                Err(e) => {
                    self.metrics.failed_attempts.get_or_create(labels).inc();
                    let wait = backoff.delay(attempt, &mut rand::rng());
                    warn!(target: "watch::deliver", sink = %self.name(), seq = event.seq, key = %event.key, attempt = attempt + 1, retry_in = ?wait, error = %e, "delivery failed");
                    attempt = attempt.saturating_add(1);
                    if self.sleep_or_stop(wait).await {
                        return Sent::Stopped;
                    }
                }
            }
        }
    }
}

/// Stores a sink's position as its durable cursor, off the delivery path: one write at a
/// time, each to the latest position (under load, many events share one write). When the
/// delivery task ends (the sender is dropped), the last position is written before this
/// ends. A write that fails is retried; events past the durable cursor are sent again after
/// a restart (at least once).
///
/// `durable` is the cursor as stored when delivery started. It is not read from the channel:
/// the delivery task may have moved the position before this task first runs (a loaded
/// machine), and a value first seen here is not yet stored.
async fn write_cursor(
    store: Arc<dyn WatchStore>,
    sink: String,
    (mut durable, mut position): (u64, watch::Receiver<u64>),
    backoff: Backoff,
) {
    let mut failures = 0u32;
    loop {
        let target = *position.borrow_and_update();
        if target > durable {
            let store = Arc::clone(&store);
            let name = sink.clone();
            let res = tokio::task::spawn_blocking(move || store.advance_cursor(&name, target))
                .await
                .map_err(StoreCallError::from)
                .and_then(|r| r.map_err(StoreCallError::from));
            match res {
                Ok(()) => {
                    durable = target;
                    failures = 0;
                }
                Err(e) => {
                    let closed = position.has_changed().is_err();
                    warn!(target: "watch::deliver", sink = %sink, seq = target, error = %e, "moving the delivery cursor failed; events after it may be sent again");
                    failures = failures.saturating_add(1);
                    if closed && failures >= 3 {
                        return;
                    }
                    let wait = backoff.delay(failures, &mut rand::rng());
                    tokio::time::sleep(wait).await;
                }
            }
            continue;
        }
        if position.changed().await.is_err() && *position.borrow() <= durable {
            return;
        }
    }
}

mod prune;
#[cfg(test)]
mod tests;
