//! The Slack-compatible incoming webhook: `POST {"text": …, "blocks": [...]}` (Block Kit:
//! a header with the severity and title, the summary, the facts as fields, the addresses
//! with their labels, the links, and a context line with chain, block, rule and key).
//! Retracted and confirmed events say so in the header and first line. Mattermost and
//! Rocket.Chat accept the same payload (they read `text`).

use std::fmt;

use holdfast_store::watch::AlertEventKind;
use reqwest::Url;
use serde_json::{Value, json};

use super::webhook::{http_client, post};
use super::{SendError, SinkConfigError, SinkEvent, redacted_url};
use crate::alert::{Alert, Severity};

/// Block Kit limits: header text 150 characters, section text 3000, a field 2000, ten
/// fields per section.
const HEADER_MAX: usize = 150;
const SECTION_MAX: usize = 3000;
const FIELD_MAX: usize = 2000;
const FIELDS_MAX: usize = 10;
/// Fact sections shown (Slack refuses a message of more than 50 blocks); the rest are
/// counted in a last line.
const FACT_SECTIONS_MAX: usize = 4;

/// A Slack-compatible sink. The URL's path is its secret: it is never shown.
#[derive(Clone)]
pub struct SlackSink {
    name: String,
    url: Url,
    client: reqwest::Client,
}

impl fmt::Debug for SlackSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackSink")
            .field("name", &self.name)
            .field("url", &redacted_url(&self.url))
            .finish_non_exhaustive()
    }
}

impl SlackSink {
    pub(super) fn new(name: &str, url: Url) -> Result<SlackSink, SinkConfigError> {
        let client = http_client(name, &url)?;
        Ok(SlackSink {
            name: name.to_owned(),
            url,
            client,
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    pub(super) async fn send(&self, event: &SinkEvent) -> Result<(), SendError> {
        let req = self
            .client
            .post(self.url.clone())
            .header("Idempotency-Key", &event.key)
            .header(reqwest::header::USER_AGENT, super::webhook::USER_AGENT)
            .json(&slack_payload(event));
        post(&self.name, &self.url, req).await
    }
}

fn marker(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "🔴",
        Severity::High => "🟠",
        Severity::Medium => "🟡",
        Severity::Low => "🔵",
        Severity::Info => "⚪",
    }
}

/// The prefix naming what happened: nothing for a raise.
fn event_prefix(kind: AlertEventKind) -> &'static str {
    match kind {
        AlertEventKind::Raised => "",
        AlertEventKind::Retracted => "RETRACTED · ",
        AlertEventKind::Confirmed => "CONFIRMED · ",
    }
}

fn event_note(kind: AlertEventKind, alert: Option<&Alert>) -> Option<&'static str> {
    match kind {
        AlertEventKind::Retracted => Some(
            "*Retracted*: the block that carried this alert was unwound by a reorg; what it reported is no longer on the chain.",
        ),
        AlertEventKind::Confirmed => {
            Some("*Confirmed*: the block that carried this alert is now deep enough to be final.")
        }
        AlertEventKind::Raised if alert.is_some_and(|a| a.confirmations == 0) => Some(
            "_Raised at 0 confirmations: the block may still be unwound (a retraction follows if it is)._",
        ),
        AlertEventKind::Raised => None,
    }
}

/// Escapes text for Slack's mrkdwn (`&`, `<`, `>`).
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(text, SECTION_MAX)}})
}

/// The payload for `event`.
pub fn slack_payload(event: &SinkEvent) -> Value {
    let prefix = event_prefix(event.kind);
    let Some(alert) = &event.decoded else {
        let text = format!("{prefix}[UNKNOWN] alert {}", event.alert_id);
        let body = cut(&event.alert.to_string(), SECTION_MAX - 8);
        return json!({
            "text": text,
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": cut(&text, HEADER_MAX)}},
                section(&format!("```{}```", esc(&body))),
                {"type": "context", "elements": [{"type": "mrkdwn", "text": format!("key {}", esc(&event.key))}]},
            ],
        });
    };
    let sev = alert.severity.name().to_uppercase();
    let text = format!("{prefix}[{sev}] {}", alert.title);
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": cut(&format!("{} {text}", marker(alert.severity)), HEADER_MAX), "emoji": true},
    })];
    let mut first = String::new();
    if let Some(note) = event_note(event.kind, Some(alert)) {
        first.push_str(note);
        first.push_str("\n\n");
    }
    first.push_str(&esc(&alert.summary));
    blocks.push(section(&first));
    let shown = alert.facts.len().min(FIELDS_MAX * FACT_SECTIONS_MAX);
    for chunk in alert.facts[..shown].chunks(FIELDS_MAX) {
        let fields: Vec<Value> = chunk
            .iter()
            .map(|f| {
                json!({"type": "mrkdwn", "text": cut(&format!("*{}*\n{}", esc(&f.name), esc(&f.value)), FIELD_MAX)})
            })
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    if shown < alert.facts.len() {
        blocks.push(section(&format!(
            "_…and {} more facts (in the webhook, e-mail and API)._",
            alert.facts.len() - shown
        )));
    }
    if !alert.addresses.is_empty() {
        let lines: Vec<String> = alert
            .addresses
            .iter()
            .map(|a| {
                let labels = if a.labels.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", esc(&a.labels.join("; ")))
                };
                format!("`{}` {}{labels}", a.address, esc(&a.role))
            })
            .collect();
        blocks.push(section(&format!("*Addresses*\n{}", lines.join("\n"))));
    }
    if !alert.links.is_empty() {
        let links: Vec<String> = alert
            .links
            .iter()
            .map(|l| format!("<{}|{}>", l.url.replace(['<', '>', '|'], ""), esc(&l.name)))
            .collect();
        blocks.push(section(&links.join(" · ")));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": esc(&format!(
            "{} block {} · rule {} · {} · key {}",
            alert.chain, alert.block_number, alert.rule, alert.detector.name(), event.key
        ))}],
    }));
    json!({"text": text, "blocks": blocks})
}
