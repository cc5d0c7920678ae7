//! The generic webhook: `POST` of a JSON body
//! `{"event":"raised|retracted|confirmed","key":…,"seq":…,"alert":{…}}` with the headers
//! `Idempotency-Key: <key>` and, when a secret is configured,
//! `X-Holdfast-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
//!
//! Receivers verify the signature over the exact bytes received ([`verify_signature`]) and
//! refuse a timestamp too far from their clock (a replayed request), then dedup by the key:
//! delivery is at least once.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use reqwest::Url;
use sha2::Sha256;
use thiserror::Error;

use super::{SendError, SinkConfigError, SinkEvent, redacted_url, secret::Secret};

/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "X-Holdfast-Signature";

type HmacSha256 = Hmac<Sha256>;

pub(super) const USER_AGENT: &str = concat!("holdfast-watch/", env!("CARGO_PKG_VERSION"));

/// A webhook sink.
#[derive(Clone)]
pub struct WebhookSink {
    name: String,
    url: Url,
    secret: Option<Secret>,
    client: reqwest::Client,
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSink")
            .field("name", &self.name)
            .field("url", &redacted_url(&self.url))
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

/// The HTTP client of one sink (its own connection pool, so a stuck receiver holds no
/// connection another sink needs). Redirects are not followed: a signed POST goes where it
/// was configured to go, and a 3xx is a failure to fix in the configuration.
pub(super) fn http_client(sink: &str, url: &Url) -> Result<reqwest::Client, SinkConfigError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| SinkConfigError {
            sink: sink.to_owned(),
            field: "url",
            value: redacted_url(url),
            expected: format!(
                "a URL an HTTP client can be built for ({})",
                e.without_url()
            ),
        })
}

impl WebhookSink {
    pub(super) fn new(
        name: &str,
        url: Url,
        secret: Option<Secret>,
    ) -> Result<WebhookSink, SinkConfigError> {
        let client = http_client(name, &url)?;
        Ok(WebhookSink {
            name: name.to_owned(),
            url,
            secret,
            client,
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn has_secret(&self) -> bool {
        self.secret.is_some()
    }

    pub(super) async fn send(&self, event: &SinkEvent) -> Result<(), SendError> {
        let body = webhook_body(event);
        let mut req = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", &event.key)
            .header(reqwest::header::USER_AGENT, USER_AGENT);
        if let Some(secret) = &self.secret {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            req = req.header(SIGNATURE_HEADER, sign(secret.expose().as_bytes(), t, &body));
        }
        post(&self.name, &self.url, req.body(body)).await
    }
}

/// Sends a prepared POST; `Ok` on a 2xx answer.
pub(super) async fn post(
    sink: &str,
    url: &Url,
    req: reqwest::RequestBuilder,
) -> Result<(), SendError> {
    let resp = req.send().await.map_err(|e| SendError::Http {
        sink: sink.to_owned(),
        url: redacted_url(url),
        source: e.without_url(),
    })?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(SendError::Status {
            sink: sink.to_owned(),
            url: redacted_url(url),
            status: status.as_u16(),
        })
    }
}

/// The webhook's body for `event` (the exact bytes that are signed), fields in this order:
/// `event`, `key`, `seq`, `alert`.
pub fn webhook_body(event: &SinkEvent) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        event: &'a str,
        key: &'a str,
        seq: u64,
        alert: &'a serde_json::Value,
    }
    let body = Body {
        event: event.event_name(),
        key: &event.key,
        seq: event.seq,
        alert: &event.alert,
    };
    // Strings, a number and a `Value` always serialize.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The signature header's value: `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
    format!(
        "t={t},v1={}",
        hex::encode(mac(secret, t, body).finalize().into_bytes())
    )
}

fn mac(secret: &[u8], t: u64, body: &[u8]) -> HmacSha256 {
    #[allow(clippy::expect_used)]
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// Why a webhook signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    #[error("signature header {0:?} is not `t=<unix seconds>,v1=<hex>`")]
    Malformed(String),
    #[error(
        "signature timestamp {t} is {skew} s away from now ({now}); at most {tolerance} s allowed"
    )]
    Stale {
        t: u64,
        now: u64,
        skew: u64,
        tolerance: u64,
    },
    #[error("signature does not match the body")]
    Mismatch,
}

/// Verifies a signature header as a receiver would: the HMAC over `"<t>.<body>"` matches
/// (constant-time comparison) and `t` is within `tolerance_secs` of `now` (a captured
/// request replayed later is refused; dedup by the idempotency key covers replays inside the
/// window).
pub fn verify_signature(
    header: &str,
    secret: &[u8],
    body: &[u8],
    now: u64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    let malformed = || SignatureError::Malformed(header.to_owned());
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse::<u64>().map_err(|_| malformed())?),
            Some(("v1", v)) => v1 = Some(hex::decode(v).map_err(|_| malformed())?),
            _ => return Err(malformed()),
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return Err(malformed());
    };
    let skew = now.abs_diff(t);
    if skew > tolerance_secs {
        return Err(SignatureError::Stale {
            t,
            now,
            skew,
            tolerance: tolerance_secs,
        });
    }
    mac(secret, t, body)
        .verify_slice(&v1)
        .map_err(|_| SignatureError::Mismatch)
}
