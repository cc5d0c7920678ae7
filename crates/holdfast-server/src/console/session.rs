//! Console sessions: an API token (a guard configuration's `[[token]]`) is exchanged once
//! for a session; the browser then holds only a random session id in a cookie (`HttpOnly`,
//! `SameSite=Strict`, `Path=/`, `Max-Age` = the session's life, `Secure` when the console is
//! served over TLS), never the token.
//!
//! Sessions live in a bounded map in the server's memory: a restart signs everyone out,
//! and several instances behind one name each keep their own (pin a user to one instance).
//! At most [`MAX_SESSIONS`]; past that the expired are dropped, then the oldest.
//!
//! Every state-changing request made with a session must carry the session's CSRF token
//! (form field `csrf` or header `X-CSRF-Token`) and come from the console's own origin
//! (`Origin` equal to the `Host` it was sent to); reads need the cookie only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use holdfast_gate::Principal;
use rand::Rng;

use crate::error::ApiError;

/// Most sessions held at once.
pub const MAX_SESSIONS: usize = 10_000;
/// The session cookie's name.
pub const COOKIE: &str = "holdfast_session";
/// The header a script sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts by default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(8 * 3600);

/// One signed-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    /// Sent back with every state change (forms, the approve script).
    pub csrf: String,
    pub expires: Instant,
}

/// The console's sessions and how its cookie is set.
#[derive(Debug, Clone)]
pub struct Sessions {
    map: Arc<Mutex<HashMap<String, Session>>>,
    pub ttl: Duration,
    /// Set `Secure` on the cookie (the console is reached over TLS, e.g. behind a
    /// TLS-terminating proxy).
    pub secure: bool,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new(DEFAULT_TTL, false)
    }
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill(&mut b);
    alloy_primitives::hex::encode(b)
}

/// Compares in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    pub fn new(ttl: Duration, secure: bool) -> Sessions {
        Sessions {
            map: Arc::new(Mutex::new(HashMap::new())),
            ttl,
            secure,
        }
    }

    /// Opens a session for `principal`; returns its id (the cookie's value).
    pub fn open(&self, principal: Principal) -> String {
        let id = random_hex();
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| s.expires > now);
        }
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                principal,
                csrf: random_hex(),
                expires: now + self.ttl,
            },
        );
        id
    }

    /// The live session the request's cookie names (an expired one is dropped).
    pub fn get(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let id = cookie(headers)?;
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(&id) {
            Some(s) if s.expires > Instant::now() => Some((id, s.clone())),
            Some(_) => {
                map.remove(&id);
                None
            }
            None => None,
        }
    }

    pub fn close(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    /// The `Set-Cookie` value that holds session `id`.
    pub fn set_cookie(&self, id: &str) -> String {
        format!(
            "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            self.ttl.as_secs(),
            if self.secure { "; Secure" } else { "" }
        )
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn clear_cookie(&self) -> String {
        format!(
            "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            if self.secure { "; Secure" } else { "" }
        )
    }
}

/// The session id in the request's cookies.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn forbidden(message: &str) -> ApiError {
    ApiError {
        status: StatusCode::FORBIDDEN,
        code: "forbidden",
        message: message.to_owned(),
        field: None,
    }
}

/// A state change must come from the console's own origin: its `Origin` (browsers send it
/// with every POST) must be the scheme and `Host` it was sent to.
pub fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| forbidden("a state change from the console needs an Origin header"))?;
    let ok = !host.is_empty()
        && (origin == format!("http://{host}") || origin == format!("https://{host}"));
    if ok {
        Ok(())
    } else {
        Err(forbidden(&format!(
            "refused: the request comes from origin {origin:?}, not from this console"
        )))
    }
}

/// Checks a state change made with `session`: its origin and its CSRF token (`given`).
pub fn check_csrf(session: &Session, headers: &HeaderMap, given: &str) -> Result<(), ApiError> {
    same_origin(headers)?;
    if given.is_empty() || !same(given, &session.csrf) {
        return Err(forbidden(
            "refused: the request lacks this session's CSRF token; reload the page",
        ));
    }
    Ok(())
}

/// The CSRF token a script sent in [`CSRF_HEADER`].
pub fn csrf_header(headers: &HeaderMap) -> &str {
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn who() -> Principal {
        Principal {
            name: "a".into(),
            roles: vec![holdfast_gate::Role::Approver],
            address: None,
        }
    }

    #[test]
    fn a_session_expires_and_a_state_change_needs_origin_and_csrf() {
        let s = Sessions::new(Duration::from_millis(50), true);
        let id = s.open(who());
        assert!(s.set_cookie(&id).contains("HttpOnly; SameSite=Strict"));
        assert!(s.set_cookie(&id).ends_with("; Secure"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("x=1; {COOKIE}={id}")).expect("header"),
        );
        let (_, session) = s.get(&h).expect("live");
        h.insert(header::HOST, HeaderValue::from_static("console.example"));
        assert!(
            check_csrf(&session, &h, &session.csrf).is_err(),
            "no Origin"
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(
            check_csrf(&session, &h, &session.csrf).is_err(),
            "foreign Origin"
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://console.example"),
        );
        assert!(check_csrf(&session, &h, "").is_err(), "no token");
        assert!(
            check_csrf(&session, &h, &"0".repeat(64)).is_err(),
            "wrong token"
        );
        assert!(check_csrf(&session, &h, &session.csrf).is_ok());
        std::thread::sleep(Duration::from_millis(60));
        assert!(s.get(&h).is_none(), "expired");
    }
}
