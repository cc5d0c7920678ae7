//! Where alerts go: a generic webhook (JSON, HMAC-SHA256 signature, idempotency key), a
//! Slack-compatible incoming webhook, email over SMTP, and JSON lines on stdout.

use serde::Deserialize;

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
}
