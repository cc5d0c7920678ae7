//! Bounds token guessing: at most [`MAX_FAILURES`] failed authentications per client
//! address in a [`WINDOW`] — console sign-ins with an unknown token, and API requests whose
//! bearer token is refused (401, [`bearer`]) — counted together; past that every sign-in
//! and every request with a bearer token from that address, right token or not, is
//! answered 429 until the window ends. Tokens are long random secrets, but an unbounded
//! guessing rate is still a gift to an attacker, and a flood of failures is worth a log
//! line.
//!
//! The client is the connection's peer address ([`Peer`], set by [`crate::serve`]'s accept
//! loop), or behind a reverse proxy named with `serve --trusted-proxy` the client its
//! `X-Forwarded-For` names ([`crate::serve::client_address`]). Behind an untrusted proxy every
//! client shares the proxy's address, so an attacker there also locks out the others for a
//! window: the console fails closed.
//! At most [`MAX_CLIENTS`] addresses are tracked; past that the expired windows are
//! dropped, then the oldest.

use std::collections::HashMap;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Failed sign-ins allowed per client address in a window.
pub const MAX_FAILURES: u32 = 10;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Most client addresses tracked at once.
pub const MAX_CLIENTS: usize = 10_000;

/// The peer address of the connection a request came on (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub IpAddr);

/// Per client address (`None`: unknown, e.g. a router driven without a connection): when
/// its window started and its failures in it.
type Failures = HashMap<Option<IpAddr>, (Instant, u32)>;

/// Failed authentications per client address.
#[derive(Debug, Clone, Default)]
pub struct AuthThrottle {
    map: Arc<Mutex<Failures>>,
}

impl AuthThrottle {
    /// `Err(seconds until the window ends)` when `client` used up its failures.
    pub fn check(&self, client: Option<IpAddr>) -> Result<(), u64> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(&client) {
            Some((start, n)) if *n >= MAX_FAILURES && start.elapsed() < WINDOW => {
                Err(WINDOW.saturating_sub(start.elapsed()).as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed sign-in of `client`; returns its failures in the current window.
    pub fn failed(&self, client: Option<IpAddr>) -> u32 {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_CLIENTS && !map.contains_key(&client) {
            map.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            if map.len() >= MAX_CLIENTS
                && let Some(oldest) = map.iter().min_by_key(|(_, (s, _))| *s).map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        let entry = map.entry(client).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1
    }
}

/// The 429 answer: `what` was refused too often; `wait` seconds left.
pub fn too_many(what: &str, wait: u64) -> ApiError {
    ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        code: "rate_limited",
        message: format!(
            "Too many {what} from this address ({MAX_FAILURES} in {} s): try again in {wait} s.",
            WINDOW.as_secs()
        ),
        field: None,
    }
}

/// `Retry-After: wait` on `resp`.
pub fn retry_after(mut resp: Response, wait: u64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Middleware: a request with an `Authorization` header from a client over its failures is
/// answered 429; a refused one (401) counts as a failure.
pub async fn bearer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !req.headers().contains_key(header::AUTHORIZATION) {
        return next.run(req).await;
    }
    let client = req.extensions().get::<Peer>().map(|p| p.0);
    if let Err(wait) = state.auth_throttle.check(client) {
        return retry_after(
            too_many("requests with an unknown token", wait).into_response(),
            wait,
        );
    }
    let resp = next.run(req).await;
    if resp.status() == StatusCode::UNAUTHORIZED {
        let failures = state.auth_throttle.failed(client);
        tracing::info!(target: "server::auth", ?client, failures, "request refused: unknown token");
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_bounded_per_client() {
        let t = AuthThrottle::default();
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        for i in 1..=MAX_FAILURES {
            assert!(t.check(a).is_ok(), "attempt {i}");
            assert_eq!(t.failed(a), i);
        }
        let wait = t.check(a).expect_err("over the bound");
        assert!((1..=60).contains(&wait));
        assert!(t.check(b).is_ok(), "another client is not affected");
    }
}
