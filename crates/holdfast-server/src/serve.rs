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
    /// Reverse proxies whose `X-Forwarded-For` names the client (`serve --trusted-proxy`).
    trusted_proxies: Arc<[std::net::IpAddr]>,
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
            trusted_proxies: Arc::from([]),
        }
    }

    /// Requests that come through one of `proxies` are from the client their
    /// `X-Forwarded-For` names ([`client_address`]); from anyone else the header is ignored.
    #[must_use]
    pub fn with_trusted_proxies(mut self, proxies: Vec<std::net::IpAddr>) -> Limits {
        self.trusted_proxies = proxies.into();
        self
    }

    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Connections open now (over every listener sharing these limits).
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// The client a request is from: the connection's `peer`, unless the peer is a trusted
/// reverse proxy — then the `X-Forwarded-For` entries from the right (each proxy appends the
/// address it was connected from), skipping trusted proxies, up to the first that is not one.
/// An entry that is not an IP address, or no header, leaves the last trusted hop: clients
/// behind it share its address (the sign-in bound fails closed). A client cannot choose its
/// address by sending the header itself: it is read only when a trusted proxy connected, and
/// only the entries that proxy (and trusted ones before it) appended are believed.
pub fn client_address(
    peer: std::net::IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[std::net::IpAddr],
) -> std::net::IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut client = peer;
    // Several headers count as one list, in order.
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for entry in entries.iter().rev() {
        match entry.trim().parse::<std::net::IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => client = ip,
            Ok(ip) => return ip,
            Err(_) => return client,
        }
    }
    client
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
        // Each request knows the client it came from (the console bounds sign-ins by it):
        // the peer, or the client a trusted proxy names.
        let peer = peer.ip();
        let trusted = limits.trusted_proxies.clone();
        let service = TowerToHyperService::new(tower::util::MapRequest::new(
            router.clone(),
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                let client = client_address(peer, req.headers(), &trusted);
                req.extensions_mut()
                    .insert(crate::console::throttle::Peer(client));
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

    /// The client behind trusted proxies is the first address from the right that is not
    /// one of them; from an untrusted peer the header is ignored (a client cannot pick its
    /// address); garbage or no header leaves the proxy's address.
    #[test]
    fn a_trusted_proxy_names_the_client_and_no_one_else_can() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        let xff = |values: &[&str]| {
            let mut h = axum::http::HeaderMap::new();
            for v in values {
                h.append("x-forwarded-for", v.parse().expect("header"));
            }
            h
        };
        let trusted = [ip("10.0.0.1"), ip("10.0.0.2")];
        let proxy = ip("10.0.0.1");
        let cases: [(&str, &[&str], &str); 9] = [
            // Not a trusted peer: the header is the client's own claim.
            ("192.0.2.7", &["198.51.100.1"], "192.0.2.7"),
            ("10.0.0.1", &["198.51.100.1"], "198.51.100.1"),
            // The client's own forged entries come first; the proxy appended the real one.
            ("10.0.0.1", &["203.0.113.9, 198.51.100.1"], "198.51.100.1"),
            // Two trusted proxies: skip the second's entry.
            ("10.0.0.1", &["198.51.100.1, 10.0.0.2"], "198.51.100.1"),
            ("10.0.0.1", &["198.51.100.1", "10.0.0.2"], "198.51.100.1"),
            ("10.0.0.1", &["2001:db8::1"], "2001:db8::1"),
            ("10.0.0.1", &[], "10.0.0.1"),
            ("10.0.0.1", &["unknown"], "10.0.0.1"),
            ("10.0.0.1", &["198.51.100.1, junk, 10.0.0.2"], "10.0.0.2"),
        ];
        for (peer, header, want) in cases {
            assert_eq!(
                client_address(ip(peer), &xff(header), &trusted),
                ip(want),
                "peer {peer}, X-Forwarded-For {header:?}"
            );
        }
        assert_eq!(client_address(proxy, &xff(&["198.51.100.1"]), &[]), proxy);
    }
}
