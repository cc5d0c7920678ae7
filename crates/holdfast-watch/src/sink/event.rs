//! [`SinkEvent`]: one outbox event as the sinks see it.

use holdfast_store::watch::{AlertEventKind, OutboxEvent};

use crate::alert::Alert;

/// One outbox event, decoded once for every sink.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkEvent {
    /// The outbox sequence number.
    pub seq: u64,
    /// The idempotency key receivers dedup by ([`OutboxEvent::key`]).
    pub key: String,
    pub kind: AlertEventKind,
    pub alert_id: String,
    /// The alert's body as stored (JSON; a body that is not JSON becomes a JSON string of
    /// its text, so it is still delivered and not lost).
    pub alert: serde_json::Value,
    /// The body read as an [`Alert`] when it is one (Slack and e-mail format it; the
    /// severity filter uses it).
    pub decoded: Option<Alert>,
}

impl SinkEvent {
    pub fn from_outbox(event: &OutboxEvent) -> SinkEvent {
        let alert = serde_json::from_slice(&event.body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&event.body).into_owned())
        });
        let decoded = serde_json::from_value(alert.clone()).ok();
        SinkEvent {
            seq: event.seq,
            key: event.key(),
            kind: event.kind,
            alert_id: event.alert_id.clone(),
            alert,
            decoded,
        }
    }

    /// `raised`, `retracted` or `confirmed`.
    pub fn event_name(&self) -> &'static str {
        self.kind.name()
    }

    /// A title for people: the alert's, or its id when the body is not a readable alert.
    pub fn title(&self) -> String {
        match &self.decoded {
            Some(a) => a.title.clone(),
            None => format!("alert {}", self.alert_id),
        }
    }

    /// The severity's name in capitals (`CRITICAL`), `UNKNOWN` for an unreadable body.
    pub fn severity_label(&self) -> String {
        self.decoded
            .as_ref()
            .map_or("UNKNOWN".to_owned(), |a| a.severity.name().to_uppercase())
    }
}
