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
//!
//! The CSRF secret itself never appears in a page: each rendering carries it masked afresh
//! ([`Session::csrf_token`]: a random one-time pad ‖ pad XOR secret, hex), so a compressed
//! page that also reflects query text shows nothing stable to a BREACH-style length
//! measurement. [`check_csrf`] unmasks and compares in constant time.

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
    /// The CSRF secret; pages carry it masked ([`Session::csrf_token`]), never as is.
    csrf: [u8; CSRF_LEN],
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

/// Bytes of a session's CSRF secret.
const CSRF_LEN: usize = 32;

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill(&mut b[..]);
    b
}

fn random_hex() -> String {
    alloy_primitives::hex::encode(random_bytes::<32>())
}

impl Session {
    /// The CSRF token to put in one rendering (a form field, the `csrf-token` meta): a fresh
    /// random pad, then the pad XOR the secret, in hex (128 characters). Every call gives
    /// another token; all of them verify.
    pub fn csrf_token(&self) -> String {
        let pad = random_bytes::<CSRF_LEN>();
        let mut out = [0u8; 2 * CSRF_LEN];
        out[..CSRF_LEN].copy_from_slice(&pad);
        for (i, (p, s)) in pad.iter().zip(self.csrf.iter()).enumerate() {
            out[CSRF_LEN + i] = p ^ s;
        }
        alloy_primitives::hex::encode(out)
    }

    /// Whether `given` is this session's secret masked by [`Session::csrf_token`]: unmasked,
    /// then compared in time independent of where it differs.
    fn csrf_matches(&self, given: &str) -> bool {
        let Ok(bytes) = alloy_primitives::hex::decode(given) else {
            return false;
        };
        if bytes.len() != 2 * CSRF_LEN {
            return false;
        }
        let (pad, masked) = bytes.split_at(CSRF_LEN);
        pad.iter()
            .zip(masked)
            .zip(self.csrf.iter())
            .fold(0u8, |acc, ((p, m), s)| acc | (p ^ m ^ s))
            == 0
    }
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
                csrf: random_bytes(),
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
    if !session.csrf_matches(given) {
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
            check_csrf(&session, &h, &session.csrf_token()).is_err(),
            "no Origin"
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(
            check_csrf(&session, &h, &session.csrf_token()).is_err(),
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
        assert!(
            check_csrf(&session, &h, &"0".repeat(128)).is_err(),
            "wrong token of the masked length"
        );
        assert!(check_csrf(&session, &h, &session.csrf_token()).is_ok());
        std::thread::sleep(Duration::from_millis(60));
        assert!(s.get(&h).is_none(), "expired");
    }

    #[test]
    fn each_rendering_masks_the_csrf_secret_afresh_and_every_one_verifies() {
        let s = Sessions::default();
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{COOKIE}={}", s.open(who()))).expect("header"),
        );
        h.insert(header::HOST, HeaderValue::from_static("console.example"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://console.example"),
        );
        let (_, session) = s.get(&h).expect("live");
        let (a, b) = (session.csrf_token(), session.csrf_token());
        assert_eq!(a.len(), 128);
        assert_ne!(a, b, "two renderings carry different tokens");
        let secret = alloy_primitives::hex::encode(session.csrf);
        assert!(
            !a.contains(&secret) && !b.contains(&secret),
            "the secret itself never appears"
        );
        assert!(check_csrf(&session, &h, &a).is_ok());
        assert!(check_csrf(&session, &h, &b).is_ok());
        assert!(
            check_csrf(&session, &h, &secret).is_err(),
            "the bare secret is not a token"
        );
        // Tampered: one bit of the pad, of the masked half; cut short; not hex.
        for i in [0, 64, 127] {
            let mut t = a.clone().into_bytes();
            t[i] = if t[i] == b'0' { b'1' } else { b'0' };
            let t = String::from_utf8(t).expect("ascii");
            assert!(check_csrf(&session, &h, &t).is_err(), "tampered at {i}");
        }
        assert!(check_csrf(&session, &h, &a[..126]).is_err(), "short");
        assert!(check_csrf(&session, &h, &format!("{}zz", &a[..126])).is_err());
        // Another session's token does not pass for this one.
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{COOKIE}={}", s.open(who()))).expect("header"),
        );
        let (_, other) = s.get(&h).expect("live");
        assert!(check_csrf(&session, &h, &other.csrf_token()).is_err());
    }
}
