//! Serving a router on a listener with bounds on what a client can hold: hyper's HTTP/1
//! connection builder with our own accept loop, because `axum::serve` has no header timeout
//! and no connection cap.
//!
//! - **Header timeout**: from the moment the server waits for a request head (a new
//!   connection, or the next request on a kept-alive one) until the whole head is in; a
//!   connection that sends its head slowly, or idles between requests, is closed. It is the
//!   keep-alive idle timeout too.
//! - **Body timeout**: the whole body must arrive within it (read in the handlers,
//!   [`crate::body::read_body`]).
//! - **Write timeout**: a connection whose client stops reading an answer is closed once no
//!   byte could be written for this long.
//! - **Connection cap**: one semaphore shared by every listener given the same [`Limits`]
//!   (the API and the firewall): at the cap, new connections wait in the kernel's backlog
//!   until one closes; the connections already open keep working.
//!
//! Answers hyper writes by itself (a request head it cannot parse: 400, 414, 431) carry no
//! body; [`io::Guarded`] replaces them with a JSON one.

mod io;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Timeouts and the connection cap, shared (the cap's semaphore) by the clones.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub write_timeout: Duration,
    max_connections: usize,
    permits: Arc<Semaphore>,
    open: Arc<AtomicUsize>,
}

/// Counts one open connection while it lives.
struct Open(Arc<AtomicUsize>);

impl Open {
    fn new(count: &Arc<AtomicUsize>) -> Open {
        count.fetch_add(1, Ordering::Relaxed);
        Open(count.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Default header timeout (and keep-alive idle timeout).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default body timeout.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default write timeout.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on open connections (all listeners together).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// File descriptors kept for everything but client connections (stores, the node, logs).
pub const FD_RESERVE: u64 = 128;
/// How long shutdown waits for open connections to finish their requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl Default for Limits {
    fn default() -> Self {
        Limits::new(
            DEFAULT_HEADER_TIMEOUT,
            DEFAULT_BODY_TIMEOUT,
            DEFAULT_WRITE_TIMEOUT,
            DEFAULT_MAX_CONNECTIONS,
        )
    }
}

impl Limits {
    /// `max_connections` is at least 1.
    pub fn new(
        header_timeout: Duration,
        body_timeout: Duration,
        write_timeout: Duration,
        max_connections: usize,
    ) -> Limits {
        let max_connections = max_connections.max(1);
        Limits {
            header_timeout,
            body_timeout,
            write_timeout,
            max_connections,
            permits: Arc::new(Semaphore::new(max_connections)),
            open: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Connections open now (over every listener sharing these limits).
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// The connection cap that fits `fd_limit` open files: `wanted`, or fewer when the limit
/// leaves less after [`FD_RESERVE`] (never under half the limit, nor under 1).
pub fn connection_cap(wanted: usize, fd_limit: u64) -> usize {
    let fit = fd_limit.saturating_sub(FD_RESERVE).max(fd_limit / 2).max(1);
    wanted
        .min(usize::try_from(fit).unwrap_or(usize::MAX))
        .max(1)
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open connections
/// finish their requests (at most [`SHUTDOWN_GRACE`]). `head_error_body` is the JSON body
/// of the answers hyper writes by itself.
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    head_error_body: fn(axum::http::StatusCode) -> Vec<u8>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut conns = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = limits.permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was
                    // accepted: keep serving the others.
                    tracing::warn!(target: "server::accept", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (stream, peer) = stream;
        let _ = stream.set_nodelay(true);
        // Each request knows the address it came from (the console bounds sign-ins by it).
        let peer = crate::console::throttle::Peer(peer.ip());
        let service = TowerToHyperService::new(tower::util::MapRequest::new(
            router.clone(),
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(peer);
                req
            },
        ));
        let mut stop = stop_rx.clone();
        let limits = limits.clone();
        let open = Open::new(&limits.open);
        conns.spawn(async move {
            let _held = (permit, open);
            let io = TokioIo::new(io::Guarded::new(
                stream,
                limits.write_timeout,
                head_error_body,
            ));
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .writev(false)
                .keep_alive(true);
            let conn = builder.serve_connection(io, service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(target: "server::conn", error = %e, "connection closed");
                    }
                }
                () = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop_tx.send(true);
    if tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!(target: "server", open = conns.len(), "connections still open after the grace period; closing them");
        conns.shutdown().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_the_file_descriptors() {
        assert_eq!(connection_cap(4096, 1_048_576), 4096);
        assert_eq!(connection_cap(4096, 1024), 896);
        assert_eq!(connection_cap(4096, 256), 128);
        assert_eq!(connection_cap(4096, 100), 50);
        assert_eq!(connection_cap(4096, 0), 1);
        assert_eq!(connection_cap(0, 1024), 1);
    }
}
