//! Where alerts go: a generic webhook (JSON, HMAC-SHA256 signature, idempotency key), a
//! Slack-compatible incoming webhook, email over SMTP, and JSON lines on stdout.
//!
//! A [`SinkSpec`] (as written in the watch file) becomes a [`Sink`] once, at start
//! ([`Sink::from_spec`], [`Sink::from_specs`]): URLs, addresses, secrets and severities are
//! checked then, each error naming the sink and the field. [`Sink::probe`] tells whether the
//! sink's host answers (a warning at start, never a failure: the outbox keeps the alerts until
//! it does). [`Sink::send`] delivers one [`SinkEvent`]; retries, ordering and the cursor are
//! the deliverer's ([`crate::deliver`]).
//!
//! Secrets (the webhook's HMAC key, the SMTP password, a Slack URL's path, which is its own
//! secret) never appear in `Debug` output, errors or logs: URLs are shown as
//! `scheme://host:port/…` ([`redacted_url`]) and secrets as `<redacted>` ([`Secret`]).

mod email;
mod event;
mod secret;
mod slack;
mod stdout;
mod webhook;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use holdfast_store::watch::MAX_NAME_BYTES;
use reqwest::Url;
use serde::Deserialize;
use thiserror::Error;

use crate::alert::Severity;
use crate::respond::{RESPONDER_SINK, Responder};

pub use email::{EmailSink, message_id};
pub use event::SinkEvent;
pub use secret::Secret;
pub use slack::{SlackSink, slack_payload};
pub use stdout::{StdoutSink, json_line};
pub use webhook::{
    SIGNATURE_HEADER, SignatureError, WebhookSink, sign, verify_signature, webhook_body,
};

/// One `[[sink]]` of the watch file, as written (validated by `Sink::from_spec`).
/// Secrets are never in the file: `secret_env` / `password_env` name environment variables.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkSpec {
    Webhook {
        name: String,
        url: String,
        /// The environment variable holding the HMAC-SHA256 key.
        secret_env: Option<String>,
        min_severity: Option<String>,
    },
    Slack {
        name: String,
        url: String,
        min_severity: Option<String>,
    },
    Email {
        name: String,
        /// `smtp://host:port` (STARTTLS when the server offers it) or `smtps://host:port`.
        server: String,
        from: String,
        to: Vec<String>,
        username: Option<String>,
        password_env: Option<String>,
        min_severity: Option<String>,
        /// A PEM file of extra root certificates to trust for the server's TLS (an internal
        /// relay with its own CA); the Mozilla roots are trusted either way.
        #[serde(default)]
        tls_ca_file: Option<String>,
    },
    Stdout {
        name: String,
        min_severity: Option<String>,
    },
}

impl SinkSpec {
    pub fn name(&self) -> &str {
        match self {
            SinkSpec::Webhook { name, .. }
            | SinkSpec::Slack { name, .. }
            | SinkSpec::Email { name, .. }
            | SinkSpec::Stdout { name, .. } => name,
        }
    }

    fn min_severity(&self) -> Option<&str> {
        match self {
            SinkSpec::Webhook { min_severity, .. }
            | SinkSpec::Slack { min_severity, .. }
            | SinkSpec::Email { min_severity, .. }
            | SinkSpec::Stdout { min_severity, .. } => min_severity.as_deref(),
        }
    }
}

/// A sink's configuration that cannot work: names the sink, the field, the value (never a
/// secret: URLs are redacted) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("sink {sink:?}: {field} {value}: {expected}")]
pub struct SinkConfigError {
    pub sink: String,
    pub field: &'static str,
    pub value: String,
    pub expected: String,
}

impl SinkConfigError {
    fn new(sink: &str, field: &'static str, value: impl Into<String>, expected: &str) -> Self {
        SinkConfigError {
            sink: sink.to_owned(),
            field,
            value: value.into(),
            expected: expected.to_owned(),
        }
    }
}

/// Why one delivery attempt failed. Every failure is retried by the deliverer (a sink that
/// refuses is misconfigured or down; the alert waits in the outbox until it accepts).
#[derive(Debug, Error)]
pub enum SendError {
    /// Connecting, TLS, sending or reading the answer failed (the URL is not in the error).
    #[error("sink {sink:?}: POST {url}: {source}")]
    Http {
        sink: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The receiver answered with a status other than 2xx.
    #[error("sink {sink:?}: POST {url}: answered {status}")]
    Status {
        sink: String,
        url: String,
        status: u16,
    },
    /// The SMTP server refused or the connection failed.
    #[error("sink {sink:?}: SMTP {server}: {source}")]
    Smtp {
        sink: String,
        server: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// The e-mail could not be built (an address or header the builder refused).
    #[error("sink {sink:?}: building the e-mail: {source}")]
    Email {
        sink: String,
        #[source]
        source: lettre::error::Error,
    },
    #[error("sink {sink:?}: writing to stdout: {source}")]
    Stdout {
        sink: String,
        #[source]
        source: std::io::Error,
    },
    /// A response (freeze, label, notify) failed.
    #[error("{sink}: {source}")]
    Respond {
        sink: String,
        #[source]
        source: crate::respond::RespondError,
    },
    /// The attempt did not finish within the deliverer's attempt timeout.
    #[error("sink {sink:?}: no answer within {timeout:?}")]
    Timeout { sink: String, timeout: Duration },
}

/// The sink's host did not answer a TCP connection at start.
#[derive(Debug, Error)]
#[error("sink {sink:?}: {target} did not accept a connection within {timeout:?}: {reason}")]
pub struct ProbeError {
    pub sink: String,
    /// `host:port` (never the URL's path or query).
    pub target: String,
    pub timeout: Duration,
    pub reason: String,
}

/// The kind of sink and its validated settings.
#[derive(Debug, Clone)]
pub enum SinkTarget {
    Webhook(WebhookSink),
    Slack(SlackSink),
    Email(EmailSink),
    Stdout(StdoutSink),
    /// The rules' responses (freeze, label, notify): not a `[[sink]]` of the file, added by
    /// the runner so responses get the outbox's guarantees.
    Respond(Arc<Responder>),
}

impl SinkTarget {
    pub const fn kind(&self) -> &'static str {
        match self {
            SinkTarget::Webhook(_) => "webhook",
            SinkTarget::Slack(_) => "slack",
            SinkTarget::Email(_) => "email",
            SinkTarget::Stdout(_) => "stdout",
            SinkTarget::Respond(_) => "responder",
        }
    }
}

/// What a sink's name must be: it keys the sink's delivery cursor in the watch store, which
/// takes 1 to [`MAX_NAME_BYTES`] printable ASCII characters without spaces (any other name
/// could never read or write its cursor: the sink would never deliver and no prune would
/// run), and names starting with `holdfast:` are the watch's own (the responder's cursor,
/// [`RESPONDER_SINK`]: a sink sharing it would move it past responses not yet run).
pub const SINK_NAME_EXPECTED: &str = "1 to 200 printable ASCII characters without spaces, not starting with \"holdfast:\" (the name keys the sink's delivery cursor)";

const _: () = assert!(MAX_NAME_BYTES == 200, "SINK_NAME_EXPECTED says 200");

/// The prefix of the cursor names the watch keeps for itself.
pub const RESERVED_PREFIX: &str = "holdfast:";

/// Whether `name` can key a sink's delivery cursor ([`SINK_NAME_EXPECTED`]).
pub fn keys_a_cursor(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name.bytes().all(|b| b.is_ascii_graphic())
        && !name.starts_with(RESERVED_PREFIX)
}

/// A validated sink.
#[derive(Debug, Clone)]
pub struct Sink {
    name: String,
    min_severity: Severity,
    target: SinkTarget,
}

impl Sink {
    /// Validates one spec. `env` looks up environment variables (the binary passes
    /// `|k| std::env::var(k).ok()`; the library reads no environment itself).
    pub fn from_spec(
        spec: &SinkSpec,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Sink, SinkConfigError> {
        let name = spec.name();
        if !keys_a_cursor(name) {
            return Err(SinkConfigError::new(
                name,
                "name",
                format!("{name:?}"),
                SINK_NAME_EXPECTED,
            ));
        }
        let min_severity = match spec.min_severity() {
            None => Severity::Info,
            Some(s) => Severity::parse(s).ok_or_else(|| {
                SinkConfigError::new(
                    name,
                    "min_severity",
                    format!("{s:?}"),
                    "one of info, low, medium, high, critical",
                )
            })?,
        };
        let target = match spec {
            SinkSpec::Webhook {
                url, secret_env, ..
            } => {
                let url = http_url(name, "url", url)?;
                let secret = secret_env
                    .as_deref()
                    .map(|var| secret_from_env(name, "secret_env", var, env))
                    .transpose()?;
                SinkTarget::Webhook(WebhookSink::new(name, url, secret)?)
            }
            SinkSpec::Slack { url, .. } => {
                SinkTarget::Slack(SlackSink::new(name, http_url(name, "url", url)?)?)
            }
            SinkSpec::Email {
                server,
                from,
                to,
                username,
                password_env,
                tls_ca_file,
                ..
            } => SinkTarget::Email(email::from_spec(
                name,
                email::EmailSpec {
                    server,
                    from,
                    to,
                    username: username.as_deref(),
                    password_env: password_env.as_deref(),
                    tls_ca_file: tls_ca_file.as_deref(),
                },
                env,
            )?),
            SinkSpec::Stdout { .. } => SinkTarget::Stdout(StdoutSink::new(name)),
        };
        Ok(Sink {
            name: name.to_owned(),
            min_severity,
            target,
        })
    }

    /// Validates every spec of a watch file; names must be unique (each keys its own
    /// delivery cursor in the outbox).
    pub fn from_specs(
        specs: &[SinkSpec],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<Sink>, SinkConfigError> {
        let mut seen = HashSet::new();
        let mut sinks = Vec::with_capacity(specs.len());
        for spec in specs {
            if !seen.insert(spec.name()) {
                return Err(SinkConfigError::new(
                    spec.name(),
                    "name",
                    format!("{:?}", spec.name()),
                    "a name no other sink has (each keys its own delivery cursor)",
                ));
            }
            sinks.push(Sink::from_spec(spec, env)?);
        }
        Ok(sinks)
    }

    /// The responder, delivered to like a sink (cursor [`RESPONDER_SINK`]).
    pub fn responder(responder: Arc<Responder>) -> Sink {
        Sink {
            name: RESPONDER_SINK.to_owned(),
            min_severity: Severity::Info,
            target: SinkTarget::Respond(responder),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Events of alerts below this severity are not sent (their cursor still moves).
    pub fn min_severity(&self) -> Severity {
        self.min_severity
    }

    pub fn target(&self) -> &SinkTarget {
        &self.target
    }

    /// Whether this sink sends `event` (its alert's severity is at least
    /// [`Sink::min_severity`]; an event whose body is not a readable alert is always sent).
    pub fn wants(&self, event: &SinkEvent) -> bool {
        event
            .decoded
            .as_ref()
            .is_none_or(|a| a.severity >= self.min_severity)
    }

    /// Delivers one event. `Ok` means the sink accepted it (2xx, SMTP `250`, written).
    pub async fn send(&self, event: &SinkEvent) -> Result<(), SendError> {
        match &self.target {
            SinkTarget::Webhook(w) => w.send(event).await,
            SinkTarget::Slack(s) => s.send(event).await,
            SinkTarget::Email(e) => e.send(event).await,
            SinkTarget::Stdout(s) => s.send(event).await,
            SinkTarget::Respond(r) => {
                r.handle(event)
                    .await
                    .map(|_| ())
                    .map_err(|source| SendError::Respond {
                        sink: self.name.clone(),
                        source,
                    })
            }
        }
    }

    /// Connects to the sink's host within `timeout` (stdout: always fine). Meant for a
    /// warning at start: an unreachable sink does not stop the watch, its alerts wait in
    /// the outbox.
    pub async fn probe(&self, timeout: Duration) -> Result<(), ProbeError> {
        let (host, port) = match &self.target {
            SinkTarget::Webhook(w) => host_port(w.url()),
            SinkTarget::Slack(s) => host_port(s.url()),
            SinkTarget::Email(e) => (e.host().to_owned(), e.port()),
            SinkTarget::Stdout(_) | SinkTarget::Respond(_) => return Ok(()),
        };
        let target = format!("{host}:{port}");
        let fail = |reason: String| ProbeError {
            sink: self.name.clone(),
            target: target.clone(),
            timeout,
            reason,
        };
        match tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(fail(e.to_string())),
            Err(_) => Err(fail("timed out".to_owned())),
        }
    }
}

/// Probes every sink at once (each within `timeout`) and logs a warning for each that does
/// not answer; returns those. Never fails the start: their alerts wait in the outbox.
pub async fn probe_all(sinks: &[Sink], timeout: Duration) -> Vec<ProbeError> {
    let probes = sinks.iter().map(|s| s.probe(timeout));
    let mut unreachable = Vec::new();
    for result in futures_util::future::join_all(probes).await {
        if let Err(e) = result {
            tracing::warn!(target: "watch::sink", sink = %e.sink, target_addr = %e.target, error = %e, "sink unreachable at start; its alerts wait in the outbox until it answers");
            unreachable.push(e);
        }
    }
    unreachable
}

fn host_port(url: &Url) -> (String, u16) {
    let host = url.host_str().unwrap_or_default().to_owned();
    // http_url checked the scheme, so a known default port exists.
    (host, url.port_or_known_default().unwrap_or(443))
}

/// A URL as it may be shown: scheme, host and port, never userinfo, path or query (a Slack
/// webhook's path is its secret; other receivers put tokens in queries).
pub fn redacted_url(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(p) => format!("{}://{host}:{p}/…", url.scheme()),
        None => format!("{}://{host}/…", url.scheme()),
    }
}

fn http_url(sink: &str, field: &'static str, raw: &str) -> Result<Url, SinkConfigError> {
    let url = Url::parse(raw).map_err(|e| {
        // The text itself is not echoed: it may hold the secret path of a Slack webhook.
        SinkConfigError::new(
            sink,
            field,
            format!("(not shown, {} characters)", raw.chars().count()),
            &format!("an absolute http:// or https:// URL ({e})"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(SinkConfigError::new(
            sink,
            field,
            format!("with scheme {:?}", url.scheme()),
            "an http:// or https:// URL",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(SinkConfigError::new(
            sink,
            field,
            redacted_url(&url),
            "a URL with a host",
        ));
    }
    Ok(url)
}

fn secret_from_env(
    sink: &str,
    field: &'static str,
    var: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, SinkConfigError> {
    if var.is_empty() {
        return Err(SinkConfigError::new(
            sink,
            field,
            "\"\"",
            "the name of an environment variable",
        ));
    }
    match env(var) {
        Some(v) if !v.is_empty() => Ok(Secret::new(v)),
        Some(_) => Err(SinkConfigError::new(
            sink,
            field,
            format!("{var:?}"),
            "an environment variable that is set and not empty (it is empty)",
        )),
        None => Err(SinkConfigError::new(
            sink,
            field,
            format!("{var:?}"),
            "an environment variable that is set and not empty (it is not set)",
        )),
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod tests_support {
    pub(crate) use super::tests::{alert, outbox_event};
}
