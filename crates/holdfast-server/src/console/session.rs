//! Console sessions: an API token (a guard configuration's `[[token]]`) is exchanged once
//! for a session; the browser then holds only a random session id in a cookie (`HttpOnly`,
//! `SameSite=Strict`, `Path=/`, `Max-Age` = the session's life, `Secure` when the console is
//! served over TLS), never the token.
//!
//! With a guard service the sessions are kept in its store (`holdfast_store::gate::
//! SessionStore`): every instance on one PostgreSQL database knows them, a sign-out on one
//! ends the session on all, a restart signs no one out. The store keeps the SHA-256 of the
//! session id (never the id), the SHA-256 of the token it was opened with — resolved against
//! the configured tokens at every use, so a token taken out of the configuration ends its
//! sessions — the CSRF secret and the expiry. Without a guard service (a watch-only console)
//! they live in this process's memory. At most [`MAX_SESSIONS`], and
//! [`MAX_SESSIONS_PER_TOKEN`] of one token; past that the expired are dropped, then the
//! token's own that end soonest, then those of all that end soonest.
//!
//! Every state-changing request made with a session must carry the session's CSRF token
//! (form field `csrf` or header `X-CSRF-Token`) and come from the console's own origin
//! (`Origin` equal to the `Host` it was sent to); reads need the cookie only.
//!
//! The CSRF secret itself never appears in a page: each rendering carries it masked afresh
//! ([`Session::csrf_token`]: a random one-time pad ‖ pad XOR secret, hex), so a compressed
//! page that also reflects query text shows nothing stable to a BREACH-style length
//! measurement. [`check_csrf`] unmasks and compares in constant time.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode, header};
use holdfast_gate::config::token_digest;
use holdfast_gate::{GateConfig, Principal};
use holdfast_store::gate::{MemorySessions, SessionLimits, SessionStore, StoredSession};
use rand::Rng;
use sha2::Digest;

use crate::error::ApiError;

/// Most sessions held at once.
pub const MAX_SESSIONS: usize = 10_000;
/// Most sessions of one token held at once: its holder signing in again and again drops
/// only their own oldest sessions, never other users'.
pub const MAX_SESSIONS_PER_TOKEN: usize = 50;
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
    /// When it ends, Unix time in milliseconds.
    pub expires_at_ms: u64,
}

/// The console's sessions and how its cookie is set.
#[derive(Debug, Clone)]
pub struct Sessions {
    /// Where they are kept: the guard's store when there is one ([`Sessions::kept_in`]),
    /// else this process's memory.
    store: Arc<dyn SessionStore>,
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The key a session is stored under: the SHA-256 of its id.
fn store_key(id: &str) -> [u8; 32] {
    sha2::Sha256::digest(id.as_bytes()).into()
}

fn store_error(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(target: "server::console", error = %e, "session store");
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "unavailable",
        message: "the session store cannot be read or written now; try again".into(),
        field: None,
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
    /// Sessions in this process's memory, lasting `ttl`.
    pub fn new(ttl: Duration, secure: bool) -> Sessions {
        Sessions {
            store: Arc::new(MemorySessions::default()),
            ttl,
            secure,
        }
    }

    /// The same sessions kept in `store` (the guard service's store).
    #[must_use]
    pub fn kept_in(mut self, store: Arc<dyn SessionStore>) -> Sessions {
        self.store = store;
        self
    }

    /// Runs `f` on the store off the request threads (a PostgreSQL round trip blocks).
    async fn on_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn SessionStore) -> Result<T, holdfast_store::StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&*store))
            .await
            .map_err(store_error)?
            .map_err(store_error)
    }

    /// Opens a session for the holder of `token` (already checked to be one of the
    /// configured tokens); returns its id (the cookie's value).
    pub async fn open(&self, token: &str) -> Result<String, ApiError> {
        let id = random_hex();
        let now = now_ms();
        let stored = StoredSession {
            who: alloy_primitives::hex::encode(token_digest(token)),
            csrf: random_bytes(),
            expires_at_ms: now
                .saturating_add(u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)),
        };
        let key = store_key(&id);
        let limits = SessionLimits {
            total: MAX_SESSIONS,
            per_token: MAX_SESSIONS_PER_TOKEN,
        };
        self.on_store(move |s| s.open_session(key, &stored, now, limits))
            .await?;
        Ok(id)
    }

    /// The live session the request's cookie names, with its principal as `book` has it
    /// now (`None`: no cookie, no such session, expired, or its token is no longer
    /// configured). An error: the store could not be read.
    pub async fn get(
        &self,
        headers: &HeaderMap,
        book: Option<&GateConfig>,
    ) -> Result<Option<(String, Session)>, ApiError> {
        let Some(id) = cookie(headers) else {
            return Ok(None);
        };
        let key = store_key(&id);
        let now = now_ms();
        let Some(stored) = self.on_store(move |s| s.session(key, now)).await? else {
            return Ok(None);
        };
        let principal = alloy_primitives::hex::decode(&stored.who)
            .ok()
            .and_then(|d| <[u8; 32]>::try_from(d).ok())
            .and_then(|d| book?.principal_of_digest(&d));
        Ok(principal.map(|principal| {
            (
                id,
                Session {
                    principal,
                    csrf: stored.csrf,
                    expires_at_ms: stored.expires_at_ms,
                },
            )
        }))
    }

    /// Ends session `id` (on every instance sharing the store).
    pub async fn close(&self, id: &str) -> Result<(), ApiError> {
        let key = store_key(id);
        self.on_store(move |s| s.close_session(key)).await
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
    use holdfast_gate::Role;
    use holdfast_gate::config::Token;

    fn book(tokens: &[(&str, &str, Role)]) -> GateConfig {
        GateConfig {
            tokens: tokens
                .iter()
                .map(|(name, token, role)| Token {
                    name: (*name).into(),
                    sha256: token_digest(token),
                    roles: vec![*role],
                    address: None,
                })
                .collect(),
            ..GateConfig::default()
        }
    }

    fn with_cookie(id: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("x=1; {COOKIE}={id}")).expect("header"),
        );
        h
    }

    #[tokio::test]
    async fn a_session_expires_and_a_state_change_needs_origin_and_csrf() {
        let b = book(&[("a", "tok-a", Role::Approver)]);
        let s = Sessions::new(Duration::from_millis(50), true);
        let id = s.open("tok-a").await.expect("open");
        assert!(s.set_cookie(&id).contains("HttpOnly; SameSite=Strict"));
        assert!(s.set_cookie(&id).ends_with("; Secure"));
        let mut h = with_cookie(&id);
        let (_, session) = s.get(&h, Some(&b)).await.expect("read").expect("live");
        assert_eq!(session.principal.name, "a");
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
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(
            s.get(&h, Some(&b)).await.expect("read").is_none(),
            "expired"
        );
    }

    /// A session is its token's: the roles are the token's as configured now, a token
    /// taken out of the configuration ends its sessions, and sign-out ends the session for
    /// every holder of the store (another `Sessions` on the same store: another instance).
    #[tokio::test]
    async fn a_session_follows_its_token_and_ends_everywhere_at_sign_out() {
        let store: Arc<dyn SessionStore> = Arc::new(MemorySessions::default());
        let one = Sessions::default().kept_in(store.clone());
        let two = Sessions::default().kept_in(store);
        let id = one.open("tok-a").await.expect("open");
        let h = with_cookie(&id);
        let before = book(&[("a", "tok-a", Role::Approver)]);
        let (_, s) = two
            .get(&h, Some(&before))
            .await
            .expect("read")
            .expect("live");
        assert_eq!(s.principal.roles, [Role::Approver]);
        let changed = book(&[("a", "tok-a", Role::Operator)]);
        let (_, s) = two
            .get(&h, Some(&changed))
            .await
            .expect("read")
            .expect("live");
        assert_eq!(s.principal.roles, [Role::Operator], "the token's roles now");
        let revoked = book(&[("b", "tok-b", Role::Admin)]);
        assert!(
            two.get(&h, Some(&revoked)).await.expect("read").is_none(),
            "a token taken out ends its sessions"
        );
        assert!(
            two.get(&h, None).await.expect("read").is_none(),
            "no tokens"
        );
        two.close(&id).await.expect("close");
        assert!(
            one.get(&h, Some(&before)).await.expect("read").is_none(),
            "signed out on every instance"
        );
    }

    #[tokio::test]
    async fn each_rendering_masks_the_csrf_secret_afresh_and_every_one_verifies() {
        let b = book(&[("a", "tok-a", Role::Approver)]);
        let s = Sessions::default();
        let mut h = with_cookie(&s.open("tok-a").await.expect("open"));
        h.insert(header::HOST, HeaderValue::from_static("console.example"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://console.example"),
        );
        let (_, session) = s.get(&h, Some(&b)).await.expect("read").expect("live");
        let (a, b2) = (session.csrf_token(), session.csrf_token());
        assert_eq!(a.len(), 128);
        assert_ne!(a, b2, "two renderings carry different tokens");
        let secret = alloy_primitives::hex::encode(session.csrf);
        assert!(
            !a.contains(&secret) && !b2.contains(&secret),
            "the secret itself never appears"
        );
        assert!(check_csrf(&session, &h, &a).is_ok());
        assert!(check_csrf(&session, &h, &b2).is_ok());
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
            HeaderValue::from_str(&format!(
                "{COOKIE}={}",
                s.open("tok-a").await.expect("open")
            ))
            .expect("header"),
        );
        let (_, other) = s.get(&h, Some(&b)).await.expect("read").expect("live");
        assert!(check_csrf(&session, &h, &other.csrf_token()).is_err());
    }
}
