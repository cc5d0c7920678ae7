//! The responses a rule starts, run from the outbox so that none is lost: a crash after
//! the alert's commit and before its response resumes at the responder's cursor and runs it
//! again (each response is idempotent: freezing a frozen wallet, adding a label already
//! there, rewriting a freeze request with the same content).
//!
//! - `freeze`: the guard service's emergency freeze of each watched wallet the alert names
//!   ([`Involvement::Watched`]), in-process or through the API with an operator token
//!   ([`Freezer`]).
//! - `label`: `tainted` labels for every suspect the alert names ([`Involvement::Suspect`])
//!   written into intel's imported labels, then intel reloaded ([`Labeler`]), so screening
//!   and the guard refuse them at once.
//! - `notify`: the alert's freeze request (a tainted deposit's evidence) written as a file
//!   per alert for the team that contacts the exchange; it also travels to every sink inside
//!   the alert.
//! - `trace` is not here: it changes the watch's state, so it is applied in the block's
//!   commit by the engine.
//!
//! The responder is delivered to like a sink (`Sink::responder`, cursor
//! [`RESPONDER_SINK`]): in order, retried with backoff until it succeeds.
//!
//! A retraction undoes nothing: a freeze is lifted by people (the guard's quorum), a label
//! is removed by an operator.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use alloy_primitives::Address;
use holdfast_intel::{DataDir, LabelRecord};
use holdfast_primitives::{Category, Confidence};
use holdfast_store::watch::AlertEventKind;

use crate::alert::{Alert, Involvement};
use crate::sink::SinkEvent;

/// The responder's cursor name in the outbox.
pub const RESPONDER_SINK: &str = "holdfast:responder";

/// A boxed future (the seams are object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Freezes a wallet in the guard service.
pub trait Freezer: Send + Sync + std::fmt::Debug {
    fn freeze(&self, wallet: Address, reason: String) -> BoxFuture<'_, Result<(), String>>;
}

/// The guard service's freeze through its API (`POST /v1/guard/freeze`, operator token).
pub struct HttpFreezer {
    url: String,
    token: String,
    client: reqwest::Client,
}

impl std::fmt::Debug for HttpFreezer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFreezer")
            .field("url", &holdfast_chain::source::redact(&self.url))
            .field("token", &"<redacted>")
            .finish()
    }
}

impl HttpFreezer {
    /// `base`: the server's URL (`http://127.0.0.1:8080`).
    pub fn new(base: &str, token: String) -> Result<HttpFreezer, String> {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(HttpFreezer {
            url: format!("{}/v1/guard/freeze", base.trim_end_matches('/')),
            token,
            client,
        })
    }
}

impl Freezer for HttpFreezer {
    fn freeze(&self, wallet: Address, reason: String) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let r = self
                .client
                .post(&self.url)
                .bearer_auth(&self.token)
                .json(&serde_json::json!({"wallet": wallet, "reason": reason}))
                .send()
                .await
                .map_err(|e| format!("freeze request to the guard service failed: {e}"))?;
            if r.status().is_success() {
                Ok(())
            } else {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                Err(format!(
                    "the guard service refused the freeze ({status}): {}",
                    body.chars().take(500).collect::<String>()
                ))
            }
        })
    }
}

/// Writes labels into intel and makes them take effect.
pub struct Labeler {
    pub dir: DataDir,
    /// Reloads intel wherever it is read (the watch's own view, the server's).
    pub reload: Arc<dyn Fn() -> Result<(), String> + Send + Sync>,
}

impl std::fmt::Debug for Labeler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Labeler")
            .field("dir", &self.dir.root())
            .finish()
    }
}

/// Confidence of the watch's labels: an alert is an inference from chain data, like a
/// trace's (`holdfast_trace::labels::TAINTED_CONFIDENCE`).
pub const WATCH_LABEL_CONFIDENCE: Confidence = holdfast_trace::labels::TAINTED_CONFIDENCE;

/// Runs the responses of raised alerts.
#[derive(Debug, Default)]
pub struct Responder {
    pub freezer: Option<Arc<dyn Freezer>>,
    pub labeler: Option<Labeler>,
    /// Where `notify` writes freeze requests (`<dir>/<alert id>.json`).
    pub notify_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum RespondError {
    #[error("alert {id}: its body does not decode: {source}")]
    Body {
        id: String,
        source: serde_json::Error,
    },
    #[error("alert {id}: freeze of {wallet}: {reason}")]
    Freeze {
        id: String,
        wallet: Address,
        reason: String,
    },
    #[error("alert {id}: label: {reason}")]
    Label { id: String, reason: String },
    #[error("alert {id}: notify: writing {path}: {source}")]
    Notify {
        id: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RespondError {
    /// Whether trying again may help (a guard service or disk that is back).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, RespondError::Body { .. })
    }
}

/// What one event's responses did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Responded {
    pub frozen: Vec<Address>,
    pub labelled: usize,
    pub notified: Option<PathBuf>,
}

impl Responder {
    /// Runs the responses of one outbox event (only `raised` events have any). A response the
    /// rule asks for but this responder is not set up for is logged as an error once per
    /// event and skipped (the configuration check refuses such a watch file at start).
    pub async fn handle(&self, event: &SinkEvent) -> Result<Responded, RespondError> {
        let mut done = Responded::default();
        if event.kind != AlertEventKind::Raised {
            return Ok(done);
        }
        let alert: Alert =
            serde_json::from_value(event.alert.clone()).map_err(|source| RespondError::Body {
                id: event.alert_id.clone(),
                source,
            })?;
        let wants = |r: &str| alert.responses.iter().any(|x| x == r);
        if wants("freeze") {
            match &self.freezer {
                Some(f) => {
                    for a in alert
                        .addresses
                        .iter()
                        .filter(|a| a.involvement == Involvement::Watched)
                    {
                        let reason = format!("watch alert {}: {}", alert.id, alert.title);
                        f.freeze(a.address, reason).await.map_err(|reason| {
                            RespondError::Freeze {
                                id: alert.id.clone(),
                                wallet: a.address,
                                reason,
                            }
                        })?;
                        tracing::warn!(target: "watch::respond", alert = %alert.id, wallet = %a.address, "guard frozen for the wallet");
                        done.frozen.push(a.address);
                    }
                }
                None => {
                    tracing::error!(target: "watch::respond", alert = %alert.id, "rule asks for freeze but no guard service is configured")
                }
            }
        }
        if wants("label") {
            match &self.labeler {
                Some(l) => {
                    let records = suspect_labels(&alert);
                    if !records.is_empty() {
                        l.dir
                            .add_imported(&records)
                            .map_err(|e| RespondError::Label {
                                id: alert.id.clone(),
                                reason: e.to_string(),
                            })?;
                        (l.reload)().map_err(|reason| RespondError::Label {
                            id: alert.id.clone(),
                            reason,
                        })?;
                        done.labelled = records.len();
                    }
                }
                None => {
                    tracing::error!(target: "watch::respond", alert = %alert.id, "rule asks for label but no intel directory is configured")
                }
            }
        }
        if wants("notify") && !alert.evidence.is_null() {
            match &self.notify_dir {
                Some(dir) => {
                    let path = dir.join(format!("{}.json", alert.id));
                    let io = |source| RespondError::Notify {
                        id: alert.id.clone(),
                        path: path.clone(),
                        source,
                    };
                    std::fs::create_dir_all(dir).map_err(io)?;
                    let body = serde_json::to_vec_pretty(&alert.evidence).unwrap_or_default();
                    let tmp = path.with_extension("json.tmp");
                    std::fs::write(&tmp, body).map_err(io)?;
                    std::fs::rename(&tmp, &path).map_err(io)?;
                    tracing::warn!(target: "watch::respond", alert = %alert.id, path = %path.display(), "freeze request written");
                    done.notified = Some(path);
                }
                None => {
                    tracing::error!(target: "watch::respond", alert = %alert.id, "rule asks for notify but no directory for freeze requests is configured")
                }
            }
        }
        Ok(done)
    }
}

/// `tainted` labels for the alert's suspects.
pub fn suspect_labels(alert: &Alert) -> Vec<LabelRecord> {
    alert
        .addresses
        .iter()
        .filter(|a| a.involvement == Involvement::Suspect)
        .map(|a| {
            let mut r = LabelRecord::new(
                a.address.to_checksum(None),
                format!("watch:{}", alert.rule),
                Category::Tainted,
                WATCH_LABEL_CONFIDENCE,
            );
            r.name = Some(format!(
                "{} in watch alert {}: {}",
                a.role, alert.id, alert.title
            ));
            r.uid = Some(alert.id.clone());
            r
        })
        .collect()
}
