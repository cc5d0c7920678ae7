//! E-mail over SMTP (lettre, on tokio, TLS by rustls): one plain-text message per event,
//! subject `[Holdfast CRITICAL] <title>` (`Retracted:` / `Confirmed:` before the title for
//! the later events), body with the summary, facts, addresses and labels, links and where
//! the alert comes from. The Message-ID derives from the idempotency key
//! (`<hf-….retracted@holdfast>`), so a mail system that dedups by Message-ID drops a
//! redelivery, and the later events thread under the raise (`In-Reply-To`).
//!
//! `smtp://host[:port]` (default 587) upgrades with STARTTLS when the server offers it, and
//! requires it when a user name and password are configured (a password never crosses in
//! the clear); `smtps://host[:port]` (default 465) is TLS from the first byte.

use std::fmt;
use std::fmt::Write as _;
use std::time::Duration;

use holdfast_store::watch::AlertEventKind;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use reqwest::Url;

use super::{SendError, SinkConfigError, SinkEvent, secret_from_env};

/// An e-mail sink.
#[derive(Clone)]
pub struct EmailSink {
    name: String,
    host: String,
    port: u16,
    implicit_tls: bool,
    from: Mailbox,
    to: Vec<Mailbox>,
    authenticated: bool,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl fmt::Debug for EmailSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSink")
            .field("name", &self.name)
            .field("server", &self.server())
            .field("from", &self.from.to_string())
            .field(
                "to",
                &self.to.iter().map(ToString::to_string).collect::<Vec<_>>(),
            )
            .field("authenticated", &self.authenticated)
            .finish_non_exhaustive()
    }
}

/// The e-mail fields of a [`super::SinkSpec::Email`].
pub(super) struct EmailSpec<'a> {
    pub server: &'a str,
    pub from: &'a str,
    pub to: &'a [String],
    pub username: Option<&'a str>,
    pub password_env: Option<&'a str>,
    pub tls_ca_file: Option<&'a str>,
}

pub(super) fn from_spec(
    sink: &str,
    spec: EmailSpec<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<EmailSink, SinkConfigError> {
    let EmailSpec {
        server,
        from,
        to,
        username,
        password_env,
        tls_ca_file,
    } = spec;
    let err = |field: &'static str, value: String, expected: &str| SinkConfigError {
        sink: sink.to_owned(),
        field,
        value,
        expected: expected.to_owned(),
    };
    let url = Url::parse(server).map_err(|e| {
        err(
            "server",
            format!("{server:?}"),
            &format!("smtp://host:port or smtps://host:port ({e})"),
        )
    })?;
    let implicit_tls = match url.scheme() {
        "smtp" => false,
        "smtps" => true,
        other => {
            return Err(err(
                "server",
                format!("{server:?}"),
                &format!("scheme smtp or smtps, not {other:?}"),
            ));
        }
    };
    if url.password().is_some() || !url.username().is_empty() {
        return Err(err(
            "server",
            "(not shown: it holds credentials)".to_owned(),
            "smtp://host:port without user or password (use username and password_env)",
        ));
    }
    let host = match url.host_str() {
        Some(h) if !h.is_empty() => h.trim_matches(['[', ']']).to_owned(),
        _ => return Err(err("server", format!("{server:?}"), "a server with a host")),
    };
    let port = url.port().unwrap_or(if implicit_tls { 465 } else { 587 });
    let from: Mailbox = from.parse().map_err(|e| {
        err(
            "from",
            format!("{from:?}"),
            &format!("an e-mail address ({e})"),
        )
    })?;
    if to.is_empty() {
        return Err(err("to", "[]".to_owned(), "at least one e-mail address"));
    }
    let to = to
        .iter()
        .map(|t| {
            t.parse::<Mailbox>()
                .map_err(|e| err("to", format!("{t:?}"), &format!("an e-mail address ({e})")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let credentials = match (username, password_env) {
        (None, None) => None,
        (Some(user), Some(var)) => Some(Credentials::new(
            user.to_owned(),
            secret_from_env(sink, "password_env", var, env)?
                .expose()
                .to_owned(),
        )),
        (Some(user), None) => {
            return Err(err(
                "password_env",
                format!("(missing, username {user:?} given)"),
                "the environment variable holding the SMTP password",
            ));
        }
        (None, Some(var)) => {
            return Err(err(
                "username",
                format!("(missing, password_env {var:?} given)"),
                "the SMTP user name that goes with the password",
            ));
        }
    };
    let mut tls_builder = TlsParameters::builder(host.clone());
    if let Some(path) = tls_ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            err(
                "tls_ca_file",
                format!("{path:?}"),
                &format!("a readable PEM file of root certificates ({e})"),
            )
        })?;
        let cert = Certificate::from_pem(&pem).map_err(|e| {
            err(
                "tls_ca_file",
                format!("{path:?}"),
                &format!("PEM certificates ({e})"),
            )
        })?;
        tls_builder = tls_builder.add_root_certificate(cert);
    }
    let tls_params = tls_builder.build().map_err(|e| {
        err(
            "server",
            format!("{server:?}"),
            &format!("a host name TLS can verify ({e})"),
        )
    })?;
    // With credentials, STARTTLS is required: a password never crosses in the clear, even
    // to a server (or a man in the middle) that does not offer STARTTLS.
    let tls = match (implicit_tls, credentials.is_some()) {
        (true, _) => Tls::Wrapper(tls_params),
        (false, true) => Tls::Required(tls_params),
        (false, false) => Tls::Opportunistic(tls_params),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
        .port(port)
        .tls(tls)
        .timeout(Some(Duration::from_secs(30)));
    let authenticated = credentials.is_some();
    if let Some(c) = credentials {
        builder = builder.credentials(c);
    }
    Ok(EmailSink {
        name: sink.to_owned(),
        host,
        port,
        implicit_tls,
        from,
        to,
        authenticated,
        transport: builder.build(),
    })
}

impl EmailSink {
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://host:port` or `smtps://host:port`.
    pub fn server(&self) -> String {
        let scheme = if self.implicit_tls { "smtps" } else { "smtp" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }

    /// The message for `event` (public for tests and previews).
    pub fn message(&self, event: &SinkEvent) -> Result<Message, SendError> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(subject(event))
            .message_id(Some(message_id(&event.key)))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            b = b.to(to.clone());
        }
        if event.kind != AlertEventKind::Raised {
            let parent = message_id(&event.alert_id);
            b = b.in_reply_to(parent.clone()).references(parent);
        }
        b.body(body(event)).map_err(|source| SendError::Email {
            sink: self.name.clone(),
            source,
        })
    }

    pub(super) async fn send(&self, event: &SinkEvent) -> Result<(), SendError> {
        let message = self.message(event)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|source| SendError::Smtp {
                sink: self.name.clone(),
                server: self.server(),
                source,
            })
    }
}

/// The Message-ID for an idempotency key: `<key@holdfast>`, with `:` (not allowed in a
/// message id) written `.`.
pub fn message_id(key: &str) -> String {
    let local: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '.'
            }
        })
        .collect();
    format!("<{local}@holdfast>")
}

fn subject(event: &SinkEvent) -> String {
    let what = match event.kind {
        AlertEventKind::Raised => "",
        AlertEventKind::Retracted => "Retracted: ",
        AlertEventKind::Confirmed => "Confirmed: ",
    };
    let title: String = event.title().chars().filter(|c| !c.is_control()).collect();
    format!("[Holdfast {}] {what}{title}", event.severity_label())
}

fn body(event: &SinkEvent) -> String {
    let mut s = String::new();
    let Some(a) = &event.decoded else {
        let _ = writeln!(
            s,
            "Alert {} ({}): its body is not a readable alert; as stored:\n\n{}\n\nKey: {}",
            event.alert_id,
            event.event_name(),
            event.alert,
            event.key
        );
        return s;
    };
    match event.kind {
        AlertEventKind::Retracted => s.push_str(
            "RETRACTED: the block that carried this alert was unwound by a reorg; what it reported is no longer on the chain.\n\n",
        ),
        AlertEventKind::Confirmed => s.push_str(
            "CONFIRMED: the block that carried this alert is now deep enough to be final.\n\n",
        ),
        AlertEventKind::Raised if a.confirmations == 0 => s.push_str(
            "Raised at 0 confirmations: the block may still be unwound (a retraction follows if it is).\n\n",
        ),
        AlertEventKind::Raised => {}
    }
    let _ = writeln!(s, "{}\n\n{}\n", a.title, a.summary);
    if !a.facts.is_empty() {
        s.push_str("Facts\n");
        for f in &a.facts {
            let _ = writeln!(s, "  {}: {}", f.name, f.value);
        }
        s.push('\n');
    }
    if !a.addresses.is_empty() {
        s.push_str("Addresses\n");
        for n in &a.addresses {
            let labels = if n.labels.is_empty() {
                "no labels".to_owned()
            } else {
                n.labels.join("; ")
            };
            let _ = writeln!(s, "  {} {} ({labels})", n.address, n.role);
        }
        s.push('\n');
    }
    if !a.links.is_empty() {
        s.push_str("Links\n");
        for l in &a.links {
            let _ = writeln!(s, "  {}: {}", l.name, l.url);
        }
        s.push('\n');
    }
    if !a.evidence.is_null() {
        let pretty = serde_json::to_string_pretty(&a.evidence).unwrap_or_default();
        let _ = writeln!(s, "Evidence\n{pretty}\n");
    }
    let _ = writeln!(
        s,
        "Chain {} ({}), block {} {}",
        a.chain, a.chain_id, a.block_number, a.block_hash
    );
    if let Some(tx) = a.tx_hash {
        let _ = writeln!(s, "Transaction {tx}");
    }
    let _ = writeln!(
        s,
        "Rule {} (detector {}), severity {}, {} confirmations when raised",
        a.rule,
        a.detector.name(),
        a.severity.name(),
        a.confirmations
    );
    if !a.responses.is_empty() {
        let _ = writeln!(s, "Responses: {}", a.responses.join(", "));
    }
    let _ = writeln!(s, "Alert {}, key {}", a.id, event.key);
    s
}
