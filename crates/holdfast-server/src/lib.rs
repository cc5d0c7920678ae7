//! Holdfast's HTTP API.
//!
//! - [`router`]: every route, given an [`AppState`]; tests drive it with `oneshot`.
//! - [`serve`]: serves until the shutdown future resolves, reloads intel on SIGHUP; every
//!   connection bounded by [`Limits`] (header, body and write timeouts, a connection cap
//!   shared with the firewall), see [`serve::serve_router`].
//! - [`firewall`]: the JSON-RPC firewall in front of a node.
//! - [`console`]: the web console at `/` (server-rendered pages, sessions, CSRF, CSP).
//! - [`alerts`]: the watch's alerts (list, acknowledge, live stream), when a watch store is
//!   configured ([`AppState::with_watch`]).
//! - [`AppState`]: the intel behind an `ArcSwap` (a reload swaps the whole index at once:
//!   a request sees the old index or the new one, never a mix), metrics, limits, admin token.
//! - [`error::ApiError`]: every error answer, as JSON naming the field; internals are logged
//!   once here and never sent to clients.

pub mod alerts;
mod body;
pub mod console;
pub mod error;
pub mod firewall;
pub mod guard;
mod metrics;
mod openapi;
mod routes;
pub mod serve;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use holdfast_intel::{IntelError, IntelIndex, Loaded};

pub use body::BodyError;
pub use metrics::Metrics;
pub use openapi::openapi;
pub use routes::{ROUTES, router};
pub use serve::{Limits, connection_cap};

/// Largest request body accepted (a full 10,000-address batch fits with room to spare).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Most addresses in one `POST /v1/screen`.
pub const MAX_BATCH: usize = 10_000;

/// Builds a fresh index (shipped intel + data directory). Runs on a blocking thread.
pub type Loader = dyn Fn() -> Result<Loaded, IntelError> + Send + Sync;

/// The current intel and when it was loaded.
#[derive(Debug)]
pub struct Intel {
    /// Shared with the watch when it runs in the server (`Arc`: no copy per reader).
    pub index: Arc<IntelIndex>,
    pub loaded_at: SystemTime,
    pub report: holdfast_intel::LoadReport,
}

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub intel: Arc<ArcSwap<Intel>>,
    loader: Arc<Loader>,
    admin_token: Option<Arc<str>>,
    pub metrics: Arc<Metrics>,
    reload_lock: Arc<tokio::sync::Mutex<()>>,
    /// The guard service, when configured (`/v1/guard/...`).
    pub gate: Option<Arc<holdfast_gate::Gate>>,
    pub rate: Arc<guard::RateLimiter>,
    /// Timeouts and the connection cap ([`serve`]); the body timeout is applied by the
    /// handlers.
    pub limits: Limits,
    /// The watch's store (`/v1/alerts...`), when configured.
    pub watch: Option<Arc<dyn holdfast_store::watch::WatchStore>>,
    /// API tokens for the token-guarded routes when no guard service is configured (the
    /// guard service's own otherwise).
    tokens: Option<Arc<holdfast_gate::GateConfig>>,
    /// The alerts' live streams: timing, count, and the signal that ends them.
    pub streams: alerts::Streams,
    /// The web console's sessions.
    pub sessions: console::Sessions,
    /// Failed console sign-ins per client address.
    pub auth_throttle: console::throttle::AuthThrottle,
    /// The transfer store traces read (the console's trace page), when configured.
    pub transfers: Option<Arc<dyn holdfast_store::Store>>,
    /// Address clusters for screening (a UTXO index, read by the caller's
    /// [`holdfast_intel::cluster::ClusterSource`]), when configured: a Bitcoin or Litecoin
    /// address's verdict then carries its cluster and inherited labels, else a note.
    pub clusters: Option<Arc<dyn holdfast_intel::cluster::ClusterSource>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("labels", &self.intel.load().index.label_count())
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Serves the guard service's routes with `gate`, each token allowed `rate` requests
    /// per second.
    pub fn with_gate(mut self, gate: Arc<holdfast_gate::Gate>, rate: f64) -> Self {
        // Console sessions live in the guard's store: shared by every instance on its
        // database, kept across restarts.
        let store: Arc<dyn holdfast_store::gate::SessionStore> = gate.store().clone();
        self.sessions = self.sessions.kept_in(store);
        self.gate = Some(gate);
        self.rate = Arc::new(guard::RateLimiter::new(rate));
        self
    }

    /// Serves the watch's alerts from `store`.
    pub fn with_watch(mut self, store: Arc<dyn holdfast_store::watch::WatchStore>) -> Self {
        self.watch = Some(store);
        self
    }

    /// The API tokens (a guard configuration's `[[token]]`s) for token-guarded routes when
    /// no guard service is configured; with one, its tokens are used.
    pub fn with_tokens(mut self, config: holdfast_gate::GateConfig) -> Self {
        self.tokens = Some(Arc::new(config));
        self
    }

    /// Traces (the console's trace page) read the transfers of `store`.
    pub fn with_transfers(mut self, store: Arc<dyn holdfast_store::Store>) -> Self {
        self.transfers = Some(store);
        self
    }

    /// Screening answers with address clusters from `source` (the UTXO index).
    pub fn with_clusters(
        mut self,
        source: Arc<dyn holdfast_intel::cluster::ClusterSource>,
    ) -> Self {
        self.clusters = Some(source);
        self
    }

    /// The console's sessions last `ttl`; `secure`: the cookie is marked `Secure` (the
    /// console is reached over TLS). Where they are kept does not change (the guard's
    /// store with a guard service, else memory).
    pub fn with_sessions(mut self, ttl: std::time::Duration, secure: bool) -> Self {
        self.sessions.ttl = ttl;
        self.sessions.secure = secure;
        self
    }

    /// The alerts' live streams with this timing.
    pub fn with_streams(mut self, streams: alerts::Streams) -> Self {
        self.streams = streams;
        self
    }

    /// The tokens token-guarded routes check: the guard service's, else those given with
    /// [`Self::with_tokens`].
    pub(crate) fn token_book(&self) -> Option<&holdfast_gate::GateConfig> {
        self.gate
            .as_ref()
            .map(|g| g.config())
            .or(self.tokens.as_deref())
    }

    /// Serves with these timeouts and connection cap.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Loads intel once with `loader` and keeps the loader for reloads.
    pub fn new(loader: Arc<Loader>, admin_token: Option<String>) -> Result<Self, IntelError> {
        let loaded = loader()?;
        let metrics = Arc::new(Metrics::new());
        metrics.set_labels(loaded.index.label_count());
        Ok(AppState {
            intel: Arc::new(ArcSwap::from_pointee(Intel {
                index: Arc::new(loaded.index),
                loaded_at: SystemTime::now(),
                report: loaded.report,
            })),
            loader,
            admin_token: admin_token.filter(|t| !t.is_empty()).map(Arc::from),
            metrics,
            reload_lock: Arc::new(tokio::sync::Mutex::new(())),
            gate: None,
            rate: Arc::new(guard::RateLimiter::new(guard::DEFAULT_RATE)),
            limits: Limits::default(),
            watch: None,
            tokens: None,
            streams: alerts::Streams::default(),
            sessions: console::Sessions::default(),
            transfers: None,
            clusters: None,
            auth_throttle: console::throttle::AuthThrottle::default(),
        })
    }

    /// Rebuilds the intel off the request threads and swaps it in atomically. Concurrent
    /// reloads are serialised; on error the old intel stays in place.
    pub async fn reload(&self) -> Result<Arc<Intel>, IntelError> {
        let _guard = self.reload_lock.lock().await;
        let loader = self.loader.clone();
        let loaded = tokio::task::spawn_blocking(move || loader())
            .await
            .map_err(|e| IntelError::Usage(format!("reload task failed: {e}")))??;
        let intel = Arc::new(Intel {
            index: Arc::new(loaded.index),
            loaded_at: SystemTime::now(),
            report: loaded.report,
        });
        self.intel.store(intel.clone());
        self.metrics.set_labels(intel.index.label_count());
        self.metrics.reloads.inc();
        tracing::info!(target: "server::reload", labels = intel.index.label_count(), "intel reloaded");
        Ok(intel)
    }
}

/// Serves `state` on `listener` until `shutdown` resolves, each connection bounded by
/// `state.limits`. On Unix, SIGHUP reloads intel.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(target: "server", ?addr, "listening");
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    #[cfg(unix)]
    let hup_task = {
        let state = state.clone();
        let mut stop = stop_tx.subscribe();
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    got = hup.recv() => {
                        if got.is_none() { break; }
                        if let Err(e) = state.reload().await {
                            tracing::error!(target: "server::reload", error = %e, "reload on SIGHUP failed; keeping the old intel");
                        }
                    }
                }
            }
        })
    };
    let limits = state.limits.clone();
    let streams = state.streams.clone();
    let result = serve::serve_router(
        listener,
        router(state),
        limits,
        error::head_error_body,
        async move {
            shutdown.await;
            // Live streams never end by themselves: end them so connections can close.
            streams.stop();
            let _ = stop_tx.send(true);
        },
    )
    .await;
    let _ = stop_rx.changed().await;
    #[cfg(unix)]
    {
        let _ = tokio::time::timeout(Duration::from_secs(1), hup_task).await;
    }
    result
}
