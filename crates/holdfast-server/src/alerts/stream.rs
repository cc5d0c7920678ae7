//! `GET /v1/alerts/stream`: the outbox as server-sent events, for the web console.
//!
//! Each event is `id: <outbox number>`, `event: raised|retracted|confirmed`, and one `data`
//! line of JSON (`seq`, `key`, `kind`, `alert_id`, `alert`). A client that reconnects with
//! `Last-Event-ID` (browsers' `EventSource` does) gets every event after it, none twice:
//! outbox numbers follow commit order ([`holdfast_store::watch`]), so reading "after the last
//! number" never skips one. Without it (nor `?after=`), the stream starts at the newest event.
//!
//! The watch prunes the outbox once every sink has delivered an event (keeping the newest
//! 100,000 by default), so a client that comes back after a long absence — or reads slower
//! than the watch prunes — may ask for events that are gone. Numbers are dense, so the
//! stream sees it (the next event is not the last one + 1) and says so, never silently:
//! `event: gap`, `id:` the last missing number (a reconnect resumes after the gap), data
//! `{"missing_from", "missing_to", "message"}`; the console then asks for a reload.
//!
//! Bounds per connection: one store read of at most [`BATCH`] events at a time, the next only
//! once those are written to the socket (a slow reader holds no more, and the server's write
//! timeout closes one that stops reading); between reads the stream polls every
//! [`Streams::poll`] — or at once when the watch in the same process calls
//! [`Streams::wake`] after a commit — and sends a heartbeat comment when idle for [`Streams::heartbeat`]. A
//! stream is a connection under the server's connection cap, and at most
//! [`Streams::max_open`] streams are open at once (503 beyond). Streams end when the server
//! stops.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use holdfast_store::watch::{OutboxEvent, WatchStore};
use serde_json::json;

use super::{blocking, body_json, store};
use crate::AppState;
use crate::error::{ApiError, query_params};

/// Most events read from the store at a time by one stream.
pub const BATCH: usize = 16;
/// Most live streams open at once (and at most half the connection cap).
pub const MAX_STREAMS: usize = 64;

/// The live streams' timing, their count and the signal that ends them.
#[derive(Debug, Clone)]
pub struct Streams {
    /// How often an idle stream looks for new events.
    pub poll: Duration,
    /// How long a stream may be silent before a heartbeat comment.
    pub heartbeat: Duration,
    open: Arc<AtomicUsize>,
    stop: Arc<tokio::sync::watch::Sender<bool>>,
    /// Bumped by [`Streams::wake`]: idle streams read the store at once.
    wake: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for Streams {
    fn default() -> Self {
        Streams::new(Duration::from_millis(250), Duration::from_secs(15))
    }
}

impl Streams {
    pub fn new(poll: Duration, heartbeat: Duration) -> Streams {
        Streams {
            poll,
            heartbeat,
            open: Arc::new(AtomicUsize::new(0)),
            stop: Arc::new(tokio::sync::watch::channel(false).0),
            wake: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }

    /// New events are in the outbox (the watch committed a block in this process): idle
    /// streams read them now rather than at their next poll. Cheap; a wake with no stream
    /// open does nothing.
    pub fn wake(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Most streams open at once under a connection cap of `max_connections`.
    pub fn max_open(max_connections: usize) -> usize {
        MAX_STREAMS.min(max_connections / 2).max(1)
    }

    /// Ends every open stream (the server is stopping).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Takes a stream's slot, or `None` at the cap.
    fn take(&self, max: usize) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.open.clone()))
    }
}

/// One open stream, counted while it lives.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A stream's state between events.
struct Follow {
    store: Arc<dyn WatchStore>,
    last: u64,
    queue: VecDeque<OutboxEvent>,
    stop: tokio::sync::watch::Receiver<bool>,
    wake: tokio::sync::watch::Receiver<u64>,
    /// Kept so that `wake` never reports its sender gone.
    _waker: Arc<tokio::sync::watch::Sender<u64>>,
    poll: Duration,
    _slot: Slot,
}

fn event(e: &OutboxEvent) -> Event {
    let data = json!({
        "seq": e.seq,
        "key": e.key(),
        "kind": e.kind.name(),
        "alert_id": e.alert_id,
        "alert": body_json(&e.body),
    });
    Event::default()
        .id(e.seq.to_string())
        .event(e.kind.name())
        .data(data.to_string())
}

/// Events `from..=to` are no longer in the outbox.
fn gap(from: u64, to: u64) -> Event {
    let data = json!({
        "missing_from": from,
        "missing_to": to,
        "message": format!(
            "events {from} to {to} were pruned from the outbox before this stream read them: reload the alerts list"
        ),
    });
    Event::default()
        .id(to.to_string())
        .event("gap")
        .data(data.to_string())
}

/// The next event of the stream, waiting for one; `None` ends the stream (the server
/// stops, or the store failed: the client reconnects with its Last-Event-ID).
async fn next(mut f: Follow) -> Option<(Result<Event, Infallible>, Follow)> {
    loop {
        if let Some(e) = f.queue.front()
            && e.seq > f.last.saturating_add(1)
        {
            // Pruned before this stream read them: said, then the stream goes on.
            let (from, to) = (f.last + 1, e.seq - 1);
            f.last = to;
            return Some((Ok(gap(from, to)), f));
        }
        if let Some(e) = f.queue.pop_front() {
            f.last = e.seq;
            return Some((Ok(event(&e)), f));
        }
        if *f.stop.borrow() {
            return None;
        }
        // A wake from now on is for events this read may not see: it is marked seen here,
        // before the read, so none is lost between the read and the wait.
        f.wake.borrow_and_update();
        let (store, last) = (f.store.clone(), f.last);
        match blocking(move || store.outbox_since(last, BATCH)).await {
            Ok(events) if !events.is_empty() => f.queue.extend(events),
            Ok(_) => {
                tokio::select! {
                    () = tokio::time::sleep(f.poll) => {}
                    _ = f.wake.changed() => {}
                    r = f.stop.changed() => if r.is_err() || *f.stop.borrow() { return None },
                }
            }
            // Logged where it was turned into an ApiError.
            Err(_) => return None,
        }
    }
}

/// A whole number from a header or query parameter named `field`.
fn position(field: &str, value: &str) -> Result<u64, ApiError> {
    value.trim().parse().map_err(|_| {
        ApiError::bad_request(
            field.to_owned(),
            format!("{field} is {value:?}; expected an outbox number (a whole number)"),
        )
    })
}

/// `GET /v1/alerts/stream`.
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let store = store(&state)?;
    super::reader(&state, &headers).await?;
    let q = query_params(query.as_deref(), &["after"])?;
    // An empty Last-Event-ID is none (the event-stream format's reset).
    let last_event_id = headers
        .get("last-event-id")
        .filter(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace));
    let resume = match last_event_id {
        Some(v) => Some(position(
            "Last-Event-ID",
            v.to_str().map_err(|_| {
                ApiError::bad_request(
                    "Last-Event-ID".to_owned(),
                    "Last-Event-ID is not text; expected an outbox number",
                )
            })?,
        )?),
        None => q.get("after").map(|v| position("after", v)).transpose()?,
    };
    let head = {
        let store = store.clone();
        blocking(move || store.outbox_head()).await?
    };
    let last = match resume {
        Some(n) if n > head => {
            return Err(ApiError::bad_request(
                if last_event_id.is_some() {
                    "Last-Event-ID"
                } else {
                    "after"
                }
                .to_owned(),
                format!("{n} is past the newest event, {head}: reconnect without it"),
            ));
        }
        Some(n) => n,
        None => head,
    };
    let streams = &state.streams;
    let max = Streams::max_open(state.limits.max_connections());
    let Some(slot) = streams.take(max) else {
        return Err(ApiError::for_status(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{max} live streams are open, the most this server allows; retry later"),
        ));
    };
    let follow = Follow {
        store,
        last,
        queue: VecDeque::new(),
        stop: streams.stop.subscribe(),
        wake: streams.wake.subscribe(),
        _waker: streams.wake.clone(),
        poll: streams.poll,
        _slot: slot,
    };
    let events = futures_util::stream::unfold(follow, next);
    Ok(Sse::new(events)
        .keep_alive(
            KeepAlive::new()
                .interval(streams.heartbeat)
                .text("heartbeat"),
        )
        .into_response())
}
